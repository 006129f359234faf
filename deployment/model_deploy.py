"""Deploys a model's clones over GPUs (or CPUs) and parameter servers.

Our implementation of TF-slim's `model_deploy` API for TensorFlow 2.x in
graph mode (`tf.compat.v1`).  A `DeploymentConfig` says where things go:

  * each clone (a replica of the model's forward pass and loss) on its own
    device: `/device:GPU:i`, or `/device:CPU:i` with `clone_on_cpu`;
  * the variables on the variables device: the local CPU, or round-robin over
    the parameter-server tasks in a distributed run;
  * the input pipeline and the optimizer on the worker's CPU.

Usage, as in TF-slim:

  config = model_deploy.DeploymentConfig(num_clones=2)
  with _v1.device(config.variables_device()):
    global_step = tf.compat.v1.train.get_or_create_global_step()
  with _v1.device(config.inputs_device()):
    batch_queue = ...
  clones = model_deploy.create_clones(config, model_fn, [batch_queue])
  with _v1.device(config.optimizer_device()):
    optimizer = tf.compat.v1.train.MomentumOptimizer(0.01, 0.9)
  total_loss, grads_and_vars = model_deploy.optimize_clones(clones, optimizer)
  with tf.control_dependencies(model_deploy.clones_update_ops(clones)):
    train_op = optimizer.apply_gradients(grads_and_vars, global_step)

TF-slim's `deploy()` (clones, optimizer and summaries in one call) is left
out: the training library composes these parts itself, and
`clones_update_ops` is the one rule for update ops across clones.

Each clone's losses are the entries of the `tf.compat.v1.losses` collection
created inside that clone's name scope.  They are scaled by 1/num_clones so
that summing the clones' gradients yields the gradient of the mean loss; the
regularization losses are added once, on the first clone.

On a machine with fewer GPUs than clones, run the session with
`allow_soft_placement=True` so GPU clones fall back to the CPU.
"""
import collections
import contextlib

import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

__all__ = ['create_clones', 'optimize_clones', 'clones_update_ops',
           'DeploymentConfig', 'Clone']

# A clone: the outputs of model_fn, the name scope and the device it ran in.
Clone = collections.namedtuple('Clone', ['outputs', 'scope', 'device'])

# Ops that create variables, placed on the parameter servers.  TF 2 builds
# resource variables (VarHandleOp); reference variables are the TF1 kinds.
_VARIABLE_OP_TYPES = frozenset(['Variable', 'VariableV2', 'VarHandleOp'])

_v1 = tf.compat.v1


class DeploymentConfig(object):
  """Where clones, inputs, optimizer and variables of a deployment live.

  Single machine: `num_clones` clones on the local GPUs (or CPUs), variables
  and optimizer on the local CPU.  Distributed (between-graph replication):
  this process is task `replica_id` of `num_replicas` workers, with the
  variables spread over `num_ps_tasks` parameter servers.
  """

  def __init__(self, num_clones=1, clone_on_cpu=False, replica_id=0,
               num_replicas=1, num_ps_tasks=0, worker_job_name='worker',
               ps_job_name='ps'):
    """Validates and stores the deployment.

    Args:
      num_clones: number of model clones on this machine (>= 1).
      clone_on_cpu: put clone i on `/device:CPU:i` instead of `/device:GPU:i`
        (split the CPU into logical devices to run clones in parallel).
      replica_id: index of this worker among the replicas.
      num_replicas: number of worker replicas.
      num_ps_tasks: number of parameter-server tasks; 0 for a local run.
      worker_job_name: job name of the workers in the cluster spec.
      ps_job_name: job name of the parameter servers in the cluster spec.

    Raises:
      ValueError: if the arguments are inconsistent.
    """
    if num_clones < 1:
      raise ValueError('num_clones must be at least 1, got %d.' % num_clones)
    if num_replicas > 1 and num_ps_tasks < 1:
      raise ValueError('When using replicas (num_replicas=%d) num_ps_tasks '
                       'must be positive.' % num_replicas)
    if num_replicas > 1 or num_ps_tasks > 0:
      if not worker_job_name:
        raise ValueError('worker_job_name must be set when using replicas '
                         'or parameter servers.')
      if not ps_job_name:
        raise ValueError('ps_job_name must be set when using replicas or '
                         'parameter servers.')
    if not 0 <= replica_id < num_replicas:
      raise ValueError('replica_id must be in [0, num_replicas=%d), got %d.' %
                       (num_replicas, replica_id))
    self._num_clones = num_clones
    self._clone_on_cpu = clone_on_cpu
    self._replica_id = replica_id
    self._num_replicas = num_replicas
    self._num_ps_tasks = num_ps_tasks
    self._ps_device = '/job:' + ps_job_name if num_ps_tasks > 0 else ''
    self._worker_device = '/job:' + worker_job_name if num_ps_tasks > 0 else ''

  @property
  def num_clones(self):
    return self._num_clones

  @property
  def clone_on_cpu(self):
    return self._clone_on_cpu

  @property
  def replica_id(self):
    return self._replica_id

  @property
  def num_replicas(self):
    return self._num_replicas

  @property
  def num_ps_tasks(self):
    return self._num_ps_tasks

  @property
  def ps_device(self):
    return self._ps_device

  @property
  def worker_device(self):
    return self._worker_device

  def caching_device(self):
    """Device on which a worker caches the variables it reads.

    Returns:
      None for a local run (variables are read where they live); in a
      distributed run a function that caches each variable on the device of
      the op reading it, i.e. on the worker, instead of fetching it from the
      parameter server at every use.
    """
    if self._num_ps_tasks > 0:
      return lambda op: op.device
    return None

  def clone_device(self, clone_index):
    """Device of clone `clone_index`: GPU i, or CPU i with clone_on_cpu.

    A single clone still goes to GPU:0 (or CPU:0).  In a distributed run the
    device is prefixed by this worker's job.

    Raises:
      ValueError: if `clone_index` is not in [0, num_clones).
    """
    if not 0 <= clone_index < self._num_clones:
      raise ValueError('clone_index must be in [0, num_clones=%d), got %d.' %
                       (self._num_clones, clone_index))
    kind = 'CPU' if self._clone_on_cpu else 'GPU'
    return '%s/device:%s:%d' % (self._worker_device, kind, clone_index)

  def clone_scope(self, clone_index):
    """Name scope of clone `clone_index`: '' for a single clone, else 'clone_i'.

    Raises:
      ValueError: if `clone_index` is not in [0, num_clones).
    """
    if not 0 <= clone_index < self._num_clones:
      raise ValueError('clone_index must be in [0, num_clones=%d), got %d.' %
                       (self._num_clones, clone_index))
    if self._num_clones == 1:
      return ''
    return 'clone_%d' % clone_index

  def optimizer_device(self):
    """The worker's CPU: where the optimizer and gradient updates are built."""
    return self._worker_device + '/device:CPU:0'

  def inputs_device(self):
    """The worker's CPU: where the input pipeline runs."""
    return self._worker_device + '/device:CPU:0'

  def variables_device(self):
    """Device (string or device function) for the model variables.

    Local runs keep the variables on the CPU, the one device every clone can
    read.  With parameter servers, variable ops are assigned round-robin to
    the ps tasks and every other op created in this scope stays where it is.
    """
    device = self._ps_device + '/device:CPU:0'
    if self._num_ps_tasks == 0:
      return device
    return _RoundRobinVariablePlacer(self._ps_device, self._num_ps_tasks).choose


class _RoundRobinVariablePlacer(object):
  """Device function placing variable ops on ps tasks in turn."""

  def __init__(self, ps_device, num_tasks):
    self._ps_device = ps_device
    self._num_tasks = num_tasks
    self._next_task = 0

  def choose(self, op):
    if op.device:
      return op.device
    if op.node_def.op not in _VARIABLE_OP_TYPES:
      return ''
    task = self._next_task
    self._next_task = (self._next_task + 1) % self._num_tasks
    return '%s/task:%d/device:CPU:0' % (self._ps_device, task)


def create_clones(config, model_fn, args=None, kwargs=None):
  """Builds `model_fn(*args, **kwargs)` once per clone.

  Clone i is built under name scope `config.clone_scope(i)` and device
  `config.clone_device(i)`; the first clone creates the variables (on the
  variables device, for variables made through `slim.model_variable` or
  `slim.variable`, as slim layers do) and the others reuse them.  The losses
  `model_fn` adds to the `tf.compat.v1.losses` collection are found later by
  the clone's scope.

  Args:
    config: a DeploymentConfig.
    model_fn: builds the model; called once per clone.
    args: positional arguments for model_fn.
    kwargs: keyword arguments for model_fn.

  Returns:
    A list of Clone tuples, one per clone.
  """
  args = args or []
  kwargs = kwargs or {}
  clones = []
  with slim.arg_scope([slim.model_variable, slim.variable],
                      device=config.variables_device()):
    for i in range(config.num_clones):
      with _name_scope(config.clone_scope(i)) as clone_scope:
        clone_device = config.clone_device(i)
        with _v1.device(clone_device):
          with _v1.variable_scope(_v1.get_variable_scope(),
                                  reuse=True if i > 0 else None):
            outputs = model_fn(*args, **kwargs)
          clones.append(Clone(outputs, clone_scope, clone_device))
  return clones


@contextlib.contextmanager
def _name_scope(scope):
  """Enters name scope `scope` ('a/' re-enters an existing one); '' stays put.

  (A graph's name_scope('') would instead reset to the top level.)
  """
  if not scope:
    yield ''
    return
  with tf.name_scope(scope) as full_scope:
    yield full_scope


def _gather_clone_loss(clone, num_clones, regularization_losses):
  """Sums one clone's losses, scaled by 1/num_clones, plus regularization.

  Returns:
    The clone's total loss tensor, or None if it has no losses at all.
  """
  clone_loss = None
  regularization_loss = None
  with _v1.device(clone.device):
    parts = []
    clone_losses = _v1.losses.get_losses(clone.scope)
    if clone_losses:
      clone_loss = tf.add_n(clone_losses, name='clone_loss')
      if num_clones > 1:
        clone_loss = tf.math.divide(clone_loss, float(num_clones),
                                    name='scaled_clone_loss')
      parts.append(clone_loss)
    if regularization_losses:
      regularization_loss = tf.add_n(regularization_losses,
                                     name='regularization_loss')
      parts.append(regularization_loss)
    sum_loss = tf.add_n(parts) if parts else None
  # Summaries stay on the CPU: summary ops have no GPU kernels.  Their tags
  # get the enclosing clone scope as prefix: 'clone_1/losses/clone_loss'.
  with _v1.device('/device:CPU:0'):
    if clone_loss is not None:
      _v1.summary.scalar('losses/clone_loss', clone_loss)
    if regularization_loss is not None:
      _v1.summary.scalar('losses/regularization_loss', regularization_loss)
  return sum_loss


def _optimize_clone(optimizer, clone, num_clones, regularization_losses,
                    **kwargs):
  """Computes one clone's loss and its gradients on the clone's device."""
  sum_loss = _gather_clone_loss(clone, num_clones, regularization_losses)
  clone_grad = None
  if sum_loss is not None:
    with _v1.device(clone.device):
      clone_grad = optimizer.compute_gradients(sum_loss, **kwargs)
  return sum_loss, clone_grad


def _sum_clones_gradients(clone_grads):
  """Sums the gradients of each variable across clones.

  Each clone's loss is already divided by the number of clones, so the sum
  is the gradient of the mean loss.  The sums are named
  `<variable>/sum_grads` and get no device of their own (they are not pinned
  to any clone's device).

  Args:
    clone_grads: one list of (gradient, variable) pairs per clone, all over
      the same variables in the same order.

  Returns:
    A list of (summed gradient, variable) pairs; variables without any
    gradient are left out.
  """
  sum_grads = []
  for grads_and_vars in zip(*clone_grads):
    var = grads_and_vars[0][1]
    grads = []
    for grad, clone_var in grads_and_vars:
      if clone_var is not var:
        raise ValueError('Clones computed gradients for different variables: '
                         '%s and %s.' % (var.op.name, clone_var.op.name))
      if grad is not None:
        grads.append(grad)
    if not grads:
      continue
    if len(grads) > 1:
      with _v1.device(None):
        grad = tf.add_n(grads, name=var.op.name + '/sum_grads')
    else:
      grad = grads[0]
    sum_grads.append((grad, var))
  return sum_grads


def optimize_clones(clones, optimizer, regularization_losses=None, **kwargs):
  """Computes each clone's loss and gradients and sums them.

  Args:
    clones: the Clone list from create_clones.
    optimizer: a tf.compat.v1.train.Optimizer.
    regularization_losses: the regularization losses to add, on the first
      clone only; None means the whole REGULARIZATION_LOSSES collection.
    **kwargs: passed to optimizer.compute_gradients (e.g. var_list).

  Returns:
    (total_loss, grads_and_vars): the sum of the clones' (scaled) losses and
    the summed gradients.
  """
  num_clones = len(clones)
  if regularization_losses is None:
    regularization_losses = _v1.get_collection(
        _v1.GraphKeys.REGULARIZATION_LOSSES)
  clones_losses = []
  clones_gradients = []
  for clone in clones:
    with _name_scope(clone.scope):
      clone_loss, clone_grad = _optimize_clone(
          optimizer, clone, num_clones, regularization_losses, **kwargs)
      if clone_loss is not None:
        clones_losses.append(clone_loss)
        clones_gradients.append(clone_grad)
      # Only the first clone carries the regularization losses.
      regularization_losses = None
  total_loss = tf.add_n(clones_losses, name='total_loss')
  grads_and_vars = _sum_clones_gradients(clones_gradients)
  return total_loss, grads_and_vars


def clones_update_ops(clones):
  """The update ops (e.g. batch-norm moving averages) of every clone.

  Each clone's batch statistics enter the moving averages, as if the clones'
  batches came one after another. TF-slim's `deploy` kept the first clone's
  only, which leaves the other clones' data out of the moving statistics.
  """
  update_ops = []
  for clone in clones:
    update_ops.extend(_v1.get_collection(_v1.GraphKeys.UPDATE_OPS,
                                         clone.scope))
  return update_ops
