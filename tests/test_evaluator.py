"""Tests of the evaluator's parts that need no network: the progress bar,
COCO ids from the source JSON, the summary images.  The evaluation itself:
test_eval_ssd_network.py."""
import json

import numpy as np

from utils.evaluation import evaluator


def test_progress_bar_only_on_a_terminal(monkeypatch):
  for stream in ('stdout', 'stderr'):
    monkeypatch.setattr('sys.%s.isatty' % stream, lambda: True)
  assert not evaluator.progress_bar(10, True).disable
  assert evaluator.progress_bar(10, False).disable  # --noprogress
  monkeypatch.setattr('sys.stdout.isatty', lambda: False)
  assert evaluator.progress_bar(10, True).disable


class _FakeDataset(object):

  def __init__(self, metadata):
    self.metadata = metadata


def test_coco_ids_come_from_the_converted_json(tmp_path):
  path = tmp_path / 'instances.json'
  path.write_text(json.dumps({
      'images': [{'id': 9, 'file_name': 'x.jpg'}],
      'categories': [{'id': 44, 'name': 'cat'}], 'annotations': []}))
  labels = {0: 'none', 1: 'cat'}
  assert evaluator.coco_source_ids(_FakeDataset(
      [{'annotations_file': str(path)}]), labels) == ({1: 44}, {'x.jpg': 9})
  # VOC data, or a JSON that moved away: ids of its own.
  assert evaluator.coco_source_ids(_FakeDataset(
      [{'source_dir': '/voc'}, {'annotations_file': str(tmp_path / 'gone')}]),
      labels) == (None, None)


def test_summary_image_draws_only_the_best_detections_above_the_threshold():
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
  drawn = evaluator.summary_image(image, gt, found, {1: 'box'},
                                  min_score=0.2)
  right = drawn[:, -size:]
  # Probe each box's right edge, away from the label tags at its left.
  rows_drawn = [row for row in range(30)
                if right[int(tops[row] * size) + 4, int(0.9 * size) - 2].any()]
  assert rows_drawn == list(range(20, 30))
