"""A loopback cluster of train_ssd_network.py for the tests (this module
holds no tests): one ps and some workers as subprocesses on 127.0.0.1
(ports picked at run time), each in its own process group, killed whatever
happens.  Used by tests/test_distributed.py and tests/test_batch_norm.py.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from deployment import cluster as cluster_lib
from utils.checkpointing import checkpoints

from conftest import PROJECT_ROOT

SCRIPT = os.path.join(PROJECT_ROOT, 'train_ssd_network.py')
LOCALHOST = '127.0.0.1'
# Bounds, far above the expected times, so that a hang fails instead of
# blocking the test run.
TRAIN_TIMEOUT_SECS = 300
EXIT_TIMEOUT_SECS = 60

_STEP_LINE = re.compile(r'\] step (\d+): loss ')


def free_ports(count):
  """`count` distinct free ports on the loopback interface."""
  sockets = []
  try:
    for _ in range(count):
      sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      sock.bind((LOCALHOST, 0))
      sockets.append(sock)
    return [sock.getsockname()[1] for sock in sockets]
  finally:
    for sock in sockets:
      sock.close()


def loopback_hosts(count):
  return ['%s:%d' % (LOCALHOST, port) for port in free_ports(count)]


class LocalCluster(object):
  """One ps and `num_workers` workers of the training script on loopback."""

  def __init__(self, tmp_path, dataset_dir, num_workers=2, flags=(),
               use_tf_config=False):
    """With use_tf_config, each task gets the cluster in TF_CONFIG alone."""
    hosts = loopback_hosts(1 + num_workers)
    self.ps_hosts, self.worker_hosts = hosts[:1], hosts[1:]
    self.train_dir = str(tmp_path / 'train')
    self._log_dir = tmp_path
    self._use_tf_config = use_tf_config
    cluster_flags = [] if use_tf_config else [
        '--ps_hosts=' + ','.join(self.ps_hosts),
        '--worker_hosts=' + ','.join(self.worker_hosts)]
    self._flags = cluster_flags + [
        '--train_dir=' + self.train_dir, '--dataset_dir=' + dataset_dir,
        '--batch_size=1', '--precision=mixed_bfloat16',
        '--learning_rate=0.0001', '--log_every_n_steps=1',
        '--save_summaries_secs=0', '--max_to_keep=1', '--num_readers=1',
        '--num_preprocessing_threads=1'] + list(flags)
    self.processes = {}

  def start(self, job_name, task):
    name = '%s%d' % (job_name, task)
    log = open(os.path.join(str(self._log_dir), name + '.log'), 'w')
    # Own process group: killing it kills anything the task started.
    env = dict(os.environ)
    env.pop(cluster_lib.TF_CONFIG_ENV, None)
    if self._use_tf_config:
      env[cluster_lib.TF_CONFIG_ENV] = tf_config(
          self.ps_hosts, self.worker_hosts, job_name, task)
      task_flags = []
    else:
      task_flags = ['--job_name=' + job_name, '--task=%d' % task]
    self.processes[name] = subprocess.Popen(
        [sys.executable, SCRIPT] + task_flags + self._flags,
        stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
        start_new_session=True, env=env)
    log.close()
    return self.processes[name]

  def start_all(self, num_workers=2):
    self.start('ps', 0)
    for task in range(num_workers):
      self.start('worker', task)

  def log(self, name):
    with open(os.path.join(str(self._log_dir), name + '.log')) as log:
      return log.read()

  def steps(self, name):
    """The global steps `name` logged, one per training step it ran."""
    return [int(step) for step in _STEP_LINE.findall(self.log(name))]

  def wait(self, name, timeout=TRAIN_TIMEOUT_SECS):
    """Waits for task `name` to exit; returns its exit code."""
    try:
      return self.processes[name].wait(timeout)
    except subprocess.TimeoutExpired:
      pytest.fail('%s still running after %d s; its log ends with:\n%s' %
                  (name, timeout, self.log(name)[-3000:]))

  def kill(self, name, sig=signal.SIGKILL):
    process = self.processes[name]
    if process.poll() is None:
      try:
        os.killpg(process.pid, sig)
      except ProcessLookupError:
        pass
    return process.wait(EXIT_TIMEOUT_SECS)

  def kill_all(self):
    for name in list(self.processes):
      self.kill(name)


@pytest.fixture
def make_cluster(tmp_path, sample_dataset_dir):
  clusters = []

  def make(**kwargs):
    clusters.append(LocalCluster(tmp_path, sample_dataset_dir, **kwargs))
    return clusters[-1]
  yield make
  for local_cluster in clusters:
    local_cluster.kill_all()


def assert_clean_exit(local_cluster, name):
  code = local_cluster.wait(name)
  log = local_cluster.log(name)
  assert code == 0, '%s exited with %d:\n%s' % (name, code, log[-3000:])
  assert 'Traceback' not in log, log[-3000:]


def checkpoint_values(path):
  """{name: value} of a checkpoint (prefix, or a directory: its latest),
  read as an evaluator would."""
  reader = tf.train.load_checkpoint(checkpoints.resolve_checkpoint_path(path))
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}


def tf_config(ps, workers, task_type, index, chief=None):
  """The TF_CONFIG text a cluster manager gives one task."""
  cluster = {'ps': list(ps), 'worker': list(workers)}
  if chief:
    cluster['chief'] = [chief]
  return json.dumps({'cluster': cluster,
                     'task': {'type': task_type, 'index': index}})
