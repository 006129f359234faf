"""Tests of utils/common/drawing.py (the one drawing and colour map) and of the
TensorBoard images of preprocessing/visualization.py that use it."""
import numpy as np
import pytest
import tensorflow as tf

from preprocessing import ssd_vgg_preprocessing
from preprocessing import visualization
from utils.common import drawing


def _gray(height, width, value=100):
  return np.full((height, width, 3), value, np.uint8)


def test_class_color_is_golden_ratio_hues():
  # Label 1: hue 0.618034 of a turn = 222.5 degrees, between cyan and blue
  # (sector 3, fraction 0.708204): R = 0, G = 0.86 * (1 - 0.708204),
  # B = 0.86, times 255.
  assert drawing.class_color(1) == (0, 64, 219)
  # Label 0: hue 0, red.
  assert drawing.class_color(0) == (219, 0, 0)
  colors = {drawing.class_color(label) for label in range(1, 21)}
  assert len(colors) == 20
  assert all(0 <= channel <= 255 for color in colors for channel in color)


def test_box_outline_lies_inside_the_box_in_the_class_colour():
  image = _gray(100, 200)
  # Rows 50..89, columns 40..119 (x 0.2 * 200 = 40, 0.6 * 200 = 120 - 1).
  drawn = drawing.draw_detections(image, [[0.5, 0.2, 0.9, 0.6]], [1],
                                  thickness=3)
  assert drawn.dtype == np.uint8 and drawn.shape == image.shape
  np.testing.assert_array_equal(image, _gray(100, 200))  # A copy is drawn.
  outline = np.zeros((100, 200), bool)
  outline[50:90, 40:120] = True
  outline[53:87, 43:117] = False
  np.testing.assert_array_equal(drawn[outline],
                                np.tile(drawing.class_color(1),
                                        (outline.sum(), 1)))
  # Below, left and right of the box and its inside: untouched.  The tag
  # sits above the box (rows < 50), from its left edge.
  untouched = ~outline
  untouched[:50, 40:] = False
  np.testing.assert_array_equal(drawn[untouched], image[untouched])
  tag = drawn[:50, 40:]
  assert np.sum(np.all(tag == drawing.class_color(1), axis=-1)) > 100
  # The tag's text is white on this dark blue (luma 62).
  assert np.sum(np.all(tag == 255, axis=-1)) > 10


def test_boxes_on_the_border_stay_visible_and_default_thickness():
  image = _gray(20, 30)
  drawn = drawing.draw_detections(image, [[0., 0., 1., 1.]], None)
  # Default: 2 px below 500 px; no labels: white, no tag.
  assert drawing.default_thickness(20, 30) == 2
  assert drawing.default_thickness(3000, 4000) == 16
  border = np.zeros((20, 30), bool)
  border[:2], border[-2:], border[:, :2], border[:, -2:] = (True,) * 4
  np.testing.assert_array_equal(drawn[border], 255)
  np.testing.assert_array_equal(drawn[~border], 100)


def test_background_empty_and_outside_boxes_are_skipped():
  image = _gray(40, 40)
  boxes = [[0.2, 0.2, 0.8, 0.8],  # Label 0: background / padding.
           [0.5, 0.5, 0.5, 0.7],  # Empty.
           [1.2, 1.2, 1.5, 1.5],  # Outside.
           [0., 0., 0., 0.]]
  drawn = drawing.draw_detections(image, boxes, [0, 1, 2, 3])
  np.testing.assert_array_equal(drawn, image)


def test_captions_name_and_score():
  assert drawing.caption(2, 0.876, {2: 'dog'}) == 'dog 0.88'
  assert drawing.caption(2, None, ['bg', 'cat', 'dog']) == 'dog'
  assert drawing.caption(7, 0.5, {2: 'dog'}) == '7 0.50'
  assert drawing.caption(3) == '3'


def test_rejects_images_that_are_not_rgb():
  with pytest.raises(ValueError, match=r'\[H, W, 3\]'):
    drawing.draw_detections(np.zeros((4, 4), np.uint8), [], [])


@pytest.mark.parametrize('data_format', ['NHWC', 'NCHW'])
def test_tensorboard_images_are_drawn_like_the_demo(data_format):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
  boxes = np.array([[[0.3, 0.25, 0.9, 0.75], [0., 0., 0., 0.]]] * 2,
                   np.float32)
  labels = np.array([[2, 0]] * 2)
  with tf.Graph().as_default():
    images = ssd_vgg_preprocessing.normalize_image(
        tf.stack([tf.constant(image)] * 2))
    if data_format == 'NCHW':
      images = tf.transpose(images, [0, 3, 1, 2])
    with tf.compat.v1.Session() as session:
      drawn, plain = session.run([
          visualization.images_with_boxes(
              images, tf.constant(boxes), data_format, max_outputs=1,
              labels=tf.constant(labels), scores=tf.constant([[0.5, 0.]] * 2),
              class_names={2: 'dog'}),
          visualization.images_with_boxes(images, tf.constant(boxes),
                                          data_format, max_outputs=1)])
  assert drawn.shape == (1, 60, 80, 3) and drawn.dtype == np.uint8
  # Normalising and back may move a pixel by 1 (float rounding).
  expected = drawing.draw_detections(image, boxes[0], labels[0], [0.5, 0.],
                                     {2: 'dog'})
  assert np.abs(drawn[0].astype(int) - expected).max() <= 1
  expected_plain = drawing.draw_detections(image, boxes[0], None)
  assert np.abs(plain[0].astype(int) - expected_plain).max() <= 1
  assert not np.array_equal(expected, image)
