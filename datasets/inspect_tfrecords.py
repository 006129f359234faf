r"""Prints what detection TFRecords hold and draws a few with their boxes.

Reads the records the way training does (`dataset_utils.decode_example`),
so a record that decodes here decodes in training:

  python -m datasets.inspect_tfrecords tfrecords/commodity_train_*.tfrecord \
      --draw_dir=check_boxes --num_draw=8

Prints record and object counts, image sizes, per-class statistics and the
problems found (boxes outside [0, 1] or inverted, unknown labels).
"""
import collections
import glob
import os
import sys

from absl import app
from absl import flags
import cv2
import numpy as np
import tensorflow as tf

from datasets import dataset_utils
from utils.common import drawing


def iterate_examples(files):
  """Yields (file, decoded example as numpy dict) for every record.

  Raises:
    ValueError: a record that does not decode, naming its file and index.
  """
  with tf.Graph().as_default():
    filename = tf.compat.v1.placeholder(tf.string, [])
    records = tf.data.TFRecordDataset(filename).map(
        dataset_utils.decode_example)
    iterator = tf.compat.v1.data.make_initializable_iterator(records)
    example = iterator.get_next()
    with tf.compat.v1.Session() as session:
      for path in files:
        session.run(iterator.initializer, {filename: path})
        for index in range(sys.maxsize):
          try:
            yield path, session.run(example)
          except tf.errors.OutOfRangeError:
            break
          except tf.errors.OpError as error:
            raise ValueError('%s: record %d does not decode (%s)' %
                             (path, index, error.message)) from None


def draw_boxes(example, labels_to_names):
  """BGR copy of the example's image with its boxes and class names."""
  return cv2.cvtColor(drawing.draw_detections(
      example['image'], example['bboxes'], example['labels'],
      class_names=labels_to_names), cv2.COLOR_RGB2BGR)


def summarize(examples, labels_to_names):
  """Counts over decoded examples.

  Args:
    examples: iterable of decoded example dicts (numpy values).
    labels_to_names: {id: name}.

  Returns:
    A dict: 'records', 'objects', 'sizes' (Counter of (h, w)), 'classes'
    (defaultdict {id: {'images', 'difficult', 'truncated': counts,
    'widths', 'heights': normalised box sizes, one per object}}),
    'problems' (Counter of problem descriptions).
  """
  classes = collections.defaultdict(lambda: {
      'images': 0, 'difficult': 0, 'truncated': 0, 'widths': [],
      'heights': []})
  stats = {'records': 0, 'objects': 0, 'sizes': collections.Counter(),
           'classes': classes, 'problems': collections.Counter()}
  for example in examples:
    stats['records'] += 1
    stats['objects'] += len(example['labels'])
    stats['sizes'][tuple(int(v) for v in example['shape'][:2])] += 1
    boxes = example['bboxes']
    stats['problems']['box outside [0, 1]'] += int(
        np.sum(np.any((boxes < 0) | (boxes > 1), axis=1)))
    stats['problems']['inverted or empty box'] += int(
        np.sum((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])))
    for label in set(example['labels'].tolist()):
      classes[label]['images'] += 1
    for label, box, difficult, truncated in zip(
        example['labels'].tolist(), boxes, example['difficult'],
        example['truncated']):
      if label not in labels_to_names or label == 0:
        stats['problems']['label %d not in the label map' % label] += 1
      entry = classes[label]
      entry['difficult'] += int(difficult)
      entry['truncated'] += int(truncated)
      entry['widths'].append(float(box[3] - box[1]))
      entry['heights'].append(float(box[2] - box[0]))
  stats['problems'] = +stats['problems']  # Drops zero counts.
  return stats


def format_report(stats, files, labels_to_names):
  """The printed report of `summarize`'s result."""
  sizes = stats['sizes']
  lines = ['%d file(s), %d records, %d objects' % (
      len(files), stats['records'], stats['objects'])]
  if sizes:
    lines.append('image sizes (HxW): %d distinct, smallest %dx%d, largest '
                 '%dx%d' % ((len(sizes),) + min(sizes) + max(sizes)))
  lines.append('%4s %-16s %8s %7s %9s %9s %8s %8s' % (
      'id', 'class', 'objects', 'images', 'difficult', 'truncated',
      'med. w', 'med. h'))
  for label in sorted(set(stats['classes']) | set(labels_to_names) - {0}):
    entry = stats['classes'][label]  # A defaultdict: absent classes are 0.
    lines.append('%4d %-16s %8d %7d %9d %9d %8.3f %8.3f' % (
        label, labels_to_names.get(label, '?'), len(entry['widths']),
        entry['images'], entry['difficult'], entry['truncated'],
        np.median(entry['widths'] or [0]),
        np.median(entry['heights'] or [0])))
  problems = stats['problems']
  lines.append('problems: %s' % (', '.join(
      '%s: %d' % item for item in sorted(problems.items())) or 'none'))
  return '\n'.join(lines)


def inspect(files, labels_to_names, draw_dir=None, num_draw=0):
  """Summarises `files`, writing the first `num_draw` images to `draw_dir`.

  Returns:
    (stats from `summarize`, paths of the drawn images).
  """
  drawn = []

  def examples():
    for _, example in iterate_examples(files):
      if draw_dir and len(drawn) < num_draw:
        stem = os.path.splitext(os.path.basename(
            example['filename'].decode('utf-8', 'replace')))[0]
        drawn.append(os.path.join(draw_dir, '%03d_%s.jpg' % (len(drawn),
                                                              stem)))
        cv2.imwrite(drawn[-1], draw_boxes(example, labels_to_names))
      yield example

  if draw_dir:
    os.makedirs(draw_dir, exist_ok=True)
  return summarize(examples(), labels_to_names), drawn


FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a program)."""
  flags.DEFINE_string('labels', None, 'labels.txt (id:name lines); default: '
                      'the labels.txt beside the first file, if any.')
  flags.DEFINE_string('draw_dir', None, 'Write the first --num_draw images, '
                      'boxes drawn, into this folder.')
  flags.DEFINE_integer('num_draw', 8, 'Images drawn with --draw_dir.',
                       lower_bound=0)


def main(argv):
  patterns = argv[1:]
  if not patterns:
    raise app.UsageError('give TFRecord files or glob patterns')
  files = []
  for pattern in patterns:
    matched = sorted(glob.glob(pattern))
    if not matched:
      sys.exit('error: no file matches %s' % pattern)
    files += matched
  labels_path = FLAGS.labels or os.path.join(
      os.path.dirname(files[0]), dataset_utils.LABELS_FILENAME)
  try:
    labels_to_names = (dataset_utils.read_label_file(labels_path)
                       if os.path.isfile(labels_path) or FLAGS.labels else {})
    stats, drawn = inspect(files, labels_to_names, FLAGS.draw_dir,
                           FLAGS.num_draw)
  except (OSError, ValueError) as error:
    sys.exit('error: %s' % error)
  print(format_report(stats, files, labels_to_names))
  for path in drawn:
    print('drew %s' % path)


if __name__ == '__main__':
  define_flags()
  app.run(main)
