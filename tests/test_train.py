"""End-to-end tests of train_ssd_network.py, run as a user runs it.

Each run is a subprocess on the small sample dataset with batch size 1 and
bfloat16 compute where the test is not about numerics, to keep it short.
"""
import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from utils import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from nets import nets_factory
from nets import ssd_vgg_300
from utils import checkpoints

from conftest import PROJECT_ROOT

v1 = tf.compat.v1
SCRIPT = os.path.join(PROJECT_ROOT, 'train_ssd_network.py')


def run_training(train_dir, dataset_dir, *extra_flags, timeout=300):
  """Runs the training script; returns (return code, combined output)."""
  command = [sys.executable, SCRIPT, '--train_dir', str(train_dir),
             '--dataset_dir', dataset_dir, '--batch_size', '1',
             '--log_every_n_steps', '1', '--save_summaries_secs', '1',
             '--num_readers', '1', '--num_preprocessing_threads', '2',
             '--seed', '1'] + list(extra_flags)
  result = subprocess.run(command, capture_output=True, text=True,
                          timeout=timeout, cwd=PROJECT_ROOT)
  return result.returncode, result.stdout + result.stderr


def checkpoint_step(train_dir):
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(train_dir)))
  return reader.get_tensor('global_step')


def summary_tags(train_dir):
  tags = set()
  for event_file in glob.glob(os.path.join(str(train_dir), 'events.*')):
    for event in tf.compat.v1.train.summary_iterator(event_file):
      tags.update(value.tag for value in event.summary.value)
  return tags


def test_one_clone_trains_writes_summaries_and_resumes(tmp_path,
                                                       sample_dataset_dir):
  code, log = run_training(tmp_path, sample_dataset_dir,
                           '--max_number_of_steps', '2',
                           '--precision', 'mixed_bfloat16')
  assert code == 0, log
  assert checkpoint_step(tmp_path) == 2
  assert 'images/s' in log and 'ETA' in log
  tags = summary_tags(tmp_path)
  assert {'losses/total_loss', 'learning_rate',
          'losses/ssd_losses/localization',
          'losses/ssd_losses/cross_entropy_pos'} <= tags, tags
  assert any(tag.startswith('images_with_boxes') for tag in tags), tags
  with open(os.path.join(str(tmp_path), 'training_config.txt')) as config:
    text = config.read()
  assert '--batch_size=1' in text and 'sample_train_000.tfrecord' in text
  assert 'anchor_sizes' in text

  code, log = run_training(tmp_path, sample_dataset_dir,
                           '--max_number_of_steps', '3',
                           '--precision', 'mixed_bfloat16')
  assert code == 0, log
  assert 'Resuming from' in log and 'model.ckpt-2' in log
  assert checkpoint_step(tmp_path) == 3


def test_two_clones_on_logical_cpus(tmp_path, sample_dataset_dir):
  code, log = run_training(tmp_path, sample_dataset_dir,
                           '--max_number_of_steps', '2', '--num_clones', '2',
                           '--clone_on_cpu', '--precision', 'mixed_bfloat16')
  assert code == 0, log
  assert checkpoint_step(tmp_path) == 2
  tags = summary_tags(tmp_path)
  assert {'clone_0/losses/clone_loss', 'clone_0/losses/regularization_loss',
          'losses/total_loss'} <= tags, tags
  assert not any(tag.startswith('clone_1/') for tag in tags), tags


def _save_checkpoint(path, variables):
  """Saves {name: array} as a checkpoint at `path`; returns the prefix."""
  with tf.Graph().as_default():
    tf_variables = [v1.get_variable(name, initializer=value)
                    for name, value in variables.items()]
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
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


def test_imagenet_vgg16_init_with_zero_learning_rate(tmp_path,
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

  train_dir = tmp_path / 'train'
  exclude = ','.join(ssd_vgg_300.SSDNet().non_vgg_scopes())
  code, log = run_training(
      train_dir, sample_dataset_dir, '--max_number_of_steps', '1',
      '--checkpoint_path', prefix + '.data-00000-of-00001',
      '--checkpoint_model_scope', 'vgg_16',
      '--checkpoint_exclude_scopes', exclude,
      '--optimizer', 'sgd', '--learning_rate', '0',
      '--learning_rate_decay_type', 'fixed', '--precision', 'mixed_bfloat16')
  assert code == 0, log
  assert 'Initialising 26 variables from' in log
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(train_dir)))
  for name, value in vgg_values.items():
    np.testing.assert_array_equal(
        reader.get_tensor(name.replace('vgg_16/', 'ssd_300_vgg/', 1)), value)
  # The SSD-only layers kept their initial values.
  np.testing.assert_array_equal(
      reader.get_tensor('ssd_300_vgg/block4_box/L2Normalization/gamma'),
      np.full([512], 20.0, np.float32))
  np.testing.assert_array_equal(
      reader.get_tensor('ssd_300_vgg/block8/conv3x3/biases'),
      np.zeros([512], np.float32))


def test_class_count_mismatch_names_variables_and_fix(tmp_path,
                                                      sample_dataset_dir):
  shapes = _model_variable_shapes(21)
  _save_checkpoint(
      str(tmp_path / 'ssd' / 'ssd_300_vgg.ckpt'),
      {name: np.zeros(shape, np.float32) for name, shape in shapes.items()})
  code, log = run_training(tmp_path / 'train', sample_dataset_dir,
                           '--max_number_of_steps', '1',
                           '--checkpoint_path', str(tmp_path / 'ssd'))
  assert code == 1
  assert 'ssd_300_vgg/block4_box/conv_cls/weights' in log
  assert '--checkpoint_exclude_scopes=ssd_300_vgg/block4_box' in log
  assert 'Traceback' not in log
  assert 'Assign requires shapes' not in log


def test_missing_checkpoint_is_a_clear_error(tmp_path, sample_dataset_dir):
  code, log = run_training(tmp_path / 'train', sample_dataset_dir,
                           '--checkpoint_path', str(tmp_path / 'nope.ckpt'))
  assert code == 1
  assert 'nope.ckpt does not exist' in log
  assert 'Traceback' not in log


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
  code, log = run_training(
      tmp_path, sample_dataset_dir, '--max_number_of_steps', '20',
      '--optimizer', 'sgd', '--learning_rate', '1e12',
      '--learning_rate_decay_type', 'fixed', '--precision', 'mixed_bfloat16')
  assert code == 1, log
  assert 'Non-finite loss or gradient at step' in log
  assert 'learning_rate' in log and 'gradients_finite' in log
  assert 'Traceback' not in log
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path)))
  for name in reader.get_variable_to_shape_map():
    assert np.all(np.isfinite(reader.get_tensor(name))), name


def _fixed_batch(dataset_dir, ssd_net, num_images):
  """The first `num_images` sample images, resized and encoded.

  Returns:
    A list of (image file name, network input, (gclasses, glocalisations,
    gscores), labels, boxes), numpy values.
  """
  from datasets import dataset_factory  # pylint: disable=g-import-not-at-top
  from preprocessing import preprocessing_factory  # pylint: disable=g-import-not-at-top
  preprocess = preprocessing_factory.get_preprocessing('ssd_300_vgg',
                                                       is_training=False)
  dataset = dataset_factory.get_dataset('voc', 'train', dataset_dir)
  anchors = ssd_net.anchors(ssd_net.params.img_shape)
  with tf.Graph().as_default():
    example = v1.data.make_one_shot_iterator(
        dataset.read(shuffle=False)).get_next()
    image, labels, bboxes, _ = preprocess(
        example['image'], example['labels'], example['bboxes'],
        out_shape=ssd_net.params.img_shape)
    targets = ssd_net.bboxes_encode(labels, bboxes, anchors)
    with v1.Session() as sess:
      return [sess.run([example['filename'], image, targets, labels, bboxes])
              for _ in range(num_images)]


def _iou(box_a, box_b):
  (ya0, xa0, ya1, xa1), (yb0, xb0, yb1, xb1) = box_a, box_b
  inter = (max(0, min(ya1, yb1) - max(ya0, yb0)) *
           max(0, min(xa1, xb1) - max(xa0, xb0)))
  union = (ya1 - ya0) * (xa1 - xa0) + (yb1 - yb0) * (xb1 - xb0) - inter
  return inter / union


def test_learns_a_tiny_fixed_batch_and_the_demo_finds_the_objects(
    tmp_path, sample_dataset_dir):
  """Loss falls by a clear factor; the demo then finds every object."""
  import demo_ssd  # pylint: disable=g-import-not-at-top
  from deployment import model_deploy  # pylint: disable=g-import-not-at-top
  from utils import train_tools  # pylint: disable=g-import-not-at-top
  ssd_class = nets_factory.get_network('ssd_300_vgg')
  ssd_net = ssd_class(ssd_class.default_params._replace(num_classes=4))
  examples = _fixed_batch(sample_dataset_dir, ssd_net, 2)
  images = np.stack([example[1] for example in examples])
  gclasses, glocalisations, gscores = [
      [np.stack([example[2][kind][layer] for example in examples])
       for layer in range(len(ssd_net.params.feat_layers))]
      for kind in range(3)]
  with tf.Graph().as_default():
    v1.set_random_seed(0)
    with slim.arg_scope(ssd_net.arg_scope(weight_decay=0.0005)):
      _, localisations, logits, _ = ssd_net.net(tf.constant(images),
                                                is_training=True)
    ssd_net.losses(logits, localisations, gclasses, glocalisations, gscores)
    total_loss = tf.add_n(v1.losses.get_losses() +
                          v1.losses.get_regularization_losses())
    train_op = v1.train.AdamOptimizer(1e-3).minimize(total_loss)
    config = train_tools.session_config(model_deploy.DeploymentConfig(),
                                        precision='mixed_bfloat16')
    with v1.Session(config=config) as sess:
      sess.run(v1.global_variables_initializer())
      losses = [sess.run([train_op, total_loss])[1] for _ in range(80)]
      checkpoint = v1.train.Saver(slim.get_model_variables()).save(
          sess, str(tmp_path / 'model.ckpt'))
  assert np.all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < 0.25 * losses[0], losses

  image_files = [os.path.join(sample_dataset_dir, 'voc', 'JPEGImages',
                              example[0].decode()) for example in examples]
  found = demo_ssd.detect(checkpoint, image_files, num_classes=4)
  for (_, _, _, labels, boxes), detections in zip(examples, found):
    # Detections are in pixels of the original image; boxes normalised.
    height, width = detections.height, detections.width
    for label, box in zip(labels, boxes):
      matches = [score for cls, score, det in zip(
          detections.classes, detections.scores, detections.bboxes)
                 if cls == label and score > 0.5 and
                 _iou(box, det) > 0.5]
      assert matches, (label, box, detections, height, width)
