"""Trains an SSD detector on one or many GPUs (or CPUs) from TFRecords.

This script is the flags adapter of the training library, utils/trainer/
(config, input pipeline, graph, step runner and loop).  The flow:
  1. the flags become a TrainingConfig (`config_from_flags`), with the
     cluster flags checked and resolved;
  2. a ps task serves the variables and returns;
  3. the dataset (datasets/dataset_flags.py) and the network;
  4. `loop.run_training`: deployment, input queue, clones, optimizer,
     tf_slim's training loop, checkpoints and TensorBoard summaries in
     --train_dir (resuming from the checkpoint already there).

Run `python train_ssd_network.py --help` for every flag.  With no flags it
trains on the built-in sample dataset (generated on first use).
"""
import collections
import dataclasses
import operator
import os
import sys

from absl import app
from absl import flags
from absl import logging

from utils.common import platform_info
# Before TensorFlow is imported: it reads TF_ENABLE_ONEDNN_OPTS when it loads.
ONEDNN = platform_info.configure_onednn()
# TensorFlow's C++ INFO lines (a screenful per graph rewrite) stay out of the
# training log unless asked for; warnings and errors still show.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf

from datasets import dataset_flags
from datasets import dataset_utils
from deployment import cluster as cluster_lib
from deployment import cluster_server
from utils.common import run_lock
from utils.trainer import config as config_lib
from utils.trainer import graph as graph_lib
from utils.trainer import loop
from utils.trainer import run_description
from utils.trainer import step_runner
from utils.trainer import train_tools
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

# The first run (the README's command): on the built-in sample data with no
# --max_number_of_steps, a short run that still learns visibly and ends
# within 10 minutes on a 2-core CPU of any kind, TensorFlow's start, the
# sample data's generation and the graph included: the step count suits a
# CPU with bfloat16, and the time budget ends it earlier on a slower one.
FIRST_RUN_STEPS = 20
FIRST_RUN_WARMUP_STEPS = 5
FIRST_RUN_MAX_MINUTES = 7.0
FIRST_RUN_LOG_EVERY_N_STEPS = 2


def define_flags():
  """Defines the training flags (separate so tools can reuse them).

  Each flag of a setting takes its default from the field of the same name
  in utils/trainer/config.py; --precision and --data_format default to
  auto, resolved for the machine (`resolve_platform`).
  """
  dataset_flags.define_dataset_flags(default_split='train')
  flags.adopt_module_key_flags(dataset_flags)
  _define_data_flags(config_lib.DataOptions)
  _define_model_flags(config_lib.ModelOptions)
  _define_deployment_flags(config_lib.DeploymentOptions)
  _define_cluster_flags()
  _define_loss_flags(config_lib.LossOptions)
  _define_optimisation_flags(config_lib.OptimisationOptions)
  _define_learning_rate_flags(config_lib.OptimisationOptions)
  _define_optimizer_flags(config_lib.OptimisationOptions)
  _define_logging_flags(config_lib.LoggingOptions)
  flags.DEFINE_integer('seed', config_lib.TrainingConfig.seed,
                       'Graph-level random seed.')


def _define_data_flags(data):
  flags.DEFINE_integer('batch_size', data.batch_size,
                       'Images per clone per step.')
  flags.DEFINE_integer('num_readers', data.num_readers,
                       'Shards read in parallel.')
  flags.DEFINE_integer(
      'shuffle_buffer_mib', data.shuffle_buffer_mib,
      'MiB of serialized records the shuffle holds (between %d and %d '
      'records, at most the split): bounds the input\'s memory whatever the '
      'photo size.' % (dataset_utils.MIN_SHUFFLE_RECORDS,
                       dataset_utils.MAX_SHUFFLE_RECORDS), lower_bound=1)
  flags.DEFINE_enum('augmentation', data.augmentation, ['ssd', 'none'],
                    'Training augmentation: ssd (photometric distortion, '
                    'zoom-out, IoU-constrained crop, flip; what you want) or '
                    'none (the evaluation resize only; for checking that a '
                    'model can memorise a small set).')
  flags.DEFINE_integer('num_preprocessing_threads',
                       data.num_preprocessing_threads,
                       'Parallel calls of decode + augmentation + encoding.')


def _define_model_flags(model):
  """The network and the checkpoint a fresh run starts from."""
  flags.DEFINE_string('checkpoint_path', model.checkpoint_path,
                      'Pretrained checkpoint (prefix, one of its files, or a '
                      'directory = its latest) initialising a fresh run. '
                      'Default: the latest checkpoint in ckpt/pre_trained, '
                      'if any. Ignored when --train_dir holds a checkpoint.')
  flags.DEFINE_string('model_name', model.model_name, 'Network architecture.')
  flags.DEFINE_integer('num_classes', model.num_classes,
                       'Number of classes including background. Default: '
                       'from the dataset metadata.')
  flags.DEFINE_float('dropout_keep_prob', model.dropout_keep_prob,
                     'Keep probability of a dropout after conv6 and conv7 '
                     'in training; 1 (SSD-Caffe\'s and torchvision\'s): '
                     'none.')
  flags.DEFINE_boolean('batch_norm', model.batch_norm,
                       'Batch normalisation after every convolution of the '
                       'backbone and the extra layers (from-scratch '
                       'training; SSD-Tensorflow and VGG16 checkpoints have '
                       'none).')
  flags.DEFINE_string('anchor_sizes', model.anchor_sizes,
                      'Anchor sizes: a preset, ssd_tensorflow (21..315 px, '
                      'the default; SSD-Tensorflow\'s checkpoint) or voc '
                      '(30/60/111/162/213/264/315, the paper\'s VOC '
                      'recipe), torchvision (ssd_tensorflow\'s sizes with '
                      'heights and widths clamped to the image, as '
                      'torchvision\'s ssd300_vgg16), or 7 comma-separated '
                      'sizes in pixels. '
                      'Written with the others into '
                      '<train_dir>/ssd_params.json.')
  flags.DEFINE_enum('data_format', 'auto',
                    list(platform_info.REQUESTED_DATA_FORMATS),
                    'Layout of the network activations: auto (NCHW on CPUs '
                    'where oneDNN has AVX2 but not AVX-512, where it trains '
                    'faster at a --batch_size of 2 or more; NHWC '
                    'elsewhere), NHWC or NCHW (often faster on GPUs in '
                    'float32).')
  flags.DEFINE_string('checkpoint_model_scope', model.checkpoint_model_scope,
                      'Scope of the model in --checkpoint_path when it '
                      'differs (vgg_16 for the ImageNet VGG16 checkpoint).')
  flags.DEFINE_string('checkpoint_exclude_scopes',
                      model.checkpoint_exclude_scopes,
                      'Comma-separated scopes not restored from '
                      '--checkpoint_path (e.g. the class heads when the '
                      'number of classes differs).')
  flags.DEFINE_boolean('ignore_missing_vars', model.ignore_missing_vars,
                       'Leave variables absent from --checkpoint_path at '
                       'their initial values instead of failing.')
  flags.DEFINE_boolean('restore_reduced_fc', model.restore_reduced_fc,
                       'From TF-slim\'s ImageNet vgg_16 checkpoint, start '
                       'conv6 and conv7 from its fc6 and fc7 sampled as the '
                       'SSD paper\'s reduced VGG16 (fc6: spatial positions '
                       '0, 3, 6 and every 4th filter; fc7: every 4th input '
                       'and output); --norestore_reduced_fc keeps them '
                       'random.')


def _define_deployment_flags(deployment):
  flags.DEFINE_integer('num_clones', deployment.num_clones,
                       'Model clones (one per GPU) on this machine; each '
                       'takes --batch_size images per step.')
  flags.DEFINE_boolean('clone_on_cpu', deployment.clone_on_cpu,
                       'Put clone i on CPU:i (logical CPU devices) instead '
                       'of GPU:i.')
  flags.DEFINE_integer('worker_replicas', deployment.worker_replicas,
                       'Number of worker replicas. Derived from '
                       '--worker_hosts when given.')
  flags.DEFINE_integer('num_ps_tasks', deployment.num_ps_tasks,
                       'Number of parameter servers; 0 for a local run. '
                       'Derived from --ps_hosts when given.')
  flags.DEFINE_integer('task', deployment.task,
                       'Task index of this process in its job (--job_name); '
                       'worker 0 is the chief.')
  flags.DEFINE_boolean('sync_replicas', deployment.sync_replicas,
                       'Synchronous training: each global step applies the '
                       'mean of --replicas_to_aggregate workers\' gradients '
                       '(SyncReplicasOptimizer). Default: asynchronous, each '
                       'worker applies its own gradients.')
  flags.DEFINE_integer('replicas_to_aggregate',
                       deployment.replicas_to_aggregate,
                       'Gradients aggregated per global step with '
                       '--sync_replicas; default: the number of workers.')
  flags.DEFINE_boolean('ps_exit_when_done', deployment.ps_exit_when_done,
                       'A ps task exits once every worker has finished its '
                       'training loop, or once the chief has and no other '
                       'worker has reported for --ps_idle_secs; with '
                       '--nops_exit_when_done it serves until SIGINT/SIGTERM.')
  flags.DEFINE_float('cluster_timeout_secs', deployment.cluster_timeout_secs,
                     'Bound of every wait for another task (a host to '
                     'answer, the chief to publish its cluster and '
                     'initialise the variables): then a clear error.')
  flags.DEFINE_float('ps_idle_secs', deployment.ps_idle_secs,
                     'A ps task exits when the chief has finished and no '
                     'other worker has reported for this long (a dead '
                     'worker); with --ps_exit_when_done.')
  flags.DEFINE_float('stop_grace_secs', deployment.stop_grace_secs,
                     'After SIGINT/SIGTERM, a cluster task blocked in '
                     'TensorFlow exits after this long.')
  flags.DEFINE_enum('precision', 'auto',
                    list(platform_info.REQUESTED_PRECISIONS),
                    'Compute precision: auto (mixed_bfloat16 on CPUs with '
                    'AMX or AVX512_BF16 when no GPU is visible, else '
                    'float32; the log says which and why); float32; '
                    'mixed_bfloat16 (bf16 compute, float32 weights and '
                    'loss); mixed_float16 (GPUs, with dynamic loss '
                    'scaling).')
  flags.DEFINE_float('gpu_memory_fraction', deployment.gpu_memory_fraction,
                     'Cap on the GPU memory fraction per process; default: '
                     'grow as needed.')


def _define_cluster_flags():
  """Multi-machine training (between-graph replication): one process per
  task, all with the same host lists."""
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


def _define_loss_flags(loss):
  flags.DEFINE_float('match_threshold', loss.match_threshold,
                     'IoU from which an anchor is a positive match (besides '
                     'each box\'s best anchor).')
  flags.DEFINE_float('negative_threshold', loss.negative_threshold,
                     'Anchors whose IoU is in [negative_threshold, '
                     'match_threshold) are ignored by the loss; default: '
                     'none ignored (SSD-Caffe\'s), every unmatched anchor '
                     'is a negative candidate.')
  flags.DEFINE_float('negative_ratio', loss.negative_ratio,
                     'Hard negatives kept per positive, per image.')
  flags.DEFINE_float('loss_alpha', loss.loss_alpha,
                     'Weight of the localisation loss.')
  flags.DEFINE_float('label_smoothing', loss.label_smoothing,
                     'Label smoothing of the classification loss.')


def _define_optimisation_flags(optimisation):
  """Regularisation, optimizer, what trains, length of the run."""
  flags.DEFINE_float('weight_decay', optimisation.weight_decay,
                     'L2 weight decay.')
  flags.DEFINE_enum('optimizer', optimisation.optimizer,
                    list(train_tools.OPTIMIZERS), 'Optimizer.')
  flags.DEFINE_float('moving_average_decay', optimisation.moving_average_decay,
                     'Decay of the moving averages of the weights kept for '
                     'evaluation; none by default.')
  flags.DEFINE_string('trainable_scopes', optimisation.trainable_scopes,
                      'Comma-separated scopes to train; default: all.')
  flags.DEFINE_integer('max_number_of_steps',
                       optimisation.max_number_of_steps,
                       'Global step at which training stops; default: train '
                       'until interrupted (Ctrl-C, or a file named STOP in '
                       '--train_dir, saves a checkpoint and stops; the next '
                       'run there removes that file). On the built-in '
                       'sample data (no --dataset_dir), the first run\'s '
                       'default: %d steps (warm-up %d) within %g minutes.' %
                       (FIRST_RUN_STEPS, FIRST_RUN_WARMUP_STEPS,
                        FIRST_RUN_MAX_MINUTES))
  flags.DEFINE_float('max_training_minutes',
                     optimisation.max_training_minutes,
                     'Time budget: after this many minutes of training '
                     'steps, save a checkpoint and stop. Default: none '
                     '(%g on the first run, see --max_number_of_steps).' %
                     FIRST_RUN_MAX_MINUTES)


def _define_learning_rate_flags(optimisation):
  """The learning-rate schedule."""
  flags.DEFINE_float('learning_rate', optimisation.learning_rate,
                     'Initial learning rate.')
  flags.DEFINE_float('end_learning_rate', optimisation.end_learning_rate,
                     'Final learning rate of the polynomial decay.')
  flags.DEFINE_enum('learning_rate_decay_type',
                    optimisation.learning_rate_decay_type,
                    list(train_tools.LEARNING_RATE_DECAY_TYPES),
                    'How the learning rate decays: exponential (staircase, '
                    'x--learning_rate_decay_factor every '
                    '--num_epochs_per_decay), fixed, polynomial (linear to '
                    '--end_learning_rate at --max_number_of_steps, or over '
                    '--num_epochs_per_decay), piecewise '
                    '(the SSD paper\'s; --learning_rate_boundaries/values), '
                    'cosine (after the warm-up, to --end_learning_rate at '
                    '--max_number_of_steps). Raising --max_number_of_steps '
                    'on a resume stretches the polynomial and cosine '
                    'decays.')
  flags.DEFINE_integer('warmup_steps', optimisation.warmup_steps,
                       'Steps over which the learning rate ramps up '
                       'linearly from learning_rate/warmup_steps; keeps the '
                       'first steps from scratch from diverging. 0: none.')
  flags.DEFINE_list('learning_rate_boundaries',
                    list(optimisation.learning_rate_boundaries),
                    'piecewise: global steps at which the rate changes, '
                    'e.g. 80000,100000 (the SSD paper\'s).')
  flags.DEFINE_list('learning_rate_values',
                    list(optimisation.learning_rate_values),
                    'piecewise: the rates, one more than the boundaries, '
                    'e.g. 0.001,0.0001,0.00001; default: --learning_rate, '
                    'then x0.1 at each boundary.')
  flags.DEFINE_float('learning_rate_decay_factor',
                     optimisation.learning_rate_decay_factor,
                     'Exponential decay factor per decay period.')
  flags.DEFINE_float('num_epochs_per_decay', optimisation.num_epochs_per_decay,
                     'exponential: epochs between two decay steps (default '
                     '%g); polynomial: epochs the decay spans (default: the '
                     'whole run, to --max_number_of_steps, or %g epochs '
                     'without it).' % (
                         config_lib.EXPONENTIAL_EPOCHS_PER_DECAY,
                         config_lib.POLYNOMIAL_EPOCHS_WITHOUT_STEP_LIMIT))


def _define_optimizer_flags(optimisation):
  """Each optimizer's hyper-parameters (floats)."""
  for name, help_text in (
      ('adadelta_rho', 'Adadelta decay rate.'),
      ('adadelta_epsilon', 'Adadelta epsilon.'),
      ('adagrad_initial_accumulator_value',
       'Adagrad starting accumulator value.'),
      ('adam_beta1', 'Adam first-moment decay.'),
      ('adam_beta2', 'Adam second-moment decay.'),
      ('adam_epsilon', 'Adam epsilon.'),
      ('ftrl_learning_rate_power', 'FTRL learning-rate power.'),
      ('ftrl_initial_accumulator_value', 'FTRL starting accumulator value.'),
      ('ftrl_l1', 'FTRL L1 regularisation strength.'),
      ('ftrl_l2', 'FTRL L2 regularisation strength.'),
      ('momentum', 'Momentum of the momentum optimizer.'),
      ('rmsprop_decay', 'RMSProp decay.'),
      ('rmsprop_momentum', 'RMSProp momentum.'),
      ('rmsprop_epsilon', 'RMSProp epsilon.')):
    flags.DEFINE_float(name, getattr(optimisation, name), help_text)


def _define_logging_flags(logs):
  flags.DEFINE_string('train_dir', logs.train_dir,
                      'Where checkpoints, TensorBoard events and '
                      'training_config.txt are written. A checkpoint already '
                      'here is resumed from.')
  flags.DEFINE_integer('log_every_n_steps', logs.log_every_n_steps,
                       'Steps between two progress lines.')
  flags.DEFINE_integer('save_summaries_secs', logs.save_summaries_secs,
                       'Seconds between two TensorBoard summaries (also '
                       'written with the first and the last step). A step '
                       'computes them from the batch it trains on, so they '
                       'do not change what a seeded run trains on.')
  flags.DEFINE_boolean('summarize_histograms', logs.summarize_histograms,
                       'Also summarise histograms of the activations and '
                       'weights, and the activations\' sparsity (slow, and '
                       'they bury the losses in TensorBoard).')
  flags.DEFINE_integer('save_interval_secs', logs.save_interval_secs,
                       'Seconds between two checkpoints.')
  flags.DEFINE_integer('max_to_keep', logs.max_to_keep, 'Checkpoints kept.')
  flags.DEFINE_float('keep_checkpoint_every_n_hours',
                     logs.keep_checkpoint_every_n_hours,
                     'Also keep one checkpoint every this many hours.')


# Bounds of the numeric flags, checked before anything is built; a flag
# left at None (its default) is not checked.
FLAG_BOUNDS = {
    'learning_rate': ('>= 0',),
    'end_learning_rate': ('>= 0',),
    'learning_rate_decay_factor': ('> 0',),
    'num_epochs_per_decay': ('> 0',),
    'warmup_steps': ('>= 0',),
    'weight_decay': ('>= 0',),
    'momentum': ('>= 0',),
    'moving_average_decay': ('>= 0', '< 1'),
    'batch_size': ('>= 1',),
    'num_clones': ('>= 1',),
    'num_readers': ('>= 1',),
    'num_preprocessing_threads': ('>= 1',),
    'max_number_of_steps': ('>= 0',),
    'max_training_minutes': ('> 0',),
    'dropout_keep_prob': ('> 0', '<= 1'),
    'match_threshold': ('> 0', '<= 1'),
    'negative_ratio': ('>= 0',),
    'loss_alpha': ('>= 0',),
    'label_smoothing': ('>= 0', '< 1'),
    'gpu_memory_fraction': ('> 0', '<= 1'),
    'log_every_n_steps': ('>= 1',),
    'save_summaries_secs': ('>= 0',),
    'save_interval_secs': ('>= 0',),
    'max_to_keep': ('>= 0',),
    'replicas_to_aggregate': ('>= 1',),
    'cluster_timeout_secs': ('> 0',),
    'ps_idle_secs': ('>= 0',),
    'stop_grace_secs': ('>= 0',),
}
_COMPARISONS = {'>': operator.gt, '>=': operator.ge, '<': operator.lt,
                '<=': operator.le}


def check_flag_bounds():
  """Raises ValueError naming the first numeric flag out of FLAG_BOUNDS,
  e.g. '--learning_rate must be > 0, got -1'."""
  for name, conditions in FLAG_BOUNDS.items():
    value = FLAGS[name].value
    if value is None:
      continue
    for condition in conditions:
      symbol, bound = condition.split()
      if not _COMPARISONS[symbol](value, float(bound)):
        raise ValueError('--%s must be %s, got %g' % (name, condition,
                                                      value))


def resolve_cluster_flags():
  """cluster_lib.Settings of the cluster flags (cluster None: a local run).

  With host lists, worker_replicas and num_ps_tasks come from them (giving
  them different values is an error); replicas_to_aggregate defaults to the
  number of workers.

  Raises:
    ValueError: for inconsistent flags, with the one to fix.
  """
  def given(name):
    was_set = FLAGS[name].present or not FLAGS[name].using_default_value
    return FLAGS[name].value if was_set else None

  return cluster_lib.resolve_settings(
      FLAGS.ps_hosts, FLAGS.worker_hosts, FLAGS.job_name, FLAGS.task,
      worker_replicas=given('worker_replicas'),
      num_ps_tasks=given('num_ps_tasks'), sync_replicas=FLAGS.sync_replicas,
      replicas_to_aggregate=FLAGS.replicas_to_aggregate,
      tf_config=os.environ.get(cluster_lib.TF_CONFIG_ENV),
      task_given=FLAGS['task'].present)


def _options(options_class, **resolved):
  """An options dataclass filled from the flags of its field names."""
  return options_class(**{
      field.name: resolved[field.name] if field.name in resolved
      else FLAGS[field.name].value
      for field in dataclasses.fields(options_class)})


def first_run_settings():
  """The first run's settings on the sample data (logged), by group.

  Returns:
    {'optimisation': {...}, 'logging': {...}}: empty unless the run is on
    the built-in sample data without --max_number_of_steps; a flag given on
    the command line always wins.
  """
  groups = dict(optimisation={}, logging={})
  if FLAGS.dataset_dir or FLAGS['max_number_of_steps'].present:
    return groups
  groups['optimisation']['max_number_of_steps'] = FIRST_RUN_STEPS
  if not FLAGS['warmup_steps'].present:
    groups['optimisation']['warmup_steps'] = min(FLAGS.warmup_steps,
                                                 FIRST_RUN_WARMUP_STEPS)
  if not FLAGS['max_training_minutes'].present:
    groups['optimisation']['max_training_minutes'] = FIRST_RUN_MAX_MINUTES
  if not FLAGS['log_every_n_steps'].present:
    groups['logging']['log_every_n_steps'] = min(FLAGS.log_every_n_steps,
                                                 FIRST_RUN_LOG_EVERY_N_STEPS)
  logging.info('First run on the built-in sample data: %s (pass '
               '--max_number_of_steps to train longer).', ', '.join(
                   '--%s=%s' % item for group in groups.values()
                   for item in sorted(group.items())))
  return groups


def from_scratch_settings(cluster):
  """config.FROM_SCRATCH_RECIPE for the flags not given, by group, when
  no pretrained checkpoint starts the run (logged); else empty groups.

  In a cluster the tasks' checkpoints may differ (only the chief needs
  one), so there the defaults stay as defined.
  """
  groups = {name: {} for name in config_lib.FROM_SCRATCH_RECIPE}
  if cluster is not None or config_lib.pretrained_checkpoint(
      config_lib.ModelOptions(checkpoint_path=FLAGS.checkpoint_path)):
    return groups
  for group, values in config_lib.FROM_SCRATCH_RECIPE.items():
    groups[group] = {name: value for name, value in values.items()
                     if not FLAGS[name].present}
  chosen = ' '.join(
      ('--%s' % name if value is True else '--%s=%s' % (name, value))
      for values in groups.values() for name, value in sorted(values.items()))
  if chosen:
    logging.info('No pretrained checkpoint: training from scratch with '
                 'recipe %s, the best measured on held-out photos '
                 '(README "Results"): %s. Flags you give win.',
                 config_lib.FROM_SCRATCH_RECIPE_NAME, chosen)
  return groups


# --precision and --data_format as this machine resolves them.
Platform = collections.namedtuple('Platform', ['precision', 'data_format'])


def resolve_platform(log=True):
  """--precision and --data_format, with auto resolved for this machine.

  With `log`, logs the platform, the choices and why (and where the clones
  go when there are fewer GPUs than clones).

  Raises:
    ValueError: for a layout this machine cannot run.
  """
  num_gpus = len(tf.config.list_physical_devices('GPU'))
  # Each a (choice, reason) pair.
  precision_choice = platform_info.resolve_precision(FLAGS.precision,
                                                     num_gpus > 0)
  layout_choice = platform_info.resolve_data_format(
      FLAGS.data_format, num_gpus > 0, ONEDNN[0], FLAGS.batch_size)
  if log:
    for line in platform_info.startup_report(ONEDNN, precision_choice,
                                             data_format=layout_choice):
      logging.info('%s', line)
    warning = graph_lib.clone_placement_warning(
        FLAGS.num_clones, FLAGS.clone_on_cpu, num_gpus)
    if warning:
      logging.warning('%s', warning)
  return Platform(precision_choice[0], layout_choice[0])


def config_from_flags(log_platform=False):
  """The TrainingConfig of the command line.

  Args:
    log_platform: log the platform and the choices made for it
      (`resolve_platform`).

  Raises:
    ValueError: for a numeric flag out of its bounds (`check_flag_bounds`,
      checked first), inconsistent cluster flags, or a layout this machine
      cannot run.
  """
  check_flag_bounds()
  platform = resolve_platform(log=log_platform)
  settings = resolve_cluster_flags()
  scratch = from_scratch_settings(settings.cluster)
  first_run = first_run_settings()
  deployment = dict(cluster=settings.cluster, precision=platform.precision)
  if settings.cluster is not None:
    deployment.update(task=settings.cluster.task,
                      worker_replicas=settings.worker_replicas,
                      num_ps_tasks=settings.num_ps_tasks,
                      replicas_to_aggregate=settings.replicas_to_aggregate)
  return _flags_config(
      model=dict(scratch['model'], data_format=platform.data_format),
      optimisation=dict(scratch['optimisation'], **first_run['optimisation']),
      deployment=deployment, logging=first_run['logging'])


def _flags_config(**resolved):
  """The TrainingConfig of the parsed flags, but for the settings in
  `resolved` ({group: {setting: value}}), which take those values."""
  parsed = dict(
      data=dict(dataset=dataset_flags.read_dataset_flags()),
      optimisation=dict(
          learning_rate_boundaries=[
              int(step) for step in FLAGS.learning_rate_boundaries],
          learning_rate_values=[
              float(rate) for rate in FLAGS.learning_rate_values]))
  groups = {
      field.name: _options(field.default_factory,
                           **parsed.get(field.name, {}),
                           **resolved.get(field.name, {}))
      for field in dataclasses.fields(config_lib.TrainingConfig)
      if field.name in config_lib.TrainingConfig.GROUPS}
  return config_lib.TrainingConfig(seed=FLAGS.seed, **groups)


def main(unused_argv):
  tf.compat.v1.disable_eager_execution()
  try:
    config = config_from_flags(log_platform=True)
    cluster = config.deployment.cluster
    if cluster is not None and cluster.is_ps:
      cluster_server.run_parameter_server(
          cluster, config.deployment.ps_exit_when_done,
          timeouts=config.deployment.cluster_timeouts)
      return
    dataset = dataset_flags.load_dataset(config.data.dataset)
    ssd_net = graph_lib.build_ssd_net(config.model, dataset.num_classes)
    trained = loop.run_training(config, ssd_net, dataset)
    if trained and config.deployment.is_chief:
      run_description.print_next_steps(config)
  except (step_runner.TrainingStopped, ValueError,
          run_lock.LockHeld) as error:
    # Bad flags, data or checkpoints, or a train_dir in use: the message
    # says what to fix.
    logging.error('%s', error)
    sys.exit(1)


if __name__ == '__main__':
  define_flags()
  app.run(main)
