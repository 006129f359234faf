"""Proof that the whole chain learns, on real photos nobody on the team labelled.

Converts a fixed small subset of the Freiburg groceries dataset (Pascal VOC
layout), trains `train_ssd_network.py` on it from scratch (two clones on
logical CPU devices), evaluates the final checkpoint on the same images and
on `val` images of the same classes with the evaluator, and runs the demo on
two of them.  Prints the loss at start and end, the mAPs and the wall time.

  python bench/learns.py                      # defaults: see --help
  FREIBURG_GROCERIES_DIR=/data/groceries python bench/learns.py

Everything is written under --work_dir (default bench/out/learns, ignored by
git).  The data are only read, never copied into the project.
"""
import os
import re
import subprocess
import sys
import time

from absl import app
from absl import flags

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
from utils.inference import demo
from datasets import dataset_factory
from datasets import pascalvoc_to_tfrecords
from datasets import voc_common
from utils.evaluation import evaluator
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
DEFAULT_DATA = os.environ.get(
    'FREIBURG_GROCERIES_DIR',
    os.path.join(PROJECT_ROOT, os.pardir, 'shared', 'data',
                 'freiburg_groceries_voc'))

flags.DEFINE_string('dataset_dir', DEFAULT_DATA,
                    'Freiburg groceries VOC root (env FREIBURG_GROCERIES_DIR).')
flags.DEFINE_string('work_dir', os.path.join(PROJECT_ROOT, 'bench', 'out',
                                             'learns'),
                    'Where records, checkpoints and outputs go (erased).')
flags.DEFINE_list('classes', ['beans', 'coffee', 'pasta', 'water'],
                  'Classes of the subset.')
flags.DEFINE_integer('train_per_class', 4,
                     'Training images per class (first ones of train.txt).')
flags.DEFINE_integer('val_per_class', 4,
                     'Validation images per class (first ones of val.txt).')
flags.DEFINE_integer('max_number_of_steps', 300, 'Training steps.')
flags.DEFINE_integer('batch_size', 4, 'Images per clone per step.')
flags.DEFINE_integer('num_clones', 2, 'Clones on logical CPU devices.')
flags.DEFINE_float('learning_rate', 0.001, 'Adam learning rate.')
flags.DEFINE_string('precision', 'mixed_bfloat16',
                    'Training precision (see train_ssd_network.py).')
flags.DEFINE_enum('augmentation', 'none', ['ssd', 'none'],
                  'Training augmentation (see train_ssd_network.py): none '
                  'by default, since the point is memorising the subset.')

_LOSS_LINE = re.compile(r'step (\d+): loss ([0-9.]+)')


def select_images(dataset_dir, split, classes, per_class):
  """The first `per_class` images of each class whose objects all belong to it."""
  with open(os.path.join(dataset_dir, 'ImageSets', 'Main', split + '.txt')) as f:
    image_ids = [line.strip() for line in f if line.strip()]
  chosen = {name: [] for name in classes}
  for image_id in image_ids:
    annotation = voc_common.parse_annotation(
        os.path.join(dataset_dir, 'Annotations', image_id + '.xml'), image_id)
    names = {obj.name for obj in annotation.objects}
    if len(names) == 1:
      (name,) = names
      if name in chosen and len(chosen[name]) < per_class:
        chosen[name].append(image_id)
  return [image_id for name in classes for image_id in chosen[name]]


def train(records_dir, train_dir):
  """Runs the training script; returns (first loss, last loss, log path)."""
  log_path = os.path.join(FLAGS.work_dir, 'train.log')
  command = [
      sys.executable, os.path.join(PROJECT_ROOT, 'train_ssd_network.py'),
      '--dataset_dir', records_dir, '--dataset_split_name', 'train',
      '--train_dir', train_dir, '--num_clones', str(FLAGS.num_clones),
      '--clone_on_cpu', '--batch_size', str(FLAGS.batch_size),
      '--precision', FLAGS.precision, '--augmentation', FLAGS.augmentation,
      '--optimizer', 'adam',
      '--learning_rate', str(FLAGS.learning_rate),
      '--learning_rate_decay_type', 'fixed', '--warmup_steps', '0',
      '--max_number_of_steps', str(FLAGS.max_number_of_steps),
      '--log_every_n_steps', '10', '--save_interval_secs', '3600',
      '--save_summaries_secs', '120', '--seed', '1']
  with open(log_path, 'w') as log:
    subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
  with open(log_path) as log:
    losses = [(int(step), float(loss)) for step, loss in
              _LOSS_LINE.findall(log.read())]
  return losses[0], losses[-1], log_path


def _format_map(value):
  """mAP is None when a split has no non-difficult object."""
  return 'n/a' if value is None else '%.3f' % value


def main(unused_argv):
  start = time.time()
  records_dir = os.path.join(FLAGS.work_dir, 'records')
  train_dir = os.path.join(FLAGS.work_dir, 'train')
  subprocess.run(['rm', '-rf', FLAGS.work_dir], check=True)
  os.makedirs(records_dir)
  splits = {'train': FLAGS.train_per_class, 'val': FLAGS.val_per_class}
  image_ids = {}
  for split, per_class in splits.items():
    image_ids[split] = select_images(FLAGS.dataset_dir, split, FLAGS.classes,
                                     per_class)
    pascalvoc_to_tfrecords.convert(
        FLAGS.dataset_dir, records_dir, 'groceries_' + split,
        image_ids=image_ids[split], class_names=FLAGS.classes)
  print('subset: %d train, %d val images of %s' % (
      len(image_ids['train']), len(image_ids['val']), ', '.join(FLAGS.classes)))

  (first_step, first_loss), (last_step, last_loss), log_path = train(
      records_dir, train_dir)
  train_seconds = time.time() - start
  print('loss: %.3f at step %d -> %.3f at step %d (log: %s)' % (
      first_loss, first_step, last_loss, last_step, log_path))

  maps = {}
  for split in splits:
    dataset = dataset_factory.get_dataset('voc', split, records_dir)
    results = evaluator.evaluate(
        train_dir, dataset, os.path.join(FLAGS.work_dir, 'eval_' + split))
    maps[split] = results
    print('%s: mAP VOC07 %s, VOC12 %s on %d images' % (
        split, _format_map(results['mAP_VOC07']),
        _format_map(results['mAP_VOC12']), results['num_images']))

  demo_images = [os.path.join(FLAGS.dataset_dir, 'JPEGImages', i + '.jpg')
                 for i in (image_ids['train'][0], image_ids['val'][0])]
  demo.run(train_dir, demo_images, os.path.join(FLAGS.work_dir, 'demo'),
               os.path.join(records_dir, 'labels.txt'))
  print('wall time: %.1f min (training %.1f min)' % (
      (time.time() - start) / 60, train_seconds / 60))


if __name__ == '__main__':
  app.run(main)
