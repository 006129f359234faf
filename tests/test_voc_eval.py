"""Tests of utils/evaluation/voc_eval.py against hand-computed Pascal VOC values."""
import numpy as np
import pytest

from utils.evaluation import voc_eval

LABELS = {0: 'none', 1: 'cat', 2: 'dog', 3: 'bird'}


def _box(xmin, ymin, xmax, ymax):
  """A pixel box in the (ymin, xmin, ymax, xmax) order of the module."""
  return [ymin, xmin, ymax, xmax]


class TestMatchDetections:

  def test_duplicates_and_the_best_overlap_rule(self):
    # Inclusive pixels: 11 x 11 boxes, overlapping on 9 x 11 (IoU 99 / 143).
    gt = [_box(0, 0, 10, 10), _box(2, 0, 12, 10)]
    detections = [
        _box(0, 0, 10, 10),       # Object 0 exactly: TP.
        _box(0.5, 0, 10.5, 10),   # Intersections 10.5 x 11 with object 0
                                  # (IoU 0.913, matched), 9.5 x 11 with
                                  # object 1 (0.760): its best is taken: FP.
        _box(2, 0, 12, 10),       # Object 1: TP.
        _box(2, 0, 12, 10),       # Object 1 again: duplicate, FP.
        _box(50, 50, 60, 60)]     # Nothing: FP.
    true_positive, false_positive = voc_eval.match_detections(
        detections, gt, [0, 0])
    np.testing.assert_array_equal(true_positive, [1, 0, 1, 0, 0])
    np.testing.assert_array_equal(false_positive, [0, 1, 0, 1, 1])

  def test_iou_must_exceed_the_threshold(self):
    # Pixels 0..4 of an object's 0..9 columns, all 10 rows: 50 of 100
    # pixels, IoU exactly 0.5: not above it, a false positive.
    true_positive, false_positive = voc_eval.match_detections(
        [_box(0, 0, 4, 9)], [_box(0, 0, 9, 9)], [0])
    assert not true_positive[0] and false_positive[0]
    true_positive, _ = voc_eval.match_detections(
        [_box(0, 0, 4, 9)], [_box(0, 0, 9, 9)], [0], iou_threshold=0.49)
    assert true_positive[0]

  def test_difficult_objects_are_ignored(self):
    gt = [_box(0, 0, 10, 10), _box(20, 20, 30, 30)]
    true_positive, false_positive = voc_eval.match_detections(
        [_box(0, 0, 10, 10), _box(20, 20, 30, 30), _box(0, 0, 10, 10)], gt,
        gt_difficult=[1, 0])
    # Both detections of the difficult object are neither TP nor FP.
    np.testing.assert_array_equal(true_positive, [0, 1, 0])
    np.testing.assert_array_equal(false_positive, [0, 0, 0])

  def test_no_ground_truth(self):
    true_positive, false_positive = voc_eval.match_detections(
        [_box(0, 0, 1, 1)], np.zeros([0, 4]), [])
    np.testing.assert_array_equal(true_positive, [0])
    np.testing.assert_array_equal(false_positive, [1])


class TestAveragePrecision:

  # Ranked TP, FP, TP, TP, FP with 4 objects: precision 1, 1/2, 2/3, 3/4,
  # 3/5 at recall 1/4, 1/4, 1/2, 3/4, 3/4.
  SCORES = [0.9, 0.8, 0.7, 0.6, 0.5]
  TRUE_POSITIVE = [1, 0, 1, 1, 0]

  def _curve(self, scores=SCORES, true_positive=TRUE_POSITIVE,
             num_positives=4):
    true_positive = np.array(true_positive, bool)
    return voc_eval.precision_recall(scores, true_positive, ~true_positive,
                                     num_positives)

  def test_precision_recall(self):
    precision, recall = self._curve()
    np.testing.assert_allclose(precision, [1, 1 / 2, 2 / 3, 3 / 4, 3 / 5])
    np.testing.assert_allclose(recall, [1 / 4, 1 / 4, 1 / 2, 3 / 4, 3 / 4])

  def test_11_point_and_area_differ(self):
    precision, recall = self._curve()
    # 11-point: precision 1 at t = 0, 0.1, 0.2; 3/4 at t = 0.3 ... 0.7;
    # nothing reaches recall 0.8.
    assert voc_eval.average_precision_voc07(precision, recall) == (
        pytest.approx((3 * 1 + 5 * 0.75) / 11))
    # Area: recall 0 -> 1/4 at precision 1, 1/4 -> 3/4 at 3/4 (the best
    # precision from there on), nothing beyond 3/4.
    assert voc_eval.average_precision_voc12(precision, recall) == (
        pytest.approx(0.25 * 1 + 0.5 * 0.75))

  def test_recall_of_exactly_three_tenths_misses_the_point_0_3(self):
    # 3 of 10 objects found by 3 detections: precision 1 up to recall 0.3,
    # but np.arange's third threshold is 0.30000000000000004: 3 points.
    precision, recall = self._curve([0.9, 0.8, 0.7], [1, 1, 1], 10)
    assert voc_eval.average_precision_voc07(precision, recall) == (
        pytest.approx(3 / 11))

  def test_ties_keep_their_input_order(self):
    # Equal scores: the false positive given first ranks first.
    precision, recall = self._curve([0.5, 0.5], [0, 1], 2)
    np.testing.assert_allclose(precision, [0, 1 / 2])
    np.testing.assert_allclose(recall, [0, 1 / 2])
    assert voc_eval.average_precision_voc07(precision, recall) == (
        pytest.approx(6 * 0.5 / 11))
    precision, recall = self._curve([0.5, 0.5], [1, 0], 2)
    assert voc_eval.average_precision_voc07(precision, recall) == (
        pytest.approx(6 / 11))

  def test_pr_curve_counts_at_score_thresholds(self):
    true_positive = np.array(self.TRUE_POSITIVE, bool)
    curve = voc_eval.pr_curve_counts(self.SCORES, true_positive,
                                     ~true_positive, 4, num_thresholds=11)
    # Thresholds 0, 0.1, ..., 1: scores >= 0.5 at 0 ... 0.5 (TP, FP, TP, TP,
    # FP), >= 0.6 (the first four), 0.7, 0.8, 0.9, none at 1.
    np.testing.assert_array_equal(curve['true_positives'],
                                  [3, 3, 3, 3, 3, 3, 3, 2, 1, 1, 0])
    np.testing.assert_array_equal(curve['false_positives'],
                                  [2, 2, 2, 2, 2, 2, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(curve['false_negatives'],
                                  [1, 1, 1, 1, 1, 1, 1, 2, 3, 3, 4])
    np.testing.assert_array_equal(curve['true_negatives'], np.zeros(11))
    np.testing.assert_allclose(curve['precision'][[0, 6, 7, 8, 9, 10]],
                               [3 / 5, 3 / 4, 2 / 3, 1 / 2, 1, 0])
    np.testing.assert_allclose(curve['recall'][[0, 6, 7, 8, 10]],
                               [3 / 4, 3 / 4, 1 / 2, 1 / 4, 0])

  def test_perfect_and_empty(self):
    precision, recall = self._curve([0.9, 0.8], [1, 1], 2)
    assert voc_eval.average_precision_voc07(precision, recall) == 1.
    assert voc_eval.average_precision_voc12(precision, recall) == 1.
    assert voc_eval.average_precision_voc07([], []) == 0.
    assert voc_eval.average_precision_voc12([], []) == 0.


def _evaluator():
  """Two images: the ranked TP, FP, TP, TP, FP cats of TestAveragePrecision
  spread over them, a dog with only a difficult object, a bird without
  detections."""
  evaluator = voc_eval.VocEvaluator(LABELS)
  cats = [_box(0, 0, 10, 10), _box(20, 0, 30, 10), _box(40, 0, 50, 10)]
  evaluator.add_image(
      'a', gt_labels=[1, 1, 1, 2, 3],
      gt_boxes=cats + [_box(0, 50, 10, 60), _box(0, 80, 10, 90)],
      gt_difficult=[0, 0, 0, 1, 0],
      det_labels=[1, 1, 1, 1, 2, 2],
      det_scores=[0.6, 0.9, 0.5, 0.7, 0.4, 0.3],
      det_boxes=cats[1:] + [_box(70, 70, 80, 80), cats[0],
                            _box(0, 50, 10, 60), _box(99, 99, 100, 100)])
  evaluator.add_image(
      'b', gt_labels=[1], gt_boxes=[_box(0, 0, 10, 10)], gt_difficult=[0],
      det_labels=[1], det_scores=[0.8], det_boxes=[_box(60, 60, 70, 70)])
  return evaluator


class TestVocEvaluator:

  def test_results(self):
    results = _evaluator().results()
    cat, dog, bird = (results['classes'][name]
                      for name in ('cat', 'dog', 'bird'))
    assert cat == {'label': 1, 'num_gt': 4, 'num_difficult': 0,
                   'num_detections': 5,
                   'AP_VOC07': pytest.approx((3 * 1 + 5 * 0.75) / 11),
                   'AP_VOC12': pytest.approx(0.625)}
    # Only a difficult dog: no AP, and its detections are no penalty.
    assert dog == {'label': 2, 'num_gt': 0, 'num_difficult': 1,
                   'num_detections': 2, 'AP_VOC07': None, 'AP_VOC12': None}
    assert bird['num_gt'] == 1 and bird['num_detections'] == 0
    assert bird['AP_VOC07'] == 0. and bird['AP_VOC12'] == 0.
    # mAP: cat and bird, the classes with non-difficult objects.
    assert results['num_map_classes'] == 2
    assert results['mAP_VOC07'] == pytest.approx(
        (3 * 1 + 5 * 0.75) / 11 / 2)
    assert results['mAP_VOC12'] == pytest.approx(0.625 / 2)
    assert results['num_images'] == 2 and results['iou_threshold'] == 0.5

  def test_no_objects_at_all(self):
    evaluator = voc_eval.VocEvaluator(LABELS)
    evaluator.add_image('a', [], [], [], [1], [0.5], [_box(0, 0, 1, 1)])
    results = evaluator.results()
    assert results['mAP_VOC07'] is None and results['num_map_classes'] == 0
    assert 'n/a' in voc_eval.format_table(results)

  def test_unknown_label(self):
    with pytest.raises(ValueError, match=r'image a: labels \[7\]'):
      voc_eval.VocEvaluator(LABELS).add_image('a', [7], [_box(0, 0, 1, 1)],
                                              [0], [], [], [])

  def test_comp4_files(self, tmp_path):
    paths = voc_eval.write_comp4_detections(str(tmp_path), 'test',
                                            _evaluator())
    assert [p.rsplit('/', 1)[1] for p in paths] == [
        'comp4_det_test_cat.txt', 'comp4_det_test_dog.txt',
        'comp4_det_test_bird.txt']
    with open(paths[0]) as cat_file:
      lines = cat_file.read().splitlines()
    # Per image by decreasing score; xmin ymin xmax ymax.
    assert lines == ['a 0.900000 40.00 0.00 50.00 10.00',
                     'a 0.700000 0.00 0.00 10.00 10.00',
                     'a 0.600000 20.00 0.00 30.00 10.00',
                     'a 0.500000 70.00 70.00 80.00 80.00',
                     'b 0.800000 60.00 60.00 70.00 70.00']
    with open(paths[2]) as bird_file:
      assert bird_file.read() == ''

  def test_table(self):
    table = voc_eval.format_table(_evaluator().results()).splitlines()
    assert table[0].split() == ['class', 'AP_VOC07', 'AP_VOC12', '#GT']
    assert table[1].split() == ['cat', '0.6136', '0.6250', '4']
    assert table[2].split() == ['dog', 'n/a', 'n/a', '0']
    assert table[-1].split()[:3] == ['mAP', '0.3068', '0.3125']


def _devkit_ap(images, class_label, use_07_metric):
  """The devkit's AP of one class, written from its rule independently of
  utils/voc_eval: all detections ranked at once, (xmin, ymin, xmax, ymax)
  inclusive pixel boxes with +1 on every size, cumulative counts over every
  detection (ignored ones add nothing), 11 points at np.arange(0, 1.1, 0.1).

  images: list of dicts with gt_labels, gt_boxes, gt_difficult, det_labels,
  det_scores, det_boxes (boxes (ymin, xmin, ymax, xmax), as the module).
  """
  ground_truth, image_of, scores, boxes = [], [], [], []
  num_positives = 0
  for index, image in enumerate(images):
    is_gt = np.asarray(image['gt_labels']) == class_label
    gt_xyxy = np.asarray(image['gt_boxes'], float).reshape(-1, 4)[is_gt][
        :, [1, 0, 3, 2]]
    difficult = np.asarray(image['gt_difficult'], bool)[is_gt]
    ground_truth.append([gt_xyxy, difficult, np.zeros(len(difficult), bool)])
    num_positives += int((~difficult).sum())
    is_det = np.asarray(image['det_labels']) == class_label
    for score, box in zip(np.asarray(image['det_scores'])[is_det],
                          np.asarray(image['det_boxes'], float)[is_det]):
      image_of.append(index)
      scores.append(score)
      boxes.append(box[[1, 0, 3, 2]])
  order = np.argsort(-np.asarray(scores))
  tp = np.zeros(len(order))
  fp = np.zeros(len(order))
  for rank, d in enumerate(order):
    gt_xyxy, difficult, detected = ground_truth[image_of[d]]
    bb = boxes[d]
    best = -np.inf
    if len(gt_xyxy):
      iw = np.maximum(np.minimum(gt_xyxy[:, 2], bb[2]) -
                      np.maximum(gt_xyxy[:, 0], bb[0]) + 1., 0.)
      ih = np.maximum(np.minimum(gt_xyxy[:, 3], bb[3]) -
                      np.maximum(gt_xyxy[:, 1], bb[1]) + 1., 0.)
      inter = iw * ih
      union = ((bb[2] - bb[0] + 1.) * (bb[3] - bb[1] + 1.) +
               (gt_xyxy[:, 2] - gt_xyxy[:, 0] + 1.) *
               (gt_xyxy[:, 3] - gt_xyxy[:, 1] + 1.) - inter)
      overlaps = inter / union
      best, j = overlaps.max(), overlaps.argmax()
    if best > 0.5:
      if not difficult[j]:
        if not detected[j]:
          tp[rank] = 1.
          detected[j] = True
        else:
          fp[rank] = 1.
    else:
      fp[rank] = 1.
  fp, tp = np.cumsum(fp), np.cumsum(tp)
  rec = tp / float(num_positives)
  prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
  if use_07_metric:
    ap = 0.
    for t in np.arange(0., 1.1, 0.1):
      p = 0. if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
      ap += p / 11.
    return ap
  mrec = np.concatenate(([0.], rec, [1.]))
  mpre = np.concatenate(([0.], prec, [0.]))
  for i in range(mpre.size - 1, 0, -1):
    mpre[i - 1] = max(mpre[i - 1], mpre[i])
  i = np.where(mrec[1:] != mrec[:-1])[0]
  return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def _random_images(rng, min_size, max_size, num_images=6):
  """Integer ground-truth boxes of min_size..max_size pixels (as in VOC
  XML), some difficult; detections: jittered copies of them (sub-pixel
  offsets of up to a third of the size) and some at random, all with
  distinct random scores."""
  images = []
  for _ in range(num_images):
    num_gt = rng.integers(1, 6)
    sizes = rng.integers(min_size, max_size + 1, size=(num_gt, 2))
    corners = rng.integers(1, 200, size=(num_gt, 2))
    gt_boxes = np.concatenate([corners, corners + sizes - 1], axis=1)
    gt_labels = rng.integers(1, 4, size=num_gt)
    copies = rng.integers(0, num_gt, size=rng.integers(0, 3 * num_gt))
    jitter = rng.uniform(-1, 1, size=(len(copies), 4)) * np.tile(
        sizes[copies], 2) / 3.
    det_boxes = gt_boxes[copies] + jitter
    det_labels = np.where(rng.random(len(copies)) < 0.85, gt_labels[copies],
                          rng.integers(1, 4, size=len(copies)))
    num_random = rng.integers(0, 3)
    random_corners = rng.uniform(1, 200, size=(num_random, 2))
    random_boxes = np.concatenate(
        [random_corners, random_corners + rng.uniform(
            min_size, max_size, size=(num_random, 2))], axis=1)
    det_boxes = np.concatenate([det_boxes, random_boxes]).reshape(-1, 4)
    det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2])
    images.append({
        'gt_labels': gt_labels, 'gt_boxes': gt_boxes,
        'gt_difficult': rng.random(num_gt) < 0.2,
        'det_labels': np.concatenate(
            [det_labels, rng.integers(1, 4, size=num_random)]),
        'det_scores': rng.random(len(det_boxes)),
        'det_boxes': det_boxes})
  return images


@pytest.mark.parametrize('min_size,max_size', [(4, 40), (8, 120)])
def test_ap_equals_the_devkit_on_random_cases(min_size, max_size):
  rng = np.random.default_rng(min_size)
  compared = 0
  for _ in range(40):
    images = _random_images(rng, min_size, max_size)
    evaluator = voc_eval.VocEvaluator(LABELS)
    for index, image in enumerate(images):
      evaluator.add_image('img_%d' % index, **image)
    results = evaluator.results()
    for label, name in sorted(LABELS.items())[1:]:
      result = results['classes'][name]
      if not result['num_gt']:
        assert result['AP_VOC07'] is None
        continue
      for kind, use_07_metric in (('VOC07', True), ('VOC12', False)):
        assert abs(result['AP_' + kind] -
                   _devkit_ap(images, label, use_07_metric)) < 1e-9
      compared += 1
  assert compared > 80


def test_devkit_iou_counts_inclusive_pixels():
  # 1 x 1 boxes on the same pixel: 1 pixel each, IoU 1 (0 by area).
  assert voc_eval.devkit_iou([5, 5, 5, 5], [5, 5, 5, 5]) == 1.
  # Rows 0..3 x columns 0..3 (16 pixels) and rows 2..5 (4 x 4): 8 shared.
  assert voc_eval.devkit_iou([0, 0, 3, 3], [2, 0, 5, 3]) == 8 / 24
  # Adjacent pixel columns share none.
  assert voc_eval.devkit_iou([0, 0, 3, 3], [0, 4, 3, 7]) == 0.
