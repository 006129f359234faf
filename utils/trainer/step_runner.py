"""The step of tf_slim's training loop: run, log, summarise, stop cleanly."""
import os
import signal
import time

from absl import logging
import tensorflow as tf

from utils.trainer import graph as graph_lib

_v1 = tf.compat.v1


class TrainingStopped(Exception):
  """Training cannot go on (e.g. a non-finite loss); the message says why."""


class StepRunner(object):
  """tf_slim train_step_fn: runs a step, logs progress, stops cleanly.

  Logs every log_every_n_steps: step, total loss and each loss term,
  learning rate, images/second and, with a step limit, an ETA.  Ctrl-C, or
  a stop file (`<train_dir>/STOP`, run_directory.STOP_FILE_NAME, which
  evaluation's early stopping writes), finishes the current step, then
  stops (the training loop then saves a checkpoint).  A non-finite loss or gradient
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
        with the first and the last step), computed in a step's own run.
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
    self._step = None  # The global step after the last step run.
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
    results = self._run_step(sess, train_op, self._summary_due())
    if results is None:
      return float('nan'), True
    total_loss, terms, learning_rate, summary = results
    # Read after the step: the step's own read may precede the increment.
    step = sess.run(global_step)
    self._interval_steps += 1
    # The first step of a run is logged too: the loss it starts from.
    if (step % self._log_every == 0 or step == self._max_steps or
        self._start_step is None):
      self._log(step, total_loss, terms, learning_rate)
    if self._start_step is None:
      self._start_step = step
    self._step = step
    should_stop = self._should_stop(step)
    if summary is None and should_stop and self._summary_writer is not None:
      # A stop nobody foresaw (Ctrl-C, the stop file, the time budget): the
      # batch this run of the summary op takes is never trained on, but
      # training is over.
      summary = sess.run(self._summary_op)
    if summary is not None:
      self._write_summaries(summary, step)
    return total_loss, should_stop

  def _run_step(self, sess, train_op, with_summary):
    """[total loss, {loss term: value}, learning rate, serialized summaries
    or None] of one step; None when a non-finite loss or gradient stopped it
    (self.failure says so)."""
    fetches = [train_op, self._loss_terms, self._learning_rate]
    if with_summary:
      fetches.append(self._summary_op)
    try:
      results = sess.run(fetches)
    except tf.errors.InvalidArgumentError as error:
      if graph_lib.NON_FINITE_MARKER not in error.message:
        raise
      self.failure = (
          'Training stopped: %s. The weights were not updated with it and '
          'the last good state is saved. Lower --learning_rate, check the '
          'data with `python -m datasets.inspect_tfrecords`, or resume from '
          'the checkpoint.' % _assertion_text(error.message))
      logging.error(self.failure)
      return None
    return results if with_summary else results + [None]

  def _should_stop(self, step):
    return (self._interrupted or self._stop_file_found(step) or
            self._budget_spent(step) or (
                self._max_steps is not None and step >= self._max_steps))

  def _finished_before_training(self, sess, global_step):
    """The nothing-to-train line if the global step is already at the
    step limit (a cluster resumed past it), else None."""
    if self._max_steps is None:
      return None
    step = sess.run(global_step)
    if step < self._max_steps:
      return None
    return nothing_to_train_line(step, self._max_steps, 'Training')

  def _summary_due(self):
    """Whether the next step also computes the summaries: the first step,
    the last one of the step limit, and one every save_summaries_secs.

    They are computed in the step's own session run, from the batch it
    trains on: a session run of the summary op alone would take a batch of
    its own from the queue, which no step would train on, and the data
    order of a seeded run would then depend on when the summaries fall.
    """
    if self._summary_writer is None:
      return False
    if self._last_summary is None:
      return True
    if (self._max_steps is not None and self._step is not None and
        self._step + 1 >= self._max_steps):
      return True
    return time.time() - self._last_summary[0] >= self._summary_secs

  def _write_summaries(self, summary, step):
    """Writes `summary` and the throughput since the previous summaries."""
    now = time.time()
    if self._last_summary is not None:
      last_time, last_step = self._last_summary
      steps_per_sec = (step - last_step) / max(now - last_time, 1e-9)
      self._summary_writer.add_summary(_v1.Summary(value=[
          _v1.Summary.Value(tag='global_step/sec',
                            simple_value=steps_per_sec),
          _v1.Summary.Value(tag='throughput/images_per_sec',
                            simple_value=steps_per_sec *
                            self._images_per_step)]), step)
    self._summary_writer.add_summary(summary, step)
    self._summary_writer.flush()
    self._last_summary = (now, step)

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
  text = message[message.index(graph_lib.NON_FINITE_MARKER):].split('\n')[0]
  parts = [part.strip(' []') for part in text.split('] [')]
  pairs = ['%s %s' % (parts[i], parts[i + 1])
           for i in range(0, len(parts) - 1, 2)]
  return ', '.join(pairs)


def nothing_to_train_line(step, max_steps, where):
  """The line saying that `where` is already at the step limit."""
  return ('%s is already at step %d >= --max_number_of_steps %d: nothing to '
          'train.' % (where, step, max_steps))
