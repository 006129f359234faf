"""Restores the private TensorFlow names that tf_slim 1.1.0 still imports.

tf_slim 1.1.0 (its last release) reaches into private TensorFlow modules for
symbols that later TensorFlow releases moved elsewhere.  Without them
`slim.batch_norm`, every `tfexample_decoder.Image` decode and
`slim.local_variable` fail.  This module puts exactly those names back, each
only if it is missing, so a TensorFlow or tf_slim that has them is untouched.
It also routes `slim.batch_norm` to tf_slim's fused kernel when the legacy
Keras layers it would otherwise build are not installed.

Every module that imports tf_slim imports this module first (a test,
`tests/test_tf_compat.py`, checks each one).
"""
import importlib
import inspect

import tensorflow as tf
from tensorflow.python.framework import indexed_slices
from tensorflow.python.framework import ops
from tensorflow.python.framework import tensor
from tensorflow.python.ops import array_ops
from tensorflow.python.ops import array_ops_stack
from tensorflow.python.ops import cond
from tensorflow.python.ops import control_flow_assert
from tensorflow.python.ops import control_flow_case
from tensorflow.python.ops import control_flow_ops
from tensorflow.python.ops import variable_scope
from tensorflow.python.ops import while_loop

# (module, missing name, where it lives now).
_RESTORED_NAMES = (
    (ops, 'Tensor', tensor.Tensor),
    (ops, 'IndexedSlices', indexed_slices.IndexedSlices),
    (control_flow_ops, 'case', control_flow_case.case),
    (control_flow_ops, 'cond', cond.cond),
    (control_flow_ops, 'while_loop', while_loop.while_loop),
    (control_flow_ops, 'Assert', control_flow_assert.Assert),
    (array_ops, 'stack', array_ops_stack.stack),
    (array_ops, 'unstack', array_ops_stack.unstack),
    # slim.local_variable / global_variable call variable_scope.variable with
    # the TF1 Variable keyword arguments (collections, use_resource, ...).
    (variable_scope, 'variable', tf.compat.v1.Variable),
)


def restore_missing_names():
  """Sets each name of _RESTORED_NAMES that its module lacks; returns them."""
  restored = []
  for module, name, value in _RESTORED_NAMES:
    if not hasattr(module, name):
      setattr(module, name, value)
      restored.append('%s.%s' % (module.__name__, name))
  return restored


def _keras_legacy_layers_available():
  try:
    importlib.import_module('tf_keras.legacy_tf_layers.normalization')
    return True
  except ImportError:
    return False


def route_batch_norm_to_fused_kernel():
  """Makes `slim.batch_norm` work when the legacy Keras layers are absent.

  With the default update collection, tf_slim builds its batch norm from
  `tf.compat.v1.layers.BatchNormalization`, which TensorFlow now lazy-loads
  from the separate `tf_keras` package.  tf_slim's own fused path computes the
  same normalisation with the same variables and update ops, so calls it can
  serve are sent there; the rest (renorm, batch_weights, fused=False) keep
  the original code path.  Returns True when the routing was installed.
  """
  import tf_slim  # pylint: disable=g-import-not-at-top
  from tf_slim.layers import layers  # pylint: disable=g-import-not-at-top
  from tf_slim.ops import arg_scope  # pylint: disable=g-import-not-at-top

  if _keras_legacy_layers_available():
    return False
  original = layers.batch_norm
  signature = inspect.signature(original)
  fused_parameters = inspect.signature(layers._fused_batch_norm).parameters  # pylint: disable=protected-access

  def batch_norm(*args, **kwargs):
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = bound.arguments
    rank = tf.convert_to_tensor(arguments['inputs']).shape.ndims
    fusable = (arguments['batch_weights'] is None and not arguments['renorm']
               and arguments['adjustment'] is None
               and arguments['fused'] in (None, True) and rank in (2, 4))
    if not fusable:
      return original(*args, **kwargs)
    return layers._fused_batch_norm(  # pylint: disable=protected-access
        **{k: v for k, v in arguments.items() if k in fused_parameters})

  batch_norm.__doc__ = original.__doc__
  # arg_scope entries are keyed by _key_op: keep the original's key so that
  # `slim.arg_scope([slim.batch_norm], ...)` applies to either function.
  batch_norm._key_op = original._key_op  # pylint: disable=protected-access
  routed = arg_scope.add_arg_scope(batch_norm)
  layers.batch_norm = routed
  tf_slim.layers.batch_norm = routed
  tf_slim.batch_norm = routed
  return True


RESTORED = restore_missing_names()
BATCH_NORM_ROUTED = route_batch_norm_to_fused_kernel()
