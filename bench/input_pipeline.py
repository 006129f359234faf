r"""Input pipeline throughput: images/second, per thread, at three photo sizes.

Builds three small datasets from the Freiburg groceries photos
(`utils.common.paths.groceries_dir()`, train split) in a temporary folder:

  224    the photos as they are (224 x 224 JPEGs);
  voc    VOC-sized 500 x 376 photos, each a 2 x 2 mosaic of four photos
         resized to 250 x 188, with all their boxes;
  12mp   12 MP photos (4000 x 3000), each a mosaic of 18 x 14 photos at full
         resolution (so the JPEG holds a real photo's detail, ~2 MB), with
         the boxes of its first whole tiles (at most 10);
  12mp_1200  the same photos stored at 1200 x 900, as the converter's
         --max_image_side=1200 stores them.

and times epochs of the training input pipeline's stages on each:

  decode       read + parse + JPEG decode
  crop         + zoom-out and the crop sampler (`random_geometry`)
  resize       + resampling the crop to 300 x 300 (`tf_image.sample_window`)
  photometric  + colour distortion, flip, mean subtraction: the whole of
               `preprocess_for_train`
  full         + box encoding against the network's 8,732 anchors
               (`bboxes_encode`), i.e. what the training input pipeline does

The profile (1 thread) reports each stage's time per image as the
difference from the previous stage.  The `full` stage is also timed with 2
threads, and with the photos decoded whole (`decode=full`) against the
reduced-size JPEG decode (`decode=reduced`, `--decode_min_side`).  All
configurations are built first, then one epoch of each runs in turn,
`--repeats` times, so that a change of load hits all of them; medians are
printed, as wall-clock images/s and as images per CPU-second of the
process (all its threads): with other jobs on the machine the wall rate
drops, the CPU rate much less.  The machine's load and CPU are printed too:
on a shared machine the numbers are noisy, compare configurations of one
run.

  python bench/input_pipeline.py                      # all sizes, ~4 min
  python bench/input_pipeline.py --sizes=224 --repeats=3
"""
import collections
import os
import statistics
import sys
import tempfile
import time

from absl import app
from absl import flags
import cv2
import numpy as np

# Runs as a script from anywhere: the project root holds the packages, so
# it goes on the path before they are imported.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)
# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf

from datasets import dataset_utils
from datasets import pascalvoc_to_tfrecords
from datasets import voc_common
from nets import nets_factory
from preprocessing import ssd_vgg_preprocessing
from preprocessing import tf_image
from utils.common import paths
from utils.common import platform_info
# pylint: enable=g-import-not-at-top,wrong-import-position

SIZES = ('224', 'voc', '12mp', '12mp_1200')
STAGES = ('decode', 'crop', 'resize', 'photometric', 'full')
DECODES = ('reduced', 'full')
# Mosaics: (rows, columns) of tiles, tile (height, width), output size.
_MOSAICS = {'voc': ((2, 2), (188, 250), (376, 500)),
            '12mp': ((14, 18), (224, 224), (3000, 4000))}
_MAX_MOSAIC_BOXES = 10
_STORED_MAX_SIDE = {'12mp_1200': 1200}
_JPEG_QUALITY = 90

FLAGS = flags.FLAGS
flags.DEFINE_string('groceries_dir', None, 'VOC root of the groceries data '
                    '(default: utils.common.paths.groceries_dir()).')
flags.DEFINE_list('sizes', list(SIZES), 'Photo sizes to time: %s.' %
                  ', '.join(SIZES))
flags.DEFINE_integer('num_images', 256, 'Images per dataset (224 and voc).',
                     lower_bound=1)
flags.DEFINE_integer('num_large_images', 24, 'Images of the 12mp dataset.',
                     lower_bound=1)
flags.DEFINE_list('threads', ['1', '2'], 'Thread counts for the full stage '
                  '(readers, parallel map calls and TensorFlow threads); '
                  'the profile uses the first.')
flags.DEFINE_integer('decode_min_side', 600, 'Reduced-size decoding keeps '
                     'at least this many pixels on the shorter side.',
                     lower_bound=1)
flags.DEFINE_boolean('profile', True, 'Time every stage (1 thread), not '
                     'only the full pipeline.')
flags.DEFINE_string('model_name', 'ssd_300_vgg', 'Network whose anchors are '
                    'encoded against.')
flags.DEFINE_integer('repeats', 5, 'Timed epochs per configuration (after '
                     'one warm-up epoch); the median is printed.',
                     lower_bound=1)

Config = collections.namedtuple('Config', 'size stage threads decode')


# Data.


def _read_photos(groceries_dir, count):
  """The first `count` train photos: (BGR image, JPEG bytes, boxes, labels)."""
  image_ids = pascalvoc_to_tfrecords.list_image_ids(groceries_dir, 'train')
  class_ids = {}
  photos = []
  for image_id in image_ids[:count]:
    annotation = voc_common.parse_annotation(
        os.path.join(groceries_dir, 'Annotations', image_id + '.xml'),
        image_id)
    path = pascalvoc_to_tfrecords.find_image(groceries_dir, annotation)
    with open(path, 'rb') as image_file:
      encoded = image_file.read()
    image = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
    height, width = image.shape[:2]
    boxes = np.array([voc_common.normalize_box(
        obj.xmin, obj.ymin, obj.xmax, obj.ymax, height, width)
                      for obj in annotation.objects], np.float32).reshape(-1, 4)
    labels = [class_ids.setdefault(obj.name, len(class_ids) + 1)
              for obj in annotation.objects]
    photos.append((image, encoded, boxes, np.array(labels, np.int64)))
  return photos


def _mosaic(photos, size):
  """One mosaic of `photos` (see the module docstring): (BGR, boxes, labels)."""
  (rows, columns), (tile_height, tile_width), (height, width) = _MOSAICS[size]
  canvas = np.zeros((rows * tile_height, columns * tile_width, 3), np.uint8)
  all_boxes, all_labels = [], []
  for index, (image, _, boxes, labels) in enumerate(photos[:rows * columns]):
    row, column = divmod(index, columns)
    canvas[row * tile_height:(row + 1) * tile_height,
           column * tile_width:(column + 1) * tile_width] = cv2.resize(
               image, (tile_width, tile_height), interpolation=cv2.INTER_AREA)
    whole_tile = ((row + 1) * tile_height <= height and
                  (column + 1) * tile_width <= width)
    if whole_tile and len(all_boxes) < _MAX_MOSAIC_BOXES:
      offset = np.array([row * tile_height, column * tile_width] * 2)
      scale = np.array([tile_height, tile_width] * 2)
      for box, label in zip(boxes, labels):
        all_boxes.append((box * scale + offset) / ([height, width] * 2))
        all_labels.append(label)
  boxes = np.array(all_boxes[:_MAX_MOSAIC_BOXES], np.float32).reshape(-1, 4)
  return (canvas[:height, :width], boxes,
          np.array(all_labels[:_MAX_MOSAIC_BOXES], np.int64))


def _examples(photos, size):
  """Yields (JPEG bytes, shape, boxes, labels) of the `size` dataset."""
  if size == '224':
    for image, encoded, boxes, labels in photos:
      yield encoded, image.shape, boxes, labels
    return
  mosaic = size.split('_')[0]
  tiles = _MOSAICS[mosaic][0][0] * _MOSAICS[mosaic][0][1]
  count = (FLAGS.num_large_images if mosaic == '12mp' else FLAGS.num_images)
  for index in range(count):
    start = (index * tiles) % max(1, len(photos) - tiles)
    image, boxes, labels = _mosaic(photos[start:start + tiles], mosaic)
    if size in _STORED_MAX_SIDE:
      scale = _STORED_MAX_SIDE[size] / max(image.shape[:2])
      image = cv2.resize(image, None, fx=scale, fy=scale,
                         interpolation=cv2.INTER_AREA)
    _, encoded = cv2.imencode('.jpg', image,
                              [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    yield encoded.tobytes(), image.shape, boxes, labels


def write_dataset(photos, size, work_dir, num_classes):
  """Writes one size's TFRecord; returns (DetectionDataset, mean JPEG MB)."""
  path = os.path.join(work_dir, size + '.tfrecord')
  count, total_bytes = 0, 0
  with tf.io.TFRecordWriter(path) as writer:
    for encoded, shape, boxes, labels in _examples(photos, size):
      example = dataset_utils.make_example(
          encoded, b'jpeg', shape, '%s_%d.jpg' % (size, count), boxes, labels,
          ['object'] * len(labels), [0] * len(labels), [0] * len(labels))
      writer.write(example.SerializeToString())
      count += 1
      total_bytes += len(encoded)
  labels_to_names = {index: str(index) for index in range(num_classes)}
  return (dataset_utils.DetectionDataset(size, 'train', [path], count,
                                         labels_to_names),
          total_bytes / count / 1e6)


# Pipelines.


def stage_fn(stage, ssd_net):
  """The per-example map of the pipeline up to `stage` (a dict -> tensors)."""
  out_shape = ssd_net.params.img_shape
  anchors = ssd_net.anchors(out_shape)

  def map_fn(example):
    image, labels, bboxes = (example['image'], example['labels'],
                             example['bboxes'])
    if stage == 'decode':
      return image, labels, bboxes
    if stage in ('crop', 'resize'):
      seed = tf.random.uniform([2], maxval=tf.int64.max, dtype=tf.int64)
      canvas, crop, labels, bboxes = ssd_vgg_preprocessing.random_geometry(
          labels, bboxes, seed)
      if stage == 'crop':
        return image, labels, bboxes
      window = tf_image.window_in_frame(canvas, crop)
      return tf_image.sample_window(image, window, out_shape), labels, bboxes
    image, labels, bboxes = ssd_vgg_preprocessing.preprocess_for_train(
        image, labels, bboxes, out_shape)
    if stage == 'photometric':
      return image, labels, bboxes
    gclasses, glocalisations, gscores = ssd_net.bboxes_encode(
        labels, bboxes, anchors)
    # Tuples, not lists: tf.data would pack a list into one tensor.
    return image, tuple(gclasses), tuple(glocalisations), tuple(gscores)
  return map_fn


def _touch_all(*tensors):
  """A scalar depending on every output tensor, so none is pruned."""
  return tf.add_n([tf.size(tensor, out_type=tf.int64)
                   for tensor in tf.nest.flatten(tensors)])


class Pipeline(object):
  """One configuration's graph and session; `epoch()` times one epoch."""

  def __init__(self, dataset, config, ssd_net, decode_min_side):
    self._graph = tf.Graph()
    with self._graph.as_default():
      min_side = decode_min_side if config.decode == 'reduced' else None
      examples = dataset.read(
          num_readers=config.threads, shuffle=False, num_epochs=1,
          num_parallel_calls=config.threads, decode_min_side=min_side)
      pipeline = (examples
                  .map(stage_fn(config.stage, ssd_net),
                       num_parallel_calls=config.threads)
                  .map(_touch_all).batch(16))
      options = tf.data.Options()
      options.threading.private_threadpool_size = config.threads
      # No seed is asked for: elements may come out of order.
      options.deterministic = False
      self._iterator = tf.compat.v1.data.make_initializable_iterator(
          pipeline.with_options(options))
      self._batch = self._iterator.get_next()
    session_config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=config.threads,
        inter_op_parallelism_threads=config.threads)
    self._session = tf.compat.v1.Session(graph=self._graph,
                                         config=session_config)

  def epoch(self):
    """(images per second, images per CPU-second) of one epoch."""
    self._session.run(self._iterator.initializer)
    count = 0
    start, start_cpu = time.perf_counter(), time.process_time()
    while True:
      try:
        count += len(self._session.run(self._batch))
      except tf.errors.OutOfRangeError:
        break
    return (count / (time.perf_counter() - start),
            count / (time.process_time() - start_cpu))

  def close(self):
    self._session.close()


def configurations(sizes, thread_counts, profile):
  """The configurations to time, in their interleaving order."""
  configs = []
  for size in sizes:
    if profile:
      configs += [Config(size, stage, thread_counts[0], 'reduced')
                  for stage in STAGES[:-1]]
    configs += [Config(size, 'full', threads, decode)
                for decode in (DECODES if size != '224' else DECODES[:1])
                for threads in thread_counts]
  return configs


def run_interleaved(pipelines, repeats):
  """{config: [(images/s, images/CPU-s) per epoch]}: one warm-up, then
  `repeats` rounds."""
  for pipeline in pipelines.values():
    pipeline.epoch()
  rates = {config: [] for config in pipelines}
  for _ in range(repeats):
    for config, pipeline in pipelines.items():
      rates[config].append(pipeline.epoch())
  return rates


# Report.


def _load():
  return '%.2f %.2f %.2f' % os.getloadavg()


def report(rates, megabytes):
  """Prints the throughput table and the per-stage profile.

  `rates` maps configurations to lists of (images/s, images/CPU-s) pairs.
  """
  wall = {config: statistics.median(rate for rate, _ in values)
          for config, values in rates.items()}
  per_cpu = {config: statistics.median(rate for _, rate in values)
             for config, values in rates.items()}
  print('\nsize      stage        decode   threads  images/s (min-max)  '
        'per thread  images/CPU-s')
  for config in rates:
    values = [rate for rate, _ in rates[config]]
    print('%-9s %-12s %-8s %7d  %8.1f (%.0f-%.0f)  %10.1f  %12.1f' % (
        config.size, config.stage, config.decode, config.threads,
        wall[config], min(values), max(values), wall[config] / config.threads,
        per_cpu[config]))
  print('\nscaling of the full pipeline, 2 threads / 1 thread (wall time)')
  for size in megabytes:
    for decode in DECODES:
      one = wall.get(Config(size, 'full', 1, decode))
      two = wall.get(Config(size, 'full', 2, decode))
      if one and two:
        print('%-9s decode=%-8s %.2fx' % (size, decode, two / one))
  print('\nprofile, 1 thread: CPU ms per image of each stage (difference '
        'from the previous stage)')
  for size, mb in megabytes.items():
    configs = [Config(size, stage, 1, 'reduced') for stage in STAGES]
    if not all(config in per_cpu for config in configs):
      continue
    times = [1e3 / per_cpu[config] for config in configs]
    parts = [times[0]] + [b - a for a, b in zip(times, times[1:])]
    print('%-9s (%.2f MB/JPEG) ' % (size, mb) + ', '.join(
        '%s %.2f' % (stage, part) for stage, part in zip(STAGES, parts)) +
          ', total %.2f' % times[-1])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  try:
    thread_counts = [int(value) for value in FLAGS.threads]
  except ValueError:
    raise app.UsageError('--threads takes integers, e.g. 1,2') from None
  unknown = set(FLAGS.sizes) - set(SIZES)
  if unknown:
    raise app.UsageError('unknown --sizes: %s' % ', '.join(sorted(unknown)))
  model_name, cpu_flags = platform_info.cpu_description()
  print('CPU: %s (%s), %d logical cores; load %s' % (
      model_name, ' '.join(cpu_flags), os.cpu_count(), _load()))
  photos = _read_photos(FLAGS.groceries_dir or paths.groceries_dir(),
                        FLAGS.num_images)
  with tempfile.TemporaryDirectory() as work_dir:
    datasets, megabytes = {}, collections.OrderedDict()
    ssd_net = nets_factory.build_ssd_net(FLAGS.model_name)
    for size in SIZES:
      if size in FLAGS.sizes:
        datasets[size], megabytes[size] = write_dataset(
            photos, size, work_dir, ssd_net.params.num_classes)
    configs = configurations([size for size in SIZES if size in datasets],
                             thread_counts, FLAGS.profile)
    pipelines = collections.OrderedDict(
        (config, Pipeline(datasets[config.size], config, ssd_net,
                          FLAGS.decode_min_side)) for config in configs)
    start = time.perf_counter()
    rates = run_interleaved(pipelines, FLAGS.repeats)
    for pipeline in pipelines.values():
      pipeline.close()
  print('timed in %.0f s; load after %s' % (time.perf_counter() - start,
                                            _load()))
  report(rates, megabytes)


if __name__ == '__main__':
  tf.compat.v1.disable_eager_execution()
  app.run(main)
