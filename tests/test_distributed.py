"""Tests of multi-machine training: flags, and a real cluster on loopback.

The cluster tests run one ps and two workers of train_ssd_network.py as
subprocesses on 127.0.0.1 (tests/cluster_fixtures.py), each in its own
process group, killed whatever happens.  They keep SSD300 small: batch size
1, bfloat16 compute, a few steps.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from deployment import cluster as cluster_lib
from deployment import cluster_server

from cluster_fixtures import assert_clean_exit
from cluster_fixtures import EXIT_TIMEOUT_SECS
from cluster_fixtures import checkpoint_values
from cluster_fixtures import LOCALHOST
from cluster_fixtures import loopback_hosts
from cluster_fixtures import make_cluster  # noqa: F401  (a fixture)
from cluster_fixtures import SCRIPT
from cluster_fixtures import tf_config
from cluster_fixtures import TRAIN_TIMEOUT_SECS
from conftest import PROJECT_ROOT


def assert_holds_finite_model(values):
  # The shared variables: the network's (on the ps) and Adam's slots.
  assert 'ssd_300_vgg/conv1/conv1_1/weights' in values
  assert 'ssd_300_vgg/conv1/conv1_1/weights/Adam' in values
  assert 'ssd_300_vgg/block11_box/conv_cls/biases' in values
  for name, value in values.items():
    if np.issubdtype(np.asarray(value).dtype, np.floating):
      assert np.all(np.isfinite(value)), name


# --------------------------------------------------------------------------
# Flags.


class TestResolveSettings:

  def test_single_process_keeps_the_given_values(self):
    settings = cluster_lib.resolve_settings(worker_replicas=2,
                                            num_ps_tasks=1)
    assert settings == (None, 2, 1, None)

  def test_counts_derive_from_the_host_lists(self):
    settings = cluster_lib.resolve_settings(
        'a:1,b:1', 'c:1, d:2,e:3', 'worker', 2, sync_replicas=True)
    assert settings.cluster.ps_hosts == ('a:1', 'b:1')
    assert settings.cluster.worker_hosts == ('c:1', 'd:2', 'e:3')
    assert settings.cluster.task_device == '/job:worker/task:2'
    assert not settings.cluster.is_chief
    assert settings[1:] == (3, 2, 3)

  def test_matching_explicit_counts_and_aggregation(self):
    settings = cluster_lib.resolve_settings(
        'a:1', 'b:1,c:1', 'ps', 0, worker_replicas=2, num_ps_tasks=1,
        sync_replicas=True, replicas_to_aggregate=1)
    assert settings.cluster.is_ps
    assert settings[1:] == (2, 1, 1)

  @pytest.mark.parametrize('kwargs, message', [
      (dict(worker_replicas=3), r'--worker_replicas=3 conflicts with the 2 '
       r'hosts of --worker_hosts'),
      (dict(num_ps_tasks=2), r'--num_ps_tasks=2 conflicts with the 1 hosts'),
      (dict(task=2), r'--task=2 is not a worker task'),
      (dict(job_name='chief'), r'--job_name must be ps or worker'),
      (dict(ps_hosts=None), r'needs --ps_hosts, --worker_hosts and '
       r'--job_name together'),
      (dict(ps_hosts='a'), r"--ps_hosts: 'a' is not host:port"),
      (dict(worker_hosts='b:1,a:1'), r'repeated: a:1'),
      (dict(sync_replicas=True, replicas_to_aggregate=0),
       r'--replicas_to_aggregate must be at least 1'),
  ])
  def test_inconsistent_flags_are_clear_errors(self, kwargs, message):
    args = dict(ps_hosts='a:1', worker_hosts='b:1,c:1', job_name='worker',
                task=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
      cluster_lib.resolve_settings(**args)

  def test_sync_replicas_needs_a_cluster(self):
    with pytest.raises(ValueError, match='--sync_replicas needs a cluster'):
      cluster_lib.resolve_settings(sync_replicas=True)

  def test_worker_sessions_see_only_the_ps_and_themselves(self):
    from utils.trainer import train_tools  # pylint: disable=g-import-not-at-top
    from deployment import model_deploy  # pylint: disable=g-import-not-at-top
    local = train_tools.session_config(model_deploy.DeploymentConfig(),
                                       precision='mixed_bfloat16')
    cluster = cluster_lib.Cluster.from_flags('a:1', 'b:1,c:1', 'worker', 1)
    config = cluster_server.worker_session_config(cluster, local)
    assert list(config.device_filters) == ['/job:ps', '/job:worker/task:1']
    rewrites = config.graph_options.rewrite_options
    assert rewrites.auto_mixed_precision_onednn_bfloat16 == (
        rewrites.ON)
    assert rewrites.remapping == rewrites.OFF
    assert not local.device_filters  # The given config is left alone.


class TestTfConfig:

  def test_chief_becomes_worker_0_and_workers_follow(self):
    text = tf_config(['p:1'], ['w:1', 'w:2'], 'worker', 1, chief='c:1')
    cluster = cluster_lib.Cluster.from_tf_config(text)
    assert cluster == cluster_lib.Cluster(('p:1',), ('c:1', 'w:1', 'w:2'),
                                          'worker', 2)
    chief = cluster_lib.Cluster.from_tf_config(
        tf_config(['p:1'], ['w:1', 'w:2'], 'chief', 0, chief='c:1'))
    assert chief.is_chief and chief.fingerprint == cluster.fingerprint

  def test_without_a_chief_worker_0_is_the_chief(self):
    settings = cluster_lib.resolve_settings(
        tf_config=tf_config(['p:1', 'p:2'], ['w:1', 'w:2'], 'ps', 1))
    assert settings.cluster == cluster_lib.Cluster(
        ('p:1', 'p:2'), ('w:1', 'w:2'), 'ps', 1)
    assert settings[1:] == (2, 2, None)
    assert cluster_lib.Cluster.from_tf_config(
        tf_config(['p:1'], ['w:1', 'w:2'], 'worker', 0)).is_chief

  def test_a_one_task_cluster_is_a_local_run(self):
    assert cluster_lib.resolve_settings(
        tf_config=tf_config([], ['w:1'], 'worker', 0)).cluster is None

  def test_matching_flags_are_accepted(self):
    settings = cluster_lib.resolve_settings(
        'p:1', 'w:1,w:2', 'worker', 1,
        tf_config=tf_config(['p:1'], ['w:1', 'w:2'], 'worker', 1))
    assert settings.cluster.task == 1

  @pytest.mark.parametrize('flags, message', [
      (dict(ps_hosts='p:9', worker_hosts='w:1,w:2', job_name='worker',
            task=1), r'TF_CONFIG and the cluster flags disagree: TF_CONFIG '
       r'says ps \[p:1\], workers \[w:1, w:2\], this task worker 1; the '
       r'flags say ps \[p:9\]'),
      (dict(task=0, task_given=True), r'the flags say --task=0'),
  ])
  def test_conflicting_flags_are_a_clear_error(self, flags, message):
    with pytest.raises(ValueError, match=message):
      cluster_lib.resolve_settings(
          tf_config=tf_config(['p:1'], ['w:1', 'w:2'], 'worker', 1), **flags)

  @pytest.mark.parametrize('text, message', [
      ('{"cluster": ', 'TF_CONFIG is not valid'),
      (tf_config(['p:1'], ['w:1'], 'evaluator', 0), 'eval_ssd_network.py'),
      (tf_config([], ['w:1', 'w:2'], 'worker', 0), 'has no "ps" tasks'),
      (tf_config(['p:1'], ['w:1'], 'worker', 3), r'TF_CONFIG: --task=3'),
      (json.dumps({'cluster': {'ps': ['p:1'], 'tpu': ['t:1']},
                   'task': {'type': 'ps'}}), r'unknown job\(s\) tpu'),
  ])
  def test_bad_tf_config_names_tf_config(self, text, message):
    with pytest.raises(ValueError, match=message):
      cluster_lib.Cluster.from_tf_config(text)


# --------------------------------------------------------------------------
# deployment/examples: each derives one consistent cluster for every task.

EXAMPLES_DIR = os.path.join(PROJECT_ROOT, 'deployment', 'examples')
CLUSTER_FLAGS = ('--ps_hosts', '--worker_hosts', '--job_name', '--task',
                 '--worker_replicas', '--num_ps_tasks')


def assert_one_cluster(tf_configs, num_ps, num_workers):
  """Every task's TF_CONFIG gives the same cluster, each role exactly once."""
  clusters = [cluster_lib.Cluster.from_tf_config(text) for text in tf_configs]
  assert len({cluster.fingerprint for cluster in clusters}) == 1
  assert sorted((c.job_name, c.task) for c in clusters) == (
      [('ps', i) for i in range(num_ps)] +
      [('worker', i) for i in range(num_workers)])
  assert [c.num_ps_tasks for c in clusters] == [num_ps] * len(clusters)
  return clusters


def assert_no_cluster_flags(args):
  assert not [arg for arg in args if arg.split('=')[0] in CLUSTER_FLAGS], args


def tfjob_tf_configs(manifest):
  """(replica type, container, TF_CONFIG) of each pod, as Kubeflow's
  training operator makes them: '<job>-<type>-<index>.<namespace>.svc:<port
  named tfjob-port>' for every replica of every type."""
  name = manifest['metadata']['name']
  namespace = manifest['metadata'].get('namespace', 'default')
  specs = manifest['spec']['tfReplicaSpecs']
  cluster = {}
  for replica_type, spec in specs.items():
    container, = spec['template']['spec']['containers']
    port, = [p['containerPort'] for p in container['ports']
             if p['name'] == 'tfjob-port']
    cluster[replica_type.lower()] = [
        '%s-%s-%d.%s.svc:%d' % (name, replica_type.lower(), index, namespace,
                                port) for index in range(spec['replicas'])]
  for replica_type, spec in specs.items():
    container, = spec['template']['spec']['containers']
    for index in range(spec['replicas']):
      yield replica_type, container, json.dumps({
          'cluster': cluster,
          'task': {'type': replica_type.lower(), 'index': index}})


def test_the_kubeflow_tfjob_gives_every_pod_the_same_cluster():
  yaml = pytest.importorskip('yaml')
  with open(os.path.join(EXAMPLES_DIR, 'tfjob.yaml')) as manifest_file:
    manifest = yaml.safe_load(manifest_file)
  assert manifest['kind'] == 'TFJob'
  pods = list(tfjob_tf_configs(manifest))
  clusters = assert_one_cluster([text for _, _, text in pods], 1, 3)
  for (replica_type, container, _), cluster in zip(pods, clusters):
    assert container['command'][-1] == 'train_ssd_network.py'
    assert_no_cluster_flags(container['args'])
    # The chief, and only it, is the trainer's worker 0.
    assert cluster.is_chief == (replica_type == 'Chief')
    if not cluster.is_ps:
      assert any(arg.startswith('--train_dir=') for arg in container['args'])


_FAKE_SRUN = """#!/bin/bash
# srun for one node: runs the task command once per rank.
while [[ "$1" == --* ]]; do shift; done
for (( rank = 0; rank < SLURM_NTASKS; rank++ )); do
  SLURM_PROCID=$rank "$@" || exit 1
done
"""
_FAKE_SCONTROL = """#!/bin/bash
# 'scontrol show hostnames node[1-3]' -> one name per line.
printf '%s\\n' node1 node2 node3
"""
_FAKE_PYTHON = """#!/bin/bash
# Records what each task would run.
printf '%s' "$TF_CONFIG" > "$SSD_DIR/task$SLURM_PROCID.tf_config"
printf '%s\\n' "$@" > "$SSD_DIR/task$SLURM_PROCID.args"
"""


def test_the_slurm_script_gives_every_task_the_same_cluster(tmp_path):
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for name, text in [('srun', _FAKE_SRUN), ('scontrol', _FAKE_SCONTROL),
                     ('python', _FAKE_PYTHON)]:
    (bin_dir / name).write_text(text)
    (bin_dir / name).chmod(0o755)
  env = dict(os.environ, PATH='%s:%s' % (bin_dir, os.environ['PATH']),
             SLURM_JOB_NODELIST='node[1-3]', SLURM_NTASKS='3',
             SLURM_JOB_ID='42', SSD_DIR=str(tmp_path),
             SSD_PYTHON=str(bin_dir / 'python'))
  env.pop('TF_CONFIG', None)
  subprocess.run(['bash', os.path.join(EXAMPLES_DIR, 'train_slurm.sbatch')],
                 env=env, check=True, timeout=EXIT_TIMEOUT_SECS,
                 cwd=str(tmp_path))
  tf_configs = [(tmp_path / ('task%d.tf_config' % rank)).read_text()
                for rank in range(3)]
  clusters = assert_one_cluster(tf_configs, 1, 2)
  assert clusters[0].ps_hosts == ('node1:2222',)
  assert clusters[1].is_chief and clusters[1].host == 'node2:2222'
  for rank in range(3):
    args = (tmp_path / ('task%d.args' % rank)).read_text().split('\n')
    assert_no_cluster_flags(args)
    assert '--train_dir=%s/ckpt/ssd-train-42' % tmp_path in args


@pytest.mark.slow
def test_conflicting_flags_fail_before_training(tmp_path):
  result = subprocess.run(
      [sys.executable, SCRIPT, '--ps_hosts=%s:1' % LOCALHOST,
       '--worker_hosts=%s:2,%s:3' % (LOCALHOST, LOCALHOST),
       '--job_name=worker', '--task=0', '--worker_replicas=3',
       '--train_dir=%s' % tmp_path],
      capture_output=True, text=True, timeout=EXIT_TIMEOUT_SECS,
      cwd=PROJECT_ROOT)
  assert result.returncode == 1
  assert '--worker_replicas=3 conflicts with the 2 hosts' in result.stderr
  assert 'Traceback' not in result.stderr


# --------------------------------------------------------------------------
# Cluster checks, bounded waits and signals, on real processes: tasks that
# only start their server and run deployment/cluster*.py (no SSD graph), so
# each takes seconds.

_TASK_STUB = r"""
import json, sys, threading, time
from absl import logging
logging.set_verbosity(logging.INFO)
logging.use_absl_handler()
import tensorflow as tf
from deployment import cluster as cluster_lib
from deployment import cluster_server
from deployment import cluster_worker
tf.compat.v1.disable_eager_execution()
ps, workers, job_name, task, timeouts = json.loads(sys.argv[1])
cluster = cluster_lib.Cluster(tuple(ps), tuple(workers), job_name, task)
timeouts = cluster_lib.Timeouts(*timeouts)
try:
  if cluster.is_ps:
    cluster_server.run_parameter_server(cluster, True, timeouts=timeouts)
  else:
    task = cluster_worker.start_worker(cluster, tf.compat.v1.ConfigProto(),
                                    timeouts)
    logging.info('STARTED')
    if cluster.is_chief:
      # A training loop blocked for good (as in a step waiting for a task
      # that is gone).
      with tf.Graph().as_default():
        task.run(lambda master, config: threading.Event().wait(),
                 lambda: logging.info('STOP REQUESTED'))
    time.sleep(600)
except cluster_lib.ClusterError as error:
  logging.error('%s', error)
  sys.exit(1)
"""


class StubTasks(object):
  """Processes running one cluster task each with _TASK_STUB."""

  def __init__(self, tmp_path, timeouts=(30, 2, 5)):
    self._tmp_path = tmp_path
    self._timeouts = timeouts
    self.processes = {}

  def start(self, name, ps, workers, job_name, task, timeouts=None):
    log = open(str(self._tmp_path / (name + '.log')), 'w')
    self.processes[name] = subprocess.Popen(
        [sys.executable, '-c', _TASK_STUB,
         json.dumps([ps, workers, job_name, task,
                     timeouts or self._timeouts])],
        stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
        start_new_session=True)
    log.close()

  def log(self, name):
    return (self._tmp_path / (name + '.log')).read_text()

  def wait_for_line(self, name, text, timeout=EXIT_TIMEOUT_SECS):
    deadline = time.time() + timeout
    while text not in self.log(name):
      assert self.processes[name].poll() is None, self.log(name)
      assert time.time() < deadline, '%s: no %r in\n%s' % (name, text,
                                                             self.log(name))
      time.sleep(0.2)

  def wait(self, name, timeout=EXIT_TIMEOUT_SECS):
    try:
      return self.processes[name].wait(timeout)
    except subprocess.TimeoutExpired:
      pytest.fail('%s still running after %d s:\n%s' % (name, timeout,
                                                         self.log(name)))

  def kill_all(self):
    for process in self.processes.values():
      if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(EXIT_TIMEOUT_SECS)


@pytest.fixture
def stub_tasks(tmp_path):
  tasks = StubTasks(tmp_path)
  yield tasks
  tasks.kill_all()


@pytest.mark.slow
def test_mismatched_worker_fails_naming_both_lists_chief_and_ps_stop(
    stub_tasks):
  """The mismatched worker stops at once; the chief, blocked in its loop,
  stops on SIGTERM after the grace period; the ps, blocked on its queue of
  done reports, stops on SIGINT."""
  hosts = loopback_hosts(4)
  ps, workers, other_ps = hosts[:1], hosts[1:3], hosts[:1] + hosts[3:]
  stub_tasks.start('ps0', ps, workers, 'ps', 0)
  stub_tasks.start('worker0', ps, workers, 'worker', 0)
  stub_tasks.start('worker1', other_ps, workers, 'worker', 1)
  assert stub_tasks.wait('worker1') == 1
  log = stub_tasks.log('worker1')
  assert ('Cluster mismatch: this task, worker task 1 (%s), was given ps '
          '[%s], workers [%s]; the chief was given ps [%s], workers [%s]' % (
              workers[1], ', '.join(other_ps), ', '.join(workers),
              ps[0], ', '.join(workers))) in log, log
  assert 'Traceback' not in log
  stub_tasks.wait_for_line('worker0', 'STARTED')

  # The chief, blocked in its training loop: SIGTERM asks it to stop, then
  # it exits after the grace period (5 s).
  os.killpg(stub_tasks.processes['worker0'].pid, signal.SIGTERM)
  assert stub_tasks.wait('worker0', timeout=20) == 1
  log = stub_tasks.log('worker0')
  assert 'SIGTERM: worker task 0 (%s) stops after its current step' % (
      workers[0]) in log
  assert 'STOP REQUESTED' in log
  assert 'did not stop within 5 s; exiting without a final checkpoint' in log

  stub_tasks.wait_for_line('ps0', 'Serving until the workers [0, 1] report')
  os.killpg(stub_tasks.processes['ps0'].pid, signal.SIGINT)
  # Bounded: a ps still blocked on its queue fails the wait.
  assert stub_tasks.wait('ps0', timeout=10) == 0
  assert 'SIGINT: ps task 0 stops.' in stub_tasks.log('ps0')


@pytest.mark.slow
def test_a_ps_with_other_worker_hosts_fails_and_an_absent_ps_times_out(
    stub_tasks):
  hosts = loopback_hosts(6)
  ps, workers = hosts[:1], hosts[1:3]
  stub_tasks.start('ps0', ps, workers + hosts[3:4], 'ps', 0)
  stub_tasks.start('worker0', ps, workers, 'worker', 0)
  # A worker of another cluster whose ps task nobody runs (timeout: 3 s).
  stub_tasks.start('lone', hosts[4:5], hosts[5:], 'worker', 0, (3, 2, 5))
  assert stub_tasks.wait('ps0') == 1
  assert ('Cluster mismatch: this task, ps task 0 (%s), was given ps [%s], '
          'workers [%s]; the chief was given' % (
              ps[0], ps[0], ', '.join(workers + hosts[3:4]))
          ) in stub_tasks.log('ps0')
  assert stub_tasks.wait('lone') == 1
  assert ('ps task 0 at %s did not answer within 3 s (--cluster_timeout_secs)'
          % hosts[4]) in stub_tasks.log('lone')


@pytest.mark.slow
def test_tasks_waiting_for_a_chief_that_never_starts_name_it(make_cluster):
  local_cluster = make_cluster(flags=['--cluster_timeout_secs=5'])
  local_cluster.start('ps', 0)
  time.sleep(2)  # The ps gives up first, while the worker still waits.
  local_cluster.start('worker', 1)
  chief = local_cluster.worker_hosts[0]
  for name in ('worker1', 'ps0'):
    assert local_cluster.wait(name, timeout=60) == 1
    log = local_cluster.log(name)
    last_line = log.strip().splitlines()[-1]
    assert ('The chief (worker 0 at %s) never answered within 5 s '
            '(--cluster_timeout_secs)' % chief) in last_line, log[-3000:]
    assert 'Traceback' not in log, log[-3000:]


@pytest.mark.slow
def test_tasks_waiting_for_their_chief_stop_on_sigint_and_sigterm(
    stub_tasks):
  hosts = loopback_hosts(3)
  ps, workers = hosts[:1], hosts[1:]
  stub_tasks.start('ps0', ps, workers, 'ps', 0)
  stub_tasks.start('worker1', ps, workers, 'worker', 1)
  for name in ('ps0', 'worker1'):
    stub_tasks.wait_for_line(name, 'Starting ')
  time.sleep(2)  # Inside the wait for the chief's cluster description.
  os.killpg(stub_tasks.processes['worker1'].pid, signal.SIGINT)
  os.killpg(stub_tasks.processes['ps0'].pid, signal.SIGTERM)
  for name, sig in [('worker1', 'SIGINT'), ('ps0', 'SIGTERM')]:
    assert stub_tasks.wait(name, timeout=10) == 1
    assert ("Stopped by %s while waiting for the chief's cluster "
            "description" % sig) in stub_tasks.log(name)


# --------------------------------------------------------------------------
# A real cluster: 1 ps and 2 workers on 127.0.0.1.


@pytest.mark.slow
def test_tf_config_alone_runs_sync_replicas_and_all_tasks_exit(make_cluster):
  """1 ps + 2 workers from TF_CONFIG alone (no cluster flags); two
  gradients a round; the ps exits once both workers are done."""
  max_steps = 2
  local_cluster = make_cluster(use_tf_config=True, flags=[
      '--sync_replicas', '--max_number_of_steps=%d' % max_steps,
      '--moving_average_decay=0.99'])
  local_cluster.start_all()
  for name in ['worker0', 'worker1', 'ps0']:
    assert_clean_exit(local_cluster, name)
  assert 'Every worker finished' in local_cluster.log('ps0')
  assert 'Cluster from TF_CONFIG' in local_cluster.log('worker1')
  assert "Cluster checked: same as the chief's" in local_cluster.log(
      'worker1')

  values = checkpoint_values(local_cluster.train_dir)
  assert_holds_finite_model(values)
  # The moving averages go through the chief's aggregation.
  assert ('ssd_300_vgg/conv1/conv1_1/weights/ExponentialMovingAverage'
          in values)
  # One global step per round of 2 gradients: the workers together ran at
  # least 2 steps per global step (asynchronous ones would run one).
  assert values['global_step'] == max_steps
  worker_steps = (len(local_cluster.steps('worker0')) +
                  len(local_cluster.steps('worker1')))
  assert worker_steps >= 2 * max_steps


def wait_for_steps(local_cluster, name, more_than, timeout=TRAIN_TIMEOUT_SECS):
  """Waits until task `name` has logged more than `more_than` steps."""
  deadline = time.time() + timeout
  while len(local_cluster.steps(name)) <= more_than:
    assert local_cluster.processes[name].poll() is None, (
        local_cluster.log(name)[-3000:])
    assert time.time() < deadline, '%s ran no step' % name
    time.sleep(0.2)


@pytest.mark.slow
def test_async_workers_share_the_step_a_dead_worker_and_ctrl_c(make_cluster):
  """Kill the non-chief mid-run, then Ctrl-C the chief: it saves its last
  step and exits 0; the ps, with no report from the dead worker, exits
  --ps_idle_secs after the chief's."""
  local_cluster = make_cluster(flags=['--max_number_of_steps=1000',
                                      '--ps_idle_secs=3'])
  local_cluster.start_all()
  wait_for_steps(local_cluster, 'worker1', 0)
  local_cluster.kill('worker1')
  worker1_steps = local_cluster.steps('worker1')
  wait_for_steps(local_cluster, 'worker0',
                 len(local_cluster.steps('worker0')))
  os.killpg(local_cluster.processes['worker0'].pid, signal.SIGINT)

  assert_clean_exit(local_cluster, 'worker0')
  assert 'SIGINT: worker task 0' in local_cluster.log('worker0')
  assert_clean_exit(local_cluster, 'ps0')
  assert ('workers [1] have not reported for 3 s (--ps_idle_secs)' in
          local_cluster.log('ps0'))

  values = checkpoint_values(local_cluster.train_dir)
  assert_holds_finite_model(values)
  # The chief saved where it stopped; asynchronous: every step of either
  # worker advanced the shared step.
  chief_steps = local_cluster.steps('worker0')
  assert values['global_step'] >= max(chief_steps)
  assert values['global_step'] >= len(chief_steps) + len(worker1_steps)
  # (+1: worker 1 may have been killed after its update, before logging.)
  assert values['global_step'] <= len(chief_steps) + len(worker1_steps) + 1
