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
  * results.json: see `utils.evaluation.evaluator.evaluate`;
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
import sys

from absl import app
from absl import flags
import tensorflow as tf

from datasets import dataset_flags
from utils.checkpointing import checkpoints
from utils.common import paths
from utils.common import platform_info
from utils.common import run_directory
from utils.evaluation import best_checkpoint
from utils.evaluation import schedule
from utils.inference import detection

_v1 = tf.compat.v1

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
  flags.DEFINE_enum('best_metric', 'mAP_VOC07',
                    list(best_checkpoint.BEST_METRICS),
                    'Metric (higher is better) choosing the best checkpoint '
                    'and driving early stopping; COCO_* need --metrics '
                    'coco.')
  flags.DEFINE_integer('early_stopping_patience', None,
                       'With --wait_for_checkpoints: after this many '
                       'evaluations without a better --best_metric, write '
                       '<checkpoint_path>/%s (training saves a checkpoint and '
                       'stops) and stop.' % run_directory.STOP_FILE_NAME,
                       lower_bound=1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  _v1.disable_eager_execution()
  wait = FLAGS.wait_for_checkpoints
  try:
    best_checkpoint.check_metric_flags(
        FLAGS.metrics, FLAGS.best_metric,
        wait and (FLAGS.keep_best or bool(FLAGS.early_stopping_patience)),
        FLAGS.early_stopping_patience, wait)
    if not wait:  # A missing checkpoint is reported before any folder made.
      checkpoints.resolve_checkpoint_path(FLAGS.checkpoint_path)
    eval_dir = FLAGS.eval_dir or run_directory.default_eval_dir(
        FLAGS.checkpoint_path)
    detection.make_output_dir(eval_dir, '--eval_dir')
    # --dataset_dir, or training's default, the sample dataset.
    dataset = dataset_flags.load_dataset(dataset_flags.read_dataset_flags())
    evaluate_fn = functools.partial(
        schedule.evaluate_unless_deleted, dataset=dataset, skip_deleted=wait,
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
    best = None
    if wait:
      best = best_checkpoint.BestCheckpoint(
          FLAGS.checkpoint_path, FLAGS.best_metric, FLAGS.keep_best)
    num_evaluated = schedule.run_evaluations(
        schedule.checkpoints_to_evaluate(
            FLAGS.checkpoint_path, wait, FLAGS.eval_interval_secs,
            FLAGS.timeout),
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
