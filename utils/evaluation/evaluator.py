"""Evaluates one SSD checkpoint on a converted dataset split.

The network runs in a TensorFlow graph (batches of the evaluation
preprocessing, the detector of `utils.inference.detection`); its fixed-size,
zero-padded detections are mapped back to each original image and scored in
Python, boxes compared in original image pixels, by `voc_eval` (metric
'voc') and `coco_eval` (metric 'coco').

`evaluate` returns the results (see its docstring) and, given an eval_dir,
writes there:
  * results.json, the results;
  * TensorBoard events at the checkpoint's global step: scalars
    AP_VOC07/<class>, AP_VOC12/<class>, AP_VOC07/mAP, AP_VOC12/mAP and
    COCO/<metric>; precision/recall curves PR_VOC/<class> (from the
    detections as the VOC AP matched them, one point per score threshold
    0, 0.01, ..., 1); images detections/<image>: the first images of the
    split, their ground truth (left) beside their best detections (right);
  * voc: comp4_det_<split>_<class>.txt, every detection in the Pascal VOC
    results format;
  * coco: detections.json, every detection in COCO's results format.
"""
import itertools
import json
import os
import sys
import time

from absl import logging
import cv2
import numpy as np
import tensorflow as tf
from tensorboard.plugins.pr_curve import summary as pr_curve_summary
import tqdm

from datasets import voc_common
from utils.checkpointing import checkpoints
from utils.common import drawing
from utils.evaluation import coco_eval
from utils.evaluation import voc_eval
from utils.inference import detection

_v1 = tf.compat.v1

RESULTS_FILENAME = 'results.json'
METRICS = ('voc', 'coco')
PR_CURVE_THRESHOLDS = 101
_LOG_EVERY_N_BATCHES = 10
_MAX_SUMMARY_BOXES = 10  # Detections drawn per summary image.
# White gap between the ground truth and the detections of a summary image.
_GAP_PIXELS = 8
_MIN_SUMMARY_THICKNESS = 3


def _input_batches(dataset, ssd_net, model_name, settings, batch_size,
                   max_num_batches, data_format):
  """The next batch of the split, in its stored order, as a dict of tensors:
  the network input and bbox_img, the decoded image, and the example's
  ground truth (padded with zeros; num_objects says how many are real)."""

  def prepare(example):
    image, bbox_img = detection.preprocess(
        example['image'], ssd_net, model_name, settings.resize, data_format)
    return {'image': image, 'bbox_img': bbox_img, 'shape': example['shape'],
            'raw_image': example['image'],
            'labels': example['labels'], 'bboxes': example['bboxes'],
            'difficult': example['difficult'],
            'num_objects': tf.size(example['labels']),
            'filename': example['filename']}

  batches = (dataset.read(num_readers=1, shuffle=False, num_epochs=1)
             .map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
             .padded_batch(batch_size)
             .prefetch(1))
  if max_num_batches:
    batches = batches.take(max_num_batches)
  return _v1.data.make_one_shot_iterator(batches).get_next()


def _image_id(filename, index):
  """The image's id in the comp4 files: its file name without extension."""
  return os.path.splitext(filename.decode('utf-8'))[0] or 'image_%06d' % index


def summary_image(image, gt, found, labels_to_names, min_score):
  """An image of the TensorBoard summaries: the ground truth (left) beside
  the best detections scoring at least `min_score` (right).

  Args:
    image: uint8 RGB [H, W, 3].
    gt: {'labels', 'bboxes'} of the ground truth, boxes normalised.
    found: {'classes', 'scores', 'bboxes'} of the detections, normalised.
    labels_to_names: {label: class name}.
    min_score: least score of the detections drawn.

  Returns:
    uint8 RGB [H, 2 W + gap, 3].
  """
  # The best few above the threshold: an untrained network scores
  # hundreds of anchors alike, which would bury the image.
  order = np.argsort(-found['scores'], kind='stable')[:_MAX_SUMMARY_BOXES]
  shown = order[found['scores'][order] >= min_score]
  # At least 3 px: TensorBoard shows images scaled down in its cards.
  thickness = max(_MIN_SUMMARY_THICKNESS,
                  drawing.default_thickness(*image.shape[:2]))
  truth = drawing.draw_detections(image, gt['bboxes'], gt['labels'],
                                  class_names=labels_to_names,
                                  thickness=thickness)
  detected = drawing.draw_detections(
      image, found['bboxes'][shown], found['classes'][shown],
      found['scores'][shown], class_names=labels_to_names,
      thickness=thickness)
  gap = np.full([image.shape[0], _GAP_PIXELS, 3], 255, np.uint8)
  return np.concatenate([truth, gap, detected], axis=1)


class _Collector(object):
  """Feeds each evaluated image to the metrics' evaluators and keeps the
  first images for the TensorBoard image summaries."""

  def __init__(self, labels_to_names, metrics, matching_threshold,
               num_summary_images, image_summary_min_score,
               coco_source_ids=(None, None)):
    self.labels_to_names = labels_to_names
    self.voc = (voc_eval.VocEvaluator(labels_to_names, matching_threshold)
                if 'voc' in metrics else None)
    self.coco = (coco_eval.CocoEvaluator(labels_to_names, *coco_source_ids)
                 if 'coco' in metrics else None)
    self.num_images = 0
    self.num_summary_images = num_summary_images
    self.image_summary_min_score = image_summary_min_score
    self.summary_images = []  # (image id, drawn uint8 RGB image).

  @property
  def wants_images(self):
    return len(self.summary_images) < self.num_summary_images

  def add_batch(self, batch, detections):
    """Adds a batch's images, in original pixels."""
    for i, shape in enumerate(batch['shape']):
      height, width = shape[:2]
      num_objects = batch['num_objects'][i]
      num_detections = detections['num_detections'][i]
      gt = {'labels': batch['labels'][i][:num_objects],
            'bboxes': batch['bboxes'][i][:num_objects],
            'difficult': batch['difficult'][i][:num_objects]}
      found = {name: detections[name][i][:num_detections]
               for name in ('classes', 'scores', 'bboxes')}
      image_id = _image_id(batch['filename'][i], self.num_images)
      gt_pixels = voc_common.denormalize_boxes(gt['bboxes'], height, width)
      det_pixels = voc_common.denormalize_boxes(found['bboxes'], height,
                                                width)
      if self.voc:
        self.voc.add_image(image_id, gt['labels'], gt_pixels,
                           gt['difficult'], found['classes'], found['scores'],
                           det_pixels)
      if self.coco:
        self.coco.add_image(batch['filename'][i].decode('utf-8'), height,
                            width, gt['labels'], gt_pixels, gt['difficult'],
                            found['classes'], found['scores'], det_pixels)
      if self.wants_images:
        self.summary_images.append((image_id, summary_image(
            batch['raw_image'][i][:height, :width], gt, found,
            self.labels_to_names, self.image_summary_min_score)))
      self.num_images += 1


def coco_source_ids(dataset, labels_to_names):
  """`coco_eval.read_source_ids` of the COCO JSON the split was converted
  from (its metadata's annotations_file), or (None, None)."""
  for metadata in dataset.metadata:
    path = metadata.get('annotations_file')
    if path and os.path.exists(path):
      try:
        return coco_eval.read_source_ids(path, labels_to_names)
      except ValueError as error:
        logging.warning('%s; detections.json numbers images and classes '
                        'itself.', error)
  return None, None


def progress_bar(total, enabled):
  """A tqdm bar over `total` images on stderr, only on a terminal."""
  on_terminal = sys.stdout.isatty() and sys.stderr.isatty()
  return tqdm.tqdm(total=total, unit='img', disable=not (enabled and
                                                         on_terminal),
                   file=sys.stderr, desc='Evaluating')


def _global_step(checkpoint_path):
  """The step in the checkpoint's name, else its global_step variable (a
  checkpoint named without a step may hold one), else None."""
  step = checkpoints.checkpoint_step(checkpoint_path)
  if step is not None:
    return step
  reader = tf.train.load_checkpoint(checkpoint_path)
  if reader.has_tensor('global_step'):
    return int(reader.get_tensor('global_step'))
  return None


def evaluate(checkpoint_path, dataset, eval_dir=None,
             model_name='ssd_300_vgg', num_classes=None,
             settings=detection.DetectionSettings(), batch_size=8,
             matching_threshold=0.5, moving_average_decay=None,
             max_num_batches=None, data_format='NHWC', metrics=('voc',),
             num_summary_images=3, image_summary_min_score=0.2,
             progress=False):
  """Evaluates one checkpoint on a dataset split.

  Args:
    checkpoint_path: prefix, one of its files, or a directory (latest).
    dataset: a `datasets.dataset_utils.DetectionDataset`.
    eval_dir: if set, where the outputs are written (see the module
      docstring); created.
    model_name: network name.
    num_classes: classes including background; default the dataset's.
      Must match the checkpoint.
    settings: `utils.inference.detection.DetectionSettings` (thresholds,
      resize).
    batch_size: images per batch.
    matching_threshold: VOC: IoU a detection must exceed to match an object.
    moving_average_decay: if set, evaluate the moving averages of the
      weights.
    max_num_batches: evaluate only the first batches; None for all.
    data_format: 'NHWC' or 'NCHW'.
    metrics: some of METRICS.
    num_summary_images: images drawn into the TensorBoard summaries.
    image_summary_min_score: least score of the detections drawn there.
    progress: show a progress bar (on a terminal only).

  Returns:
    The dict written to results.json: with 'voc', those of
    `voc_eval.VocEvaluator.results` (per-class 'classes': {name: {label,
    AP_VOC07, AP_VOC12, num_gt, num_difficult, num_detections}}, mAP_VOC07,
    mAP_VOC12, num_map_classes, iou_threshold; an AP is None for a class
    without non-difficult objects); with 'coco', 'coco': {AP, AP50, AP75,
    AP_small, AP_medium, AP_large} (None: no object in that range); and
    always metrics, num_images, checkpoint_path, global_step (None if
    unknown), dataset {name, split, num_samples}, settings and
    moving_average_decay.

  Raises:
    CheckpointError: missing checkpoint, or one that does not fit.
  """
  num_classes = num_classes or dataset.num_classes
  num_downscaled = sum(metadata.get('num_downscaled', 0)
                       for metadata in dataset.metadata)
  if num_downscaled:
    logging.warning(
        '%d images of the split were stored downscaled (--max_image_side): '
        'their boxes are scored in the stored pixels, so their APs are not '
        'exactly the devkit\'s on the original images.', num_downscaled)
  checkpoint_path, ssd_net = detection.load_network(
      checkpoint_path, model_name, num_classes,
      'the dataset (%s, split %s)' % (dataset.name, dataset.split_name)
      if num_classes == dataset.num_classes else '--num_classes')
  labels_to_names = {label: dataset.labels_to_names.get(label,
                                                        'class_%d' % label)
                     for label in range(num_classes)}
  collector = _Collector(
      labels_to_names, metrics, matching_threshold, num_summary_images,
      image_summary_min_score,
      coco_source_ids(dataset, labels_to_names) if 'coco' in metrics
      else (None, None))
  num_batches = -(-dataset.num_samples // batch_size)
  if max_num_batches:
    num_batches = min(num_batches, max_num_batches)
  start = time.time()
  with tf.Graph().as_default():
    batch = _input_batches(dataset, ssd_net, model_name, settings,
                           batch_size, max_num_batches, data_format)
    detections = detection.detect(ssd_net, batch['image'], batch['bbox_img'],
                                  settings, data_format)
    # What Python needs of a batch; the decoded images only while drawing.
    ground_truth = {name: batch[name] for name in (
        'shape', 'labels', 'bboxes', 'difficult', 'num_objects', 'filename')}
    with_images = dict(ground_truth, raw_image=batch['raw_image'])
    with _v1.Session() as session:
      detection.restore_detector(session, checkpoint_path,
                                 moving_average_decay, model_name)
      with progress_bar(min(dataset.num_samples, num_batches * batch_size),
                        progress) as bar:
        for batch_number in itertools.count(1):
          try:
            batch_values, detection_values = session.run(
                [with_images if collector.wants_images else ground_truth,
                 detections])
          except tf.errors.OutOfRangeError:
            break
          collector.add_batch(batch_values, detection_values)
          bar.update(len(batch_values['shape']))
          if bar.disable and batch_number % _LOG_EVERY_N_BATCHES == 0:
            logging.info('Batch %d of %d, %.1f s.', batch_number,
                         num_batches, time.time() - start)
  logging.info('Evaluated %d images in %.1f s.', collector.num_images,
               time.time() - start)

  results = collector.voc.results() if collector.voc else {}
  if collector.coco:
    coco_results = collector.coco.results()
    logging.info('pycocotools:\n%s', coco_results.pop('summary'))
    results['coco'] = coco_results
  results.update(
      metrics=list(metrics), num_images=collector.num_images,
      checkpoint_path=checkpoint_path,
      global_step=_global_step(checkpoint_path),
      dataset={'name': dataset.name, 'split': dataset.split_name,
               'num_samples': dataset.num_samples},
      settings=settings._asdict(), moving_average_decay=moving_average_decay)
  if eval_dir:
    _write_outputs(eval_dir, results, collector, dataset.split_name)
  return results


def write_results(directory, results):
  """Writes `results` (see `evaluate`) to results.json in `directory`."""
  _write_json(os.path.join(directory, RESULTS_FILENAME), results)


def read_results(directory):
  """The results.json of `directory` as a dict, or None if it has none."""
  path = os.path.join(directory, RESULTS_FILENAME)
  if not os.path.exists(path):
    return None
  with open(path) as results_file:
    return json.load(results_file)


def _write_outputs(eval_dir, results, collector, split_name):
  """Writes results.json, the detection files and the TensorBoard events."""
  tf.io.gfile.makedirs(eval_dir)
  write_results(eval_dir, results)
  if collector.voc:
    voc_eval.write_comp4_detections(eval_dir, split_name, collector.voc)
  if collector.coco:
    _write_json(os.path.join(eval_dir, coco_eval.DETECTIONS_FILENAME),
                collector.coco.detections_json())
  summary = _summary(results, collector)
  # FileWriter needs graph mode; a fresh graph also works under eager.
  with tf.Graph().as_default():
    writer = _v1.summary.FileWriter(eval_dir)
    writer.add_summary(summary, results['global_step'] or 0)
    writer.close()
  logging.info('Wrote %s, the detection files and TensorBoard events to %s.',
               RESULTS_FILENAME, eval_dir)


def _write_json(path, value):
  with open(path, 'w') as json_file:
    json.dump(value, json_file, indent=2)
    json_file.write('\n')


def _summary(results, collector):
  """The TensorBoard Summary of one evaluation: AP scalars, PR curves and
  the drawn images (see the module docstring)."""
  summary = _v1.Summary()
  for tag, value in _scalars(results):
    summary.value.add(tag=tag, simple_value=value)
  if collector.voc:
    for label, name in sorted(collector.voc.labels_to_names.items()):
      curve = collector.voc.pr_curve(label, PR_CURVE_THRESHOLDS)
      if curve is None:
        continue
      summary.value.extend(pr_curve_summary.raw_data_pb(
          'PR_VOC/%s' % name, curve['true_positives'],
          curve['false_positives'], curve['true_negatives'],
          curve['false_negatives'], curve['precision'], curve['recall'],
          num_thresholds=PR_CURVE_THRESHOLDS,
          description='Detections of class %s at score >= each threshold, '
          'matched as for the VOC AP (IoU > %g).' % (
              name, results['iou_threshold'])).value)
  for image_id, image in collector.summary_images:
    encoded = cv2.imencode('.png', image[..., ::-1])[1].tobytes()
    value = summary.value.add(
        tag='detections/%s' % image_id, image=_v1.Summary.Image(
            height=image.shape[0], width=image.shape[1], colorspace=3,
            encoded_image_string=encoded))
    value.metadata.summary_description = (
        'Left: ground truth. Right: the best %d detections scoring >= %g.'
        % (_MAX_SUMMARY_BOXES, collector.image_summary_min_score))
  return summary


def _scalars(results):
  """(tag, value) of every AP in `results` that is not None."""
  values = []
  if 'classes' in results:
    for kind in voc_eval.AP_KINDS:
      values.extend(('AP_%s/%s' % (kind, name), result['AP_' + kind])
                    for name, result in results['classes'].items())
      values.append(('AP_%s/mAP' % kind, results['mAP_' + kind]))
  values.extend(('COCO/%s' % name, value)
                for name, value in results.get('coco', {}).items())
  return [(tag, value) for tag, value in values if value is not None]


def print_results(results):
  """Prints the tables of one evaluation (see `evaluate`) on stdout."""
  print('%s (step %s), %s split %s, %d images:' % (
      results['checkpoint_path'], results['global_step'],
      results['dataset']['name'], results['dataset']['split'],
      results['num_images']))
  if 'classes' in results:
    print(voc_eval.format_table(results))
  if 'coco' in results:
    print(coco_eval.format_table(results['coco']))
  sys.stdout.flush()
