"""Tests of eval_ssd_network's parts that need no network: best-checkpoint
keeping and early stopping (on fake checkpoint files and results), flag
checks, the progress bar, COCO ids from the source JSON."""
import json
import os

import pytest
import tensorflow as tf

import eval_ssd_network
from utils.evaluation import coco_eval
from utils.common import run_directory


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
  best = eval_ssd_network.BestCheckpoint(train_dir, 'mAP_VOC07')
  num_evaluated = eval_ssd_network.run_evaluations(
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
  eval_ssd_network.run_evaluations(
      [os.path.join(train_dir, 'model.ckpt-1')], evaluate_fn,
      eval_ssd_network.BestCheckpoint(train_dir, 'mAP_VOC07'))
  # A new evaluation run: 2 is worse than the 1 kept, 3 replaces it.
  best = eval_ssd_network.BestCheckpoint(train_dir, 'mAP_VOC07')
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
  best = eval_ssd_network.BestCheckpoint(train_dir, 'mAP_VOC07')
  assert best.update(evaluate_fn(os.path.join(train_dir, 'model.ckpt-1')))
  assert not best.update(evaluate_fn(os.path.join(train_dir, 'model.ckpt-2')))
  assert best.best_value == 0.5 and best.evaluations_since_best == 1
  assert _best_results(train_dir)['global_step'] == 1


def test_coco_metric_and_no_copy(tmp_path):
  values = {1: 0.6, 2: 0.8}
  train_dir = _train_dir(tmp_path, values)
  evaluate_fn, _ = _fake_evaluate(values)
  best = eval_ssd_network.BestCheckpoint(train_dir, 'COCO_AP', keep=False)
  eval_ssd_network.run_evaluations(
      [os.path.join(train_dir, 'model.ckpt-%d' % step) for step in values],
      evaluate_fn, best)
  assert best.best_value == 0.4 and best.evaluations_since_best == 0
  assert not os.path.exists(os.path.join(train_dir, 'best'))
  assert not os.path.exists(os.path.join(train_dir, run_directory.STOP_FILE_NAME))


def test_metric_flags_that_do_not_go_together():
  check = eval_ssd_network.check_metric_flags
  check(['voc', 'coco'], 'COCO_AP50', True, 3, True)
  with pytest.raises(ValueError, match='--metrics: give some of voc,coco'):
    check(['voc', 'kitti'], 'mAP_VOC07', False, None, False)
  with pytest.raises(ValueError, match='--best_metric COCO_AP needs '
                     '--metrics coco'):
    check(['voc'], 'COCO_AP', True, None, True)
  with pytest.raises(ValueError, match='needs --wait_for_checkpoints'):
    check(['voc'], 'mAP_VOC07', False, 2, False)


def test_progress_bar_only_on_a_terminal(monkeypatch):
  for stream in ('stdout', 'stderr'):
    monkeypatch.setattr('sys.%s.isatty' % stream, lambda: True)
  assert not eval_ssd_network._progress_bar(10, True).disable
  assert eval_ssd_network._progress_bar(10, False).disable  # --noprogress
  monkeypatch.setattr('sys.stdout.isatty', lambda: False)
  assert eval_ssd_network._progress_bar(10, True).disable


class _FakeDataset(object):

  def __init__(self, metadata):
    self.metadata = metadata


def test_coco_ids_come_from_the_converted_json(tmp_path):
  path = tmp_path / 'instances.json'
  path.write_text(json.dumps({
      'images': [{'id': 9, 'file_name': 'x.jpg'}],
      'categories': [{'id': 44, 'name': 'cat'}], 'annotations': []}))
  labels = {0: 'none', 1: 'cat'}
  assert eval_ssd_network._coco_source_ids(_FakeDataset(
      [{'annotations_file': str(path)}]), labels) == ({1: 44}, {'x.jpg': 9})
  # VOC data, or a JSON that moved away: ids of its own.
  assert eval_ssd_network._coco_source_ids(_FakeDataset(
      [{'source_dir': '/voc'}, {'annotations_file': str(tmp_path / 'gone')}]),
      labels) == (None, None)


def test_summary_image_draws_only_the_best_detections_above_the_threshold():
  import numpy as np  # pylint: disable=g-import-not-at-top
  collector = eval_ssd_network._Collector(  # pylint: disable=protected-access
      {1: 'box'}, metrics=(), matching_threshold=0.5, num_summary_images=1,
      image_summary_min_score=0.2)
  size = 900
  image = np.zeros([size, size, 3], np.uint8)
  gt = {'labels': np.zeros([0], np.int64), 'bboxes': np.zeros([0, 4])}
  # 30 detections, one per 30 px band: scores 0.01 ... 0.30; only the 10 best
  # (0.21 ... 0.30) are >= 0.2 and within the cap of 10 -> drawn.
  scores = np.arange(1, 31) / 100.
  tops = np.arange(30) / 30.
  bboxes = np.stack([tops, np.full(30, 0.1), tops + 0.02,
                     np.full(30, 0.9)], axis=1)
  found = {'classes': np.ones(30, np.int64), 'scores': scores,
           'bboxes': bboxes}
  drawn = collector._draw(image, gt, found)  # pylint: disable=protected-access
  right = drawn[:, -size:]
  # Probe each box's right edge, away from the label tags at its left.
  rows_drawn = [row for row in range(30)
                if right[int(tops[row] * size) + 4, int(0.9 * size) - 2].any()]
  assert rows_drawn == list(range(20, 30))
