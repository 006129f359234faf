"""Tests of the sampled, finite-only values behind the histogram summaries."""
import numpy as np
import tensorflow as tf

from utils.trainer import train_tools

v1 = tf.compat.v1


def _values(array, **kwargs):
  with tf.Graph().as_default():
    values = train_tools._finite_values(tf.constant(array), **kwargs)
    with v1.Session() as sess:
      return sess.run(values)


def test_small_tensor_keeps_every_finite_value():
  array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
  array[0, 1, 2] = np.nan
  array[1, 2, 3] = np.inf
  values = _values(array)
  np.testing.assert_array_equal(np.sort(values),
                                np.sort(array[np.isfinite(array)]))


def test_large_tensor_is_sampled_across_every_channel():
  # Activations-like: 8 x 38 x 38 x 64, each value its channel index.
  array = np.broadcast_to(np.arange(64, dtype=np.float32),
                          (8, 38, 38, 64)).copy()
  array[0, 0, 0, 5] = np.nan
  values = _values(array, max_values=4096)
  assert len(values) <= 4096
  assert np.all(np.isfinite(values))
  assert set(values.tolist()) == set(range(64))


def test_unknown_size_is_sampled_too():
  with tf.Graph().as_default():
    placeholder = v1.placeholder(tf.float32, [None, 16])
    values = train_tools._finite_values(placeholder, max_values=100)
    with v1.Session() as sess:
      result = sess.run(values, {placeholder: np.ones((1000, 16))})
  assert 0 < len(result) <= 100
