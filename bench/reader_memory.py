r"""Memory of the training input on 12 MP photos, and the shuffle's quality.

Builds, in a temporary folder, a small dataset of synthetic 12 MP photos
(4000 x 3000 JPEGs with noise, 3-5 MB each, a few boxes), converted by the
project's converter command line, and a dataset of small records (tiny
JPEGs) for the shuffle's quality at scale.  Then, for each source tree (this
one, and `--baseline_tree`, e.g. a worktree of an earlier commit), each in a
child process of its own:

  pipeline  the training input queue
            (`utils.trainer.input_pipeline.build_input_queue`, batch 2, SSD
            augmentation): time to the first batch, then
            `--batches` batches; peak RSS (the child's VmHWM, from wait4);
  train     `train_ssd_network.py --max_number_of_steps 2 --batch_size 2`:
            time from the start of the process to the log line of step 1,
            the whole run, and peak RSS;
  shuffle   the order in which `DetectionDataset.read` delivers the
            records over `--epochs` epochs, with the tree's default buffer
            on the 12 MP photos and explicit buffers on the small records.

Shuffle figures, per stream of draws (N records, epochs of N draws):
  perm      epochs in which every record came exactly once;
  dup/ep    records missing from an epoch (delivered twice instead), mean;
  nbr       consecutive draws that are neighbours in file order (a uniform
            shuffle: ~2/N);
  near      consecutive draws at most max(1, N/100) apart in file order (a
            uniform shuffle: ~2 %): batches of records stored together;
  disp      mean |position in the epoch - position in the files| / N (a
            uniform shuffle: 1/3).

  git worktree add ../reader_before <commit>
  python bench/reader_memory.py --baseline_tree ../reader_before   # ~5.5 min
  git worktree remove ../reader_before
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import cv2
import numpy as np

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)

from utils.common import platform_info  # noqa: E402  (after the path)

FLAGS = flags.FLAGS
flags.DEFINE_integer('num_photos', 20, 'Synthetic 12 MP photos.')
flags.DEFINE_integer('num_records', None, 'Records of the 12 MP split: the '
                     'photos repeated (copies under new names) up to this '
                     'count; default: --num_photos.')
flags.DEFINE_integer('width', 4000, 'Photo width.')
flags.DEFINE_integer('height', 3000, 'Photo height.')
flags.DEFINE_float('noise', 9.0, 'Standard deviation of the photos\' noise '
                   '(sets their JPEG size: 6 -> ~3 MB, 10 -> ~4.4 MB).')
flags.DEFINE_string('baseline_tree', None, 'Another checkout of the project '
                    '(e.g. a worktree of the commit before a change), '
                    'measured the same way as "before".')
flags.DEFINE_integer('batches', 5, 'Batches the pipeline child reads.')
flags.DEFINE_integer('train_steps', 2, 'Training steps of the train child; '
                     '0: no training child.')
flags.DEFINE_integer('epochs', 3, 'Epochs of draws for the shuffle figures.')
flags.DEFINE_integer('small_records', 2000, 'Records of the small-record '
                     'dataset (shards of 200, as the converter writes).')
flags.DEFINE_list('small_buffers', ['128', '1024', '128:10'], 'Shuffle '
                  'buffers tried on the small records, BUFFER[:READERS] '
                  '(records, shards interleaved; 4 by default): 128 is what '
                  '4 MB records get from a 512 MiB budget.')
flags.DEFINE_string('work_dir', None, 'Where the data goes; default: a '
                    'temporary folder, removed at the end.')

# Children: each runs in the root of the tree it measures.
_PIPELINE_CHILD = r'''
import json, sys, time
from absl import logging
import tensorflow as tf
tf.compat.v1.disable_eager_execution()
logging.set_verbosity(logging.INFO)
from datasets import dataset_flags
from utils.trainer import config as config_lib
from utils.trainer import graph as graph_lib
from utils.trainer import input_pipeline
dataset_dir, batches = sys.argv[1], int(sys.argv[2])
config = config_lib.TrainingConfig(data=config_lib.DataOptions(
    dataset=dataset_flags.DatasetConfig(dataset_dir=dataset_dir),
    batch_size=2))
dataset = dataset_flags.load_dataset(config.data.dataset)
ssd_net = graph_lib.build_ssd_net(config.model, dataset.num_classes)
deploy_config = graph_lib.make_deploy_config(config.deployment)
start = time.time()
queue, _ = input_pipeline.build_input_queue(
    dataset, config.data, config.model.model_name, 'NHWC', 0.5, None,
    ssd_net, deploy_config)
batch = queue.dequeue()
with tf.compat.v1.Session() as sess:
  coord = tf.compat.v1.train.Coordinator()
  threads = tf.compat.v1.train.start_queue_runners(sess, coord)
  sess.run(batch)
  first = time.time() - start
  for _ in range(batches - 1):
    sess.run(batch)
  total = time.time() - start
  coord.request_stop()
  coord.join(threads, stop_grace_period_secs=10)
print('RESULT ' + json.dumps({'first_batch_s': first, 'batches_s': total}))
'''

_SHUFFLE_CHILD = r'''
import json, sys
import tensorflow as tf
tf.compat.v1.disable_eager_execution()
from datasets import dataset_factory
dataset_dir, epochs, buffer, readers = sys.argv[1:5]
dataset = dataset_factory.get_dataset('voc', 'train', dataset_dir)
def names(count, **kwargs):
  with tf.Graph().as_default():
    stream = dataset.read(decode_min_side=600, **kwargs).map(
        lambda example: example['filename']).batch(count)
    batch = tf.compat.v1.data.make_one_shot_iterator(stream).get_next()
    with tf.compat.v1.Session() as sess:
      return [name.decode() for name in sess.run(batch)]
in_files = names(dataset.num_samples, shuffle=False, num_epochs=1,
                 num_readers=1)
kwargs = {} if buffer == 'default' else {'shuffle_buffer_size': int(buffer)}
drawn = names(int(epochs) * dataset.num_samples, shuffle=True, seed=1,
              num_readers=int(readers), **kwargs)
print('RESULT ' + json.dumps({'files': in_files, 'drawn': drawn}))
'''


def cpu_model():
  return platform_info.cpu_description()[0]


def load():
  return '%.2f %.2f %.2f' % os.getloadavg()


# ---------------------------------------------------------------------------
# Data.


def synthetic_photo(seed, height, width, noise):
  """A smooth colour field with Gaussian noise and 3 flat boxes (BGR).

  Returns:
    (image, [(xmin, ymin, xmax, ymax)] in pixels).
  """
  rng = np.random.default_rng(seed)
  rows = np.linspace(0, 15, height, dtype=np.float32)[:, None]
  cols = np.linspace(0, 13, width, dtype=np.float32)[None, :]
  image = np.empty((height, width, 3), np.float32)
  for channel in range(3):
    image[..., channel] = 128 + 60 * np.sin(cols + channel + seed) * np.cos(
        rows - channel)
  image += rng.normal(0, noise, (height, width, 3)).astype(np.float32)
  boxes = []
  for _ in range(3):
    x0 = int(rng.integers(0, width // 2))
    y0 = int(rng.integers(0, height // 2))
    x1 = x0 + int(rng.integers(width // 8, width // 2))
    y1 = y0 + int(rng.integers(height // 8, height // 2))
    image[y0:y1, x0:x1] = rng.integers(0, 256, 3)
    boxes.append((x0 + 1, y0 + 1, x1, y1))
  return np.clip(image, 0, 255).astype(np.uint8), boxes


def write_voc_image(root, image_id, image, boxes, quality=92):
  """JPEGImages/<id>.jpg and Annotations/<id>.xml (class 'thing')."""
  height, width = image.shape[:2]
  ok, encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY,
                                             quality])
  assert ok
  with open(os.path.join(root, 'JPEGImages', image_id + '.jpg'), 'wb') as f:
    f.write(encoded.tobytes())
  objects = ''.join(
      '<object><name>thing</name><difficult>0</difficult><truncated>0'
      '</truncated><bndbox><xmin>%d</xmin><ymin>%d</ymin><xmax>%d</xmax>'
      '<ymax>%d</ymax></bndbox></object>' % box for box in boxes)
  with open(os.path.join(root, 'Annotations', image_id + '.xml'), 'w') as f:
    f.write('<annotation><filename>%s.jpg</filename><size><width>%d</width>'
            '<height>%d</height><depth>3</depth></size>%s</annotation>' %
            (image_id, width, height, objects))
  return len(encoded)


def write_voc(root, count, make_photo):
  """A VOC tree of `count` photos of make_photo(i); returns JPEG bytes."""
  for folder in ('JPEGImages', 'Annotations'):
    os.makedirs(os.path.join(root, folder), exist_ok=True)
  total = 0
  for index in range(count):
    image, boxes = make_photo(index)
    total += write_voc_image(root, 'img%05d' % index, image, boxes)
  return total


def copy_voc_image(root, source_id, image_id):
  """Copies a photo and its annotation under a new id."""
  shutil.copyfile(os.path.join(root, 'JPEGImages', source_id + '.jpg'),
                  os.path.join(root, 'JPEGImages', image_id + '.jpg'))
  with open(os.path.join(root, 'Annotations', source_id + '.xml')) as f:
    annotation = f.read().replace(source_id, image_id)
  with open(os.path.join(root, 'Annotations', image_id + '.xml'), 'w') as f:
    f.write(annotation)


def convert(voc_root, output_dir):
  """The converter's command line: split `photos_train` into output_dir."""
  subprocess.run(
      [sys.executable, '-m', 'datasets.pascalvoc_to_tfrecords',
       '--dataset_dir', voc_root, '--output_dir', output_dir,
       '--output_name', 'photos_train', '--discover_labels', '--noprogress'],
      cwd=PROJECT_ROOT, check=True, stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL)


def make_datasets(work_dir):
  """(12 MP dataset dir, small-record dataset dir), converted."""
  big, small = os.path.join(work_dir, 'big'), os.path.join(work_dir, 'small')
  start = time.time()
  jpeg_bytes = write_voc(os.path.join(big, 'voc'), FLAGS.num_photos,
                         lambda i: synthetic_photo(i, FLAGS.height,
                                                   FLAGS.width, FLAGS.noise))
  num_records = FLAGS.num_records or FLAGS.num_photos
  for index in range(FLAGS.num_photos, num_records):
    copy_voc_image(os.path.join(big, 'voc'),
                   'img%05d' % (index % FLAGS.num_photos), 'img%05d' % index)
  convert(os.path.join(big, 'voc'), os.path.join(big, 'out'))
  if FLAGS.small_buffers:
    write_voc(os.path.join(small, 'voc'), FLAGS.small_records,
              lambda i: synthetic_photo(i, 16, 16, 20))
    convert(os.path.join(small, 'voc'), os.path.join(small, 'out'))
  print('Data: %d records of %d photos %dx%d, %.2f MB per JPEG on average; '
        '%d small records (%.0f s)' % (
            num_records, FLAGS.num_photos, FLAGS.width, FLAGS.height,
            jpeg_bytes / FLAGS.num_photos / 1e6,
            FLAGS.small_records if FLAGS.small_buffers else 0,
            time.time() - start))
  return os.path.join(big, 'out'), os.path.join(small, 'out')


# ---------------------------------------------------------------------------
# Children.


def run_child(args, tree, marker=None):
  """Runs `args` in `tree`; returns (output lines, peak RSS GiB, wall s,
  CPU s, seconds from the start to the first line containing `marker`)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1')
  start = time.time()
  child = subprocess.Popen(args, cwd=tree, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
  lines, marked = [], None
  for line in child.stdout:
    lines.append(line.rstrip('\n'))
    if marker and marked is None and marker in line:
      marked = time.time() - start
  _, status, usage = os.wait4(child.pid, 0)
  child.returncode = os.waitstatus_to_exitcode(status)
  wall = time.time() - start
  if child.returncode:
    raise RuntimeError('%s failed in %s:\n%s' % (
        ' '.join(args[:3]), tree, '\n'.join(lines[-30:])))
  return (lines, usage.ru_maxrss / 2**20, wall,
          usage.ru_utime + usage.ru_stime, marked)


def child_result(lines):
  line = next(line for line in lines if line.startswith('RESULT '))
  return json.loads(line[len('RESULT '):])


def measure_pipeline(tree, dataset_dir):
  lines, rss, wall, cpu, _ = run_child(
      [sys.executable, '-c', _PIPELINE_CHILD, dataset_dir,
       str(FLAGS.batches)], tree)
  result = child_result(lines)
  shuffle_lines = [line for line in lines if 'Shuffle buffer' in line or
                   'Records average' in line]
  return dict(result, rss_gib=rss, wall_s=wall, cpu_s=cpu,
              log=shuffle_lines)


def measure_training(tree, dataset_dir, train_dir):
  args = [sys.executable, 'train_ssd_network.py', '--dataset_dir',
          dataset_dir, '--train_dir', train_dir, '--batch_size', '2',
          '--max_number_of_steps', str(FLAGS.train_steps),
          '--log_every_n_steps', '1', '--save_interval_secs', '100000']
  _, rss, wall, cpu, first = run_child(args, tree, marker='] step 1:')
  return dict(rss_gib=rss, wall_s=wall, cpu_s=cpu, first_step_s=first)


def measure_shuffle(tree, dataset_dir, buffer_spec):
  buffer, _, readers = buffer_spec.partition(':')
  lines, _, wall, _, _ = run_child(
      [sys.executable, '-c', _SHUFFLE_CHILD, dataset_dir, str(FLAGS.epochs),
       buffer, readers or '4'], tree)
  result = child_result(lines)
  return dict(shuffle_figures(result['files'], result['drawn']), wall_s=wall)


def shuffle_figures(in_files, drawn):
  """perm, dup/ep, nbr, near, disp of a stream (module docstring)."""
  position = {name: index for index, name in enumerate(in_files)}
  count = len(in_files)
  order = [position[name] for name in drawn]
  epochs = [order[i:i + count] for i in range(0, len(order), count)]
  permutations = sum(sorted(epoch) == list(range(count)) for epoch in epochs)
  missing = [count - len(set(epoch)) for epoch in epochs]
  steps = [abs(a - b) for a, b in zip(order, order[1:])]
  near = max(1, count // 100)
  displacement = [abs(place - index) for epoch in epochs
                  for place, index in enumerate(epoch)]
  return {'perm': '%d/%d' % (permutations, len(epochs)),
          'dup_per_epoch': float(np.mean(missing)),
          'neighbours': steps.count(1) / max(1, len(steps)),
          'near': sum(step <= near for step in steps) / max(1, len(steps)),
          'displacement': float(np.mean(displacement)) / count}


# ---------------------------------------------------------------------------
# Report.


def trees():
  """[(label, path)]: the baseline first, when given."""
  found = [('after', PROJECT_ROOT)]
  if FLAGS.baseline_tree:
    found.insert(0, ('before', os.path.abspath(FLAGS.baseline_tree)))
  return found


def memory_rows(big_dir, work_dir):
  rows = []
  for label, tree in trees():
    pipeline = measure_pipeline(tree, big_dir)
    print('  %s pipeline: %s' % (label, json.dumps(pipeline)), flush=True)
    train = None
    if FLAGS.train_steps:
      train = measure_training(tree, big_dir,
                               os.path.join(work_dir, 'train_' + label))
      print('  %s train: %s' % (label, json.dumps(train)), flush=True)
    rows.append((label, pipeline, train))
  return rows


def print_memory_table(rows):
  print('\n| tree | input: peak RSS GiB | first batch s | %d batches s | '
        'training (%d steps, batch 2): peak RSS GiB | start to step 1 s | '
        'whole run s |' % (FLAGS.batches, FLAGS.train_steps))
  print('|---|---|---|---|---|---|---|')
  for label, pipeline, train in rows:
    train_cells = ('%.2f | %.1f | %.1f' % (
        train['rss_gib'], train['first_step_s'], train['wall_s'])
                   if train else ' | | ')
    print('| %s | %.2f | %.1f | %.1f | %s |' % (
        label, pipeline['rss_gib'], pipeline['first_batch_s'],
        pipeline['batches_s'], train_cells))


def shuffle_rows(big_dir, small_dir):
  rows = []
  for label, tree in trees():
    rows.append((label, '12 MP photos', 'default',
                 measure_shuffle(tree, big_dir, 'default')))
    for buffer in FLAGS.small_buffers:
      rows.append((label, '%d small records' % FLAGS.small_records, buffer,
                   measure_shuffle(tree, small_dir, buffer)))
  return rows


def print_shuffle_table(rows):
  print('\n| tree | data | buffer[:readers] | perm | dup/ep | nbr | near '
        '| disp |')
  print('|---|---|---|---|---|---|---|---|')
  for label, data, buffer, figures in rows:
    print('| %s | %s | %s | %s | %.1f | %.4f | %.4f | %.3f |' % (
        label, data, buffer, figures['perm'], figures['dup_per_epoch'],
        figures['neighbours'], figures['near'], figures['displacement']))


def main(argv):
  del argv
  print('CPU: %s, %d logical cores; load %s' % (cpu_model(), os.cpu_count(),
                                               load()), flush=True)
  work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix='reader_memory_')
  start = time.time()
  try:
    big_dir, small_dir = make_datasets(work_dir)
    memory = memory_rows(big_dir, work_dir)
    shuffle = shuffle_rows(big_dir, small_dir)
  finally:
    if not FLAGS.work_dir:
      shutil.rmtree(work_dir, ignore_errors=True)
  for label, pipeline, _ in memory:
    for line in pipeline['log']:
      print('%s log: %s' % (label, re.sub(r'^\S+ \S+ +\d+ \S+\] ', '', line)))
  print_memory_table(memory)
  print_shuffle_table(shuffle)
  print('\nLoad %s at the end; %.0f s in all.' % (load(),
                                                  time.time() - start))


if __name__ == '__main__':
  app.run(main)
