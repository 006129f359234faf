"""Training helpers ("train tools"): queues, learning rate, optimizer, clones.

Every function takes plain values (no flags object): the training graph
(utils/trainer/graph.py) passes them from its configuration
(utils/trainer/config.py, the one source of their defaults).
"""
import math

import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from deployment import model_deploy
from utils.checkpointing import checkpoints
from utils.common import platform_info
from utils.trainer import config as config_lib

_v1 = tf.compat.v1

LEARNING_RATE_DECAY_TYPES = ('cosine', 'exponential', 'fixed', 'piecewise',
                             'polynomial')
# Piecewise without explicit values: the rate is multiplied by this at each
# boundary (the SSD paper's: 1e-3, then x0.1 at 80k and at 100k steps).
PIECEWISE_DEFAULT_FACTOR = 0.1
OPTIMIZERS = ('adadelta', 'adagrad', 'adam', 'ftrl', 'momentum', 'rmsprop',
              'sgd')


def reshape_list(items, shape=None):
  """Flattens a list of tensors and lists of tensors, or regroups a flat list.

  Queues take a flat list of tensors; the model wants them grouped (an image,
  then one list per target kind).  `reshape_list(nested)` flattens;
  `reshape_list(flat, shape)` regroups, where `shape` has one entry per
  group: 1 for a single tensor, n for a sub-list of n tensors.

  Args:
    items: the list to flatten, or the flat list to regroup.
    shape: None to flatten; the group sizes to regroup.

  Returns:
    The flat or regrouped list.

  Raises:
    ValueError: if `shape` does not add up to the length of `items`.
  """
  if shape is None:
    flat = []
    for item in items:
      if isinstance(item, (list, tuple)):
        flat.extend(item)
      else:
        flat.append(item)
    return flat
  if sum(shape) != len(items):
    raise ValueError('Shape %s covers %d items, the list has %d.' %
                     (shape, sum(shape), len(items)))
  grouped = []
  start = 0
  for size in shape:
    if size == 1:
      grouped.append(items[start])
    else:
      grouped.append(list(items[start:start + size]))
    start += size
  return grouped


def decay_steps(num_samples_per_epoch, images_per_step, num_epochs_per_decay):
  """Global steps between two learning-rate decays.

  Args:
    num_samples_per_epoch: images in the training set.
    images_per_step: images one global step consumes: batch_size on each of
      num_clones clones, times replicas_to_aggregate with synchronous
      replicas (one global step aggregates that many workers' steps).
    num_epochs_per_decay: epochs per decay period.
  """
  return max(1, int(num_samples_per_epoch / images_per_step *
                    num_epochs_per_decay))


def configure_learning_rate(global_step, learning_rate, decay_type, *,
                            decay_factor, end_learning_rate,
                            steps_per_decay=1, warmup_steps=0,
                            boundaries=(), values=(), total_steps=None):
  """The learning-rate tensor of a schedule.

  Types:
    'exponential': staircase, multiplied by decay_factor every
      steps_per_decay steps;
    'fixed': learning_rate throughout;
    'polynomial': linear decay to end_learning_rate over steps_per_decay
      steps, then constant;
    'piecewise': values[i] from boundaries[i - 1] (inclusive) to
      boundaries[i]; without values, learning_rate multiplied by
      PIECEWISE_DEFAULT_FACTOR at each boundary;
    'cosine': after the warm-up, half a cosine from learning_rate down to
      end_learning_rate at total_steps, then constant.
  With warmup_steps > 0 the rate first ramps up linearly from
  learning_rate / warmup_steps: step s < warmup_steps trains at
  (s + 1) / warmup_steps times the schedule's value.

  Args:
    global_step: the global step tensor.
    learning_rate: the initial rate.
    decay_type: one of LEARNING_RATE_DECAY_TYPES.
    steps_per_decay: steps per decay period (see decay_steps).
    decay_factor: exponential decay factor per period.
    end_learning_rate: final rate of the polynomial and cosine decays.
    warmup_steps: steps of the linear warm-up; 0 for none.
    boundaries: increasing global steps where the piecewise rate changes.
    values: the piecewise rates, one more than boundaries (or none).
    total_steps: the run's last step (cosine).

  Raises:
    ValueError: for an unknown decay type or inconsistent arguments.
  """
  rate = _decayed_learning_rate(
      global_step, float(learning_rate), decay_type, steps_per_decay,
      decay_factor, end_learning_rate, warmup_steps, boundaries, values,
      total_steps)
  if not warmup_steps:
    return rate
  # A deep network without batch norm, trained from scratch, diverges when
  # the first (Adam) steps move every weight by the full learning rate.
  warmup_fraction = tf.minimum(
      1.0, tf.cast(global_step + 1, tf.float32) / float(warmup_steps))
  return tf.multiply(rate, warmup_fraction, name='warmup_learning_rate')


def _decayed_learning_rate(global_step, learning_rate, decay_type, steps,
                           decay_factor, end_learning_rate, warmup_steps,
                           boundaries, values, total_steps):
  if decay_type == 'exponential':
    return _v1.train.exponential_decay(
        learning_rate, global_step, steps, decay_factor, staircase=True,
        name='exponential_decay_learning_rate')
  if decay_type == 'fixed':
    return tf.constant(learning_rate, name='fixed_learning_rate')
  if decay_type == 'polynomial':
    return _v1.train.polynomial_decay(
        learning_rate, global_step, steps, end_learning_rate,
        power=1.0, cycle=False, name='polynomial_decay_learning_rate')
  if decay_type == 'piecewise':
    return _piecewise_learning_rate(global_step, learning_rate, boundaries,
                                    values)
  if decay_type == 'cosine':
    return _cosine_learning_rate(global_step, learning_rate,
                                 end_learning_rate, warmup_steps,
                                 total_steps)
  raise ValueError('Unknown learning_rate_decay_type %r; valid: %s.' %
                   (decay_type, ', '.join(LEARNING_RATE_DECAY_TYPES)))


def _piecewise_learning_rate(global_step, learning_rate, boundaries, values):
  boundaries = [int(boundary) for boundary in boundaries]
  if not boundaries:
    raise ValueError('learning_rate_decay_type piecewise needs '
                     '--learning_rate_boundaries (e.g. 80000,100000).')
  if sorted(set(boundaries)) != boundaries:
    raise ValueError('--learning_rate_boundaries must increase: %s.' %
                     boundaries)
  if values:
    values = [float(value) for value in values]
  else:
    values = [learning_rate * PIECEWISE_DEFAULT_FACTOR**i
              for i in range(len(boundaries) + 1)]
  if len(values) != len(boundaries) + 1:
    raise ValueError('--learning_rate_values needs one value more than '
                     '--learning_rate_boundaries (%d), got %d.' %
                     (len(boundaries), len(values)))
  # Boundaries are inclusive on the left: the rate changes at the boundary.
  return _v1.train.piecewise_constant(
      global_step, [boundary - 1 for boundary in boundaries], values,
      name='piecewise_learning_rate')


def _cosine_learning_rate(global_step, learning_rate, end_learning_rate,
                          warmup_steps, total_steps):
  if not total_steps or total_steps <= warmup_steps:
    raise ValueError('learning_rate_decay_type cosine needs '
                     '--max_number_of_steps greater than --warmup_steps.')
  decay_length = float(total_steps - warmup_steps)
  progress = tf.clip_by_value(
      tf.cast(global_step - warmup_steps, tf.float32) / decay_length,
      0.0, 1.0)
  cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
  return tf.add(end_learning_rate,
                (learning_rate - end_learning_rate) * cosine,
                name='cosine_learning_rate')


def configure_optimizer(name, learning_rate, **hyperparameters):
  """The tf.compat.v1 optimizer called `name`.

  Each optimizer takes its own hyper-parameters
  (config.OPTIMIZER_HYPERPARAMETERS names them all, with their defaults);
  in particular Adam's epsilon (adam_epsilon) is separate from RMSProp's
  (rmsprop_epsilon, conventionally 1.0, which would make Adam crawl).

  Args:
    name: one of OPTIMIZERS.
    learning_rate: a float or tensor.
    **hyperparameters: any of config.OPTIMIZER_HYPERPARAMETERS; the others
      keep their defaults.

  Raises:
    ValueError: for an unknown optimizer or hyper-parameter.
  """
  defaults = config_lib.OPTIMIZER_HYPERPARAMETERS
  unknown = sorted(set(hyperparameters) - set(defaults))
  if unknown:
    raise ValueError('Unknown optimizer hyper-parameters: %s.' %
                     ', '.join(unknown))
  h = dict(defaults, **hyperparameters)
  train = _v1.train
  if name == 'adadelta':
    return train.AdadeltaOptimizer(learning_rate, rho=h['adadelta_rho'],
                                   epsilon=h['adadelta_epsilon'])
  if name == 'adagrad':
    return train.AdagradOptimizer(
        learning_rate,
        initial_accumulator_value=h['adagrad_initial_accumulator_value'])
  if name == 'adam':
    return train.AdamOptimizer(learning_rate, beta1=h['adam_beta1'],
                               beta2=h['adam_beta2'],
                               epsilon=h['adam_epsilon'])
  if name == 'ftrl':
    return train.FtrlOptimizer(
        learning_rate, learning_rate_power=h['ftrl_learning_rate_power'],
        initial_accumulator_value=h['ftrl_initial_accumulator_value'],
        l1_regularization_strength=h['ftrl_l1'],
        l2_regularization_strength=h['ftrl_l2'])
  if name == 'momentum':
    return train.MomentumOptimizer(learning_rate, momentum=h['momentum'],
                                   name='Momentum')
  if name == 'rmsprop':
    return train.RMSPropOptimizer(learning_rate, decay=h['rmsprop_decay'],
                                  momentum=h['rmsprop_momentum'],
                                  epsilon=h['rmsprop_epsilon'])
  if name == 'sgd':
    return train.GradientDescentOptimizer(learning_rate)
  raise ValueError('Unknown optimizer %r; valid: %s.' %
                   (name, ', '.join(OPTIMIZERS)))


def wrap_optimizer_for_precision(optimizer, precision):
  """Adds dynamic loss scaling for float16, which underflows without it."""
  if precision == 'mixed_float16':
    return _v1.mixed_precision.MixedPrecisionLossScaleOptimizer(
        optimizer, 'dynamic')
  return optimizer


def get_variables_to_train(trainable_scopes=None):
  """The trainable variables inside the comma-separated `trainable_scopes`.

  Args:
    trainable_scopes: e.g. 'ssd_300_vgg/block8,ssd_300_vgg/block4_box';
      None or '' means every trainable variable.

  Raises:
    ValueError: if a scope holds no trainable variable (a typo would
      otherwise silently freeze the whole model).
  """
  variables = _v1.trainable_variables()
  scopes = checkpoints.split_scopes(trainable_scopes)
  if not scopes:
    return variables
  selected = []
  for scope in scopes:
    in_this_scope = [v for v in variables
                     if checkpoints.in_scope(v.op.name, scope)]
    if not in_this_scope:
      raise ValueError('--trainable_scopes: no trainable variable in scope '
                       '%r.' % scope)
    selected.extend(v for v in in_this_scope if v not in selected)
  return selected


def deploy_loss_summary(deploy_config, clone_fn, clone_args=None,
                        summarize_variables=True, summarize_activations=True):
  """Builds the clones, then the first clone's summaries.

  (Named as in the TF-slim course: besides the loss summaries, it creates
  the clones themselves, with model_deploy.create_clones.)

  Creates a clone per `deploy_config.num_clones` with
  `clone_fn(*clone_args)`, which returns the clone's end points (a dict of
  tensors) and adds its losses to the losses collection.  Only the first
  clone is summarised (the others compute the same thing on other data):
  one scalar per loss, optionally histograms and sparsity of its end points
  (summarize_activations) and a histogram per model variable
  (summarize_variables).  All summaries are built on the
  inputs device, the CPU.

  Returns:
    (clones, first_clone_scope, update_ops, summaries): summaries is the set
    of summary ops (those already in the graph included), update_ops those
    of every clone (`model_deploy.clones_update_ops`).
  """
  summaries = set(_v1.get_collection(_v1.GraphKeys.SUMMARIES))
  clones = model_deploy.create_clones(deploy_config, clone_fn, clone_args)
  first_clone_scope = clones[0].scope
  update_ops = model_deploy.clones_update_ops(clones)
  with _v1.device(deploy_config.inputs_device()):
    end_points = (clones[0].outputs or {}) if summarize_activations else {}
    for name in sorted(end_points):
      tensor = end_points[name]
      summaries.add(_v1.summary.histogram('activations/' + name,
                                          _finite_values(tensor)))
      summaries.add(_v1.summary.scalar('sparsity/' + name,
                                       tf.nn.zero_fraction(tensor)))
    for loss in _v1.get_collection(_v1.GraphKeys.LOSSES, first_clone_scope):
      summaries.add(_v1.summary.scalar(
          'losses/' + _strip_scope(loss.op.name, first_clone_scope), loss))
    if summarize_variables:
      for variable in slim.get_model_variables():
        summaries.add(_v1.summary.histogram('variables/' + variable.op.name,
                                            _finite_values(variable)))
  # Summaries created inside the first clone (e.g. by clone_fn) are kept.
  summaries |= set(_v1.get_collection(_v1.GraphKeys.SUMMARIES,
                                      first_clone_scope))
  return clones, first_clone_scope, update_ops, summaries


# Histograms summarise at most about this many entries of a tensor: a
# histogram of every weight and activation costs seconds per summary
# (bench/README.md), taken from the training step on the same cores.
HISTOGRAM_MAX_VALUES = 1 << 16


def _finite_values(tensor, max_values=HISTOGRAM_MAX_VALUES):
  """The finite entries of `tensor` (of an evenly strided sample), flattened.

  A histogram summary of a tensor holding NaN fails in the summary thread,
  which would end training with a stack trace; the training step reports
  non-finite losses itself, with a clear message.

  A tensor of more than `max_values` entries is sampled every `stride`
  entries, the stride coprime with the last dimension (the channels) so
  that every channel is in the sample.
  """
  tensor = tf.convert_to_tensor(tensor)
  size = tensor.shape.num_elements()
  flat = tf.reshape(tensor, [-1])
  if size is not None:
    if size > max_values:
      stride = -(-size // max_values)
      channels = tensor.shape[-1] if tensor.shape.rank else 1
      while math.gcd(stride, channels or 1) != 1:
        stride += 1
      flat = flat[::stride]
  else:
    # Unknown size: an odd stride (channel counts are mostly powers of 2).
    dynamic_size = tf.size(flat)
    stride = 2 * (dynamic_size // (2 * max_values)) + 1
    flat = tf.reshape(tf.strided_slice(flat, [0], [dynamic_size], [stride]),
                      [-1])
  return tf.boolean_mask(flat, tf.math.is_finite(flat))


def _strip_scope(name, scope):
  return name[len(scope):] if scope and name.startswith(scope) else name


def session_config(deploy_config, gpu_memory_fraction=None,
                   precision='float32'):
  """The ConfigProto of a training session (evaluation, demo and export
  open their own, with the precision their `detection` settings choose).

  * allow_soft_placement: GPU clones on a machine with fewer GPUs (or none)
    fall back to the CPU instead of failing.
  * With clone_on_cpu, one logical CPU device per clone, so that
    `/device:CPU:i` exists for clone i.
  * GPU memory grows as needed, or is capped at `gpu_memory_fraction`.
  * `precision` switches on TensorFlow's own mixed-precision graph rewrite
    (see platform_info.PRECISIONS): the graph stays float32 and grappler runs
    numerically safe ops (convolutions, matmuls, ...) in the low precision.

  Raises:
    ValueError: for an unknown precision.
  """
  config = _v1.ConfigProto(allow_soft_placement=True)
  rewrites = config.graph_options.rewrite_options
  if precision == 'mixed_bfloat16':
    rewrites.auto_mixed_precision_onednn_bfloat16 = (
        rewriter_config_pb2.RewriterConfig.ON)
  elif precision == 'mixed_float16':
    rewrites.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
  elif precision != 'float32':
    raise ValueError('Unknown precision %r; valid: %s.' %
                     (precision, ', '.join(platform_info.PRECISIONS)))
  if deploy_config.clone_on_cpu:
    config.device_count['CPU'] = deploy_config.num_clones
  if gpu_memory_fraction:
    config.gpu_options.per_process_gpu_memory_fraction = gpu_memory_fraction
  else:
    config.gpu_options.allow_growth = True
  return config
