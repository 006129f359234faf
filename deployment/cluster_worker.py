"""A worker task: wait for the chief, train, report; sync replicas.

`start_worker` starts a worker's server and checks the cluster;
`WorkerTask.run` runs the training loop between the connection to the ps
tasks, the wait for the chief's initialisation and the report of the end of
training; `SyncReplicasOptimizer` is tf.compat.v1's with a chief queue
runner that stops when training stops.
"""
import os
import threading
import time

from absl import logging
import tensorflow as tf

from deployment import cluster as cluster_lib
from deployment import cluster_server

_v1 = tf.compat.v1

_v1 = tf.compat.v1
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
    cluster_lib.ClusterError: if the variables are still uninitialised after
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
        raise cluster_lib.ClusterError(
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


def start_worker(cluster, config, timeouts=cluster_lib.Timeouts()):
  """Starts a worker's server and checks the cluster; returns a WorkerTask.

  Call it at the start, before building the graph: a misconfigured or
  unreachable cluster fails in seconds.

  Args:
    cluster: a Cluster whose job is worker.
    config: the ConfigProto of the training sessions (its devices are the
      server's).
    timeouts: a cluster_lib.Timeouts.

  Raises:
    cluster_lib.ClusterError: for a cluster mismatch or a task that does not answer.
  """
  server = cluster_server.start_server(cluster, config)
  with cluster_server.StopSignals() as stop:
    cluster_server.check_cluster(server.target, cluster, timeouts.wait_secs, stop)
    cluster_server.wait_for_ps_tasks(cluster, timeouts.wait_secs, stop)
  return WorkerTask(cluster, server, cluster_server.worker_session_config(cluster, config),
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
      What `train_fn` raises; cluster_lib.ClusterError for a chief that does not come.
    """
    graph = _v1.get_default_graph()
    done_report = cluster_server.DoneReport(self.cluster)
    ready_op = None if self.cluster.is_chief else build_ready_check()
    stop_event = threading.Event()

    def work():
      with graph.as_default(), graph.device(self.cluster.task_device):
        # A ps task gone while the graph was built would make the
        # connection wait forever.
        cluster_server.wait_for_ps_tasks(self.cluster, self._timeouts.wait_secs)
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
  with cluster_server.StopSignals(on_stop) as stop:
    thread.start()
    deadline = None
    while thread.is_alive():
      thread.join(cluster_server.POLL_SECS)
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
