"""Tests of nets.custom_layers.dilated_conv2d (SSD's conv6)."""
import numpy as np
import pytest
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from nets import custom_layers

v1 = tf.compat.v1


def _conv6_like(native, reuse=None):
  """A small dilated convolution and its gradients, in the current graph."""
  inputs = tf.constant(np.random.RandomState(0).randn(2, 11, 11, 8),
                       tf.float32)
  with slim.arg_scope([custom_layers.dilated_conv2d],
                      weights_regularizer=slim.l2_regularizer(0.0005),
                      biases_initializer=v1.constant_initializer(0.1)):
    outputs = custom_layers.dilated_conv2d(inputs, 16, [3, 3], rate=3,
                                           native=native, scope='conv6',
                                           reuse=reuse)
  weights, biases = slim.get_model_variables('conv6')
  gradients = tf.gradients(tf.reduce_sum(tf.square(outputs)),
                           [inputs, weights, biases])
  return [outputs] + gradients


def test_has_slim_conv2d_variables_and_regularization():
  with tf.Graph().as_default():
    inputs = v1.placeholder(tf.float32, [None, 19, 19, 512])
    with slim.arg_scope([custom_layers.dilated_conv2d],
                        weights_regularizer=slim.l2_regularizer(0.0005)):
      custom_layers.dilated_conv2d(inputs, 1024, [3, 3], rate=6,
                                   scope='conv6')
    assert [(v.op.name, v.shape.as_list())
            for v in slim.get_model_variables()] == [
                ('conv6/weights', [3, 3, 512, 1024]), ('conv6/biases', [1024])]
    assert len(v1.losses.get_regularization_losses()) == 1


def test_native_dilation_matches_space_to_batch():
  if not custom_layers.onednn_enabled():
    pytest.skip('native dilated Conv2D needs oneDNN on the CPU')
  with tf.Graph().as_default():
    portable = _conv6_like(native=False)
    native = _conv6_like(native=True, reuse=True)
    op_types = {op.type for op in tf.compat.v1.get_default_graph()
                .get_operations()}
    assert 'SpaceToBatchND' in op_types  # the portable form
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      portable, native = sess.run([portable, native])
  for expected, actual in zip(portable, native):
    np.testing.assert_allclose(actual, expected, rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())
