"""Tests of demo_ssd.py and its library (utils/inference/demo.py) on a
checkpoint with known detections (see detection_fixtures): in every image
a cat (label 1) at SQUARE_BOX scoring 0.9 and a dog (label 2) at TALL_BOX
scoring 0.6, boxes in the 300x300 network input."""
import fcntl
import glob
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios

import cv2
import numpy as np
import pytest
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim)
import tf_slim as slim

from datasets import dataset_utils
from datasets import voc_common
from nets import nets_factory
import detection_fixtures as helpers
from utils.checkpointing import checkpoints
from utils.inference import demo
from utils.inference import detection
from utils.common import drawing

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
  wide, tall = demo.detect(
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


@pytest.mark.slow
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
    demo.detect(checkpoint_dir, [str(bad)])
  with pytest.raises(ValueError, match='image .*missing.jpg does not exist'):
    demo.run(checkpoint_dir, [str(tmp_path / 'missing.jpg')],
                 str(tmp_path / 'out'))


def test_labels_that_do_not_fit_the_checkpoint(checkpoint_dir, images,
                                               tmp_path):
  dataset_utils.write_label_file(voc_common.labels_to_names(['cat', 'dog']),
                                 str(tmp_path))
  with pytest.raises(checkpoints.CheckpointError,
                     match='predicts 4 classes .* the labels has 3'):
    demo.run(checkpoint_dir, images, str(tmp_path / 'out'),
                 str(tmp_path / 'labels.txt'))
  with pytest.raises(checkpoints.CheckpointError, match='does not exist'):
    demo.detect(str(tmp_path / 'model.ckpt-1'), images)


def _build_network(num_classes):
  ssd_net = nets_factory.build_ssd_net('ssd_300_vgg', num_classes=num_classes)
  with slim.arg_scope(ssd_net.arg_scope()):
    ssd_net.net(tf.compat.v1.placeholder(tf.float32, [1, 300, 300, 3]),
                is_training=False)


def test_saver_names_variables_whose_shapes_differ(checkpoint_dir):
  checkpoint = checkpoints.resolve_checkpoint_path(checkpoint_dir)
  # A 3-class network against the 4-class checkpoint: utils.checkpointing.checkpoints'
  # check names each class head whose shape differs.
  with tf.Graph().as_default():
    _build_network(3)
    with pytest.raises(checkpoints.CheckpointError,
                       match=r'block11_box/conv_cls/weights: model '
                       r'\[3, 3, 256, 12\], checkpoint \[3, 3, 256, 16\]'):
      detection.make_saver(checkpoint)
  # The checkpoint holds no moving averages.
  with tf.Graph().as_default():
    _build_network(helpers.NUM_CLASSES)
    with pytest.raises(checkpoints.CheckpointError,
                       match='holds no moving averages'):
      detection.make_saver(checkpoint, 0.99)


@pytest.fixture(scope='module')
def folder_with_bad_files(tmp_path_factory):
  """good.png, bad.jpg (not an image), empty.jpg and cut.jpg (the first
  half of a JPEG: no end marker)."""
  directory = tmp_path_factory.mktemp('bad_folder')
  cv2.imwrite(str(directory / 'good.png'), helpers.gray_image(60, 80))
  (directory / 'bad.jpg').write_bytes(b'not a JPEG')
  (directory / 'empty.jpg').write_bytes(b'')
  _, encoded = cv2.imencode('.jpg', helpers.gray_image(60, 80, seed=3))
  (directory / 'cut.jpg').write_bytes(encoded.tobytes()[:len(encoded) // 2])
  return str(directory)


def test_bad_files_in_a_folder_are_skipped_and_counted(
    checkpoint_dir, folder_with_bad_files, tmp_path):
  output_dir = tmp_path / 'out'
  results, problems = demo.run(checkpoint_dir, [folder_with_bad_files],
                                   str(output_dir))
  assert [os.path.basename(r.path) for r in results] == ['cut.jpg',
                                                         'good.png']
  assert sorted(os.listdir(str(output_dir))) == ['cut.jpg', 'good.png']
  assert [(os.path.basename(p.path), p.skipped) for p in problems] == [
      ('bad.jpg', True), ('cut.jpg', False), ('empty.jpg', True)]
  assert 'truncated JPEG' in problems[1].message
  assert all(p.path in p.message for p in problems)
  # Strict (problems=None, what run(strict=True) passes): the first bad
  # file stops the reading.
  files = demo.list_images([folder_with_bad_files])
  with pytest.raises(ValueError, match='cannot read image .*bad.jpg'):
    list(demo.read_images(files))
  with pytest.raises(ValueError, match='cut.jpg is a truncated JPEG'):
    list(demo.read_images([os.path.join(folder_with_bad_files,
                                            'cut.jpg')]))


@pytest.mark.slow
def test_a_demo_that_could_read_no_image_fails(checkpoint_dir, tmp_path):
  folder = tmp_path / 'unreadable'
  folder.mkdir()
  (folder / 'bad.jpg').write_bytes(b'not a JPEG')
  (folder / 'empty.jpg').write_bytes(b'')
  output_dir = tmp_path / 'out'
  process = subprocess.run(
      [sys.executable, os.path.join(PROJECT_ROOT, 'demo_ssd.py'),
       '--checkpoint_path', checkpoint_dir, '--images', str(folder),
       '--output_dir', str(output_dir)],
      capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
  assert process.returncode == 1, process.stderr[-3000:]
  assert '2 of 2 images skipped (unreadable)' in process.stderr
  assert process.stderr.splitlines()[-1] == (
      'error: none of the 2 image(s) could be read: nothing was drawn')
  assert os.listdir(str(output_dir)) == []


@pytest.mark.slow
def test_command_line_on_a_terminal_warns_by_name_with_a_progress_bar(
    checkpoint_dir, folder_with_bad_files, tmp_path):
  # stdout and stderr on a pseudo-terminal, as in an interactive shell.
  controller, terminal = pty.openpty()
  # 30 rows of 100 columns (a new pseudo-terminal has 0: tqdm draws nothing).
  fcntl.ioctl(terminal, termios.TIOCSWINSZ,
              struct.pack('HHHH', 30, 100, 0, 0))
  process = subprocess.Popen(
      [sys.executable, os.path.join(PROJECT_ROOT, 'demo_ssd.py'),
       '--checkpoint_path', checkpoint_dir, '--images', folder_with_bad_files,
       '--output_dir', str(tmp_path / 'out')],
      stdout=terminal, stderr=terminal, cwd=str(tmp_path))
  os.close(terminal)
  chunks = []
  while True:
    try:
      chunk = os.read(controller, 65536)
    except OSError:  # EIO: the process closed the terminal.
      break
    if not chunk:
      break
    chunks.append(chunk)
  assert process.wait(timeout=300) == 0
  os.close(controller)
  output = b''.join(chunks).decode('utf-8', 'replace')
  assert 'skipping cannot read image %s' % os.path.join(
      folder_with_bad_files, 'bad.jpg') in output
  assert '2 of 4 images skipped (unreadable)' in output
  assert 'cut.jpg is a truncated JPEG' in output
  assert '4/4' in output and 'image/s' in output  # The progress bar.


@pytest.mark.slow
def test_output_dir_under_a_regular_file(checkpoint_dir, images, tmp_path):
  regular_file = tmp_path / 'file'
  regular_file.write_text('')
  process = subprocess.run(
      [sys.executable, os.path.join(PROJECT_ROOT, 'demo_ssd.py'),
       '--checkpoint_path', checkpoint_dir, '--images', images[0],
       '--output_dir', str(regular_file / 'out')],
      capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
  assert process.returncode == 1
  assert process.stderr.splitlines()[-1] == (
      'error: --output_dir %s: cannot create the folder (%s is a file, not '
      'a folder)' % (regular_file / 'out', regular_file))


def _copy_checkpoint(checkpoint_dir, directory):
  """The checkpoint's files copied into `directory`: its prefix there."""
  os.makedirs(str(directory))
  prefix = checkpoints.resolve_checkpoint_path(checkpoint_dir)
  for path in glob.glob(prefix + '.*'):
    shutil.copy(path, str(directory))
  return os.path.join(str(directory), os.path.basename(prefix))


def test_each_model_is_decoded_with_its_own_anchors(checkpoint_dir, images,
                                                    tmp_path):
  prefix = _copy_checkpoint(checkpoint_dir, tmp_path / 'small_anchors')
  # block11's anchors 150 px instead of 261 px: the cat's square box is
  # 150 / 300 = 0.5 of the image, the dog's 1/2 box 150 * sqrt(2) / 300 =
  # 0.70711 high and 150 / sqrt(2) / 300 = 0.35355 wide, centred.
  default_sizes = nets_factory.get_network(
      'ssd_300_vgg').default_params.anchor_sizes
  params = nets_factory.build_ssd_net(
      'ssd_300_vgg', num_classes=helpers.NUM_CLASSES,
      anchor_sizes=default_sizes[:5] + ((150., 315.),)).params
  nets_factory.write_ssd_params(os.path.dirname(prefix), 'ssd_300_vgg',
                                params)
  wide, _ = demo.detect(prefix, images)
  np.testing.assert_array_equal(wide.classes, [1, 2])
  np.testing.assert_allclose(
      wide.bboxes, [[0.25, 0.25, 0.75, 0.75],
                    [0.5 - 0.35355, 0.5 - 0.17678, 0.5 + 0.35355,
                     0.5 + 0.17678]], atol=1e-5)

  nets_factory.write_ssd_params(os.path.dirname(prefix), 'ssd_300_vgg',
                                params._replace(num_classes=3))
  with pytest.raises(checkpoints.CheckpointError,
                     match='predicts 4 classes but the ssd_params.json'):
    demo.detect(prefix, images)
  with open(os.path.join(os.path.dirname(prefix), 'ssd_params.json'),
            'w') as broken:
    broken.write('{')
  with pytest.raises(checkpoints.CheckpointError,
                     match='cannot read SSD parameters'):
    demo.detect(prefix, images)
