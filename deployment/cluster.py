"""Multi-machine training: between-graph replication with parameter servers.

A cluster is a list of parameter-server (ps) tasks, which hold the variables,
and worker tasks, which each build the whole training graph, read their own
input and push gradients to the ps tasks.  One process runs per task, all
with the same cluster: the --ps_hosts and --worker_hosts flags with their
own --job_name and --task, or the `TF_CONFIG` a cluster manager sets
(Kubeflow's TFJob, Vertex AI, SageMaker; `Cluster.from_tf_config`).
Worker 0 (TF_CONFIG's chief) is the chief: it initialises (or restores) the
variables, writes the checkpoints and summaries.

What a task does, and how it fails fast instead of hanging:

  * `resolve_settings` checks the flags (or TF_CONFIG) and derives the
    counts;
  * `run_parameter_server` serves the variables until every worker has
    reported the end of its training, or the chief has and no other worker
    has reported for `Timeouts.ps_idle_secs` (a dead worker);
  * `start_worker` starts a worker's server and checks the cluster (below);
    `WorkerTask.run` runs the training loop between the connection to the
    ps tasks, the wait for the chief's initialisation and the report of the
    end of training;
  * the chief publishes a fingerprint of its cluster (the two host lists)
    on ps task 0 and every task compares its own at start: a task given
    other lists stops with a message naming both;
  * every wait for another task is bounded by `Timeouts.wait_secs`, with an
    error naming the task and host;
  * SIGINT and SIGTERM stop every role promptly: a ps between two polls of
    its queue; a worker after its current step (the chief saving a
    checkpoint first), or, when blocked in TensorFlow (e.g. waiting for a
    ps task that is gone), after `Timeouts.stop_grace_secs`.

Also here: the worker's session settings (`worker_session_config`: device
filters, so that a worker only talks to the ps tasks and itself; no grappler
remapping with bfloat16, whose fused bfloat16 convolutions a worker
rejects) and `SyncReplicasOptimizer`: tf.compat.v1's, with a chief queue
runner that stops when training stops.
"""
import collections
import json
import os
import signal
import socket
import threading
import time

from absl import logging
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

_v1 = tf.compat.v1
_ON = rewriter_config_pb2.RewriterConfig.ON
_OFF = rewriter_config_pb2.RewriterConfig.OFF

PS_JOB = 'ps'
WORKER_JOB = 'worker'
JOB_NAMES = (PS_JOB, WORKER_JOB)
# The environment variable of cluster managers (TFJob, Vertex AI, SageMaker).
TF_CONFIG_ENV = 'TF_CONFIG'

# Queue on each ps task into which the workers put their task index when
# their training ends.  Both sides build it with these exact attributes
# (a shared queue must be declared identically everywhere).
_DONE_QUEUE_NAME = 'worker_done_queue_ps%d'
# Variable on ps task 0 holding the chief's cluster fingerprint.
_FINGERPRINT_NAME = 'cluster_fingerprint'
# Seconds between two polls of a wait (for a host, the chief, a report).
_POLL_SECS = 0.5


class ClusterError(ValueError):
  """The cluster is misconfigured or a task cannot be reached; says which."""


Timeouts = collections.namedtuple(
    'Timeouts', ['wait_secs', 'ps_idle_secs', 'stop_grace_secs'])
Timeouts.__new__.__defaults__ = (600.0, 120.0, 60.0)
Timeouts.__doc__ = """Bounds of the waits of a cluster task, in seconds.

  wait_secs: for another task to answer, the chief to publish its cluster
    and initialise the variables.
  ps_idle_secs: a ps task exits when the chief has finished and no other
    worker has reported for this long (with exit_when_done).
  stop_grace_secs: after SIGINT/SIGTERM, a worker blocked in TensorFlow
    exits after this long, without a final checkpoint.
"""


def parse_hosts(text, flag_name):
  """'a:1, b:2' -> ['a:1', 'b:2'], each checked to be host:port.

  Raises:
    ValueError: for an empty list or an entry that is not host:port.
  """
  hosts = [host.strip() for host in (text or '').split(',') if host.strip()]
  if not hosts:
    raise ValueError('--%s is empty: give comma-separated host:port '
                     'addresses.' % flag_name)
  for host in hosts:
    name, _, port = host.rpartition(':')
    if not name or not port.isdigit() or not 0 < int(port) < 65536:
      raise ValueError('--%s: %r is not host:port (e.g. 10.0.0.1:2222).' %
                       (flag_name, host))
  return hosts


class Cluster(collections.namedtuple(
    'Cluster', ['ps_hosts', 'worker_hosts', 'job_name', 'task'])):
  """The cluster and this process's place in it (job name, task index)."""

  @classmethod
  def from_flags(cls, ps_hosts, worker_hosts, job_name, task):
    """Parses and checks the host lists and this task.

    Args:
      ps_hosts: comma-separated host:port of the ps tasks.
      worker_hosts: comma-separated host:port of the workers.
      job_name: 'ps' or 'worker'.
      task: index of this process in its job.

    Raises:
      ValueError: with the flag to fix.
    """
    ps = parse_hosts(ps_hosts, 'ps_hosts')
    workers = parse_hosts(worker_hosts, 'worker_hosts')
    duplicates = sorted(set(h for h in ps + workers
                            if (ps + workers).count(h) > 1))
    if duplicates:
      raise ValueError('--ps_hosts and --worker_hosts: each task needs its '
                       'own host:port; repeated: %s.' % ', '.join(duplicates))
    if job_name not in JOB_NAMES:
      raise ValueError('--job_name must be ps or worker in a cluster (with '
                       '--ps_hosts/--worker_hosts), got %r.' % job_name)
    hosts = ps if job_name == PS_JOB else workers
    if not 0 <= task < len(hosts):
      raise ValueError('--task=%d is not a %s task: --%s_hosts lists %d '
                       '(tasks 0 to %d).' % (task, job_name, job_name,
                                             len(hosts), len(hosts) - 1))
    return cls(tuple(ps), tuple(workers), job_name, task)

  @classmethod
  def from_tf_config(cls, text):
    """The Cluster of a TF_CONFIG value, or None for a one-task cluster.

    TF_CONFIG is JSON: {"cluster": {"chief": [host], "worker": [hosts],
    "ps": [hosts]}, "task": {"type": "worker", "index": 1}}.  The chief
    becomes worker 0 and TF_CONFIG's workers follow it (without a chief,
    worker 0 is the chief, as in TensorFlow).

    Raises:
      ClusterError: for JSON that is not such a cluster, naming TF_CONFIG.
    """
    try:
      config = json.loads(text)
      spec = config.get('cluster') or {}
      task = config.get('task') or {}
      task_type = task.get('type')
      index = int(task.get('index', 0))
    except (ValueError, AttributeError, TypeError) as error:
      raise ClusterError('%s is not valid: %s (expected {"cluster": {"ps": '
                         '[...], "worker": [...]}, "task": {"type": ..., '
                         '"index": ...}}).' % (TF_CONFIG_ENV, error))
    unknown = sorted(set(spec) - {'chief', PS_JOB, WORKER_JOB, 'evaluator'})
    if unknown or not isinstance(spec, dict):
      raise ClusterError('%s: unknown job(s) %s in "cluster"; this trainer '
                         'runs chief, worker and ps tasks.' % (
                             TF_CONFIG_ENV, ', '.join(unknown)))
    chief = list(spec.get('chief') or [])
    workers = chief + list(spec.get(WORKER_JOB) or [])
    ps = list(spec.get(PS_JOB) or [])
    if len(chief) > 1:
      raise ClusterError('%s lists %d chiefs; give one.' % (TF_CONFIG_ENV,
                                                           len(chief)))
    if task_type == 'evaluator':
      raise ClusterError('%s: task type evaluator: run eval_ssd_network.py '
                         '--wait_for_checkpoints on that machine, not the '
                         'trainer.' % TF_CONFIG_ENV)
    if not ps and len(workers) <= 1:
      return None  # One machine: a local run.
    if not ps:
      raise ClusterError('%s has no "ps" tasks: this trainer runs '
                         'parameter-server training (add ps replicas).' %
                         TF_CONFIG_ENV)
    if task_type == 'chief':
      job_name, task_index = WORKER_JOB, index
    elif task_type == WORKER_JOB:
      job_name, task_index = WORKER_JOB, index + len(chief)
    elif task_type == PS_JOB:
      job_name, task_index = PS_JOB, index
    else:
      raise ClusterError('%s: task type %r is not chief, worker or ps.' % (
          TF_CONFIG_ENV, task_type))
    try:
      return cls.from_flags(','.join(ps), ','.join(workers), job_name,
                            task_index)
    except ValueError as error:
      raise ClusterError('%s: %s' % (TF_CONFIG_ENV, error))

  @property
  def spec(self):
    return tf.train.ClusterSpec({PS_JOB: list(self.ps_hosts),
                                 WORKER_JOB: list(self.worker_hosts)})

  @property
  def fingerprint(self):
    """The host lists as canonical text: equal on every task of a cluster."""
    return json.dumps({PS_JOB: list(self.ps_hosts),
                       WORKER_JOB: list(self.worker_hosts)}, sort_keys=True)

  @property
  def num_ps_tasks(self):
    return len(self.ps_hosts)

  @property
  def num_workers(self):
    return len(self.worker_hosts)

  @property
  def is_ps(self):
    return self.job_name == PS_JOB

  @property
  def is_chief(self):
    return self.job_name == WORKER_JOB and self.task == 0

  @property
  def task_device(self):
    """'/job:worker/task:1': this task's device prefix."""
    return '/job:%s/task:%d' % (self.job_name, self.task)

  @property
  def host(self):
    """This task's host:port."""
    hosts = self.ps_hosts if self.is_ps else self.worker_hosts
    return hosts[self.task]

  def describe(self):
    return '%s task %d (%s)' % (self.job_name, self.task, self.host)


def describe_lists(fingerprint):
  """'ps [a:1], workers [b:1, c:1]' of a fingerprint."""
  lists = json.loads(fingerprint)
  return 'ps [%s], workers [%s]' % (', '.join(lists[PS_JOB]),
                                    ', '.join(lists[WORKER_JOB]))


Settings = collections.namedtuple(
    'Settings', ['cluster', 'worker_replicas', 'num_ps_tasks',
                 'replicas_to_aggregate'])


def resolve_settings(ps_hosts=None, worker_hosts=None, job_name=None, task=0,
                     worker_replicas=None, num_ps_tasks=None,
                     sync_replicas=False, replicas_to_aggregate=None,
                     tf_config=None, task_given=None):
  """Checks the distribution flags and derives the counts from the hosts.

  Args:
    ps_hosts, worker_hosts, job_name, task: the cluster flags; all of the
      first three or none (a single-process run).
    worker_replicas, num_ps_tasks: the values the user gave, None if not
      given; with host lists they must match the number of hosts.
    sync_replicas: synchronous replicas (needs a cluster).
    replicas_to_aggregate: gradients per synchronous step; default: the
      number of workers.
    tf_config: the value of TF_CONFIG, or None.  Used when set, with no
      cluster flags needed; cluster flags that say otherwise are an error.
    task_given: whether --task was given (default: task is not 0).

  Returns:
    Settings(cluster (None for a single-process run), worker_replicas,
    num_ps_tasks, replicas_to_aggregate (None unless sync_replicas)).

  Raises:
    ValueError: for inconsistent flags, naming the one to fix.
  """
  if task_given is None:
    task_given = bool(task)
  cluster = None
  if ps_hosts or worker_hosts or job_name:
    if not (ps_hosts and worker_hosts and job_name):
      raise ValueError('Multi-machine training needs --ps_hosts, '
                       '--worker_hosts and --job_name together (and --task).')
    cluster = Cluster.from_flags(ps_hosts, worker_hosts, job_name, task or 0)
  if tf_config:
    from_env = Cluster.from_tf_config(tf_config)
    if (cluster is not None or task_given) and cluster != from_env:
      raise ClusterError(
          '%s and the cluster flags disagree: %s says %s; the flags say %s. '
          'Drop the flags (%s is enough) or unset %s.' % (
              TF_CONFIG_ENV, TF_CONFIG_ENV, _describe_cluster(from_env),
              _describe_cluster(cluster) if cluster else '--task=%s' % task,
              TF_CONFIG_ENV, TF_CONFIG_ENV))
    cluster = from_env
    if cluster is not None:
      logging.info('Cluster from %s: %s, this task: %s.', TF_CONFIG_ENV,
                   describe_lists(cluster.fingerprint), cluster.describe())
  if cluster is not None:
    for name, value, derived, hosts_flag in [
        ('worker_replicas', worker_replicas, cluster.num_workers,
         'worker_hosts'),
        ('num_ps_tasks', num_ps_tasks, cluster.num_ps_tasks, 'ps_hosts')]:
      if value is not None and value != derived:
        raise ValueError(
            '--%s=%d conflicts with the %d hosts of --%s; leave --%s out '
            '(it is derived from --%s).' % (name, value, derived, hosts_flag,
                                            name, hosts_flag))
    worker_replicas = cluster.num_workers
    num_ps_tasks = cluster.num_ps_tasks
  if sync_replicas:
    if cluster is None:
      raise ValueError('--sync_replicas needs a cluster: --ps_hosts, '
                       '--worker_hosts, --job_name and --task.')
    if replicas_to_aggregate is None:
      replicas_to_aggregate = worker_replicas
    if replicas_to_aggregate < 1:
      raise ValueError('--replicas_to_aggregate must be at least 1, got %d.'
                       % replicas_to_aggregate)
  else:
    replicas_to_aggregate = None
  return Settings(cluster, worker_replicas, num_ps_tasks,
                  replicas_to_aggregate)


def _describe_cluster(cluster):
  if cluster is None:
    return 'no cluster (one machine)'
  return '%s, this task %s %d' % (describe_lists(cluster.fingerprint),
                                  cluster.job_name, cluster.task)


# --------------------------------------------------------------------------
# Signals and bounded waits.


class _StopSignals(object):
  """Context manager turning SIGINT and SIGTERM into a stop request.

  `event` is set at the first signal (and `on_stop` called, in the main
  thread); a second signal exits at once.  Outside the main thread (where
  Python cannot install handlers) it does nothing.
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self, on_stop=None):
    self.event = threading.Event()
    self.received = None
    self._on_stop = on_stop
    self._previous = {}

  def _handle(self, signum, unused_frame):
    name = signal.Signals(signum).name
    if self.event.is_set():
      logging.error('%s again: exiting now.', name)
      logging.flush()
      os._exit(128 + signum)  # pylint: disable=protected-access
    self.received = name
    self.event.set()
    if self._on_stop is not None:
      self._on_stop()
    # on_stop may install handlers of its own (tf_slim's step runner does).
    for sig in self.SIGNALS:
      signal.signal(sig, self._handle)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *unused_exc_info):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def check(self, waiting_for):
    """Raises ClusterError if a signal asked to stop."""
    if self.event.is_set():
      raise ClusterError('Stopped by %s while waiting for %s.' % (
          self.received, waiting_for))


def _answers(host):
  """Whether `host` ('name:port') accepts a connection now."""
  name, _, port = host.rpartition(':')
  try:
    socket.create_connection((name, int(port)), timeout=1.0).close()
  except OSError:
    return False
  return True


def wait_for_host(host, what, timeout_secs, stop=None):
  """Waits until `host` ('name:port') accepts connections.

  A gRPC session to a task that is not there waits forever; this bounds it.

  Raises:
    ClusterError: naming `what` and the host after `timeout_secs`, or on a
      stop signal.
  """
  deadline = time.time() + timeout_secs
  next_log = time.time() + 10
  while True:
    if _answers(host):
      return
    if stop is not None:
      stop.check('%s at %s' % (what, host))
    if time.time() > deadline:
      raise ClusterError(
          '%s at %s did not answer within %d s (--cluster_timeout_secs): is '
          'it running, and do all tasks have the same cluster (--ps_hosts, '
          '--worker_hosts or TF_CONFIG)?' % (what, host, timeout_secs))
    if time.time() > next_log:
      logging.info('Waiting for %s at %s.', what, host)
      next_log = time.time() + 30
    time.sleep(_POLL_SECS)


def _wait_for_ps_tasks(cluster, timeout_secs, stop=None):
  """`wait_for_host` for each ps task of `cluster`."""
  for index, host in enumerate(cluster.ps_hosts):
    wait_for_host(host, 'ps task %d' % index, timeout_secs, stop)


# --------------------------------------------------------------------------
# Servers and the cluster check.


def start_server(cluster, config=None):
  """Starts this task's tf.distribute.Server.

  Args:
    cluster: a Cluster.
    config: ConfigProto of the server's devices (e.g. device_count for
      logical CPU devices: a session's own device_count does not apply to
      a server's devices).
  """
  logging.info('Starting %s of cluster %s.', cluster.describe(),
               describe_lists(cluster.fingerprint))
  return tf.distribute.Server(cluster.spec, job_name=cluster.job_name,
                              task_index=cluster.task, config=config,
                              start=True)


def check_cluster(target, cluster, timeout_secs, stop=None):
  """The chief publishes its cluster fingerprint; every task compares.

  The fingerprint (both host lists) lives in a variable on ps task 0: the
  chief writes it, the other tasks read it until it is there.

  Raises:
    ClusterError: when this task's lists differ from the chief's (naming
      both), or ps task 0 or the chief's fingerprint does not come within
      `timeout_secs`.
  """
  wait_for_host(cluster.ps_hosts[0], 'ps task 0', timeout_secs, stop)
  graph = tf.Graph()
  with graph.as_default(), _v1.device('/job:%s/task:0/device:CPU:0' % PS_JOB):
    fingerprint = _v1.Variable(cluster.fingerprint, name=_FINGERPRINT_NAME,
                               trainable=False, collections=[],
                               use_resource=False)
  config = _v1.ConfigProto(device_filters=sorted(
      {'/job:%s/task:0' % PS_JOB, cluster.task_device}))
  options = _v1.RunOptions(timeout_in_ms=int(max(timeout_secs, 1) * 1000))
  deadline = time.time() + timeout_secs
  with _v1.Session(target, graph=graph, config=config) as sess:
    if cluster.is_chief:
      sess.run(fingerprint.initializer, options=options)
      logging.info('Published the cluster on ps task 0.')
      return
    while True:
      try:
        published = sess.run(fingerprint, options=options).decode()
        break
      except tf.errors.FailedPreconditionError:
        pass  # Not published yet.
      except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError):
        # ps task 0 went away: it may have given up on the chief first.
        raise _no_cluster_description(cluster, timeout_secs) from None
      if stop is not None:
        stop.check("the chief's cluster description")
      if time.time() > deadline:
        raise _no_cluster_description(cluster, timeout_secs)
      time.sleep(_POLL_SECS)
  if published != cluster.fingerprint:
    raise ClusterError(
        'Cluster mismatch: this task, %s, was given %s; the chief was given '
        '%s. Give every task the same --ps_hosts and --worker_hosts (or the '
        'same TF_CONFIG cluster).' % (cluster.describe(),
                                      describe_lists(cluster.fingerprint),
                                      describe_lists(published)))
  logging.info('Cluster checked: same as the chief\'s.')


def _no_cluster_description(cluster, timeout_secs):
  """The ClusterError of a task that did not get the chief's cluster: the
  chief never answered, ps task 0 went away, or the chief did not publish."""
  chief, ps = cluster.worker_hosts[0], cluster.ps_hosts[0]
  if not _answers(chief):
    return ClusterError(
        'The chief (worker 0 at %s) never answered within %d s '
        '(--cluster_timeout_secs): it was never started, or not at that '
        'address. Start it; the other tasks wait for it.' % (
            chief, timeout_secs))
  if not _answers(ps):
    return ClusterError(
        "ps task 0 at %s stopped answering while this task waited for the "
        "chief's cluster description: is it running?" % ps)
  return ClusterError(
      'The chief (worker 0 at %s) did not publish its cluster on ps task 0 '
      '(%s) within %d s (--cluster_timeout_secs): is it running?' % (
          chief, ps, timeout_secs))


def worker_session_config(cluster, config):
  """`config` plus the device filters of a worker's sessions.

  A worker's session then only contacts the ps tasks and this worker, so
  workers neither wait for each other to start nor depend on each other.
  """
  config = _v1.ConfigProto.FromString(config.SerializeToString())
  del config.device_filters[:]
  config.device_filters.extend(['/job:%s' % PS_JOB, cluster.task_device])
  rewrites = config.graph_options.rewrite_options
  if rewrites.auto_mixed_precision_onednn_bfloat16 == _ON:
    # Grappler's remapper would fuse the bfloat16 convolutions into
    # _FusedConv2D, which a worker rejects (only a local session turns it
    # into oneDNN's bfloat16 kernel before checking it).
    rewrites.remapping = _OFF
  return config


def _done_queue(ps_task):
  with _v1.device('/job:%s/task:%d/device:CPU:0' % (PS_JOB, ps_task)):
    return _v1.FIFOQueue(-1, [tf.int32], shapes=[[]],
                         shared_name=_DONE_QUEUE_NAME % ps_task,
                         name='worker_done_queue_ps%d' % ps_task)


# --------------------------------------------------------------------------
# The parameter server.


def run_parameter_server(cluster, exit_when_done=True, config=None,
                         timeouts=Timeouts()):
  """Runs a ps task: checks the cluster, then serves the variables.

  Args:
    cluster: a Cluster whose job is ps.
    exit_when_done: return once every worker has reported the end of its
      training (`DoneReport`), or once the chief has and no other worker
      has reported for `timeouts.ps_idle_secs`; otherwise serve until
      SIGINT or SIGTERM.
    config: ConfigProto of the server.
    timeouts: a Timeouts.

  Raises:
    ClusterError: for a cluster mismatch or a chief that does not come.
  """
  server = start_server(cluster, config)
  with _StopSignals() as stop:
    check_cluster(server.target, cluster, timeouts.wait_secs, stop)
    if exit_when_done:
      _serve_until_done(server, cluster, timeouts.ps_idle_secs, stop)
    else:
      logging.info('Serving until stopped (SIGINT or SIGTERM).')
      while not stop.event.wait(_POLL_SECS):
        pass
  if stop.received:
    logging.warning('%s: ps task %d stops.', stop.received, cluster.task)


def _serve_until_done(server, cluster, idle_secs, stop):
  graph = tf.Graph()
  with graph.as_default():
    queue = _done_queue(cluster.task)
    queued, dequeue = queue.size(), queue.dequeue()
  session_config = _v1.ConfigProto(device_filters=[cluster.task_device])
  waiting = set(range(cluster.num_workers))
  chief_done_at = None
  with _v1.Session(server.target, graph=graph,
                   config=session_config) as sess:
    logging.info('Serving until the workers %s report the end of their '
                 'training.', sorted(waiting))
    while waiting and not stop.event.is_set():
      # Polls the size and dequeues only what is there: a dequeue cut short
      # by a RunOptions timeout can lose a report enqueued at that moment.
      num_reports = int(sess.run(queued))
      if not num_reports:
        if (chief_done_at is not None and
            time.time() - chief_done_at > idle_secs):
          logging.warning(
              'The chief finished and workers %s have not reported for %d s '
              '(--ps_idle_secs): they may have died. ps task %d exits.',
              sorted(waiting), idle_secs, cluster.task)
          return
        stop.event.wait(_POLL_SECS)
        continue
      for _ in range(num_reports):  # This ps task is the only consumer.
        worker = int(sess.run(dequeue))
        waiting.discard(worker)
        if worker == 0 or chief_done_at is not None:
          chief_done_at = time.time()
        logging.info('Worker %d finished; waiting for %s.', worker,
                     sorted(waiting) or 'none')
  if not waiting:
    # Give the last worker time to close its sessions on this server.
    time.sleep(1.0)
    logging.info('Every worker finished: ps task %d exits.', cluster.task)


# --------------------------------------------------------------------------
# Workers.


class DoneReport(object):
  """A worker's report to each ps task that its training has ended.

  Build it in the training graph before the training loop finalizes the
  graph, `connect` while the ps tasks are known to be up (before training),
  and `report` after training.  A session created only at the end would
  wait forever for a ps task that is gone; a connected one fails at once.
  """

  def __init__(self, cluster):
    with tf.name_scope('report_done'):
      self._report_op = tf.group(*[_done_queue(ps).enqueue([cluster.task])
                                   for ps in range(cluster.num_ps_tasks)])
      with _v1.device(cluster.task_device):
        self._connect_op = tf.no_op(name='connect')
    self._session = None

  def connect(self, target, config):
    """Opens the session (waits until every ps task answers)."""
    self._session = _v1.Session(target, graph=self._report_op.graph,
                                config=config)
    self._session.run(self._connect_op)

  def report(self, timeout_secs=30):
    """Reports and closes the session; a failure is only logged."""
    if self._session is None:
      return
    options = _v1.RunOptions(timeout_in_ms=int(timeout_secs * 1000))
    try:
      self._session.run(self._report_op, options=options)
      logging.info('Reported the end of training to the ps tasks.')
    except tf.errors.OpError as error:
      logging.warning('Could not report the end of training to the ps '
                      'tasks (they may have to be stopped by hand): %s',
                      error.message.split('\n')[0])
    finally:
      self._session.close()
      self._session = None


def build_ready_check():
  """Op listing the uninitialised global variables (empty when ready)."""
  with tf.name_scope('wait_for_chief'):
    return _v1.report_uninitialized_variables(_v1.global_variables())


def wait_for_chief(target, config, ready_op, timeout_secs=600,
                   poll_secs=1.0, stop_event=None):
  """Waits until the chief has initialised (or restored) the variables.

  The Supervisor of a non-chief worker checks only every 30 s; this polls
  every `poll_secs` so that the training loop finds the model ready.

  Returns:
    True when ready, False when `stop_event` was set.

  Raises:
    ClusterError: if the variables are still uninitialised after
      `timeout_secs`.
  """
  deadline = time.time() + timeout_secs
  next_log = 0.0
  with _v1.Session(target, graph=ready_op.graph, config=config) as sess:
    while True:
      uninitialized = sess.run(ready_op)
      if not len(uninitialized):  # pylint: disable=g-explicit-length-test
        return True
      now = time.time()
      if now > deadline:
        raise ClusterError(
            'The chief (worker 0) did not initialise the variables within '
            '%d s (--cluster_timeout_secs); is it running?' % timeout_secs)
      if now >= next_log:
        logging.info('Waiting for the chief to initialise the variables '
                     '(%d not ready yet).', len(uninitialized))
        next_log = now + 30
      if stop_event is not None and stop_event.wait(poll_secs):
        return False
      if stop_event is None:
        time.sleep(poll_secs)


def start_worker(cluster, config, timeouts=Timeouts()):
  """Starts a worker's server and checks the cluster; returns a WorkerTask.

  Call it at the start, before building the graph: a misconfigured or
  unreachable cluster fails in seconds.

  Args:
    cluster: a Cluster whose job is worker.
    config: the ConfigProto of the training sessions (its devices are the
      server's).
    timeouts: a Timeouts.

  Raises:
    ClusterError: for a cluster mismatch or a task that does not answer.
  """
  server = start_server(cluster, config)
  with _StopSignals() as stop:
    check_cluster(server.target, cluster, timeouts.wait_secs, stop)
    _wait_for_ps_tasks(cluster, timeouts.wait_secs, stop)
  return WorkerTask(cluster, server, worker_session_config(cluster, config),
                    timeouts)


class WorkerTask(object):
  """A started worker: its server's target and the choreography of training.

  Attributes:
    cluster: the Cluster.
    master: the target of the training sessions.
    session_config: the ConfigProto of the training sessions.
  """

  def __init__(self, cluster, server, session_config, timeouts):
    self.cluster = cluster
    self.server = server
    self.master = server.target
    self.session_config = session_config
    self._timeouts = timeouts

  def run(self, train_fn, request_stop=None):
    """Runs `train_fn(master, session_config)` as this worker's part.

    Call it with the training graph as the default graph, not finalized
    (it adds the report and readiness ops).  In order: connects to every
    ps task, waits for the chief's initialisation (non-chief workers),
    trains, reports the end of training to the ps tasks (also after a
    failure).  The training runs in a thread, so that SIGINT and SIGTERM
    are seen even when TensorFlow blocks: the first calls `request_stop`
    (the step runner: stop after this step, the chief saving a checkpoint);
    a task still running `stop_grace_secs` later exits with status 1.

    Raises:
      What `train_fn` raises; ClusterError for a chief that does not come.
    """
    graph = _v1.get_default_graph()
    done_report = DoneReport(self.cluster)
    ready_op = None if self.cluster.is_chief else build_ready_check()
    stop_event = threading.Event()

    def work():
      with graph.as_default(), graph.device(self.cluster.task_device):
        # A ps task gone while the graph was built would make the
        # connection wait forever.
        _wait_for_ps_tasks(self.cluster, self._timeouts.wait_secs)
        done_report.connect(self.master, self.session_config)
        try:
          if ready_op is not None and not wait_for_chief(
              self.master, self.session_config, ready_op,
              self._timeouts.wait_secs, stop_event=stop_event):
            return
          train_fn(self.master, self.session_config)
        finally:
          done_report.report()

    def on_stop():
      stop_event.set()
      if request_stop is not None:
        request_stop()
    _run_interruptibly(work, on_stop, self._timeouts.stop_grace_secs,
                       self.cluster.describe())


def _run_interruptibly(fn, on_stop, grace_secs, who):
  """Runs fn() in a thread; the main thread watches SIGINT and SIGTERM."""
  outcome = {}

  def target():
    try:
      fn()
    except BaseException as error:  # pylint: disable=broad-except
      outcome['error'] = error
  thread = threading.Thread(target=target, name='training', daemon=True)
  with _StopSignals(on_stop) as stop:
    thread.start()
    deadline = None
    while thread.is_alive():
      thread.join(_POLL_SECS)
      if stop.received and deadline is None:
        logging.warning('%s: %s stops after its current step.',
                        stop.received, who)
        deadline = time.time() + grace_secs
      if deadline is not None and time.time() > deadline and (
          thread.is_alive()):
        logging.error('%s: %s is blocked in TensorFlow (e.g. waiting for a '
                      'task that is gone) and did not stop within %d s; '
                      'exiting without a final checkpoint.',
                      stop.received, who, grace_secs)
        logging.flush()
        os._exit(1)  # pylint: disable=protected-access
  if 'error' in outcome:
    raise outcome['error']


class _StoppableQueueRunner(_v1.train.queue_runner.QueueRunner):
  """The chief queue runner of synchronous replicas, stoppable.

  Runs the aggregation op (which waits for gradients) in a session of its
  own and closes that session once the coordinator stops, after closing
  the token queue (which ends the other workers' pending steps).  Closing
  the session cancels the wait, so the runner thread ends at once.  (The
  training loop saves its last checkpoint just after asking to stop: a round
  being applied at that very moment may be saved partly applied, as any
  checkpoint of asynchronous or parameter-server training may be.)
  """

  def __init__(self, queue_runner, config_fn):
    super().__init__(queue=queue_runner.queue,
                     enqueue_ops=queue_runner.enqueue_ops,
                     close_op=queue_runner.close_op,
                     cancel_op=queue_runner.cancel_op,
                     queue_closed_exception_types=(
                         queue_runner.queue_closed_exception_types))
    self._config_fn = config_fn

  def create_threads(self, sess, coord=None, daemon=False, start=False):
    if coord is None:
      raise ValueError('The chief queue runner needs a coordinator.')
    own_session = _v1.Session(sess.sess_str, graph=sess.graph,
                              config=self._config_fn())

    def run(op):
      try:
        while not coord.should_stop():
          own_session.run(op)
      except (tf.errors.CancelledError,) + tuple(
          self.queue_closed_exception_types):
        if not coord.should_stop():
          coord.request_stop()
      except Exception as error:  # pylint: disable=broad-except
        if not coord.should_stop():
          coord.request_stop(error)

    def close_on_stop():
      coord.wait_for_stop()
      try:
        sess.run(self.cancel_op)
      except Exception as error:  # pylint: disable=broad-except
        logging.vlog(1, 'Ignored exception: %s', error)
      own_session.close()

    threads = [threading.Thread(target=run, args=(op,),
                                name='SyncReplicasChief%d' % i)
               for i, op in enumerate(self.enqueue_ops)]
    threads.append(threading.Thread(target=close_on_stop,
                                    name='SyncReplicasChiefStop'))
    for thread in threads:
      thread.daemon = daemon
      coord.register_thread(thread)
      if start:
        thread.start()
    return threads


class SyncReplicasOptimizer(_v1.train.SyncReplicasOptimizer):
  """tf.compat.v1.train.SyncReplicasOptimizer, with a stoppable chief runner.

  Each worker pushes its gradients into accumulators on the ps tasks; the
  chief's queue runner applies their mean once `replicas_to_aggregate`
  fresh gradients are in (stale ones are dropped), advances the global step
  by one and releases the workers for the next round.  Use it with
  `session_config` set (the ConfigProto of the chief's sessions) before the
  training loop starts.  Needs a distributed session (grpc target): the
  chief runner's own session must share the server's state.
  """

  session_config = None

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._stoppable_runner = None

  def get_chief_queue_runner(self):
    if self._stoppable_runner is None:
      self._stoppable_runner = _StoppableQueueRunner(
          super().get_chief_queue_runner(), lambda: self.session_config)
    return self._stoppable_runner
