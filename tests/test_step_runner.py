"""Tests of utils/trainer/step_runner.py with stand-in sessions: which
tensors each session run fetches, and when the summaries are written."""
import os

from utils.trainer import graph as graph_lib
from utils.trainer import step_runner


class _GlobalStepOnlySession(object):
  """A session in which only the global step, at `step`, may be read."""

  def __init__(self, global_step, step):
    self._global_step = global_step
    self._step = step

  def run(self, fetches, *unused_args, **unused_kwargs):
    assert fetches is self._global_step, 'ran %r' % (fetches,)
    return self._step


class _RecordingSession(object):
  """A session that counts steps and records what every run fetches.

  A run whose fetches hold the train op is a step (the global step then
  goes up by one); the summary op stands for b'summaries@<global step>'.
  """

  def __init__(self, graph):
    self._graph = graph
    self.global_step = 0
    self.runs = []

  def run(self, fetches, *unused_args, **unused_kwargs):
    if fetches is self._graph.global_step:
      self.runs.append(('global_step',))
      return self.global_step
    if fetches is self._graph.summary_op:
      self.runs.append(('summary_op',))
      return b'summaries@%d' % self.global_step
    names = tuple(self._name(fetch) for fetch in fetches)
    self.runs.append(names)
    assert names[0] == 'train_op', 'ran %r' % (names,)
    self.global_step += 1
    values = {'train_op': 2.0, 'loss_terms': {'localization': 1.0},
              'learning_rate': 0.001,
              'summary_op': b'summaries@%d' % self.global_step}
    return [values[name] for name in names]

  def _name(self, fetch):
    for name in ('train_op', 'loss_terms', 'learning_rate', 'summary_op'):
      if fetch is getattr(self._graph, name):
        return name
    raise AssertionError('unexpected fetch %r' % (fetch,))


class _RecordingWriter(object):
  """A summary writer that keeps (summary, step) pairs."""

  def __init__(self):
    self.summaries = []

  def add_summary(self, summary, step):
    self.summaries.append((summary, step))

  def flush(self):
    pass


def _graph():
  return graph_lib.TrainingGraph(
      train_op=object(), summary_op=object(), global_step=object(),
      learning_rate=object(), total_loss=object(), loss_terms=object())


def _run(runner, sess, graph, max_calls):
  """Calls the runner as tf_slim's loop does, until it says stop."""
  for _ in range(max_calls):
    _, should_stop = runner(sess, graph.train_op, graph.global_step, {})
    if should_stop:
      return
  raise AssertionError('the runner did not stop in %d calls' % max_calls)


def _train(max_steps, save_summaries_secs, images_per_step=1):
  """A step runner with a summary writer, run to max_steps on a recording
  session; returns (session, writer, fetches of each step's run)."""
  graph, writer = _graph(), _RecordingWriter()
  sess = _RecordingSession(graph)
  runner = step_runner.StepRunner(
      graph, images_per_step, max_steps, 1, summary_writer=writer,
      save_summaries_secs=save_summaries_secs)
  _run(runner, sess, graph, 2 * max_steps)
  steps = [names for names in sess.runs if names[0] == 'train_op']
  return sess, writer, steps


def _written(writer):
  """The steps at which the merged summaries (not the throughput) went."""
  return [step for summary, step in writer.summaries
          if isinstance(summary, bytes)]


def test_a_step_runner_at_its_step_limit_runs_no_step(caplog):
  graph = graph_lib.TrainingGraph(
      train_op=object(), summary_op=None, global_step=object(),
      learning_rate=None, total_loss=None, loss_terms={})
  runner = step_runner.StepRunner(graph, 1, 5, 1)
  caplog.set_level('INFO')
  _, should_stop = runner(_GlobalStepOnlySession(graph.global_step, 5),
                          graph.train_op, graph.global_step, {})
  assert should_stop
  assert ('Training is already at step 5 >= --max_number_of_steps 5: '
          'nothing to train.') in caplog.text


def test_summaries_come_from_the_first_and_last_steps_own_runs():
  sess, writer, steps = _train(5, 3600, images_per_step=8)
  assert len(steps) == 5
  # Fetched with the train op of steps 1 and 5, never in a run of its own
  # (which would take a batch that no step trains on).
  with_summary = [i + 1 for i, names in enumerate(steps)
                  if 'summary_op' in names]
  assert with_summary == [1, 5]
  assert ('summary_op',) not in sess.runs
  assert _written(writer) == [1, 5]
  assert (b'summaries@5', 5) in writer.summaries
  # With the second summary, the throughput since the first.
  throughput = [summary for summary, step in writer.summaries
                if not isinstance(summary, bytes)]
  assert len(throughput) == 1
  tags = {value.tag for value in throughput[0].value}
  assert tags == {'global_step/sec', 'throughput/images_per_sec'}
  rates = {value.tag: value.simple_value for value in throughput[0].value}
  assert rates['throughput/images_per_sec'] == rates['global_step/sec'] * 8


def test_summaries_every_step_when_due_every_step():
  sess, writer, steps = _train(4, 0)
  assert len(steps) == 4 and all('summary_op' in names for names in steps)
  assert ('summary_op',) not in sess.runs
  assert _written(writer) == [1, 2, 3, 4]


def test_no_summary_writer_no_summaries():
  graph = _graph()
  sess = _RecordingSession(graph)
  runner = step_runner.StepRunner(graph, 1, 3, 1, save_summaries_secs=0)
  _run(runner, sess, graph, 10)
  assert all('summary_op' not in names for names in sess.runs)


def test_an_unforeseen_stop_still_writes_the_last_summaries(tmp_path):
  """A stop file found after step 3: the summaries of the end are run on
  their own (the run is over, no step needs that batch)."""
  graph, writer = _graph(), _RecordingWriter()
  stop_file = os.path.join(str(tmp_path), 'STOP')

  class _StopAfterThree(_RecordingSession):

    def run(self, fetches, *args, **kwargs):
      if self.global_step == 3:
        open(stop_file, 'w').close()
      return super(_StopAfterThree, self).run(fetches, *args, **kwargs)

  sess = _StopAfterThree(graph)
  runner = step_runner.StepRunner(graph, 1, 100, 1, stop_file=stop_file,
                                  summary_writer=writer,
                                  save_summaries_secs=3600)
  _run(runner, sess, graph, 10)
  assert sess.global_step == 3
  assert _written(writer) == [1, 3]
  assert sess.runs[-1] == ('summary_op',)
