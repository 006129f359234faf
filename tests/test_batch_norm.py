"""--batch_norm end to end: a run resumes with its moving
statistics, evaluation and export normalise with them, and sync-replica
training updates them.

The runs are train_ssd_network.py at batch size 1 on the sample data with
learning rate 0 and no augmentation: the weights (and batch norm's gamma and
beta) stay at their initial values and the seeded input pipeline starts
every run with the same image, so every step normalises the same batch
statistics b (mean) and s (variance) in each layer.  One update of decay d
takes the moving statistics (m, v) to (d m + (1 - d) b, d v + (1 - d) s);
from their initial (0, 1), the first step gives ((1 - d) b, d + (1 - d) s).
`moving_statistics_after` computes the same updates in-process, from the
checkpoint's weights and the run's first batches, as the reference.
"""
import inspect
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from datasets import dataset_factory
from datasets import dataset_flags
import detection_fixtures as helpers
from nets import nets_factory
from nets import ssd_vgg_300
from utils.inference import detection
from utils.inference import saved_model
from utils.common import run_directory
from utils.evaluation import evaluator
from utils.inference import demo
from utils.trainer import config as config_lib
from utils.trainer import graph as graph_lib
from utils.trainer import input_pipeline

from cluster_fixtures import assert_clean_exit
from cluster_fixtures import checkpoint_values
from cluster_fixtures import make_cluster  # noqa: F401  (a fixture)
from conftest import PROJECT_ROOT

v1 = tf.compat.v1
SCRIPT = os.path.join(PROJECT_ROOT, 'train_ssd_network.py')
DECAY = inspect.signature(ssd_vgg_300.SSDNet.arg_scope).parameters[
    'batch_norm_decay'].default
# Every step of such a run sees the same batch (see the module docstring).
SAME_BATCH_FLAGS = ['--batch_norm', '--learning_rate=0', '--end_learning_rate=0',
                    '--augmentation=none',
                    '--precision=float32', '--seed=1', '--batch_size=1',
                    '--num_readers=1', '--num_preprocessing_threads=1']
# 13 VGG16 convolutions, conv6, conv7 and 2 per extra block.
NUM_BATCH_NORMS = 13 + 2 + 8
BN_KINDS = ('beta', 'gamma', 'moving_mean', 'moving_variance')
EPSILON = 1e-3  # slim.batch_norm's default.
SETTINGS = detection.DetectionSettings(select_threshold=0.01, keep_top_k=20)

# Every test here starts from a training run of the script (bn_run).
pytestmark = pytest.mark.slow


def train(train_dir, dataset_dir, *flags):
  """Runs train_ssd_network.py with SAME_BATCH_FLAGS; (return code, log)."""
  result = subprocess.run(
      [sys.executable, SCRIPT, '--train_dir', str(train_dir),
       '--dataset_dir', dataset_dir, '--log_every_n_steps=1',
       '--save_summaries_secs=0'] + SAME_BATCH_FLAGS + list(flags),
      capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
  return result.returncode, result.stdout + result.stderr


def batch_norms(values):
  """{convolution scope: {kind: value}} of the batch norms in `values`."""
  norms = {}
  for name, value in values.items():
    scope, _, kind = name.rpartition('/BatchNorm/')
    if scope and kind in BN_KINDS:
      norms.setdefault(scope, {})[kind] = value
  return norms


def moving_statistics_after(values, num_steps, dataset_dir):
  """The moving statistics after `num_steps` training steps of `values`'
  model (learning rate 0) from (0, 1), on the first batches of a
  SAME_BATCH_FLAGS run: computed here, batch by batch (every batch dequeued
  is a step's: the summaries come from the step's own run)."""
  config = config_lib.TrainingConfig(seed=1)
  config.data = config_lib.DataOptions(
      dataset=dataset_flags.DatasetConfig(dataset_dir=dataset_dir),
      batch_size=1, num_readers=1, num_preprocessing_threads=1,
      augmentation='none')
  config.model = config_lib.ModelOptions(batch_norm=True)
  dataset = dataset_flags.load_dataset(config.data.dataset)
  ssd_net = graph_lib.build_ssd_net(config.model, dataset.num_classes)
  with tf.Graph().as_default():
    v1.set_random_seed(config.seed)
    queue, _ = input_pipeline.tfrecord_input_fn(config, dataset)(
        ssd_net, graph_lib.make_deploy_config(config.deployment))
    images = v1.placeholder(tf.float32, [1, 300, 300, 3])
    with slim.arg_scope(ssd_net.arg_scope()):
      ssd_net.net(images, is_training=True)
    variables = slim.get_model_variables()
    batch = queue.dequeue()
    with v1.Session() as session:
      session.run(v1.global_variables_initializer())
      for variable in variables:
        if '/moving_' not in variable.op.name:
          variable.load(values[variable.op.name], session)
      coord = v1.train.Coordinator()
      threads = v1.train.start_queue_runners(session, coord)
      try:
        for _ in range(num_steps):
          image = session.run(batch)[0]
          session.run(v1.get_collection(v1.GraphKeys.UPDATE_OPS),
                      {images: image})
      finally:
        coord.request_stop()
        coord.join(threads, stop_grace_period_secs=10)
      return batch_norms({variable.op.name: value for variable, value in zip(
          variables, session.run(variables))})


def assert_moving_statistics_equal(norms, expected):
  """`batch_norms` outputs: the same moving statistics, up to rounding."""
  assert sorted(norms) == sorted(expected)
  for scope, kinds in expected.items():
    for kind in ('moving_mean', 'moving_variance'):
      np.testing.assert_allclose(
          norms[scope][kind], kinds[kind], rtol=1e-4,
          atol=1e-5 * np.abs(kinds[kind]).max(), err_msg=scope + kind)


@pytest.fixture(scope='module')
def bn_run(tmp_path_factory, sample_dataset_dir):
  """The train_dir of a 1-step --batch_norm run (SAME_BATCH_FLAGS)."""
  train_dir = tmp_path_factory.mktemp('bn_run')
  code, log = train(train_dir, sample_dataset_dir, '--max_number_of_steps=1')
  assert code == 0, log[-3000:]
  return str(train_dir)


def test_a_step_updates_every_batch_norm_and_ssd_params_says_so(
    bn_run, sample_dataset_dir):
  values = checkpoint_values(bn_run)
  assert values['global_step'] == 1
  norms = batch_norms(values)
  assert len(norms) == NUM_BATCH_NORMS
  for scope, kinds in norms.items():
    assert sorted(kinds) == sorted(BN_KINDS), scope
    # Batch norm replaces the convolution's biases.
    assert scope + '/biases' not in values
    assert values[scope + '/weights'].shape[-1] == kinds['beta'].shape[0]
    # One step moved the moving statistics from (0, 1).
    assert np.count_nonzero(kinds['moving_mean']) > 0.9 * kinds[
        'moving_mean'].size, scope
    assert not np.allclose(kinds['moving_variance'], 1.), scope
  # The heads keep their biases and have no batch norm.
  assert 'ssd_300_vgg/block4_box/conv_cls/biases' in values
  assert not [scope for scope in norms if '_box' in scope]
  # One update, with the first batch's statistics.
  assert_moving_statistics_equal(norms, moving_statistics_after(
      values, 1, sample_dataset_dir))
  # What evaluation, the demo and export build the network with.
  model_name, params = nets_factory.read_ssd_params(bn_run)
  assert model_name == 'ssd_300_vgg' and params.batch_norm


def test_resume_restores_the_moving_statistics(bn_run, tmp_path,
                                               sample_dataset_dir):
  """Resumed at step 1, step 2 updates the restored statistics (m1, v1)
  with the same b and s as step 1: m2 = d m1 + (1 - d) b = d m1 + m1 and
  v2 = d v1 + (v1 - d); so the statistics the resumed run started from,
  (m2 - m1) / d and (v2 - v1 + d) / d, must be the saved (m1, v1).
  Started afresh instead, they would be (0, 1)."""
  train_dir = tmp_path / 'train'
  shutil.copytree(bn_run, str(train_dir))
  saved = batch_norms(checkpoint_values(str(train_dir)))
  code, log = train(train_dir, sample_dataset_dir, '--max_number_of_steps=2')
  assert code == 0, log[-3000:]
  assert 'Resuming from' in log and 'model.ckpt-1' in log, log[-3000:]
  values = checkpoint_values(str(train_dir))
  assert values['global_step'] == 2
  resumed = batch_norms(values)
  assert sorted(resumed) == sorted(saved)
  for scope in saved:
    m1, v1 = saved[scope]['moving_mean'], saved[scope]['moving_variance']
    m2, v2 = resumed[scope]['moving_mean'], resumed[scope]['moving_variance']
    # The further step moved them.
    assert not np.allclose(m2, m1, rtol=0.1, atol=0), scope
    scale = np.abs(m1).max()
    np.testing.assert_allclose((m2 - m1) / DECAY, m1, rtol=1e-4,
                               atol=1e-5 * scale, err_msg=scope)
    np.testing.assert_allclose((v2 - v1 + DECAY) / DECAY, v1, rtol=1e-5,
                               err_msg=scope)
    # Learning rate 0: gamma and beta are as saved (and as initialised).
    for kind in ('gamma', 'beta'):
      np.testing.assert_array_equal(resumed[scope][kind], saved[scope][kind])


def write_variant(train_dir, directory, change=None):
  """A copy of `train_dir`'s model (and ssd_params.json) in `directory`,
  after change(batch norms) if given (it changes their arrays in place);
  its checkpoint prefix."""
  values = {name: value for name, value in checkpoint_values(train_dir).items()
            if name == 'global_step' or (name.startswith('ssd_300_vgg/') and
                                         '/Adam' not in name)}
  if change is not None:
    change(batch_norms(values))
  os.makedirs(directory)
  shutil.copy(os.path.join(train_dir, run_directory.SSD_PARAMS_FILE_NAME), directory)
  with tf.Graph().as_default():
    variables = {name: v1.Variable(value) for name, value in values.items()}
    with v1.Session() as session:
      session.run(v1.global_variables_initializer())
      return v1.train.Saver(variables).save(
          session, os.path.join(directory, 'model.ckpt'),
          global_step=int(values['global_step']))


def shift_moving_means(norms):
  """Every moving mean up by a standard deviation of its moving variance:
  inference changes, training (batch statistics) would not."""
  for kinds in norms.values():
    kinds['moving_mean'] += np.sqrt(kinds['moving_variance'] + EPSILON)


def shift_moving_means_and_betas(norms):
  """Every moving mean up by delta and beta by gamma delta / sqrt(v + eps):
  inference, gamma (x - m) / sqrt(v + eps) + beta, does not change."""
  for index, kinds in enumerate(norms.values()):
    delta = np.linspace(-1., 1., kinds['beta'].size) * 0.1 * (index + 1)
    kinds['moving_mean'] += delta
    kinds['beta'] += kinds['gamma'] * delta / np.sqrt(
        kinds['moving_variance'] + EPSILON)


def comp4_detections(eval_dir):
  """{file name: lines} of an evaluation's detection files."""
  names = sorted(name for name in os.listdir(eval_dir)
                 if name.startswith('comp4_det_'))
  assert names
  detections = {}
  for name in names:
    with open(os.path.join(eval_dir, name)) as comp4_file:
      detections[name] = comp4_file.read().splitlines()
  return detections


@pytest.fixture(scope='module')
def variants(bn_run, tmp_path_factory):
  """{name: checkpoint prefix} of changed copies of bn_run's model:
  'shifted' (shift_moving_means), 'compensated'
  (shift_moving_means_and_betas), 'no_params' (no ssd_params.json)."""
  directory = tmp_path_factory.mktemp('variants')
  prefixes = {
      'shifted': write_variant(bn_run, str(directory / 'shifted'),
                               shift_moving_means),
      'compensated': write_variant(bn_run, str(directory / 'compensated'),
                                   shift_moving_means_and_betas),
      'no_params': str(directory / 'no_params' / 'model.ckpt-1')}
  # The checkpoint files alone (hard links: no copy).
  (directory / 'no_params').mkdir()
  for name in os.listdir(bn_run):
    if name.startswith('model.ckpt-1.'):
      os.link(os.path.join(bn_run, name), str(directory / 'no_params' / name))
  return prefixes


def test_evaluation_reads_batch_norm_and_normalises_with_the_moving_stats(
    bn_run, variants, tmp_path, sample_dataset_dir):
  dataset = dataset_factory.get_dataset('voc', 'val', sample_dataset_dir)

  def evaluate(checkpoint, name):
    eval_dir = str(tmp_path / name)
    results = evaluator.evaluate(checkpoint, dataset, eval_dir,
                                 settings=SETTINGS, batch_size=1,
                                 max_num_batches=1)
    return results, comp4_detections(eval_dir)

  results, detections = evaluate(bn_run, 'eval')
  assert results['checkpoint_path'] == os.path.join(bn_run, 'model.ckpt-1')
  assert results['global_step'] == 1 and results['num_images'] == 1
  assert 0. <= results['mAP_VOC07'] <= 1.
  assert sum(len(lines) for lines in detections.values()) == (
      SETTINGS.keep_top_k)
  # The moving means are what evaluation normalises with.
  _, shifted = evaluate(variants['shifted'], 'eval_shifted')
  assert shifted != detections
  # The checkpoint files alone, without ssd_params.json, still say the
  # network has batch norms: the same detections.
  _, alone = evaluate(variants['no_params'], 'eval_no_params')
  assert alone == detections


def test_inference_normalises_with_the_moving_statistics(bn_run, variants):
  """The detector of evaluation, the demo and export: moving means moved
  by delta and betas by the gamma delta / sqrt(v + eps) that makes up for
  it give the same outputs (with batch statistics, the betas alone would
  change them); the moving means alone change them."""
  checkpoint_path, ssd_net = detection.load_network(bn_run)
  assert ssd_net.params.batch_norm
  images = np.random.RandomState(3).uniform(
      -100., 100., [1, 300, 300, 3]).astype(np.float32)
  outputs = []
  with tf.Graph().as_default():
    predictions, localisations = detection.network_outputs(
        ssd_net, tf.constant(images))
    assert not v1.get_collection(v1.GraphKeys.UPDATE_OPS)
    saver = detection.make_saver(checkpoint_path)
    with v1.Session() as session:
      for prefix in (checkpoint_path, variants['compensated'],
                     variants['shifted']):
        saver.restore(session, prefix)
        outputs.append(np.concatenate([
            np.ravel(value) for value in session.run(
                predictions + localisations)]))
  original, compensated, shifted = outputs
  np.testing.assert_allclose(compensated, original, rtol=1e-4, atol=1e-4)
  assert np.abs(shifted - original).max() > 0.1


def test_export_holds_and_uses_the_moving_statistics(bn_run, tmp_path):
  export_dir = str(tmp_path / 'export')
  saved_model.export(bn_run, export_dir, settings=SETTINGS)
  # The SavedModel's variables are the checkpoint's batch norms.
  saved = batch_norms(checkpoint_values(bn_run))
  exported = batch_norms(checkpoint_values(
      os.path.join(export_dir, 'variables', 'variables')))
  assert sorted(exported) == sorted(saved)
  for scope, kinds in saved.items():
    for kind, value in kinds.items():
      np.testing.assert_array_equal(exported[scope][kind], value,
                                    err_msg=scope + kind)
  serve = tf.saved_model.load(export_dir).signatures['serving_default']
  # Inference batch norms only (no batch statistics, no updates).
  graph = serve.graph.as_graph_def()
  nodes = list(graph.node) + [node for function in graph.library.function
                              for node in function.node_def]
  batch_norm_nodes = [node for node in nodes
                      if node.op.startswith('FusedBatchNorm')]
  assert len(batch_norm_nodes) == NUM_BATCH_NORMS
  assert not [node.name for node in batch_norm_nodes
              if node.attr['is_training'].b]
  # The demo's detections, with the moving statistics.
  image = tmp_path / 'image.png'
  cv2.imwrite(str(image), helpers.gray_image(120, 200, seed=4))
  outputs = {key: value.numpy()[0] for key, value in serve(
      encoded_images=tf.constant(image.read_bytes())).items()}
  expected, = demo.detect(bn_run, [str(image)], settings=SETTINGS)
  assert outputs['num_detections'] == len(expected.classes) == (
      SETTINGS.keep_top_k)
  np.testing.assert_array_equal(outputs['detection_classes'],
                                expected.classes)
  np.testing.assert_allclose(outputs['detection_scores'], expected.scores,
                             atol=1e-5)
  np.testing.assert_allclose(outputs['detection_boxes'], expected.bboxes,
                             atol=1e-5)


def test_sync_replicas_update_the_moving_statistics(make_cluster,
                                                    sample_dataset_dir):
  """1 ps and 1 worker with --sync_replicas (one gradient a round): each
  step the worker ran updated the moving statistics on the ps with its
  batch's statistics (its first step may come back before the round that
  makes the global step 1, so it may run 2 steps for 1 global step)."""
  local_cluster = make_cluster(num_workers=1, flags=SAME_BATCH_FLAGS + [
      '--sync_replicas', '--max_number_of_steps=1'])
  local_cluster.start_all(num_workers=1)
  for name in ('worker0', 'ps0'):
    assert_clean_exit(local_cluster, name)
  assert ('SyncReplicasV2: replicas_to_aggregate=1; total_num_replicas=1'
          in local_cluster.log('worker0'))
  num_steps = len(local_cluster.steps('worker0'))
  assert num_steps >= 1
  values = checkpoint_values(local_cluster.train_dir)
  assert values['global_step'] == 1
  norms = batch_norms(values)
  assert len(norms) == NUM_BATCH_NORMS
  for kinds in norms.values():
    # Moved from (0, 1).
    assert np.count_nonzero(kinds['moving_mean']) > 0.9 * kinds[
        'moving_mean'].size
    assert not np.allclose(kinds['moving_variance'], 1.)
  assert_moving_statistics_equal(norms, moving_statistics_after(
      values, num_steps, sample_dataset_dir))
