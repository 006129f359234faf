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
