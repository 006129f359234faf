"""Multi-machine training: between-graph replication with parameter servers.

A cluster is a list of parameter-server (ps) tasks, which hold the variables,
and worker tasks, which each build the whole training graph, read their own
input and push gradients to the ps tasks.  One process runs per task, all
with the same cluster: the --ps_hosts and --worker_hosts flags with their
own --job_name and --task, or the `TF_CONFIG` a cluster manager sets
(Kubeflow's TFJob, Vertex AI, SageMaker; `Cluster.from_tf_config`).
Worker 0 (TF_CONFIG's chief) is the chief: it initialises (or restores) the
variables, writes the checkpoints and summaries.

What the cluster is lives here (`Cluster`, `resolve_settings`, `Timeouts`);
its servers in `cluster_server.py`, a worker's task in `cluster_worker.py`.
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

from absl import logging
import tensorflow as tf

PS_JOB = 'ps'
WORKER_JOB = 'worker'
JOB_NAMES = (PS_JOB, WORKER_JOB)
# The environment variable of cluster managers (TFJob, Vertex AI, SageMaker).
TF_CONFIG_ENV = 'TF_CONFIG'


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


