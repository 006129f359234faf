"""Evaluates SSD checkpoints on a converted dataset split: Pascal VOC AP.

The network runs in a TensorFlow graph (batches of the evaluation
preprocessing, the detector of `utils.detection`); its fixed-size,
zero-padded detections are mapped back to each original image and scored in
Python by `utils.voc_eval`: per-class AP at IoU > --matching_threshold with
the Pascal VOC devkit's rules (difficult objects neither count nor penalise;
inclusive pixel boxes, +1 on widths and heights), both VOC2007's 11-point AP
and VOC2010+'s area AP, boxes compared in original image pixels: the APs
equal the devkit's on the same detections.  mAP is the mean over the classes with at least one
non-difficult ground-truth object; the others are reported as n/a.

Outputs, in --eval_dir (default: `eval/` beside the checkpoints):
  * a table on stdout: class, AP_VOC07, AP_VOC12, #GT (non-difficult);
  * TensorBoard scalars AP_VOC07/<class>, AP_VOC12/<class>, AP_VOC07/mAP and
    AP_VOC12/mAP at the checkpoint's global step;
  * results.json: see `evaluate`;
  * comp4_det_<split>_<class>.txt: every detection in the Pascal VOC results
    format, `<image_id> <score> <xmin> <ymin> <xmax> <ymax>`, pixels as in the
    annotation XML, for any VOC tool to re-score.
results.json and the comp4 files describe the latest evaluation; the
TensorBoard scalars accumulate.

With --wait_for_checkpoints, every new checkpoint that training writes in
the --checkpoint_path directory is evaluated in turn (run it beside
training), until --timeout seconds pass without one.

  python eval_ssd_network.py --checkpoint_path=ckpt/fine_tuning \\
      --dataset_dir=tfrecords --dataset_split_name=test

With no flags it evaluates the latest checkpoint of ckpt/fine_tuning on the
validation split of the built-in sample dataset.
"""
import itertools
import json
import os
import re
import sys
import time

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from datasets import dataset_factory
from datasets import sample_data
from datasets import voc_common
from utils import checkpoints
from utils import detection
from utils import voc_eval

_v1 = tf.compat.v1

RESULTS_FILENAME = 'results.json'
_LOG_EVERY_N_BATCHES = 10

FLAGS = flags.FLAGS


def define_flags():
  """Defines the evaluation flags (only when run as a program)."""
  detection.define_flags(checkpoints.FINE_TUNING_DIR)
  flags.adopt_module_key_flags(detection)
  flags.DEFINE_string('eval_dir', None,
                      'Where results.json, the comp4 detection files and the '
                      'TensorBoard events go. Default: eval/ in the '
                      'checkpoint directory.')
  flags.DEFINE_string('dataset_dir', None,
                      'Directory of the converted TFRecords. Default: the '
                      'built-in sample dataset in tfrecords/sample, generated '
                      'on first use.')
  flags.DEFINE_string('dataset_name', 'voc',
                      'Dataset reader: voc (any converted VOC-style data), '
                      'pascalvoc_2007, pascalvoc_2012.')
  flags.DEFINE_string('dataset_split_name', 'val', 'Split to evaluate on.')
  flags.DEFINE_string('file_pattern', None,
                      'Glob of the shards, when the split name does not '
                      'identify them unambiguously.')
  flags.DEFINE_integer('num_classes', None,
                       'Classes including background; must match the '
                       'checkpoint. Default: the dataset\'s.')
  flags.DEFINE_integer('batch_size', 8, 'Images per batch.', lower_bound=1)
  flags.DEFINE_integer('max_num_batches', None,
                       'Evaluate only this many batches; default: the whole '
                       'split.', lower_bound=1)
  flags.DEFINE_float('matching_threshold', 0.5,
                     'A detection matches an object when their IoU is above '
                     'this.')
  flags.DEFINE_enum('data_format', 'NHWC', ['NHWC', 'NCHW'],
                    'Layout of the network activations: NHWC (CPU) or NCHW '
                    '(faster on GPUs).')
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


def checkpoint_step(checkpoint_path):
  """The checkpoint's global step: its global_step variable, else the
  `-<step>` suffix of its name, else None."""
  reader = tf.train.load_checkpoint(checkpoint_path)
  if reader.has_tensor('global_step'):
    return int(reader.get_tensor('global_step'))
  match = re.search(r'-(\d+)$', checkpoint_path)
  return int(match.group(1)) if match else None


def _input_batches(dataset, ssd_net, model_name, settings, batch_size,
                   max_num_batches, data_format):
  """The next batch of the split, in its stored order, as a dict of tensors:
  the network input and bbox_img, and the example's ground truth (padded
  with zeros; num_objects says how many are real)."""

  def prepare(example):
    image, bbox_img = detection.preprocess(
        example['image'], ssd_net, model_name, settings.resize, data_format)
    return {'image': image, 'bbox_img': bbox_img, 'shape': example['shape'],
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


def _add_batch(evaluator, batch, detections):
  """Adds a batch's images to the evaluator, in original pixels."""
  for i, shape in enumerate(batch['shape']):
    height, width = shape[:2]
    num_objects = batch['num_objects'][i]
    num_detections = detections['num_detections'][i]
    evaluator.add_image(
        _image_id(batch['filename'][i], evaluator.num_images),
        gt_labels=batch['labels'][i][:num_objects],
        gt_boxes=voc_common.denormalize_boxes(
            batch['bboxes'][i][:num_objects], height, width),
        gt_difficult=batch['difficult'][i][:num_objects],
        det_labels=detections['classes'][i][:num_detections],
        det_scores=detections['scores'][i][:num_detections],
        det_boxes=voc_common.denormalize_boxes(
            detections['bboxes'][i][:num_detections], height, width))


def evaluate(checkpoint_path, dataset, eval_dir=None,
             model_name='ssd_300_vgg', num_classes=None,
             settings=detection.DetectionSettings(), batch_size=8,
             matching_threshold=0.5, moving_average_decay=None,
             max_num_batches=None, data_format='NHWC'):
  """Evaluates one checkpoint on a dataset split.

  Args:
    checkpoint_path: prefix, one of its files, or a directory (latest).
    dataset: a `datasets.dataset_utils.DetectionDataset`.
    eval_dir: if set, where the outputs are written (see the module
      docstring); created.
    model_name: network name.
    num_classes: classes including background; default the dataset's.
      Must match the checkpoint.
    settings: `utils.detection.DetectionSettings` (thresholds, resize).
    batch_size: images per batch.
    matching_threshold: IoU a detection must exceed to match an object.
    moving_average_decay: if set, evaluate the moving averages of the
      weights.
    max_num_batches: evaluate only the first batches; None for all.
    data_format: 'NHWC' or 'NCHW'.

  Returns:
    The dict written to results.json: those of `voc_eval.VocEvaluator.
    results` (per-class 'classes': {name: {label, AP_VOC07, AP_VOC12, num_gt,
    num_difficult, num_detections}}, mAP_VOC07, mAP_VOC12, num_images,
    num_map_classes, iou_threshold; an AP is None for a class without
    non-difficult objects) plus checkpoint_path, global_step (None if
    unknown), dataset {name, split, num_samples}, settings and
    moving_average_decay.

  Raises:
    CheckpointError: missing checkpoint, or one that does not fit.
  """
  num_classes = num_classes or dataset.num_classes
  checkpoint_path, ssd_net = detection.load_network(
      checkpoint_path, model_name, num_classes,
      'the dataset (%s, split %s)' % (dataset.name, dataset.split_name)
      if num_classes == dataset.num_classes else '--num_classes')
  labels_to_names = {label: dataset.labels_to_names.get(label,
                                                        'class_%d' % label)
                     for label in range(num_classes)}
  evaluator = voc_eval.VocEvaluator(labels_to_names, matching_threshold)
  num_batches = -(-dataset.num_samples // batch_size)
  if max_num_batches:
    num_batches = min(num_batches, max_num_batches)
  start = time.time()
  with tf.Graph().as_default():
    batch = _input_batches(dataset, ssd_net, model_name, settings,
                           batch_size, max_num_batches, data_format)
    detections = detection.detect(ssd_net, batch['image'], batch['bbox_img'],
                                  settings, data_format)
    saver = detection.make_saver(checkpoint_path, moving_average_decay)
    with _v1.Session() as session:
      saver.restore(session, checkpoint_path)
      for batch_number in itertools.count(1):
        try:
          batch_values, detection_values = session.run([batch, detections])
        except tf.errors.OutOfRangeError:
          break
        _add_batch(evaluator, batch_values, detection_values)
        if batch_number % _LOG_EVERY_N_BATCHES == 0:
          logging.info('Batch %d of %d, %.1f s.', batch_number, num_batches,
                       time.time() - start)
  logging.info('Evaluated %d images in %.1f s.', evaluator.num_images,
               time.time() - start)

  results = evaluator.results()
  results.update(
      checkpoint_path=checkpoint_path,
      global_step=checkpoint_step(checkpoint_path),
      dataset={'name': dataset.name, 'split': dataset.split_name,
               'num_samples': dataset.num_samples},
      settings=settings._asdict(), moving_average_decay=moving_average_decay)
  if eval_dir:
    write_outputs(eval_dir, results, evaluator, dataset.split_name)
  return results


def write_outputs(eval_dir, results, evaluator, split_name):
  """Writes results.json, the comp4 files and the TensorBoard scalars."""
  tf.io.gfile.makedirs(eval_dir)
  with open(os.path.join(eval_dir, RESULTS_FILENAME), 'w') as results_file:
    json.dump(results, results_file, indent=2)
    results_file.write('\n')
  voc_eval.write_comp4_detections(eval_dir, split_name, evaluator)
  summary = _v1.Summary()
  for kind in voc_eval.AP_KINDS:
    values = [(name, result['AP_' + kind])
              for name, result in results['classes'].items()]
    values.append(('mAP', results['mAP_' + kind]))
    for name, value in values:
      if value is not None:
        summary.value.add(tag='AP_%s/%s' % (kind, name), simple_value=value)
  # FileWriter needs graph mode; a fresh graph also works under eager.
  with tf.Graph().as_default():
    writer = _v1.summary.FileWriter(eval_dir)
    writer.add_summary(summary, results['global_step'] or 0)
    writer.close()
  logging.info('Wrote %s, the comp4 files and TensorBoard scalars to %s.',
               RESULTS_FILENAME, eval_dir)


def _eval_dir(checkpoint_path):
  if FLAGS.eval_dir:
    return FLAGS.eval_dir
  directory = (checkpoint_path if os.path.isdir(checkpoint_path)
               else os.path.dirname(checkpoint_path))
  return os.path.join(directory, 'eval')


def _checkpoints_to_evaluate():
  """--checkpoint_path, or each new checkpoint of its directory as it
  appears (--wait_for_checkpoints)."""
  if not FLAGS.wait_for_checkpoints:
    return [FLAGS.checkpoint_path]
  if not os.path.isdir(FLAGS.checkpoint_path):
    raise ValueError('--wait_for_checkpoints needs a directory as '
                     '--checkpoint_path, got %s' % FLAGS.checkpoint_path)
  return _v1.train.checkpoints_iterator(
      FLAGS.checkpoint_path, min_interval_secs=FLAGS.eval_interval_secs,
      timeout=FLAGS.timeout)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  _v1.disable_eager_execution()
  try:
    # --dataset_dir, or training's default, the sample dataset.
    dataset = dataset_factory.get_dataset(
        FLAGS.dataset_name, FLAGS.dataset_split_name,
        sample_data.dataset_dir_or_sample(FLAGS.dataset_dir), FLAGS.file_pattern)
    for checkpoint_path in _checkpoints_to_evaluate():
      try:
        results = evaluate(
            checkpoint_path, dataset, _eval_dir(FLAGS.checkpoint_path),
            model_name=FLAGS.model_name, num_classes=FLAGS.num_classes,
            settings=detection.settings_from_flags(FLAGS),
            batch_size=FLAGS.batch_size,
            matching_threshold=FLAGS.matching_threshold,
            moving_average_decay=FLAGS.moving_average_decay,
            max_num_batches=FLAGS.max_num_batches,
            data_format=FLAGS.data_format)
      except (tf.errors.NotFoundError, checkpoints.CheckpointError):
        if not FLAGS.wait_for_checkpoints or tf.io.gfile.exists(
            checkpoint_path + '.index'):
          raise
        # Training deletes its older checkpoints (max_to_keep) as it goes.
        logging.warning('Skipping %s: deleted before it was evaluated.',
                        checkpoint_path)
        continue
      print('%s (step %s), %s split %s, %d images:\n%s' % (
          results['checkpoint_path'], results['global_step'],
          results['dataset']['name'], results['dataset']['split'],
          results['num_images'], voc_eval.format_table(results)))
  except ValueError as error:
    # Bad flags, data or checkpoints: the message says what to fix.
    logging.error('%s', error)
    sys.exit(1)


if __name__ == '__main__':
  define_flags()
  app.run(main)
