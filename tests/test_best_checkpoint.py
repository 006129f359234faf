"""Tests of keeping the best checkpoint and early stopping, on fake
checkpoint files and results (utils.evaluation.best_checkpoint, driven by
schedule.run_evaluations), and of the metric flag checks."""
import json
import os

import pytest
import tensorflow as tf

from utils.common import run_directory
from utils.evaluation import best_checkpoint
from utils.evaluation import coco_eval
from utils.evaluation import schedule


def _train_dir(tmp_path, steps):
  """A training directory with fake files of checkpoints model.ckpt-<step>
  and an ssd_params.json."""
  train_dir = tmp_path / 'train'
  train_dir.mkdir()
  for step in steps:
    for suffix in ('.index', '.data-00000-of-00001'):
      (train_dir / ('model.ckpt-%d%s' % (step, suffix))).write_text(
          'step %d' % step)
  (train_dir / run_directory.SSD_PARAMS_FILE_NAME).write_text('{}')
  return str(train_dir)


def _fake_evaluate(values):
  """evaluate_fn giving checkpoint model.ckpt-<step> the results
  {mAP_VOC07: values[step], COCO AP: values[step] / 2}."""
  evaluated = []

  def evaluate_fn(checkpoint_path):
    step = int(checkpoint_path.rsplit('-', 1)[1])
    evaluated.append(step)
    coco = dict.fromkeys(coco_eval.METRIC_NAMES, None)
    coco['AP'] = values[step] / 2
    return {'checkpoint_path': checkpoint_path, 'global_step': step,
            'mAP_VOC07': values[step], 'coco': coco,
            'num_images': 1, 'dataset': {'name': 'voc', 'split': 'val'}}

  return evaluate_fn, evaluated


def _best_results(train_dir):
  with open(os.path.join(train_dir, 'best', 'results.json')) as results_file:
    return json.load(results_file)


def test_keeps_the_best_and_stops_after_the_patience(tmp_path):
  values = {1: 0.3, 2: 0.5, 3: 0.4, 4: 0.5, 5: 0.9}
  train_dir = _train_dir(tmp_path, values)
  evaluate_fn, evaluated = _fake_evaluate(values)
  best = best_checkpoint.BestCheckpoint(train_dir, 'mAP_VOC07')
  num_evaluated = schedule.run_evaluations(
      [os.path.join(train_dir, 'model.ckpt-%d' % step) for step in values],
      evaluate_fn, best, early_stopping_patience=2)
  # 3 and 4 are no better than 2 (equal is not better): stop before 5.
  assert num_evaluated == 4 and evaluated == [1, 2, 3, 4]
  best_dir = os.path.join(train_dir, 'best')
  assert sorted(os.listdir(best_dir)) == sorted([
      'checkpoint', 'model.ckpt-2.data-00000-of-00001', 'model.ckpt-2.index',
      run_directory.SSD_PARAMS_FILE_NAME, 'results.json'])
  with open(os.path.join(best_dir, 'model.ckpt-2.index')) as index_file:
    assert index_file.read() == 'step 2'
  # The index names the copy, relative to best/.
  assert tf.train.latest_checkpoint(best_dir) == os.path.join(
      best_dir, 'model.ckpt-2')
  assert _best_results(train_dir)['global_step'] == 2
  with open(os.path.join(train_dir, run_directory.STOP_FILE_NAME)) as stop_file:
    assert stop_file.read() == ('Early stopping: 2 evaluations without a '
                                'mAP_VOC07 better than 0.5.\n')
  assert not os.path.exists(best_dir + '.partial')
  assert not os.path.exists(best_dir + '.previous')


def test_the_best_survives_a_restart(tmp_path):
  values = {1: 0.6, 2: 0.5, 3: 0.7}
  train_dir = _train_dir(tmp_path, values)
  evaluate_fn, _ = _fake_evaluate(values)
  schedule.run_evaluations(
      [os.path.join(train_dir, 'model.ckpt-1')], evaluate_fn,
      best_checkpoint.BestCheckpoint(train_dir, 'mAP_VOC07'))
  # A new evaluation run: 2 is worse than the 1 kept, 3 replaces it.
  best = best_checkpoint.BestCheckpoint(train_dir, 'mAP_VOC07')
  assert best.best_value == 0.6
  assert not best.update(evaluate_fn(os.path.join(train_dir, 'model.ckpt-2')))
  assert _best_results(train_dir)['global_step'] == 1
  assert best.update(evaluate_fn(os.path.join(train_dir, 'model.ckpt-3')))
  assert _best_results(train_dir)['global_step'] == 3
  assert sorted(name for name in os.listdir(os.path.join(train_dir, 'best'))
                if name.startswith('model')) == [
                    'model.ckpt-3.data-00000-of-00001', 'model.ckpt-3.index']


def test_a_checkpoint_deleted_before_its_copy_is_not_the_best(tmp_path):
  values = {1: 0.5, 2: 0.9}
  train_dir = _train_dir(tmp_path, [1])  # Training already deleted 2.
  evaluate_fn, _ = _fake_evaluate(values)
  best = best_checkpoint.BestCheckpoint(train_dir, 'mAP_VOC07')
  assert best.update(evaluate_fn(os.path.join(train_dir, 'model.ckpt-1')))
  assert not best.update(evaluate_fn(os.path.join(train_dir, 'model.ckpt-2')))
  assert best.best_value == 0.5 and best.evaluations_since_best == 1
  assert _best_results(train_dir)['global_step'] == 1


def test_coco_metric_and_no_copy(tmp_path):
  values = {1: 0.6, 2: 0.8}
  train_dir = _train_dir(tmp_path, values)
  evaluate_fn, _ = _fake_evaluate(values)
  best = best_checkpoint.BestCheckpoint(train_dir, 'COCO_AP', keep=False)
  schedule.run_evaluations(
      [os.path.join(train_dir, 'model.ckpt-%d' % step) for step in values],
      evaluate_fn, best)
  assert best.best_value == 0.4 and best.evaluations_since_best == 0
  assert not os.path.exists(os.path.join(train_dir, 'best'))
  assert not os.path.exists(os.path.join(train_dir, run_directory.STOP_FILE_NAME))


def test_metric_flags_that_do_not_go_together():
  check = best_checkpoint.check_metric_flags
  check(['voc', 'coco'], 'COCO_AP50', True, 3, True)
  with pytest.raises(ValueError, match='--metrics: give some of voc,coco'):
    check(['voc', 'kitti'], 'mAP_VOC07', False, None, False)
  with pytest.raises(ValueError, match='--best_metric COCO_AP needs '
                     '--metrics coco'):
    check(['voc'], 'COCO_AP', True, None, True)
  with pytest.raises(ValueError, match='needs --wait_for_checkpoints'):
    check(['voc'], 'mAP_VOC07', False, 2, False)
