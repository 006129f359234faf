"""Tests of nets/target_assigner.py (via SSDNet.bboxes_encode): match result
to class targets, encoded boxes and IoUs, on SSD300's 8732 anchors."""
import math

import numpy as np
import pytest
import tensorflow as tf

from nets import ssd_vgg_300

SSD = ssd_vgg_300.SSDNet()
ANCHORS = SSD.anchors()


def _flat_anchor_boxes():
  """All anchors as [N, 4] boxes (ymin, xmin, ymax, xmax), layers in order."""
  boxes = []
  for cy, cx, h, w in ANCHORS:
    cy, cx, h, w = np.broadcast_arrays(cy, cx, h, w)
    boxes.append(np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2],
                          axis=-1).reshape(-1, 4))
  return np.concatenate(boxes).astype(np.float64)


def _numpy_iou(box, boxes):
  """IoU of one box with each of [N, 4] boxes, written out independently."""
  height = np.clip(np.minimum(box[2], boxes[:, 2]) -
                   np.maximum(box[0], boxes[:, 0]), 0, None)
  width = np.clip(np.minimum(box[3], boxes[:, 3]) -
                  np.maximum(box[1], boxes[:, 1]), 0, None)
  inter = height * width
  box_area = (box[2] - box[0]) * (box[3] - box[1])
  areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
  return inter / (box_area + areas - inter)


def _encode(labels, bboxes, **kwargs):
  """Runs SSD.bboxes_encode; returns flat (gclasses, glocalisations,
  gious) over the 8732 anchors, in layer order."""
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    encoded = SSD.bboxes_encode(
        tf.constant(labels, tf.int64),
        tf.constant(np.reshape(bboxes, [-1, 4]), tf.float32), ANCHORS,
        **kwargs)
    assert encoded._fields == ('gclasses', 'glocalisations', 'gious')
    gclasses, glocalisations, gious = sess.run(encoded)
  for layer, (cy, _, h, _) in enumerate(ANCHORS):
    shape = cy.shape[:2] + h.shape
    assert gclasses[layer].shape == shape
    assert gclasses[layer].dtype == np.int64
    assert glocalisations[layer].shape == shape + (4,)
    assert gious[layer].shape == shape
  return (np.concatenate([g.reshape(-1) for g in gclasses]),
          np.concatenate([g.reshape(-1, 4) for g in glocalisations]),
          np.concatenate([g.reshape(-1) for g in gious]))


def _hand_encoding(box, anchor_box):
  """(cx, cy, w, h) encoding with prior scalings 0.1, 0.1, 0.2, 0.2."""
  box_cy, box_cx = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
  box_h, box_w = box[2] - box[0], box[3] - box[1]
  cy = (anchor_box[0] + anchor_box[2]) / 2
  cx = (anchor_box[1] + anchor_box[3]) / 2
  h, w = anchor_box[2] - anchor_box[0], anchor_box[3] - anchor_box[1]
  return [(box_cx - cx) / w / 0.1, (box_cy - cy) / h / 0.1,
          math.log(box_w / w) / 0.2, math.log(box_h / h) / 0.2]


def test_box_equal_to_an_anchor_makes_every_anchor_above_threshold_positive():
  anchor_boxes = _flat_anchor_boxes()
  box = anchor_boxes[5776 + 9 * 19 * 6 + 9 * 6 + 2]  # block7, cell (9, 9).
  gclasses, glocalisations, gious = _encode([3], box)
  overlaps = _numpy_iou(box, anchor_boxes)
  np.testing.assert_array_equal(gclasses, np.where(overlaps >= 0.5, 3, 0))
  np.testing.assert_allclose(gious, overlaps, atol=1e-5)
  assert gious.max() == pytest.approx(1.)
  positives = np.nonzero(gclasses)[0]
  assert len(positives) > 1
  for anchor in positives:
    np.testing.assert_allclose(glocalisations[anchor],
                               _hand_encoding(box, anchor_boxes[anchor]),
                               rtol=1e-4, atol=1e-4)
  assert np.all(glocalisations[gclasses == 0] == 0.)


def test_hand_built_positive_encodes_in_cx_cy_w_h_order():
  # block8's small square at cell (4, 4): centre (0.48, 0.48), size 0.33.
  anchor = 5776 + 2166 + (4 * 10 + 4) * 6
  np.testing.assert_allclose(_flat_anchor_boxes()[anchor],
                             [0.315, 0.315, 0.645, 0.645], atol=1e-6)
  # Box centred at (0.48, 0.52), height 0.30, width 0.36: IoU 0.7297.
  gclasses, glocalisations, gious = _encode([7], [0.33, 0.34, 0.63, 0.70])
  assert gclasses[anchor] == 7
  assert gious[anchor] == pytest.approx(0.0915 / 0.1254, rel=1e-5)
  # ((0.52-0.48)/0.33/0.1, 0/0.33/0.1, log(0.36/0.33)/0.2, log(0.30/0.33)/0.2)
  np.testing.assert_allclose(glocalisations[anchor],
                             [1.212121, 0., 0.435057, -0.476551], atol=1e-5)


def test_tiny_box_still_gets_exactly_one_positive():
  box = np.array([0.3, 0.6, 0.31, 0.605])
  overlaps = _numpy_iou(box, _flat_anchor_boxes())
  best = np.argmax(overlaps)
  assert overlaps.max() < 0.5 and np.sum(overlaps == overlaps.max()) == 1
  gclasses, glocalisations, gious = _encode([4], box)
  np.testing.assert_array_equal(np.nonzero(gclasses)[0], [best])
  assert gclasses[best] == 4
  assert gious[best] == pytest.approx(overlaps[best], rel=1e-4)
  np.testing.assert_allclose(glocalisations[best],
                             _hand_encoding(box, _flat_anchor_boxes()[best]),
                             rtol=1e-4, atol=1e-4)
  # Negatives keep their best IoU as score.
  np.testing.assert_allclose(gious, overlaps, atol=1e-5)


def test_anchor_overlapping_two_boxes_takes_the_better_one():
  anchor = 5776 + 2166 + (4 * 10 + 4) * 6  # [0.315, 0.315, 0.645, 0.645]
  closer = [0.315, 0.335, 0.645, 0.665]    # Shifted 0.02 in x: IoU 0.8857.
  farther = [0.365, 0.315, 0.695, 0.645]   # Shifted 0.05 in y: IoU 0.7368.
  anchor_box = _flat_anchor_boxes()[anchor]
  assert _numpy_iou(np.array(closer), anchor_box[np.newaxis])[0] > 0.88
  assert _numpy_iou(np.array(farther), anchor_box[np.newaxis])[0] > 0.73
  for labels, boxes in (([1, 2], [closer, farther]),
                        ([2, 1], [farther, closer])):
    gclasses, glocalisations, _ = _encode(labels, boxes)
    assert gclasses[anchor] == 1
    np.testing.assert_allclose(glocalisations[anchor],
                               _hand_encoding(closer, anchor_box), atol=1e-4)


def test_two_boxes_sharing_their_best_anchor_both_get_a_positive():
  # Two 12 x 12 px boxes 3 px apart, far below every anchor's size: their
  # best anchor is the same conv4_3 anchor, and no IoU reaches 0.5.  Greedy
  # bipartite matching still gives each box one forced positive.
  small = np.array([100., 100., 112., 112.]) / 300.
  shifted = np.array([100., 103., 112., 115.]) / 300.
  anchor_boxes = _flat_anchor_boxes()
  small_iou, shifted_iou = (_numpy_iou(small, anchor_boxes),
                            _numpy_iou(shifted, anchor_boxes))
  assert max(small_iou.max(), shifted_iou.max()) < 0.5
  assert np.argmax(small_iou) == np.argmax(shifted_iou)
  gclasses, glocalisations, gious = _encode([5, 6], [small, shifted])
  assert [np.sum(gclasses == 5), np.sum(gclasses == 6)] == [1, 1]
  (first,), (second,) = np.flatnonzero(gclasses == 5), np.flatnonzero(
      gclasses == 6)
  assert gious[first] == pytest.approx(small_iou[first], rel=1e-4)
  assert gious[second] == pytest.approx(shifted_iou[second], rel=1e-4)
  for anchor, box in ((first, small), (second, shifted)):
    np.testing.assert_allclose(glocalisations[anchor],
                               _hand_encoding(box, anchor_boxes[anchor]),
                               rtol=1e-4, atol=1e-4)


def test_image_without_boxes_is_all_background():
  gclasses, glocalisations, gious = _encode(np.zeros([0], np.int64),
                                              np.zeros([0, 4]))
  assert np.all(gclasses == 0)
  assert np.all(glocalisations == 0.)
  assert np.all(gious == 0.)


def test_empty_box_is_ignored_without_nan():
  gclasses, glocalisations, gious = _encode(
      [1, 2], [[0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.4, 0.3]])
  assert np.all(np.isfinite(glocalisations)) and np.all(np.isfinite(gious))
  assert set(np.unique(gclasses)) == {0, 2}


def test_match_threshold_moves_the_positives():
  anchor_boxes = _flat_anchor_boxes()
  box = np.array([0.2, 0.25, 0.6, 0.7])
  overlaps = _numpy_iou(box, anchor_boxes)
  best = np.argmax(overlaps)
  for threshold in (0.3, 0.5, 0.7):
    gclasses, _, _ = _encode([2], box, match_threshold=threshold)
    expected = (overlaps >= threshold) | (np.arange(len(overlaps)) == best)
    np.testing.assert_array_equal(gclasses, np.where(expected, 2, 0))
  assert np.sum(overlaps >= 0.3) > np.sum(overlaps >= 0.5) > np.sum(
      overlaps >= 0.7) > 0


def test_ignore_band_gives_the_explicit_ignored_label():
  anchor_boxes = _flat_anchor_boxes()
  box = np.array([0.2, 0.25, 0.6, 0.7])
  overlaps = _numpy_iou(box, anchor_boxes)
  gclasses, glocalisations, gious = _encode(
      [2], box, match_threshold=0.5, negative_threshold=0.3)
  expected = np.where(overlaps >= 0.5, 2, np.where(overlaps >= 0.3, -1, 0))
  assert np.sum(expected == -1) > 0
  np.testing.assert_array_equal(gclasses, expected)
  assert np.all(glocalisations[gclasses <= 0] == 0.)
  np.testing.assert_allclose(gious, overlaps, atol=1e-5)
