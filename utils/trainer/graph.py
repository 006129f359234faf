"""The training graph: the network of a TrainingConfig, its clones, losses,
learning rate, optimizer and the guarded gradient update.

The order (TF-slim's train_image_classifier):
  1. the global step (and the SSD parameters) on the variables device;
  2. the input queue of `input_fn` (utils.trainer.input_pipeline);
  3. the clone function (dequeue, network, losses) replicated on each clone;
  4. learning rate and optimizer on the optimizer device;
  5. summed clone gradients applied with the global step, after a
     finiteness check.
"""
import dataclasses
import typing

import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from deployment import cluster_worker
from deployment import model_deploy
from nets import nets_factory
from preprocessing import visualization
from utils.trainer import config as config_lib
from utils.trainer import train_tools

_v1 = tf.compat.v1

# Marker of the finiteness assertion, to recognise its error.
NON_FINITE_MARKER = 'Non-finite loss or gradient'


def build_ssd_net(model, dataset_num_classes):
  """The SSDNet of ModelOptions (class count: the dataset's by default).

  Raises:
    ValueError: for an unknown network or bad parameters (anchor sizes).
  """
  return nets_factory.build_ssd_net(
      model.model_name, num_classes=model.num_classes or dataset_num_classes,
      dropout_keep_prob=model.dropout_keep_prob, batch_norm=model.batch_norm,
      anchor_sizes=model.anchor_sizes)


def make_deploy_config(deployment):
  """The model_deploy.DeploymentConfig of DeploymentOptions."""
  return model_deploy.DeploymentConfig(
      num_clones=deployment.num_clones, clone_on_cpu=deployment.clone_on_cpu,
      replica_id=deployment.task, num_replicas=deployment.worker_replicas,
      num_ps_tasks=deployment.num_ps_tasks)


def clone_placement_warning(num_clones, clone_on_cpu, num_gpus):
  """A warning when clones meant for GPUs will run on the CPU, or None.

  Without --clone_on_cpu, clone i goes to GPU:i; soft placement puts the
  clones of missing GPUs on the CPU, all on the same device.
  """
  if clone_on_cpu or num_clones <= max(1, num_gpus):
    return None
  if num_clones - num_gpus > 1:
    on_cpu = 'clones %d to %d run' % (num_gpus, num_clones - 1)
  else:
    on_cpu = 'clone %d runs' % num_gpus
  return ('%d clones but %s: %s on the CPU (soft placement), sharing its '
          'cores. Pass --clone_on_cpu to give each clone its own logical '
          'CPU device (as the tests and benchmarks do), or --num_clones=%d.'
          % (num_clones, 'no GPU is visible' if not num_gpus else
             'only %d GPU(s) are visible' % num_gpus, on_cpu,
             max(1, num_gpus)))


def _positive_boxes(ssd_net, anchors, gclasses, glocalisations):
  """The ground-truth boxes as matched to anchors, [B, num_anchors, 4], and
  their classes, [B, num_anchors].

  Decoding the targets of the positive anchors gives back the boxes the
  network is trained on; the others become empty boxes of class 0 (not
  drawn).
  """
  decoded = ssd_net.bboxes_decode(glocalisations, anchors)
  boxes, classes = [], []
  for layer_classes, layer_boxes in zip(gclasses, decoded):
    batch_size = tf.shape(layer_boxes)[0]
    flat_boxes = tf.reshape(layer_boxes, [batch_size, -1, 4])
    flat_classes = tf.reshape(layer_classes, [batch_size, -1])
    positive = flat_classes > 0
    boxes.append(tf.where(positive[..., None], flat_boxes,
                          tf.zeros_like(flat_boxes)))
    classes.append(tf.where(positive, flat_classes,
                            tf.zeros_like(flat_classes)))
  return tf.concat(boxes, axis=1), tf.concat(classes, axis=1)


def make_clone_fn(ssd_net, batch_queue, batch_shape, loss, weight_decay,
                  data_format):
  """The function each clone runs: dequeue, network, losses.

  Args:
    ssd_net: the SSDNet.
    batch_queue, batch_shape: what input_fn returned.
    loss: LossOptions.
    weight_decay: L2 weight decay.
    data_format: 'NHWC' or 'NCHW'.
  """
  anchors = ssd_net.anchors(ssd_net.params.img_shape)

  def clone_fn():
    images, gclasses, glocalisations, gious = train_tools.reshape_list(
        batch_queue.dequeue(), batch_shape)
    with slim.arg_scope(ssd_net.arg_scope(weight_decay=weight_decay,
                                          data_format=data_format)):
      _, localisations, logits, end_points = ssd_net.net(
          images, is_training=True)
    ssd_net.losses(logits, localisations, gclasses, glocalisations, gious,
                   negative_threshold=loss.negative_threshold,
                   negative_ratio=loss.negative_ratio,
                   alpha=loss.loss_alpha,
                   label_smoothing=loss.label_smoothing)
    # Kept only for the first clone (summaries are filtered by its scope).
    with _v1.device('/device:CPU:0'):
      boxes, classes = _positive_boxes(ssd_net, anchors, gclasses,
                                       glocalisations)
      _v1.summary.image('images_with_boxes', visualization.images_with_boxes(
          images, boxes, data_format=data_format, labels=classes))
    return end_points
  return clone_fn


def _loss_terms(first_clone_scope):
  """{name: tensor} of the first clone's losses, for logs and NaN checks."""
  terms = {}
  for loss in _v1.losses.get_losses(first_clone_scope):
    name = loss.op.name[len(first_clone_scope):].split('/')[-1]
    terms[name] = loss
  return terms


@dataclasses.dataclass
class TrainingGraph:
  """The tensors of a built training graph the loop and the logs need."""
  train_op: tf.Tensor
  summary_op: tf.Tensor
  global_step: tf.Variable
  learning_rate: tf.Tensor
  total_loss: tf.Tensor
  # {name: tensor} of the first clone's loss terms.
  loss_terms: dict
  # The SyncReplicasOptimizer with sync_replicas, else None.
  sync_optimizer: typing.Any = None


def decay_period_steps(optimisation, num_samples, images_per_step):
  """Steps per decay period: from num_epochs_per_decay when given; else,
  for the polynomial decay, the whole run (max_number_of_steps, or
  POLYNOMIAL_EPOCHS_WITHOUT_STEP_LIMIT epochs without a limit) and
  EXPONENTIAL_EPOCHS_PER_DECAY epochs for the others (utils.trainer.config)."""
  epochs = optimisation.num_epochs_per_decay
  if epochs is None and optimisation.learning_rate_decay_type == 'polynomial':
    if optimisation.max_number_of_steps:
      return optimisation.max_number_of_steps
    epochs = config_lib.POLYNOMIAL_EPOCHS_WITHOUT_STEP_LIMIT
  return train_tools.decay_steps(
      num_samples, images_per_step,
      config_lib.EXPONENTIAL_EPOCHS_PER_DECAY if epochs is None else epochs)


def learning_rate_schedule(optimisation, num_samples, images_per_step,
                           global_step):
  """The learning-rate tensor of `optimisation`'s schedule."""
  return train_tools.configure_learning_rate(
      global_step, optimisation.learning_rate,
      optimisation.learning_rate_decay_type,
      steps_per_decay=decay_period_steps(optimisation, num_samples,
                                         images_per_step),
      decay_factor=optimisation.learning_rate_decay_factor,
      end_learning_rate=optimisation.end_learning_rate,
      warmup_steps=optimisation.warmup_steps,
      boundaries=optimisation.learning_rate_boundaries,
      values=optimisation.learning_rate_values,
      total_steps=optimisation.max_number_of_steps)


def build_training_graph(config, ssd_net, deploy_config, input_fn,
                         num_samples):
  """Builds the whole training graph in the default graph.

  Args:
    config: a TrainingConfig.
    ssd_net: the SSDNet to train.
    deploy_config: model_deploy.DeploymentConfig.
    input_fn: input_fn(ssd_net, deploy_config) -> (batch_queue, batch_shape)
      (see utils.trainer.input_pipeline).
    num_samples: images per epoch (sizes the learning-rate decay).

  Returns:
    A TrainingGraph.
  """
  global_step = _global_step(config.model.model_name, ssd_net, deploy_config)
  batch_queue, batch_shape = input_fn(ssd_net, deploy_config)
  histograms = config.logging.summarize_histograms
  clones, first_clone_scope, update_ops, summaries = (
      train_tools.deploy_loss_summary(
          deploy_config, make_clone_fn(
              ssd_net, batch_queue, batch_shape, config.loss,
              config.optimisation.weight_decay, config.model.data_format),
          summarize_variables=histograms, summarize_activations=histograms))
  learning_rate, optimizer = _optimizer(config, deploy_config, num_samples,
                                        global_step, summaries)
  moving_averages = _moving_averages(config, deploy_config, global_step,
                                     update_ops)
  sync_optimizer = None
  if config.deployment.sync_replicas:
    sync_optimizer = optimizer = _sync_replicas_optimizer(
        optimizer, config.deployment, deploy_config, moving_averages)

  variables_to_train = train_tools.get_variables_to_train(
      config.optimisation.trainable_scopes)
  total_loss, clones_gradients = model_deploy.optimize_clones(
      clones, optimizer, var_list=variables_to_train)
  summaries |= _total_loss_summaries(deploy_config, total_loss)
  loss_terms = _loss_terms(first_clone_scope)

  finite_check = _finite_check(global_step, total_loss, loss_terms,
                               clones_gradients, learning_rate)
  update_ops.append(_apply_gradients(
      optimizer, clones_gradients, global_step, finite_check,
      deploy_config, synchronous=sync_optimizer is not None))
  with tf.control_dependencies([tf.group(*update_ops)]):
    train_op = tf.identity(total_loss, name='train_op')

  summary_op = _v1.summary.merge(list(summaries), name='summary_op')
  return TrainingGraph(train_op=train_op, summary_op=summary_op,
                       global_step=global_step, learning_rate=learning_rate,
                       total_loss=total_loss, loss_terms=loss_terms,
                       sync_optimizer=sync_optimizer)


def _global_step(model_name, ssd_net, deploy_config):
  """The global step, created on the variables device with the SSD
  parameters variable (saved with every checkpoint: the anchors and classes
  travel with it)."""
  with _v1.device(deploy_config.variables_device()):
    global_step = _v1.train.get_or_create_global_step()
    nets_factory.create_ssd_params_variable(model_name, ssd_net.params)
  return global_step


def _optimizer(config, deploy_config, num_samples, global_step, summaries):
  """(learning rate, optimizer) of the config, on the optimizer device; the
  learning rate's summary goes into `summaries`."""
  optimisation = config.optimisation
  deployment = config.deployment
  with _v1.device(deploy_config.optimizer_device()):
    learning_rate = learning_rate_schedule(
        optimisation, num_samples,
        deployment.images_per_step(config.data.batch_size), global_step)
    optimizer = train_tools.wrap_optimizer_for_precision(
        train_tools.configure_optimizer(
            optimisation.optimizer, learning_rate,
            **optimisation.optimizer_hyperparameters()),
        deployment.precision)
    summaries.add(_v1.summary.scalar('learning_rate', learning_rate))
  return learning_rate, optimizer


def _moving_averages(config, deploy_config, global_step, update_ops):
  """The ExponentialMovingAverage of the weights, or None without
  moving_average_decay.  Without sync_replicas its update joins
  `update_ops`."""
  decay = config.optimisation.moving_average_decay
  if not decay:
    return None
  with _v1.device(deploy_config.variables_device()):
    moving_averages = _v1.train.ExponentialMovingAverage(decay, global_step)
    if not config.deployment.sync_replicas:
      update_ops.append(moving_averages.apply(slim.get_model_variables()))
  return moving_averages


def _sync_replicas_optimizer(optimizer, deployment, deploy_config,
                             moving_averages):
  """`optimizer` aggregating the workers' gradients: the chief applies the
  aggregated gradients, and the moving averages after them, once per
  round."""
  with _v1.device(deploy_config.optimizer_device()):
    return cluster_worker.SyncReplicasOptimizer(
        optimizer,
        replicas_to_aggregate=deployment.aggregated_replicas,
        total_num_replicas=deployment.worker_replicas,
        variable_averages=moving_averages,
        variables_to_average=(slim.get_model_variables()
                              if moving_averages else None))


def _total_loss_summaries(deploy_config, total_loss):
  """The summaries of the total and regularisation losses.

  Not optimize_clones' per-clone loss summaries: with clones, TensorBoard
  would open on their 'clone_0' group; the totals say it all.
  """
  summaries = set()
  with _v1.device(deploy_config.inputs_device()):
    summaries.add(_v1.summary.scalar('losses/total_loss', total_loss))
    regularization_losses = _v1.losses.get_regularization_losses()
    if regularization_losses:
      summaries.add(_v1.summary.scalar('losses/regularization_loss',
                                       tf.add_n(regularization_losses)))
  return summaries


def _apply_gradients(optimizer, clones_gradients, global_step, finite_check,
                     deploy_config, synchronous):
  """The update op of the gradients, which waits for `finite_check`."""
  if synchronous:
    # Only the gradients this worker pushes wait for the check: the update
    # itself runs in the chief's queue runner, which must not run it.
    clones_gradients = _after(finite_check, clones_gradients)
    with _v1.device(deploy_config.optimizer_device()):
      return optimizer.apply_gradients(clones_gradients,
                                       global_step=global_step)
  with tf.control_dependencies([finite_check]):
    with _v1.device(deploy_config.optimizer_device()):
      return optimizer.apply_gradients(clones_gradients,
                                       global_step=global_step)


def _finite_check(global_step, total_loss, loss_terms, clones_gradients,
                  learning_rate):
  """Assertion that every loss and gradient is finite.

  A non-finite loss or gradient stops the step before any weight changes
  (a finite loss can still overflow a gradient), with the step, each loss
  term and the learning rate in the error message.
  """
  losses_finite = _all_finite([total_loss] + list(loss_terms.values()))
  gradients_finite = _all_finite([
      grad.values if isinstance(grad, tf.IndexedSlices) else grad
      for grad, _ in clones_gradients])
  all_finite = tf.logical_and(losses_finite, gradients_finite)
  report = [NON_FINITE_MARKER + ' at step', global_step, 'total_loss',
            total_loss]
  for name in sorted(loss_terms):
    report += [name, loss_terms[name]]
  report += ['gradients_finite', gradients_finite,
             'learning_rate', learning_rate]
  return tf.debugging.Assert(all_finite, report, summarize=16)


def _all_finite(tensors):
  return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


def _after(op, grads_and_vars):
  """The gradients, each computed only once `op` has run."""
  gated = []
  with tf.control_dependencies([op]):
    for grad, var in grads_and_vars:
      if isinstance(grad, tf.IndexedSlices):
        with _v1.colocate_with(grad.values):
          grad = tf.IndexedSlices(tf.identity(grad.values), grad.indices,
                                  grad.dense_shape)
      elif grad is not None:
        with _v1.colocate_with(grad):
          grad = tf.identity(grad)
      gated.append((grad, var))
  return gated
