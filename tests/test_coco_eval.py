"""Tests of utils/evaluation/coco_eval.py on hand-checkable cases (pycocotools does the
matching and averaging; these check what goes in and what comes out)."""
import json

import pytest

from utils.evaluation import coco_eval

LABELS = {0: 'none', 1: 'cat', 2: 'dog'}
# (ymin, xmin, ymax, xmax) pixels; areas 100 (small: < 32^2), 2500 (medium),
# 40000 (large: > 96^2).
SMALL = [0, 0, 10, 10]
MEDIUM = [100, 100, 150, 150]
LARGE = [200, 0, 400, 200]


def _evaluator(images):
  """images: list of (filename, gt [(label, box, difficult)], detections
  [(label, score, box)]), all 500 x 500."""
  evaluator = coco_eval.CocoEvaluator(LABELS)
  for filename, gt, detections in images:
    evaluator.add_image(
        filename, 500, 500, [o[0] for o in gt], [o[1] for o in gt],
        [o[2] for o in gt], [d[0] for d in detections],
        [d[1] for d in detections], [d[2] for d in detections])
  return evaluator


def test_perfect_detections_score_1():
  gt = [(1, SMALL, 0), (1, MEDIUM, 0), (2, LARGE, 0)]
  results = _evaluator([('a.jpg', gt, [(o[0], 0.9, o[1]) for o in gt])
                        ]).results()
  for name in coco_eval.METRIC_NAMES:
    assert results[name] == pytest.approx(1.), name


def test_one_class_missed():
  # Cats (small) all found, the dog (large) never: mean over the two
  # classes, and the size ranges see only their own objects.
  gt = [(1, SMALL, 0), (2, LARGE, 0)]
  results = _evaluator([('a.jpg', gt, [(1, 0.9, SMALL)])]).results()
  assert results['AP'] == pytest.approx(0.5)
  assert results['AP50'] == pytest.approx(0.5)
  assert results['AP75'] == pytest.approx(0.5)
  assert results['AP_small'] == pytest.approx(1.)
  assert results['AP_medium'] is None  # No medium object: nothing to average.
  assert results['AP_large'] == 0.
  assert 'Average Precision' in results['summary']


def test_iou_062_counts_at_the_three_lowest_thresholds():
  # 62 of the object's 100 columns: IoU 0.62, a match at 0.50, 0.55, 0.60
  # only: AP@[.5:.95] = 3 / 10.
  results = _evaluator([('a.jpg', [(1, [0, 0, 100, 100], 0)],
                         [(1, 0.9, [0, 0, 100, 62])])]).results()
  assert results['AP'] == pytest.approx(0.3)
  assert results['AP50'] == pytest.approx(1.) and results['AP75'] == 0.
  assert results['AP_large'] == pytest.approx(0.3)


def test_difficult_objects_are_crowd_regions():
  # A detection on a difficult object outranks the true positive: no
  # penalty, AP stays 1; the difficult object is not a miss either.
  gt = [(1, MEDIUM, 0), (1, LARGE, 1)]
  results = _evaluator([('a.jpg', gt, [(1, 0.9, LARGE), (1, 0.8, MEDIUM)])
                        ]).results()
  assert results['AP'] == pytest.approx(1.)
  assert results['AP_large'] is None


def test_no_detections():
  results = _evaluator([('a.jpg', [(1, MEDIUM, 0)], [])]).results()
  assert results['AP'] == 0. and results['AP_medium'] == 0.
  assert results['AP_small'] is None


def test_detections_json_is_the_coco_results_format():
  evaluator = _evaluator([
      ('000000000042.jpg', [(1, SMALL, 0)], [(2, 0.25, [10, 20, 40, 30.5])]),
      ('000000000007.jpg', [], [(1, 0.5, SMALL)])])
  assert evaluator.detections_json() == [
      {'image_id': 42, 'category_id': 2, 'bbox': [20., 10., 10.5, 30.],
       'score': 0.25},
      {'image_id': 7, 'category_id': 1, 'bbox': [0., 0., 10., 10.],
       'score': 0.5}]


def test_image_ids():
  assert coco_eval.image_ids(['000000397133.jpg', 'x/12.png']) == [397133, 12]
  # Not all numbers, or not distinct: positions.
  assert coco_eval.image_ids(['a.jpg', '12.jpg']) == [1, 2]
  assert coco_eval.image_ids(['12.jpg', '012.jpg']) == [1, 2]


def test_category_ids_map_labels():
  evaluator = coco_eval.CocoEvaluator(LABELS, category_ids={1: 17, 2: 18})
  evaluator.add_image('a.jpg', 100, 100, [1], [SMALL], [0], [1], [0.9],
                      [SMALL])
  assert evaluator.detections_json()[0]['category_id'] == 17
  assert evaluator.results()['AP'] == pytest.approx(1.)


def test_ids_of_the_source_json(tmp_path):
  path = tmp_path / 'instances_val.json'
  path.write_text(json.dumps({
      'images': [{'id': 397133, 'file_name': 'val/a.jpg'},
                 {'id': 5, 'file_name': 'b.jpg'}],
      'categories': [{'id': 18, 'name': 'dog'}, {'id': 17, 'name': 'cat'}],
      'annotations': []}))
  category_ids, ids_by_filename = coco_eval.read_source_ids(str(path), LABELS)
  assert category_ids == {1: 17, 2: 18}
  assert ids_by_filename == {'a.jpg': 397133, 'b.jpg': 5}
  evaluator = coco_eval.CocoEvaluator(LABELS, category_ids, ids_by_filename)
  evaluator.add_image('b.jpg', 100, 100, [2], [SMALL], [0], [2], [0.9],
                      [SMALL])
  assert evaluator.detections_json()[0]['image_id'] == 5
  assert evaluator.detections_json()[0]['category_id'] == 18
  assert evaluator.results()['AP'] == pytest.approx(1.)
  # An image the file does not have: the file-name rule for all.
  assert coco_eval.image_ids(['a.jpg', 'c.jpg'], ids_by_filename) == [1, 2]
  # A class that is not a category there: labels as category ids.
  assert coco_eval.read_source_ids(str(path), {1: 'cat', 2: 'cow'})[0] is None
  path.write_text('{"images": []}')
  with pytest.raises(ValueError, match='cannot read the COCO ids of .*'
                     'instances_val.json'):
    coco_eval.read_source_ids(str(path), LABELS)
