"""Tests of demo_ssd.py on a checkpoint with known detections (see
detection_fixtures): in every image a cat (label 1) at SQUARE_BOX scoring
0.9 and a dog (label 2) at TALL_BOX scoring 0.6, boxes in the 300x300
network input."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from datasets import dataset_utils
from datasets import voc_common
import demo_ssd
import detection_fixtures as helpers
from utils import checkpoints
from utils import detection
from utils import drawing

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def checkpoint_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('checkpoint'))
  helpers.write_checkpoint(directory, {helpers.SQUARE_ANCHOR: (1, 0.9),
                                       helpers.TALL_ANCHOR: (2, 0.6)})
  return directory


@pytest.fixture(scope='module')
def images(tmp_path_factory):
  """A 200x100 JPEG and a 120x160 PNG, in one folder."""
  directory = tmp_path_factory.mktemp('images')
  paths = [str(directory / 'wide.jpg'), str(directory / 'tall.png')]
  cv2.imwrite(paths[0], helpers.gray_image(100, 200))
  cv2.imwrite(paths[1], helpers.gray_image(160, 120))
  return paths


@pytest.fixture(scope='module')
def labels_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('labels'))
  dataset_utils.write_label_file(
      voc_common.labels_to_names(helpers.CLASS_NAMES), directory)
  return directory


def test_pad_resize_maps_boxes_to_the_original_image(checkpoint_dir, images):
  wide, tall = demo_ssd.detect(
      checkpoint_dir, images,
      settings=detection.DetectionSettings(select_threshold=0.5,
                                           resize='pad'))
  for result in (wide, tall):
    np.testing.assert_array_equal(result.classes, [1, 2])
    np.testing.assert_allclose(result.scores, [0.9, 0.6], atol=1e-5)
  # wide.jpg, 200x100, fills rows 0.25 to 0.75 of the input (bbox_img
  # (0.25, 0, 0.75, 1)): y = (y_input - 0.25) / 0.5, clipped to [0, 1].
  np.testing.assert_allclose(wide.bboxes, [[0., 0.065, 1., 0.935],
                                           helpers.TALL_BOX], atol=1e-5)
  # tall.png, 120x160, fills columns 0.125 to 0.875: x = (x_input - 0.125)
  # / 0.75; the dog's 0.5 -+ 0.30759 becomes 0.08988 and 0.91012.
  np.testing.assert_allclose(tall.bboxes, [[0.065, 0., 0.935, 1.],
                                           [0., 0.08988, 1., 0.91012]],
                             atol=1e-5)


def test_command_line_prints_and_draws(checkpoint_dir, images, labels_dir,
                                       tmp_path):
  output_dir = str(tmp_path / 'out')
  # Images listed after --images, as a folder for the second run's sake.
  process = subprocess.run(
      [sys.executable, os.path.join(PROJECT_ROOT, 'demo_ssd.py'),
       '--checkpoint_path', checkpoint_dir, '--images', images[0], images[1],
       '--labels', os.path.join(labels_dir, 'labels.txt'),
       '--output_dir', output_dir],
      capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
  assert process.returncode == 0, process.stderr[-3000:]
  lines = process.stdout.splitlines()
  # Warped: SQUARE_BOX is (0.065, 0.935) of each side, TALL_BOX spans the
  # height and 0.5 -+ 0.30759 of the width.
  assert lines == [
      '%s: 2 detections' % images[0],
      '  cat 0.900 13.0 6.5 187.0 93.5',
      '  dog 0.600 38.5 0.0 161.5 100.0',
      '%s: 2 detections' % images[1],
      '  cat 0.900 7.8 10.4 112.2 149.6',
      '  dog 0.600 23.1 0.0 96.9 160.0']
  drawn = cv2.imread(os.path.join(output_dir, 'tall.png'))
  assert drawn.shape == (160, 120, 3)
  # The cat's bottom edge (rows up to round(149.6) - 1), in the cat's
  # colour (RGB, the image is BGR); PNG keeps it exact.
  for row in (148, 149):
    np.testing.assert_array_equal(drawn[row, 60, ::-1],
                                  drawing.class_color(1))
  assert not np.array_equal(drawn[147, 60, ::-1], drawing.class_color(1))
  assert cv2.imread(os.path.join(output_dir, 'wide.jpg')).shape == (100, 200,
                                                                    3)


def test_unreadable_image(checkpoint_dir, tmp_path):
  bad = tmp_path / 'bad.jpg'
  bad.write_bytes(b'not a JPEG')
  with pytest.raises(ValueError, match='cannot read image .*bad.jpg'):
    demo_ssd.detect(checkpoint_dir, [str(bad)])
  with pytest.raises(ValueError, match='image .*missing.jpg does not exist'):
    demo_ssd.run(checkpoint_dir, [str(tmp_path / 'missing.jpg')],
                 str(tmp_path / 'out'))


def test_labels_that_do_not_fit_the_checkpoint(checkpoint_dir, images,
                                               tmp_path):
  dataset_utils.write_label_file(voc_common.labels_to_names(['cat', 'dog']),
                                 str(tmp_path))
  with pytest.raises(checkpoints.CheckpointError,
                     match='predicts 4 classes .* the labels has 3'):
    demo_ssd.run(checkpoint_dir, images, str(tmp_path / 'out'),
                 str(tmp_path / 'labels.txt'))
  with pytest.raises(checkpoints.CheckpointError, match='does not exist'):
    demo_ssd.detect(str(tmp_path / 'model.ckpt-1'), images)
