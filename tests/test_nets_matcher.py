"""Tests of nets/matcher.py: explicit match results from IoU matrices."""
import numpy as np
import pytest
import tensorflow as tf

from nets import matcher


def _match(overlaps, **kwargs):
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    result = matcher.match(
        tf.constant(np.reshape(overlaps, [-1, np.shape(overlaps)[-1]]),
                    tf.float32), **kwargs)
    indices, ious = sess.run(result)
  assert indices.dtype == np.int64 and ious.dtype == np.float32
  return indices, ious


def test_states_by_hand():
  # 2 boxes x 6 anchors.  Anchor 0: box 1 at 0.8.  Anchor 1: box 0 at 0.6.
  # Anchor 2: best 0.45 (ignored with negative_threshold 0.4).  Anchor 3:
  # 0.2, background.  Anchor 4: no overlap.  Anchor 5: 0.55 with both boxes,
  # the first one kept.
  overlaps = [[0.1, 0.6, 0.45, 0.2, 0., 0.55],
              [0.8, 0.3, 0.1, 0.1, 0., 0.55]]
  indices, ious = _match(overlaps, match_threshold=0.5,
                         negative_threshold=0.4)
  np.testing.assert_array_equal(indices, [1, 0, matcher.IGNORED,
                                          matcher.BACKGROUND,
                                          matcher.BACKGROUND, 0])
  np.testing.assert_allclose(ious, [0.8, 0.6, 0.45, 0.2, 0., 0.55])
  # Without a band nothing is ignored.
  indices, _ = _match(overlaps, match_threshold=0.5)
  np.testing.assert_array_equal(indices, [1, 0, -1, -1, -1, 0])


def test_a_box_below_the_threshold_is_forced_onto_its_best_anchor():
  overlaps = [[0.1, 0.3, 0.2], [0.6, 0.05, 0.]]
  indices, ious = _match(overlaps, match_threshold=0.5)
  np.testing.assert_array_equal(indices, [1, 0, -1])
  np.testing.assert_allclose(ious, [0.6, 0.3, 0.2])


def test_forced_match_wins_over_a_better_threshold_match():
  # Anchor 0 is box 1's only overlap (0.3) and box 0's second best (0.7):
  # box 1 is forced onto it; box 0 keeps its best anchor 1.
  indices, ious = _match([[0.7, 0.9], [0.3, 0.]], match_threshold=0.5)
  np.testing.assert_array_equal(indices, [1, 0])
  np.testing.assert_allclose(ious, [0.3, 0.9])


@pytest.mark.parametrize('overlaps', [np.zeros([0, 3]), np.zeros([2, 3])])
def test_no_box_or_no_overlap_is_all_background(overlaps):
  indices, ious = _match(overlaps)
  np.testing.assert_array_equal(indices, [matcher.BACKGROUND] * 3)
  np.testing.assert_array_equal(ious, [0., 0., 0.])


def _caffe_match(overlaps, threshold):
  """SSD-Caffe's MatchBBox (bipartite, then per prediction), in loops."""
  num_boxes, num_anchors = overlaps.shape
  indices = np.full(num_anchors, -1)
  ious = overlaps.max(axis=0, initial=0.)
  pool = list(range(num_boxes))
  while pool:
    best, best_anchor, best_box = -1., -1, -1
    for anchor in range(num_anchors):
      if indices[anchor] != -1:
        continue
      for box in pool:
        if overlaps[box, anchor] > 1e-6 and overlaps[box, anchor] > best:
          best, best_anchor, best_box = overlaps[box, anchor], anchor, box
    if best_anchor == -1:
      break
    indices[best_anchor], ious[best_anchor] = best_box, best
    pool.remove(best_box)
  for anchor in range(num_anchors):
    best, best_box = -1., -1
    for box in range(num_boxes):
      if overlaps[box, anchor] >= threshold and overlaps[box, anchor] > best:
        best, best_box = overlaps[box, anchor], box
    if indices[anchor] == -1 and best_box != -1:
      indices[anchor] = best_box
  return indices, ious


@pytest.mark.parametrize('seed, num_boxes, num_anchors, density', [
    (0, 6, 12, 0.3), (1, 6, 12, 0.3), (2, 6, 4, 0.6), (3, 30, 200, 0.05)])
def test_random_overlaps_match_like_caffe(seed, num_boxes, num_anchors,
                                          density):
  rng = np.random.RandomState(seed)
  # Boxes competing for few anchors: sparse overlaps, mostly small; IoUs on
  # a 1/64 grid, so that ties happen.
  shape = [num_boxes, num_anchors]
  overlaps = (np.round(rng.uniform(0., 0.7, shape) * 64) / 64 *
              (rng.uniform(size=shape) < density)).astype(np.float32)
  overlaps[-1] = 0.  # A box overlapping nothing gets no anchor.
  indices, ious = _match(overlaps, match_threshold=0.5)
  expected_indices, expected_ious = _caffe_match(overlaps, 0.5)
  np.testing.assert_array_equal(indices, expected_indices)
  np.testing.assert_allclose(ious, expected_ious)
  assert num_boxes - 1 not in indices
  if num_anchors >= num_boxes:
    assert np.sum(indices[:, np.newaxis] == np.arange(num_boxes - 1),
                  axis=0).min() >= 1


def test_two_small_boxes_3_px_apart_get_one_forced_positive_each():
  # SSD300's anchors and two 12 x 12 px boxes 3 px apart (IoUs < 0.5).
  from nets import anchor_generator  # pylint: disable=g-import-not-at-top
  from nets import ssd_vgg_300  # pylint: disable=g-import-not-at-top
  from utils.common import box_ops  # pylint: disable=g-import-not-at-top
  flat, _ = anchor_generator.flatten_anchors(ssd_vgg_300.SSDNet().anchors())
  boxes = np.array([[100., 100., 112., 112.], [100., 103., 112., 115.]],
                   np.float32) / 300.
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    overlaps = box_ops.iou(tf.constant(boxes)[:, tf.newaxis],
                           anchor_generator.anchor_corners(flat))
    result = matcher.match(overlaps, match_threshold=0.5)
    overlaps, (indices, ious) = sess.run([overlaps, result])
  assert overlaps.max() < 0.5
  # Both boxes have the same argmax anchor: if each box only claimed its
  # argmax anchor (the better box winning it), the second would have no
  # positive.
  assert np.argmax(overlaps[0]) == np.argmax(overlaps[1])
  assert [np.sum(indices == box) for box in (0, 1)] == [1, 1]
  expected_indices, expected_ious = _caffe_match(overlaps, 0.5)
  np.testing.assert_array_equal(indices, expected_indices)
  np.testing.assert_allclose(ious, expected_ious)


def _picks(overlaps):
  """(fast-path condition, greedy loop's picks) of the internal helpers."""
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    overlaps = tf.constant(overlaps, tf.float32)
    distinct = matcher._best_anchors_are_distinct(  # pylint: disable=protected-access
        tf.argmax(overlaps, axis=1), tf.reduce_max(overlaps, axis=1))
    return sess.run(
        [distinct, matcher._greedy_picks(overlaps)])  # pylint: disable=protected-access


def test_distinct_best_anchors_by_hand():
  # Boxes 0 and 1 share anchor 1: the loop is needed.
  assert not _picks([[0.1, 0.6, 0.], [0.2, 0.5, 0.4]])[0]
  # Distinct best anchors (box 2 overlaps nothing: its argmax 0 is no claim).
  distinct, (anchors, ious) = _picks([[0.7, 0.6, 0.], [0.2, 0.5, 0.4],
                                      [0., 0., 0.]])
  assert distinct
  np.testing.assert_array_equal(anchors, [0, 1, -1])
  np.testing.assert_allclose(ious, [0.7, 0.5, 0.])
  # Two identical boxes always collide.
  assert not _picks([[0.3, 0.2], [0.3, 0.2]])[0]


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_distinct_best_anchors_take_the_argmax_like_the_loop(seed):
  """Dense continuous IoUs: best anchors distinct, so `match` takes its
  argmax path; it agrees with the loop and with SSD-Caffe's rule."""
  rng = np.random.RandomState(seed)
  overlaps = rng.uniform(0., 0.7, [8, 300]).astype(np.float32)
  overlaps[3] = 0.
  distinct, (anchors, ious) = _picks(overlaps)
  assert distinct
  np.testing.assert_array_equal(
      anchors, np.where(overlaps.max(axis=1) > 0, overlaps.argmax(axis=1), -1))
  np.testing.assert_allclose(ious, overlaps.max(axis=1))
  indices, matched_ious = _match(overlaps, match_threshold=0.5)
  expected_indices, expected_ious = _caffe_match(overlaps, 0.5)
  np.testing.assert_array_equal(indices, expected_indices)
  np.testing.assert_allclose(matched_ious, expected_ious)
