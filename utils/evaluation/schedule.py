"""Which checkpoints to evaluate, and evaluating them in turn.

One checkpoint, or (waiting for checkpoints) every new one that training
writes in its directory, until a timeout passes without one; after each
evaluation the best checkpoint is kept and early stopping decided
(`utils.evaluation.best_checkpoint`).
"""
import os

from absl import logging
import tensorflow as tf

from utils.checkpointing import checkpoints
from utils.evaluation import best_checkpoint
from utils.evaluation import evaluator

_v1 = tf.compat.v1


def checkpoints_to_evaluate(checkpoint_path, wait_for_checkpoints,
                            eval_interval_secs=60, timeout=None):
  """[checkpoint_path], or (waiting) each new checkpoint of that directory
  as it appears, until `timeout` seconds pass without one."""
  if not wait_for_checkpoints:
    return [checkpoint_path]
  if not os.path.isdir(checkpoint_path):
    raise ValueError('--wait_for_checkpoints needs a directory as '
                     '--checkpoint_path, got %s' % checkpoint_path)
  return _v1.train.checkpoints_iterator(
      checkpoint_path, min_interval_secs=eval_interval_secs, timeout=timeout)


def evaluate_unless_deleted(checkpoint_path, dataset, skip_deleted,
                            **evaluate_args):
  """`evaluator.evaluate`; with `skip_deleted`, None for a checkpoint that
  training deleted (max_to_keep) before it was evaluated."""
  try:
    return evaluator.evaluate(checkpoint_path, dataset, **evaluate_args)
  except (tf.errors.NotFoundError, checkpoints.CheckpointError):
    if not skip_deleted or tf.io.gfile.exists(checkpoint_path + '.index'):
      raise
    logging.warning('Skipping %s: deleted before it was evaluated.',
                    checkpoint_path)
    return None


def run_evaluations(checkpoint_paths, evaluate_fn, best=None,
                    early_stopping_patience=None):
  """Evaluates checkpoints in turn, keeping the best and stopping early.

  Args:
    checkpoint_paths: iterable of checkpoint prefixes.
    evaluate_fn: checkpoint prefix -> results dict (see
      `evaluator.evaluate`), or None for a checkpoint skipped.
    best: optional `best_checkpoint.BestCheckpoint`, updated after each
      evaluation.
    early_stopping_patience: with `best`: after this many evaluations
      without a better one, write the stop file in `best.train_dir` and
      return.

  Returns:
    How many checkpoints were evaluated.
  """
  num_evaluated = 0
  for checkpoint_path in checkpoint_paths:
    results = evaluate_fn(checkpoint_path)
    if results is None:
      continue
    num_evaluated += 1
    evaluator.print_results(results)
    if best is None:
      continue
    best.update(results)
    if (early_stopping_patience and
        best.evaluations_since_best >= early_stopping_patience):
      path = best_checkpoint.write_stop_file(best.train_dir, (
          'Early stopping: %d evaluations without a %s better than %s.' % (
              best.evaluations_since_best, best.metric, best.best_value)))
      logging.info('No better %s in %d evaluations: wrote %s; stopping.',
                   best.metric, best.evaluations_since_best, path)
      break
  return num_evaluated
