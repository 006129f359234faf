"""Tests of training: the library (utils/trainer/) in-process, and a few
end-to-end runs of train_ssd_network.py as a user runs it.

Everything runs on the small sample dataset at batch size 1 in float32
(bfloat16 is no faster on the AVX2-only CPU kind).  The trained checkpoint
other tests need comes from one session-scoped fixture, `trained_checkpoint`.
"""
import glob
import inspect
import os
import re
import shlex
import signal
import subprocess
import sys
import threading

from google.protobuf import text_format
import numpy as np
import pytest
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from datasets import dataset_flags
from nets import nets_factory
from nets import ssd_vgg_300
from utils.checkpointing import checkpoints
from utils.common import run_directory
from utils.trainer import config as config_lib
from utils.trainer import graph as graph_lib
from utils.trainer import initialisation
from utils.trainer import input_pipeline
from utils.trainer import loop
from utils.trainer import run_description
from utils.trainer import step_runner
from utils.trainer import train_tools

from conftest import PROJECT_ROOT

v1 = tf.compat.v1
SCRIPT = os.path.join(PROJECT_ROOT, 'train_ssd_network.py')


# Without batch norm (the from-scratch default; its tests are in
# test_batch_norm.py): the smaller graph, the faster runs.
_SMALL_RUN_FLAGS = ['--batch_size', '1', '--log_every_n_steps', '1',
                    '--num_readers', '1', '--seed', '1', '--nobatch_norm']


def run_script(train_dir, dataset_dir, *extra_flags, timeout=300):
  """Runs the training script; returns (return code, combined output)."""
  command = [sys.executable, SCRIPT, '--train_dir', str(train_dir),
             '--dataset_dir', dataset_dir, '--save_summaries_secs', '1',
             '--num_preprocessing_threads', '2'] + _SMALL_RUN_FLAGS + list(
                 extra_flags)
  result = subprocess.run(command, capture_output=True, text=True,
                          timeout=timeout, cwd=PROJECT_ROOT)
  return result.returncode, result.stdout + result.stderr


def run_until_step_then_signal(train_dir, dataset_dir, step, signum,
                               *extra_flags, timeout=300, env=None):
  """Runs the training script with no step limit (environment variables
  `env` added), sends `signum` once the log shows `step`; returns (return
  code, combined output)."""
  command = [sys.executable, SCRIPT, '--train_dir', str(train_dir),
             '--dataset_dir', dataset_dir] + _SMALL_RUN_FLAGS + list(
                 extra_flags)
  process = subprocess.Popen(command, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True,
                             cwd=PROJECT_ROOT,
                             env=dict(os.environ, **(env or {})))
  watchdog = threading.Timer(timeout, process.kill)
  watchdog.start()
  lines = []
  try:
    for line in process.stdout:
      lines.append(line)
      if 'step %d:' % step in line:
        process.send_signal(signum)
    return process.wait(), ''.join(lines)
  finally:
    watchdog.cancel()
    process.kill()


def small_config(train_dir, dataset_dir, **groups):
  """A TrainingConfig for a short in-process run on the sample data.

  Args:
    train_dir, dataset_dir: where the run writes and reads.
    **groups: {group name: {setting: value}} overrides, e.g.
      optimisation=dict(learning_rate=0).
  """
  defaults = dict(
      data=dict(dataset=dataset_flags.DatasetConfig(dataset_dir=dataset_dir),
                batch_size=1, num_readers=1, num_preprocessing_threads=2),
      optimisation=dict(max_number_of_steps=1),
      logging=dict(train_dir=str(train_dir), log_every_n_steps=1,
                   save_summaries_secs=1))
  config = config_lib.TrainingConfig(seed=1)
  for name in config_lib.TrainingConfig.GROUPS:
    values = dict(defaults.get(name, {}), **groups.get(name, {}))
    setattr(config, name, type(getattr(config, name))(**values))
  return config


def build_graph(config, input_fn=None):
  """Builds the training graph of `config` in the default graph.

  Returns:
    (TrainingGraph, model_deploy.DeploymentConfig).
  """
  dataset = dataset_flags.load_dataset(config.data.dataset)
  ssd_net = graph_lib.build_ssd_net(config.model, dataset.num_classes)
  deploy_config = graph_lib.make_deploy_config(config.deployment)
  if input_fn is None:
    input_fn = input_pipeline.tfrecord_input_fn(config, dataset)
  v1.set_random_seed(config.seed)
  tensors = graph_lib.build_training_graph(config, ssd_net, deploy_config,
                                           input_fn, dataset.num_samples)
  return tensors, deploy_config


def run_steps(config, num_steps, input_fn=None, stop_file=None,
              summary_writer=None):
  """Builds the graph and runs up to `num_steps` steps in-process.

  The training loop itself (tf_slim's Supervisor, whose threads need
  eager execution off process-wide) runs only in the subprocess tests; here
  the library's graph, init_fn and StepRunner run in a plain session.

  Returns:
    (StepRunner, {variable name: value} after the steps, losses).
  """
  with tf.Graph().as_default():
    tensors, deploy_config = build_graph(config, input_fn)
    init_fn = initialisation.make_init_fn(config.logging.train_dir,
                                          config.model)
    runner = step_runner.StepRunner(
        tensors, config.data.batch_size, num_steps, 1, stop_file=stop_file,
        summary_writer=summary_writer,
        save_summaries_secs=config.logging.save_summaries_secs)
    session_config = train_tools.session_config(
        deploy_config, precision=config.deployment.precision)
    with v1.Session(config=session_config) as sess:
      sess.run([v1.global_variables_initializer(),
                v1.local_variables_initializer()])
      if init_fn is not None:
        init_fn(sess)
      coord = v1.train.Coordinator()
      threads = v1.train.start_queue_runners(sess, coord)
      losses = []
      try:
        for _ in range(num_steps):
          loss, should_stop = runner(sess, tensors.train_op,
                                     tensors.global_step, {})
          losses.append(loss)
          if should_stop:
            break
      finally:
        coord.request_stop()
        coord.join(threads, stop_grace_period_secs=10)
      variables = {v.op.name: value for v, value in zip(
          v1.global_variables(), sess.run(v1.global_variables()))}
  return runner, variables, losses


def checkpoint_step(train_dir):
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(train_dir)))
  return reader.get_tensor('global_step')


def summary_tags(train_dir):
  tags = set()
  for event_file in glob.glob(os.path.join(str(train_dir), 'events.*')):
    for event in v1.train.summary_iterator(event_file):
      tags.update(value.tag for value in event.summary.value)
  return tags


def event_values(train_dir, tag):
  values = []
  for event_file in glob.glob(os.path.join(str(train_dir), 'events.*')):
    for event in v1.train.summary_iterator(event_file):
      values += [value.simple_value for value in event.summary.value
                 if value.tag == tag]
  return values


def static_summary_tags(summary_op):
  """The tags of a merged summary op, read from the graph (nothing runs)."""
  tags = set()
  for summary in summary_op.op.inputs:
    tag = tf.get_static_value(summary.op.inputs[0])
    tags.update(item.decode() for item in np.atleast_1d(tag))
  return tags


def conv_layouts(train_dir):
  """The data_format attributes of the Conv2D ops in train_dir's graph."""
  graph_def = tf.compat.v1.GraphDef()
  with open(os.path.join(str(train_dir), 'graph.pbtxt')) as graph_file:
    text_format.Parse(graph_file.read(), graph_def)
  return {node.attr['data_format'].s.decode() for node in graph_def.node
          if node.op == 'Conv2D'}


@pytest.mark.slow
def test_one_clone_trains_writes_summaries_and_resumes(tmp_path,
                                                       sample_dataset_dir):
  code, log = run_script(tmp_path, sample_dataset_dir,
                         '--max_number_of_steps', '2', '--anchor_sizes', 'voc')
  assert code == 0, log
  assert checkpoint_step(tmp_path) == 2
  # The SSD parameters travel with the checkpoints.
  model_name, params = nets_factory.read_ssd_params(str(tmp_path))
  assert model_name == 'ssd_300_vgg' and params.num_classes == 4
  assert params.anchor_sizes[0] == (30.0, 60.0)
  assert params.dropout_keep_prob == 1.0 and not params.batch_norm
  assert 'images/s' in log and 'ETA' in log
  # The platform, first: CPU and its deciding flags, oneDNN, precision, why.
  assert 'CPU: ' in log and 'flags: ' in log
  assert 'oneDNN: on (TF_ENABLE_ONEDNN_OPTS' in log
  assert 'Precision: ' in log and '(auto: ' in log
  assert 'Data format: N' in log
  first_layout, = re.search(r'Data format: (N[A-Z]+)', log).groups()
  assert conv_layouts(tmp_path) == {first_layout}
  tags = summary_tags(tmp_path)
  assert {'losses/total_loss', 'learning_rate',
          'losses/ssd_losses/localization',
          'losses/ssd_losses/cross_entropy_pos'} <= tags, tags
  assert any(tag.startswith('images_with_boxes') for tag in tags), tags
  # Throughput measured by the step runner (once per summary, here 1 s).
  assert 'global_step/sec' in tags and 'throughput/images_per_sec' in tags
  assert event_values(tmp_path, 'global_step/sec') and all(
      value > 0 for value in event_values(tmp_path, 'global_step/sec'))
  # The run described once: text and hyper-parameters; no histograms.
  assert 'training_config' in tags, tags
  assert '_hparams_/session_start_info' in tags, tags
  assert not any(tag.startswith(('activations/', 'variables/', 'sparsity/'))
                 for tag in tags), tags
  with open(os.path.join(str(tmp_path), 'training_config.txt')) as config:
    text = config.read()
  assert '--batch_size=1' in text and 'sample_train_000.tfrecord' in text
  assert 'anchor_sizes' in text

  # Resume with no step limit; SIGTERM (a cluster manager's stop) after
  # step 3 finishes the step, saves a checkpoint and exits 0.  oneDNN held
  # to AVX2 (as on an AVX2-only CPU) makes auto train in float32 and, at
  # 2 images a batch, in NCHW: the layout is not in the checkpoint.
  code, log = run_until_step_then_signal(tmp_path, sample_dataset_dir, 3,
                                         signal.SIGTERM, '--batch_size=2',
                                         '--anchor_sizes=voc',
                                         env={'ONEDNN_MAX_CPU_ISA': 'AVX2'})
  assert code == 0, log
  assert ('Data format: NCHW (auto: oneDNN convolves with AVX2 kernels here '
          '(ONEDNN_MAX_CPU_ISA=AVX2)') in log, log
  assert 'Precision: float32 (auto: ' in log
  assert conv_layouts(tmp_path) == {'NCHW'}
  assert 'Resuming from' in log and 'model.ckpt-2' in log
  assert 'SIGTERM: stopping after this step' in log
  assert checkpoint_step(tmp_path) >= 3


def test_model_and_loss_options_reach_the_network(tmp_path,
                                                  sample_dataset_dir):
  config = small_config(tmp_path, sample_dataset_dir,
                        model=dict(dropout_keep_prob=0.5, batch_norm=True,
                                   anchor_sizes='voc'))
  ssd_net = graph_lib.build_ssd_net(config.model, 4)
  assert ssd_net.params.dropout_keep_prob == 0.5
  assert ssd_net.params.batch_norm
  assert ssd_net.params.anchor_sizes[0] == (30.0, 60.0)
  with pytest.raises(ValueError):
    graph_lib.build_ssd_net(config_lib.ModelOptions(anchor_sizes='coco?'), 4)


def _first_moving_mean(config, input_fn):
  """conv1_1's batch-norm moving mean after one step of `config`."""
  _, values, _ = run_steps(config, 1, input_fn)
  return values['ssd_300_vgg/conv1/conv1_1/BatchNorm/moving_mean']


def test_batch_norm_moving_statistics_take_every_clone(tmp_path,
                                                       sample_dataset_dir):
  """Both clones' batch statistics enter the moving averages.

  Each clone gets the same fixed batch, of batch mean m per channel; from
  0, one update with the network's decay d gives (1 - d) m; a second one
  gives (1 - d) m + (1 - d)(m - (1 - d) m) = (1 - d)(1 + d) m (or 2 (1 - d) m
  when both read the variable before either writes): with 2 clones the
  moving mean is (1 + d)x-2x that of 1 clone; 1x if only clone 0 updated it.
  """
  options = dict(model=dict(batch_norm=True),
                 data=dict(dataset=dataset_flags.DatasetConfig(
                     dataset_dir=sample_dataset_dir), batch_size=1,
                     augmentation='none'))
  one_clone = small_config(tmp_path / 'one', sample_dataset_dir, **options)
  dataset = dataset_flags.load_dataset(one_clone.data.dataset)
  ssd_net = graph_lib.build_ssd_net(one_clone.model, dataset.num_classes)
  batch, batch_shape = input_pipeline.read_batch(
      input_pipeline.tfrecord_input_fn(one_clone, dataset), ssd_net,
      graph_lib.make_deploy_config(one_clone.deployment))
  input_fn = input_pipeline.fixed_batch_input_fn(batch, batch_shape)
  single = _first_moving_mean(one_clone, input_fn)
  double = _first_moving_mean(small_config(
      tmp_path / 'two', sample_dataset_dir,
      deployment=dict(num_clones=2, clone_on_cpu=True), **options), input_fn)
  decay = inspect.signature(ssd_net.arg_scope).parameters[
      'batch_norm_decay'].default
  assert 0.9 <= decay < 1
  assert np.count_nonzero(single) > 0.9 * single.size
  moved = np.abs(single) > 1e-6
  ratio = double[moved] / single[moved]
  np.testing.assert_array_less(1 + decay - 1e-4, ratio)
  np.testing.assert_array_less(ratio, 2 + 1e-4)


def test_two_clones_summarise_the_first_clone_only(tmp_path,
                                                   sample_dataset_dir):
  config = small_config(tmp_path, sample_dataset_dir,
                        deployment=dict(num_clones=2, clone_on_cpu=True))
  with tf.Graph().as_default():
    tensors, _ = build_graph(config)
    tags = static_summary_tags(tensors.summary_op)
    clone_scopes = {op.name.split('/')[0] for op in
                    v1.get_default_graph().get_operations()
                    if op.name.startswith('clone_')}
  assert clone_scopes == {'clone_0', 'clone_1'}
  assert {'losses/total_loss', 'losses/regularization_loss',
          'losses/ssd_losses/localization', 'learning_rate'} <= tags, tags
  # No per-clone scalars (TensorBoard would open on them); clone 0's images.
  assert {tag for tag in tags if tag.startswith('clone_')} == {
      'clone_0/images_with_boxes'}, tags
  assert not any(tag.startswith(('activations/', 'variables/', 'sparsity/'))
                 for tag in tags), tags


def test_histograms_only_on_request(tmp_path, sample_dataset_dir):
  config = small_config(tmp_path, sample_dataset_dir,
                        logging=dict(summarize_histograms=True))
  with tf.Graph().as_default():
    tensors, _ = build_graph(config)
    tags = static_summary_tags(tensors.summary_op)
  assert 'activations/block4' in tags and 'sparsity/block4' in tags
  assert 'variables/ssd_300_vgg/conv1/conv1_1/weights' in tags


def test_a_stop_file_stops_after_the_step_and_the_next_run_removes_it(
    tmp_path, sample_dataset_dir):
  stop_file = tmp_path / run_directory.STOP_FILE_NAME
  stop_file.write_text('')
  config = small_config(tmp_path, sample_dataset_dir,
                        optimisation=dict(max_number_of_steps=5))
  runner, values, losses = run_steps(config, 5, stop_file=str(stop_file))
  assert len(losses) == 1 and values['global_step'] == 1
  assert not runner.failure and stop_file.exists()
  loop.remove_stop_file(str(stop_file))
  assert not stop_file.exists()
  loop.remove_stop_file(str(stop_file))  # None: nothing to do.


def test_summaries_do_not_change_what_a_seeded_run_trains_on(
    tmp_path, sample_dataset_dir):
  """Summaries every step, or none: the same batches, the same losses."""
  def seeded_losses(summary_writer):
    config = small_config(
        tmp_path / 'run', sample_dataset_dir,
        data=dict(num_preprocessing_threads=1),
        logging=dict(save_summaries_secs=0))
    return run_steps(config, 3, summary_writer=summary_writer)[2]

  with tf.Graph().as_default():  # FileWriter refuses eager execution.
    writer = v1.summary.FileWriter(str(tmp_path / 'summaries'))
  with_summaries = seeded_losses(writer)
  writer.close()
  assert event_values(tmp_path / 'summaries', 'losses/total_loss')
  without = seeded_losses(None)
  assert len(set(without)) == 3  # Three batches that tell apart.
  np.testing.assert_allclose(with_summaries, without, rtol=1e-5)


def test_clones_without_gpus_are_said_to_run_on_the_cpu():
  warning = graph_lib.clone_placement_warning(3, False, 0)
  assert warning.startswith('3 clones but no GPU is visible: clones 0 to 2 '
                            'run on the CPU')
  assert '--clone_on_cpu' in warning
  assert graph_lib.clone_placement_warning(3, False, 2).startswith(
      '3 clones but only 2 GPU(s) are visible: clone 2 runs on the CPU')
  assert graph_lib.clone_placement_warning(3, True, 0) is None
  assert graph_lib.clone_placement_warning(2, False, 2) is None
  assert graph_lib.clone_placement_warning(1, False, 0) is None


def _save_checkpoint(path, variables):
  """Saves {name: array} as a checkpoint at `path`; returns the prefix.

  The values are fed, not written into the graph as constants (hundreds of
  MB for vgg_16's fc6)."""
  with tf.Graph().as_default():
    feeds = {v1.placeholder(value.dtype, value.shape): value
             for value in variables.values()}
    tf_variables = [v1.get_variable(name, initializer=feed,
                                    validate_shape=True)
                    for name, feed in zip(variables, feeds)]
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer(), feeds)
      return v1.train.Saver(tf_variables).save(sess, path)


def _model_variable_shapes(num_classes):
  """{name: shape} of the SSD300 variables for `num_classes`."""
  ssd_class = nets_factory.get_network('ssd_300_vgg')
  ssd_net = ssd_class(ssd_class.default_params._replace(
      num_classes=num_classes))
  with tf.Graph().as_default():
    with slim.arg_scope(ssd_net.arg_scope()):
      ssd_net.net(v1.placeholder(tf.float32, [1, 300, 300, 3]),
                  is_training=False)
    return {v.op.name: v.shape.as_list() for v in v1.global_variables()}


def test_imagenet_vgg16_init_restores_the_vgg_layers_only(tmp_path,
                                                         sample_dataset_dir):
  rng = np.random.RandomState(0)
  vgg_shapes = {
      name.replace('ssd_300_vgg/', 'vgg_16/', 1): shape
      for name, shape in _model_variable_shapes(5).items()
      if name.split('/')[1] in ssd_vgg_300.VGG_SCOPES}
  assert len(vgg_shapes) == 26
  vgg_values = {name: rng.randn(*shape).astype(np.float32) * 0.01
                for name, shape in vgg_shapes.items()}
  prefix = _save_checkpoint(str(tmp_path / 'vgg' / 'vgg_16.ckpt'), vgg_values)

  exclude = ','.join(ssd_vgg_300.SSDNet().non_vgg_scopes())
  _, values, _ = run_steps(small_config(
      tmp_path / 'train', sample_dataset_dir,
      model=dict(checkpoint_path=prefix + '.data-00000-of-00001',
                 checkpoint_model_scope='vgg_16',
                 checkpoint_exclude_scopes=exclude)), 0)
  for name, value in vgg_values.items():
    np.testing.assert_array_equal(
        values[name.replace('vgg_16/', 'ssd_300_vgg/', 1)], value)
  # The SSD-only layers kept their initial values.
  np.testing.assert_array_equal(
      values['ssd_300_vgg/block4_box/L2Normalization/gamma'],
      np.full([512], 20.0, np.float32))
  np.testing.assert_array_equal(
      values['ssd_300_vgg/block8/conv3x3/biases'], np.zeros([512], np.float32))


def test_class_count_mismatch_names_variables_and_fix(tmp_path,
                                                      sample_dataset_dir):
  shapes = _model_variable_shapes(21)
  _save_checkpoint(
      str(tmp_path / 'ssd' / 'ssd_300_vgg.ckpt'),
      {name: np.zeros(shape, np.float32) for name, shape in shapes.items()})
  config = small_config(tmp_path / 'train', sample_dataset_dir,
                        model=dict(checkpoint_path=str(tmp_path / 'ssd')))
  with pytest.raises(checkpoints.CheckpointError) as error:
    with tf.Graph().as_default():
      build_graph(config)
      initialisation.make_init_fn(config.logging.train_dir, config.model)
  message = str(error.value)
  assert 'ssd_300_vgg/block4_box/conv_cls/weights' in message
  assert '--checkpoint_exclude_scopes=ssd_300_vgg/block4_box' in message
  assert 'Assign requires shapes' not in message


def test_missing_checkpoint_is_a_clear_error(tmp_path, sample_dataset_dir):
  config = small_config(tmp_path / 'train', sample_dataset_dir,
                        model=dict(checkpoint_path=str(tmp_path / 'nope.ckpt')))
  dataset = dataset_flags.load_dataset(config.data.dataset)
  ssd_net = graph_lib.build_ssd_net(config.model, dataset.num_classes)
  # Before anything is built.
  with pytest.raises(checkpoints.CheckpointError,
                     match='nope.ckpt does not exist'):
    loop.run_training(config, ssd_net, dataset,
                      input_fn=lambda *unused: pytest.fail('built'))


def test_resolve_checkpoint_path_accepts_files_and_directories(tmp_path):
  prefix = _save_checkpoint(str(tmp_path / 'model.ckpt'),
                            {'w': np.ones([2], np.float32)})
  for given in (prefix, prefix + '.index', prefix + '.data-00000-of-00001',
                str(tmp_path)):
    assert checkpoints.resolve_checkpoint_path(given) == prefix
  empty_dir = tmp_path / 'empty_dir'
  empty_dir.mkdir()
  with pytest.raises(checkpoints.CheckpointError, match='No checkpoint in'):
    checkpoints.resolve_checkpoint_path(str(empty_dir))


def test_non_finite_loss_stops_without_writing_nan(tmp_path,
                                                   sample_dataset_dir):
  config = small_config(
      tmp_path, sample_dataset_dir,
      optimisation=dict(max_number_of_steps=20, optimizer='sgd',
                        learning_rate=1e12, learning_rate_decay_type='fixed',
                        warmup_steps=0))
  runner, values, losses = run_steps(config, 20)
  assert runner.failure and np.isnan(losses[-1]), losses
  assert 'Non-finite loss or gradient at step' in runner.failure
  assert 'learning_rate' in runner.failure
  assert 'gradients_finite' in runner.failure
  for name, value in values.items():
    if np.asarray(value).dtype.kind == 'f':
      assert np.all(np.isfinite(value)), name


def test_hparams_are_the_settings_that_tell_runs_apart(tmp_path):
  config = small_config(tmp_path, str(tmp_path / 'data'))
  # pylint: disable=protected-access
  hparams = run_description._hparams(config)
  assert hparams['batch_size'] == 1 and hparams['optimizer'] == 'adam'
  assert {'learning_rate', 'precision', 'num_clones'} <= set(hparams)
  # Other optimizers' settings stay in the Text tab only.
  assert not any(name.startswith(('adadelta', 'ftrl', 'rmsprop'))
                 for name in hparams), hparams
  assert all(isinstance(value, (bool, int, float, str))
             for value in hparams.values())


def _vgg16_checkpoint_with_fc(path, rng):
  """A TF-slim vgg_16 checkpoint: the 26 convolution variables and fc6/fc7
  at their ImageNet shapes; returns (prefix, {name: value})."""
  values = {
      name.replace('ssd_300_vgg/', 'vgg_16/', 1):
          rng.standard_normal(shape, dtype=np.float32) * 0.01
      for name, shape in _model_variable_shapes(5).items()
      if name.split('/')[1] in ssd_vgg_300.VGG_SCOPES}
  values.update({
      'vgg_16/fc6/weights': rng.random((7, 7, 512, 4096), dtype=np.float32),
      'vgg_16/fc6/biases': rng.random(4096, dtype=np.float32),
      'vgg_16/fc7/weights': rng.random((1, 1, 4096, 4096), dtype=np.float32),
      'vgg_16/fc7/biases': rng.random(4096, dtype=np.float32)})
  return _save_checkpoint(path, values), values


def test_norestore_reduced_fc_keeps_conv6_conv7_random():
  assert initialisation.reduced_fc_init(
      config_lib.ModelOptions(restore_reduced_fc=False), 'vgg_16.ckpt',
      ssd_vgg_300.VGG_16_SCOPE) is None
  assert initialisation.reduced_fc_init(config_lib.ModelOptions(),
                                        'ssd.ckpt', None) is None


def test_imagenet_vgg16_fc6_fc7_become_conv6_conv7_decimated(
    tmp_path, sample_dataset_dir):
  prefix, vgg = _vgg16_checkpoint_with_fc(str(tmp_path / 'vgg' / 'vgg_16.ckpt'),
                                          np.random.default_rng(0))
  _, values, _ = run_steps(small_config(
      tmp_path / 'train', sample_dataset_dir,
      model=dict(checkpoint_path=prefix)), 0)
  expected = {  # NumPy slicing: positions 0, 3, 6; every 4th filter.
      'conv6/weights': vgg['vgg_16/fc6/weights'][[0, 3, 6]][:, [0, 3, 6]][
          ..., np.arange(0, 4096, 4)],
      'conv6/biases': vgg['vgg_16/fc6/biases'][np.arange(0, 4096, 4)],
      'conv7/weights': vgg['vgg_16/fc7/weights'][
          :, :, np.arange(0, 4096, 4)][..., np.arange(0, 4096, 4)],
      'conv7/biases': vgg['vgg_16/fc7/biases'][np.arange(0, 4096, 4)]}
  for name, value in expected.items():
    restored = values['ssd_300_vgg/' + name]
    np.testing.assert_array_equal(restored, value)
  np.testing.assert_array_equal(values['ssd_300_vgg/conv5/conv5_3/weights'],
                                vgg['vgg_16/conv5/conv5_3/weights'])
def test_next_steps_commands_survive_spaces_in_paths(tmp_path):
  train_dir = str(tmp_path / 'my run')
  dataset_dir = str(tmp_path / 'my data')
  config = small_config(train_dir, dataset_dir)
  evaluate, demo = run_description.next_steps_commands(config)
  assert shlex.split(evaluate)[1:] == [
      'eval_ssd_network.py', '--checkpoint_path', train_dir,
      '--dataset_dir', dataset_dir, '--dataset_split_name', '<split>']
  assert shlex.split(demo)[1:] == [
      'demo_ssd.py', '--checkpoint_path', train_dir, '--labels',
      os.path.join(dataset_dir, 'labels.txt'), '--output_dir', 'demo_out',
      '--images', '<your images or folder>']


@pytest.mark.parametrize('decay_type, epochs, max_steps, expected', [
    # 320 images at 8 a step: 40 steps an epoch.
    ('polynomial', None, 1000, 1000),   # the whole run
    ('polynomial', 25.0, 1000, 1000),   # 25 epochs x 40 steps
    ('polynomial', 2.0, 1000, 80),
    ('polynomial', None, None,          # no limit: 25 epochs
     config_lib.POLYNOMIAL_EPOCHS_WITHOUT_STEP_LIMIT * 40),
    ('exponential', None, 1000, 80),    # 2 epochs by default
    ('exponential', 0.5, None, 20),
])
def test_decay_period_steps(decay_type, epochs, max_steps, expected):
  optimisation = config_lib.OptimisationOptions(
      learning_rate_decay_type=decay_type, num_epochs_per_decay=epochs,
      max_number_of_steps=max_steps)
  assert graph_lib.decay_period_steps(optimisation, 320, 8) == expected


def test_polynomial_schedule_spans_the_run():
  optimisation = config_lib.OptimisationOptions(
      learning_rate=0.001, end_learning_rate=0.0001,
      learning_rate_decay_type='polynomial', warmup_steps=100,
      max_number_of_steps=1000)
  with tf.Graph().as_default():
    step = v1.placeholder(tf.int64, [])
    rate = graph_lib.learning_rate_schedule(optimisation, 320, 8, step)
    with v1.Session() as sess:
      values = {s: sess.run(rate, {step: s}) for s in (0, 99, 500, 1000,
                                                       2000)}
  # Warm-up: (s + 1) / 100 of the linear decay's value.
  assert values[0] == pytest.approx(0.01 * (0.0009 * (1 - 0 / 1000) + 0.0001))
  assert values[99] == pytest.approx(0.0009 * (1 - 99 / 1000) + 0.0001)
  assert values[500] == pytest.approx(0.00055)
  assert values[1000] == pytest.approx(0.0001)
  assert values[2000] == pytest.approx(0.0001)


# Prints the settings the training flags resolve to, one run per line of
# arguments in sys.argv (separated by '|').
_RESOLVE_FLAGS = '''
import sys
from absl import flags
import train_ssd_network
train_ssd_network.define_flags()
for line in ' '.join(sys.argv[1:]).split('|'):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(['train_ssd_network.py', '--dataset_dir=d'] + line.split())
  config = train_ssd_network.config_from_flags()
  o = config.optimisation
  print(config.model.batch_norm, o.learning_rate_decay_type, o.learning_rate,
        o.end_learning_rate, o.warmup_steps)
'''


@pytest.mark.slow
def test_defaults_from_scratch_are_the_measured_recipe(tmp_path):
  if config_lib.pretrained_checkpoint(config_lib.ModelOptions()):
    pytest.skip('a checkpoint in %s would start the run' %
                checkpoints.PRETRAINED_DIR)
  result = subprocess.run(
      [sys.executable, '-c', _RESOLVE_FLAGS, '',
       '|', '--nobatch_norm --learning_rate=0.0003',
       '|', '--checkpoint_path=%s' % (tmp_path / 'model.ckpt-1')],
      capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
  assert result.returncode == 0, result.stderr[-3000:]
  recipe = config_lib.FROM_SCRATCH_RECIPE['optimisation']
  plain = config_lib.OptimisationOptions()
  assert result.stdout.splitlines() == [
      # No checkpoint: the recipe, logged.
      'True polynomial %s %s %s' % (recipe['learning_rate'],
                                    recipe['end_learning_rate'],
                                    recipe['warmup_steps']),
      # Flags given win over it.
      'False polynomial 0.0003 %s %s' % (recipe['end_learning_rate'],
                                         recipe['warmup_steps']),
      # A pretrained checkpoint: the fine-tuning defaults.
      'False %s %s %s %s' % (plain.learning_rate_decay_type,
                             plain.learning_rate, plain.end_learning_rate,
                             plain.warmup_steps)]
