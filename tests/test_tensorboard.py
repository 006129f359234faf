"""TensorBoard as a user sees it: a real `tensorboard` server over the logdir
of a short training run and an evaluation run on the sample data.

The server runs on a free loopback port and is read over HTTP through its
data API, as the dashboards read it: the runs, the scalar tags (losses,
learning rate, throughput, AP), the image tags (ground truth during
training, drawn detections at evaluation), the PR-curve tags, the settings
as text, and a few of the values behind them, checked against the
learning-rate schedule and what the evaluation wrote (results.json, the
comp4 detection files).  The server starts once for the module's tests.
"""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from datasets import dataset_factory
from utils.evaluation import evaluator

from conftest import PROJECT_ROOT

sys.path.insert(0, os.path.join(PROJECT_ROOT, 'bench'))
# pylint: disable=g-import-not-at-top,wrong-import-position
from screenshot_tensorboard import TensorBoardServer
# pylint: enable=g-import-not-at-top,wrong-import-position

TRAIN_STEPS = 2
# The run names TensorBoard gives the training and evaluation folders.
TRAIN_RUN, EVAL_RUN = '.', 'eval'

# Every test here reads the runs and the server the module fixtures start.
pytestmark = pytest.mark.slow


def _train(train_dir, dataset_dir):
  """A TRAIN_STEPS-step training run of train_ssd_network.py, batch 1."""
  command = [sys.executable, os.path.join(PROJECT_ROOT, 'train_ssd_network.py'),
             '--train_dir', train_dir, '--dataset_dir', dataset_dir,
             '--max_number_of_steps', str(TRAIN_STEPS), '--batch_size', '1',
             '--save_summaries_secs', '1', '--num_readers', '1',
             '--num_preprocessing_threads', '1', '--precision', 'float32',
             '--nobatch_norm', '--seed', '1']
  result = subprocess.run(command, capture_output=True, text=True,
                          timeout=300, cwd=PROJECT_ROOT)
  assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope='module')
def logdir(tmp_path_factory, sample_dataset_dir):
  """A training run's folder with the evaluation of its checkpoint in eval/.

  Returns:
    (logdir, the evaluation's results.json as a dict).
  """
  train_dir = str(tmp_path_factory.mktemp('tensorboard_run'))
  _train(train_dir, sample_dataset_dir)
  eval_dir = os.path.join(train_dir, 'eval')
  dataset = dataset_factory.get_dataset('voc', 'val', sample_dataset_dir)
  results = evaluator.evaluate(
      train_dir, dataset, eval_dir, batch_size=2, max_num_batches=1,
      num_summary_images=2)
  return train_dir, results


def _count_lines(path):
  with open(path) as lines:
    return sum(1 for line in lines if line.strip())


def _scalars(server, run, tag):
  """[(wall time, step, value)] of a scalar."""
  return server.json('/data/plugin/scalars/scalars', run=run, tag=tag)


@pytest.fixture(scope='module')
def served(logdir):
  """What a real TensorBoard serves of `logdir`: {name: decoded answer}."""
  directory, unused_results = logdir
  with TensorBoardServer(directory) as server:
    data = {
        'runs': server.json('/data/runs'),
        'plugins': server.json('/data/plugins_listing'),
        'scalar_tags': server.json('/data/plugin/scalars/tags'),
        'image_tags': server.json('/data/plugin/images/tags'),
        'pr_curve_tags': server.json('/data/plugin/pr_curves/tags'),
        'histogram_tags': server.json('/data/plugin/histograms/tags'),
        'text_tags': server.json('/data/plugin/text/tags'),
        'mean_ap': _scalars(server, EVAL_RUN, 'AP_VOC07/mAP'),
        'learning_rate': _scalars(server, TRAIN_RUN, 'learning_rate'),
        'steps_per_sec': _scalars(server, TRAIN_RUN, 'global_step/sec'),
        'images_per_sec': _scalars(server, TRAIN_RUN,
                                   'throughput/images_per_sec'),
    }
    data['config_text'] = server.json('/data/plugin/text/text', run=TRAIN_RUN,
                                      tag='training_config')
    # The plugin stores a curve under '<name>/pr_curves'; it shows <name>.
    data['curves'] = {
        tag_info['displayName']: server.json(
            '/data/plugin/pr_curves/pr_curves', run=EVAL_RUN, tag=tag)[EVAL_RUN]
        for tag, tag_info in data['pr_curve_tags'].get(EVAL_RUN, {}).items()}
    first_image_tag = sorted(data['image_tags'][EVAL_RUN])[0]
    entries = server.json('/data/plugin/images/images', run=EVAL_RUN,
                          tag=first_image_tag, sample=0)
    data['detection_png'] = server.bytes(
        '/data/plugin/images/individualImage?' + entries[-1]['query'])
  return data


def test_both_runs_and_their_dashboards(served):
  assert sorted(served['runs']) == sorted([TRAIN_RUN, EVAL_RUN])
  for plugin in ('scalars', 'images', 'pr_curves', 'text', 'hparams'):
    assert served['plugins'][plugin]['enabled'], (plugin,
                                                  served['plugins'][plugin])


def test_training_losses_learning_rate_throughput_text_images(served):
  scalars = set(served['scalar_tags'][TRAIN_RUN])
  assert {'losses/total_loss', 'losses/ssd_losses/cross_entropy_pos',
          'losses/ssd_losses/cross_entropy_neg',
          'losses/ssd_losses/localization', 'learning_rate',
          'global_step/sec', 'throughput/images_per_sec'} <= scalars, sorted(
              scalars)
  # No per-clone groups, sparsity or histograms by default.
  assert not [tag for tag in scalars
              if tag.startswith(('clone_', 'sparsity/'))], sorted(scalars)
  assert not served['histogram_tags'].get(TRAIN_RUN), served['histogram_tags']
  assert any(tag.startswith('images_with_boxes')
             for tag in served['image_tags'][TRAIN_RUN])
  # The settings and SSD parameters, once, as text.
  assert list(served['text_tags'][TRAIN_RUN]) == ['training_config']
  [config_text] = served['config_text']
  for name in ('batch_size', 'max_number_of_steps', 'anchor_sizes'):
    assert name in config_text['text'], (name, config_text['text'][:300])

  # From scratch: the warm-up (100 steps) times the linear decay from 1e-3
  # to 1e-4 over the TRAIN_STEPS of the run.  Written at global step N: the
  # rate of the step that made it N (run at N - 1, in the same session run).
  assert served['learning_rate']
  for unused_wall_time, step, value in served['learning_rate']:
    assert 1 <= step <= TRAIN_STEPS
    trained_at = step - 1
    decayed = 0.0009 * (1 - trained_at / TRAIN_STEPS) + 0.0001
    assert value == pytest.approx(decayed * (trained_at + 1) / 100,
                                  rel=1e-5), step
  # Throughput measured up to the last step: > 0; batch 1: one image a step.
  rates = {step: value for _, step, value in served['steps_per_sec']}
  assert rates[TRAIN_STEPS] > 0, served['steps_per_sec']
  images = {step: value for _, step, value in served['images_per_sec']}
  assert sorted(images) == sorted(rates)
  for step, value in images.items():
    assert value == pytest.approx(rates[step], rel=1e-5), step


def test_evaluation_ap_pr_curves_and_drawn_detections(logdir, served):
  directory, results = logdir
  # The classes with ground truth in the images evaluated: an AP, a curve.
  classes = sorted(name for name, result in results['classes'].items()
                   if result['num_gt'])
  assert classes and not any(result['num_difficult']
                             for result in results['classes'].values())
  scalars = set(served['scalar_tags'][EVAL_RUN])
  for kind in ('VOC07', 'VOC12'):
    assert {'AP_%s/mAP' % kind} | {'AP_%s/%s' % (kind, name)
                                   for name in classes} <= scalars
  assert sorted(served['curves']) == ['PR_VOC/%s' % name for name in classes]
  detection_tags = sorted(served['image_tags'][EVAL_RUN])
  assert len(detection_tags) == 2, detection_tags
  assert all(tag.startswith('detections/') for tag in detection_tags)

  # The values behind them, at the checkpoint's step.
  [(unused_wall_time, step, value)] = served['mean_ap']
  assert step == TRAIN_STEPS == results['global_step']
  assert value == pytest.approx(results['mAP_VOC07'], abs=1e-6)
  for name in classes:
    [curve] = served['curves']['PR_VOC/%s' % name]
    assert curve['step'] == TRAIN_STEPS
    # Every object is found or missed at each threshold; at threshold 0
    # every detection of the class counts (one line each in its comp4 file).
    np.testing.assert_allclose(
        np.add(curve['true_positives'], curve['false_negatives']),
        results['classes'][name]['num_gt'])
    assert curve['thresholds'][0] == 0
    assert curve['true_positives'][0] + curve['false_positives'][0] == (
        _count_lines(os.path.join(directory, 'eval',
                                  'comp4_det_val_%s.txt' % name)))
    # A higher threshold keeps fewer detections: recall never grows.
    assert np.all(np.diff(curve['recall']) <= 1e-9), curve['recall']
  image = cv2.imdecode(np.frombuffer(served['detection_png'], np.uint8),
                       cv2.IMREAD_COLOR)
  assert image is not None and image.ndim == 3
  # Ground truth and detections side by side: wider than high.
  assert image.shape[1] > image.shape[0], image.shape
