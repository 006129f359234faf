"""Checkpoints and data with known detections, shared by the evaluation,
demo and export tests (this module holds no tests).

`write_checkpoint` builds an SSD300 checkpoint whose class heads output only
their biases (zero weights) and whose localisation heads output 0, so every
image gets the same detections: anchors of the 1x1 block11 layer, whose
boxes are hand-computable.  block11's anchors are centred on the image,
sizes in pixels of the 300x300 input (SSDNet.default_params):
  0: 261 x 261 square -> (ymin, xmin, ymax, xmax) = (0.065, 0.065, 0.935,
     0.935) after dividing by 300;
  3: ratio 1/2, height 261 * sqrt(2) = 369.1 (clipped to the image, 0..1),
     width 261 / sqrt(2) = 184.55 -> x in 0.5 -+ 0.30759.
"""
import os
import xml.etree.ElementTree as ElementTree

import cv2
import numpy as np
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from datasets import pascalvoc_to_tfrecords
from nets import nets_factory

v1 = tf.compat.v1

CLASS_NAMES = ('cat', 'dog', 'bird')
NUM_CLASSES = len(CLASS_NAMES) + 1
GLOBAL_STEP = 1234
SQUARE_ANCHOR, TALL_ANCHOR = 0, 3
SQUARE_BOX = (0.065, 0.065, 0.935, 0.935)
TALL_BOX = (0., 0.5 - 0.5 * 261 / 2 ** 0.5 / 300, 1.,
            0.5 + 0.5 * 261 / 2 ** 0.5 / 300)
# Object-class bias of the anchors without a set detection: never detected,
# or (random weights) detected with a score around 0.05 that depends on the
# image through block4's logits (their standard deviation is about 1).
_NEVER_LOGIT = -30.
_RANDOM_LOGIT = -3.


def _class_biases(num_anchors, detections, object_logit):
  """conv_cls biases [A * K]: background logit 0, other classes
  `object_logit`, except {anchor: (label, score)}, whose label gets the
  logit giving `score` (its softmax against background is a sigmoid)."""
  logits = np.full([num_anchors, NUM_CLASSES], object_logit, np.float32)
  logits[:, 0] = 0.
  for anchor, (label, score) in detections.items():
    logits[anchor, label] = np.log(score / (1. - score))
  return logits.reshape(-1)


def write_checkpoint(directory, detections, random_weights=False,
                     average_detections=None):
  """Writes `<directory>/model.ckpt-1234` (and the `checkpoint` index).

  Args:
    directory: output folder.
    detections: {block11 anchor: (label, score)}: the detections of every
      image, with box SQUARE_BOX for SQUARE_ANCHOR, TALL_BOX for TALL_ANCHOR.
    random_weights: keep the class heads' random weights and let the other
      anchors detect objects too (scores about 0.05): detections then depend
      on the image.
    average_detections: if set, the checkpoint also holds moving averages
      (`<name>/ExponentialMovingAverage`) equal to the weights except for
      block11's class biases, set for these detections instead.

  Returns:
    The checkpoint prefix.
  """
  ssd_net = nets_factory.build_ssd_net('ssd_300_vgg', num_classes=NUM_CLASSES)
  with tf.Graph().as_default():
    # Fixed random weights: with random_weights, an unlucky draw could let
    # another anchor outscore the set detection.
    v1.set_random_seed(1234)
    global_step = v1.train.get_or_create_global_step()
    with slim.arg_scope(ssd_net.arg_scope()):
      ssd_net.net(v1.placeholder(tf.float32, [1, 300, 300, 3]),
                  is_training=False)
    variables = slim.get_model_variables()
    heads = [variable for variable in variables
             if '_box/conv_' in variable.op.name]
    if average_detections is not None:
      averages = v1.train.ExponentialMovingAverage(0.99)
      averages.apply(variables)
    with v1.Session() as session:
      # Moving averages start equal to their variables.
      session.run(v1.global_variables_initializer())
      global_step.load(GLOBAL_STEP, session)
      for variable, values in zip(heads, session.run(heads)):
        name = variable.op.name
        variable.load(_head_values(name, values, detections, random_weights),
                      session)
        if average_detections is not None:
          averages.average(variable).load(_head_values(
              name, values, average_detections, random_weights), session)
      return v1.train.Saver().save(
          session, os.path.join(directory, 'model.ckpt'),
          global_step=GLOBAL_STEP)


def _head_values(name, values, detections, random_weights):
  """The value of head variable `name` in `write_checkpoint`."""
  if '/conv_cls/biases' in name:
    in_block11 = name.startswith('ssd_300_vgg/block11_box/')
    return _class_biases(
        values.size // NUM_CLASSES, detections if in_block11 else {},
        _RANDOM_LOGIT if random_weights else _NEVER_LOGIT)
  if '/conv_loc/' in name or not random_weights:
    return np.zeros_like(values)
  return values


def write_voc_split(directory, images):
  """Writes a VOC tree and converts it: split 'val' of dataset 'voc'.

  Args:
    directory: gets `voc/` and the converted TFRecords.
    images: list of (image_id, height, width, objects), objects a list of
      (class name, xmin, ymin, xmax, ymax, difficult), in that order.

  Returns:
    The TFRecords directory.
  """
  voc_dir = os.path.join(directory, 'voc')
  for folder in ('JPEGImages', 'Annotations'):
    os.makedirs(os.path.join(voc_dir, folder))
  for image_id, height, width, objects in images:
    cv2.imwrite(os.path.join(voc_dir, 'JPEGImages', image_id + '.jpg'),
                gray_image(height, width))
    root = ElementTree.Element('annotation')
    ElementTree.SubElement(root, 'filename').text = image_id + '.jpg'
    for name, xmin, ymin, xmax, ymax, difficult in objects:
      element = ElementTree.SubElement(root, 'object')
      ElementTree.SubElement(element, 'name').text = name
      ElementTree.SubElement(element, 'difficult').text = str(difficult)
      box = ElementTree.SubElement(element, 'bndbox')
      for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'),
                            (xmin, ymin, xmax, ymax)):
        ElementTree.SubElement(box, tag).text = str(value)
    ElementTree.ElementTree(root).write(
        os.path.join(voc_dir, 'Annotations', image_id + '.xml'))
  output_dir = os.path.join(directory, 'tfrecords')
  pascalvoc_to_tfrecords.convert(
      voc_dir, output_dir, 'test_val',
      image_ids=[image[0] for image in images], class_names=CLASS_NAMES)
  return output_dir


def gray_image(height, width, seed=0):
  """A noisy gray BGR image (any content does for fixed detections)."""
  rng = np.random.default_rng(seed)
  return rng.integers(80, 180, size=(height, width, 3), dtype=np.uint8)

