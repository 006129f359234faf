"""Screenshots of TensorBoard as a user sees it, over a short run on the
built-in sample dataset.

Trains train_ssd_network.py on the sample data in --legs legs up to
--max_number_of_steps steps, evaluates each leg's checkpoint on the `val`
split with eval_ssd_network.py (so AP and PR curves have one point per leg),
serves the run's folder with a real `tensorboard` on a loopback port and
takes a headless Chromium (Debian's `chromium` package) screenshot of the
Scalars, Images and PR Curves dashboards, saved as small PNGs in
--output_dir.  Nothing is downloaded; only the sample data is pictured.

  nice -n 10 .venv/bin/python bench/screenshot_tensorboard.py
  nice -n 10 .venv/bin/python bench/screenshot_tensorboard.py --noretrain \\
      --output_dir bench/out/shots   # the same run, shot again

Checkpoints, events and logs go under --work_dir (default
bench/out/screenshot_tensorboard, erased first unless --noretrain).
"""
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from absl import app
from absl import flags

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
import cv2
import numpy as np

from datasets import sample_data
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
LOOPBACK = '127.0.0.1'
# The dashboards shot: (file name, dashboard, flag holding its tag filter).
# The URL fragment sets the tag filter and, for a few points per curve, no
# smoothing.
DASHBOARDS = (('tensorboard_scalars.png', 'scalars', 'scalars_filter'),
              ('tensorboard_images.png', 'images', 'images_filter'),
              ('tensorboard_pr_curves.png', 'pr_curves', 'pr_curves_filter'))


def define_flags():
  """The script's flags (only when run as a program)."""
  flags.DEFINE_string('work_dir', os.path.join(PROJECT_ROOT, 'bench', 'out',
                                               'screenshot_tensorboard'),
                      'Sample data, checkpoints, events and logs.')
  flags.DEFINE_string('output_dir', os.path.join(PROJECT_ROOT, 'docs',
                                                 'images'),
                      'Where the screenshots are written.')
  flags.DEFINE_boolean('retrain', True,
                       'Erase --work_dir and train and evaluate again; '
                       'with --noretrain shoot the run already there.')
  flags.DEFINE_integer('max_number_of_steps', 30, 'Training steps in all.')
  flags.DEFINE_integer('legs', 3, 'Training legs, each followed by an '
                       'evaluation of its checkpoint.')
  flags.DEFINE_integer('batch_size', 2, 'Training images per step.')
  flags.DEFINE_integer('num_train', 32, 'Sample training images.')
  flags.DEFINE_integer('num_val', 8, 'Sample validation images (all '
                       'evaluated; the first 3 drawn).')
  flags.DEFINE_string('scalars_filter',
                      'mAP|learning_rate|total_loss|ssd_losses|images_per_sec',
                      'Tag filter (regular expression) of the Scalars '
                      'screenshot: the cards a user looks at first.')
  flags.DEFINE_string('images_filter', '', 'Tag filter of the Images '
                      'screenshot; empty: every image.')
  flags.DEFINE_string('pr_curves_filter', '', 'Tag filter of the PR Curves '
                      'screenshot; empty: every class.')
  flags.DEFINE_string('chromium', 'chromium', 'Headless Chromium binary.')
  flags.DEFINE_integer('width', 1400, 'Browser window width, pixels.')
  flags.DEFINE_integer('height', 900, 'Browser window height, pixels.')
  flags.DEFINE_integer('virtual_time_budget_ms', 20000,
                       'Virtual time Chromium gives the page to render.')
  flags.DEFINE_integer('max_png_bytes', 300000,
                       'Size bound of each screenshot: colours are reduced '
                       'until it fits.')


# ---------------------------------------------------------------------------
# A TensorBoard server and its data API (also used by tests/test_tensorboard).


def free_port():
  """A TCP port free on the loopback interface (just now)."""
  with contextlib.closing(socket.socket(socket.AF_INET,
                                        socket.SOCK_STREAM)) as sock:
    sock.bind((LOOPBACK, 0))
    return sock.getsockname()[1]


class TensorBoardServer(object):
  """A `tensorboard` process serving `logdir` on 127.0.0.1 (a context).

  The logdir is loaded once, before the server answers (a blocking
  reload), so every answer sees all of it.  Leaving the context kills the
  process.
  """

  def __init__(self, logdir, start_timeout_secs=60):
    self.port = free_port()
    self.url = 'http://%s:%d' % (LOOPBACK, self.port)
    self._start_timeout_secs = start_timeout_secs
    self._command = [
        sys.executable, '-m', 'tensorboard.main', '--logdir', logdir,
        '--host', LOOPBACK, '--port', str(self.port), '--load_fast', 'false',
        '--reload_task', 'blocking', '--reload_interval', '0']
    self._process = None

  def __enter__(self):
    self._process = subprocess.Popen(
        self._command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
      self._wait_until_answering()
    except BaseException:
      self.__exit__()
      raise
    return self

  def _wait_until_answering(self):
    deadline = time.time() + self._start_timeout_secs
    while True:
      if self._process.poll() is not None:
        raise RuntimeError('tensorboard exited with code %d:\n%s' % (
            self._process.returncode, self._process.stdout.read()[-3000:]))
      try:
        self.bytes('/data/runs', timeout=2)
        return
      except (urllib.error.URLError, OSError):
        if time.time() > deadline:
          raise RuntimeError('tensorboard did not answer on %s within %g s'
                             % (self.url, self._start_timeout_secs))
        time.sleep(0.5)

  def __exit__(self, *unused_exc_info):
    if self._process.poll() is None:
      self._process.kill()
    self._process.communicate(timeout=30)

  def bytes(self, route, timeout=30, **query):
    """The body of the answer to `route` (e.g. '/data/runs')."""
    url = self.url + route
    if query:
      url += '?' + urllib.parse.urlencode(query)
    with urllib.request.urlopen(url, timeout=timeout) as response:
      return response.read()

  def json(self, route, **query):
    """The decoded JSON answer of the data API's `route`."""
    return json.loads(self.bytes(route, **query))


# ---------------------------------------------------------------------------
# The run.


def _run_logged(command, log_path):
  """Runs `command`, appending its output to `log_path`; fails loudly."""
  with open(log_path, 'a') as log:
    log.write('$ %s\n' % ' '.join(command))
    log.flush()
    code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT,
                           cwd=PROJECT_ROOT)
  if code:
    raise RuntimeError('exit code %d of %s; see %s' % (code, command[1],
                                                        log_path))


def leg_steps(max_number_of_steps, legs):
  """The global steps at which each leg ends, e.g. (30, 3) -> [10, 20, 30]."""
  return [max_number_of_steps * (leg + 1) // legs for leg in range(legs)]


def train_and_evaluate(work_dir):
  """Trains in legs and evaluates each leg's checkpoint; the train_dir."""
  dataset_dir = sample_data.ensure_sample_dataset(
      os.path.join(work_dir, 'sample'), num_train=FLAGS.num_train,
      num_val=FLAGS.num_val)
  train_dir = os.path.join(work_dir, 'train')
  log_path = os.path.join(work_dir, 'run.log')
  for step in leg_steps(FLAGS.max_number_of_steps, FLAGS.legs):
    start = time.time()
    _run_logged([
        sys.executable, os.path.join(PROJECT_ROOT, 'train_ssd_network.py'),
        '--train_dir', train_dir, '--dataset_dir', dataset_dir,
        '--batch_size', str(FLAGS.batch_size), '--max_number_of_steps',
        str(step), '--log_every_n_steps', '1', '--save_summaries_secs', '5',
        '--num_readers', '1', '--num_preprocessing_threads', '2',
        '--precision', 'float32', '--seed', '1'], log_path)
    _run_logged([
        sys.executable, os.path.join(PROJECT_ROOT, 'eval_ssd_network.py'),
        '--checkpoint_path', train_dir, '--dataset_dir', dataset_dir,
        '--dataset_split_name', 'val', '--batch_size', '4', '--noprogress'],
        log_path)
    print('step %d trained and evaluated (%.0f s)' % (step,
                                                      time.time() - start))
    sys.stdout.flush()
  return train_dir


# ---------------------------------------------------------------------------
# Screenshots.


def screenshot(url, path):
  """Headless Chromium's screenshot of `url` into the PNG `path`."""
  command = [
      FLAGS.chromium, '--headless', '--no-sandbox', '--disable-gpu',
      '--hide-scrollbars', '--no-first-run', '--disable-extensions',
      '--window-size=%d,%d' % (FLAGS.width, FLAGS.height),
      '--virtual-time-budget=%d' % FLAGS.virtual_time_budget_ms,
      '--screenshot=%s' % path, url]
  subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL, timeout=300)


def shrink_png(path, max_bytes):
  """Rewrites the PNG at `path` at most `max_bytes` long when it can.

  Maximum compression first; then fewer colour levels per channel (64, 32,
  16), which a screenshot of flat UI colours keeps legible.

  Returns:
    The final size in bytes.
  """
  image = cv2.imread(path, cv2.IMREAD_COLOR)
  for levels in (256, 64, 32, 16):
    step = 256 // levels
    reduced = (image // step * step + step // 2).astype(np.uint8) if (
        levels < 256) else image
    encoded = cv2.imencode('.png', reduced,
                           [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    if len(encoded) <= max_bytes:
      break
  with open(path, 'wb') as out:
    out.write(encoded)
  return len(encoded)


def shoot_dashboards(train_dir, output_dir):
  """Serves `train_dir` and shoots each dashboard of DASHBOARDS."""
  os.makedirs(output_dir, exist_ok=True)
  with TensorBoardServer(train_dir) as server:
    for file_name, dashboard, filter_flag in DASHBOARDS:
      path = os.path.join(output_dir, file_name)
      fragment = '%s&_smoothingWeight=0&%s' % (
          dashboard,
          urllib.parse.urlencode({'tagFilter': FLAGS[filter_flag].value}))
      screenshot('%s/?darkMode=false#%s' % (server.url, fragment), path)
      size = shrink_png(path, FLAGS.max_png_bytes)
      print('%s: %d bytes' % (path, size))


def main(unused_argv):
  if shutil.which(FLAGS.chromium) is None:
    sys.exit('error: %s not found (apt-get install chromium)' %
             FLAGS.chromium)
  start = time.time()
  train_dir = os.path.join(FLAGS.work_dir, 'train')
  if FLAGS.retrain:
    shutil.rmtree(FLAGS.work_dir, ignore_errors=True)
    os.makedirs(FLAGS.work_dir)
    train_dir = train_and_evaluate(FLAGS.work_dir)
  shoot_dashboards(train_dir, FLAGS.output_dir)
  print('done in %.0f s' % (time.time() - start))


if __name__ == '__main__':
  define_flags()
  app.run(main)
