"""Tests of the built-in sample dataset and of the inspection command."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from datasets import dataset_factory
from datasets import inspect_tfrecords
from datasets import sample_data
import datasets_fixtures as support

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = range(12)


def _render(seed):
  return sample_data.render_image(np.random.default_rng([seed, 0, 0]))


def test_rendering_is_deterministic():
  first, again, other = _render(5), _render(5), _render(6)
  np.testing.assert_array_equal(first[0], again[0])
  assert first[1] == again[1]
  assert first[1] != other[1]


@pytest.mark.parametrize('seed', SEEDS)
def test_boxes_are_inside_large_and_disjoint(seed):
  image, objects = _render(seed)
  height, width = image.shape[:2]
  assert 300 <= height <= 500 and 300 <= width <= 500
  assert 1 <= len(objects) <= sample_data.MAX_OBJECTS
  for name, xmin, ymin, xmax, ymax in objects:
    assert name in sample_data.CLASS_NAMES
    assert 0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height
    assert min(xmax - xmin, ymax - ymin) >= 0.15 * min(height, width)
  for index, first in enumerate(objects):
    for second in objects[index + 1:]:
      assert (first[3] <= second[1] or second[3] <= first[1] or
              first[4] <= second[2] or second[4] <= first[2])


def _step(inside, outside):
  """Largest per-pixel colour change across a box side."""
  return np.abs(inside.astype(int) - outside.astype(int)).max()


@pytest.mark.parametrize('seed', SEEDS)
def test_boxes_sit_on_the_painted_edges(seed):
  """Each box side lies on a colour step: painted inside, background out.

  A box one pixel too large has background on both sides of its edge (a
  step of at most the background noise, < 60), one too small has object on
  both sides.
  """
  image, objects = _render(seed)
  height, width = image.shape[:2]
  for _, xmin, ymin, xmax, ymax in objects:
    sides = []
    if xmin > 0:
      sides.append((image[ymin:ymax, xmin], image[ymin:ymax, xmin - 1]))
    if xmax < width:
      sides.append((image[ymin:ymax, xmax - 1], image[ymin:ymax, xmax]))
    if ymin > 0:
      sides.append((image[ymin, xmin:xmax], image[ymin - 1, xmin:xmax]))
    if ymax < height:
      sides.append((image[ymax - 1, xmin:xmax], image[ymax, xmin:xmax]))
    for inside, outside in sides:
      assert _step(inside, outside) > 60
    # One pixel further out there is no object edge any more.
    if xmin > 1:
      assert _step(image[ymin:ymax, xmin - 1], image[ymin:ymax, xmin - 2]) < 60


@pytest.fixture(scope='module')
def small_sample(tmp_path_factory):
  output_dir = str(tmp_path_factory.mktemp('sample') / 'sample')
  return sample_data.ensure_sample_dataset(output_dir, num_train=6,
                                           num_val=3, seed=1)


def test_ensure_sample_dataset_converts_once(small_sample):
  train = dataset_factory.get_dataset('voc', 'train', small_sample)
  assert train.num_samples == 6
  assert dataset_factory.get_dataset('voc', 'val', small_sample
                                    ).num_samples == 3
  assert train.labels_to_names == {0: 'none', 1: 'box', 2: 'bottle',
                                   3: 'can'}
  stamps = {name: os.path.getmtime(os.path.join(small_sample, name))
            for name in os.listdir(small_sample)}
  sample_data.ensure_sample_dataset(small_sample, num_train=6, num_val=3,
                                    seed=1)
  assert stamps == {name: os.path.getmtime(os.path.join(small_sample, name))
                    for name in os.listdir(small_sample)}


def test_other_settings_regenerate(tmp_path):
  output_dir = str(tmp_path / 'sample')
  sample_data.ensure_sample_dataset(output_dir, num_train=2, num_val=1)
  sample_data.ensure_sample_dataset(output_dir, num_train=3, num_val=1)
  assert dataset_factory.get_dataset('voc', 'train',
                                     output_dir).num_samples == 3


def test_sample_records_equal_the_voc_tree(small_sample):
  voc = os.path.join(small_sample, 'voc')
  dataset = dataset_factory.get_dataset('voc', 'train', small_sample)
  examples = support.decode_all(dataset, shuffle=False)
  for index, example in enumerate(examples):
    assert example['filename'] == b'train_%05d.jpg' % index
    image, objects = sample_data.render_image(
        np.random.default_rng([1, 0, index]))
    stored = cv2.imread(os.path.join(voc, 'JPEGImages',
                                     example['filename'].decode()))
    np.testing.assert_array_equal(example['image'], stored[:, :, ::-1])
    # JPEG at quality 95 stays close to the rendering (mostly noise lost).
    assert np.abs(stored.astype(int) - image).mean() < 8
    height, width = image.shape[:2]
    np.testing.assert_allclose(
        example['bboxes'],
        [(ymin / height, xmin / width, ymax / height, xmax / width)
         for _, xmin, ymin, xmax, ymax in objects], atol=1e-6)
    assert [sample_data.CLASS_NAMES[label - 1]
            for label in example['labels']] == [obj[0] for obj in objects]


def test_inspect_counts_and_draws(small_sample, tmp_path):
  dataset = dataset_factory.get_dataset('voc', 'val', small_sample)
  stats, drawn = inspect_tfrecords.inspect(
      dataset.files, dataset.labels_to_names, str(tmp_path / 'drawn'), 2)
  metadata, = dataset.metadata
  assert stats['records'] == 3
  assert stats['objects'] == metadata['num_objects']
  for label, name in list(dataset.labels_to_names.items())[1:]:
    assert len(stats['classes'][label]['widths']) == (
        metadata['objects_per_class'][name])
    assert stats['classes'][label]['images'] == (
        metadata['images_per_class'][name])
  assert not stats['problems']
  assert [os.path.basename(path) for path in drawn] == [
      '000_val_00000.jpg', '001_val_00001.jpg']
  first = support.decode_all(dataset, shuffle=False)[0]
  drawing = cv2.imread(drawn[0])
  assert drawing.shape == first['image'].shape
  # The first box's left edge (inside the box) is in its class colour (BGR).
  ymin, xmin, ymax = (first['bboxes'][0] *
                      (first['image'].shape[:2] * 2))[:3].round().astype(int)
  color = inspect_tfrecords.drawing.class_color(first['labels'][0])[::-1]
  edge = drawing[(ymin + ymax) // 2, xmin:xmin + 2].astype(int)
  assert np.abs(edge.mean(axis=0) - color).max() < 40


@pytest.mark.slow
def test_inspect_command_line(small_sample):
  done = subprocess.run(
      [sys.executable, '-m', 'datasets.inspect_tfrecords',
       os.path.join(small_sample, 'sample_train_*.tfrecord')],
      cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr
  assert '1 file(s), 6 records' in done.stdout
  assert 'problems: none' in done.stdout


def test_inspect_names_a_record_that_does_not_decode(small_sample):
  not_records = os.path.join(small_sample, 'voc', 'classes.txt')
  with pytest.raises(ValueError, match='classes.txt: record 0 does not '
                     'decode'):
    list(inspect_tfrecords.iterate_examples([not_records]))
