"""COCO detection metrics, computed by pycocotools (the reference code).

`CocoEvaluator` collects each image's ground truth and detections, builds
the COCO ground-truth and results objects in memory and lets pycocotools'
`COCOeval` do everything else: matching at IoU 0.50:0.05:0.95, 101-point
interpolation, at most 100 detections per image, area ranges.  Nothing of
the metric is reimplemented here.

Conventions:
  * Boxes come in (ymin, xmin, ymax, xmax) pixels of the original image and
    go to COCO as [x, y, width, height] on the continuous axis (width =
    xmax - xmin, COCO's own convention; no +1 as in the VOC devkit).
  * A ground-truth object's area is its box area (the TFRecords hold no
    segmentation), so small / medium / large (< 32^2, < 96^2, larger) are
    decided on box areas.
  * Objects flagged difficult go to COCO as `iscrowd` (the COCO converter
    marks `iscrowd` objects difficult): they neither count nor penalise.
  * Image and category ids: those of the COCO JSON the data was converted
    from when it is given (`read_source_ids`), so detections.json can be
    scored against the original annotations.  Otherwise the category ids are
    the labels, and the image ids each image's file name stem when every
    stem is a distinct integer (COCO's own files: 000000397133.jpg is image
    397133), else the images' positions 1, 2, ... in the order added.

pycocotools and NumPy only: no TensorFlow, nothing of the project.
"""
import contextlib
import io
import json
import os

import numpy as np
from pycocotools import coco
from pycocotools import cocoeval

# results() keys, in the order of COCOeval.stats' first six entries.
METRIC_NAMES = ('AP', 'AP50', 'AP75', 'AP_small', 'AP_medium', 'AP_large')
DETECTIONS_FILENAME = 'detections.json'


def _xywh(boxes_yxyx):
  """[N, 4] (ymin, xmin, ymax, xmax) -> list of [x, y, width, height]."""
  boxes = np.asarray(boxes_yxyx, np.float64).reshape(-1, 4)
  return np.stack([boxes[:, 1], boxes[:, 0], boxes[:, 3] - boxes[:, 1],
                   boxes[:, 2] - boxes[:, 0]], axis=1).tolist()


def image_ids(filenames, ids_by_filename=None):
  """COCO image ids of images named `filenames` (module docstring).

  Args:
    filenames: the images' file names.
    ids_by_filename: optional {file base name: image id}, used when it has
      every image.
  """
  names = [os.path.basename(name) for name in filenames]
  if ids_by_filename and all(name in ids_by_filename for name in names):
    return [ids_by_filename[name] for name in names]
  stems = [os.path.splitext(name)[0] for name in names]
  if stems and all(stem.isdigit() for stem in stems):
    ids = [int(stem) for stem in stems]
    if len(set(ids)) == len(ids):
      return ids
  return list(range(1, len(filenames) + 1))


def read_source_ids(annotations_file, labels_to_names):
  """The ids of a COCO annotations JSON, for `CocoEvaluator`.

  Args:
    annotations_file: the `instances_*.json` the data was converted from.
    labels_to_names: {label: class name} of the converted data.

  Returns:
    ({label: category id} (None unless every class is a category of the
    file), {image file base name: image id}).

  Raises:
    ValueError: unreadable file or not COCO JSON, naming it.
  """
  try:
    with open(annotations_file, encoding='utf-8-sig') as json_file:
      content = json.load(json_file)
    category_by_name = {category['name']: category['id']
                        for category in content['categories']}
    ids_by_filename = {os.path.basename(image['file_name']): image['id']
                       for image in content['images']}
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise ValueError('cannot read the COCO ids of %s: %s' % (
        annotations_file, error)) from None
  names = {label: name for label, name in labels_to_names.items() if label}
  category_ids = ({label: category_by_name[name]
                   for label, name in names.items()}
                  if all(name in category_by_name for name in names.values())
                  else None)
  return category_ids, ids_by_filename


class CocoEvaluator(object):
  """Accumulates images; `results()` runs COCOeval on them.

  Usage: `add_image` for every image, then `results()` and
  `detections_json()` (the COCO results format).
  """

  def __init__(self, labels_to_names, category_ids=None,
               ids_by_filename=None):
    """Args:
      labels_to_names: {label: name}; label 0 (background) is not evaluated.
      category_ids: optional {label: COCO category id}; default the labels.
      ids_by_filename: optional {image file base name: COCO image id}, see
        `image_ids`.
    """
    self.ids_by_filename = ids_by_filename
    self.labels_to_names = {label: name
                            for label, name in labels_to_names.items()
                            if label != 0}
    self.category_ids = dict(category_ids or {
        label: label for label in self.labels_to_names})
    self._images = []  # (filename, height, width)
    self._ground_truth = []  # Per image: (labels, xywh boxes, crowd flags).
    self._detections = []  # Per image: (labels, scores, xywh boxes).

  @property
  def num_images(self):
    return len(self._images)

  def add_image(self, filename, height, width, gt_labels, gt_boxes,
                gt_difficult, det_labels, det_scores, det_boxes):
    """Adds one image: boxes (ymin, xmin, ymax, xmax) in its pixels."""
    self._images.append((filename, int(height), int(width)))
    self._ground_truth.append((
        np.asarray(gt_labels).reshape(-1).tolist(), _xywh(gt_boxes),
        np.asarray(gt_difficult, bool).reshape(-1).tolist()))
    self._detections.append((
        np.asarray(det_labels).reshape(-1).tolist(),
        np.asarray(det_scores, np.float64).reshape(-1).tolist(),
        _xywh(det_boxes)))

  def _image_ids(self):
    return image_ids([image[0] for image in self._images],
                     self.ids_by_filename)

  def _ground_truth_dataset(self, ids):
    """The COCO ground-truth dict of the images added."""
    annotations = []
    for image_id, (labels, boxes, crowd) in zip(ids, self._ground_truth):
      for label, box, is_crowd in zip(labels, boxes, crowd):
        annotations.append({
            'id': len(annotations) + 1, 'image_id': image_id,
            'category_id': self.category_ids[label], 'bbox': box,
            'area': box[2] * box[3], 'iscrowd': int(is_crowd)})
    return {
        'images': [{'id': image_id, 'file_name': filename, 'height': height,
                    'width': width}
                   for image_id, (filename, height, width)
                   in zip(ids, self._images)],
        'annotations': annotations,
        'categories': [{'id': self.category_ids[label], 'name': name}
                       for label, name in sorted(
                           self.labels_to_names.items())]}

  def detections_json(self):
    """Every detection in COCO's results format: a list of {image_id,
    category_id, bbox: [x, y, width, height], score}."""
    ids = self._image_ids()
    return [{'image_id': image_id, 'category_id': self.category_ids[label],
             'bbox': [round(value, 3) for value in box],
             'score': round(score, 6)}
            for image_id, (labels, scores, boxes) in zip(ids, self._detections)
            for label, score, box in zip(labels, scores, boxes)]

  def results(self):
    """The COCO metrics of the images added.

    Returns:
      {name: value for METRIC_NAMES}: mAP@[.5:.95] ('AP'), AP at IoU 0.5
      and 0.75, AP of small, medium and large objects, each over at most
      100 detections per image; None where COCOeval has nothing to average
      (no ground-truth object in that range: its -1).  Plus 'summary', the
      text table COCOeval prints.
    """
    ids = self._image_ids()
    detections = self.detections_json()
    output = io.StringIO()
    with contextlib.redirect_stdout(output):  # pycocotools prints.
      ground_truth = coco.COCO()
      ground_truth.dataset = self._ground_truth_dataset(ids)
      ground_truth.createIndex()
      evaluation = cocoeval.COCOeval(
          ground_truth, self._results_object(ground_truth, detections),
          'bbox')
      evaluation.evaluate()
      evaluation.accumulate()
      evaluation.summarize()
    stats = evaluation.stats[:len(METRIC_NAMES)]
    results = {name: None if value < 0 else float(value)
               for name, value in zip(METRIC_NAMES, stats)}
    results['summary'] = output.getvalue()
    return results

  @staticmethod
  def _results_object(ground_truth, detections):
    """pycocotools' results object of `detections`; loadRes cannot take an
    empty list, so none gives an empty one over the same images."""
    if detections:
      return ground_truth.loadRes(detections)
    empty = coco.COCO()
    empty.dataset = dict(ground_truth.dataset, annotations=[])
    empty.createIndex()
    return empty


def format_table(results):
  """The COCO metrics as text lines: name, value (n/a for None)."""
  return '\n'.join('%-10s %s' % (name, 'n/a' if results[name] is None
                                 else '%.4f' % results[name])
                   for name in METRIC_NAMES)
