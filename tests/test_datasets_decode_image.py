"""Tests of datasets.dataset_utils.decode_image: reduced-size JPEG decoding.

The expected pixels come from OpenCV: a whole decode averaged down by
cv2.resize (INTER_AREA), independent of libjpeg's DCT scaling.
"""
import cv2
import numpy as np
import pytest
import tensorflow as tf

from datasets import dataset_utils


def _photo(height, width):
  """A smooth RGB image with some texture, uint8."""
  rows = np.linspace(0., 1., height)[:, np.newaxis]
  cols = np.linspace(0., 1., width)[np.newaxis, :]
  texture = np.sin(rows * 40.) * np.cos(cols * 30.)
  image = np.stack([200. * rows + 30. * texture, 180. * cols + 30. * texture,
                    120. + 60. * texture], axis=-1)
  return np.clip(image, 0, 255).astype(np.uint8)


def _decode(encoded, min_side):
  with tf.Graph().as_default():
    image = dataset_utils.decode_image(tf.constant(encoded), min_side)
    with tf.compat.v1.Session() as session:
      return session.run(image)


def _jpeg(image):
  _, encoded = cv2.imencode('.jpg', image[:, :, ::-1],
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
  return encoded.tobytes()


@pytest.mark.parametrize('min_side, ratio', [
    (None, 1), (700, 1), (600, 2), (300, 4), (160, 8), (10, 8)])
def test_large_jpeg_decodes_at_the_largest_ratio_allowed(min_side, ratio):
  image = _photo(1300, 1700)
  decoded = _decode(_jpeg(image), min_side)
  # libjpeg rounds the scaled sides up.
  expected_shape = (-(-1300 // ratio), -(-1700 // ratio), 3)
  assert decoded.shape == expected_shape
  reference = cv2.resize(image, expected_shape[1::-1],
                         interpolation=cv2.INTER_AREA)
  # JPEG loss plus a different down-sampling filter: a few levels at most.
  assert np.mean(np.abs(decoded.astype(float) - reference)) < 3.


def test_small_jpeg_and_png_decode_whole():
  image = _photo(224, 224)
  assert _decode(_jpeg(image), 150).shape == (224, 224, 3)  # 112 < 150.
  _, png = cv2.imencode('.png', _photo(1300, 1700)[:, :, ::-1])
  decoded = _decode(png.tobytes(), 300)
  np.testing.assert_array_equal(decoded, _photo(1300, 1700))
