"""From network outputs to detections: decoding, per-class selection and
top-k, NMS (the project's only NMS), then the best detections overall."""
import tensorflow as tf

from nets import anchor_generator
from nets import box_coder
from utils.common import box_ops


def decode_layers(localisations, anchors, prior_scaling, scope=None):
  """Per-layer [..., H, W, A, 4] encoded localisations to float32 boxes
  (ymin, xmin, ymax, xmax) of the same shape."""
  with tf.compat.v1.name_scope(scope, 'ssd_bboxes_decode', localisations):
    return [box_coder.decode(tf.cast(layer, tf.float32), layer_anchors,
                             prior_scaling)
            for layer, layer_anchors in zip(localisations, anchors)]


def detected_bboxes(predictions, decoded_bboxes, select_threshold=0.01,
                    nms_threshold=0.45, clipping_bbox=None, top_k=400,
                    keep_top_k=200, scope=None):
  """Per-class selection and NMS of a batch of detections (SSD-Caffe's).

  For each image and each class but background: keep the `top_k` highest
  scores, drop those <= `select_threshold`, then greedy NMS (a box is dropped
  when its IoU with a kept box of its class is > `nms_threshold`); finally
  keep the `keep_top_k` best detections of the image over all classes.

  Args:
    predictions: per-layer [B, H, W, A, num_classes] class probabilities.
    decoded_bboxes: per-layer [B, H, W, A, 4] boxes (`decode_layers`).
    select_threshold, nms_threshold, top_k, keep_top_k: see above.
    clipping_bbox: optional window (ymin, xmin, ymax, xmax) the boxes are
      clipped to before NMS, e.g. [0., 0., 1., 1.].
    scope: name scope.

  Returns:
    classes: [B, keep_top_k] int64 labels (1..num_classes-1).
    scores: [B, keep_top_k] float32, in decreasing order in each image.
    bboxes: [B, keep_top_k, 4] float32 boxes (ymin, xmin, ymax, xmax).
    Each image's detections come first; the rest is padding with class 0,
    score 0 and box 0, so `scores > 0` marks the real detections.
  """
  with tf.compat.v1.name_scope(scope, 'ssd_detected_bboxes'):
    num_classes = int(predictions[0].shape[-1])
    scores = anchor_generator.concat_layers(predictions,
                                            [num_classes])[:, :, 1:]
    boxes = anchor_generator.concat_layers(decoded_bboxes, [4])
    if clipping_bbox is not None:
      boxes = box_ops.clip(boxes, clipping_bbox)

    # Each class gets its own top_k candidates: [B, num_classes - 1, K].
    top_k = tf.minimum(top_k, tf.shape(scores)[1])
    class_scores, anchor_indices = tf.math.top_k(
        tf.transpose(scores, [0, 2, 1]), k=top_k)
    class_boxes = tf.gather(boxes, anchor_indices, batch_dims=1)
    nms_boxes, nms_scores, nms_classes, num_detections = (
        tf.image.combined_non_max_suppression(
            tf.transpose(class_boxes, [0, 2, 1, 3]),
            tf.transpose(class_scores, [0, 2, 1]),
            max_output_size_per_class=top_k,
            max_total_size=keep_top_k,
            iou_threshold=nms_threshold,
            score_threshold=select_threshold,
            clip_boxes=False))
    detected = (tf.range(keep_top_k)[tf.newaxis, :] <
                num_detections[:, tf.newaxis])
    # Background was dropped above: NMS class c is label c + 1.
    classes = tf.where(detected, tf.cast(nms_classes, tf.int64) + 1,
                       tf.zeros([], tf.int64))
    return classes, nms_scores, nms_boxes
