"""Training targets of one image: a match result turned into per-layer
class targets, encoded box targets and IoUs."""
import collections

import tensorflow as tf

from nets import anchor_generator
from nets import box_coder
from nets import matcher
from utils.common import box_ops

# The class target of an ignored anchor (background is 0).
IGNORED_LABEL = -1

Targets = collections.namedtuple('Targets', [
    'gclasses',        # Per layer [H, W, A] int64: the matched box's label,
                       # 0 for background, IGNORED_LABEL for ignored anchors.
    'glocalisations',  # Per layer [H, W, A, 4] float32: the matched box
                       # encoded (cx, cy, w, h) against the anchor; 0 for the
                       # others.
    'gious',           # Per layer [H, W, A] float32: `MatchResult.
                       # matched_ious`, the anchor's IoU with its box.
])


def assign(labels, bboxes, anchors, prior_scaling, match_threshold=0.5,
           negative_threshold=None, scope=None):
  """Matches one image's ground-truth boxes to all anchors and encodes them.

  All layers are matched together (`matcher.match`), so a box's best anchor
  may be on any layer.

  Args:
    labels: [G] int ground-truth classes (1..num_classes-1).
    bboxes: [G, 4] ground-truth boxes (ymin, xmin, ymax, xmax); G may be 0.
    anchors: list of per-layer (cy, cx, h, w), see `anchor_generator`.
    prior_scaling: the 4 scalings of `box_coder.encode`.
    match_threshold, negative_threshold: see `matcher.match`.
    scope: name scope.

  Returns:
    Targets.
  """
  with tf.compat.v1.name_scope(scope, 'ssd_bboxes_encode', [labels, bboxes]):
    flat_anchors, layer_shapes = anchor_generator.flatten_anchors(anchors)
    bboxes = tf.cast(bboxes, tf.float32)
    overlaps = box_ops.iou(bboxes[:, tf.newaxis, :],
                           anchor_generator.anchor_corners(flat_anchors))
    result = matcher.match(overlaps, match_threshold=match_threshold,
                           negative_threshold=negative_threshold)
    matched = result.matched_indices >= 0
    # Unmatched anchors gather an appended background entry (label 0, the
    # whole image as box: finite encoding), then get zero targets.
    index = tf.where(matched, result.matched_indices,
                     tf.shape(bboxes, out_type=tf.int64)[0])
    padded_labels = tf.concat([tf.cast(labels, tf.int64), [0]], axis=0)
    padded_boxes = tf.concat([bboxes, [[0., 0., 1., 1.]]], axis=0)
    ignored = tf.equal(result.matched_indices, matcher.IGNORED)
    gclasses = tf.where(ignored, tf.constant(IGNORED_LABEL, tf.int64),
                        tf.gather(padded_labels, index))
    glocalisations = tf.where(
        matched[:, tf.newaxis],
        box_coder.encode(tf.gather(padded_boxes, index), flat_anchors,
                         prior_scaling),
        0.)
    return Targets(
        anchor_generator.split_layers(gclasses, layer_shapes),
        anchor_generator.split_layers(glocalisations, layer_shapes, [4]),
        anchor_generator.split_layers(result.matched_ious, layer_shapes))
