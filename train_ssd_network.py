"""Trains an SSD detector on one or many GPUs (or CPUs) from TFRecords.

The flow, step by step:
  1. deployment config and global step on the variables device;
  2. the input pipeline on the CPU: TFRecords -> decode -> SSD augmentation
     -> ground-truth encoding against the anchors -> batches of batch_size,
     flattened into a prefetch queue that each clone dequeues from;
  3. the clone function (dequeue, network, losses) replicated on each clone;
  4. learning rate and optimizer on the optimizer device;
  5. summed clone gradients applied with the global step;
  6. tf_slim's training loop: checkpoints and TensorBoard summaries in
     --train_dir, resuming from the checkpoint already there.

Run `python train_ssd_network.py --help` for every flag.  With no flags it
trains on the built-in sample dataset (generated on first use).
"""
import os
import signal
import sys
import time

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf
from utils import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from datasets import dataset_factory
from datasets import sample_data
from deployment import cluster as cluster_lib
from deployment import model_deploy
from nets import nets_factory
from preprocessing import preprocessing_factory
from preprocessing import visualization
from utils import checkpoints
from utils import train_tools

_v1 = tf.compat.v1


# Marker of the finiteness assertion, to recognise its error.
_NON_FINITE_MARKER = 'Non-finite loss or gradient'

FLAGS = flags.FLAGS


def define_flags():
  """Defines the training flags (separate so tools can reuse them)."""
  # Paths and data.
  flags.DEFINE_string('train_dir', checkpoints.FINE_TUNING_DIR,
                      'Where checkpoints, TensorBoard events and '
                      'training_config.txt are written. A checkpoint already '
                      'here is resumed from.')
  flags.DEFINE_string('checkpoint_path', None,
                      'Pretrained checkpoint (prefix, one of its files, or a '
                      'directory = its latest) initialising a fresh run. '
                      'Default: the latest checkpoint in ckpt/pre_trained, '
                      'if any. Ignored when --train_dir holds a checkpoint.')
  flags.DEFINE_string('dataset_dir', None,
                      'Directory of the converted TFRecords. Default: the '
                      'built-in sample dataset in tfrecords/sample, generated '
                      'on first use.')
  flags.DEFINE_string('dataset_name', 'voc',
                      'Dataset reader: voc (any converted VOC-style data, '
                      'read from its metadata), pascalvoc_2007, '
                      'pascalvoc_2012.')
  flags.DEFINE_string('dataset_split_name', 'train', 'Split to train on.')
  flags.DEFINE_string('file_pattern', None,
                      'Glob of the shards, when the split name does not '
                      'identify them unambiguously.')
  # Model.
  flags.DEFINE_string('model_name', 'ssd_300_vgg', 'Network architecture.')
  flags.DEFINE_integer('num_classes', None,
                       'Number of classes including background. Default: '
                       'from the dataset metadata.')
  flags.DEFINE_enum('data_format', 'NHWC', ['NHWC', 'NCHW'],
                    'Layout of the network activations: NHWC (CPU; default) '
                    'or NCHW (faster on GPUs).')
  # Deployment.
  flags.DEFINE_integer('num_clones', 1,
                       'Model clones (one per GPU) on this machine; each '
                       'takes --batch_size images per step.')
  flags.DEFINE_boolean('clone_on_cpu', False,
                       'Put clone i on CPU:i (logical CPU devices) instead '
                       'of GPU:i.')
  flags.DEFINE_integer('worker_replicas', 1,
                       'Number of worker replicas. Derived from '
                       '--worker_hosts when given.')
  flags.DEFINE_integer('num_ps_tasks', 0,
                       'Number of parameter servers; 0 for a local run. '
                       'Derived from --ps_hosts when given.')
  flags.DEFINE_integer('task', 0,
                       'Task index of this process in its job (--job_name); '
                       'worker 0 is the chief.')
  # Multi-machine training (between-graph replication): one process per
  # task, all with the same host lists.
  flags.DEFINE_string('ps_hosts', None,
                      'Comma-separated host:port of the parameter-server '
                      'tasks, which hold the variables (round-robin).')
  flags.DEFINE_string('worker_hosts', None,
                      'Comma-separated host:port of the worker tasks, which '
                      'each train on their own input; worker 0 is the chief '
                      '(initialises, restores, writes checkpoints and '
                      'summaries).')
  flags.DEFINE_enum('job_name', None, list(cluster_lib.JOB_NAMES),
                    'Job of this process in the cluster: ps or worker.')
  flags.DEFINE_boolean('sync_replicas', False,
                       'Synchronous training: each global step applies the '
                       'mean of --replicas_to_aggregate workers\' gradients '
                       '(SyncReplicasOptimizer). Default: asynchronous, each '
                       'worker applies its own gradients.')
  flags.DEFINE_integer('replicas_to_aggregate', None,
                       'Gradients aggregated per global step with '
                       '--sync_replicas; default: the number of workers.')
  flags.DEFINE_boolean('ps_exit_when_done', True,
                       'A ps task exits once every worker has finished its '
                       'training loop; with --nops_exit_when_done it serves '
                       'until killed.')
  flags.DEFINE_enum('precision', 'float32', list(train_tools.PRECISIONS),
                    'Compute precision: float32; mixed_bfloat16 (bf16 '
                    'compute, float32 weights and loss; fast on CPUs with '
                    'AMX/AVX512-BF16); mixed_float16 (GPUs, with dynamic '
                    'loss scaling).')
  flags.DEFINE_float('gpu_memory_fraction', None,
                     'Cap on the GPU memory fraction per process; default: '
                     'grow as needed.')
  # Loss.
  flags.DEFINE_float('match_threshold', 0.5,
                     'IoU from which an anchor is a positive match.')
  flags.DEFINE_float('negative_ratio', 3.0,
                     'Hard negatives kept per positive, per image.')
  flags.DEFINE_float('loss_alpha', 1.0, 'Weight of the localisation loss.')
  flags.DEFINE_float('label_smoothing', 0.0,
                     'Label smoothing of the classification loss.')
  # Optimisation.
  flags.DEFINE_float('weight_decay', 0.0005, 'L2 weight decay.')
  flags.DEFINE_enum('optimizer', 'adam', list(train_tools.OPTIMIZERS),
                    'Optimizer.')
  flags.DEFINE_float('learning_rate', 0.001, 'Initial learning rate.')
  flags.DEFINE_float('end_learning_rate', 0.0001,
                     'Final learning rate of the polynomial decay.')
  flags.DEFINE_enum('learning_rate_decay_type', 'exponential',
                    list(train_tools.LEARNING_RATE_DECAY_TYPES),
                    'How the learning rate decays.')
  flags.DEFINE_integer('warmup_steps', 100,
                       'Steps over which the learning rate ramps up '
                       'linearly from learning_rate/warmup_steps; keeps the '
                       'first steps from scratch from diverging. 0: none.')
  flags.DEFINE_float('learning_rate_decay_factor', 0.94,
                     'Exponential decay factor per decay period.')
  flags.DEFINE_float('num_epochs_per_decay', 2.0,
                     'Epochs per learning-rate decay period.')
  flags.DEFINE_float('adadelta_rho', 0.95, 'Adadelta decay rate.')
  flags.DEFINE_float('adadelta_epsilon', 1e-6, 'Adadelta epsilon.')
  flags.DEFINE_float('adagrad_initial_accumulator_value', 0.1,
                     'Adagrad starting accumulator value.')
  flags.DEFINE_float('adam_beta1', 0.9, 'Adam first-moment decay.')
  flags.DEFINE_float('adam_beta2', 0.999, 'Adam second-moment decay.')
  flags.DEFINE_float('adam_epsilon', 1e-8, 'Adam epsilon.')
  flags.DEFINE_float('ftrl_learning_rate_power', -0.5,
                     'FTRL learning-rate power.')
  flags.DEFINE_float('ftrl_initial_accumulator_value', 0.1,
                     'FTRL starting accumulator value.')
  flags.DEFINE_float('ftrl_l1', 0.0, 'FTRL L1 regularisation strength.')
  flags.DEFINE_float('ftrl_l2', 0.0, 'FTRL L2 regularisation strength.')
  flags.DEFINE_float('momentum', 0.9, 'Momentum of the momentum optimizer.')
  flags.DEFINE_float('rmsprop_decay', 0.9, 'RMSProp decay.')
  flags.DEFINE_float('rmsprop_momentum', 0.9, 'RMSProp momentum.')
  flags.DEFINE_float('rmsprop_epsilon', 1.0, 'RMSProp epsilon.')
  flags.DEFINE_float('moving_average_decay', None,
                     'Decay of the moving averages of the weights kept for '
                     'evaluation; none by default.')
  # Input pipeline.
  flags.DEFINE_integer('batch_size', 8, 'Images per clone per step.')
  flags.DEFINE_integer('num_readers', 4, 'Shards read in parallel.')
  flags.DEFINE_enum('augmentation', 'ssd', ['ssd', 'none'],
                    'Training augmentation: ssd (photometric distortion, '
                    'zoom-out, IoU-constrained crop, flip; what you want) or '
                    'none (the evaluation resize only; for checking that a '
                    'model can memorise a small set).')
  flags.DEFINE_integer('num_preprocessing_threads', 4,
                       'Parallel calls of decode + augmentation + encoding.')
  # Fine-tuning.
  flags.DEFINE_string('checkpoint_model_scope', None,
                      'Scope of the model in --checkpoint_path when it '
                      'differs (vgg_16 for the ImageNet VGG16 checkpoint).')
  flags.DEFINE_string('checkpoint_exclude_scopes', None,
                      'Comma-separated scopes not restored from '
                      '--checkpoint_path (e.g. the class heads when the '
                      'number of classes differs).')
  flags.DEFINE_string('trainable_scopes', None,
                      'Comma-separated scopes to train; default: all.')
  flags.DEFINE_boolean('ignore_missing_vars', False,
                       'Leave variables absent from --checkpoint_path at '
                       'their initial values instead of failing.')
  # Logging and saving.
  flags.DEFINE_integer('log_every_n_steps', 10,
                       'Steps between two progress lines.')
  flags.DEFINE_integer('save_summaries_secs', 60,
                       'Seconds between two TensorBoard summaries.')
  flags.DEFINE_integer('save_interval_secs', 600,
                       'Seconds between two checkpoints.')
  flags.DEFINE_integer('max_number_of_steps', None,
                       'Global step at which training stops; default: train '
                       'until interrupted (Ctrl-C saves a checkpoint).')
  flags.DEFINE_integer('max_to_keep', 5, 'Checkpoints kept.')
  flags.DEFINE_float('keep_checkpoint_every_n_hours', 1.0,
                     'Also keep one checkpoint every this many hours.')
  flags.DEFINE_integer('seed', None, 'Graph-level random seed.')


def resolve_cluster_flags():
  """The Cluster of --ps_hosts/--worker_hosts/--job_name/--task, or None.

  With host lists, --worker_replicas and --num_ps_tasks are set from them
  (giving them different values is an error); --replicas_to_aggregate
  defaults to the number of workers.

  Raises:
    ValueError: for inconsistent flags, with the one to fix.
  """
  def given(name):
    was_set = FLAGS[name].present or not FLAGS[name].using_default_value
    return FLAGS[name].value if was_set else None

  settings = cluster_lib.resolve_settings(
      FLAGS.ps_hosts, FLAGS.worker_hosts, FLAGS.job_name, FLAGS.task,
      worker_replicas=given('worker_replicas'),
      num_ps_tasks=given('num_ps_tasks'), sync_replicas=FLAGS.sync_replicas,
      replicas_to_aggregate=FLAGS.replicas_to_aggregate)
  if settings.cluster is not None:
    FLAGS.worker_replicas = settings.worker_replicas
    FLAGS.num_ps_tasks = settings.num_ps_tasks
    FLAGS.replicas_to_aggregate = settings.replicas_to_aggregate
  return settings.cluster


def build_input_queue(dataset, ssd_net, deploy_config):
  """The CPU input pipeline, ending in one prefetch queue for the clones.

  Returns:
    (batch_queue, batch_shape): a queue of flat lists of 1 + 3 x L tensors
    (the image batch, then gclasses, glocalisations and gscores for each of
    the L feature layers) and the group sizes for reshape_list.
  """
  augment = FLAGS.augmentation == 'ssd'
  image_preprocessing_fn = preprocessing_factory.get_preprocessing(
      FLAGS.model_name, is_training=augment)
  anchors = ssd_net.anchors(ssd_net.params.img_shape)

  def preprocess(index, example):
    """Training augmentation, or the evaluation resize with --augmentation=none."""
    inputs = (example['image'], example['labels'], example['bboxes'])
    out_shape = ssd_net.params.img_shape
    if not augment:
      return image_preprocessing_fn(*inputs, out_shape=out_shape,
                                    data_format=FLAGS.data_format)[:3]
    # With --seed, each example's augmentation is seeded by its index, so a
    # run is reproducible whatever the number of parallel calls.
    seed = None if FLAGS.seed is None else tf.stack(
        [tf.constant(FLAGS.seed, tf.int64), index])
    return image_preprocessing_fn(*inputs, out_shape=out_shape,
                                  data_format=FLAGS.data_format, seed=seed)

  def preprocess_and_encode(index, example):
    image, labels, bboxes = preprocess(index, example)
    gclasses, glocalisations, gscores = ssd_net.bboxes_encode(
        labels, bboxes, anchors)
    return tuple(train_tools.reshape_list(
        [image, gclasses, glocalisations, gscores]))

  with _v1.device(deploy_config.inputs_device()):
    with tf.name_scope('input_pipeline'):
      examples = dataset.read(num_readers=FLAGS.num_readers, shuffle=True,
                              seed=FLAGS.seed)
      batches = (examples
                 .enumerate()
                 .map(preprocess_and_encode,
                      num_parallel_calls=FLAGS.num_preprocessing_threads)
                 .batch(FLAGS.batch_size, drop_remainder=True)
                 .prefetch(2))
      batch = _v1.data.make_one_shot_iterator(batches).get_next()
      batch_queue = slim.prefetch_queue.prefetch_queue(
          list(batch), capacity=2 * deploy_config.num_clones)
  num_layers = len(anchors)
  return batch_queue, [1] + [num_layers] * 3


def _positive_boxes(ssd_net, anchors, gclasses, glocalisations):
  """The ground-truth boxes as matched to anchors, [B, num_anchors, 4].

  Decoding the targets of the positive anchors gives back the boxes the
  network is trained on; the others become empty boxes.
  """
  decoded = ssd_net.bboxes_decode(glocalisations, anchors)
  boxes = []
  for layer_classes, layer_boxes in zip(gclasses, decoded):
    batch_size = tf.shape(layer_boxes)[0]
    flat_boxes = tf.reshape(layer_boxes, [batch_size, -1, 4])
    positive = tf.reshape(layer_classes > 0, [batch_size, -1, 1])
    boxes.append(tf.where(positive, flat_boxes, tf.zeros_like(flat_boxes)))
  return tf.concat(boxes, axis=1)


def make_clone_fn(ssd_net, batch_queue, batch_shape):
  """The function each clone runs: dequeue, network, losses."""
  anchors = ssd_net.anchors(ssd_net.params.img_shape)

  def clone_fn():
    images, gclasses, glocalisations, gscores = train_tools.reshape_list(
        batch_queue.dequeue(), batch_shape)
    with slim.arg_scope(ssd_net.arg_scope(weight_decay=FLAGS.weight_decay,
                                          data_format=FLAGS.data_format)):
      _, localisations, logits, end_points = ssd_net.net(
          images, is_training=True)
    ssd_net.losses(logits, localisations, gclasses, glocalisations, gscores,
                   match_threshold=FLAGS.match_threshold,
                   negative_ratio=FLAGS.negative_ratio,
                   alpha=FLAGS.loss_alpha,
                   label_smoothing=FLAGS.label_smoothing)
    # Kept only for the first clone (summaries are filtered by its scope).
    with _v1.device('/device:CPU:0'):
      _v1.summary.image('images_with_boxes', visualization.images_with_boxes(
          images, _positive_boxes(ssd_net, anchors, gclasses, glocalisations),
          data_format=FLAGS.data_format))
    return end_points
  return clone_fn


def _loss_terms(first_clone_scope):
  """{name: tensor} of the first clone's losses, for logs and NaN checks."""
  terms = {}
  for loss in _v1.losses.get_losses(first_clone_scope):
    name = loss.op.name[len(first_clone_scope):].split('/')[-1]
    terms[name] = loss
  return terms


def build_training_graph(dataset, ssd_net, deploy_config, num_samples):
  """Builds the whole training graph in the default graph.

  Returns:
    A dict with train_op, summary_op, global_step, learning_rate,
    total_loss, loss_terms (first clone) and sync_optimizer (the
    SyncReplicasOptimizer with --sync_replicas, else None).
  """
  with _v1.device(deploy_config.variables_device()):
    global_step = _v1.train.get_or_create_global_step()

  batch_queue, batch_shape = build_input_queue(dataset, ssd_net, deploy_config)
  clones, first_clone_scope, update_ops, summaries = (
      train_tools.deploy_loss_summary(
          deploy_config, make_clone_fn(ssd_net, batch_queue, batch_shape)))

  with _v1.device(deploy_config.optimizer_device()):
    learning_rate = train_tools.configure_learning_rate(
        FLAGS, num_samples, global_step)
    optimizer = train_tools.wrap_optimizer_for_precision(
        train_tools.configure_optimizer(FLAGS, learning_rate),
        FLAGS.precision)
    summaries.add(_v1.summary.scalar('learning_rate', learning_rate))

  moving_averages = None
  if FLAGS.moving_average_decay:
    with _v1.device(deploy_config.variables_device()):
      moving_averages = _v1.train.ExponentialMovingAverage(
          FLAGS.moving_average_decay, global_step)
      if not FLAGS.sync_replicas:
        update_ops.append(moving_averages.apply(slim.get_model_variables()))

  sync_optimizer = None
  if FLAGS.sync_replicas:
    # The chief applies the aggregated gradients, and the moving averages
    # after them, once per round.
    with _v1.device(deploy_config.optimizer_device()):
      sync_optimizer = optimizer = cluster_lib.SyncReplicasOptimizer(
          optimizer,
          replicas_to_aggregate=(FLAGS.replicas_to_aggregate or
                                 FLAGS.worker_replicas),
          total_num_replicas=FLAGS.worker_replicas,
          variable_averages=moving_averages,
          variables_to_average=(slim.get_model_variables()
                                if moving_averages else None))

  variables_to_train = train_tools.get_variables_to_train(
      FLAGS.trainable_scopes)
  total_loss, clones_gradients = model_deploy.optimize_clones(
      clones, optimizer, var_list=variables_to_train)
  summaries.add(_v1.summary.scalar('losses/total_loss', total_loss))
  # optimize_clones adds the first clone's clone/regularization loss summaries.
  summaries |= set(_v1.get_collection(_v1.GraphKeys.SUMMARIES,
                                      first_clone_scope))
  loss_terms = _loss_terms(first_clone_scope)

  # A non-finite loss or gradient stops the step before any weight changes
  # (a finite loss can still overflow a gradient), with the step, each loss
  # term and the learning rate in the error message.
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
  finite_check = tf.debugging.Assert(all_finite, report, summarize=16)
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
  return dict(train_op=train_op, summary_op=summary_op,
              global_step=global_step, learning_rate=learning_rate,
              total_loss=total_loss, loss_terms=loss_terms,
              sync_optimizer=sync_optimizer)


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


class TrainingStopped(Exception):
  """Training cannot go on (e.g. a non-finite loss); the message says why."""


class StepRunner(object):
  """tf_slim train_step_fn: runs a step, logs progress, stops cleanly.

  Logs every log_every_n_steps: step, total loss and each loss term,
  learning rate, images/second and, with a step limit, an ETA.  Ctrl-C
  finishes the current step, then stops (the training loop then saves a
  checkpoint).  A non-finite loss or gradient stops before the weights
  change.
  """

  def __init__(self, graph_tensors, images_per_step, max_number_of_steps,
               log_every_n_steps):
    self._loss_terms = graph_tensors['loss_terms']
    self._learning_rate = graph_tensors['learning_rate']
    self._images_per_step = images_per_step
    self._max_steps = max_number_of_steps
    self._log_every = max(1, log_every_n_steps)
    self._interrupted = False
    self._interval_start = None
    self._interval_steps = 0
    self.failure = None

  def request_stop(self, unused_signum=None, unused_frame=None):
    logging.warning('Interrupted: stopping after this step and saving a '
                    'checkpoint (press Ctrl-C again to abort without '
                    'saving).')
    self._interrupted = True
    signal.signal(signal.SIGINT, signal.default_int_handler)

  def __call__(self, sess, train_op, global_step, unused_kwargs):
    if self._interval_start is None:
      self._interval_start = time.time()
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
    if step % self._log_every == 0 or step == self._max_steps:
      self._log(step, total_loss, terms, learning_rate)
    should_stop = self._interrupted or (
        self._max_steps is not None and step >= self._max_steps)
    return total_loss, should_stop

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


def write_training_config(train_dir, ssd_params, dataset):
  """Writes the flags, SSD parameters and data files to the log and a file."""
  lines = ['# Flags'] + sorted(
      '--%s=%s' % (flag.name, flag.value)
      for flag in FLAGS.get_key_flags_for_module(sys.modules[__name__]))
  lines += ['', '# SSD parameters'] + [
      '%s: %s' % (k, v) for k, v in ssd_params._asdict().items()]
  lines += ['', '# Data: %s, split %s, %d samples, %d classes' % (
      dataset.name, dataset.split_name, dataset.num_samples,
      dataset.num_classes)] + list(dataset.files)
  text = '\n'.join(lines) + '\n'
  logging.info('Training configuration:\n%s', text)
  tf.io.gfile.makedirs(train_dir)
  with open(os.path.join(train_dir, 'training_config.txt'), 'w') as out:
    out.write(text)


def _init_fn():
  """Initialisation from --checkpoint_path, unless train_dir resumes."""
  resume_from = tf.train.latest_checkpoint(FLAGS.train_dir)
  if resume_from:
    logging.info('Resuming from %s (global step, optimizer state and '
                 'learning-rate schedule continue from there).', resume_from)
    return None
  checkpoint_path = FLAGS.checkpoint_path or checkpoints.find_checkpoint(
      checkpoints.PRETRAINED_DIR)
  if not checkpoint_path:
    logging.info('No checkpoint to start from: training from scratch.')
    return None
  return checkpoints.get_init_fn(
      FLAGS.model_name, checkpoint_path, FLAGS.checkpoint_model_scope,
      FLAGS.checkpoint_exclude_scopes, FLAGS.ignore_missing_vars)


def train():
  """Builds the graph from FLAGS and runs the training loop.

  Raises:
    TrainingStopped: when a non-finite loss stopped the run.
    ValueError (incl. CheckpointError): for bad flags, data or checkpoints.
  """
  _v1.disable_eager_execution()
  cluster = resolve_cluster_flags()
  if cluster is not None and cluster.is_ps:
    cluster_lib.run_parameter_server(cluster, FLAGS.ps_exit_when_done)
    return
  if FLAGS.checkpoint_path:
    # A bad path fails now, not after the graph is built.
    checkpoints.resolve_checkpoint_path(FLAGS.checkpoint_path)
  dataset = dataset_factory.get_dataset(
      FLAGS.dataset_name, FLAGS.dataset_split_name,
      sample_data.dataset_dir_or_sample(FLAGS.dataset_dir), FLAGS.file_pattern)
  num_classes = FLAGS.num_classes or dataset.num_classes
  ssd_class = nets_factory.get_network(FLAGS.model_name)
  ssd_net = ssd_class(ssd_class.default_params._replace(
      num_classes=num_classes))
  deploy_config = model_deploy.DeploymentConfig(
      num_clones=FLAGS.num_clones, clone_on_cpu=FLAGS.clone_on_cpu,
      replica_id=FLAGS.task, num_replicas=FLAGS.worker_replicas,
      num_ps_tasks=FLAGS.num_ps_tasks)
  is_chief = FLAGS.task == 0
  if cluster is None or is_chief:
    write_training_config(FLAGS.train_dir, ssd_net.params, dataset)
  config = train_tools.session_config(
      deploy_config, FLAGS.gpu_memory_fraction, FLAGS.precision)
  master = ''
  if cluster is not None:
    # The server owns this worker's devices (and their logical CPUs).
    master = cluster_lib.start_server(cluster, config).target
    config = cluster_lib.worker_session_config(cluster, config)

  graph = tf.Graph()
  with graph.as_default(), _v1.device(
      cluster.task_device if cluster else ''):
    if FLAGS.seed is not None:
      _v1.set_random_seed(FLAGS.seed)
    tensors = build_training_graph(dataset, ssd_net, deploy_config,
                                   dataset.num_samples)
    sync_optimizer = tensors['sync_optimizer']
    if sync_optimizer is not None:
      sync_optimizer.session_config = config
    init_fn = _init_fn() if is_chief else None
    if cluster is not None:
      done_report = cluster_lib.DoneReport(cluster)
      if not is_chief:
        ready_check = cluster_lib.build_ready_check()
    saver = _v1.train.Saver(
        max_to_keep=FLAGS.max_to_keep,
        keep_checkpoint_every_n_hours=FLAGS.keep_checkpoint_every_n_hours,
        write_version=_v1.train.SaverDef.V2)
    step_runner = StepRunner(
        tensors, FLAGS.batch_size * FLAGS.num_clones,
        FLAGS.max_number_of_steps, FLAGS.log_every_n_steps)
    if cluster is not None:
      done_report.connect(master, config)
      if not is_chief:
        cluster_lib.wait_for_chief(master, config, ready_check)
    previous_handler = signal.signal(signal.SIGINT, step_runner.request_stop)
    try:
      slim.learning.train(
          tensors['train_op'], logdir=FLAGS.train_dir,
          train_step_fn=step_runner, master=master, is_chief=is_chief,
          init_fn=init_fn, summary_op=tensors['summary_op'],
          number_of_steps=FLAGS.max_number_of_steps,
          log_every_n_steps=FLAGS.log_every_n_steps,
          save_summaries_secs=FLAGS.save_summaries_secs,
          save_interval_secs=FLAGS.save_interval_secs, saver=saver,
          sync_optimizer=sync_optimizer, session_config=config)
    finally:
      signal.signal(signal.SIGINT, previous_handler)
    if cluster is not None:
      done_report.report()
    if step_runner.failure:
      raise TrainingStopped(step_runner.failure)


def main(unused_argv):
  try:
    train()
  except (TrainingStopped, ValueError) as error:
    # Bad flags, data or checkpoints: the message says what to fix.
    logging.error('%s', error)
    sys.exit(1)


if __name__ == '__main__':
  define_flags()
  app.run(main)
