"""Tests of nets/post_processing.py (via SSDNet): decoding, per-class top-k,
selection and NMS, against hand-built cases and a NumPy reference."""
import numpy as np
import pytest
import tensorflow as tf

from nets import ssd_vgg_300

NUM_CLASSES = 4
SSD = ssd_vgg_300.SSDNet(
    ssd_vgg_300.SSDNet.default_params._replace(num_classes=NUM_CLASSES))
ANCHORS = SSD.anchors()


def _tf_detections(predictions, bboxes, **kwargs):
  """SSD.detected_bboxes on per-layer batched NumPy inputs."""
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    return sess.run(SSD.detected_bboxes(
        [tf.constant(layer, tf.float32) for layer in predictions],
        [tf.constant(layer, tf.float32) for layer in bboxes], **kwargs))


def test_hand_built_nms():
  # One layer of 6 anchors on a 1x1 map; boxes given already decoded.
  boxes = np.array([[0.1, 0.1, 0.5, 0.5],
                    [0.1, 0.14, 0.5, 0.54],   # IoU 0.818 with box 0.
                    [0.1, 0.3, 0.5, 0.7],     # IoU 0.333 with box 0.
                    [0.6, 0.6, 0.9, 0.9],
                    [0.6, 0.6, 0.9, 0.9],
                    [0.0, 0.0, 0.2, 0.2]], np.float32)
  scores = np.zeros([6, NUM_CLASSES], np.float32)
  scores[:3, 1] = [0.9, 0.8, 0.7]   # Box 1 is suppressed by box 0.
  scores[3, 2] = 0.6                # Boxes 3 and 4 coincide, but their
  scores[4, 3] = 0.5                # classes differ: both are kept.
  scores[0, 3] = 0.4                # Box 0 again, for class 3: kept.
  scores[5, 1] = 0.005              # Under select_threshold 0.01.
  scores[:, 0] = 0.95               # Background is never detected.
  classes, tf_scores, tf_boxes = _tf_detections(
      [scores.reshape(1, 1, 1, 6, NUM_CLASSES)], [boxes.reshape(1, 1, 1, 6, 4)],
      keep_top_k=6)
  assert classes.dtype == np.int64 and classes.shape == (1, 6)
  assert tf_scores.shape == (1, 6) and tf_boxes.shape == (1, 6, 4)
  np.testing.assert_array_equal(classes[0], [1, 1, 2, 3, 3, 0])
  np.testing.assert_allclose(tf_scores[0], [0.9, 0.7, 0.6, 0.5, 0.4, 0.])
  np.testing.assert_allclose(tf_boxes[0], boxes[[0, 2, 3, 4, 0]].tolist() +
                             [[0., 0., 0., 0.]])



def _numpy_iou(box, boxes):
  """IoU of one box with each of [N, 4] boxes."""
  height = np.clip(np.minimum(box[2], boxes[:, 2]) -
                   np.maximum(box[0], boxes[:, 0]), 0, None)
  width = np.clip(np.minimum(box[3], boxes[:, 3]) -
                  np.maximum(box[1], boxes[:, 1]), 0, None)
  inter = height * width
  areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
  return inter / ((box[2] - box[0]) * (box[3] - box[1]) + areas - inter)


def _numpy_decode(localisations, anchors, prior_scaling):
  """Per-layer [H, W, A, 4] (cx, cy, w, h) localisations to boxes."""
  boxes = []
  for layer, (cy, cx, h, w) in zip(localisations, anchors):
    centre_x = layer[..., 0] * w * prior_scaling[0] + cx
    centre_y = layer[..., 1] * h * prior_scaling[1] + cy
    width = w * np.exp(layer[..., 2] * prior_scaling[2])
    height = h * np.exp(layer[..., 3] * prior_scaling[3])
    boxes.append(np.stack([centre_y - height / 2, centre_x - width / 2,
                           centre_y + height / 2, centre_x + width / 2],
                          axis=-1))
  return boxes


def _numpy_detections(predictions, localisations, select_threshold,
                      nms_threshold, clipping_bbox, top_k, keep_top_k):
  """One image, written out as SSD-Caffe describes it: per class, the top_k
  scores above the threshold, greedy NMS; then keep_top_k over all."""
  num_classes = predictions[0].shape[-1]
  scores = np.concatenate([p.reshape(-1, num_classes) for p in predictions])
  boxes = np.concatenate([b.reshape(-1, 4) for b in _numpy_decode(
      localisations, ANCHORS, SSD.params.prior_scaling)])
  if clipping_bbox is not None:
    low, high = np.array(clipping_bbox[:2] * 2), np.array(clipping_bbox[2:] * 2)
    boxes = np.minimum(np.maximum(boxes, low), high)
  kept = []
  for label in range(1, num_classes):
    order = np.argsort(-scores[:, label], kind='stable')[:top_k]
    order = order[scores[order, label] > select_threshold]
    chosen = []
    for index in order:
      if all(_numpy_iou(boxes[index], boxes[[other]])[0] <= nms_threshold
             for other in chosen):
        chosen.append(index)
    kept += [(scores[index, label], label, index) for index in chosen]
  kept.sort(key=lambda entry: -entry[0])
  kept = kept[:keep_top_k]
  return (np.array([label for _, label, _ in kept]),
          np.array([score for score, _, _ in kept]),
          boxes[[index for _, _, index in kept]].reshape(-1, 4))


def _random_network_outputs(rng, batch):
  """Peaky class probabilities and small localisations for SSD300's layers."""
  predictions, localisations = [], []
  for cy, _, h, _ in ANCHORS:
    shape = (batch,) + cy.shape[:2] + h.shape
    logits = rng.normal(0., 3., shape + (NUM_CLASSES,))
    logits[..., 0] += 4.
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(-1, keepdims=True)
    predictions.append(probabilities.astype(np.float32))
    localisations.append(rng.normal(0., 0.5, shape + (4,)).astype(np.float32))
  return predictions, localisations


@pytest.mark.parametrize('clipping_bbox', [None, [0., 0., 1., 1.]])
def test_post_processing_matches_numpy_reference(clipping_bbox):
  rng = np.random.RandomState(4)
  predictions, localisations = _random_network_outputs(rng, batch=2)
  settings = dict(select_threshold=0.05, nms_threshold=0.45,
                  clipping_bbox=clipping_bbox, top_k=60, keep_top_k=50)
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    bboxes = SSD.bboxes_decode(
        [tf.constant(layer) for layer in localisations], ANCHORS)
    detections = SSD.detected_bboxes(
        [tf.constant(layer) for layer in predictions], bboxes, **settings)
    classes, scores, boxes = sess.run(detections)
  for image in range(2):
    np_classes, np_scores, np_boxes = _numpy_detections(
        [layer[image] for layer in predictions],
        [layer[image] for layer in localisations], **settings)
    count = len(np_scores)
    # Enough detections for top_k and keep_top_k to matter.
    assert 10 < count <= 50
    np.testing.assert_array_equal(classes[image, :count], np_classes)
    np.testing.assert_allclose(scores[image, :count], np_scores, rtol=1e-6)
    np.testing.assert_allclose(boxes[image, :count], np_boxes, atol=1e-6)
    # Zero padding after the detections.
    assert np.all(classes[image, count:] == 0)
    assert np.all(scores[image, count:] == 0.)
    assert np.all(boxes[image, count:] == 0.)
    if clipping_bbox:
      assert np_boxes.min() >= 0. and np_boxes.max() <= 1.
