"""Shared pytest set-up: import path, quiet TensorFlow logs, the real-data
fixture, and the `slow` marker's rule: a test that starts a Python process
(a script, a cluster task, a server) is marked slow, so that
`pytest -m "not slow"` is a quick loop; a test that starts one unmarked
fails and says so."""
import os
import subprocess
import sys

import pytest

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import logging as absl_logging  # noqa: E402
from utils.common import paths  # noqa: E402  (after the import path is set)

# The Python processes started so far in this pytest process (their argv).
_PYTHON_PROCESSES = []
_PROCESSES_BEFORE = pytest.StashKey[int]()
_execute_child = subprocess.Popen._execute_child  # pylint: disable=protected-access


def _recording_execute_child(self, args, executable, *rest, **kwargs):
  argv = [args] if isinstance(args, (str, bytes)) else list(args)
  program = os.path.basename(str(executable or argv[0]))
  if program.startswith('python') or program == os.path.basename(
      sys.executable):
    _PYTHON_PROCESSES.append(argv)
  return _execute_child(self, args, executable, *rest, **kwargs)


subprocess.Popen._execute_child = _recording_execute_child  # pylint: disable=protected-access


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
  item.stash[_PROCESSES_BEFORE] = len(_PYTHON_PROCESSES)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
  outcome = yield
  report = outcome.get_result()
  if (call.when != 'teardown' or not report.passed or
      item.get_closest_marker('slow') is not None):
    return
  started = _PYTHON_PROCESSES[item.stash.get(_PROCESSES_BEFORE, 0):]
  if started:
    report.outcome = 'failed'
    report.longrepr = (
        '%s started %d Python process(es), e.g. %s: mark it '
        '@pytest.mark.slow (or give its fixture to tests marked slow)' % (
            item.nodeid, len(started), ' '.join(map(str, started[0][:3]))))


@pytest.fixture(autouse=True)
def _absl_logs_info():
  """Tests read INFO messages through caplog; a test that parses flags
  resets absl to WARNING, so without this the order the tests run in (on
  which worker) would decide what they see."""
  before = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.INFO)
  yield
  absl_logging.set_verbosity(before)


# Real detection data (Pascal VOC layout) written by others; never copied here.
GROCERIES_ENV = paths.GROCERIES_ENV


@pytest.fixture(scope='session')
def groceries_dir():
  """Path of the Freiburg groceries VOC dataset; skips the test when absent."""
  path = paths.groceries_dir()
  if not os.path.isdir(os.path.join(path, 'Annotations')):
    pytest.skip('real data not found at %s (set %s to its VOC root)' %
                (path, GROCERIES_ENV))
  return path


@pytest.fixture(scope='session')
def sample_dataset_dir(tmp_path_factory):
  """A small built-in sample dataset (16 train, 8 val images), converted."""
  from datasets import sample_data  # pylint: disable=g-import-not-at-top
  return sample_data.ensure_sample_dataset(
      str(tmp_path_factory.mktemp('sample_dataset')), num_train=16, num_val=8)


@pytest.fixture
def mount_tmpfs(tmp_path):
  """mount(size_bytes) -> a tmpfs folder of that size; skips without root."""
  mounted = []

  def mount(size_bytes):
    point = tmp_path / 'disk'
    point.mkdir()
    result = subprocess.run(
        ['mount', '-t', 'tmpfs', '-o', 'size=%d' % size_bytes, 'tmpfs',
         str(point)], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
      pytest.skip('cannot mount a tmpfs here: %s' % result.stderr.strip())
    mounted.append(point)
    return point
  yield mount
  for point in mounted:
    subprocess.run(['umount', '-l', str(point)], timeout=30)
