"""Images for TensorBoard showing what the network is fed or finds.

Boxes are drawn by `utils.common.drawing` (through `tf.numpy_function`), so the
TensorBoard images look like the demo's: the same colour per class, the
same outlines and tags.
"""
import numpy as np
import tensorflow as tf

from preprocessing import ssd_vgg_preprocessing
from utils.common import drawing


def images_with_boxes(images, bboxes, data_format='NHWC', max_outputs=3,
                      labels=None, scores=None, class_names=None):
  """Draws boxes on preprocessed images, for `tf.compat.v1.summary.image`.

  Args:
    images: float32 [B, H, W, 3] (or [B, 3, H, W]) normalised RGB images, as
      the preprocessing returns them.
    bboxes: float32 [B, K, 4] normalised (ymin, xmin, ymax, xmax) boxes;
      empty boxes (e.g. all-zero padding) are not drawn.
    data_format: 'NHWC' or 'NCHW', the layout of `images`.
    max_outputs: how many images of the batch to draw.
    labels: optional int [B, K] class ids: boxes in their class colour with
      a tag, label 0 not drawn; None draws plain outlines.
    scores: optional float [B, K] scores for the tags.
    class_names: optional {id: name} for the tags.

  Returns:
    uint8 [min(B, max_outputs), H, W, 3] RGB images.
  """
  images = ssd_vgg_preprocessing.denormalize_image(
      images[:max_outputs], data_format)
  if data_format == 'NCHW':
    images = tf.transpose(images, [0, 2, 3, 1])
  images = tf.cast(tf.clip_by_value(tf.round(images), 0., 255.), tf.uint8)
  bboxes = tf.cast(bboxes[:max_outputs], tf.float32)
  count = tf.shape(images)[0]
  labels = (tf.zeros([count, 0], tf.int64) if labels is None
            else tf.cast(labels[:max_outputs], tf.int64))
  scores = (tf.zeros([count, 0], tf.float32) if scores is None
            else tf.cast(scores[:max_outputs], tf.float32))

  def draw(batch, batch_boxes, batch_labels, batch_scores):
    if not len(batch):
      return batch
    return np.stack([drawing.draw_detections(
        image, boxes, image_labels if image_labels.size else None,
        image_scores if image_scores.size else None, class_names)
                     for image, boxes, image_labels, image_scores in zip(
                         batch, batch_boxes, batch_labels, batch_scores)])

  drawn = tf.numpy_function(draw, [images, bboxes, labels, scores], tf.uint8,
                            stateful=False)
  drawn.set_shape(images.shape)
  return drawn
