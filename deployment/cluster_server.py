"""The servers of a cluster: start, connect, check, serve the variables.

`start_server` starts a task's server; `check_cluster` waits (bounded) for
the ps tasks and compares the chief's cluster fingerprint; `run_parameter_
server` serves until every worker has reported the end of its training;
`DoneReport` is the worker's side of that report; `worker_session_config`
the settings of a worker's session. `deployment/cluster.py` says what the
cluster is and how a task fails fast instead of hanging.
"""
import os
import signal
import socket
import threading
import time

from absl import logging
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from deployment import cluster as cluster_lib

_v1 = tf.compat.v1

_ON = rewriter_config_pb2.RewriterConfig.ON
_OFF = rewriter_config_pb2.RewriterConfig.OFF

# Queue on each ps task into which the workers put their task index when
# their training ends.  Both sides build it with these exact attributes
# (a shared queue must be declared identically everywhere).
_DONE_QUEUE_NAME = 'worker_done_queue_ps%d'
# Variable on ps task 0 holding the chief's cluster fingerprint.
_FINGERPRINT_NAME = 'cluster_fingerprint'
# Seconds between two polls of a wait (for a host, the chief, a report).
POLL_SECS = 0.5


_v1 = tf.compat.v1
# --------------------------------------------------------------------------
# Signals and bounded waits.


class StopSignals(object):
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
    """Raises cluster_lib.ClusterError if a signal asked to stop."""
    if self.event.is_set():
      raise cluster_lib.ClusterError('Stopped by %s while waiting for %s.' % (
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
    cluster_lib.ClusterError: naming `what` and the host after `timeout_secs`, or on a
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
      raise cluster_lib.ClusterError(
          '%s at %s did not answer within %d s (--cluster_timeout_secs): is '
          'it running, and do all tasks have the same cluster (--ps_hosts, '
          '--worker_hosts or TF_CONFIG)?' % (what, host, timeout_secs))
    if time.time() > next_log:
      logging.info('Waiting for %s at %s.', what, host)
      next_log = time.time() + 30
    time.sleep(POLL_SECS)


def wait_for_ps_tasks(cluster, timeout_secs, stop=None):
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
               cluster_lib.describe_lists(cluster.fingerprint))
  return tf.distribute.Server(cluster.spec, job_name=cluster.job_name,
                              task_index=cluster.task, config=config,
                              start=True)


def check_cluster(target, cluster, timeout_secs, stop=None):
  """The chief publishes its cluster fingerprint; every task compares.

  The fingerprint (both host lists) lives in a variable on ps task 0: the
  chief writes it, the other tasks read it until it is there.

  Raises:
    cluster_lib.ClusterError: when this task's lists differ from the chief's (naming
      both), or ps task 0 or the chief's fingerprint does not come within
      `timeout_secs`.
  """
  wait_for_host(cluster.ps_hosts[0], 'ps task 0', timeout_secs, stop)
  graph = tf.Graph()
  with graph.as_default(), _v1.device('/job:%s/task:0/device:CPU:0' % cluster_lib.PS_JOB):
    fingerprint = _v1.Variable(cluster.fingerprint, name=_FINGERPRINT_NAME,
                               trainable=False, collections=[],
                               use_resource=False)
  config = _v1.ConfigProto(device_filters=sorted(
      {'/job:%s/task:0' % cluster_lib.PS_JOB, cluster.task_device}))
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
      time.sleep(POLL_SECS)
  if published != cluster.fingerprint:
    raise cluster_lib.ClusterError(
        'Cluster mismatch: this task, %s, was given %s; the chief was given '
        '%s. Give every task the same --ps_hosts and --worker_hosts (or the '
        'same TF_CONFIG cluster).' % (cluster.describe(),
                                      cluster_lib.describe_lists(cluster.fingerprint),
                                      cluster_lib.describe_lists(published)))
  logging.info('Cluster checked: same as the chief\'s.')


def _no_cluster_description(cluster, timeout_secs):
  """The cluster_lib.ClusterError of a task that did not get the chief's cluster: the
  chief never answered, ps task 0 went away, or the chief did not publish."""
  chief, ps = cluster.worker_hosts[0], cluster.ps_hosts[0]
  if not _answers(chief):
    return cluster_lib.ClusterError(
        'The chief (worker 0 at %s) never answered within %d s '
        '(--cluster_timeout_secs): it was never started, or not at that '
        'address. Start it; the other tasks wait for it.' % (
            chief, timeout_secs))
  if not _answers(ps):
    return cluster_lib.ClusterError(
        "ps task 0 at %s stopped answering while this task waited for the "
        "chief's cluster description: is it running?" % ps)
  return cluster_lib.ClusterError(
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
  config.device_filters.extend(['/job:%s' % cluster_lib.PS_JOB, cluster.task_device])
  rewrites = config.graph_options.rewrite_options
  if rewrites.auto_mixed_precision_onednn_bfloat16 == _ON:
    # Grappler's remapper would fuse the bfloat16 convolutions into
    # _FusedConv2D, which a worker rejects (only a local session turns it
    # into oneDNN's bfloat16 kernel before checking it).
    rewrites.remapping = _OFF
  return config


def _done_queue(ps_task):
  with _v1.device('/job:%s/task:%d/device:CPU:0' % (cluster_lib.PS_JOB, ps_task)):
    return _v1.FIFOQueue(-1, [tf.int32], shapes=[[]],
                         shared_name=_DONE_QUEUE_NAME % ps_task,
                         name='worker_done_queue_ps%d' % ps_task)


# --------------------------------------------------------------------------
# The parameter server.


def run_parameter_server(cluster, exit_when_done=True, config=None,
                         timeouts=cluster_lib.Timeouts()):
  """Runs a ps task: checks the cluster, then serves the variables.

  Args:
    cluster: a Cluster whose job is ps.
    exit_when_done: return once every worker has reported the end of its
      training (`DoneReport`), or once the chief has and no other worker
      has reported for `timeouts.ps_idle_secs`; otherwise serve until
      SIGINT or SIGTERM.
    config: ConfigProto of the server.
    timeouts: a cluster_lib.Timeouts.

  Raises:
    cluster_lib.ClusterError: for a cluster mismatch or a chief that does not come.
  """
  server = start_server(cluster, config)
  with StopSignals() as stop:
    check_cluster(server.target, cluster, timeouts.wait_secs, stop)
    if exit_when_done:
      _serve_until_done(server, cluster, timeouts.ps_idle_secs, stop)
    else:
      logging.info('Serving until stopped (SIGINT or SIGTERM).')
      while not stop.event.wait(POLL_SECS):
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
        stop.event.wait(POLL_SECS)
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


