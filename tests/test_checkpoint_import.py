"""utils/checkpointing/checkpoint_import.py and import_checkpoint.py: torchvision's SSD300.

The state dicts here are synthetic: torchvision's exact key names and
shapes for `ssd300_vgg16(num_classes=3)`, written from the lists below
(no PyTorch needed), each tensor filled with its own values.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from nets import nets_factory
from utils.checkpointing import checkpoint_import
from utils.inference import detection

from conftest import PROJECT_ROOT

NUM_CLASSES = 3
# (torchvision module, our scope, out channels, in channels, kernel size).
_VGG = [(0, 'conv1/conv1_1', 64, 3), (2, 'conv1/conv1_2', 64, 64),
        (5, 'conv2/conv2_1', 128, 64), (7, 'conv2/conv2_2', 128, 128),
        (10, 'conv3/conv3_1', 256, 128), (12, 'conv3/conv3_2', 256, 256),
        (14, 'conv3/conv3_3', 256, 256), (17, 'conv4/conv4_1', 512, 256),
        (19, 'conv4/conv4_2', 512, 512), (21, 'conv4/conv4_3', 512, 512)]
CONVOLUTIONS = (
    [('backbone.features.%d' % i, scope, out, inp, 3)
     for i, scope, out, inp in _VGG] +
    [('backbone.extra.0.%d' % i, 'conv5/conv5_%d' % j, 512, 512, 3)
     for j, i in enumerate((1, 3, 5), start=1)] +
    [('backbone.extra.0.7.1', 'conv6', 1024, 512, 3),
     ('backbone.extra.0.7.3', 'conv7', 1024, 1024, 1),
     ('backbone.extra.1.0', 'block8/conv1x1', 256, 1024, 1),
     ('backbone.extra.1.2', 'block8/conv3x3', 512, 256, 3),
     ('backbone.extra.2.0', 'block9/conv1x1', 128, 512, 1),
     ('backbone.extra.2.2', 'block9/conv3x3', 256, 128, 3),
     ('backbone.extra.3.0', 'block10/conv1x1', 128, 256, 1),
     ('backbone.extra.3.2', 'block10/conv3x3', 256, 128, 3),
     ('backbone.extra.4.0', 'block11/conv1x1', 128, 256, 1),
     ('backbone.extra.4.2', 'block11/conv3x3', 256, 128, 3)])
HEAD_INPUTS = [('block4', 512, 4), ('block7', 1024, 6), ('block8', 512, 6),
               ('block9', 256, 6), ('block10', 256, 4), ('block11', 256, 4)]
for _index, (_block, _inputs, _anchors) in enumerate(HEAD_INPUTS):
  CONVOLUTIONS.append(('head.classification_head.module_list.%d' % _index,
                       _block + '_box/conv_cls', _anchors * NUM_CLASSES,
                       _inputs, 3))
  CONVOLUTIONS.append(('head.regression_head.module_list.%d' % _index,
                       _block + '_box/conv_loc', _anchors * 4, _inputs, 3))


def synthetic_state_dict(seed=0):
  """{key: array} with torchvision's names and (out, in, h, w) shapes."""
  rng = np.random.default_rng(seed)
  state = {'backbone.scale_weight': rng.normal(size=512).astype(np.float32)}
  for module, _, out, inp, size in CONVOLUTIONS:
    state[module + '.weight'] = rng.normal(
        scale=0.01, size=(out, inp, size, size)).astype(np.float32)
    state[module + '.bias'] = rng.normal(size=out).astype(np.float32)
  return state


@pytest.fixture(scope='module')
def imported(tmp_path_factory):
  """(state dict, output dir) of one import of a synthetic .npz."""
  directory = tmp_path_factory.mktemp('import')
  state = synthetic_state_dict()
  npz_path = str(directory / 'ssd300.npz')
  np.savez(npz_path, **state)
  output_dir = str(directory / 'imported')
  checkpoint_import.import_torchvision(npz_path, output_dir)
  return state, output_dir


def test_every_tensor_lands_in_its_variable_transposed(imported):
  state, output_dir = imported
  reader = tf.train.load_checkpoint(output_dir)
  saved = reader.get_variable_to_shape_map()
  # The kernels and biases, the L2 scale and the SSD parameters.
  assert len(saved) == 2 * len(CONVOLUTIONS) + 2
  for module, scope, _, _, _ in CONVOLUTIONS:
    kernel = reader.get_tensor('ssd_300_vgg/%s/weights' % scope)
    # (out, in, h, w) -> (h, w, in, out), element by element.
    assert kernel[1 % kernel.shape[0], 0, 2, 1] == (
        state[module + '.weight'][1, 2, 1 % kernel.shape[0], 0])
    np.testing.assert_array_equal(
        kernel, np.transpose(state[module + '.weight'], (2, 3, 1, 0)))
    np.testing.assert_array_equal(
        reader.get_tensor('ssd_300_vgg/%s/biases' % scope),
        state[module + '.bias'])
  np.testing.assert_array_equal(
      reader.get_tensor('ssd_300_vgg/block4_box/L2Normalization/gamma'),
      state['backbone.scale_weight'])


def test_the_detector_reads_the_classes_and_torchvision_anchors(imported):
  _, output_dir = imported
  _, ssd_net = detection.load_network(output_dir)
  assert ssd_net.params.num_classes == NUM_CLASSES
  assert ssd_net.params.anchor_clip
  _, _, heights, widths = ssd_net.anchors()[-1]
  assert max(heights) == 1.0 and max(widths) == 1.0


def test_class_logits_are_ordered_anchor_then_class_as_torchvision(imported):
  """With zero kernels, the head's logits are its biases: anchor a, class k
  must be torchvision's output channel a * num_classes + k."""
  state, output_dir = imported
  _, ssd_net = detection.load_network(output_dir)
  reader = tf.train.load_checkpoint(output_dir)
  graph = tf.Graph()
  with graph.as_default():
    images = tf.compat.v1.placeholder(tf.float32, [1, 300, 300, 3])
    import tf_slim as slim  # pylint: disable=g-import-not-at-top
    with slim.arg_scope(ssd_net.arg_scope()):
      _, localisations, logits, _ = ssd_net.net(images, is_training=False)
    assigns = []
    for variable in tf.compat.v1.global_variables():
      value = reader.get_tensor(variable.op.name)
      if variable.op.name.endswith('block11_box/conv_cls/weights') or (
          variable.op.name.endswith('block11_box/conv_loc/weights')):
        value = np.zeros_like(value)
      assigns.append(variable.assign(value))
    with tf.compat.v1.Session(graph=graph) as session:
      session.run(assigns)
      last_logits, last_boxes = session.run(
          [logits[-1], localisations[-1]], {images: np.zeros((1, 300, 300, 3))})
  class_bias = state['head.classification_head.module_list.5.bias']
  box_bias = state['head.regression_head.module_list.5.bias']
  np.testing.assert_allclose(last_logits[0, 0, 0],
                             class_bias.reshape(4, NUM_CLASSES), rtol=1e-6)
  np.testing.assert_allclose(last_boxes[0, 0, 0], box_bias.reshape(4, 4),
                             rtol=1e-6)


def test_safetensors_reads_like_npz(tmp_path):
  from safetensors import numpy as safetensors_numpy  # pylint: disable=g-import-not-at-top
  state = {'a.weight': np.arange(6, dtype=np.float32).reshape(2, 3)}
  path = str(tmp_path / 'weights.safetensors')
  safetensors_numpy.save_file(state, path)
  read = checkpoint_import.read_state_dict(path)
  np.testing.assert_array_equal(read['a.weight'], state['a.weight'])


@pytest.mark.parametrize('change, named', [
    (lambda s: s.update({'backbone.extra.5.0.weight': np.zeros(1)}),
     'unknown key backbone.extra.5.0.weight'),
    (lambda s: s.pop('backbone.extra.2.2.bias'),
     'missing key backbone.extra.2.2.bias'),
    (lambda s: s.update({'backbone.features.0.weight': np.zeros((64, 3, 3))}),
     'backbone.features.0.weight has shape [64, 3, 3]'),
    (lambda s: s.update({'backbone.features.2.bias': np.zeros(65)}),
     'ssd_300_vgg/conv1/conv1_2/biases: imported shape [65], model [64]'),
])
def test_bad_state_dicts_are_refused_naming_the_key(tmp_path, change, named):
  state = synthetic_state_dict()
  change(state)
  path = str(tmp_path / 'bad.npz')
  np.savez(path, **state)
  with pytest.raises(checkpoint_import.CheckpointImportError) as error:
    checkpoint_import.import_torchvision(path, str(tmp_path / 'out'))
  assert named in str(error.value)
  assert str(error.value).startswith(path)
  assert not os.path.exists(str(tmp_path / 'out' / 'checkpoint'))


def test_pth_without_torch_says_what_to_do(tmp_path):
  pytest.importorskip('numpy')
  try:
    import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    pytest.skip('PyTorch is installed here: .pth files are read with it')
  except ImportError:
    pass
  path = tmp_path / 'ssd300.pth'
  path.write_bytes(b'not read')
  with pytest.raises(checkpoint_import.CheckpointImportError,
                     match='pip install torch.*npz or .safetensors'):
    checkpoint_import.read_state_dict(str(path))


@pytest.mark.slow
def test_the_script_fails_in_one_line_on_a_bad_file(tmp_path):
  bad = tmp_path / 'weights.npz'
  bad.write_bytes(b'this is not an npz archive')
  process = subprocess.run(
      [sys.executable, os.path.join(PROJECT_ROOT, 'import_checkpoint.py'),
       '--input', str(bad), '--output_dir', str(tmp_path / 'out')],
      cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      universal_newlines=True, timeout=120)
  assert process.returncode == 1
  errors = [line for line in process.stdout.splitlines()
            if line.startswith('E') and str(bad) in line]
  assert len(errors) == 1, process.stdout
  assert 'Traceback' not in process.stdout


def test_an_output_dir_with_a_checkpoint_is_refused(imported, tmp_path):
  state, output_dir = imported
  path = str(tmp_path / 'again.npz')
  np.savez(path, **state)
  before = sorted(os.listdir(output_dir))
  with pytest.raises(checkpoint_import.CheckpointImportError,
                     match='already holds a checkpoint'):
    checkpoint_import.import_torchvision(path, output_dir)
  assert sorted(os.listdir(output_dir)) == before


def test_the_checkpoint_holds_its_parameters_like_a_trained_one(imported):
  _, output_dir = imported
  reader = tf.train.load_checkpoint(output_dir)
  model_name, params = nets_factory.checkpoint_ssd_params(reader,
                                                          'ssd_300_vgg')
  assert model_name == 'ssd_300_vgg'
  assert params.num_classes == NUM_CLASSES and params.anchor_clip


@pytest.mark.slow
def test_fine_tuning_from_the_import_excludes_the_class_heads_by_itself(
    imported, tmp_path, sample_dataset_dir):
  """The sample data has 4 classes, the import 3: its class heads start from
  scratch, every other variable starts from the import (learning rate 0
  keeps them as restored)."""
  _, output_dir = imported
  train_dir = tmp_path / 'train'
  process = subprocess.run(
      [sys.executable, os.path.join(PROJECT_ROOT, 'train_ssd_network.py'),
       '--train_dir', str(train_dir), '--dataset_dir', sample_dataset_dir,
       '--checkpoint_path', output_dir, '--max_number_of_steps', '1',
       '--batch_size', '1', '--learning_rate', '0', '--num_readers', '1',
       '--precision', 'float32'],
      cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      universal_newlines=True, timeout=300)
  assert process.returncode == 0, process.stdout[-3000:]
  assert 'its class heads start from scratch' in process.stdout
  before = tf.train.load_checkpoint(output_dir)
  after = tf.train.load_checkpoint(str(train_dir))
  sample_classes = 4
  for block, _, anchors in HEAD_INPUTS:
    name = 'ssd_300_vgg/%s_box/conv_cls/weights' % block
    assert after.get_tensor(name).shape[-1] == anchors * sample_classes
  for _, scope, _, _, _ in CONVOLUTIONS:
    if not scope.endswith('conv_cls'):
      name = 'ssd_300_vgg/%s/weights' % scope
      np.testing.assert_array_equal(after.get_tensor(name),
                                    before.get_tensor(name))
