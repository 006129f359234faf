"""Box geometry in TensorFlow: THE project's one area, intersection and IoU.

Boxes are (ymin, xmin, ymax, xmax) in the last axis, in any one coordinate
frame (normalised or pixels, continuous: no +1 on sizes).  Leading dimensions
broadcast, so `iou(boxes[:, tf.newaxis], anchors)` gives every pair.

Bottom layer: imports nothing of the project.
"""
import tensorflow as tf

# Keeps the IoU of two empty boxes at 0 instead of 0 / 0.
_MIN_UNION_AREA = 1e-12


def area(boxes):
  """Areas of [..., 4] boxes."""
  boxes = tf.convert_to_tensor(boxes)
  return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def intersection(boxes_a, boxes_b):
  """Areas of the intersections of boxes whose leading dimensions broadcast."""
  boxes_a = tf.convert_to_tensor(boxes_a)
  boxes_b = tf.convert_to_tensor(boxes_b, dtype=boxes_a.dtype)
  low = tf.maximum(boxes_a[..., :2], boxes_b[..., :2])
  high = tf.minimum(boxes_a[..., 2:], boxes_b[..., 2:])
  sides = tf.maximum(high - low, 0.)
  return sides[..., 0] * sides[..., 1]


def iou(boxes_a, boxes_b):
  """Intersection over union of boxes whose leading dimensions broadcast;
  0 for two empty boxes."""
  boxes_a = tf.convert_to_tensor(boxes_a)
  boxes_b = tf.convert_to_tensor(boxes_b, dtype=boxes_a.dtype)
  overlap = intersection(boxes_a, boxes_b)
  union = area(boxes_a) + area(boxes_b) - overlap
  return overlap / tf.maximum(union, _MIN_UNION_AREA)


def clip(boxes, window):
  """Clips every coordinate of [..., 4] boxes into window (ymin, xmin, ymax,
  xmax); a box entirely outside the window becomes empty (zero area)."""
  boxes = tf.convert_to_tensor(boxes)
  window = tf.cast(window, boxes.dtype)
  lower = tf.stack([window[0], window[1], window[0], window[1]])
  upper = tf.stack([window[2], window[3], window[2], window[3]])
  return tf.minimum(tf.maximum(boxes, lower), upper)
