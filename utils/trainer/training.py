"""The SSD training library: configuration, input, graph, step and loop.

train_ssd_network.py is its flags adapter; tests and benchmarks call it
directly.  The flow (TF-slim's train_image_classifier order):

  1. deployment config and global step on the variables device;
  2. the input: `input_fn(ssd_net, deploy_config) -> (batch_queue,
     batch_shape)`; by default `tfrecord_input_fn`'s pipeline on the CPU
     (TFRecords -> decode -> SSD augmentation -> ground-truth encoding
     against the anchors -> batches, flattened into a prefetch queue that
     each clone dequeues from);
  3. the clone function (dequeue, network, losses) replicated on each clone;
  4. learning rate and optimizer on the optimizer device;
  5. summed clone gradients applied with the global step, after a
     finiteness check;
  6. tf_slim's training loop (`run_training`): checkpoints and TensorBoard
     summaries in train_dir, resuming from the checkpoint already there.
"""
import dataclasses
import os
import signal
import time
import typing

from absl import logging
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from datasets import dataset_factory
from datasets import dataset_utils
from datasets import sample_data
from deployment import cluster as cluster_lib
from deployment import cluster_worker
from deployment import model_deploy
from nets import nets_factory
from nets import ssd_vgg_300
from preprocessing import preprocessing_factory
from preprocessing import visualization
from utils.checkpointing import checkpoint_import
from utils.checkpointing import checkpoints
from utils.checkpointing import warm_start
from utils.checkpointing import checkpoint_saver
from utils.checkpointing import resume
from utils.common import paths
from utils.common import run_directory
from utils.common import run_lock
from utils.trainer import train_tools

_v1 = tf.compat.v1

# Marker of the finiteness assertion, to recognise its error.
_NON_FINITE_MARKER = 'Non-finite loss or gradient'
# Name scope of the input pipeline (errors of its ops name it).
_INPUT_SCOPE = 'input_pipeline'


# ---------------------------------------------------------------------------
# Configuration: one dataclass per group of settings.


@dataclasses.dataclass
class DataOptions:
  """Which data to train on and how it is read and augmented."""
  dataset_name: str = 'voc'
  dataset_split_name: str = 'train'
  dataset_dir: typing.Optional[str] = None
  file_pattern: typing.Optional[str] = None
  batch_size: int = 8
  num_readers: int = 4
  num_preprocessing_threads: int = 4
  # Serialized records the shuffle may hold (its buffer in records follows
  # from the split's mean record size).
  shuffle_buffer_mib: int = dataset_utils.SHUFFLE_BUFFER_MIB
  augmentation: str = 'ssd'


@dataclasses.dataclass
class ModelOptions:
  """The network, and the checkpoint a fresh run starts from."""
  model_name: str = 'ssd_300_vgg'
  num_classes: typing.Optional[int] = None
  data_format: str = 'NHWC'
  # Keep probability of the dropout after conv6/conv7; 1: none (Caffe's).
  dropout_keep_prob: float = 1.0
  # Batch normalisation after every backbone and extra-block convolution.
  batch_norm: bool = False
  # Anchor sizes: a preset of nets.ssd_vgg_300.ANCHOR_SIZES or
  # comma-separated pixels; None: the network's default.
  anchor_sizes: typing.Optional[str] = None
  checkpoint_path: typing.Optional[str] = None
  checkpoint_model_scope: typing.Optional[str] = None
  checkpoint_exclude_scopes: typing.Optional[str] = None
  ignore_missing_vars: bool = False
  # From TF-slim's vgg_16: conv6/conv7 sampled from its fc6/fc7 (the SSD
  # paper's reduced VGG16) instead of random.
  restore_reduced_fc: bool = True


@dataclasses.dataclass
class LossOptions:
  """The SSD loss: matching, hard negatives, weights."""
  # IoU from which an anchor is a positive match (the encoding's).
  match_threshold: float = 0.5
  # Anchors with IoU in [negative_threshold, match_threshold) are ignored
  # (neither positive nor negative); None: no such band (Caffe's).
  negative_threshold: typing.Optional[float] = None
  negative_ratio: float = 3.0
  loss_alpha: float = 1.0
  label_smoothing: float = 0.0


@dataclasses.dataclass
class OptimisationOptions:
  """Regularisation, learning-rate schedule, optimizer, length of the run."""
  weight_decay: float = 0.0005
  optimizer: str = 'adam'
  learning_rate: float = 0.001
  learning_rate_decay_type: str = 'exponential'
  end_learning_rate: float = 0.0001
  learning_rate_decay_factor: float = 0.94
  # Exponential: epochs per x learning_rate_decay_factor (None: 2);
  # polynomial: epochs the decay spans (None: the whole run, to
  # max_number_of_steps).
  num_epochs_per_decay: typing.Optional[float] = None
  warmup_steps: int = 100
  # Piecewise schedule: global steps where the rate changes, and the rates.
  learning_rate_boundaries: typing.Sequence[int] = ()
  learning_rate_values: typing.Sequence[float] = ()
  moving_average_decay: typing.Optional[float] = None
  trainable_scopes: typing.Optional[str] = None
  max_number_of_steps: typing.Optional[int] = None
  # Minutes of training steps after which the run saves and stops.
  max_training_minutes: typing.Optional[float] = None
  # Hyper-parameters of the optimizers (train_tools.OPTIMIZER_HYPERPARAMETERS).
  adadelta_rho: float = 0.95
  adadelta_epsilon: float = 1e-6
  adagrad_initial_accumulator_value: float = 0.1
  adam_beta1: float = 0.9
  adam_beta2: float = 0.999
  adam_epsilon: float = 1e-8
  ftrl_learning_rate_power: float = -0.5
  ftrl_initial_accumulator_value: float = 0.1
  ftrl_l1: float = 0.0
  ftrl_l2: float = 0.0
  momentum: float = 0.9
  rmsprop_decay: float = 0.9
  rmsprop_momentum: float = 0.9
  rmsprop_epsilon: float = 1.0

  def optimizer_hyperparameters(self):
    return {name: getattr(self, name)
            for name in train_tools.OPTIMIZER_HYPERPARAMETERS}


@dataclasses.dataclass
class DeploymentOptions:
  """Clones, replicas, the cluster, precision and device memory."""
  num_clones: int = 1
  clone_on_cpu: bool = False
  worker_replicas: int = 1
  num_ps_tasks: int = 0
  task: int = 0
  # This process's place in a multi-machine cluster; None for a local run.
  cluster: typing.Optional[cluster_lib.Cluster] = None
  sync_replicas: bool = False
  replicas_to_aggregate: typing.Optional[int] = None
  ps_exit_when_done: bool = True
  # Bounds of the cluster's waits (deployment.cluster.Timeouts), in seconds.
  cluster_timeout_secs: float = 600.0
  ps_idle_secs: float = 120.0
  stop_grace_secs: float = 60.0
  precision: str = 'float32'
  gpu_memory_fraction: typing.Optional[float] = None

  @property
  def is_chief(self):
    """Worker 0 (or the only process) initialises, saves and summarises."""
    return self.cluster is None or self.cluster.is_chief

  @property
  def cluster_timeouts(self):
    return cluster_lib.Timeouts(self.cluster_timeout_secs, self.ps_idle_secs,
                                self.stop_grace_secs)

  @property
  def aggregated_replicas(self):
    """Workers' steps one synchronous global step aggregates (default: every
    worker)."""
    return self.replicas_to_aggregate or self.worker_replicas

  def images_per_step(self, batch_size):
    """Images one global step trains on (all clones and replicas)."""
    images = batch_size * self.num_clones
    if self.sync_replicas:
      images *= self.aggregated_replicas
    return images


@dataclasses.dataclass
class LoggingOptions:
  """Where and how often the run logs, summarises and saves."""
  train_dir: str = paths.FINE_TUNING_DIR
  log_every_n_steps: int = 10
  save_summaries_secs: int = 60
  save_interval_secs: int = 600
  max_to_keep: int = 5
  keep_checkpoint_every_n_hours: float = 1.0
  # Histograms of activations and weights and activation sparsity (costly,
  # and they bury the losses in TensorBoard).
  summarize_histograms: bool = False


@dataclasses.dataclass
class TrainingConfig:
  """Everything a training run needs to know, grouped."""
  data: DataOptions = dataclasses.field(default_factory=DataOptions)
  model: ModelOptions = dataclasses.field(default_factory=ModelOptions)
  loss: LossOptions = dataclasses.field(default_factory=LossOptions)
  optimisation: OptimisationOptions = dataclasses.field(
      default_factory=OptimisationOptions)
  deployment: DeploymentOptions = dataclasses.field(
      default_factory=DeploymentOptions)
  logging: LoggingOptions = dataclasses.field(default_factory=LoggingOptions)
  # Graph-level random seed (also seeds the augmentation); None: random.
  seed: typing.Optional[int] = None

  GROUPS = ('data', 'model', 'loss', 'optimisation', 'deployment', 'logging')

  def settings(self):
    """[(name, value)] of every setting, group by group (for the logs)."""
    items = []
    for group in self.GROUPS:
      for field in dataclasses.fields(getattr(self, group)):
        value = getattr(getattr(self, group), field.name)
        if field.name == 'cluster':
          if value is not None:
            items += [('ps_hosts', ','.join(value.ps_hosts)),
                      ('worker_hosts', ','.join(value.worker_hosts)),
                      ('job_name', value.job_name)]
          continue
        items.append((field.name, value))
    items.append(('seed', self.seed))
    return items


# ---------------------------------------------------------------------------
# Data and network.


def load_dataset(data):
  """The training dataset of DataOptions (the built-in sample by default)."""
  return dataset_factory.get_dataset(
      data.dataset_name, data.dataset_split_name,
      sample_data.dataset_dir_or_sample(data.dataset_dir), data.file_pattern)


def build_ssd_net(model, dataset_num_classes):
  """The SSDNet of ModelOptions (class count: the dataset's by default).

  Raises:
    ValueError: for an unknown network or bad parameters (anchor sizes).
  """
  return nets_factory.build_ssd_net(
      model.model_name, num_classes=model.num_classes or dataset_num_classes,
      dropout_keep_prob=model.dropout_keep_prob, batch_norm=model.batch_norm,
      anchor_sizes=model.anchor_sizes)


# ---------------------------------------------------------------------------
# Input.


def tfrecord_input_fn(config, dataset):
  """The default input_fn: the TFRecord pipeline of `dataset`.

  Args:
    config: the TrainingConfig (its data options, the model's name and data
      format, the match threshold and the seed: with a seed, each example's
      augmentation is seeded by its index).
    dataset: a datasets.dataset_factory dataset (its read()).

  Returns:
    input_fn(ssd_net, deploy_config) -> (batch_queue, batch_shape).
  """
  def input_fn(ssd_net, deploy_config):
    return build_input_queue(
        dataset, config.data, config.model.model_name,
        config.model.data_format, config.loss.match_threshold, config.seed,
        ssd_net, deploy_config)
  return input_fn


def build_input_queue(dataset, data, model_name, data_format,
                      match_threshold, seed, ssd_net, deploy_config):
  """The CPU input pipeline, ending in one prefetch queue for the clones.

  Returns:
    (batch_queue, batch_shape): a queue of flat lists of 1 + 3 x L tensors
    (the image batch, then gclasses, glocalisations and gious for each of
    the L feature layers) and the group sizes for reshape_list.
  """
  augment = data.augmentation == 'ssd'
  image_preprocessing_fn = preprocessing_factory.get_preprocessing(
      model_name, is_training=augment)
  anchors = ssd_net.anchors(ssd_net.params.img_shape)

  def preprocess(index, example):
    """Training augmentation, or the evaluation resize without it."""
    inputs = (example['image'], example['labels'], example['bboxes'])
    out_shape = ssd_net.params.img_shape
    if not augment:
      return image_preprocessing_fn(*inputs, out_shape=out_shape,
                                    data_format=data_format)[:3]
    # With a seed, each example's augmentation is seeded by its index, so a
    # run is reproducible whatever the number of parallel calls.
    example_seed = None if seed is None else tf.stack(
        [tf.constant(seed, tf.int64), index])
    return image_preprocessing_fn(*inputs, out_shape=out_shape,
                                  data_format=data_format, seed=example_seed)

  def preprocess_and_encode(index, example):
    image, labels, bboxes = preprocess(index, example)
    gclasses, glocalisations, gious = ssd_net.bboxes_encode(
        labels, bboxes, anchors, match_threshold=match_threshold)
    return tuple(train_tools.reshape_list(
        [image, gclasses, glocalisations, gious]))

  with _v1.device(deploy_config.inputs_device()):
    with tf.name_scope(_INPUT_SCOPE):
      # Large JPEGs (a short side of 4x the input's or more) decode at
      # 1/2 to 1/8 size, keeping twice the input's side (bench/README.md).
      examples = dataset.read(
          num_readers=data.num_readers, shuffle=True, seed=seed,
          shuffle_buffer_size=dataset.shuffle_buffer_size(
              data.shuffle_buffer_mib),
          decode_min_side=2 * max(ssd_net.params.img_shape))
      batches = (examples
                 .enumerate()
                 .map(preprocess_and_encode,
                      num_parallel_calls=data.num_preprocessing_threads)
                 .batch(data.batch_size, drop_remainder=True)
                 .prefetch(2))
      # Without a seed the order is random anyway: let parallel calls
      # deliver out of order rather than wait for the slowest.
      options = tf.data.Options()
      options.deterministic = seed is not None
      batches = batches.with_options(options)
      batch = _v1.data.make_one_shot_iterator(batches).get_next()
      batch_queue = slim.prefetch_queue.prefetch_queue(
          list(batch), capacity=2 * deploy_config.num_clones)
  num_layers = len(anchors)
  return batch_queue, [1] + [num_layers] * 3


class FixedBatchQueue(object):
  """Stands in for the prefetch queue: every dequeue() reads one fixed batch.

  The batch lives in local (not saved) variables, so a graph holding it
  stays small to serialise.
  """

  def __init__(self, arrays):
    with tf.name_scope('fixed_batch'):
      self._variables = [
          _v1.Variable(array, trainable=False, name='batch_%d' % i,
                       collections=[_v1.GraphKeys.LOCAL_VARIABLES])
          for i, array in enumerate(arrays)]

  def dequeue(self):
    return [variable.read_value() for variable in self._variables]


def fixed_batch_input_fn(arrays, batch_shape):
  """An input_fn serving one batch (a flat list of arrays) at every step.

  For the model step alone (benchmarks) and memorisation checks (tests).
  """
  def input_fn(unused_ssd_net, unused_deploy_config):
    return FixedBatchQueue(arrays), batch_shape
  return input_fn


def read_batch(input_fn, ssd_net, deploy_config, seed=None):
  """One batch of `input_fn`'s queue, as numpy arrays (in its own graph).

  Returns:
    (flat list of arrays, batch_shape).
  """
  with tf.Graph().as_default():
    if seed is not None:
      _v1.set_random_seed(seed)
    queue, batch_shape = input_fn(ssd_net, deploy_config)
    batch = queue.dequeue()
    with _v1.Session() as sess:
      coord = _v1.train.Coordinator()
      threads = _v1.train.start_queue_runners(sess, coord)
      try:
        arrays = sess.run(batch)
      finally:
        coord.request_stop()
        coord.join(threads, stop_grace_period_secs=10)
  return arrays, batch_shape


# ---------------------------------------------------------------------------
# The graph.


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


# The defaults of a run that no pretrained checkpoint starts: the recipe
# with the best held-out mAP from scratch (bench/generalises.py, README
# "Results"), {option group: {setting: value}}.
FROM_SCRATCH_RECIPE_NAME = 'bn'
FROM_SCRATCH_RECIPE = {
    'model': {'batch_norm': True},
    'optimisation': {'optimizer': 'adam', 'learning_rate': 0.001,
                     'end_learning_rate': 0.0001,
                     'learning_rate_decay_type': 'polynomial',
                     'warmup_steps': 100},
}


def pretrained_checkpoint(model):
  """The checkpoint a fresh run starts from: model.checkpoint_path, else the
  latest in checkpoints.PRETRAINED_DIR, else None (from scratch)."""
  return model.checkpoint_path or checkpoints.find_checkpoint(
      checkpoints.PRETRAINED_DIR)


# Epochs per exponential decay step when num_epochs_per_decay is not given.
EXPONENTIAL_EPOCHS_PER_DECAY = 2.0
# Epochs a polynomial decay spans in a run without a step limit: the span
# of the measured from-scratch recipe (8,000 images of 320 photos).
POLYNOMIAL_EPOCHS_WITHOUT_STEP_LIMIT = 25.0


def decay_period_steps(optimisation, num_samples, images_per_step):
  """Steps per decay period: from num_epochs_per_decay when given; else,
  for the polynomial decay, the whole run (max_number_of_steps, or
  POLYNOMIAL_EPOCHS_WITHOUT_STEP_LIMIT epochs without a limit) and
  EXPONENTIAL_EPOCHS_PER_DECAY epochs for the others."""
  epochs = optimisation.num_epochs_per_decay
  if epochs is None and optimisation.learning_rate_decay_type == 'polynomial':
    if optimisation.max_number_of_steps:
      return optimisation.max_number_of_steps
    epochs = POLYNOMIAL_EPOCHS_WITHOUT_STEP_LIMIT
  return train_tools.decay_steps(
      num_samples, images_per_step,
      EXPONENTIAL_EPOCHS_PER_DECAY if epochs is None else epochs)


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
      (see tfrecord_input_fn).
    num_samples: images per epoch (sizes the learning-rate decay).

  Returns:
    A TrainingGraph.
  """
  optimisation = config.optimisation
  deployment = config.deployment
  with _v1.device(deploy_config.variables_device()):
    global_step = _v1.train.get_or_create_global_step()
    # Saved with every checkpoint: the anchors and classes travel with it.
    nets_factory.create_ssd_params_variable(config.model.model_name,
                                            ssd_net.params)

  batch_queue, batch_shape = input_fn(ssd_net, deploy_config)
  histograms = config.logging.summarize_histograms
  clones, first_clone_scope, update_ops, summaries = (
      train_tools.deploy_loss_summary(
          deploy_config, make_clone_fn(
              ssd_net, batch_queue, batch_shape, config.loss,
              optimisation.weight_decay, config.model.data_format),
          summarize_variables=histograms, summarize_activations=histograms))

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

  moving_averages = None
  if optimisation.moving_average_decay:
    with _v1.device(deploy_config.variables_device()):
      moving_averages = _v1.train.ExponentialMovingAverage(
          optimisation.moving_average_decay, global_step)
      if not deployment.sync_replicas:
        update_ops.append(moving_averages.apply(slim.get_model_variables()))

  sync_optimizer = None
  if deployment.sync_replicas:
    # The chief applies the aggregated gradients, and the moving averages
    # after them, once per round.
    with _v1.device(deploy_config.optimizer_device()):
      sync_optimizer = optimizer = cluster_worker.SyncReplicasOptimizer(
          optimizer,
          replicas_to_aggregate=deployment.aggregated_replicas,
          total_num_replicas=deployment.worker_replicas,
          variable_averages=moving_averages,
          variables_to_average=(slim.get_model_variables()
                                if moving_averages else None))

  variables_to_train = train_tools.get_variables_to_train(
      optimisation.trainable_scopes)
  total_loss, clones_gradients = model_deploy.optimize_clones(
      clones, optimizer, var_list=variables_to_train)
  # Not optimize_clones' per-clone loss summaries: with clones, TensorBoard
  # would open on their 'clone_0' group; the totals say it all.
  with _v1.device(deploy_config.inputs_device()):
    summaries.add(_v1.summary.scalar('losses/total_loss', total_loss))
    regularization_losses = _v1.losses.get_regularization_losses()
    if regularization_losses:
      summaries.add(_v1.summary.scalar('losses/regularization_loss',
                                       tf.add_n(regularization_losses)))
  loss_terms = _loss_terms(first_clone_scope)

  finite_check = _finite_check(global_step, total_loss, loss_terms,
                               clones_gradients, learning_rate)
  if sync_optimizer is not None:
    # Only the gradients this worker pushes wait for the check: the update
    # itself runs in the chief's queue runner, which must not run it.
    clones_gradients = _after(finite_check, clones_gradients)
    with _v1.device(deploy_config.optimizer_device()):
      grad_updates = optimizer.apply_gradients(clones_gradients,
                                               global_step=global_step)
  else:
    with tf.control_dependencies([finite_check]):
      with _v1.device(deploy_config.optimizer_device()):
        grad_updates = optimizer.apply_gradients(clones_gradients,
                                                 global_step=global_step)
  update_ops.append(grad_updates)
  with tf.control_dependencies([tf.group(*update_ops)]):
    train_op = tf.identity(total_loss, name='train_op')

  summary_op = _v1.summary.merge(list(summaries), name='summary_op')
  return TrainingGraph(train_op=train_op, summary_op=summary_op,
                       global_step=global_step, learning_rate=learning_rate,
                       total_loss=total_loss, loss_terms=loss_terms,
                       sync_optimizer=sync_optimizer)


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
  report = [_NON_FINITE_MARKER + ' at step', global_step, 'total_loss',
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


# ---------------------------------------------------------------------------
# The step and the loop.


class TrainingStopped(Exception):
  """Training cannot go on (e.g. a non-finite loss); the message says why."""


class StepRunner(object):
  """tf_slim train_step_fn: runs a step, logs progress, stops cleanly.

  Logs every log_every_n_steps: step, total loss and each loss term,
  learning rate, images/second and, with a step limit, an ETA.  Ctrl-C, or
  a stop file (`<train_dir>/STOP`, run_directory.STOP_FILE_NAME, which evaluation's
  early stopping writes), finishes the current step, then stops (the
  training loop then saves a checkpoint).  A non-finite loss or gradient
  stops before the weights change.
  """

  def __init__(self, graph, images_per_step, max_number_of_steps,
               log_every_n_steps, stop_file=None, summary_writer=None,
               save_summaries_secs=60, max_training_minutes=None):
    """Args:
      graph: the TrainingGraph.
      images_per_step: images one step trains on (for images/s).
      max_number_of_steps: global step at which to stop; None: never.
      log_every_n_steps: steps between two progress lines.
      stop_file: path whose existence stops training; None: none.
      summary_writer: where the summaries go (the chief's); None: none.
      save_summaries_secs: seconds between two summaries (also written
        after the first and the last step).
      max_training_minutes: time budget of the steps (from the first one);
        None: none.
    """
    self._loss_terms = graph.loss_terms
    self._learning_rate = graph.learning_rate
    self._images_per_step = images_per_step
    self._max_steps = max_number_of_steps
    self._log_every = max(1, log_every_n_steps)
    self._stop_file = stop_file
    self._budget_secs = (None if max_training_minutes is None
                         else 60.0 * max_training_minutes)
    self._start = None
    self._start_step = None
    self._summary_op = graph.summary_op
    self._summary_writer = summary_writer
    self._summary_secs = save_summaries_secs
    self._last_summary = None  # (time, step) of the last summary.
    self._interrupted = False
    self._interval_start = None
    self._interval_steps = 0
    self.failure = None

  def request_stop(self, signum=None, unused_frame=None):
    logging.warning('%s: stopping after this step and saving a '
                    'checkpoint (press Ctrl-C again to abort without '
                    'saving).', 'SIGTERM' if signum == signal.SIGTERM
                    else 'Interrupted')
    self._interrupted = True
    signal.signal(signal.SIGINT, signal.default_int_handler)

  def __call__(self, sess, train_op, global_step, unused_kwargs):
    if self._interval_start is None:
      self._interval_start = time.time()
    if self._start is None:
      self._start = time.time()
      finished = self._finished_before_training(sess, global_step)
      if finished:
        logging.info('%s', finished)
        return float('nan'), True
    try:
      total_loss, terms, learning_rate = sess.run(
          [train_op, self._loss_terms, self._learning_rate])
    except tf.errors.InvalidArgumentError as error:
      if _NON_FINITE_MARKER not in error.message:
        raise
      self.failure = (
          'Training stopped: %s. The weights were not updated with it and '
          'the last good state is saved. Lower --learning_rate, check the '
          'data with `python -m datasets.inspect_tfrecords`, or resume from '
          'the checkpoint.' % _assertion_text(error.message))
      logging.error(self.failure)
      return float('nan'), True
    # Read after the step: the step's own read may precede the increment.
    step = sess.run(global_step)
    self._interval_steps += 1
    # The first step of a run is logged too: the loss it starts from.
    if (step % self._log_every == 0 or step == self._max_steps or
        self._start_step is None):
      self._log(step, total_loss, terms, learning_rate)
    if self._start_step is None:
      self._start_step = step
    should_stop = (self._interrupted or self._stop_file_found(step) or
                   self._budget_spent(step) or (
                       self._max_steps is not None and
                       step >= self._max_steps))
    self._summarise(sess, step, should_stop)
    return total_loss, should_stop

  def _finished_before_training(self, sess, global_step):
    """The nothing-to-train line if the global step is already at the
    step limit (a cluster resumed past it), else None."""
    if self._max_steps is None:
      return None
    step = sess.run(global_step)
    if step < self._max_steps:
      return None
    return _nothing_to_train_line(step, self._max_steps, 'Training')

  def _summarise(self, sess, step, last):
    """Writes the summaries and the throughput since the previous ones.

    Run here, between two steps, rather than in the Supervisor's threads:
    beside a step on a few cores, their session runs waited for the step,
    so that its step counter measured 0 global_step/sec most of the time,
    and the summary op slowed the step it ran beside.
    """
    if self._summary_writer is None:
      return
    now = time.time()
    if self._last_summary is not None:
      last_time, last_step = self._last_summary
      if not last and now - last_time < self._summary_secs:
        return
      steps_per_sec = (step - last_step) / max(now - last_time, 1e-9)
      self._summary_writer.add_summary(_v1.Summary(value=[
          _v1.Summary.Value(tag='global_step/sec',
                            simple_value=steps_per_sec),
          _v1.Summary.Value(tag='throughput/images_per_sec',
                            simple_value=steps_per_sec *
                            self._images_per_step)]), step)
    self._summary_writer.add_summary(sess.run(self._summary_op), step)
    self._summary_writer.flush()
    # Measured from after the summary: its cost is not a training step's.
    self._last_summary = (time.time(), step)

  def _budget_spent(self, step):
    if self._budget_secs is None:
      return False
    elapsed = time.time() - self._start
    if elapsed < self._budget_secs:
      return False
    logging.info('Time budget of %.1f minutes spent at step %d (%.1f '
                 'minutes): saving a checkpoint and stopping.',
                 self._budget_secs / 60, step, elapsed / 60)
    return True

  def _stop_file_found(self, step):
    if not self._stop_file or not os.path.exists(self._stop_file):
      return False
    logging.info('Found %s at step %d: saving a checkpoint and stopping.',
                 self._stop_file, step)
    return True

  def _log(self, step, total_loss, terms, learning_rate):
    elapsed = time.time() - self._interval_start
    seconds_per_step = elapsed / max(1, self._interval_steps)
    line = 'step %d: loss %.4f (%s) lr %.3g, %.2f images/s, %.2f s/step' % (
        step, total_loss,
        ', '.join('%s %.4f' % (k, terms[k]) for k in sorted(terms)),
        learning_rate, self._images_per_step / seconds_per_step,
        seconds_per_step)
    if self._max_steps:
      remaining = max(0, self._max_steps - step) * seconds_per_step
      line += ', ETA %s' % time.strftime('%H:%M:%S', time.gmtime(remaining))
    logging.info(line)
    self._interval_start = time.time()
    self._interval_steps = 0


def _assertion_text(message):
  """'Non-finite loss at step] [12] [total_loss] [nan]...' -> readable."""
  text = message[message.index(_NON_FINITE_MARKER):].split('\n')[0]
  parts = [part.strip(' []') for part in text.split('] [')]
  pairs = ['%s %s' % (parts[i], parts[i + 1])
           for i in range(0, len(parts) - 1, 2)]
  return ', '.join(pairs)


def write_training_config(config, ssd_params, dataset):
  """Writes the settings, SSD parameters and data files to the log and a file.

  The file is run_directory.TRAINING_CONFIG_FILE_NAME in config.logging.train_dir,
  replaced atomically.
  """
  lines = ['# Settings'] + ['--%s=%s' % item for item in config.settings()]
  lines += ['', '# SSD parameters'] + [
      '%s: %s' % (k, v) for k, v in ssd_params._asdict().items()]
  lines += ['', '# Data: %s, split %s, %d samples, %d classes' % (
      dataset.name, dataset.split_name, dataset.num_samples,
      dataset.num_classes)] + list(dataset.files)
  text = '\n'.join(lines) + '\n'
  logging.info('Training configuration:\n%s', text)
  train_dir = config.logging.train_dir
  tf.io.gfile.makedirs(train_dir)
  paths.write_text_atomically(
      run_directory.training_config_file(train_dir), text)


def _settings_text(config, ssd_params):
  """Markdown of the settings and SSD parameters (TensorBoard's Text tab)."""
  rows = ['| setting | value |', '|---|---|']
  rows += ['| %s | %s |' % item for item in config.settings()]
  rows += ['', '| SSD parameter | value |', '|---|---|']
  rows += ['| %s | %s |' % item for item in ssd_params._asdict().items()]
  return '\n'.join(rows)


# The settings that tell runs apart: TensorBoard's HParams table gets these
# (it sorts its columns by name, and a column per setting of every optimizer
# buried them); all settings are in the Text tab.
_KEY_HPARAMS = ('learning_rate', 'optimizer', 'batch_size', 'num_clones',
                'precision', 'learning_rate_decay_type', 'warmup_steps',
                'max_number_of_steps', 'weight_decay', 'batch_norm',
                'anchor_sizes', 'augmentation', 'dataset_dir')


def _hparams(config):
  """{name: bool/int/float/str} of the _KEY_HPARAMS settings, for
  TensorBoard's HParams."""
  values = {}
  settings = dict(config.settings())
  for name, value in ((name, settings[name]) for name in _KEY_HPARAMS
                      if name in settings):
    if value is None:
      continue
    if not isinstance(value, (bool, int, float, str)):
      value = str(value)
    values[name] = value
  return values


def write_run_summaries(writer, config, ssd_params, graph):
  """Writes, once, what describes the run: the graph, the settings and SSD
  parameters as text, and the settings as hyper-parameters (with the total
  loss as metric) for comparing runs in TensorBoard's HParams tab."""
  # pylint: disable=g-import-not-at-top
  from tensorboard.plugins.hparams import api as hparams_api
  # pylint: enable=g-import-not-at-top
  writer.add_graph(graph)
  with tf.Graph().as_default():
    text = _v1.summary.text('training_config',
                            tf.constant(_settings_text(config, ssd_params)))
    with _v1.Session() as sess:
      writer.add_summary(sess.run(text))
  hparams = _hparams(config)
  for summary in (hparams_api.hparams_config_pb(
      hparams=[hparams_api.HParam(name) for name in hparams],
      metrics=[hparams_api.Metric('losses/total_loss')]),
                  hparams_api.hparams_pb(hparams)):
    # TensorBoard's own Summary class, as TensorFlow's.
    writer.add_summary(_v1.Summary.FromString(summary.SerializeToString()))
  writer.flush()


def make_init_fn(train_dir, model, ssd_net=None):
  """Initialisation from model.checkpoint_path, unless train_dir resumes.

  Call it once the graph is built: a checkpoint to resume from is checked
  against its variables (utils.checkpointing.resume.resume_checkpoint).

  Args:
    train_dir: the run's directory; a checkpoint there is resumed from.
    model: ModelOptions (checkpoint path, scopes).
    ssd_net: the SSDNet (its SSD-only scopes, for a VGG16 checkpoint; its
      parameters must be those a resumed run was trained with).

  Returns:
    The init_fn(session) of slim.learning.train, or None.
  """
  resume_from = resume.resume_checkpoint(
      train_dir, model_params=(model.model_name, ssd_net.params)
      if ssd_net is not None else None)
  if resume_from:
    logging.info('Resuming from %s (global step, optimizer state and '
                 'learning-rate schedule continue from there).', resume_from)
    return None
  checkpoint_path = pretrained_checkpoint(model)
  if not checkpoint_path:
    logging.info('No checkpoint to start from: training from scratch.')
    return None
  checkpoint_path = checkpoints.resolve_checkpoint_path(checkpoint_path)
  checkpoint_model_scope, exclude_scopes = warm_start.pretrained_settings(
      checkpoint_path, ssd_net, model.model_name, model.checkpoint_model_scope,
      model.checkpoint_exclude_scopes)
  return warm_start.get_init_fn(
      model.model_name, checkpoint_path, checkpoint_model_scope,
      exclude_scopes, model.ignore_missing_vars,
      derived_values=reduced_fc_init(model, checkpoint_path,
                                     checkpoint_model_scope))


def reduced_fc_init(model, checkpoint_path, checkpoint_model_scope):
  """conv6/conv7 sampled from a vgg_16 checkpoint's fc6/fc7, or None."""
  if (not model.restore_reduced_fc or
      checkpoint_model_scope != ssd_vgg_300.VGG_16_SCOPE):
    return None
  values = checkpoint_import.reduced_fc_values(
      checkpoints.open_checkpoint(checkpoint_path), checkpoint_model_scope,
      model.model_name)
  if values:
    logging.info('conv6 and conv7 start from %s\'s fc6 and fc7, sampled as '
                 'the SSD paper\'s reduced VGG16 (--norestore_reduced_fc '
                 'keeps them random).', checkpoint_path)
  return values


def check_train_dir(train_dir):
  """Raises ValueError, one line naming it, unless `train_dir` is (or can be
  created as) a folder this process can write into; creates nothing."""
  blocking = paths.blocking_file(train_dir)
  if blocking:
    raise ValueError('--train_dir %s: %s is a file, not a folder.' % (
        train_dir, blocking))
  existing = os.path.abspath(train_dir)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.access(existing, os.W_OK | os.X_OK):
    read_only = os.statvfs(existing).f_flag & os.ST_RDONLY
    raise ValueError('--train_dir %s: cannot write into %s (%s).' % (
        train_dir, existing, 'a read-only file system' if read_only
        else 'permission denied'))


def start_run_directory(config, ssd_net, dataset, stop_file):
  """Once the run is known to start: the stop file of a previous run goes,
  the settings are logged and written, and the SSD parameters are written
  beside the checkpoints (a human-readable copy of those inside them)."""
  remove_stop_file(stop_file)
  write_training_config(config, ssd_net.params, dataset)
  nets_factory.write_ssd_params(config.logging.train_dir,
                                config.model.model_name, ssd_net.params)


def damaged_data_message(dataset, error):
  """What to say when reading the training TFRecords hit `error` (a
  DataLossError): the truncated shard if one is, else the split's files."""
  for path in dataset.files:
    reason = dataset_utils.tfrecord_damage(path)
    if reason:
      return ('Training data %s is damaged: %s. Convert the dataset again '
              '(or remove that file).' % (path, reason))
  return ('A TFRecord file of the training data is damaged (%s); the '
          'split\'s files: %s. Find it with `python -m '
          'datasets.inspect_tfrecords` and convert the dataset again.' % (
              checkpoints.first_line(error), ', '.join(dataset.files)))


def remove_stop_file(stop_file):
  """Removes the stop file a previous run honoured, so that this one runs.

  The file stays in place while the run it stopped ends (every worker of a
  cluster sees it); the next run in the same directory starts without it.
  """
  if os.path.exists(stop_file):
    logging.info('Removing %s, left by a previous run: training goes on '
                 'until it is written again.', stop_file)
    os.remove(stop_file)


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


def make_deploy_config(deployment):
  """The model_deploy.DeploymentConfig of DeploymentOptions."""
  return model_deploy.DeploymentConfig(
      num_clones=deployment.num_clones, clone_on_cpu=deployment.clone_on_cpu,
      replica_id=deployment.task, num_replicas=deployment.worker_replicas,
      num_ps_tasks=deployment.num_ps_tasks)


def nothing_to_train(config):
  """The line saying that a local run has nothing to train, or None.

  A local run whose train_dir already holds a checkpoint at or past
  max_number_of_steps (or whose max_number_of_steps is 0) stops before its
  graph is built.  In a cluster every worker's first step finds it instead
  (StepRunner), so that no task waits for a chief that never starts.
  """
  max_steps = config.optimisation.max_number_of_steps
  if max_steps is None or config.deployment.cluster is not None:
    return None
  train_dir = config.logging.train_dir
  step = checkpoints.saved_global_step(train_dir) or 0
  if step < max_steps:
    return None
  return _nothing_to_train_line(step, max_steps, train_dir)


def _nothing_to_train_line(step, max_steps, where):
  return ('%s is already at step %d >= --max_number_of_steps %d: nothing to '
          'train.' % (where, step, max_steps))


def _make_train_dir(train_dir):
  """Creates train_dir if needed; returns whether it did."""
  if os.path.isdir(train_dir):
    return False
  try:
    os.makedirs(train_dir)
  except OSError as error:
    raise ValueError('cannot create --train_dir %s (%s)' % (
        train_dir, error.strerror or error)) from None
  return True


def _remove_if_empty(directory):
  """A train_dir this run created goes again when the run wrote nothing."""
  try:
    os.rmdir(directory)
  except OSError:
    pass


def run_training(config, ssd_net, dataset, input_fn=None):
  """Builds the training graph and runs the training loop.

  The chief (or a local run) holds `<train_dir>/.lock` (run_directory.LOCK_FILE_NAME) for
  the run's life: a second run in the same train_dir is refused before it
  writes anything there.

  Args:
    config: a TrainingConfig (deployment.precision resolved: not 'auto').
    ssd_net: the SSDNet to train.
    dataset: the training dataset (num_samples, files for the logs; the
      default input reads it).
    input_fn: input_fn(ssd_net, deploy_config) -> (batch_queue,
      batch_shape); default: tfrecord_input_fn of `dataset`.

  Nothing in train_dir changes before every check has passed: the
  directory, the pretrained checkpoint (before the graph is built), then
  the checkpoint to resume from and its fit to the model (once it is).

  Returns:
    False when there was nothing to train (`nothing_to_train`, logged),
    else True.

  Raises:
    TrainingStopped: when a non-finite loss or damaged training data
      stopped the run.
    ValueError (incl. CheckpointError): for bad settings, data or
      checkpoints.
    run_lock.LockHeld: another run holds train_dir (naming its pid, host).
  """
  if not config.deployment.is_chief:
    _build_and_train(config, ssd_net, dataset, input_fn)
    return True
  train_dir = config.logging.train_dir
  check_train_dir(train_dir)
  if config.model.checkpoint_path:
    # A bad path fails now, not after the graph is built.
    checkpoints.open_pretrained(config.model.checkpoint_path)
  created = _make_train_dir(train_dir)
  try:
    with run_lock.hold(run_directory.lock_file(train_dir),
                       '--train_dir %s' % train_dir):
      finished = nothing_to_train(config)
      if finished:
        logging.info('%s', finished)
        return False
      _build_and_train(config, ssd_net, dataset, input_fn)
  except BaseException:
    if created:
      _remove_if_empty(train_dir)
    raise
  return True


def _build_and_train(config, ssd_net, dataset, input_fn):
  """run_training's graph and loop (the lock, if any, already held)."""
  deployment = config.deployment
  cluster = deployment.cluster
  if input_fn is None:
    input_fn = tfrecord_input_fn(config, dataset)
  deploy_config = make_deploy_config(deployment)
  stop_file = run_directory.stop_file(config.logging.train_dir)
  session_config = train_tools.session_config(
      deploy_config, deployment.gpu_memory_fraction, deployment.precision)
  if cluster is not None:
    # Starts the server (it owns this worker's devices) and checks the
    # cluster now, before the graph is built.
    worker_task = cluster_worker.start_worker(cluster, session_config,
                                           deployment.cluster_timeouts)

  graph = tf.Graph()
  with graph.as_default(), _v1.device(
      cluster.task_device if cluster else ''):
    if config.seed is not None:
      _v1.set_random_seed(config.seed)
    tensors = build_training_graph(config, ssd_net, deploy_config, input_fn,
                                   dataset.num_samples)
    init_fn = (make_init_fn(config.logging.train_dir, config.model, ssd_net)
               if deployment.is_chief else None)
    saver = checkpoint_saver.CheckpointSaver(
        max_to_keep=config.logging.max_to_keep,
        keep_checkpoint_every_n_hours=(
            config.logging.keep_checkpoint_every_n_hours))
    summary_writer = None
    if deployment.is_chief:
      start_run_directory(config, ssd_net, dataset, stop_file)
      summary_writer = _v1.summary.FileWriter(config.logging.train_dir)
      write_run_summaries(summary_writer, config, ssd_net.params, graph)
    step_runner = StepRunner(
        tensors, deployment.images_per_step(config.data.batch_size),
        config.optimisation.max_number_of_steps,
        config.logging.log_every_n_steps, stop_file=stop_file,
        summary_writer=summary_writer,
        save_summaries_secs=config.logging.save_summaries_secs,
        max_training_minutes=config.optimisation.max_training_minutes)

    def run_loop(master, loop_session_config):
      if tensors.sync_optimizer is not None:
        tensors.sync_optimizer.session_config = loop_session_config
      # In a cluster, deployment/cluster.py watches the signals. Locally,
      # Ctrl-C and SIGTERM (a cluster manager's or `kill`'s stop) both
      # finish the step and save a checkpoint.
      previous_handlers = ({sig: signal.signal(sig, step_runner.request_stop)
                            for sig in (signal.SIGINT, signal.SIGTERM)}
                           if cluster is None else {})
      try:
        slim.learning.train(
            tensors.train_op, logdir=config.logging.train_dir,
            train_step_fn=step_runner, master=master,
            is_chief=deployment.is_chief, init_fn=init_fn,
            # The step runner writes the summaries, between steps.
            summary_op=None, summary_writer=None,
            save_interval_secs=config.logging.save_interval_secs,
            saver=saver, sync_optimizer=tensors.sync_optimizer,
            session_config=loop_session_config)
      finally:
        for sig, handler in previous_handlers.items():
          signal.signal(sig, handler)

    try:
      if cluster is None:
        run_loop('', session_config)
      else:
        worker_task.run(run_loop, step_runner.request_stop)
    except tf.errors.DataLossError as error:
      if _INPUT_SCOPE not in (error.message or ''):
        raise
      raise TrainingStopped(damaged_data_message(dataset, error)) from None
    finally:
      if summary_writer is not None:
        summary_writer.close()
  if step_runner.failure:
    raise TrainingStopped(step_runner.failure)
