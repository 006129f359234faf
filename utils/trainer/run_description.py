"""What describes a training run, written once when it starts: the settings,
SSD parameters and data files in training_config.txt (and the log), and
in TensorBoard as text and as hyper-parameters for comparing runs; and the
commands that evaluate and draw the model once it ends."""
import os
import shlex
import sys

from absl import logging
import tensorflow as tf

from utils.common import paths
from utils.common import run_directory

_v1 = tf.compat.v1


def write_training_config(config, ssd_params, dataset):
  """Writes the settings, SSD parameters and data files to the log and a file.

  The file is run_directory.TRAINING_CONFIG_FILE_NAME in
  config.logging.train_dir, replaced atomically.
  """
  lines = ['# Settings'] + ['--%s=%s' % item for item in config.settings()]
  lines += ['', '# SSD parameters'] + [
      '%s: %s' % (k, v) for k, v in ssd_params._asdict().items()]
  lines += ['', '# Data: %s, split %s, %d samples, %d classes' % (
      dataset.name, dataset.split_name, dataset.num_samples,
      dataset.num_classes)] + list(dataset.files)
  text = '\n'.join(lines) + '\n'
  logging.info('Training configuration:\n%s', text)
  train_dir = config.logging.train_dir
  tf.io.gfile.makedirs(train_dir)
  paths.write_text_atomically(
      run_directory.training_config_file(train_dir), text)


def _settings_text(config, ssd_params):
  """Markdown of the settings and SSD parameters (TensorBoard's Text tab)."""
  rows = ['| setting | value |', '|---|---|']
  rows += ['| %s | %s |' % item for item in config.settings()]
  rows += ['', '| SSD parameter | value |', '|---|---|']
  rows += ['| %s | %s |' % item for item in ssd_params._asdict().items()]
  return '\n'.join(rows)


# The settings that tell runs apart: TensorBoard's HParams table gets these
# (it sorts its columns by name: a column per setting of every optimizer
# would bury them); all settings are in the Text tab.
_KEY_HPARAMS = ('learning_rate', 'optimizer', 'batch_size', 'num_clones',
                'precision', 'learning_rate_decay_type', 'warmup_steps',
                'max_number_of_steps', 'weight_decay', 'batch_norm',
                'anchor_sizes', 'augmentation', 'dataset_dir')


def _hparams(config):
  """{name: bool/int/float/str} of the _KEY_HPARAMS settings, for
  TensorBoard's HParams."""
  values = {}
  settings = dict(config.settings())
  for name, value in ((name, settings[name]) for name in _KEY_HPARAMS
                      if name in settings):
    if value is None:
      continue
    if not isinstance(value, (bool, int, float, str)):
      value = str(value)
    values[name] = value
  return values


def write_run_summaries(writer, config, ssd_params, graph):
  """Writes, once, what describes the run: the graph, the settings and SSD
  parameters as text, and the settings as hyper-parameters (with the total
  loss as metric) for comparing runs in TensorBoard's HParams tab."""
  # pylint: disable=g-import-not-at-top
  from tensorboard.plugins.hparams import api as hparams_api
  # pylint: enable=g-import-not-at-top
  writer.add_graph(graph)
  with tf.Graph().as_default():
    text = _v1.summary.text('training_config',
                            tf.constant(_settings_text(config, ssd_params)))
    with _v1.Session() as sess:
      writer.add_summary(sess.run(text))
  hparams = _hparams(config)
  for summary in (hparams_api.hparams_config_pb(
      hparams=[hparams_api.HParam(name) for name in hparams],
      metrics=[hparams_api.Metric('losses/total_loss')]),
                  hparams_api.hparams_pb(hparams)):
    # TensorBoard's own Summary class, as TensorFlow's.
    writer.add_summary(_v1.Summary.FromString(summary.SerializeToString()))
  writer.flush()


def _command(*words):
  """A shell command line of `words`, each quoted as the shell needs."""
  return ' '.join(shlex.quote(str(word)) for word in words)


def next_steps_commands(config):
  """(evaluate, demo) commands, shell-quoted, for the model just trained."""
  checkpoint = []
  if os.path.abspath(config.logging.train_dir) != paths.FINE_TUNING_DIR:
    checkpoint = ['--checkpoint_path', config.logging.train_dir]
  python = os.path.relpath(sys.executable) if sys.executable.startswith(
      paths.PROJECT_ROOT) else sys.executable
  dataset_dir = config.data.dataset.dataset_dir
  if dataset_dir:
    data = ['--dataset_dir', dataset_dir,
            '--dataset_split_name', '<split>']
    images = ['<your images or folder>']
    labels = os.path.join(dataset_dir, 'labels.txt')
  else:
    data = []
    sample = os.path.relpath(paths.SAMPLE_DIR)
    images = [os.path.join(sample, 'voc', 'JPEGImages', 'val_%05d.jpg' % i)
              for i in range(3)]
    labels = os.path.join(sample, 'labels.txt')
  evaluate = _command(python, 'eval_ssd_network.py', *checkpoint, *data)
  demo = _command(python, 'demo_ssd.py', *checkpoint, '--labels', labels,
                  '--output_dir', 'demo_out', '--images', *images)
  return evaluate, demo


def print_next_steps(config):
  """Prints the commands that evaluate and draw the model just trained."""
  evaluate, demo = next_steps_commands(config)
  print('\nNext steps:\n'
        '  evaluate (VOC mAP on the %s split):\n'
        '    %s\n'
        '  draw the detections on a few images into demo_out/:\n'
        '    %s' % ('chosen' if config.data.dataset.dataset_dir
                    else 'sample val',
                    evaluate, demo), flush=True)
