"""The best checkpoint of a training run, and early stopping.

While training runs, evaluation scores each new checkpoint; `BestCheckpoint`
keeps the best so far by one metric (BEST_METRICS) in `<train_dir>/best/`
and counts the evaluations since it improved.  After too many,
`write_stop_file` asks training to save a checkpoint and stop
(`<train_dir>/STOP`, see `utils.common.run_directory`).
"""
import glob
import os
import shutil

from absl import logging

from utils.common import run_directory
from utils.evaluation import coco_eval
from utils.evaluation import evaluator

# The metrics that can choose the best checkpoint: results.json's VOC mAPs,
# and COCO_<metric>.
BEST_METRICS = ('mAP_VOC07', 'mAP_VOC12') + tuple(
    'COCO_' + name for name in coco_eval.METRIC_NAMES)


def metric_value(results, metric):
  """The value of `metric` (one of BEST_METRICS) in `results`, or None."""
  if metric.startswith('COCO_'):
    return results.get('coco', {}).get(metric[len('COCO_'):])
  return results.get(metric)


def check_metric_flags(metrics, best_metric, uses_best,
                       early_stopping_patience, wait_for_checkpoints):
  """Raises ValueError for metric flags that do not go together.

  Args:
    metrics: --metrics, some of `evaluator.METRICS`.
    best_metric: --best_metric, one of BEST_METRICS.
    uses_best: whether the best checkpoint is kept or early stopping is on.
    early_stopping_patience: --early_stopping_patience.
    wait_for_checkpoints: --wait_for_checkpoints.
  """
  unknown = set(metrics) - set(evaluator.METRICS)
  if unknown or not metrics:
    raise ValueError('--metrics: give some of %s, comma-separated; got %s' %
                     (','.join(evaluator.METRICS), ','.join(metrics)))
  needed = 'coco' if best_metric.startswith('COCO_') else 'voc'
  if uses_best and needed not in metrics:
    raise ValueError('--best_metric %s needs --metrics %s' %
                     (best_metric, needed))
  if early_stopping_patience and not wait_for_checkpoints:
    raise ValueError('--early_stopping_patience needs --wait_for_checkpoints')


class BestCheckpoint(object):
  """Keeps the best checkpoint so far in `<train_dir>/best/` and counts the
  evaluations since it improved (for early stopping).

  The best value survives restarts: it is read back from best/results.json.
  best/ is replaced whole (written beside it, then renamed), and holds the
  checkpoint's files, a `checkpoint` index, results.json and, when training
  wrote one, ssd_params.json (so the copy decodes with its own anchors).
  """

  def __init__(self, train_dir, metric, keep=True):
    """Args:
      train_dir: the training directory (gets best/).
      metric: one of BEST_METRICS.
      keep: copy the best checkpoint; False only tracks its value.
    """
    self.train_dir = train_dir
    self.directory = run_directory.best_dir(train_dir)
    self.metric = metric
    self.keep = keep
    self.evaluations_since_best = 0
    self.best_value = None
    kept = evaluator.read_results(self.directory) if keep else None
    if kept is not None:
      self.best_value = metric_value(kept, metric)

  def update(self, results):
    """Takes one evaluation's results; True if it is the new best."""
    value = metric_value(results, self.metric)
    if value is None:
      logging.warning('%s has no %s (no object to score): not a best '
                      'checkpoint.', results['checkpoint_path'], self.metric)
    if value is None or (self.best_value is not None and
                         value <= self.best_value):
      self.evaluations_since_best += 1
      return False
    if self.keep:
      try:
        self._copy(results)
      except OSError as error:
        # Training may delete a checkpoint (max_to_keep) once evaluated.
        logging.warning('Could not keep %s as the best checkpoint (%s); %s '
                        'keeps the previous one.', results['checkpoint_path'],
                        error, self.directory)
        self.evaluations_since_best += 1
        return False
    self.best_value = value
    self.evaluations_since_best = 0
    return True

  def _copy(self, results):
    checkpoint_path = results['checkpoint_path']
    partial = self.directory + '.partial'
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    files = glob.glob(glob.escape(checkpoint_path) + '.*')
    if checkpoint_path + '.index' not in files:
      raise FileNotFoundError('no file %s.index' % checkpoint_path)
    for path in files:
      shutil.copy2(path, partial)
    prefix = os.path.basename(checkpoint_path)
    with open(run_directory.checkpoint_index(partial), 'w') as index_file:
      index_file.write('model_checkpoint_path: "%s"\n'
                       'all_model_checkpoint_paths: "%s"\n' % (prefix, prefix))
    ssd_params = run_directory.ssd_params_file(
        os.path.dirname(checkpoint_path))
    if os.path.exists(ssd_params):
      shutil.copy2(ssd_params, partial)
    evaluator.write_results(partial, results)
    previous = self.directory + '.previous'
    if os.path.exists(self.directory):
      shutil.rmtree(previous, ignore_errors=True)
      os.rename(self.directory, previous)
    os.rename(partial, self.directory)
    shutil.rmtree(previous, ignore_errors=True)
    logging.info('New best %s %.4f: %s copied to %s.', self.metric,
                 metric_value(results, self.metric), checkpoint_path,
                 self.directory)


def write_stop_file(train_dir, reason):
  """Asks training in `train_dir` to save a checkpoint and stop."""
  path = run_directory.stop_file(train_dir)
  with open(path, 'w') as stop_file:
    stop_file.write(reason + '\n')
  return path
