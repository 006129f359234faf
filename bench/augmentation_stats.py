r"""What the SSD training augmentation shows the network, measured on real boxes.

For the boxes of the Freiburg groceries photos (`utils.common.paths.groceries_dir()`,
`train` split), draws the augmentation's geometry many times per image,
through the function `preprocess_for_train` uses
(`ssd_vgg_preprocessing.random_geometry`: zoom-out, then crop), and prints:

  * the uncropped share: draws whose crop is the whole frame (zoom-out canvas
    or image), by objects per image;
  * the unchanged share: neither zoomed out nor cropped;
  * objects kept per image (mean, and the share of draws that keep none);
  * the boxes seen by each feature map: every kept box, at the 300 px input,
    goes to the layer whose anchor size s_k is nearest on a log scale.

  python bench/augmentation_stats.py --num_images=400 --draws=10

Only boxes go through the graph (no pixels), so it takes seconds.
"""
import collections
import os
import sys

from absl import app
from absl import flags
import numpy as np

# Runs as a script from anywhere: the project root holds the packages.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)
# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf

from datasets import pascalvoc_to_tfrecords
from datasets import voc_common
from nets import nets_factory
from preprocessing import ssd_vgg_preprocessing
from preprocessing import tf_image
from utils.common import paths
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string('groceries_dir', None, 'VOC root (default: '
                    'utils.common.paths.groceries_dir()).')
flags.DEFINE_integer('num_images', 400, 'First images of the train split.',
                     lower_bound=1)
flags.DEFINE_integer('draws', 10, 'Augmentation draws per image.',
                     lower_bound=1)
flags.DEFINE_integer('seed', 0, 'First element of every draw\'s [2] seed.')


def load_boxes(groceries_dir, num_images):
  """Normalised [N, 4] float32 boxes of the first `num_images` train images."""
  image_ids = pascalvoc_to_tfrecords.list_image_ids(groceries_dir, 'train')
  all_boxes = []
  for image_id in image_ids[:num_images]:
    annotation = voc_common.parse_annotation(
        os.path.join(groceries_dir, 'Annotations', image_id + '.xml'),
        image_id)
    height, width = annotation.size[:2]
    all_boxes.append(np.array(
        [voc_common.normalize_box(obj.xmin, obj.ymin, obj.xmax, obj.ymax,
                                  height, width)
         for obj in annotation.objects], np.float32).reshape(-1, 4))
  return all_boxes


def build_geometry():
  """Placeholders (boxes, seed) and (zoomed?, cropped?, kept boxes) tensors."""
  bboxes = tf.compat.v1.placeholder(tf.float32, [None, 4])
  seed = tf.compat.v1.placeholder(tf.int64, [2])
  canvas, crop, _, kept = ssd_vgg_preprocessing.random_geometry(
      tf.range(tf.shape(bboxes)[0]), bboxes, seed)
  full = tf.constant(tf_image.FULL_WINDOW)
  zoomed = tf.reduce_any(tf.not_equal(canvas, full))
  cropped = tf.reduce_any(tf.not_equal(crop, full))
  return (bboxes, seed), (zoomed, cropped, kept)


def layer_of_sizes(box_sides, anchor_sizes):
  """Index of the nearest anchor size (log scale) for each box side."""
  log_sizes = np.log(np.asarray(anchor_sizes, np.float64))
  edges = (log_sizes[1:] + log_sizes[:-1]) / 2.
  return np.searchsorted(edges, np.log(np.maximum(box_sides, 1e-6)))


def measure(all_boxes, draws, base_seed):
  """Runs the geometry; returns per-draw records."""
  with tf.Graph().as_default():
    (bboxes, seed), tensors = build_geometry()
    records = []
    with tf.compat.v1.Session() as session:
      for index, boxes in enumerate(all_boxes):
        for draw in range(draws):
          zoomed, cropped, kept = session.run(tensors, {
              bboxes: boxes, seed: [base_seed, index * draws + draw]})
          records.append((len(boxes), bool(zoomed), bool(cropped), kept))
  return records


def _group(num_objects):
  return '1' if num_objects == 1 else '2-3' if num_objects <= 3 else '4+'


def report(records, img_shape, anchor_sizes):
  """Prints the statistics of `measure`'s records."""
  by_group = collections.defaultdict(list)
  for record in records:
    by_group[_group(record[0])].append(record)
  print('objects/image  draws  uncropped  unchanged  kept/image  kept none')
  for group in ('1', '2-3', '4+', 'all'):
    rows = records if group == 'all' else by_group.get(group, [])
    if not rows:
      continue
    print('%-13s %6d  %9.3f  %9.3f  %10.2f  %9.3f' % (
        group, len(rows),
        np.mean([not cropped for _, _, cropped, _ in rows]),
        np.mean([not (zoomed or cropped) for _, zoomed, cropped, _ in rows]),
        np.mean([len(kept) for *_, kept in rows]),
        np.mean([len(kept) == 0 for *_, kept in rows])))
  kept = np.concatenate([kept for *_, kept in records])
  sides = np.sqrt((kept[:, 2] - kept[:, 0]) * img_shape[0] *
                  (kept[:, 3] - kept[:, 1]) * img_shape[1])
  layers = layer_of_sizes(sides, anchor_sizes)
  print('box side at %dx%d (px): median %.0f, 10%% %.0f, 90%% %.0f' % (
      img_shape[0], img_shape[1], np.median(sides),
      np.percentile(sides, 10), np.percentile(sides, 90)))
  print('share of kept boxes by nearest anchor size: ' + ', '.join(
      '%g px %.3f' % (size, np.mean(layers == index))
      for index, size in enumerate(anchor_sizes)))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  all_boxes = load_boxes(FLAGS.groceries_dir or paths.groceries_dir(),
                         FLAGS.num_images)
  params = nets_factory.get_network('ssd_300_vgg').default_params
  records = measure(all_boxes, FLAGS.draws, FLAGS.seed)
  report(records, params.img_shape,
         [sizes[0] for sizes in params.anchor_sizes])


if __name__ == '__main__':
  tf.compat.v1.disable_eager_execution()
  app.run(main)
