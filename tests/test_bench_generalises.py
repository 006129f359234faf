"""Tests of bench/generalises.py's bookkeeping and plot (no training run)."""
import csv
import os
import sys
import xml.etree.ElementTree as ElementTree

import cv2
import numpy as np
import pytest

from conftest import PROJECT_ROOT

sys.path.insert(0, os.path.join(PROJECT_ROOT, 'bench'))
# pylint: disable=g-import-not-at-top,wrong-import-position
import generalises
import plot_curve
# pylint: enable=g-import-not-at-top,wrong-import-position


def _object_names(dataset_dir, image_id):
  root = ElementTree.parse(
      os.path.join(dataset_dir, 'Annotations', image_id + '.xml')).getroot()
  return {node.findtext('name') for node in root.iter('object')}


@pytest.mark.parametrize('split,expected_count', [('train', 160), ('val', 40)])
def test_subset_is_every_image_of_the_classes(groceries_dir, split,
                                              expected_count):
  chosen = generalises.select_images(groceries_dir, split, ['beans', 'coffee'])
  # The dataset names each photo after its (only) class: BEANS0000, ...
  with open(os.path.join(groceries_dir, 'ImageSets', 'Main',
                         split + '.txt')) as split_file:
    expected = [line.strip() for line in split_file
                if line.startswith(('BEANS', 'COFFEE'))]
  assert chosen == expected
  assert len(chosen) == expected_count
  for image_id in chosen[::10]:
    assert _object_names(groceries_dir, image_id) <= {'beans', 'coffee'}


def test_subset_root_lists_the_ids_and_links_the_data(tmp_path):
  source = tmp_path / 'voc'
  for folder in ('Annotations', 'JPEGImages'):
    (source / folder).mkdir(parents=True)
  subset = tmp_path / 'subset'
  classes_path = generalises.write_subset_root(
      str(source), str(subset), ['beans', 'coffee'],
      {'train': ['BEANS0000', 'COFFEE0003'], 'val': ['BEANS0100']})
  assert open(classes_path).read() == 'beans\ncoffee\n'
  lists = subset / 'ImageSets' / 'Main'
  assert (lists / 'train.txt').read_text() == 'BEANS0000\nCOFFEE0003\n'
  assert (lists / 'val.txt').read_text() == 'BEANS0100\n'
  assert os.path.realpath(str(subset / 'JPEGImages')) == os.path.realpath(
      str(source / 'JPEGImages'))


@pytest.mark.parametrize('budget,every,per_step,expected', [
    (8000, 1000, 8, [125, 250, 375, 500, 625, 750, 875, 1000]),
    # 1000 / 12 = 83.3 -> 84, 166.7 -> 167, ...; 8000 / 12 = 666.7 -> 667.
    (8000, 1000, 12, [84, 167, 250, 334, 417, 500, 584, 667]),
    (160, 80, 8, [10, 20]),
    # The budget is not a multiple of the interval: a last, shorter leg.
    (100, 80, 8, [10, 13]),
    (50, 80, 8, [7]),
])
def test_checkpoint_steps(budget, every, per_step, expected):
  assert generalises.checkpoint_steps(budget, every, per_step) == expected


def test_recipe_flags():
  nobn = generalises.recipe_flags(generalises.RECIPES['nobn'], 25.0)
  bn = generalises.recipe_flags(generalises.RECIPES['bn'], 25.0)
  assert '--batch_norm' not in nobn
  assert bn == nobn + ['--batch_norm']
  values = dict(zip(nobn[::2], nobn[1::2]))
  assert values['--learning_rate'] == '0.001'
  assert float(values['--end_learning_rate']) == pytest.approx(0.0001)
  assert values['--num_epochs_per_decay'] == '25.0'
  assert values['--learning_rate_decay_type'] == 'polynomial'
  batch4 = generalises.recipe_flags(generalises.RECIPES['bn_batch4'], 25.0)
  assert batch4[batch4.index('--batch_size') + 1] == '4'


def test_missing_flags():
  command = ['--batch_size', '8', '--batch_norm', '--seed=3']
  assert generalises.missing_flags(command, {'batch_size', 'seed'}) == [
      'batch_norm']
  assert generalises.missing_flags(
      command, {'batch_size', 'seed', 'batch_norm'}) == []


def test_parse_training_log():
  text = '\n'.join([
      'I1201 train_ssd_network.py:359] Precision: mixed_bfloat16 (auto: no '
      'GPU, and the CPU has avx512_bf16 (fast bfloat16))',
      'I1201 step_runner.py:180] step 11: loss 12.0000 (localization 2.0) lr '
      '1e-05, 0.20 images/s, 40.00 s/step, ETA 00:06:00',
      'INFO:tensorflow:Recording summary at step 11.',
      'I1201 step_runner.py:180] step 12: loss 10.5000 (localization 1.5) lr '
      '2e-05, 0.40 images/s, 20.00 s/step, ETA 00:03:00',
      'I1201 step_runner.py:180] step 13: loss 9.0000 (localization 1.0) lr '
      '3e-05, 0.50 images/s, 16.00 s/step'])
  loss, images_per_second, precision = generalises.parse_training_log(text)
  assert loss == pytest.approx((12.0 + 10.5 + 9.0) / 3)
  assert images_per_second == pytest.approx(0.40)
  assert precision == 'mixed_bfloat16'
  assert generalises.parse_training_log('no step lines') == (None, None, None)


def _row(recipe, step, images, loss, voc07, voc12):
  return {'recipe': recipe, 'step': step, 'images_seen': images,
          'train_loss': loss, 'val_map_voc07': voc07, 'val_map_voc12': voc12,
          'train_images_per_second': 0.5, 'train_seconds': 12.25,
          'eval_seconds': 3.0}


def test_csv_and_summary(tmp_path):
  rows = [dict(_row('nobn', 10, 80, 14.2, None, None), precision='float32'),
          _row('nobn', 20, 160, 11.0, 0.0123, 0.0101),
          _row('bn', 10, 80, 9.5, 0.25, 0.26)]
  path = str(tmp_path / 'curve.csv')
  generalises.write_csv(path, rows)
  with open(path) as csv_file:
    read = list(csv.DictReader(csv_file))
  assert tuple(read[0]) == generalises.CSV_FIELDS
  assert read[0]['val_map_voc07'] == ''
  assert read[1]['images_seen'] == '160'
  assert read[1]['val_map_voc07'] == '0.0123'
  assert read[1]['train_loss'] == '11.0000'
  assert (read[0]['precision'], read[1]['precision']) == ('float32', '')
  table = generalises.summary_table(rows, ['nobn', 'bn'])
  lines = table.splitlines()
  assert len(lines) == 4
  assert lines[2].startswith('| nobn |')
  assert '| 0.012 (160) |' in lines[2]
  assert '| 0.250 (80) |' in lines[3]
  # Speed and the precisions the legs used ('?': not in the log).
  assert '| 0.50 ?/float32 |' in lines[2]
  # (12.25 + 3.0) s * 2 legs = 0.5 min.
  assert lines[2].endswith('| 0.5 |')


@pytest.mark.parametrize('low,high,target,ticks', [
    (0.0, 0.37, 5, [0.0, 0.1, 0.2, 0.3, 0.4]),
    (0.0, 8000.0, 8, [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000]),
    (2.4, 13.1, 5, [0, 5, 10, 15]),
    (0.0, 0.0, 5, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
])
def test_nice_ticks(low, high, target, ticks):
  got, axis_low, axis_high = plot_curve.nice_ticks(low, high, target)
  np.testing.assert_allclose(got, ticks, atol=1e-9)
  assert (axis_low, axis_high) == pytest.approx((ticks[0], ticks[-1]))


def test_plot_draws_the_points_where_the_axes_put_them(tmp_path):
  path = str(tmp_path / 'curve.png')
  # x axis 0..10 (ticks of 2), y axis 0..1 (ticks of 0.2).
  panels = [('mAP', {'a': [(0, 0.0), (5, 0.5), (10, 1.0), (7, None)]}, 0.0),
            ('loss', {'a': [(0, None)]}, None)]
  image = plot_curve.plot_curves(path, 'title', 'images seen', panels)
  written = cv2.imread(path)
  np.testing.assert_array_equal(written, image)
  assert written.shape == (2 * 340 + 30, 900, 3)
  color = np.array(plot_curve.SERIES_COLORS_BGR[0])
  # Plot area of panel 0: x 80..710, y 70 (top, y=1) .. 320 (bottom, y=0).
  for x, y in [(80, 320), (395, 195), (710, 70)]:
    np.testing.assert_allclose(written[y, x], color, atol=2)
  # Nowhere else on the first panel's middle row is the series colour.
  middle = np.abs(written[195, 100:380].astype(int) - color).sum(axis=1)
  assert middle.min() > 30


def test_legs_train_each_checkpoint_once_and_resume(tmp_path, monkeypatch):
  settings = generalises.RunSettings(
      str(tmp_path), budget_images=100, schedule_images=8000,
      eval_every_images=40, num_clones=1, precision=None, seed=7,
      torch_python='python', torch_threads=None)
  data = generalises.SubsetData('records', 'voc', ['a', 'b'], 160)
  legs = []

  def fake_leg(runner, step, seed, records_dir, eval_dir):
    legs.append((step, seed))
    assert '--batch_norm' in runner.flags
    # 8000 images of schedule over 160 training images: 50 epochs.
    assert runner.flags[runner.flags.index('--num_epochs_per_decay') + 1] == (
        '50.0')
    return {'step': step, 'train_loss': 1.0, 'val_map_voc07': 0.5,
            'val_map_voc12': 0.5, 'train_images_per_second': 1.0,
            'train_seconds': 1.0, 'eval_seconds': 1.0}

  monkeypatch.setattr(generalises, 'run_leg', fake_leg)
  rows = []
  generalises.run_recipe(settings, 'bn', generalises.RECIPES['bn'], data,
                         rows.append)
  # Batch 8: 40 images -> step 5, 80 -> 10, the budget 100 -> 13.
  assert legs == [(5, 7), (10, 8), (13, 9)]
  assert [(row['step'], row['images_seen']) for row in rows] == [
      (5, 40), (10, 80), (13, 104)]
  # A second run finds every row saved and trains nothing.
  resumed = []
  generalises.run_recipe(settings, 'bn', generalises.RECIPES['bn'], data,
                         resumed.append)
  assert len(legs) == 3
  assert resumed == rows


def test_the_torchvision_leg_gets_the_recipe_of_nobn():
  settings = generalises.RunSettings(
      'work', budget_images=8000, schedule_images=8000,
      eval_every_images=1000, num_clones=1, precision=None, seed=1,
      torch_python='python', torch_threads=1)
  data = generalises.SubsetData('records', 'voc', ['beans', 'coffee'], 320)
  recipe = generalises.RECIPES['torchvision']
  assert recipe._replace(description='', implementation='') == (
      generalises.RECIPES['nobn']._replace(description='', implementation=''))
  command = generalises.torchvision_leg_flags(settings, recipe, data)
  values = dict(zip(command[::2], command[1::2]))
  # Our polynomial decay spans 8,000 images / batch 8 = 1,000 steps.
  assert values['--decay_steps'] == '1000'
  assert float(values['--learning_rate']) == 0.001
  assert float(values['--end_learning_rate']) == pytest.approx(0.0001)
  assert values['--warmup_steps'] == '100'
  assert values['--weight_decay'] == '0.0005'
  assert values['--classes'] == 'beans,coffee'
  assert values['--precision'] == 'bf16_autocast'
  assert values['--threads'] == '1'
