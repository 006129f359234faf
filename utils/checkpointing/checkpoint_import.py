"""Weights of other implementations, as this project's variables.

torchvision's `ssd300_vgg16` is the same network as SSD300 here (layer for
layer, anchors in the same order, the same box coding): its `state_dict`
maps one to one onto this project's variables.  PyTorch keeps convolution
kernels as (out, in, height, width); TensorFlow as (height, width, in, out).
The head's output channels are ordered (anchor, class) / (anchor, dx dy dw
dh) on both sides, so kernels are transposed, never reordered.

`read_state_dict` reads `.npz`, `.safetensors` (no PyTorch needed) or a
`.pth` file (with PyTorch); `torchvision_to_variables` maps the tensors to
variable names; `write_checkpoint` writes them as `model.ckpt-0` with the
`ssd_params.json` (the class count, torchvision's clamped anchors) that
evaluation, the demo, export and fine-tuning read.

`reduced_fc_values` gives SSD's conv6 and conv7 from TF-slim's ImageNet
`vgg_16` checkpoint the way the SSD paper does (its Caffe model
VGG_ILSVRC_16_layers_fc_reduced): fc6's 7x7x512x4096 kernel sampled at
spatial positions 0, 3, 6 and every 4th filter becomes the dilated
3x3x512x1024 conv6; fc7's every 4th input and output the 1x1x1024x1024 conv7.
"""
import os

import numpy as np
import tensorflow as tf

from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from nets import nets_factory
from utils.common import run_directory

_v1 = tf.compat.v1

MODEL_NAME = 'ssd_300_vgg'
# The anchors preset equal to torchvision's DefaultBoxGenerator(clip=True).
TORCHVISION_ANCHORS = 'torchvision'
SOURCES = ('torchvision',)
READABLE_EXTENSIONS = ('.npz', '.safetensors', '.pth', '.pt')

# (torchvision module, this project's scope below the model scope).
_VGG_CONVOLUTIONS = (
    ('backbone.features.0', 'conv1/conv1_1'),
    ('backbone.features.2', 'conv1/conv1_2'),
    ('backbone.features.5', 'conv2/conv2_1'),
    ('backbone.features.7', 'conv2/conv2_2'),
    ('backbone.features.10', 'conv3/conv3_1'),
    ('backbone.features.12', 'conv3/conv3_2'),
    ('backbone.features.14', 'conv3/conv3_3'),
    ('backbone.features.17', 'conv4/conv4_1'),
    ('backbone.features.19', 'conv4/conv4_2'),
    ('backbone.features.21', 'conv4/conv4_3'),
    ('backbone.extra.0.1', 'conv5/conv5_1'),
    ('backbone.extra.0.3', 'conv5/conv5_2'),
    ('backbone.extra.0.5', 'conv5/conv5_3'),
    ('backbone.extra.0.7.1', 'conv6'),
    ('backbone.extra.0.7.3', 'conv7'),
)
_EXTRA_CONVOLUTIONS = tuple(
    ('backbone.extra.%d.%d' % (index, position), 'block%d/%s' % (block, name))
    for index, block in enumerate((8, 9, 10, 11), start=1)
    for position, name in ((0, 'conv1x1'), (2, 'conv3x3')))
_HEAD_BLOCKS = ('block4', 'block7', 'block8', 'block9', 'block10', 'block11')
_HEAD_CONVOLUTIONS = tuple(
    ('head.%s_head.module_list.%d' % (head, index),
     '%s_box/%s' % (block, name))
    for head, name in (('classification', 'conv_cls'),
                       ('regression', 'conv_loc'))
    for index, block in enumerate(_HEAD_BLOCKS))
TORCHVISION_CONVOLUTIONS = (_VGG_CONVOLUTIONS + _EXTRA_CONVOLUTIONS +
                            _HEAD_CONVOLUTIONS)
TORCHVISION_L2_SCALE = ('backbone.scale_weight',
                        'block4_box/L2Normalization/gamma')
_EVERY_4TH = slice(0, None, 4)
_EVERY_3RD = slice(0, None, 3)
_ALL = slice(None)
# (vgg_16 variable, SSD variable, the NumPy index that samples it).
VGG16_REDUCED_FC = (
    ('fc6/weights', 'conv6/weights', (_EVERY_3RD, _EVERY_3RD, _ALL,
                                      _EVERY_4TH)),
    ('fc6/biases', 'conv6/biases', (_EVERY_4TH,)),
    ('fc7/weights', 'conv7/weights', (_ALL, _ALL, _EVERY_4TH, _EVERY_4TH)),
    ('fc7/biases', 'conv7/biases', (_EVERY_4TH,)),
)
# The first classification head: its output channels are anchors x classes.
_FIRST_CLASS_HEAD = 'head.classification_head.module_list.0.weight'
_ANCHORS_OF_FIRST_HEAD = 4


class CheckpointImportError(ValueError):
  """A file that cannot be imported; the message names the file or key."""


def torchvision_key_map():
  """{torchvision state_dict key: (variable name below the model scope,
  whether the tensor is a kernel to transpose)}."""
  keys = {}
  for module, scope in TORCHVISION_CONVOLUTIONS:
    keys[module + '.weight'] = (scope + '/weights', True)
    keys[module + '.bias'] = (scope + '/biases', False)
  keys[TORCHVISION_L2_SCALE[0]] = (TORCHVISION_L2_SCALE[1], False)
  return keys


def torchvision_num_classes(state_dict):
  """Classes (background included) of a torchvision ssd300_vgg16 state_dict."""
  if _FIRST_CLASS_HEAD not in state_dict:
    raise CheckpointImportError('missing key %s: not a torchvision ssd300_vgg16 '
                       'state_dict' % _FIRST_CLASS_HEAD)
  channels = state_dict[_FIRST_CLASS_HEAD].shape[0]
  if channels % _ANCHORS_OF_FIRST_HEAD:
    raise CheckpointImportError('%s has %d output channels, not a multiple of its %d '
                       'anchors' % (_FIRST_CLASS_HEAD, channels,
                                    _ANCHORS_OF_FIRST_HEAD))
  return channels // _ANCHORS_OF_FIRST_HEAD


def torchvision_to_variables(state_dict, model_scope=MODEL_NAME):
  """{variable name: float32 array} from a torchvision ssd300_vgg16 state_dict.

  Raises:
    CheckpointImportError: a key of the state_dict that maps to nothing, or a key of
      the model that the state_dict lacks (each named).
  """
  key_map = torchvision_key_map()
  unknown = sorted(set(state_dict) - set(key_map))
  if unknown:
    raise CheckpointImportError('unknown key %s (and %d more): not a torchvision '
                       'ssd300_vgg16 state_dict' % (unknown[0],
                                                    len(unknown) - 1))
  missing = [key for key in key_map if key not in state_dict]
  if missing:
    raise CheckpointImportError('missing key %s (and %d more)' % (missing[0],
                                                        len(missing) - 1))
  variables = {}
  for key, (name, is_kernel) in key_map.items():
    value = np.asarray(state_dict[key], dtype=np.float32)
    if is_kernel:
      if value.ndim != 4:
        raise CheckpointImportError('%s has shape %s, not a 4-d convolution kernel' %
                           (key, list(value.shape)))
      value = value.transpose(2, 3, 1, 0)
    variables['%s/%s' % (model_scope, name)] = np.ascontiguousarray(value)
  return variables


def reduced_fc_values(reader, checkpoint_scope, model_scope=MODEL_NAME):
  """{SSD variable name: array}: conv6/conv7 sampled from the checkpoint's
  fc6/fc7 (see VGG16_REDUCED_FC), for those the checkpoint holds.

  Args:
    reader: the vgg_16 checkpoint's tf.train.load_checkpoint reader.
    checkpoint_scope: its model scope, 'vgg_16'.
    model_scope: this model's scope.
  """
  values = {}
  for source, target, index in VGG16_REDUCED_FC:
    name = '%s/%s' % (checkpoint_scope, source)
    if reader.has_tensor(name):
      values['%s/%s' % (model_scope, target)] = reader.get_tensor(name)[index]
  return values


def read_state_dict(path):
  """{key: NumPy array} of a .npz, .safetensors or (with PyTorch) .pth file.

  Raises:
    CheckpointImportError: unreadable file, unknown extension, or a .pth file without
      PyTorch installed (the message says what to do).
  """
  extension = os.path.splitext(path)[1].lower()
  if extension not in READABLE_EXTENSIONS:
    raise CheckpointImportError('%s: unknown format %r; give a .npz, .safetensors or '
                       '.pth file' % (path, extension))
  if not os.path.isfile(path):
    raise CheckpointImportError('%s: no such file' % path)
  try:
    if extension == '.npz':
      with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}
    if extension == '.safetensors':
      from safetensors import numpy as safetensors_numpy  # pylint: disable=g-import-not-at-top
      return safetensors_numpy.load_file(path)
    return _read_torch_file(path)
  except CheckpointImportError:
    raise
  except Exception as error:  # pylint: disable=broad-except
    raise CheckpointImportError('%s: cannot read it as %s: %s' % (
        path, extension, str(error).splitlines()[0] if str(error) else
        type(error).__name__)) from None


def _read_torch_file(path):
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise CheckpointImportError(
        '%s: reading .pth needs PyTorch (pip install torch), or save the '
        'state_dict as .npz or .safetensors where torch is installed, e.g. '
        'numpy.savez(out, **{k: v.numpy() for k, v in '
        'state_dict.items()})' % path) from None
  state = torch.load(path, map_location='cpu', weights_only=True)
  if isinstance(state, dict) and 'model' in state and not any(
      isinstance(value, torch.Tensor) for value in state.values()):
    state = state['model']
  return {key: value.detach().float().numpy() for key, value in state.items()
          if isinstance(value, torch.Tensor)}


def write_checkpoint(variables, ssd_params, output_dir,
                     model_name=MODEL_NAME, step=0):
  """Writes `variables` as `output_dir/model.ckpt-<step>` and ssd_params.json.

  The network is built with `ssd_params`, so every variable's name and
  shape is checked against the model: an extra, missing or misshapen one is
  an error naming it.  The checkpoint holds `ssd_params` too, like those
  training writes.

  Returns:
    The checkpoint prefix.

  Raises:
    CheckpointImportError: variables that do not fit the model.
  """
  ssd_net = nets_factory.build_ssd_net(model_name, **ssd_params._asdict())
  graph = tf.Graph()
  with graph.as_default():
    images = _v1.placeholder(tf.float32, [1] + list(ssd_params.img_shape) +
                             [3])
    with slim.arg_scope(ssd_net.arg_scope()):
      ssd_net.net(images, is_training=False, scope=model_name)
    model_variables = {v.op.name: v for v in _v1.global_variables()}
    _check_fit(variables, model_variables)
    params_variable = nets_factory.create_ssd_params_variable(model_name,
                                                              ssd_params)
    feeds = {}
    assigns = []
    for name, variable in model_variables.items():
      feed = _v1.placeholder(variable.dtype.base_dtype, variable.shape)
      assigns.append(variable.assign(feed))
      feeds[feed] = variables[name]
    saver = _v1.train.Saver(_v1.global_variables())
    os.makedirs(output_dir, exist_ok=True)
    with _v1.Session(graph=graph) as session:
      session.run(assigns + [params_variable.initializer], feeds)
      prefix = saver.save(session, os.path.join(output_dir, 'model.ckpt'),
                          global_step=step)
  nets_factory.write_ssd_params(output_dir, model_name, ssd_params)
  return prefix


def _check_fit(variables, model_variables):
  extra = sorted(set(variables) - set(model_variables))
  missing = sorted(set(model_variables) - set(variables))
  if extra or missing:
    raise CheckpointImportError('the imported tensors do not fit the model: %s' % (
        'no model variable %s' % extra[0] if extra
        else 'nothing for %s' % missing[0]))
  for name, variable in model_variables.items():
    if list(variables[name].shape) != variable.shape.as_list():
      raise CheckpointImportError('%s: imported shape %s, model %s' % (
          name, list(variables[name].shape), variable.shape.as_list()))


def import_torchvision(input_path, output_dir):
  """Converts a torchvision ssd300_vgg16 state_dict file into output_dir.

  Returns:
    (checkpoint prefix, number of classes with background).

  Raises:
    CheckpointImportError: naming the file and the key or variable at
      fault, or an output_dir that already holds a checkpoint.
  """
  if os.path.exists(run_directory.checkpoint_index(output_dir)):
    raise CheckpointImportError(
        '--output_dir %s already holds a checkpoint: give an empty or new '
        'directory' % output_dir)
  state_dict = read_state_dict(input_path)
  try:
    num_classes = torchvision_num_classes(state_dict)
    params = nets_factory.get_network(MODEL_NAME).make_params(
        num_classes=num_classes, anchor_sizes=TORCHVISION_ANCHORS)
    prefix = write_checkpoint(torchvision_to_variables(state_dict), params,
                              output_dir)
  except CheckpointImportError as error:
    raise CheckpointImportError('%s: %s' % (input_path, error)) from None
  return prefix, num_classes
