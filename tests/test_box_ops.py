"""Tests of utils/common/box_ops.py: the one TF area, intersection, IoU and clip."""
import numpy as np
import tensorflow as tf

from utils.common import box_ops

# Box centred at (0.48, 0.52), 0.30 x 0.36, and block8's square anchor
# [0.315, 0.315, 0.645, 0.645]: intersection 0.30 * 0.305 = 0.0915, union
# 0.1089 + 0.108 - 0.0915 = 0.1254.
BOX = [0.33, 0.34, 0.63, 0.70]
ANCHOR_BOX = [0.315, 0.315, 0.645, 0.645]
DISJOINT = [0.7, 0.7, 0.9, 0.9]
EMPTY = [0.5, 0.5, 0.5, 0.5]


def _run(tensor):
  with tf.compat.v1.Session() as sess:
    return sess.run(tensor)


def test_area_intersection_and_iou_by_hand():
  with tf.Graph().as_default():
    area, intersection, iou = _run([
        box_ops.area(tf.constant([BOX, ANCHOR_BOX])),
        box_ops.intersection(tf.constant(BOX), tf.constant(ANCHOR_BOX)),
        box_ops.iou(tf.constant(BOX), tf.constant(ANCHOR_BOX))])
  np.testing.assert_allclose(area, [0.108, 0.1089], rtol=1e-5)
  np.testing.assert_allclose(intersection, 0.0915, rtol=1e-5)
  np.testing.assert_allclose(iou, 0.0915 / 0.1254, rtol=1e-5)


def test_iou_broadcasts_and_is_zero_for_disjoint_and_empty_boxes():
  with tf.Graph().as_default():
    pairs, empty = _run([
        box_ops.iou(tf.constant([[BOX], [DISJOINT]]),
                    tf.constant([BOX, DISJOINT, ANCHOR_BOX])),
        box_ops.iou(tf.constant(EMPTY), tf.constant(EMPTY))])
  assert pairs.shape == (2, 3)
  np.testing.assert_allclose(pairs, [[1., 0., 0.0915 / 0.1254],
                                     [0., 1., 0.]], rtol=1e-5)
  assert empty == 0.


def test_clip_moves_coordinates_into_the_window():
  boxes = np.array([[-0.1, 0.2, 0.5, 1.3],    # Crosses two borders.
                    [1.2, 1.1, 1.5, 1.4]],    # Entirely outside.
                   np.float32)
  with tf.Graph().as_default():
    full, window = _run([box_ops.clip(boxes, [0., 0., 1., 1.]),
                         box_ops.clip(tf.constant(boxes),
                                      tf.constant([0.1, 0., 0.9, 1.]))])
  np.testing.assert_allclose(full, [[0., 0.2, 0.5, 1.], [1., 1., 1., 1.]])
  np.testing.assert_allclose(window, [[0.1, 0.2, 0.5, 1.],
                                      [0.9, 1., 0.9, 1.]])
