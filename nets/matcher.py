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
  """Matches anchors to boxes from their IoUs, as SSD-Caffe's MatchBBox.

  First, greedy bipartite matching forces one anchor onto every box that
  overlaps some anchor: repeatedly, the highest IoU among the boxes and
  anchors not taken yet pairs its box and anchor (ties: lower anchor, then
  lower box index first), so two boxes that share their best anchor both
  get a positive.  Then every other anchor is matched to the box it
  overlaps most when that IoU is >= `match_threshold`.  Unmatched anchors
  are IGNORED when `in_ignore_band`, BACKGROUND otherwise.

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
    forced_box, forced_iou = _bipartite_match(overlaps)
    # Row 0 stands for "no box": anchors overlapping no box match it, which
    # also keeps argmax defined for images without boxes.
    padded = tf.concat([tf.zeros([1, num_anchors]), overlaps], axis=0)
    best_box = tf.argmax(padded, axis=0) - 1
    best_iou = tf.reduce_max(padded, axis=0)
    forced = forced_box >= 0
    matched_ious = tf.where(forced, forced_iou, best_iou)
    by_threshold = tf.logical_and(best_box >= 0, best_iou >= match_threshold)
    unmatched_state = tf.where(
        in_ignore_band(matched_ious, negative_threshold),
        tf.constant(IGNORED, tf.int64), tf.constant(BACKGROUND, tf.int64))
    return MatchResult(
        matched_indices=tf.where(
            forced, forced_box,
            tf.where(by_threshold, best_box, unmatched_state)),
        matched_ious=matched_ious)


def _bipartite_match(overlaps):
  """Greedy bipartite matching of `match`: [N] int64 forced box per anchor
  (-1 for none) and [N] float32 its IoU (0 for none)."""
  num_anchors = tf.shape(overlaps)[1]
  best_anchors = tf.argmax(overlaps, axis=1)  # [G]; ties: lower anchor.
  best_ious = tf.reduce_max(overlaps, axis=1)
  picked_anchors, picked_ious = tf.cond(
      _best_anchors_are_distinct(best_anchors, best_ious),
      lambda: (tf.where(best_ious > 0., best_anchors, -1), best_ious),
      lambda: _greedy_picks(overlaps))
  # Per anchor: the box that picked it; row 0 stands for "no box".
  picks = tf.equal(picked_anchors[:, tf.newaxis],
                   tf.range(num_anchors, dtype=tf.int64))
  no_box = tf.fill([1, num_anchors], tf.constant(-1, tf.int64))
  box_ids = tf.range(tf.shape(overlaps, out_type=tf.int64)[0])[:, tf.newaxis]
  forced_box = tf.reduce_max(
      tf.concat([no_box, tf.where(picks, box_ids, no_box)], axis=0), axis=0)
  forced_iou = tf.reduce_max(tf.concat(
      [tf.zeros([1, num_anchors]),
       tf.where(picks, picked_ious[:, tf.newaxis], 0.)], axis=0), axis=0)
  return forced_box, forced_iou


def _best_anchors_are_distinct(best_anchors, best_ious):
  """Whether no two boxes that overlap some anchor share their best one.

  Then the greedy matching gives every such box its best anchor: whichever
  box the greedy step picks, its best anchor is still free (only that box
  wanted it), so the highest free IoU of its row is there, at the lowest
  anchor index of that IoU.  This is the common case; the loop of
  `_greedy_picks` is only needed when best anchors collide.
  """
  overlapping = best_ious > 0.
  same = tf.logical_and(
      tf.equal(best_anchors[:, tf.newaxis], best_anchors[tf.newaxis, :]),
      tf.logical_and(overlapping[:, tf.newaxis], overlapping[tf.newaxis, :]))
  num_boxes = tf.shape(best_anchors)[0]
  others = tf.logical_not(tf.eye(num_boxes, dtype=tf.bool))
  return tf.logical_not(tf.reduce_any(tf.logical_and(same, others)))


def _greedy_picks(overlaps):
  """The greedy matching in a loop: [G] int64 anchor each box picked (-1 for
  none) and [G] float32 its IoU.

  At most G - 1 anchors are taken before a box gets its own, so only each
  box's G best anchors can be picked: the loop runs on those [G, G]
  candidates (`top_k` keeps lower anchor indices first among equal IoUs).
  """
  num_boxes = tf.shape(overlaps, out_type=tf.int64)[0]
  num_anchors = tf.shape(overlaps, out_type=tf.int64)[1]
  candidate_ious, candidate_anchors = tf.math.top_k(
      overlaps, k=tf.cast(tf.minimum(num_boxes, num_anchors), tf.int32))
  candidate_anchors = tf.cast(candidate_anchors, tf.int64)  # [G, K]
  candidate_boxes = tf.broadcast_to(
      tf.range(num_boxes)[:, tf.newaxis], tf.shape(candidate_anchors,
                                                   out_type=tf.int64))
  # Ties: lower anchor, then lower box index first, as SSD-Caffe's loops.
  tie_order = candidate_anchors * num_boxes + candidate_boxes

  def step(searching, picked_anchors, picked_ious):
    del searching
    free = tf.logical_not(tf.logical_or(
        tf.reduce_any(tf.equal(candidate_anchors[..., tf.newaxis],
                               picked_anchors), axis=-1),
        (picked_anchors >= 0)[:, tf.newaxis]))
    ious = tf.where(free, candidate_ious, -1.)
    best_iou = tf.reduce_max(ious)
    found = best_iou > 0.
    pick = tf.argmin(tf.reshape(
        tf.where(tf.logical_and(free, tf.equal(ious, best_iou)), tie_order,
                 tf.reduce_max(tie_order) + 1), [-1]))
    box = pick // tf.shape(candidate_ious, out_type=tf.int64)[1]
    box_pick = tf.ensure_shape(
        tf.logical_and(found, tf.equal(tf.range(num_boxes), box)),
        picked_ious.shape)
    return (found,  # No free pair overlaps: the other boxes overlap nothing.
            tf.where(box_pick, tf.reshape(candidate_anchors, [-1])[pick],
                     picked_anchors),
            tf.where(box_pick, best_iou, picked_ious))

  def more(searching, picked_anchors, picked_ious):
    del picked_ious
    return tf.logical_and(searching, tf.reduce_any(picked_anchors < 0))

  _, picked_anchors, picked_ious = tf.while_loop(
      more, step,
      (tf.constant(True),
       tf.cast(tf.zeros_like(overlaps[:, 0]), tf.int64) - 1,
       tf.zeros_like(overlaps[:, 0])))
  return picked_anchors, picked_ious
