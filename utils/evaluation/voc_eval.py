"""Pascal VOC detection metrics in NumPy: matching, precision/recall and AP.

The rules are the VOC devkit's, in the form of its Python port that most
detection code runs (py-faster-rcnn's `voc_eval.py`), per class:
  * Boxes are inclusive pixel boxes: a box from xmin to xmax covers
    xmax - xmin + 1 pixels, and `devkit_iou` adds that 1 to every width and
    height (intersection included).  This is the devkit's own formula, on
    purpose not the continuous-coordinate IoU of `utils.common.box_ops` that
    training uses: on boxes a few pixels wide the two differ a lot, and
    published VOC numbers use this one.  Coordinates are the annotation
    XML's values (`datasets.voc_common.denormalize_boxes` gives them back).
  * All detections of the class over the evaluated images are ranked by
    decreasing score.  Ties keep their input order (a stable sort, like
    MATLAB's `sort` in VOCevaldet.m; the Python port's quicksort leaves
    them in an unspecified order): images in the order they were added,
    then the detections of an image in the order given.
  * Going down that ranking, a detection is compared with the ground-truth
    objects of its class in its image, difficult ones included, and takes
    the one it overlaps most.  If that IoU is above `iou_threshold`
    (strictly, the Python port's `ovmax > ovthresh`):
      - a difficult object: the detection is ignored (neither a true nor a
        false positive);
      - a non-difficult object not matched yet: a true positive, and the
        object is now matched;
      - an object already matched: a false positive (a duplicate).
    Otherwise it is a false positive.  Matching only interacts within one
    image, so it is done image by image as they are added.
  * recall = TP / (non-difficult objects), precision = TP / (TP + FP), after
    each ranked detection.
  * AP VOC07: the 11-point interpolated AP of VOC2007, the mean over the
    thresholds t of `np.arange(0., 1.1, 0.1)` of the highest precision at a
    recall >= t (0 if none).  Those thresholds are binary fractions, so
    0.3, 0.6 and 0.7 are a hair above their decimals: a recall of exactly
    3/10 does not reach the point 0.3.
  * AP VOC12: the area under the precision/recall curve made monotonically
    decreasing, used from VOC2010 on.
The MATLAB VOCevaldet.m differs from its Python port only on exact ties:
it accepts an IoU equal to the threshold (`>=`) and its 11 thresholds
`0:0.1:1` are the nearest doubles of the decimals.

mAP is the mean of the class APs over the classes with at least one
non-difficult ground-truth object.  A class without any has no AP (None:
nothing to recall) and is left out of the mean; a class with objects but no
detection has AP 0.

NumPy only: this module imports neither TensorFlow nor the project.
"""
import os

import numpy as np

AP_KINDS = ('VOC07', 'VOC12')
COMP4_TEMPLATE = 'comp4_det_%s_%s.txt'


def devkit_iou(boxes_a, boxes_b):
  """IoU of inclusive pixel boxes, the devkit's formula (module docstring).

  Args:
    boxes_a, boxes_b: [..., 4] (ymin, xmin, ymax, xmax) in pixels,
      broadcast against each other.

  Returns:
    float64 [...] IoUs; 0 for boxes that share no pixel.
  """
  boxes_a = np.asarray(boxes_a, np.float64)
  boxes_b = np.asarray(boxes_b, np.float64)

  def pixels(lower, upper):
    return np.maximum(upper - lower + 1., 0.)

  intersection = (
      pixels(np.maximum(boxes_a[..., 0], boxes_b[..., 0]),
             np.minimum(boxes_a[..., 2], boxes_b[..., 2])) *
      pixels(np.maximum(boxes_a[..., 1], boxes_b[..., 1]),
             np.minimum(boxes_a[..., 3], boxes_b[..., 3])))
  area_a = (pixels(boxes_a[..., 0], boxes_a[..., 2]) *
            pixels(boxes_a[..., 1], boxes_a[..., 3]))
  area_b = (pixels(boxes_b[..., 0], boxes_b[..., 2]) *
            pixels(boxes_b[..., 1], boxes_b[..., 3]))
  union = area_a + area_b - intersection
  return np.divide(intersection, union, out=np.zeros_like(union),
                   where=union > 0.)


def match_detections(det_boxes, gt_boxes, gt_difficult, iou_threshold=0.5):
  """True and false positives of one image's detections of one class.

  Args:
    det_boxes: [D, 4] detections, ranked (decreasing score, see the module
      docstring for ties).
    gt_boxes: [G, 4] ground-truth objects of the class in the image.
      Boxes (ymin, xmin, ymax, xmax) in inclusive pixels.
    gt_difficult: [G] bool (or 0/1), the objects flagged difficult.
    iou_threshold: IoU a detection must exceed to match an object.

  Returns:
    (true_positive, false_positive): [D] bool each; a detection that is
    neither matched a difficult object and is ignored.
  """
  det_boxes = np.asarray(det_boxes, np.float64).reshape(-1, 4)
  gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
  gt_difficult = np.asarray(gt_difficult, bool).reshape(-1)
  true_positive = np.zeros(len(det_boxes), bool)
  false_positive = np.ones(len(det_boxes), bool)
  if not len(gt_boxes):
    return true_positive, false_positive
  overlaps = devkit_iou(det_boxes[:, np.newaxis, :],
                        gt_boxes[np.newaxis, :, :])
  matched = np.zeros(len(gt_boxes), bool)
  for index, best in enumerate(np.argmax(overlaps, axis=1)):
    if overlaps[index, best] <= iou_threshold:
      continue
    if gt_difficult[best]:
      false_positive[index] = False
    elif not matched[best]:
      matched[best] = True
      true_positive[index] = True
      false_positive[index] = False
  return true_positive, false_positive


def precision_recall(scores, true_positive, false_positive, num_positives):
  """Precision and recall after each detection ranked by decreasing score.

  Args:
    scores: [D] scores.
    true_positive, false_positive: [D] bool, from `match_detections`.
    num_positives: non-difficult ground-truth objects (> 0).

  Returns:
    (precision, recall): [D'] float64 each, D' the detections that are not
    ignored, in ranking order (stable: ties keep their input order).
  """
  order = np.argsort(-np.asarray(scores, np.float64), kind='stable')
  true_positive = np.asarray(true_positive, bool)[order]
  false_positive = np.asarray(false_positive, bool)[order]
  counted = true_positive | false_positive
  true_positives = np.cumsum(true_positive[counted])
  false_positives = np.cumsum(false_positive[counted])
  return (true_positives / (true_positives + false_positives),
          true_positives / float(num_positives))


def pr_curve_counts(scores, true_positive, false_positive, num_positives,
                    num_thresholds=101):
  """Precision and recall of the detections scoring at least each threshold.

  The thresholds are i / (num_thresholds - 1), i = 0 ... num_thresholds - 1,
  the layout of TensorBoard's PR curves (`tensorboard.plugins.pr_curve`);
  precision and recall use its formulas (a count of 0 gives 0), detections
  are those of `match_detections` (ignored ones count nowhere).

  Args:
    scores: [D] scores.
    true_positive, false_positive: [D] bool, from `match_detections`.
    num_positives: non-difficult ground-truth objects.
    num_thresholds: >= 2.

  Returns:
    {'true_positives', 'false_positives', 'true_negatives' (zeros: every
    place without a detection is one), 'false_negatives', 'precision',
    'recall'}: float64 [num_thresholds] each.
  """
  scores = np.asarray(scores, np.float64)
  thresholds = np.arange(num_thresholds) / float(num_thresholds - 1)
  kept = scores[np.newaxis, :] >= thresholds[:, np.newaxis]
  true_positives = np.sum(kept & np.asarray(true_positive, bool), axis=1,
                          dtype=np.float64)
  false_positives = np.sum(kept & np.asarray(false_positive, bool), axis=1,
                           dtype=np.float64)
  false_negatives = num_positives - true_positives
  tiny = 1e-7  # TensorBoard's minimum count.
  return {'true_positives': true_positives,
          'false_positives': false_positives,
          'true_negatives': np.zeros(num_thresholds),
          'false_negatives': false_negatives,
          'precision': true_positives / np.maximum(
              tiny, true_positives + false_positives),
          'recall': true_positives / np.maximum(
              tiny, true_positives + false_negatives)}


def average_precision_voc07(precision, recall):
  """VOC2007's 11-point interpolated AP (see the module docstring)."""
  precision = np.asarray(precision, np.float64)
  recall = np.asarray(recall, np.float64)
  points = [precision[recall >= threshold].max(initial=0.)
            for threshold in np.arange(0., 1.1, 0.1)]
  return float(np.mean(points))


def average_precision_voc12(precision, recall):
  """VOC2010+'s AP: area under the monotone precision/recall curve."""
  recall = np.concatenate([[0.], recall, [1.]])
  precision = np.concatenate([[0.], precision, [0.]])
  # Precision at recall r becomes the best precision at any recall >= r.
  precision = np.maximum.accumulate(precision[::-1])[::-1]
  steps = np.nonzero(recall[1:] != recall[:-1])[0]
  return float(np.sum((recall[steps + 1] - recall[steps]) *
                      precision[steps + 1]))


_AP_FUNCTIONS = {'VOC07': average_precision_voc07,
                 'VOC12': average_precision_voc12}


class VocEvaluator(object):
  """Accumulates images and computes the VOC APs (see the module docstring).

  Usage: `add_image` for every image, then `results()`; `detections` keeps
  every detection for `write_comp4_detections`.
  """

  def __init__(self, labels_to_names, iou_threshold=0.5):
    """Args:
      labels_to_names: {label: name}; label 0 (background) is not evaluated.
      iou_threshold: IoU a detection must exceed to match an object.
    """
    self.labels_to_names = {label: name
                            for label, name in labels_to_names.items()
                            if label != 0}
    self.iou_threshold = iou_threshold
    self.num_images = 0
    # Per label: scores, true and false positives (lists of per-image
    # arrays), non-difficult and difficult object counts.
    self._scores = {label: [] for label in self.labels_to_names}
    self._true_positives = {label: [] for label in self.labels_to_names}
    self._false_positives = {label: [] for label in self.labels_to_names}
    self._num_gt = dict.fromkeys(self.labels_to_names, 0)
    self._num_difficult = dict.fromkeys(self.labels_to_names, 0)
    # Per label: (image_id, score, box) of every detection.
    self.detections = {label: [] for label in self.labels_to_names}

  def add_image(self, image_id, gt_labels, gt_boxes, gt_difficult,
                det_labels, det_scores, det_boxes):
    """Adds one image's ground truth and detections.

    Args:
      image_id: the image's name in the comp4 files.
      gt_labels: [G] labels of the ground-truth objects.
      gt_boxes: [G, 4] their boxes, in pixels.
      gt_difficult: [G] their difficult flags.
      det_labels: [D] labels of the detections.
      det_scores: [D] their scores.
      det_boxes: [D, 4] their boxes, in pixels.

    Raises:
      ValueError: for a label the evaluator does not know.
    """
    gt_labels = np.asarray(gt_labels).reshape(-1)
    gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    gt_difficult = np.asarray(gt_difficult, bool).reshape(-1)
    det_labels = np.asarray(det_labels).reshape(-1)
    det_scores = np.asarray(det_scores, np.float64).reshape(-1)
    det_boxes = np.asarray(det_boxes, np.float64).reshape(-1, 4)
    unknown = (set(gt_labels.tolist()) | set(det_labels.tolist())) - set(
        self.labels_to_names)
    if unknown:
      raise ValueError('image %s: labels %s are not among the evaluated '
                       'classes %s' % (image_id, sorted(unknown),
                                       sorted(self.labels_to_names)))
    self.num_images += 1
    for label in self.labels_to_names:
      is_gt = gt_labels == label
      difficult = gt_difficult[is_gt]
      self._num_gt[label] += int(np.sum(~difficult))
      self._num_difficult[label] += int(np.sum(difficult))
      is_det = det_labels == label
      if not np.any(is_det):
        continue
      order = np.argsort(-det_scores[is_det], kind='stable')
      scores = det_scores[is_det][order]
      boxes = det_boxes[is_det][order]
      true_positive, false_positive = match_detections(
          boxes, gt_boxes[is_gt], difficult, self.iou_threshold)
      self._scores[label].append(scores)
      self._true_positives[label].append(true_positive)
      self._false_positives[label].append(false_positive)
      self.detections[label].extend(
          (image_id, score, box) for score, box in zip(scores, boxes))

  def matches(self, label):
    """(scores, true_positive, false_positive) of every detection of class
    `label`, images in the order added, each image's by decreasing score."""
    return (_concatenate(self._scores[label], np.float64),
            _concatenate(self._true_positives[label], bool),
            _concatenate(self._false_positives[label], bool))

  def class_result(self, label):
    """{'AP_VOC07', 'AP_VOC12', 'num_gt', 'num_difficult', 'num_detections'}
    of one class; the APs are None without non-difficult objects."""
    num_gt = self._num_gt[label]
    result = {'num_gt': num_gt, 'num_difficult': self._num_difficult[label],
              'num_detections': len(self.detections[label])}
    if not num_gt:
      result.update(('AP_' + kind, None) for kind in AP_KINDS)
      return result
    precision, recall = precision_recall(*self.matches(label), num_gt)
    result.update(('AP_' + kind, _AP_FUNCTIONS[kind](precision, recall))
                  for kind in AP_KINDS)
    return result

  def pr_curve(self, label, num_thresholds=101):
    """`pr_curve_counts` of class `label` (None without non-difficult
    objects)."""
    if not self._num_gt[label]:
      return None
    return pr_curve_counts(*self.matches(label), self._num_gt[label],
                           num_thresholds)

  def results(self):
    """The APs of every class and the mAPs.

    Returns:
      {'classes': {name: class_result (plus 'label')},
       'mAP_VOC07': float or None, 'mAP_VOC12': float or None,
       'num_images': int, 'num_map_classes': classes in the mAP,
       'iou_threshold': float}.
      A mAP is None when no class has a non-difficult object.
    """
    classes = {}
    for label, name in sorted(self.labels_to_names.items()):
      classes[name] = dict(label=label, **self.class_result(label))
    summary = {'classes': classes, 'num_images': self.num_images,
               'iou_threshold': self.iou_threshold}
    evaluated = [result for result in classes.values()
                 if result['num_gt'] > 0]
    summary['num_map_classes'] = len(evaluated)
    for kind in AP_KINDS:
      key = 'AP_' + kind
      summary['mAP_' + kind] = (
          float(np.mean([result[key] for result in evaluated]))
          if evaluated else None)
    return summary


def _concatenate(arrays, dtype):
  """The arrays end to end; an empty array of `dtype` for none."""
  return np.concatenate(arrays) if arrays else np.zeros(0, dtype)


def comp4_path(directory, split_name, class_name):
  """Path of the VOC results file of one class."""
  return os.path.join(directory, COMP4_TEMPLATE % (split_name, class_name))


def write_comp4_detections(directory, split_name, evaluator):
  """Writes the detections in the Pascal VOC results format.

  One file per class, `comp4_det_<split>_<class>.txt` (written even when
  empty), one line per detection: `<image_id> <score> <xmin> <ymin> <xmax>
  <ymax>`, the box in the pixel convention of `datasets.voc_common` (the
  values of the annotation XML: 1-based VOC pixels).

  Args:
    directory: output folder (must exist).
    split_name: the split, part of the file names.
    evaluator: a `VocEvaluator` holding the detections.

  Returns:
    The paths written.
  """
  paths = []
  for label, name in sorted(evaluator.labels_to_names.items()):
    path = comp4_path(directory, split_name, name)
    with open(path, 'w') as results_file:
      for image_id, score, (ymin, xmin, ymax, xmax) in evaluator.detections[
          label]:
        results_file.write('%s %.6f %.2f %.2f %.2f %.2f\n' % (
            image_id, score, xmin, ymin, xmax, ymax))
    paths.append(path)
  return paths


def format_table(results):
  """The results as a text table: class, AP VOC07, AP VOC12, objects."""
  def ap(value):
    return 'n/a' if value is None else '%.4f' % value
  width = max([len('class'), len('mAP')] + [len(name)
                                             for name in results['classes']])
  row = '%-*s  %8s  %8s  %6s'
  lines = [row % (width, 'class', 'AP_VOC07', 'AP_VOC12', '#GT')]
  for name, result in results['classes'].items():
    lines.append(row % (width, name, ap(result['AP_VOC07']),
                        ap(result['AP_VOC12']), result['num_gt']))
  lines.append(row % (width, 'mAP', ap(results['mAP_VOC07']),
                      ap(results['mAP_VOC12']),
                      '(%d classes)' % results['num_map_classes']))
  return '\n'.join(lines)
