"""The training run: checks, lock and tf_slim's training loop.

`run_training` checks train_dir and the pretrained checkpoint, holds the
run's lock, builds the graph (utils.trainer.graph) and runs
slim.learning.train with the StepRunner: checkpoints and TensorBoard
summaries in train_dir, resuming from the checkpoint already there.
"""
import os
import signal

from absl import logging
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from datasets import dataset_utils
from deployment import cluster_worker
from nets import nets_factory
from utils.checkpointing import checkpoints
from utils.checkpointing import checkpoint_saver
from utils.common import paths
from utils.common import run_directory
from utils.common import run_lock
from utils.trainer import graph as graph_lib
from utils.trainer import initialisation
from utils.trainer import input_pipeline
from utils.trainer import run_description
from utils.trainer import step_runner as step_runner_lib
from utils.trainer import train_tools

_v1 = tf.compat.v1


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
  run_description.write_training_config(config, ssd_net.params, dataset)
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
  return step_runner_lib.nothing_to_train_line(step, max_steps, train_dir)


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

  The chief (or a local run) holds `<train_dir>/.lock`
  (run_directory.LOCK_FILE_NAME) for the run's life: a second run in the
  same train_dir is refused before it writes anything there.

  Args:
    config: a TrainingConfig (deployment.precision resolved: not 'auto').
    ssd_net: the SSDNet to train.
    dataset: the training dataset (num_samples, files for the logs; the
      default input reads it).
    input_fn: input_fn(ssd_net, deploy_config) -> (batch_queue,
      batch_shape); default: input_pipeline.tfrecord_input_fn of
      `dataset`.

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
    input_fn = input_pipeline.tfrecord_input_fn(config, dataset)
  deploy_config = graph_lib.make_deploy_config(deployment)
  stop_file = run_directory.stop_file(config.logging.train_dir)
  session_config = train_tools.session_config(
      deploy_config, deployment.gpu_memory_fraction, deployment.precision)
  worker_task = None
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
    tensors = graph_lib.build_training_graph(
        config, ssd_net, deploy_config, input_fn, dataset.num_samples)
    init_fn = (initialisation.make_init_fn(config.logging.train_dir,
                                           config.model, ssd_net)
               if deployment.is_chief else None)
    saver = checkpoint_saver.CheckpointSaver(
        max_to_keep=config.logging.max_to_keep,
        keep_checkpoint_every_n_hours=(
            config.logging.keep_checkpoint_every_n_hours))
    summary_writer = (_start_chief(config, ssd_net, dataset, stop_file, graph)
                      if deployment.is_chief else None)
    step_runner = _step_runner(config, tensors, stop_file, summary_writer)
    try:
      _run(_loop_fn(config, tensors, step_runner, init_fn, saver),
           worker_task, session_config, step_runner, dataset)
    finally:
      if summary_writer is not None:
        summary_writer.close()
  if step_runner.failure:
    raise step_runner_lib.TrainingStopped(step_runner.failure)


def _start_chief(config, ssd_net, dataset, stop_file, graph):
  """The chief's start of the run directory and its summary writer, with
  the run's description written."""
  start_run_directory(config, ssd_net, dataset, stop_file)
  summary_writer = _v1.summary.FileWriter(config.logging.train_dir)
  run_description.write_run_summaries(summary_writer, config, ssd_net.params,
                                      graph)
  return summary_writer


def _step_runner(config, tensors, stop_file, summary_writer):
  return step_runner_lib.StepRunner(
      tensors, config.deployment.images_per_step(config.data.batch_size),
      config.optimisation.max_number_of_steps,
      config.logging.log_every_n_steps, stop_file=stop_file,
      summary_writer=summary_writer,
      save_summaries_secs=config.logging.save_summaries_secs,
      max_training_minutes=config.optimisation.max_training_minutes)


def _loop_fn(config, tensors, step_runner, init_fn, saver):
  """run_loop(master, session_config): tf_slim's training loop."""
  deployment = config.deployment

  def run_loop(master, loop_session_config):
    if tensors.sync_optimizer is not None:
      tensors.sync_optimizer.session_config = loop_session_config
    # In a cluster, deployment/cluster.py watches the signals. Locally,
    # Ctrl-C and SIGTERM (a cluster manager's or `kill`'s stop) both
    # finish the step and save a checkpoint.
    previous_handlers = ({sig: signal.signal(sig, step_runner.request_stop)
                          for sig in (signal.SIGINT, signal.SIGTERM)}
                         if deployment.cluster is None else {})
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
  return run_loop


def _run(run_loop, worker_task, session_config, step_runner, dataset):
  """Runs the loop, locally or as `worker_task` of a cluster; damaged
  training data stops it with TrainingStopped."""
  try:
    if worker_task is None:
      run_loop('', session_config)
    else:
      worker_task.run(run_loop, step_runner.request_stop)
  except tf.errors.DataLossError as error:
    if input_pipeline.INPUT_SCOPE not in (error.message or ''):
      raise
    raise step_runner_lib.TrainingStopped(damaged_data_message(dataset, error)) from None
