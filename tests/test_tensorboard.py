"""TensorBoard as a user sees it: a real `tensorboard` server over the logdir
of a short training run and an evaluation run on the sample data.

The server runs on a free loopback port and is read over HTTP through its
data API, as the dashboards read it: the runs, the scalar tags (losses,
learning rate, AP), the image tags (ground truth during training, drawn
detections at evaluation) and the PR-curve tags, and a few of the values
behind them, checked against what the evaluation wrote to results.json.
"""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from datasets import dataset_factory
import eval_ssd_network

from conftest import PROJECT_ROOT

sys.path.insert(0, os.path.join(PROJECT_ROOT, 'bench'))
# pylint: disable=g-import-not-at-top,wrong-import-position
from screenshot_tensorboard import TensorBoardServer
# pylint: enable=g-import-not-at-top,wrong-import-position

TRAIN_STEPS = 2
# The run names TensorBoard gives the training and evaluation folders.
TRAIN_RUN, EVAL_RUN = '.', 'eval'


def _train(train_dir, dataset_dir):
  """A TRAIN_STEPS-step training run of train_ssd_network.py, batch 1."""
  command = [sys.executable, os.path.join(PROJECT_ROOT, 'train_ssd_network.py'),
             '--train_dir', train_dir, '--dataset_dir', dataset_dir,
             '--max_number_of_steps', str(TRAIN_STEPS), '--batch_size', '1',
             '--save_summaries_secs', '1', '--num_readers', '1',
             '--num_preprocessing_threads', '1', '--precision', 'float32',
             '--seed', '1']
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
  results = eval_ssd_network.evaluate(
      train_dir, dataset, eval_dir, batch_size=2, max_num_batches=1,
      num_summary_images=2)
  return train_dir, results


def _count_lines(path):
  with open(path) as lines:
    return sum(1 for line in lines if line.strip())


def test_tensorboard_serves_losses_ap_pr_curves_and_images(logdir):
  directory, results = logdir
  # The classes with ground truth in the images evaluated: an AP, a curve.
  classes = sorted(name for name, result in results['classes'].items()
                   if result['num_gt'])
  assert classes and not any(result['num_difficult']
                             for result in results['classes'].values())
  with TensorBoardServer(directory) as server:
    runs = server.json('/data/runs')
    plugins = server.json('/data/plugins_listing')
    scalar_tags = server.json('/data/plugin/scalars/tags')
    image_tags = server.json('/data/plugin/images/tags')
    pr_curve_tags = server.json('/data/plugin/pr_curves/tags')
    mean_ap = server.json('/data/plugin/scalars/scalars', run=EVAL_RUN,
                          tag='AP_VOC07/mAP')
    learning_rate = server.json('/data/plugin/scalars/scalars',
                                run=TRAIN_RUN, tag='learning_rate')
    # The plugin stores a curve under '<name>/pr_curves'; it shows <name>.
    curve_names = {tag_info['displayName']: tag for tag, tag_info in
                   pr_curve_tags.get(EVAL_RUN, {}).items()}
    curves = {name: server.json('/data/plugin/pr_curves/pr_curves',
                                run=EVAL_RUN, tag=tag)[EVAL_RUN]
              for name, tag in curve_names.items()}
    detection_tags = sorted(image_tags.get(EVAL_RUN, {}))
    image_entries = server.json('/data/plugin/images/images', run=EVAL_RUN,
                                tag=detection_tags[0], sample=0)
    image_png = server.bytes('/data/plugin/images/individualImage?' +
                             image_entries[-1]['query'])

  assert sorted(runs) == sorted([TRAIN_RUN, EVAL_RUN]), runs
  for plugin in ('scalars', 'images', 'pr_curves'):
    assert plugins[plugin]['enabled'], (plugin, plugins[plugin])

  # Training: the loss terms and the learning rate; its input images.
  training_scalars = set(scalar_tags[TRAIN_RUN])
  assert {'losses/total_loss', 'losses/ssd_losses/cross_entropy_pos',
          'losses/ssd_losses/cross_entropy_neg',
          'losses/ssd_losses/localization',
          'learning_rate'} <= training_scalars, sorted(training_scalars)
  assert any(tag.startswith('images_with_boxes')
             for tag in image_tags[TRAIN_RUN]), image_tags[TRAIN_RUN]
  # The warm-up (100 steps) from 1e-3 / 100: step s trains at 1e-5 (s + 1).
  assert learning_rate
  for unused_wall_time, step, value in learning_rate:
    assert 0 <= step <= TRAIN_STEPS
    assert value == pytest.approx(1e-5 * (step + 1), rel=1e-5), step

  # Evaluation: AP per class and mAP, one PR curve per class, detections.
  evaluation_scalars = set(scalar_tags[EVAL_RUN])
  for kind in ('VOC07', 'VOC12'):
    assert {'AP_%s/mAP' % kind} | {'AP_%s/%s' % (kind, name)
                                   for name in classes} <= evaluation_scalars
  assert sorted(curve_names) == ['PR_VOC/%s' % name for name in classes]
  assert len(detection_tags) == 2, detection_tags
  assert all(tag.startswith('detections/') for tag in detection_tags)

  # The values behind them, at the checkpoint's step.
  [(unused_wall_time, step, value)] = mean_ap
  assert step == TRAIN_STEPS == results['global_step']
  assert value == pytest.approx(results['mAP_VOC07'], abs=1e-6)
  for name in classes:
    [curve] = curves['PR_VOC/%s' % name]
    assert curve['step'] == TRAIN_STEPS
    # Every object is found or missed at each threshold; at threshold 0
    # every detection of the class counts (one line each in its comp4 file).
    num_gt = results['classes'][name]['num_gt']
    np.testing.assert_allclose(
        np.add(curve['true_positives'], curve['false_negatives']), num_gt)
    assert curve['thresholds'][0] == 0
    assert curve['true_positives'][0] + curve['false_positives'][0] == (
        _count_lines(os.path.join(directory, 'eval',
                                  'comp4_det_val_%s.txt' % name)))
    # A higher threshold keeps fewer detections: recall never grows.
    assert np.all(np.diff(curve['recall']) <= 1e-9), curve['recall']
  image = cv2.imdecode(np.frombuffer(image_png, np.uint8), cv2.IMREAD_COLOR)
  assert image is not None and image.ndim == 3
  # Ground truth and detections side by side: wider than high.
  assert image.shape[1] > image.shape[0], image.shape
