"""Tests of preprocessing/tf_image.py: box and window geometry, checked by
hand."""
import numpy as np
import tensorflow as tf

from preprocessing import tf_image


def _evaluate(build):
  """Runs `build()` in a fresh graph and returns the values of its tensors."""
  with tf.Graph().as_default():
    tensors = build()
    with tf.compat.v1.Session() as session:
      return session.run(tensors)


def test_zoom_out_moves_boxes_into_canvas():
  # A canvas twice the image's size, the image 0.5 down and 0.25 right.
  canvas = np.array([-0.5, -0.25, 1.5, 1.75], np.float32)
  boxes, crop_in_image = _evaluate(lambda: (
      tf_image.bboxes_in_window(
          tf.constant([[0., 0., 1., 1.], [0.2, 0.4, 0.6, 0.8]]), canvas),
      tf_image.window_in_frame(canvas, tf.constant([0.25, 0.5, 0.75, 1.]))))
  np.testing.assert_allclose(boxes, [[0.25, 0.125, 0.75, 0.625],
                                     [0.35, 0.325, 0.55, 0.525]], atol=1e-7)
  np.testing.assert_allclose(crop_in_image, [0., 0.75, 1., 1.75], atol=1e-7)


def test_crop_keeps_boxes_with_centre_inside_clipped():
  labels, boxes = _evaluate(lambda: tf_image.crop_bboxes(
      tf.constant([1, 2, 3, 4], tf.int64),
      tf.constant([[0.1, 0.3, 0.5, 0.5],    # Centre inside: clipped.
                   [0.7, 0.1, 0.9, 0.3],    # Centre outside: dropped.
                   [0.0, 0.0, 1.0, 1.0],    # Covers the window.
                   [0.4, 0.5, 0.4, 0.5]]),  # Empty: dropped.
      tf.constant([0.2, 0.2, 0.6, 0.8])))
  np.testing.assert_array_equal(labels, [1, 3])
  np.testing.assert_allclose(boxes, [[0., 1. / 6., 0.75, 0.5],
                                     [0., 0., 1., 1.]], atol=1e-6)


def test_flip_mirrors_boxes_and_twice_is_identity():
  boxes = np.array([[0.1, 0.2, 0.3, 0.6], [0., 0., 1., 0.5]], np.float32)
  once, twice = _evaluate(lambda: (
      tf_image.flip_bboxes_left_right(tf.constant(boxes)),
      tf_image.flip_bboxes_left_right(
          tf_image.flip_bboxes_left_right(tf.constant(boxes)))))
  np.testing.assert_allclose(once, [[0.1, 0.4, 0.3, 0.8], [0., 0.5, 1., 1.]],
                             atol=1e-7)
  np.testing.assert_allclose(twice, boxes, atol=1e-7)


def test_iou_of_boxes_with_windows():
  iou = _evaluate(lambda: tf_image.bboxes_iou(
      tf.constant([[0., 0., 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]]),
      tf.constant([[0., 0., 1., 1.], [0.5, 0.5, 1., 1.]])))
  # 0.0625 shared of 0.25 + 0.25 - 0.0625 is 1/7; touching corners share 0.
  np.testing.assert_allclose(iou, [[0.25, 0.25], [0., 1. / 7.]], atol=1e-7)


def test_letterbox_window_of_a_tall_image():
  # 200 x 100 fits 300 x 300 as 300 x 150, centred: 75 px of room each side.
  window = _evaluate(lambda: tf_image.letterbox_window([200, 100], [300, 300]))
  np.testing.assert_allclose(window, [0., -0.5, 1., 1.5], atol=1e-7)


def test_sample_window_places_image_on_zero_canvas():
  image = np.arange(12, dtype=np.float32).reshape(2, 2, 3) + 1.
  # A window twice the image's size, image in its bottom-right quarter.
  canvas = _evaluate(lambda: tf_image.sample_window(
      tf.constant(image), tf.constant([-1., -1., 1., 1.]), (4, 4)))
  expected = np.zeros((4, 4, 3), np.float32)
  expected[2:, 2:] = image
  np.testing.assert_allclose(canvas, expected, atol=1e-5)


def test_zero_outside_passes_a_view_inside_the_image_through():
  view = np.arange(24, dtype=np.float32).reshape(2, 4, 3) + 1.
  inside = np.array([[True, True, False, True]] * 2)
  masked, whole = _evaluate(lambda: (
      tf_image.zero_outside(tf.constant(view), tf.constant(inside)),
      tf_image.zero_outside(tf.constant(view), tf.ones([2, 4], tf.bool))))
  np.testing.assert_array_equal(masked, view * inside[:, :, np.newaxis])
  np.testing.assert_array_equal(whole, view)
