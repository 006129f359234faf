"""Matching ground-truth boxes to anchors: an explicit result per anchor.

Each anchor ends up in one of three states, held in `matched_indices`:
  * matched: the index (>= 0) of its ground-truth box;
  * BACKGROUND (-1): a negative, a candidate for hard-negative mining;
  * IGNORED (-2): neither (IoU in the ignore band), left out of the loss.
"""
import collections

import tensorflow as tf

BACKGROUND = -1
IGNORED = -2

MatchResult = collections.namedtuple('MatchResult', [
    'matched_indices',  # [N] int64: box index, BACKGROUND or IGNORED.
    'matched_ious',     # [N] float32: IoU with the matched box; for the
                        # others, the best IoU with any box (0 without boxes).
])


def in_ignore_band(best_ious, negative_threshold):
  """Whether unmatched anchors of these best IoUs are ignored rather than
  background: IoU >= `negative_threshold` (None: no band, nothing ignored).

  The one definition of the band, for the matcher and the loss.
  """
  if negative_threshold is None:
    return tf.zeros_like(best_ious, tf.bool)
  return best_ious >= negative_threshold


def match(overlaps, match_threshold=0.5, negative_threshold=None,
          scope=None):
  """Matches anchors to boxes from their IoUs.

  An anchor is matched to the box it overlaps most when that IoU is >=
  `match_threshold`.  Every box that overlaps some anchor is also forced
  onto its best anchor, so small objects always get a positive (an anchor
  forced by several boxes takes the one it overlaps most).  Unmatched
  anchors are IGNORED when `in_ignore_band`, BACKGROUND otherwise.

  Args:
    overlaps: [G, N] float32 IoUs of G boxes (G may be 0) with N anchors.
    match_threshold: IoU from which an anchor is matched.
    negative_threshold: see `in_ignore_band`; below `match_threshold`.
    scope: name scope.

  Returns:
    MatchResult.
  """
  with tf.compat.v1.name_scope(scope, 'match', [overlaps]):
    overlaps = tf.convert_to_tensor(overlaps, tf.float32)
    num_anchors = tf.shape(overlaps)[1]
    anchor_indices = tf.range(num_anchors, dtype=tf.int64)
    # Each box claims its best anchor, unless it overlaps none (empty box).
    best_anchor = tf.argmax(overlaps, axis=1)
    claims = tf.logical_and(
        tf.equal(best_anchor[:, tf.newaxis], anchor_indices),
        tf.reduce_max(overlaps, axis=1, keepdims=True) > 0.)
    claimed = tf.reduce_any(claims, axis=0)

    # Row 0 stands for "no box": anchors overlapping no box match it, which
    # also keeps argmax defined for images without boxes.
    overlaps = tf.concat([tf.zeros([1, num_anchors]), overlaps], axis=0)
    claims = tf.concat([tf.zeros([1, num_anchors], tf.bool), claims], axis=0)
    row = tf.where(claimed,
                   tf.argmax(tf.where(claims, overlaps, -1.), axis=0),
                   tf.argmax(overlaps, axis=0))
    matched_ious = tf.gather_nd(overlaps,
                                tf.stack([row, anchor_indices], axis=1))
    matched = tf.logical_or(claimed, matched_ious >= match_threshold)
    unmatched_state = tf.where(
        in_ignore_band(matched_ious, negative_threshold),
        tf.constant(IGNORED, tf.int64), tf.constant(BACKGROUND, tf.int64))
    return MatchResult(
        matched_indices=tf.where(matched, row - 1, unmatched_state),
        matched_ious=matched_ious)
