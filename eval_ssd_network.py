"""Evaluates SSD checkpoints on a converted dataset split: VOC and COCO AP.

The network runs in a TensorFlow graph (batches of the evaluation
preprocessing, the detector of `utils.inference.detection`); its fixed-size,
zero-padded detections are mapped back to each original image and scored in
Python, boxes compared in original image pixels:
  * --metrics voc (default), `utils.evaluation.voc_eval`: per-class AP at IoU >
    --matching_threshold with the Pascal VOC devkit's rules (difficult
    objects neither count nor penalise; inclusive pixel boxes, +1 on widths
    and heights), both VOC2007's 11-point AP and VOC2010+'s area AP: the
    APs equal the devkit's on the same detections.  mAP is the mean over
    the classes with at least one non-difficult ground-truth object; the
    others are reported as n/a.
  * --metrics coco, `utils.evaluation.coco_eval`: pycocotools' mAP@[.5:.95], AP50,
    AP75 and the AP of small, medium and large objects.

Outputs, in --eval_dir (default: `eval/` beside the checkpoints):
  * tables on stdout: class, AP_VOC07, AP_VOC12, #GT (non-difficult); the
    COCO metrics;
  * TensorBoard, at the checkpoint's global step: scalars AP_VOC07/<class>,
    AP_VOC12/<class>, AP_VOC07/mAP, AP_VOC12/mAP and COCO/<metric>;
    precision/recall curves PR_VOC/<class> (PR Curves dashboard, from the
    detections as the VOC AP matched them, one point per score threshold
    0, 0.01, ..., 1); images detections/<image>: the first
    --num_summary_images images of the split, their ground truth (left)
    beside the best 10 detections scoring >= --image_summary_min_score
    (right);
  * results.json: see `evaluate`;
  * voc: comp4_det_<split>_<class>.txt, every detection in the Pascal VOC
    results format, `<image_id> <score> <xmin> <ymin> <xmax> <ymax>`, pixels
    as in the annotation XML, for any VOC tool to re-score;
  * coco: detections.json, every detection in COCO's results format, with
    the image and category ids of the COCO JSON the split was converted
    from when its metadata names one that exists.
results.json, the comp4 files and detections.json describe the latest
evaluation; the TensorBoard events accumulate.

With --wait_for_checkpoints, every new checkpoint that training writes in
the --checkpoint_path directory (the training directory) is evaluated in
turn (run it beside training), until --timeout seconds pass without one;
finding none at all is an error.  The best checkpoint so far by
--best_metric is copied to <train_dir>/best/ with its results.json
(--nokeep_best to not), and --early_stopping_patience N writes
<train_dir>/STOP, which stops training, after N evaluations without a
better one.

  python eval_ssd_network.py --checkpoint_path=ckpt/fine_tuning \\
      --dataset_dir=tfrecords --dataset_split_name=test --metrics=voc,coco

With no flags it evaluates the latest checkpoint of ckpt/fine_tuning on the
validation split of the built-in sample dataset.
"""
import functools
import glob
import itertools
import json
import os
import shutil
import sys
import time

from absl import app
from absl import flags
from absl import logging
import cv2
import numpy as np
import tensorflow as tf
from tensorboard.plugins.pr_curve import summary as pr_curve_summary
import tqdm

from datasets import dataset_flags
from datasets import voc_common
from utils.checkpointing import checkpoints
from utils.evaluation import coco_eval
from utils.inference import detection
from utils.common import drawing
from utils.common import paths
from utils.common import run_directory
from utils.common import platform_info
from utils.evaluation import voc_eval

_v1 = tf.compat.v1

RESULTS_FILENAME = 'results.json'
METRICS = ('voc', 'coco')
# --best_metric choices: results.json's VOC mAPs, and COCO_<metric>.
BEST_METRICS = ('mAP_VOC07', 'mAP_VOC12') + tuple(
    'COCO_' + name for name in coco_eval.METRIC_NAMES)
PR_CURVE_THRESHOLDS = 101
_LOG_EVERY_N_BATCHES = 10
# White gap between the ground truth and the detections of a summary image.
_MAX_SUMMARY_BOXES = 10  # Detections drawn per summary image.
_GAP_PIXELS = 8
_MIN_SUMMARY_THICKNESS = 3

FLAGS = flags.FLAGS


def define_flags():
  """Defines the evaluation flags (only when run as a program)."""
  detection.define_flags(paths.FINE_TUNING_DIR)
  flags.adopt_module_key_flags(detection)
  flags.DEFINE_string('eval_dir', None,
                      'Where results.json, the comp4 detection files and the '
                      'TensorBoard events go. Default: eval/ in the '
                      'checkpoint directory.')
  dataset_flags.define_dataset_flags(default_split='val')
  flags.DEFINE_integer('num_classes', None,
                       'Classes including background; must match the '
                       'checkpoint. Default: the dataset\'s.')
  flags.DEFINE_integer('batch_size', 8, 'Images per batch.', lower_bound=1)
  flags.DEFINE_integer('max_num_batches', None,
                       'Evaluate only this many batches; default: the whole '
                       'split.', lower_bound=1)
  flags.DEFINE_list('metrics', ['voc'],
                    'Comma-separated metrics: voc (Pascal VOC devkit AP), '
                    'coco (pycocotools mAP@[.5:.95], AP50, AP75, by size).')
  flags.DEFINE_float('matching_threshold', 0.5,
                     'VOC: a detection matches an object when their IoU is '
                     'above this.')
  flags.DEFINE_enum('data_format', 'NHWC', list(platform_info.DATA_FORMATS),
                    'Layout of the network activations: NHWC or NCHW (on a '
                    'CPU only with oneDNN; training\'s auto layout was not '
                    'measured for evaluation).')
  flags.DEFINE_integer('num_summary_images', 3,
                       'TensorBoard image summaries of the detections on '
                       'this many images, the first of the split.',
                       lower_bound=0)
  flags.DEFINE_float('image_summary_min_score', 0.2,
                     'Detections drawn in the image summaries score at '
                     'least this.')
  flags.DEFINE_boolean('progress', True,
                       'Show a progress bar on a terminal (never when the '
                       'output is not a terminal).')
  flags.DEFINE_boolean('wait_for_checkpoints', False,
                       'Evaluate every new checkpoint written in the '
                       '--checkpoint_path directory, as training writes '
                       'them.')
  flags.DEFINE_integer('eval_interval_secs', 60,
                       'With --wait_for_checkpoints: least seconds between '
                       'two checks for a new checkpoint.', lower_bound=0)
  flags.DEFINE_float('timeout', None,
                     'With --wait_for_checkpoints: stop after waiting this '
                     'many seconds for a new checkpoint; default: wait '
                     'forever.')
  flags.DEFINE_boolean('keep_best', True,
                       'With --wait_for_checkpoints: copy the best checkpoint '
                       'so far by --best_metric, with its results.json, to '
                       '<checkpoint_path>/best/.')
  flags.DEFINE_enum('best_metric', 'mAP_VOC07', list(BEST_METRICS),
                    'Metric (higher is better) choosing the best checkpoint '
                    'and driving early stopping; COCO_* need --metrics '
                    'coco.')
  flags.DEFINE_integer('early_stopping_patience', None,
                       'With --wait_for_checkpoints: after this many '
                       'evaluations without a better --best_metric, write '
                       '<checkpoint_path>/%s (training saves a checkpoint and '
                       'stops) and stop.' % run_directory.STOP_FILE_NAME,
                       lower_bound=1)


def checkpoint_step(checkpoint_path):
  """The checkpoint's global step: its global_step variable, else the
  `-<step>` suffix of its name, else None."""
  reader = tf.train.load_checkpoint(checkpoint_path)
  if reader.has_tensor('global_step'):
    return int(reader.get_tensor('global_step'))
  return checkpoints.checkpoint_step(checkpoint_path)


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
        self.summary_images.append((image_id, self._draw(
            batch['raw_image'][i][:height, :width], gt, found)))
      self.num_images += 1

  def _draw(self, image, gt, found):
    """The ground truth (left) beside the detections (right)."""
    # The best few above the threshold: an untrained network scores
    # hundreds of anchors alike, which would bury the image.
    order = np.argsort(-found['scores'], kind='stable')[:_MAX_SUMMARY_BOXES]
    shown = order[found['scores'][order] >= self.image_summary_min_score]
    # At least 3 px: TensorBoard shows images scaled down in its cards.
    thickness = max(_MIN_SUMMARY_THICKNESS,
                    drawing.default_thickness(*image.shape[:2]))
    truth = drawing.draw_detections(image, gt['bboxes'], gt['labels'],
                                    class_names=self.labels_to_names,
                                    thickness=thickness)
    detected = drawing.draw_detections(
        image, found['bboxes'][shown], found['classes'][shown],
        found['scores'][shown], class_names=self.labels_to_names,
        thickness=thickness)
    gap = np.full([image.shape[0], _GAP_PIXELS, 3], 255, np.uint8)
    return np.concatenate([truth, gap, detected], axis=1)


def _coco_source_ids(dataset, labels_to_names):
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


def _progress_bar(total, enabled):
  """A tqdm bar over `total` images on stderr, only on a terminal."""
  on_terminal = sys.stdout.isatty() and sys.stderr.isatty()
  return tqdm.tqdm(total=total, unit='img', disable=not (enabled and
                                                         on_terminal),
                   file=sys.stderr, desc='Evaluating')


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
    settings: `utils.inference.detection.DetectionSettings` (thresholds, resize).
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
      _coco_source_ids(dataset, labels_to_names) if 'coco' in metrics
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
    saver = detection.make_saver(checkpoint_path, moving_average_decay)
    with _v1.Session() as session, _progress_bar(
        min(dataset.num_samples, num_batches * batch_size),
        progress) as bar:
      saver.restore(session, checkpoint_path)
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
          logging.info('Batch %d of %d, %.1f s.', batch_number, num_batches,
                       time.time() - start)
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
      global_step=checkpoint_step(checkpoint_path),
      dataset={'name': dataset.name, 'split': dataset.split_name,
               'num_samples': dataset.num_samples},
      settings=settings._asdict(), moving_average_decay=moving_average_decay)
  if eval_dir:
    write_outputs(eval_dir, results, collector, dataset.split_name)
  return results


def write_outputs(eval_dir, results, collector, split_name):
  """Writes results.json, the detection files and the TensorBoard events."""
  tf.io.gfile.makedirs(eval_dir)
  _write_json(os.path.join(eval_dir, RESULTS_FILENAME), results)
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


def metric_value(results, metric):
  """The value of `metric` (one of BEST_METRICS) in `results`, or None."""
  if metric.startswith('COCO_'):
    return results.get('coco', {}).get(metric[len('COCO_'):])
  return results.get(metric)


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
    results_path = os.path.join(self.directory, RESULTS_FILENAME)
    if keep and os.path.exists(results_path):
      with open(results_path) as results_file:
        self.best_value = metric_value(json.load(results_file), metric)

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
    ssd_params = os.path.join(os.path.dirname(checkpoint_path),
                              run_directory.SSD_PARAMS_FILE_NAME)
    if os.path.exists(ssd_params):
      shutil.copy2(ssd_params, partial)
    _write_json(os.path.join(partial, RESULTS_FILENAME), results)
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


def check_metric_flags(metrics, best_metric, uses_best,
                       early_stopping_patience, wait_for_checkpoints):
  """Raises ValueError for metric flags that do not go together."""
  unknown = set(metrics) - set(METRICS)
  if unknown or not metrics:
    raise ValueError('--metrics: give some of %s, comma-separated; got %s' %
                     (','.join(METRICS), ','.join(metrics)))
  needed = 'coco' if best_metric.startswith('COCO_') else 'voc'
  if uses_best and needed not in metrics:
    raise ValueError('--best_metric %s needs --metrics %s' %
                     (best_metric, needed))
  if early_stopping_patience and not wait_for_checkpoints:
    raise ValueError('--early_stopping_patience needs --wait_for_checkpoints')


def _print_results(results):
  print('%s (step %s), %s split %s, %d images:' % (
      results['checkpoint_path'], results['global_step'],
      results['dataset']['name'], results['dataset']['split'],
      results['num_images']))
  if 'classes' in results:
    print(voc_eval.format_table(results))
  if 'coco' in results:
    print(coco_eval.format_table(results['coco']))
  sys.stdout.flush()


def run_evaluations(checkpoint_paths, evaluate_fn, best=None,
                    early_stopping_patience=None):
  """Evaluates checkpoints in turn, keeping the best and stopping early.

  Args:
    checkpoint_paths: iterable of checkpoint prefixes.
    evaluate_fn: checkpoint prefix -> results dict (see `evaluate`), or
      None for a checkpoint skipped.
    best: optional `BestCheckpoint`, updated after each evaluation.
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
    _print_results(results)
    if best is None:
      continue
    best.update(results)
    if (early_stopping_patience and
        best.evaluations_since_best >= early_stopping_patience):
      path = write_stop_file(best.train_dir, (
          'Early stopping: %d evaluations without a %s better than %s.' % (
              best.evaluations_since_best, best.metric, best.best_value)))
      logging.info('No better %s in %d evaluations: wrote %s; stopping.',
                   best.metric, best.evaluations_since_best, path)
      break
  return num_evaluated


def evaluate_unless_deleted(checkpoint_path, dataset, skip_deleted,
                            **evaluate_args):
  """`evaluate`; with `skip_deleted`, None for a checkpoint that training
  deleted (max_to_keep) before it was evaluated."""
  try:
    return evaluate(checkpoint_path, dataset, **evaluate_args)
  except (tf.errors.NotFoundError, checkpoints.CheckpointError):
    if not skip_deleted or tf.io.gfile.exists(checkpoint_path + '.index'):
      raise
    logging.warning('Skipping %s: deleted before it was evaluated.',
                    checkpoint_path)
    return None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  _v1.disable_eager_execution()
  wait = FLAGS.wait_for_checkpoints
  try:
    check_metric_flags(
        FLAGS.metrics, FLAGS.best_metric,
        wait and (FLAGS.keep_best or bool(FLAGS.early_stopping_patience)),
        FLAGS.early_stopping_patience, wait)
    if not wait:  # A missing checkpoint is reported before any folder made.
      checkpoints.resolve_checkpoint_path(FLAGS.checkpoint_path)
    eval_dir = FLAGS.eval_dir or run_directory.default_eval_dir(FLAGS.checkpoint_path)
    detection.make_output_dir(eval_dir, '--eval_dir')
    # --dataset_dir, or training's default, the sample dataset.
    dataset = dataset_flags.load_dataset(dataset_flags.read_dataset_flags())
    evaluate_fn = functools.partial(
        evaluate_unless_deleted, dataset=dataset, skip_deleted=wait,
        eval_dir=eval_dir, model_name=FLAGS.model_name,
        num_classes=FLAGS.num_classes,
        settings=detection.settings_from_flags(FLAGS),
        batch_size=FLAGS.batch_size,
        matching_threshold=FLAGS.matching_threshold,
        moving_average_decay=FLAGS.moving_average_decay,
        max_num_batches=FLAGS.max_num_batches,
        data_format=FLAGS.data_format, metrics=FLAGS.metrics,
        num_summary_images=FLAGS.num_summary_images,
        image_summary_min_score=FLAGS.image_summary_min_score,
        progress=FLAGS.progress)
    best = (BestCheckpoint(FLAGS.checkpoint_path, FLAGS.best_metric,
                           FLAGS.keep_best) if wait else None)
    num_evaluated = run_evaluations(
        checkpoints_to_evaluate(FLAGS.checkpoint_path, wait,
                                FLAGS.eval_interval_secs, FLAGS.timeout),
        evaluate_fn, best, FLAGS.early_stopping_patience)
    if not num_evaluated:
      raise ValueError(
          'no checkpoint appeared in %s within --timeout %g s: nothing was '
          'evaluated' % (FLAGS.checkpoint_path, FLAGS.timeout))
  except ValueError as error:
    # Bad flags, data or checkpoints: the message says what to fix.
    sys.exit('error: %s' % error)


if __name__ == '__main__':
  define_flags()
  app.run(main)
