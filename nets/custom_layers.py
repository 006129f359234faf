"""Layers the SSD network needs that tf_slim does not provide.

Each takes a `data_format` ('NHWC' or 'NCHW') so that `SSDNet.arg_scope` can
set it for the whole network, next to slim's own layers.
"""
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim


def onednn_enabled():
  """Whether this process runs TensorFlow's CPU kernels through oneDNN."""
  try:
    # pylint: disable=g-import-not-at-top
    from tensorflow.python.util import _pywrap_util_port
    # pylint: enable=g-import-not-at-top
    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):
    return False


@slim.add_arg_scope
def dilated_conv2d(inputs,
                   num_outputs,
                   kernel_size,
                   rate,
                   native=False,
                   padding='SAME',
                   data_format='NHWC',
                   activation_fn=tf.nn.relu,
                   normalizer_fn=None,
                   normalizer_params=None,
                   weights_initializer=None,
                   weights_regularizer=None,
                   biases_initializer=tf.compat.v1.zeros_initializer(),
                   trainable=True,
                   reuse=None,
                   scope=None):
  """`slim.conv2d(..., rate=rate)`, optionally with a native dilated Conv2D.

  Same variables (`weights`, `biases` as model variables), regularization
  loss and arguments as slim.conv2d, so it shares its arg_scope; as there,
  a `normalizer_fn` (e.g. slim.batch_norm) replaces the biases.  TensorFlow
  builds every dilated convolution as SpaceToBatch -> Conv2D ->
  BatchToSpace; for SSD's conv6 (dilation 6 on 19x19) that gives oneDNN
  36 tiny 4x4 images per image, and conv6 with its gradients then took
  about 18% of a training step for 5% of its FLOPs.  With `native`, one
  Conv2D with `dilations` runs instead (and fuses with the bias and ReLU):
  the same result, 3-4 times faster.  Only oneDNN's CPU kernels and the GPU
  kernels have it (TensorFlow's own CPU kernels reject dilations > 1), so
  pass `native` only for a graph run by this process with `onednn_enabled()`
  (not one saved for elsewhere).
  """
  with tf.compat.v1.variable_scope(scope, 'Conv', [inputs], reuse=reuse):
    channel_axis = 1 if data_format == 'NCHW' else -1
    weights = slim.model_variable(
        'weights',
        shape=list(kernel_size) + [inputs.shape[channel_axis], num_outputs],
        dtype=inputs.dtype.base_dtype,
        initializer=weights_initializer or slim.xavier_initializer(),
        regularizer=weights_regularizer, trainable=trainable)
    if native:
      outputs = tf.nn.conv2d(inputs, weights, strides=1, padding=padding,
                             data_format=data_format, dilations=rate)
    else:
      outputs = tf.nn.convolution(inputs, weights, padding=padding,
                                  data_format=data_format,
                                  dilations=[rate, rate])
    if normalizer_fn is not None:
      outputs = normalizer_fn(outputs, **(normalizer_params or {}))
    elif biases_initializer is not None:
      biases = slim.model_variable(
          'biases', shape=[num_outputs], dtype=inputs.dtype.base_dtype,
          initializer=biases_initializer, trainable=trainable)
      outputs = tf.nn.bias_add(outputs, biases, data_format=data_format)
    if activation_fn is not None:
      outputs = activation_fn(outputs)
    return outputs


@slim.add_arg_scope
def l2_normalization(inputs,
                     scale_initial_value=20.,
                     data_format='NHWC',
                     trainable=True,
                     reuse=None,
                     scope=None):
  """L2-normalises each position's feature vector, then scales each channel.

  This is the layer of the SSD paper (ParseNet's, Caffe's `Normalize` with
  across_spatial false): the vector of channels at every pixel gets unit L2
  norm and is multiplied by a learned per-channel factor `gamma`.

  Args:
    inputs: 4-D tensor in `data_format`.
    scale_initial_value: initial value of every `gamma` entry (20 in SSD; a
      unit norm would make conv4_3's features far smaller than the others).
    data_format: 'NHWC' or 'NCHW'.
    trainable: whether `gamma` is trained.
    reuse: whether to reuse the variable of `scope`.
    scope: variable scope, 'L2Normalization' by default.

  Returns:
    The normalised and scaled tensor, same shape and layout as `inputs`.
  """
  with tf.compat.v1.variable_scope(scope, 'L2Normalization', [inputs],
                                   reuse=reuse):
    channel_axis = 1 if data_format == 'NCHW' else -1
    num_channels = inputs.shape[channel_axis]
    gamma = slim.model_variable(
        'gamma', shape=[num_channels], dtype=inputs.dtype.base_dtype,
        initializer=tf.compat.v1.constant_initializer(scale_initial_value),
        trainable=trainable)
    if data_format == 'NCHW':
      gamma = tf.reshape(gamma, [num_channels, 1, 1])
    normalised = tf.math.l2_normalize(inputs, axis=channel_axis,
                                      epsilon=1e-12)
    return normalised * gamma


@slim.add_arg_scope
def pad2d(inputs, pad, data_format='NHWC', scope=None):
  """Zero-pads `pad` pixels on each side of the height and width axes.

  Followed by a VALID convolution this reproduces Caffe's explicit padding,
  which TensorFlow's SAME padding does not for strided convolutions.
  """
  with tf.compat.v1.name_scope(scope, 'pad2d', [inputs]):
    spatial = [[pad, pad], [pad, pad]]
    if data_format == 'NCHW':
      paddings = [[0, 0], [0, 0]] + spatial
    else:
      paddings = [[0, 0]] + spatial + [[0, 0]]
    return tf.pad(inputs, paddings)


@slim.add_arg_scope
def channel_to_last(inputs, data_format='NHWC', scope=None):
  """Returns `inputs` in NHWC whatever `data_format` it is in."""
  if data_format != 'NCHW':
    return inputs
  with tf.compat.v1.name_scope(scope, 'channel_to_last', [inputs]):
    return tf.transpose(inputs, perm=(0, 2, 3, 1))
