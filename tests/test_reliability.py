"""The bad-input and fault matrix, in one place.

`MATRIX` lists each kind of bad input or fault a user can meet, what the
project does about it, and the test that reproduces it (a real file, a real
process or a real signal).  `test_every_case_has_its_test` keeps the list
honest: a test renamed or deleted fails here, naming the case.
"""
import ast
import os

from conftest import PROJECT_ROOT

SCRIPT = os.path.join(PROJECT_ROOT, 'train_ssd_network.py')
RUN_TIMEOUT_SECS = 300

# (fault, what happens, 'tests/<file>.py::<test>[::<method>]').
MATRIX = [
    # --- Data can be lost.
    ('a re-conversion fails on a bad image',
     'the previous dataset stays in place',
     'tests/test_datasets_conversion.py::'
     'test_failed_reconversion_keeps_the_previous_dataset'),
    ('the swap of the new dataset fails half-way',
     'the old files are put back',
     'tests/test_datasets_conversion.py::'
     'test_a_failed_swap_puts_the_old_files_back'),
    ('train_dir copied (cp -r) or moved (mv)',
     'relative index; resumes from its own files',
     'tests/test_resume.py::TestResume::'
     'test_copied_or_moved_run_directory_resumes_from_its_own_files'),
    ('a copy of an old run whose index holds absolute paths',
     'resumes from the copy, warns, rewrites the index',
     'tests/test_resume.py::TestResume::'
     'test_an_old_absolute_index_in_a_copy_is_read_from_the_copy'),
    ('the training script resumes in a moved train_dir',
     'resumes from the moved files',
     'tests/test_train_ssd_network_resume.py::'
     'test_resume_survives_a_move_a_corrupt_checkpoint_and_leftovers'),
    # --- Resume checks what it finds.
    ('train_dir checkpoint of another class count',
     'error naming each variable, both shapes and the fix',
     'tests/test_resume.py::TestResume::'
     'test_another_class_count_names_the_variables_and_the_fix'),
    ('the same through the training script',
     'one error before the first step',
     'tests/test_train_ssd_network_resume.py::'
     'test_resume_with_another_class_count_fails_before_training'),
    ('train_dir checkpoint of another optimizer',
     'error naming the missing variables and flags',
     'tests/test_resume.py::TestResume::'
     'test_missing_variables_name_the_flags'),
    ('truncated data, flipped bytes, damaged or empty index',
     'the file at fault is named',
     'tests/test_checkpoints.py::TestCorruptCheckpoints::'
     'test_the_damaged_file_is_named'),
    ('corrupt --checkpoint_path',
     'error naming the file, before training',
     'tests/test_checkpoints.py::TestCorruptCheckpoints::'
     'test_a_corrupt_pretrained_checkpoint_fails_before_training'),
    ('corrupt newest checkpoint in train_dir',
     'warning naming it, set aside, resume from the newest readable',
     'tests/test_resume.py::TestResume::'
     'test_falls_back_to_the_newest_readable_checkpoint'),
    ('every checkpoint in train_dir corrupt',
     'error, never a silent fresh start',
     'tests/test_resume.py::TestResume::'
     'test_no_readable_checkpoint_is_an_error_not_a_fresh_start'),
    ('the training script meets a corrupt newest checkpoint',
     'falls back with a warning and trains on',
     'tests/test_train_ssd_network_resume.py::'
     'test_resume_survives_a_move_a_corrupt_checkpoint_and_leftovers'),
    # --- Clusters fail instead of hanging.
    ('a worker with other --ps_hosts than the chief',
     'it stops at once, naming both lists',
     'tests/test_distributed.py::'
     'test_mismatched_worker_fails_naming_both_lists_chief_and_ps_stop'),
    ('a ps with other --worker_hosts; a ps nobody runs',
     'mismatch error; timeout error naming the host',
     'tests/test_distributed.py::'
     'test_a_ps_with_other_worker_hosts_fails_and_an_absent_ps_times_out'),
    ('SIGINT to a ps blocked on its queue',
     'stops within seconds',
     'tests/test_distributed.py::'
     'test_mismatched_worker_fails_naming_both_lists_chief_and_ps_stop'),
    ('SIGTERM to a chief blocked inside its training loop',
     'exits 1 after --stop_grace_secs, saying so',
     'tests/test_distributed.py::'
     'test_mismatched_worker_fails_naming_both_lists_chief_and_ps_stop'),
    ('SIGINT/SIGTERM to tasks waiting for their chief',
     'both stop within seconds',
     'tests/test_distributed.py::'
     'test_tasks_waiting_for_their_chief_stop_on_sigint_and_sigterm'),
    ('a worker killed (-9) mid-run, then SIGINT to the chief',
     'the chief saves and exits 0; the ps exits after --ps_idle_secs',
     'tests/test_distributed.py::'
     'test_async_workers_share_the_step_a_dead_worker_and_ctrl_c'),
    # --- Clear errors, not tracebacks.
    ('a dataset with zero images',
     'the converter fails unless asked; training refuses it by name',
     'tests/test_datasets_conversion.py::'
     'test_zero_images_fail_unless_allowed_and_factory_refuses'),
    ('the disk fills up during a save (a real 1 MB tmpfs)',
     'one line naming the directory and the space needed; partial files '
     'removed',
     'tests/test_checkpoint_saver.py::TestDiskFull::'
     'test_a_full_disk_is_one_line_and_leaves_no_partial_file'),
    ('partial .tempstate files of a killed save',
     'removed at start',
     'tests/test_resume.py::TestResume::'
     'test_leftovers_of_a_killed_save_are_removed'),
    ('the training script fills its disk while checkpointing',
     'one error line, no partial file left',
     'tests/test_train_ssd_network_resume.py::'
     'test_resume_survives_a_move_a_corrupt_checkpoint_and_leftovers'),
    ('converter output under a regular file',
     "the tool's error line",
     'tests/test_datasets_conversion.py::'
     'test_output_under_a_regular_file_is_a_conversion_error'),
    ('eval output under a regular file', "the tool's error line",
     'tests/test_eval_ssd_network.py::test_eval_dir_under_a_regular_file'),
    ('demo output under a regular file', "the tool's error line",
     'tests/test_demo_ssd.py::test_output_dir_under_a_regular_file'),
    ('export output under a regular file', "the tool's error line",
     'tests/test_export_ssd_network.py::test_bad_arguments'),
    ('unreadable and truncated images in a demo folder',
     'skipped with a named, counted warning (--strict stops)',
     'tests/test_demo_ssd.py::'
     'test_bad_files_in_a_folder_are_skipped_and_counted'),
    ('--skip_bad with unknown classes', 'skipped and named',
     'tests/test_datasets_conversion.py::'
     'test_skip_bad_skips_unknown_classes_and_names_them'),
    ('eval --wait_for_checkpoints --timeout, nothing evaluated',
     'says so, exits non-zero',
     'tests/test_eval_ssd_network.py::'
     'test_timeout_with_nothing_evaluated_is_an_error'),
    # --- Bad records and settings.
    ('corrupt, truncated, zero-byte, misnamed images; bad XML; bad '
     'boxes', 'an error naming the file, or skipped with --skip_bad',
     'tests/test_datasets_conversion.py::test_bad_input_errors_or_is_skipped'),
    ('CMYK JPEG', 'decoded to RGB',
     'tests/test_datasets_conversion.py::test_cmyk_jpeg_decodes_to_rgb'),
    ('boxes outside the image, zero-area boxes',
     'clipped; degenerate ones dropped',
     'tests/test_datasets_conversion.py::'
     'test_out_of_image_boxes_are_clipped_and_degenerate_dropped'),
    ('a non-finite loss or gradient',
     'stops before the weights change, last good state saved',
     'tests/test_training.py::test_non_finite_loss_stops_without_writing_nan'),
    ('eval of a checkpoint of another class count', 'a clear error',
     'tests/test_eval_ssd_network.py::test_class_count_mismatch'),
    # --- The default pretrained checkpoint.
    ('model.ckpt-999 and model.ckpt-1000 in ckpt/pre_trained',
     '-1000 (by step, not string order)',
     'tests/test_checkpoints.py::TestFindPretrainedCheckpoint::'
     'test_highest_step_wins_not_string_order'),
    ('two different checkpoints in ckpt/pre_trained',
     'error listing them, pointing at --checkpoint_path',
     'tests/test_checkpoints.py::TestFindPretrainedCheckpoint::'
     'test_two_different_checkpoints_are_an_error_listing_them'),
    ("TF-slim's vgg_16.ckpt",
     'scope vgg_16 and the SSD-only exclusions set, logged',
     'tests/test_warm_start.py::TestVgg16Detection::'
     'test_vgg16_gets_its_scope_and_the_ssd_only_exclusions'),
    ("vgg_16.ckpt the only one in ckpt/pre_trained, no flags",
     'the training library restores its 26 convolution variables',
     'tests/test_train_ssd_network_resume.py::'
     'test_a_vgg16_checkpoint_in_pretrained_dir_restores_its_conv_layers'),
    # --- TF_CONFIG.
    ('TF_CONFIG and cluster flags that disagree', 'a clear error',
     'tests/test_distributed.py::TestTfConfig::'
     'test_conflicting_flags_are_a_clear_error'),
    ('TF_CONFIG that is not a usable cluster',
     'an error naming TF_CONFIG',
     'tests/test_distributed.py::TestTfConfig::'
     'test_bad_tf_config_names_tf_config'),
    ('1 ps + 2 workers configured by TF_CONFIG alone',
     'trains on loopback; every task exits',
     'tests/test_distributed.py::'
     'test_tf_config_alone_runs_sync_replicas_and_all_tasks_exit'),
    # --- A refused start leaves the run as it was.
    ('a resume refused (another class count)',
     'ssd_params.json and training_config.txt byte-identical',
     'tests/test_train_ssd_network_resume.py::'
     'test_a_refused_resume_leaves_the_run_metadata_untouched'),
    ('a non-checkpoint file as --checkpoint_path',
     'no train_dir created, nothing written',
     'tests/test_train_ssd_network_resume.py::'
     'test_a_file_that_is_no_checkpoint_is_one_line_and_writes_nothing'),
    # --- The checkpoint says how to decode it.
    ('a checkpoint copied away from its ssd_params.json',
     'decoded with its own anchors, read from the checkpoint',
     'tests/test_train_ssd_network_resume.py::'
     'test_a_checkpoint_copied_alone_decodes_with_its_own_anchors'),
    ('resume with other --anchor_sizes',
     'one line naming --anchor_sizes and both values; files untouched',
     'tests/test_train_ssd_network_resume.py::'
     'test_resume_with_other_anchor_sizes_is_refused_in_one_line'),
    ('ssd_params.json disagreeing with the checkpoint',
     "the checkpoint's parameters win, with a warning naming both",
     'tests/test_train_ssd_network_resume.py::'
     'test_the_checkpoint_parameters_win_over_a_disagreeing_json'),
    ('resume from a checkpoint saved before it held its parameters',
     "restores; the parameters take this run's values",
     'tests/test_train_ssd_network_resume.py::'
     'test_an_older_checkpoint_without_parameters_resumes'),
    ('vgg_16.ckpt (no SSD parameters) as the pretrained checkpoint',
     "restores; the parameters variable holds this run's",
     'tests/test_train_ssd_network_resume.py::'
     'test_a_vgg16_checkpoint_in_pretrained_dir_restores_its_conv_layers'),
    # --- One line, not a traceback.
    ('a text file or a JPEG as --checkpoint_path',
     'one line: "<path> is not a TensorFlow checkpoint"',
     'tests/test_train_ssd_network_resume.py::'
     'test_a_file_that_is_no_checkpoint_is_one_line_and_writes_nothing'),
    ('the same file given to evaluation, the demo or export',
     'one line: "<path> is not a TensorFlow checkpoint"',
     'tests/test_train_ssd_network_resume.py::'
     'test_the_detector_says_a_file_is_not_a_checkpoint'),
    ('a --train_dir that is a regular file, or read-only',
     'one line naming the path',
     'tests/test_train_ssd_network_resume.py::test_an_unusable_train_dir_is_one_line'),
    ('a truncated TFRecord shard during training',
     'one line naming the shard and where it is cut',
     'tests/test_train_ssd_network_resume.py::test_a_truncated_shard_is_named_in_one_line'),
    ('a refused resume',
     'the error comes before the configuration dump, as the last line',
     'tests/test_train_ssd_network_resume.py::'
     'test_a_refused_resume_leaves_the_run_metadata_untouched'),
    # --- Runs that would overwrite each other; flags and limits checked.
    ('two trainings on one --train_dir',
     'the second stops with one line naming the holder (pid, host), '
     'writing nothing',
     'tests/test_train_ssd_network.py::'
     'test_a_train_dir_in_use_is_refused_naming_the_holder'),
    ('two conversions to one --output_dir/--output_name',
     'the second stops with one line naming the holder; the first\'s '
     'staging folder stays',
     'tests/test_datasets_conversion.py::'
     'test_a_conversion_to_a_name_in_use_is_refused_naming_the_holder'),
    ('a lock file left by a killed run', 'not held: the next run '
     'takes it', 'tests/test_run_lock.py::'
     'test_the_lock_of_a_killed_process_is_free'),
    ('--learning_rate -1, --batch_size 0, --num_clones 0, negative '
     'steps, weight decay or warm-up',
     'one line naming the flag and its bound, before anything is built',
     'tests/test_train_ssd_network.py::'
     'test_out_of_bounds_numeric_flags_fail_naming_the_flag'),
    ('--max_number_of_steps 0', 'trains nothing, says so, exits 0',
     'tests/test_train_ssd_network.py::test_max_number_of_steps_0_trains_nothing'),
    ('a finished run started again',
     'trains no further step, says so, exits 0',
     'tests/test_train_ssd_network.py::test_a_finished_run_trains_no_further_step'),
    ('a cluster resumed at its step limit',
     'no worker runs a step',
     'tests/test_step_runner.py::test_a_step_runner_at_its_step_limit_runs_no_step'),
    ('a demo on images none of which can be read',
     'one error line, exit 1',
     'tests/test_demo_ssd.py::test_a_demo_that_could_read_no_image_fails'),
    ('a --train_dir with a space in the next-steps commands',
     'shell-quoted: they copy-paste',
     'tests/test_training.py::test_next_steps_commands_survive_spaces_in_paths'),
    ('the disk fills up during a conversion (a real 1 MB tmpfs)',
     'one line naming the output folder, the space needed and free; the '
     'previous dataset untouched, partial files removed',
     'tests/test_datasets_conversion.py::'
     'test_a_full_disk_is_one_line_and_keeps_the_previous_dataset'),
    ('a ps and worker 1 started, the chief never; the ps gives up '
     'first', 'both end with one line naming the chief\'s host and '
     '--cluster_timeout_secs, no gRPC traceback',
     'tests/test_distributed.py::'
     'test_tasks_waiting_for_a_chief_that_never_starts_name_it'),
    # --- Files as labelling tools and editors write them.
    ('a UTF-8 BOM, CRLF, trailing spaces and blank lines in the '
     'class list, an ImageSets list or labels.txt; an XML declaration, '
     'float coordinates, " cat " as <name>',
     'read as meant: the first class still matches, boxes keep their '
     'fractions',
     'tests/test_datasets_conversion.py::'
     'test_files_as_labelling_tools_and_editors_write_them'),
    ('<filename> IMG_1.jpg for the file IMG_1.JPG; no <filename>',
     'the file found in its own case; the annotation\'s name used',
     'tests/test_datasets_conversion.py::'
     'test_files_as_labelling_tools_and_editors_write_them'),
    ('a COCO JSON with a UTF-8 BOM, padded category names',
     'read; the names match the --labels file',
     'tests/test_datasets_coco.py::'
     'test_a_bom_and_padded_category_names_are_read'),
]


def _defined_tests(path):
  """{'test_x', 'TestY::test_z'} of a test file."""
  with open(path) as source:
    tree = ast.parse(source.read(), path)
  names = set()
  for node in tree.body:
    if isinstance(node, ast.FunctionDef):
      names.add(node.name)
    elif isinstance(node, ast.ClassDef):
      for item in node.body:
        if isinstance(item, ast.FunctionDef):
          names.add('%s::%s' % (node.name, item.name))
  return names


def test_every_case_has_its_test():
  missing = []
  defined = {}
  for fault, _, test_id in MATRIX:
    path, _, name = test_id.partition('::')
    full_path = os.path.join(PROJECT_ROOT, path)
    if path not in defined:
      defined[path] = (_defined_tests(full_path)
                       if os.path.exists(full_path) else set())
    if name not in defined[path]:
      missing.append('%s: %s' % (fault, test_id))
  assert not missing, (
      'These cases point at tests that do not exist (renamed? update MATRIX '
      'in tests/test_reliability.py):\n  ' + '\n  '.join(missing))
