"""bench/train_throughput.py's harness: the child processes and their stepping.

Child side (this file run with --child_json=SPEC): builds the training
graph with the training library (utils/trainer/) from
train_ssd_network.py's own flags, with the real TFRecord input (e2e) or the
injected input_pipeline.fixed_batch_input_fn serving one batch the real
pipeline made, from variables (model), and runs
its steps on the parent's command.  Parent side: `Child` (a process stepped
over its stdin), `run_group` (a group of them, interleaved), `groups`
(configurations packed into memory-budget groups).
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags

import throughput_presets as presets
# pylint: enable=g-import-not-at-top,wrong-import-position

CHILD_MARKER = '--child_json='


def peak_rss_bytes():
  """Peak resident set size of this process (VmHWM; ru_maxrss fallback)."""
  try:
    with open('/proc/self/status') as status:
      for line in status:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def mem_available_gib():
  try:
    with open('/proc/meminfo') as meminfo:
      for line in meminfo:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) / 2**20
  except OSError:
    pass
  return 8.0


def load():
  return '%.2f %.2f %.2f' % os.getloadavg()


# ---------------------------------------------------------------------------
# Child side: one configuration (or the loss trajectories) per process.


def _training_config(data_dir, precision, clones, batch, seed, extra):
  """The TrainingConfig of train_ssd_network.py's command line for a run."""
  import train_ssd_network  # pylint: disable=g-import-not-at-top
  if 'batch_size' not in flags.FLAGS:
    train_ssd_network.define_flags()
  argv = ['train_ssd_network.py', '--dataset_name=voc',
          '--dataset_split_name=train', '--dataset_dir=' + data_dir,
          '--precision=' + precision, '--num_clones=%d' % clones,
          '--clone_on_cpu', '--batch_size=%d' % batch,
          # The SSD300 of the figures in bench/README.md: without the batch
          # norm that the from-scratch defaults add (a variant can add it).
          '--nobatch_norm', '--seed=%d' % seed] + list(extra)
  flags.FLAGS.unparse_flags()
  flags.FLAGS(argv)
  return train_ssd_network.config_from_flags()


def _build(config, mode):
  """Builds the training graph in the default graph.

  Returns:
    (TrainingGraph, model_deploy.DeploymentConfig).
  """
  # pylint: disable=g-import-not-at-top
  from datasets import dataset_flags
  from utils.trainer import graph as graph_lib
  from utils.trainer import input_pipeline
  # pylint: enable=g-import-not-at-top
  dataset = dataset_flags.load_dataset(config.data.dataset)
  ssd_net = graph_lib.build_ssd_net(config.model, dataset.num_classes)
  deploy_config = graph_lib.make_deploy_config(config.deployment)
  input_fn = input_pipeline.tfrecord_input_fn(config, dataset)
  if mode == 'model':
    arrays, batch_shape = input_pipeline.read_batch(input_fn, ssd_net,
                                                    deploy_config,
                                                    config.seed)
    input_fn = input_pipeline.fixed_batch_input_fn(arrays, batch_shape)
  tensors = graph_lib.build_training_graph(config, ssd_net, deploy_config,
                                           input_fn, dataset.num_samples)
  return tensors, deploy_config


def _import_training():
  # pylint: disable=g-import-not-at-top
  # First: it sets oneDNN's switch as training does, before TensorFlow
  # reads it.
  import train_ssd_network  # noqa: F401
  import tensorflow as tf
  from utils.trainer import step_runner
  from utils.trainer import train_tools
  # pylint: enable=g-import-not-at-top
  tf.compat.v1.disable_eager_execution()
  return tf, step_runner, train_tools


def _send(message, payload=None):
  print(message + ('' if payload is None else ' ' + json.dumps(payload)),
        flush=True)


def run_child(spec):
  """One configuration, stepped on the parent's command.

  Builds the graph, runs the warm-up steps, prints READY, then runs one
  step per STEP line read from stdin (printing its wall and CPU seconds)
  until DONE, and prints its RESULT (with the peak RSS) before exiting.
  """
  tf, step_runner, train_tools = _import_training()
  v1 = tf.compat.v1
  config = _training_config(spec['data_dir'], spec['precision'],
                            spec['clones'], spec['batch'], spec['seed'],
                            spec['extra'])
  start = time.perf_counter()
  graph = tf.Graph()
  with graph.as_default():
    v1.set_random_seed(config.seed)
    tensors, deploy_config = _build(config, spec['mode'])
    init = [v1.global_variables_initializer(),
            v1.local_variables_initializer()]
  build_s = time.perf_counter() - start
  # The session loop.run_training opens.
  session_config = train_tools.session_config(
      deploy_config, config.deployment.gpu_memory_fraction,
      config.deployment.precision)
  images_per_step = config.deployment.images_per_step(config.data.batch_size)
  runner = step_runner.StepRunner(tensors, images_per_step, None, 10**9)
  result = dict(build_s=build_s, images_per_step=images_per_step)

  def step():
    wall, cpu = time.perf_counter(), time.process_time()
    loss, _ = runner(sess, tensors.train_op, tensors.global_step, {})
    if runner.failure:
      raise RuntimeError(runner.failure)
    return dict(wall=time.perf_counter() - wall,
                cpu=time.process_time() - cpu, loss=float(loss))

  with v1.Session(graph=graph, config=session_config) as sess:
    sess.run(init)
    coord = v1.train.Coordinator()
    threads = v1.train.start_queue_runners(sess, coord)
    try:
      result['warmup_s'] = [step()['wall'] for _ in range(spec['warmup'])]
      _send('READY', result)
      for line in sys.stdin:
        if line.strip() != 'STEP':
          break
        _send('STEP', step())
      if spec.get('time_summary') and spec['mode'] == 'e2e':
        # What the training loop's summary thread adds every
        # --save_summaries_secs: the summary op, which dequeues a batch and
        # runs the first clone's forward pass for its loss and activation
        # summaries; next to the forward pass alone.
        # The second run of each is timed: a new set of fetches first gets
        # its graph optimised and its oneDNN primitives created.
        for name, fetch in [('forward_s', tensors.loss_terms),
                            ('summary_s', tensors.summary_op)]:
          for _ in range(2):
            fetch_start = time.perf_counter()
            sess.run(fetch)
            result[name] = time.perf_counter() - fetch_start
    finally:
      coord.request_stop()
      coord.join(threads, stop_grace_period_secs=10)
  result['peak_rss'] = peak_rss_bytes()
  _send('RESULT', result)


def run_trajectory_child(spec):
  """Trains one fixed batch from the same weights in each precision."""
  tf, step_runner, train_tools = _import_training()
  v1 = tf.compat.v1
  precisions = spec['precisions']
  config = _training_config(spec['data_dir'], precisions[0], 1,
                            spec['batch'], spec['seed'], spec['extra'])
  trajectories = {}
  graph = tf.Graph()
  with graph.as_default():
    v1.set_random_seed(config.seed)
    tensors, deploy_config = _build(config, 'model')
    init = [v1.global_variables_initializer(),
            v1.local_variables_initializer()]
    variables = v1.global_variables()
  initial_values = None
  # One graph, one session per precision (the rewrite is a session option):
  # the same initial weights, batch and dropout draws in each.
  for precision in precisions:
    session_config = train_tools.session_config(deploy_config,
                                                precision=precision)
    runner = step_runner.StepRunner(tensors, spec['batch'], None, 10**9)
    with v1.Session(graph=graph, config=session_config) as sess:
      sess.run(init)
      if initial_values is None:
        initial_values = sess.run(variables)
      else:
        for variable, value in zip(variables, initial_values):
          variable.load(value, sess)
      losses = []
      for _ in range(spec['steps']):
        loss, _ = runner(sess, tensors.train_op, tensors.global_step, {})
        losses.append(float(loss))
        if runner.failure:
          break
      trajectories[precision] = losses
  _send('RESULT', dict(trajectories=trajectories, peak_rss=peak_rss_bytes()))


# ---------------------------------------------------------------------------
# Parent side.


class Child(object):
  """A child process running one configuration, stepped over its stdin."""

  def __init__(self, spec, log_dir, env=None):
    self.spec = spec
    self._log = tempfile.NamedTemporaryFile(
        'w+', dir=log_dir, prefix='child_', suffix='.log', delete=False)
    self._process = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__),
         CHILD_MARKER + json.dumps(spec)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
        text=True, cwd=PROJECT_ROOT, env=dict(os.environ, **(env or {})))

  def receive(self, expected):
    """The payload of the next `expected` line; RuntimeError if it died."""
    for line in self._process.stdout:
      word, _, payload = line.strip().partition(' ')
      if word == expected:
        return json.loads(payload) if payload else None
    self._process.wait()
    self._log.seek(0)
    tail = self._log.read().strip().splitlines()[-12:]
    raise RuntimeError('exit code %s:\n    %s' % (
        self._process.returncode, '\n    '.join(tail)))

  def send(self, word):
    try:
      self._process.stdin.write(word + '\n')
      self._process.stdin.flush()
    except BrokenPipeError:
      pass

  def finish(self):
    """Lets the child finish; returns its RESULT payload."""
    self.send('DONE')
    try:
      return self.receive('RESULT')
    finally:
      self.close()

  def close(self):
    if self._log.closed:
      return
    if self._process.poll() is None:
      self._process.stdin.close()
      try:
        self._process.wait(timeout=60)
      except subprocess.TimeoutExpired:
        self._process.kill()
        self._process.wait()
    self._log.close()
    os.unlink(self._log.name)


def spawn_once(spec, log_dir):
  """Runs a child that needs no stepping; returns its RESULT payload."""
  child = Child(spec, log_dir)
  try:
    return child.receive('RESULT')
  finally:
    child.close()


def groups(configs, budget_gib):
  """Consecutive configurations whose estimated RSS fits `budget_gib`."""
  packed, used = [], budget_gib
  for config in configs:
    need = presets.estimated_rss_gib(config)
    if used + need > budget_gib:
      packed.append([])
      used = 0.0
    packed[-1].append(config)
    used += need
  return packed


def run_group(configs, spec_of, log_dir, results, steps):
  """Runs `configs` side by side: each in its own process, built and warmed
  up one after the other, then their measured steps interleaved (one step of
  each in turn), so that load changes hit every configuration alike.

  Args:
    configs: the group's configurations.
    spec_of: spec_of(config) -> the child's spec.
    log_dir: where the children's logs go (deleted when they end).
    results: {config key: entry}, filled in (steps, READY and RESULT
      payloads, or the error).
    steps: measured steps per configuration.
  """
  children = []
  try:
    for config in configs:
      entry = results[presets.config_key(config)]
      child = Child(spec_of(config), log_dir, config['env'])
      try:
        entry.update(child.receive('READY'))
        children.append((child, entry))
        print('  ready: %s (build %.0f s, warm-up %s s), load %s' % (
            presets.config_name(config), entry['build_s'],
            ('+'.join('%.0f' % t for t in entry['warmup_s']) or '0'), load()),
              flush=True)
      except RuntimeError as error:
        entry['error'] = str(error)
        print('  FAILED %s: %s' % (presets.config_name(config), error),
              flush=True)
        child.close()
    for step_index in range(steps):
      for child, entry in children:
        if 'error' in entry:
          continue
        child.send('STEP')
        try:
          entry['steps'].append(child.receive('STEP'))
        except RuntimeError as error:
          entry['error'] = str(error)
          print('  FAILED %s: %s' % (presets.config_name(child.spec), error),
                flush=True)
      print('  step %d (s): %s; load %s' % (
          step_index + 1, ', '.join(
              '%.2f' % entry['steps'][-1]['wall'] for _, entry in children
              if entry['steps'] and 'error' not in entry), load()),
            flush=True)
    for child, entry in children:
      if 'error' in entry:
        continue
      try:
        entry.update(child.finish())
      except RuntimeError as error:
        # The steps stand; only the peak RSS is missing.
        print('  %s did not finish cleanly: %s' % (
            presets.config_name(child.spec), error), flush=True)
  finally:
    for child, _ in children:
      child.close()


def child_main(argv):
  spec = json.loads(argv[1][len(CHILD_MARKER):])
  if spec.get('trajectory'):
    run_trajectory_child(spec)
  else:
    run_child(spec)


if __name__ == '__main__':
  child_main(sys.argv)
