"""The bad-input and fault matrix, in one place, and the end-to-end runs of it.

`MATRIX` lists each kind of bad input or fault a user can meet, what the
project does about it, and the test that reproduces it (a real file, a real
process or a real signal).  `test_every_case_has_its_test` keeps the list
honest: a test renamed or deleted fails here, naming the case.

The tests further down run train_ssd_network.py end to end on the cases the
library tests (tests/test_checkpoints.py, test_resume.py) cannot prove alone: that the
script resumes through those checks, and says so in one line.
"""
import ast
import glob
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from datasets import dataset_flags
from nets import nets_factory
from nets import ssd_vgg_300
from utils.checkpointing import checkpoints
from utils.checkpointing import checkpoint_saver
from utils.inference import detection
from utils.common import run_directory
from utils.common import run_lock
from utils.trainer import config as config_lib
from utils.trainer import graph as graph_lib
from utils.trainer import initialisation
from utils.trainer import input_pipeline
from utils.trainer import train_tools

from conftest import PROJECT_ROOT

v1 = tf.compat.v1
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
     'tests/test_reliability.py::'
     'test_resume_survives_a_move_a_corrupt_checkpoint_and_leftovers'),
    # --- Resume checks what it finds.
    ('train_dir checkpoint of another class count',
     'error naming each variable, both shapes and the fix',
     'tests/test_resume.py::TestResume::'
     'test_another_class_count_names_the_variables_and_the_fix'),
    ('the same through the training script',
     'one error before the first step',
     'tests/test_reliability.py::'
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
     'tests/test_reliability.py::'
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
     'tests/test_reliability.py::'
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
     'tests/test_reliability.py::'
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
     'tests/test_reliability.py::'
     'test_a_refused_resume_leaves_the_run_metadata_untouched'),
    ('a non-checkpoint file as --checkpoint_path',
     'no train_dir created, nothing written',
     'tests/test_reliability.py::'
     'test_a_file_that_is_no_checkpoint_is_one_line_and_writes_nothing'),
    # --- The checkpoint says how to decode it.
    ('a checkpoint copied away from its ssd_params.json',
     'decoded with its own anchors, read from the checkpoint',
     'tests/test_reliability.py::'
     'test_a_checkpoint_copied_alone_decodes_with_its_own_anchors'),
    ('resume with other --anchor_sizes',
     'one line naming --anchor_sizes and both values; files untouched',
     'tests/test_reliability.py::'
     'test_resume_with_other_anchor_sizes_is_refused_in_one_line'),
    ('ssd_params.json disagreeing with the checkpoint',
     "the checkpoint's parameters win, with a warning naming both",
     'tests/test_reliability.py::'
     'test_the_checkpoint_parameters_win_over_a_disagreeing_json'),
    ('resume from a checkpoint saved before it held its parameters',
     "restores; the parameters take this run's values",
     'tests/test_reliability.py::'
     'test_an_older_checkpoint_without_parameters_resumes'),
    ('vgg_16.ckpt (no SSD parameters) as the pretrained checkpoint',
     "restores; the parameters variable holds this run's",
     'tests/test_reliability.py::'
     'test_a_vgg16_checkpoint_in_pretrained_dir_restores_its_conv_layers'),
    # --- One line, not a traceback.
    ('a text file or a JPEG as --checkpoint_path',
     'one line: "<path> is not a TensorFlow checkpoint"',
     'tests/test_reliability.py::'
     'test_a_file_that_is_no_checkpoint_is_one_line_and_writes_nothing'),
    ('the same file given to evaluation, the demo or export',
     'one line: "<path> is not a TensorFlow checkpoint"',
     'tests/test_reliability.py::'
     'test_the_detector_says_a_file_is_not_a_checkpoint'),
    ('a --train_dir that is a regular file, or read-only',
     'one line naming the path',
     'tests/test_reliability.py::test_an_unusable_train_dir_is_one_line'),
    ('a truncated TFRecord shard during training',
     'one line naming the shard and where it is cut',
     'tests/test_reliability.py::test_a_truncated_shard_is_named_in_one_line'),
    ('a refused resume',
     'the error comes before the configuration dump, as the last line',
     'tests/test_reliability.py::'
     'test_a_refused_resume_leaves_the_run_metadata_untouched'),
    # --- Runs that would overwrite each other; flags and limits checked.
    ('two trainings on one --train_dir',
     'the second stops with one line naming the holder (pid, host), '
     'writing nothing',
     'tests/test_reliability.py::'
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
     'tests/test_reliability.py::'
     'test_out_of_bounds_numeric_flags_fail_naming_the_flag'),
    ('--max_number_of_steps 0', 'trains nothing, says so, exits 0',
     'tests/test_reliability.py::test_max_number_of_steps_0_trains_nothing'),
    ('a finished run started again',
     'trains no further step, says so, exits 0',
     'tests/test_reliability.py::test_a_finished_run_trains_no_further_step'),
    ('a cluster resumed at its step limit',
     'no worker runs a step',
     'tests/test_training.py::test_a_step_runner_at_its_step_limit_runs_no_step'),
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


# --------------------------------------------------------------------------
# The training script on a run directory that was moved, holds a corrupt
# newest checkpoint and a killed save's leftovers, on a disk too small for
# one more checkpoint; then the same directory with another class count.

# Stochastic gradient descent and no batch norm: no optimizer slots, the
# smallest checkpoint.
_TRAIN_FLAGS = ['--batch_size=1', '--optimizer=sgd', '--nobatch_norm',
                '--num_readers=1',
                '--num_preprocessing_threads=1', '--log_every_n_steps=1',
                '--save_summaries_secs=600', '--precision=float32',
                '--seed=1']


def run_script(train_dir, dataset_dir, *flags):
  result = subprocess.run(
      [sys.executable, SCRIPT, '--train_dir=%s' % train_dir,
       '--dataset_dir=%s' % dataset_dir] + _TRAIN_FLAGS + list(flags),
      capture_output=True, text=True, timeout=RUN_TIMEOUT_SECS,
      cwd=PROJECT_ROOT)
  return result.returncode, result.stdout + result.stderr


def small_config(dataset_dir, num_classes=None):
  """The TrainingConfig of _TRAIN_FLAGS (the graph the script builds)."""
  config = config_lib.TrainingConfig(seed=1)
  config.data = config_lib.DataOptions(
      dataset=dataset_flags.DatasetConfig(dataset_dir=dataset_dir),
      batch_size=1, num_readers=1, num_preprocessing_threads=1)
  config.model = config_lib.ModelOptions(num_classes=num_classes)
  config.optimisation = config_lib.OptimisationOptions(optimizer='sgd')
  return config


def build_graph(config):
  """Builds the training graph of `config` in the default graph."""
  dataset = dataset_flags.load_dataset(config.data.dataset)
  ssd_net = graph_lib.build_ssd_net(config.model, dataset.num_classes)
  deploy_config = graph_lib.make_deploy_config(config.deployment)
  tensors = graph_lib.build_training_graph(
      config, ssd_net, deploy_config,
      input_pipeline.tfrecord_input_fn(config, dataset), dataset.num_samples)
  return tensors, deploy_config


@pytest.fixture(scope='module')
def step_1_run(tmp_path_factory, sample_dataset_dir):
  """A run directory as one step leaves it: the script's graph, saved at
  step 1 (made once; tests work on copies)."""
  train_dir = str(tmp_path_factory.mktemp('step_1_run'))
  with tf.Graph().as_default():
    tensors, deploy_config = build_graph(small_config(sample_dataset_dir))
    with v1.Session(config=train_tools.session_config(deploy_config)) as sess:
      sess.run(v1.global_variables_initializer())
      sess.run(tensors.global_step.assign(1))
      checkpoint_saver.CheckpointSaver().save(
          sess, os.path.join(train_dir, 'model.ckpt'), global_step=1)
  return train_dir


def _size(paths):
  return sum(os.path.getsize(path) for path in paths)


@pytest.mark.slow
def test_resume_survives_a_move_a_corrupt_checkpoint_and_leftovers(
    tmp_path, sample_dataset_dir, mount_tmpfs, step_1_run):
  shutil.copytree(step_1_run, str(tmp_path / 'run1'))
  first = tf.train.latest_checkpoint(str(tmp_path / 'run1'))
  checkpoint_bytes = _size(
      os.path.join(str(tmp_path / 'run1'), name)
      for name in os.listdir(str(tmp_path / 'run1')))
  # Room for the moved checkpoint, a half-size corrupt one, and 0.6 of one
  # more: the leftovers (half a checkpoint) must go for the run to start,
  # and its first checkpoint (the training loop saves one at start) cannot
  # fit.
  disk = mount_tmpfs(int(2.1 * checkpoint_bytes) + (8 << 20))
  run2 = disk / 'run2'
  subprocess.run(['mv', str(tmp_path / 'run1'), str(run2)], check=True,
                 timeout=60)
  data = '.data-00000-of-00001'
  moved = str(run2 / os.path.basename(first))
  corrupt = str(run2 / 'model.ckpt-7')
  shutil.copyfile(moved + '.index', corrupt + '.index')
  with open(moved + data, 'rb') as source, open(corrupt + data, 'wb') as out:
    out.write(source.read(os.path.getsize(moved + data) // 2))
  leftover = str(run2 / ('model.ckpt-8' + data + '.tempstate123'))
  with open(leftover, 'wb') as out:
    out.write(b'\0' * (checkpoint_bytes // 2))

  code, log = run_script(run2, sample_dataset_dir,
                         '--max_number_of_steps=2')
  assert code == 1, log
  assert 'Removed %s, left by an interrupted checkpoint save' % leftover in log
  assert '%s%s is corrupt or truncated' % (corrupt, data) in log
  assert ('Resuming from %s, the newest readable checkpoint' % moved) in log
  assert 'Starting Session' in log
  last_line = log.strip().split('\n')[-1]
  disk_full = ('No space left on device in %s while saving a checkpoint: it '
               'needs about' % run2)
  assert disk_full in last_line, log[-3000:]
  # The only stack traces: TensorFlow's report of the same error, raised in
  # its checkpoint thread (which saves at start), at INFO level.
  assert log.count('Traceback') == log.count(
      'Error reported to Coordinator: ' + disk_full), log[-5000:]
  assert not [name for name in os.listdir(str(run2)) if 'tempstate' in name]
  assert os.path.exists(corrupt + '.index' + checkpoints.CORRUPT_SUFFIX)


def test_resume_with_another_class_count_fails_before_training(
    tmp_path, sample_dataset_dir, step_1_run):
  """The training library, as the script calls it, on a checkpoint of
  another class count."""
  train_dir = str(tmp_path / 'run')
  shutil.copytree(step_1_run, train_dir)
  first = tf.train.latest_checkpoint(train_dir)
  num_classes = tf.train.load_checkpoint(first).get_variable_to_shape_map()[
      'ssd_300_vgg/block11_box/conv_cls/biases'][0] // 4 + 1
  config = small_config(sample_dataset_dir, num_classes=num_classes)
  with tf.Graph().as_default():
    build_graph(config)
    with pytest.raises(checkpoints.CheckpointError) as error:
      initialisation.make_init_fn(train_dir, config.model)
  message = str(error.value)
  assert message.startswith(
      'Cannot resume from %s: it was written by another model' % first)
  assert 'ssd_300_vgg/block4_box/conv_cls/weights: model' in message
  assert ('--checkpoint_path=%s --checkpoint_exclude_scopes=ssd_300_vgg/'
          'block4_box' % first) in message


def test_a_vgg16_checkpoint_in_pretrained_dir_restores_its_conv_layers(
    tmp_path, sample_dataset_dir, caplog):
  """TF-slim's vgg_16.ckpt as the only pretrained checkpoint: the training
  library sets its scope and the SSD-only exclusions, says so, and loads
  VGG16's 26 convolution variables."""
  config = small_config(sample_dataset_dir)
  pretrained = tmp_path / 'pre_trained'
  with tf.Graph().as_default():
    _, deploy_config = build_graph(config)
    conv_variables = [
        v for v in v1.global_variables()
        if v.op.name.split('/')[1:2] and
        v.op.name.split('/')[1] in ssd_vgg_300.VGG_SCOPES]
    rng = np.random.RandomState(0)
    vgg_values = {
        v.op.name.replace('ssd_300_vgg/', 'vgg_16/', 1):
        rng.uniform(-1, 1, v.shape.as_list()).astype(np.float32)
        for v in conv_variables}
    vgg_values['vgg_16/fc8/biases'] = np.zeros([1000], np.float32)
    with tf.Graph().as_default():
      saved = [v1.get_variable(name, initializer=value)
               for name, value in vgg_values.items()]
      with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        v1.train.Saver(saved).save(sess, str(pretrained / 'vgg_16.ckpt'))
    caplog.set_level('INFO')
    model = config_lib.ModelOptions(checkpoint_path=str(pretrained))
    init_fn = initialisation.make_init_fn(str(tmp_path / 'run'), model)
    with v1.Session(config=train_tools.session_config(deploy_config)) as sess:
      sess.run(v1.global_variables_initializer())
      init_fn(sess)
      restored, params_value = sess.run(
          [conv_variables[0], _ssd_params_variable()])
  assert len(conv_variables) == 26
  assert 'is an ImageNet VGG16 checkpoint' in caplog.text
  assert ('--checkpoint_exclude_scopes=ssd_300_vgg/conv6,ssd_300_vgg/conv7'
          in caplog.text)
  assert 'Initialising 26 variables from' in caplog.text
  assert _ssd_params_value(params_value) == config_params(config)
  np.testing.assert_array_equal(
      restored,
      vgg_values[conv_variables[0].op.name.replace('ssd_300_vgg/', 'vgg_16/',
                                                    1)])


def _ssd_params_variable():
  """The SSD parameters variable of the default graph."""
  return v1.get_collection(nets_factory.SSD_PARAMS_COLLECTION)[0]


def _ssd_params_value(value):
  """(model_name, SSDParams) of the variable's value."""
  return nets_factory.parse_ssd_params(value.decode('utf-8'), 'the variable')


def _run_ssd_net(config):
  """The SSDNet the training script builds for `config`."""
  dataset = dataset_flags.load_dataset(config.data.dataset)
  return graph_lib.build_ssd_net(config.model, dataset.num_classes)


def config_params(config):
  """(model_name, SSDParams) of the run of `config`."""
  return config.model.model_name, _run_ssd_net(config).params


# --------------------------------------------------------------------------
# Refused starts: checks before the first write, one line each.

_METADATA_FILES = (run_directory.SSD_PARAMS_FILE_NAME,
                   run_directory.TRAINING_CONFIG_FILE_NAME)


def _metadata_bytes(train_dir):
  """{file name: content} of the run's metadata files."""
  contents = {}
  for name in _METADATA_FILES:
    with open(os.path.join(train_dir, name), 'rb') as source:
      contents[name] = source.read()
  return contents


def _last_line(log):
  return log.strip().split('\n')[-1]


@pytest.fixture(scope='module')
def voc_anchors_run(tmp_path_factory, sample_dataset_dir):
  """A run directory the script trained for one step with --anchor_sizes
  voc (made once; tests work on copies)."""
  train_dir = str(tmp_path_factory.mktemp('voc_anchors_run') / 'run')
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--max_number_of_steps=1', '--anchor_sizes=voc')
  assert code == 0, log[-3000:]
  return train_dir


def _copy_run(run_dir, tmp_path):
  train_dir = str(tmp_path / 'run')
  shutil.copytree(run_dir, train_dir)
  return train_dir


@pytest.mark.slow
def test_a_refused_resume_leaves_the_run_metadata_untouched(
    tmp_path, sample_dataset_dir, voc_anchors_run):
  train_dir = _copy_run(voc_anchors_run, tmp_path)
  before = _metadata_bytes(train_dir)
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--max_number_of_steps=2', '--anchor_sizes=voc',
                         '--num_classes=2')
  assert code == 1, log[-3000:]
  assert ('Cannot resume from %s: it was written by another model' %
          tf.train.latest_checkpoint(train_dir)) in log
  # The error ends the log (its last line is the fix); no settings dump.
  assert '--checkpoint_exclude_scopes=' in _last_line(log)
  assert 'Training configuration' not in log
  assert _metadata_bytes(train_dir) == before
  _, ssd_net = detection.load_network(train_dir)
  assert ssd_net.params.num_classes == dataset_flags.load_dataset(
      small_config(sample_dataset_dir).data.dataset).num_classes


def _text_file(tmp_path, unused_dataset_dir):
  path = tmp_path / 'notes.txt'
  path.write_text('not a checkpoint\n')
  return str(path)


def _jpeg_file(tmp_path, dataset_dir):
  path = str(tmp_path / 'photo.jpg')
  shutil.copyfile(sorted(glob.glob(os.path.join(
      dataset_dir, 'voc', 'JPEGImages', '*.jpg')))[0], path)
  return path


@pytest.mark.slow
@pytest.mark.parametrize('make_file', [_text_file, _jpeg_file])
def test_a_file_that_is_no_checkpoint_is_one_line_and_writes_nothing(
    tmp_path, sample_dataset_dir, make_file):
  path = make_file(tmp_path, sample_dataset_dir)
  train_dir = str(tmp_path / 'run')
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--checkpoint_path=%s' % path,
                         '--max_number_of_steps=1')
  assert code == 1, log[-3000:]
  assert '%s is not a TensorFlow checkpoint' % path in _last_line(log)
  assert 'Traceback' not in log
  assert not os.path.exists(train_dir)


@pytest.mark.parametrize('make_file', [_text_file, _jpeg_file])
def test_the_detector_says_a_file_is_not_a_checkpoint(
    tmp_path, sample_dataset_dir, make_file):
  path = make_file(tmp_path, sample_dataset_dir)
  with pytest.raises(checkpoints.CheckpointError) as error:
    detection.load_network(path)
  assert str(error.value).startswith(
      '%s is not a TensorFlow checkpoint (' % path)
  assert '\n' not in str(error.value)


def _read_only_folder(tmp_path, mount_tmpfs):
  """(a folder this process cannot write into, why)."""
  if os.geteuid() != 0:
    folder = tmp_path / 'read_only'
    folder.mkdir()
    folder.chmod(0o555)
    return folder, 'permission denied'
  folder = mount_tmpfs(1 << 20)
  subprocess.run(['mount', '-o', 'remount,ro', str(folder)], check=True,
                 timeout=30)
  return folder, 'a read-only file system'


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['regular file', 'read-only'])
def test_an_unusable_train_dir_is_one_line(tmp_path, sample_dataset_dir,
                                           mount_tmpfs, kind):
  if kind == 'regular file':
    train_dir = tmp_path / 'run'
    train_dir.write_text('')
    expected = '--train_dir %s: %s is a file, not a folder.' % (train_dir,
                                                                train_dir)
  else:
    folder, why = _read_only_folder(tmp_path, mount_tmpfs)
    train_dir = folder / 'run'
    expected = '--train_dir %s: cannot write into %s (%s).' % (
        train_dir, folder, why)
  code, log = run_script(str(train_dir), sample_dataset_dir,
                         '--max_number_of_steps=1')
  assert code == 1, log[-3000:]
  assert _last_line(log).endswith(expected), log[-3000:]
  assert 'Traceback' not in log


@pytest.mark.slow
def test_a_truncated_shard_is_named_in_one_line(tmp_path, sample_dataset_dir):
  dataset_dir = str(tmp_path / 'data')
  shutil.copytree(sample_dataset_dir, dataset_dir,
                  ignore=shutil.ignore_patterns('voc'))
  shard = dataset_flags.load_dataset(
      small_config(dataset_dir).data.dataset).files[0]
  with open(shard, 'r+b') as data:
    data.truncate(os.path.getsize(shard) - 500)
  code, log = run_script(str(tmp_path / 'run'), dataset_dir,
                         '--max_number_of_steps=40')
  assert code == 1, log[-3000:]
  assert ('Training data %s is damaged: truncated: the record at byte' %
          shard) in _last_line(log), log[-3000:]
  assert 'Traceback' not in log


# --------------------------------------------------------------------------
# The SSD parameters inside the checkpoint.


def _copy_checkpoint_alone(prefix, directory):
  """Copies model.ckpt-N.* (nothing else) into `directory`; the copy's
  prefix."""
  os.makedirs(directory)
  for path in glob.glob(prefix + '.*'):
    shutil.copy(path, directory)
  return os.path.join(directory, os.path.basename(prefix))


def _assert_same_anchors(ssd_net, other):
  for layer, other_layer in zip(ssd_net.anchors(), other.anchors()):
    for array, other_array in zip(layer, other_layer):
      np.testing.assert_array_equal(array, other_array)


@pytest.mark.slow
def test_a_checkpoint_copied_alone_decodes_with_its_own_anchors(
    tmp_path, voc_anchors_run):
  copy = _copy_checkpoint_alone(tf.train.latest_checkpoint(voc_anchors_run),
                                str(tmp_path / 'copy'))
  assert run_directory.SSD_PARAMS_FILE_NAME not in os.listdir(str(tmp_path / 'copy'))
  _, ssd_net = detection.load_network(copy)
  _assert_same_anchors(ssd_net, nets_factory.build_ssd_net(
      'ssd_300_vgg', anchor_sizes='voc'))
  default_heights = nets_factory.build_ssd_net('ssd_300_vgg').anchors()[0][2]
  assert not np.array_equal(ssd_net.anchors()[0][2], default_heights)


@pytest.mark.slow
def test_resume_with_other_anchor_sizes_is_refused_in_one_line(
    tmp_path, sample_dataset_dir, voc_anchors_run):
  train_dir = _copy_run(voc_anchors_run, tmp_path)
  before = _metadata_bytes(train_dir)
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--max_number_of_steps=2')
  assert code == 1, log[-3000:]
  voc = ssd_vgg_300.SSDNet.make_params(anchor_sizes='voc').anchor_sizes
  default = ssd_vgg_300.SSDNet.default_params.anchor_sizes
  last_line = _last_line(log)
  assert 'Cannot resume from %s: it was trained with --anchor_sizes=%s' % (
      tf.train.latest_checkpoint(train_dir),
      ssd_vgg_300.anchor_sizes_text(voc)) in last_line, log[-3000:]
  assert ('this run asks for --anchor_sizes=%s' %
          ssd_vgg_300.anchor_sizes_text(default)) in last_line
  assert 'Training configuration' not in log
  assert _metadata_bytes(train_dir) == before


@pytest.mark.slow
def test_the_checkpoint_parameters_win_over_a_disagreeing_json(
    tmp_path, voc_anchors_run, caplog):
  copy = _copy_checkpoint_alone(tf.train.latest_checkpoint(voc_anchors_run),
                                str(tmp_path / 'copy'))
  voc_net = nets_factory.build_ssd_net('ssd_300_vgg', anchor_sizes='voc')
  json_path = nets_factory.write_ssd_params(
      str(tmp_path / 'copy'), 'ssd_300_vgg',
      ssd_vgg_300.SSDNet.default_params._replace(
          num_classes=voc_net.params.num_classes))
  _, ssd_net = detection.load_network(copy)
  _assert_same_anchors(ssd_net, voc_net)
  assert ('%s differs from the SSD parameters inside checkpoint %s' % (
      json_path, copy)) in caplog.text


def _save_without_ssd_params(prefix, save_path):
  """Saves `prefix`'s variables but the SSD parameters at `save_path`, as
  checkpoints were saved before they held them; returns the new prefix."""
  reader = tf.train.load_checkpoint(prefix)
  shapes = reader.get_variable_to_shape_map()
  dtypes = reader.get_variable_to_dtype_map()
  names = [name for name in shapes
           if not name.endswith(nets_factory.SSD_PARAMS_VARIABLE)]
  with tf.Graph().as_default():
    variables = {name: v1.get_variable('v%d' % i, shapes[name], dtypes[name])
                 for i, name in enumerate(names)}
    saver = v1.train.Saver(variables)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      for name, variable in variables.items():
        variable.load(reader.get_tensor(name), sess)
      return saver.save(sess, save_path, global_step=1)


def test_an_older_checkpoint_without_parameters_resumes(
    tmp_path, sample_dataset_dir, step_1_run):
  old = _save_without_ssd_params(tf.train.latest_checkpoint(step_1_run),
                                 str(tmp_path / 'run' / 'model.ckpt'))
  config = small_config(sample_dataset_dir)
  with tf.Graph().as_default():
    tensors, deploy_config = build_graph(config)
    assert initialisation.make_init_fn(str(tmp_path / 'run'), config.model,
                                       _run_ssd_net(config)) is None
    saver = checkpoint_saver.CheckpointSaver()
    with v1.Session(config=train_tools.session_config(deploy_config)) as sess:
      saver.restore(sess, old)
      step, params_value = sess.run([tensors.global_step,
                                     _ssd_params_variable()])
  assert step == 1
  assert _ssd_params_value(params_value) == config_params(config)
# --------------------------------------------------------------------------
# What the script refuses, or has nothing to do for, before it builds its
# graph: nothing is left in train_dir.


@pytest.mark.slow
def test_a_train_dir_in_use_is_refused_naming_the_holder(
    tmp_path, sample_dataset_dir):
  train_dir = tmp_path / 'run'
  train_dir.mkdir()
  lock_path = str(train_dir / run_directory.LOCK_FILE_NAME)
  with run_lock.hold(lock_path, 'the test'):
    code, log = run_script(train_dir, sample_dataset_dir,
                           '--max_number_of_steps=1')
  assert code == 1, log
  last_line = log.strip().split('\n')[-1]
  assert ('--train_dir %s is in use by another run: pid %d on host %s '
          '(lock file %s)' % (train_dir, os.getpid(), socket.gethostname(),
                              lock_path)) in last_line, log[-3000:]
  assert 'Traceback' not in log
  assert os.listdir(str(train_dir)) == []


@pytest.mark.slow
def test_out_of_bounds_numeric_flags_fail_naming_the_flag(
    tmp_path, sample_dataset_dir):
  train_dir = tmp_path / 'run'
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--learning_rate=-1')
  assert code == 1, log
  assert log.strip().split('\n')[-1].endswith(
      '] --learning_rate must be >= 0, got -1'), log[-3000:]
  assert not train_dir.exists()
  # The other bounds, in one process: each bad value's message.
  checks = subprocess.run(
      [sys.executable, '-c', _CHECK_BOUNDS] + list(_BAD_FLAGS),
      capture_output=True, text=True, timeout=RUN_TIMEOUT_SECS,
      cwd=PROJECT_ROOT)
  assert checks.returncode == 0, checks.stderr[-3000:]
  assert checks.stdout.splitlines() == list(_BAD_FLAGS.values())


# Parses each flag alone and prints what check_flag_bounds says of it.
_CHECK_BOUNDS = '''
import sys
from absl import flags
import train_ssd_network
train_ssd_network.define_flags()
for flag in sys.argv[1:]:
  flags.FLAGS.unparse_flags()
  flags.FLAGS(['train_ssd_network.py', flag])
  try:
    train_ssd_network.check_flag_bounds()
    print('accepted: ' + flag)
  except ValueError as error:
    print(error)
'''
_BAD_FLAGS = {
    '--learning_rate=-1': '--learning_rate must be >= 0, got -1',
    '--batch_size=0': '--batch_size must be >= 1, got 0',
    '--batch_size=-2': '--batch_size must be >= 1, got -2',
    '--num_clones=0': '--num_clones must be >= 1, got 0',
    '--max_number_of_steps=-1': '--max_number_of_steps must be >= 0, got -1',
    '--weight_decay=-0.1': '--weight_decay must be >= 0, got -0.1',
    '--warmup_steps=-5': '--warmup_steps must be >= 0, got -5',
    '--dropout_keep_prob=1.5': '--dropout_keep_prob must be <= 1, got 1.5',
    '--max_number_of_steps=0': 'accepted: --max_number_of_steps=0',
}


def _files(directory):
  return sorted(os.listdir(str(directory)))


@pytest.mark.slow
def test_max_number_of_steps_0_trains_nothing(tmp_path, sample_dataset_dir):
  train_dir = tmp_path / 'run'
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--max_number_of_steps=0')
  assert code == 0, log
  assert ('%s is already at step 0 >= --max_number_of_steps 0: nothing to '
          'train.' % train_dir) in log
  assert 'Starting Session' not in log
  assert _files(train_dir) == []


@pytest.mark.slow
def test_a_finished_run_trains_no_further_step(tmp_path, sample_dataset_dir,
                                               step_1_run):
  train_dir = str(tmp_path / 'run')
  shutil.copytree(step_1_run, train_dir)
  before = _files(train_dir)
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--max_number_of_steps=1')
  assert code == 0, log
  assert ('%s is already at step 1 >= --max_number_of_steps 1: nothing to '
          'train.' % train_dir) in log
  assert 'Starting Session' not in log and 'Next steps' not in log
  assert _files(train_dir) == before
  assert checkpoints.saved_global_step(train_dir) == 1
