"""End-to-end tests of evaluation (utils.evaluation.evaluator and the
eval_ssd_network.py program) on a checkpoint with known detections (see
detection_fixtures) and a hand-made three-image split.

Every image gets a cat (label 1) at SQUARE_BOX scoring 0.9 and a dog
(label 2) at TALL_BOX scoring 0.6; the checkpoint's moving averages detect a
bird (label 3) at SQUARE_BOX instead of the cat.  The split:
  img_a 200x100: a cat exactly at SQUARE_BOX (13, 6.5, 187, 93.5) and a bird
      elsewhere;
  img_b 300x150: a small cat elsewhere, and a difficult dog;
  img_c 120x160: a difficult cat at SQUARE_BOX.
So the cats rank TP (img_a), FP (img_b; the same score, later image), and
img_c's is ignored; 2 non-difficult cats: precision 1, 1/2 at recall 1/2,
1/2: AP_VOC07 = 6/11 (t = 0 ... 0.5), AP_VOC12 = 1/2.  Dogs have no
non-difficult object: n/a.  Birds have one, never detected: AP 0.
mAP over cat and bird: 3/11 and 1/4.

COCO (pycocotools): difficult objects are crowd regions, so img_c's cat and
img_b's dog (the tall detection covers it) are ignored; cats rank TP, FP at
recall 1/2: precision 1 at the 51 recall points 0, 0.01, ..., 0.5 of 101,
at every IoU threshold (the match is exact): cat AP 51/101, bird 0, dog no
AP.  Only img_a's cat (174 x 87 px) is large, found by the first ranked
cat: AP_large 1.  No object is small.
"""
import glob
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from datasets import dataset_factory
from nets import nets_factory
import detection_fixtures as helpers
from utils.checkpointing import checkpoints
from utils.common import drawing
from utils.evaluation import evaluator

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

IMAGES = [
    ('img_a', 100, 200, [('cat', 13, 6.5, 187, 93.5, 0),
                         ('bird', 5, 5, 40, 40, 0)]),
    ('img_b', 150, 300, [('cat', 10, 10, 50, 50, 0),
                         ('dog', 59.5, 0, 240.5, 150, 1)]),
    ('img_c', 160, 120, [('cat', 7.8, 10.4, 112.2, 149.6, 1)]),
]
CAT_AP07, CAT_AP12 = 6 / 11, 0.5
CAT_COCO_AP = 51 / 101


@pytest.fixture(scope='module')
def checkpoint_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('checkpoint'))
  helpers.write_checkpoint(
      directory, {helpers.SQUARE_ANCHOR: (1, 0.9),
                  helpers.TALL_ANCHOR: (2, 0.6)},
      average_detections={helpers.SQUARE_ANCHOR: (3, 0.8)})
  return directory


@pytest.fixture(scope='module')
def dataset_dir(tmp_path_factory):
  return helpers.write_voc_split(str(tmp_path_factory.mktemp('data')), IMAGES)


def _dataset(dataset_dir):
  return dataset_factory.get_dataset('voc', 'val', dataset_dir)


def _check_results(results, checkpoint_dir):
  assert results['checkpoint_path'] == os.path.join(checkpoint_dir,
                                                    'model.ckpt-1234')
  assert results['global_step'] == helpers.GLOBAL_STEP
  assert results['num_images'] == 3
  assert results['dataset'] == {'name': 'voc', 'split': 'val',
                                'num_samples': 3}
  assert results['settings']['select_threshold'] == 0.01
  cat, dog, bird = (results['classes'][name] for name in helpers.CLASS_NAMES)
  assert cat == {'label': 1, 'num_gt': 2, 'num_difficult': 1,
                 'num_detections': 3, 'AP_VOC07': pytest.approx(CAT_AP07),
                 'AP_VOC12': pytest.approx(CAT_AP12)}
  assert dog == {'label': 2, 'num_gt': 0, 'num_difficult': 1,
                 'num_detections': 3, 'AP_VOC07': None, 'AP_VOC12': None}
  assert bird == {'label': 3, 'num_gt': 1, 'num_difficult': 0,
                  'num_detections': 0, 'AP_VOC07': 0., 'AP_VOC12': 0.}
  assert results['num_map_classes'] == 2
  assert results['mAP_VOC07'] == pytest.approx(CAT_AP07 / 2)
  assert results['mAP_VOC12'] == pytest.approx(CAT_AP12 / 2)


def _read_comp4(path):
  with open(path) as comp4_file:
    return [line.split() for line in comp4_file]


def _events(eval_dir):
  """{(tag, step): Summary.Value} of the event files in eval_dir."""
  values = {}
  for path in glob.glob(os.path.join(eval_dir, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        values[(value.tag, event.step)] = value
  return values


def _run_eval(*args, cwd):
  """Runs eval_ssd_network.py; the CompletedProcess."""
  return subprocess.run(
      [sys.executable, os.path.join(PROJECT_ROOT, 'eval_ssd_network.py')] +
      list(args), capture_output=True, text=True, cwd=str(cwd), timeout=300)


def _copy_checkpoint(checkpoint_dir, directory):
  """A copy of the fixture checkpoint in `directory`; its path."""
  shutil.copytree(checkpoint_dir, str(directory))
  # The copy's index must name its own files (an absolute path would not).
  with open(os.path.join(str(directory), 'checkpoint'), 'w') as index_file:
    index_file.write('model_checkpoint_path: "model.ckpt-1234"\n')
  return str(directory)


def test_decodes_with_the_anchors_of_ssd_params(checkpoint_dir, dataset_dir,
                                                tmp_path):
  # Training with block11 anchors of 240 px instead of 261 px: the square
  # anchor's box is (0.1, 0.1, 0.9, 0.9), img_a's cat 20..180 x 10..90 px.
  train_dir = _copy_checkpoint(checkpoint_dir, tmp_path / 'train')
  params = nets_factory.build_ssd_net(
      'ssd_300_vgg', num_classes=helpers.NUM_CLASSES).params
  nets_factory.write_ssd_params(train_dir, 'ssd_300_vgg', params._replace(
      anchor_sizes=params.anchor_sizes[:-1] + ((240., 315.),)))
  eval_dir = str(tmp_path / 'eval')
  evaluator.evaluate(train_dir, _dataset(dataset_dir), eval_dir,
                     batch_size=1, max_num_batches=1)
  cats = _read_comp4(os.path.join(eval_dir, 'comp4_det_val_cat.txt'))
  assert [float(value) for value in cats[0][2:]] == pytest.approx(
      [20., 10., 180., 90.], abs=0.01)


def test_moving_averages_and_max_num_batches(checkpoint_dir, dataset_dir):
  results = evaluator.evaluate(
      checkpoint_dir, _dataset(dataset_dir), moving_average_decay=0.99,
      batch_size=1, max_num_batches=1)
  assert results['num_images'] == 1
  # img_a: the averages detect a bird where the weights detect a cat.
  assert results['classes']['bird']['num_detections'] == 1
  assert results['classes']['cat']['num_detections'] == 0


def test_class_count_mismatch(checkpoint_dir, dataset_dir):
  with pytest.raises(checkpoints.CheckpointError,
                     match=r'predicts 4 classes .* --num_classes has 3'):
    evaluator.evaluate(checkpoint_dir, _dataset(dataset_dir), num_classes=3)


def test_missing_checkpoint(tmp_path, dataset_dir):
  with pytest.raises(checkpoints.CheckpointError, match='No checkpoint'):
    evaluator.evaluate(str(tmp_path), _dataset(dataset_dir))


@pytest.mark.slow
def test_command_line_writes_every_output(checkpoint_dir, dataset_dir,
                                          tmp_path):
  train_dir = _copy_checkpoint(checkpoint_dir, tmp_path / 'train')
  eval_dir = str(tmp_path / 'eval')
  # Batches of 2: the last one is partial, and ground truth gets padded.
  # Waiting for checkpoints: the existing one, then a 1 s timeout.
  process = _run_eval(
      '--checkpoint_path', train_dir, '--dataset_dir', dataset_dir,
      '--eval_dir', eval_dir, '--batch_size', '2', '--wait_for_checkpoints',
      '--eval_interval_secs', '0', '--timeout', '1', '--metrics', 'voc,coco',
      '--num_summary_images', '2', cwd=tmp_path)
  assert process.returncode == 0, process.stderr[-3000:]
  table = process.stdout.splitlines()
  assert table[1].split() == ['class', 'AP_VOC07', 'AP_VOC12', '#GT']
  assert table[2].split() == ['cat', '0.5455', '0.5000', '2']
  assert table[3].split() == ['dog', 'n/a', 'n/a', '0']
  assert ['AP', '%.4f' % (CAT_COCO_AP / 2)] in [line.split()
                                                for line in table]
  # Not a terminal: no progress bar.
  assert '%|' not in process.stderr

  with open(os.path.join(eval_dir, 'results.json')) as results_file:
    results = json.load(results_file)
  _check_results(results, train_dir)
  assert results['metrics'] == ['voc', 'coco']
  coco = results['coco']
  for name in ('AP', 'AP50', 'AP75'):
    assert coco[name] == pytest.approx(CAT_COCO_AP / 2), name
  assert coco['AP_large'] == pytest.approx(1.)
  assert coco['AP_small'] is None

  # comp4: image id, score, xmin ymin xmax ymax in each image's pixels.
  cats = _read_comp4(os.path.join(eval_dir, 'comp4_det_val_cat.txt'))
  assert [line[:2] for line in cats] == [
      ['img_a', '0.900000'], ['img_b', '0.900000'], ['img_c', '0.900000']]
  assert cats[0][2:] == ['13.00', '6.50', '187.00', '93.50']
  assert cats[1][2:] == ['19.50', '9.75', '280.50', '140.25']
  dogs = _read_comp4(os.path.join(eval_dir, 'comp4_det_val_dog.txt'))
  # TALL_BOX: x 0.5 -+ 0.30759 of 200, the whole height.
  assert [float(v) for v in dogs[0][1:]] == pytest.approx(
      [0.6, 38.48, 0., 161.52, 100.], abs=0.01)
  assert _read_comp4(os.path.join(eval_dir, 'comp4_det_val_bird.txt')) == []

  # detections.json: COCO results, images numbered 1, 2, 3 in split order,
  # boxes [x, y, width, height].
  with open(os.path.join(eval_dir, 'detections.json')) as detections_file:
    detections = json.load(detections_file)
  assert len(detections) == 6
  assert detections[0] == {'image_id': 1, 'category_id': 1, 'score': 0.9,
                           'bbox': [13., 6.5, 174., 87.]}
  assert [d['image_id'] for d in detections] == [1, 1, 2, 2, 3, 3]

  _check_events(_events(eval_dir))

  # The best (only) checkpoint was kept, with its results.
  best_dir = os.path.join(train_dir, 'best')
  assert tf.train.latest_checkpoint(best_dir) == os.path.join(
      best_dir, 'model.ckpt-1234')
  with open(os.path.join(best_dir, 'results.json')) as results_file:
    assert json.load(results_file)['mAP_VOC07'] == pytest.approx(
        CAT_AP07 / 2)


def _check_events(events):
  """The scalars, PR curves and images of the evaluation at GLOBAL_STEP."""
  step = helpers.GLOBAL_STEP

  def scalar(tag):
    return events[(tag, step)].simple_value

  assert scalar('AP_VOC07/cat') == pytest.approx(CAT_AP07)
  assert scalar('AP_VOC12/cat') == pytest.approx(CAT_AP12)
  assert scalar('AP_VOC07/bird') == 0.
  assert scalar('AP_VOC07/mAP') == pytest.approx(CAT_AP07 / 2)
  assert scalar('AP_VOC12/mAP') == pytest.approx(CAT_AP12 / 2)
  assert scalar('COCO/AP') == pytest.approx(CAT_COCO_AP / 2)
  assert scalar('COCO/AP_large') == pytest.approx(1.)
  # No AP, no scalar and no curve.
  assert ('AP_VOC07/dog', step) not in events
  assert ('COCO/AP_small', step) not in events
  assert ('PR_VOC/dog/pr_curves', step) not in events

  # PR curves, 101 thresholds: the cats score 0.9 (TP, FP; img_c's is
  # ignored), 2 objects: thresholds up to 0.9 keep both, above none.
  value = events[('PR_VOC/cat/pr_curves', step)]
  assert value.metadata.plugin_data.plugin_name == 'pr_curves'
  tp, fp, tn, fn, precision, recall = tf.make_ndarray(value.tensor)
  kept = np.arange(101) <= 90
  np.testing.assert_array_equal(tp, np.where(kept, 1, 0))
  np.testing.assert_array_equal(fp, np.where(kept, 1, 0))
  np.testing.assert_array_equal(fn, np.where(kept, 1, 2))
  np.testing.assert_array_equal(tn, 0)
  np.testing.assert_allclose(precision, np.where(kept, 0.5, 0.), atol=1e-6)
  np.testing.assert_allclose(recall, np.where(kept, 0.5, 0.), atol=1e-6)
  tp, fp, _, fn = tf.make_ndarray(
      events[('PR_VOC/bird/pr_curves', step)].tensor)[:4]
  assert not tp.any() and not fp.any() and (fn == 1).all()

  # Images: the first two of the split, ground truth left, detections
  # scoring >= 0.5 right, 8 white columns between.
  assert ('detections/img_c', step) not in events
  value = events[('detections/img_a', step)]
  assert value.metadata.summary_description == (
      'Left: ground truth. Right: the best 10 detections scoring >= 0.2.')
  encoded = value.image.encoded_image_string
  image = cv2.imdecode(np.frombuffer(encoded, np.uint8),
                       cv2.IMREAD_COLOR)[..., ::-1]
  assert image.shape == (100, 2 * 200 + 8, 3)
  left, right = image[:, :200], image[:, 208:]
  assert (image[:, 200:208] == 255).all()
  cat, dog = drawing.class_color(1), drawing.class_color(2)
  # The cat's box (x from 13 px), drawn on both sides; the dog's (x from
  # 38.48 px), detected only.
  assert tuple(left[50, 13]) == cat and tuple(right[50, 13]) == cat
  # Outlines 3 px wide.
  assert tuple(right[50, 15]) == cat and tuple(right[50, 16]) != cat
  assert tuple(right[50, 38]) == dog and tuple(left[50, 38]) != dog
  assert ('detections/img_b', step) in events


@pytest.mark.slow
def test_timeout_with_nothing_evaluated_is_an_error(dataset_dir, tmp_path):
  empty = tmp_path / 'train'
  empty.mkdir()
  process = _run_eval('--checkpoint_path', str(empty), '--dataset_dir',
                      dataset_dir, '--wait_for_checkpoints', '--timeout',
                      '0.5', '--eval_interval_secs', '0', cwd=tmp_path)
  assert process.returncode == 1
  assert process.stderr.strip().splitlines()[-1] == (
      'error: no checkpoint appeared in %s within --timeout 0.5 s: nothing '
      'was evaluated' % empty)


@pytest.mark.slow
def test_eval_dir_under_a_regular_file(checkpoint_dir, tmp_path):
  (tmp_path / 'file').write_text('')
  process = _run_eval('--checkpoint_path', checkpoint_dir, '--eval_dir',
                      str(tmp_path / 'file' / 'eval'), cwd=tmp_path)
  assert process.returncode == 1
  assert process.stderr.strip().splitlines()[-1] == (
      'error: --eval_dir %s: cannot create the folder (%s is a file, not a '
      'folder)' % (tmp_path / 'file' / 'eval', tmp_path / 'file'))
