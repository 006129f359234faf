"""The training library learns: a tiny fixed batch is memorised, and the demo
then finds its objects.

`trained_checkpoint` (session scope) trains once, in-process, with the
library's own graph (graph.build_training_graph with a fixed-batch
input_fn), and can serve any test that needs a trained model.
"""
import os

import numpy as np
import pytest
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from datasets import dataset_factory
from nets import nets_factory
from preprocessing import preprocessing_factory
from utils.trainer import config as config_lib
from utils.trainer import graph as graph_lib
from utils.trainer import input_pipeline
from utils.trainer import train_tools

v1 = tf.compat.v1

# The first sample image memorised in a few steps at a high rate, training
# the prediction heads alone on the random backbone's features (the backward
# pass stops at the heads: about 2x faster a step than training it all).
NUM_IMAGES = 1
NUM_STEPS = 30
LEARNING_RATE = 0.01


def _sample_examples(dataset_dir, ssd_net, num_images):
  """The first sample images, resized (no augmentation) and encoded.

  Returns:
    (flat batch of arrays for fixed_batch_input_fn, batch_shape,
    [(file name, labels, boxes)]).
  """
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
      examples = [sess.run([example['filename'], image, targets, labels,
                            bboxes]) for _ in range(num_images)]
  num_layers = len(anchors)
  batch = [np.stack([example[1] for example in examples])]
  for kind in range(3):
    batch += [np.stack([example[2][kind][layer] for example in examples])
              for layer in range(num_layers)]
  truth = [(example[0], example[3], example[4]) for example in examples]
  return batch, [1] + [num_layers] * 3, truth


@pytest.fixture(scope='session')
def trained_checkpoint(tmp_path_factory, sample_dataset_dir):
  """(checkpoint prefix, losses, [(image path, labels, boxes)]) of a model
  trained on the first sample image(s); ssd_params.json beside it."""
  train_dir = str(tmp_path_factory.mktemp('trained'))
  ssd_net = nets_factory.build_ssd_net('ssd_300_vgg', num_classes=4)
  batch, batch_shape, truth = _sample_examples(sample_dataset_dir, ssd_net,
                                               NUM_IMAGES)
  config = config_lib.TrainingConfig(
      data=config_lib.DataOptions(batch_size=NUM_IMAGES),
      optimisation=config_lib.OptimisationOptions(
          learning_rate=LEARNING_RATE, learning_rate_decay_type='fixed',
          warmup_steps=0, trainable_scopes=','.join(
              'ssd_300_vgg/%s_box' % layer
              for layer in ssd_net.params.feat_layers)),
      deployment=config_lib.DeploymentOptions(precision='float32'), seed=0)
  with tf.Graph().as_default():
    v1.set_random_seed(config.seed)
    deploy_config = graph_lib.make_deploy_config(config.deployment)
    tensors = graph_lib.build_training_graph(
        config, ssd_net, deploy_config,
        input_pipeline.fixed_batch_input_fn(batch, batch_shape),
        num_samples=1)
    session_config = train_tools.session_config(deploy_config)
    with v1.Session(config=session_config) as sess:
      sess.run([v1.global_variables_initializer(),
                v1.local_variables_initializer()])
      losses = [sess.run(tensors.train_op) for _ in range(NUM_STEPS)]
      prefix = v1.train.Saver(slim.get_model_variables()).save(
          sess, os.path.join(train_dir, 'model.ckpt'))
  nets_factory.write_ssd_params(train_dir, 'ssd_300_vgg', ssd_net.params)
  images = [(os.path.join(sample_dataset_dir, 'voc', 'JPEGImages',
                          name.decode()), labels, boxes)
            for name, labels, boxes in truth]
  return prefix, losses, images


def _iou(box_a, box_b):
  (ya0, xa0, ya1, xa1), (yb0, xb0, yb1, xb1) = box_a, box_b
  inter = (max(0, min(ya1, yb1) - max(ya0, yb0)) *
           max(0, min(xa1, xb1) - max(xa0, xb0)))
  union = (ya1 - ya0) * (xa1 - xa0) + (yb1 - yb0) * (xb1 - xb0) - inter
  return inter / union


def test_loss_falls_on_a_fixed_batch(trained_checkpoint):
  _, losses, _ = trained_checkpoint
  assert np.all(np.isfinite(losses))
  # Memorised: the last losses end far below the first one.
  assert np.mean(losses[-5:]) < 0.35 * losses[0], losses


def test_the_demo_finds_the_memorised_objects(trained_checkpoint):
  from utils.inference import demo  # pylint: disable=g-import-not-at-top
  prefix, _, images = trained_checkpoint
  found = demo.detect(prefix, [path for path, _, _ in images])
  for (_, labels, boxes), detections in zip(images, found):
    for label, box in zip(labels, boxes):
      matches = [score for cls, score, det in zip(
          detections.classes, detections.scores, detections.bboxes)
                 if cls == label and score > 0.5 and _iou(box, det) > 0.5]
      assert matches, (label, box, detections)
