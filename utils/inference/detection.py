"""The SSD detector shared by evaluation, the demo and export.

One graph serves all three, so they find the same detections:
  uint8 image -> `preprocess` (the evaluation preprocessing: resize and mean
  subtraction, giving `bbox_img`, the original image in the network input)
  -> `detect`: the network, `bboxes_decode` and `detected_bboxes` of nets/
  (per-class selection, NMS, fixed-size zero-padded outputs), then the boxes
  mapped back into the original image through `bbox_img` and clipped to it.
Output boxes are normalised (ymin, xmin, ymax, xmax) in the original image;
`datasets.voc_common.denormalize_boxes` turns them into pixels.

The network is the one the checkpoint was trained as: `load_network` reads
the SSD parameters (anchors, image shape...) training saved inside the
checkpoint (or beside it, in `ssd_params.json`), so every model is decoded
with its own anchors, even a checkpoint copied away from its run directory;
with neither, the defaults and the checkpoint's class count.

Every user of a checkpoint goes the same way:
  checkpoint_path, ssd_net = load_network(checkpoint_path, ...)
  (a graph with the network of ssd_net: `detect`, `network_outputs`)
  restore_detector(session, checkpoint_path, moving_average_decay)
Checkpoints are checked before anything is built: `load_network` compares
the number of classes the checkpoint's class heads predict with what the
caller expects (labels file, dataset), and `restore_detector` (through
`make_saver`) checks the variables to restore with
`utils.checkpointing.checkpoints` (and the moving averages with
--moving_average_decay) before restoring them.
"""
import collections
import os

from absl import flags
from absl import logging
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from datasets import dataset_utils
from nets import anchor_generator
from nets import nets_factory
from preprocessing import preprocessing_factory
from preprocessing import ssd_vgg_preprocessing
from preprocessing import tf_image
from utils.common import box_ops
from utils.checkpointing import checkpoints
from utils.checkpointing import warm_start
from utils.checkpointing import resume
from utils.common import paths
from utils.common import platform_info

_v1 = tf.compat.v1

# Post-processing settings; the defaults are SSD's evaluation settings.
DetectionSettings = collections.namedtuple(
    'DetectionSettings',
    ['select_threshold',  # Scores <= this are dropped.
     'nms_threshold',     # NMS IoU threshold, per class.
     'top_k',             # Candidates per class before NMS.
     'keep_top_k',        # Detections kept per image, over all classes.
     'resize',            # 'warp' or 'pad', see preprocess_for_eval.
     'precision'],        # The network's compute precision, see `detect`.
    defaults=(0.01, 0.45, 400, 200, 'warp', 'float32'))

# The network's compute dtype per precision of platform_info.PRECISIONS:
# weights stay float32 (as in the checkpoint) and are cast when read;
# decoding and NMS are always float32.
COMPUTE_DTYPES = {'float32': tf.float32, 'mixed_bfloat16': tf.bfloat16,
                  'mixed_float16': tf.float16}


def define_flags(checkpoint_path, settings=DetectionSettings()):
  """Defines the flags of the detector (checkpoint, model, post-processing).

  Args:
    checkpoint_path: default of --checkpoint_path.
    settings: DetectionSettings, the defaults of the post-processing flags.
  """
  flags.DEFINE_string('checkpoint_path', checkpoint_path,
                      'Checkpoint: its prefix (model.ckpt-1000), one of its '
                      'files, or a directory (its latest checkpoint).')
  flags.DEFINE_string('model_name', 'ssd_300_vgg', 'Network architecture.')
  flags.DEFINE_float('moving_average_decay', None,
                     'Set (to any value, e.g. the training one) to restore '
                     'the moving averages of the weights that training kept '
                     'with --moving_average_decay instead of the weights.')
  flags.DEFINE_float('select_threshold', settings.select_threshold,
                     'Detections scoring <= this are dropped.')
  flags.DEFINE_float('nms_threshold', settings.nms_threshold,
                     'Non-maximum suppression IoU threshold (per class).')
  flags.DEFINE_integer('select_top_k', settings.top_k,
                       'Candidates per class kept before NMS.', lower_bound=1)
  flags.DEFINE_integer('keep_top_k', settings.keep_top_k,
                       'Detections kept per image, over all classes.',
                       lower_bound=1)
  flags.DEFINE_enum('eval_resize', settings.resize,
                    list(ssd_vgg_preprocessing.EVAL_RESIZE_MODES),
                    'How images become the network input: warp (stretch) '
                    'or pad (keep the aspect ratio, pad with the mean '
                    'colour). Boxes come back in the original image '
                    'either way.')
  flags.DEFINE_enum('precision', settings.precision,
                    list(platform_info.REQUESTED_PRECISIONS),
                    'Compute precision of the network: float32; '
                    'mixed_bfloat16 (bfloat16 convolutions, fast on CPUs '
                    'with AVX512_BF16 or AMX); mixed_float16 (GPUs); auto '
                    '(mixed_bfloat16 on such CPUs without a GPU, else '
                    'float32). Decoding and NMS stay float32.')


def settings_from_flags(values):
  """The DetectionSettings of the flags of `define_flags`; --precision=auto
  is resolved here (and the choice logged)."""
  return DetectionSettings(
      select_threshold=values.select_threshold,
      nms_threshold=values.nms_threshold, top_k=values.select_top_k,
      keep_top_k=values.keep_top_k, resize=values.eval_resize,
      precision=resolve_precision(values.precision))


def resolve_precision(requested):
  """The precision of platform_info.PRECISIONS that `requested` (or 'auto')
  means on this machine; logs why.

  Raises:
    ValueError: an unknown precision.
  """
  precision, reason = platform_info.resolve_precision(
      requested, bool(tf.config.list_physical_devices('GPU')))
  logging.info('Inference precision %s (%s).', precision, reason)
  return precision


def read_labels(path):
  """{id: name} of a labels file (`id:name` lines, 0 = background).

  Raises:
    ValueError: unreadable file, or ids that are not 0..N-1; the message
      names the file.
  """
  try:
    labels_to_names = dataset_utils.read_label_file(path)
  except OSError as error:
    raise ValueError('cannot read labels file %s: %s' %
                     (path, error.strerror)) from None
  if sorted(labels_to_names) != list(range(len(labels_to_names))):
    raise ValueError('labels file %s: ids must be 0 (background) to N-1, '
                     'got %s' % (path, sorted(labels_to_names)))
  return labels_to_names


def make_output_dir(path, flag_name):
  """Creates output folder `path` (and its parents) if it does not exist.

  Raises:
    ValueError: one line naming the flag and the path when it cannot be a
      folder (e.g. a regular file on the way) or cannot be created.
  """
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as error:
    raise ValueError('%s %s: cannot create the folder (%s)' % (
        flag_name, path, _os_error_reason(path, error))) from None


def _os_error_reason(path, error):
  """Why folder `path` cannot be made: the regular file on its way, or the
  system's message."""
  blocking = paths.blocking_file(path)
  if blocking:
    return '%s is a file, not a folder' % blocking
  return error.strerror or str(error)


def checkpoint_num_classes(checkpoint_path, model_name='ssd_300_vgg',
                           params=None):
  """Classes (background included) the checkpoint's class heads predict.

  Read from the shapes of the `<layer>_box/conv_cls/weights` variables, whose
  output channels are anchors per cell x classes.

  Args:
    checkpoint_path: checkpoint prefix.
    model_name: network name (and variable scope).
    params: the network's SSDParams (feature layers, anchor ratios); None
      for the network's defaults.

  Raises:
    CheckpointError: an unreadable checkpoint, or one without consistent SSD
      class heads of `model_name`.
  """
  if params is None:
    params = nets_factory.get_network(model_name).default_params
  shapes = _checkpoint_shapes(checkpoint_path)
  counts = set()
  for layer, ratios in zip(params.feat_layers, params.anchor_ratios):
    name = '%s/%s_box/conv_cls/weights' % (model_name, layer)
    if name not in shapes:
      raise checkpoints.CheckpointError(
          'Checkpoint %s has no variable %s: it is not an SSD checkpoint of '
          'model %s.' % (checkpoint_path, name, model_name))
    counts.add(shapes[name][-1] / anchor_generator.anchors_per_cell(ratios))
  if len(counts) != 1 or not float(next(iter(counts))).is_integer():
    raise checkpoints.CheckpointError(
        'Checkpoint %s: its class heads do not agree on a number of classes '
        '(%s); it does not fit model %s.' % (checkpoint_path, sorted(counts),
                                             model_name))
  return int(counts.pop())


def load_network(checkpoint_path, model_name='ssd_300_vgg', num_classes=None,
                 classes_source=None):
  """Finds the checkpoint and the network that fits it, before any graph.

  The network gets the SSD parameters the checkpoint was trained with
  (`saved_ssd_params`: inside the checkpoint, else its ssd_params.json):
  its own anchors and settings.  Without them (downloaded checkpoints) it
  gets the defaults of `model_name` and the checkpoint's class count.

  Args:
    checkpoint_path: prefix, one of its files, or a directory (latest).
    model_name: network name.
    num_classes: the classes (background included) the caller expects, or
      None to take the checkpoint's.
    classes_source: what `num_classes` comes from, for the error message,
      e.g. 'labels file labels.txt'.

  Returns:
    (checkpoint prefix, SSD network object with the checkpoint's classes).

  Raises:
    CheckpointError: missing checkpoint, classes that differ, or an
      ssd_params.json that does not fit the checkpoint or `model_name`.
  """
  checkpoint_path = checkpoints.resolve_checkpoint_path(checkpoint_path)
  params, where = saved_ssd_params(checkpoint_path, model_name)
  found = checkpoint_num_classes(checkpoint_path, model_name, params)
  if params is not None and params.num_classes != found:
    raise checkpoints.CheckpointError(
        'Checkpoint %s predicts %d classes but %s says %d: they come from '
        'different runs.' % (checkpoint_path, found, where,
                             params.num_classes))
  if num_classes is not None and num_classes != found:
    raise checkpoints.CheckpointError(
        'Checkpoint %s predicts %d classes (background included) but %s has '
        '%d: use the labels / dataset the checkpoint was trained with.' %
        (checkpoint_path, found, classes_source or 'num_classes',
         num_classes))
  overrides = params._asdict() if params is not None else {}
  overrides['num_classes'] = found
  return checkpoint_path, nets_factory.build_ssd_net(model_name, **overrides)


def saved_ssd_params(checkpoint_path, model_name='ssd_300_vgg'):
  """(SSDParams, where they were read) of the checkpoint
  (`resume.saved_ssd_params`: its own, else its ssd_params.json), or
  (None, None) when nothing says.

  Raises:
    CheckpointError: unreadable parameters, or written for another model.
  """
  saved = resume.saved_ssd_params(checkpoint_path, model_name)
  if saved is None:
    return None, None
  saved_model_name, params, where = saved
  if saved_model_name != model_name:
    raise checkpoints.CheckpointError(
        'Checkpoint %s was trained as model %s (read from %s), not %s: pass '
        '--model_name=%s.' % (checkpoint_path, saved_model_name, where,
                              model_name, saved_model_name))
  return params, where


def preprocess(image, ssd_net, model_name='ssd_300_vgg', resize='warp',
               data_format='NHWC'):
  """The evaluation preprocessing of one uint8 [H, W, 3] RGB image.

  Returns:
    (network input float32 [h, w, 3] (or [3, h, w] for NCHW), bbox_img
    float32 [4], the original image's box in the network input).
  """
  preprocess_fn = preprocessing_factory.get_preprocessing(model_name,
                                                          is_training=False)
  image, _, _, bbox_img = preprocess_fn(
      image, tf.zeros([0], tf.int64), tf.zeros([0, 4]),
      out_shape=ssd_net.params.img_shape, data_format=data_format,
      resize=resize)
  return image, bbox_img


def decode_and_preprocess(encoded_images, ssd_net, model_name='ssd_300_vgg',
                          resize='warp'):
  """Encoded JPEG/PNG images (a scalar or [N] strings) to the batch of
  network inputs: (float32 [N, h, w, 3], bbox_imgs float32 [N, 4])."""
  def one_image(encoded):
    return preprocess(dataset_utils.decode_image(encoded), ssd_net,
                      model_name, resize)

  return tf.map_fn(
      one_image, tf.reshape(encoded_images, [-1]),
      fn_output_signature=(
          tf.TensorSpec(tuple(ssd_net.params.img_shape) + (3,), tf.float32),
          tf.TensorSpec([4], tf.float32)))


def detect(ssd_net, images, bbox_imgs, settings=DetectionSettings(),
           data_format='NHWC'):
  """The network and its post-processing on a batch of preprocessed images.

  Args:
    ssd_net: the SSD network object.
    images: [B, h, w, 3] (or [B, 3, h, w]) `preprocess` outputs.
    bbox_imgs: [B, 4] their `bbox_img`.
    settings: DetectionSettings (its precision: see `network_outputs`).
    data_format: 'NHWC' or 'NCHW', the layout of `images`.

  Returns:
    A dict of tensors, each image's detections first, then zero padding:
      classes: int64 [B, keep_top_k] labels, 0 for padding.
      scores: float32 [B, keep_top_k], decreasing in each image.
      bboxes: float32 [B, keep_top_k, 4] (ymin, xmin, ymax, xmax) normalised
        in the original image, clipped to it.
      num_detections: int32 [B].
  """
  predictions, localisations = network_outputs(
      ssd_net, images, settings.precision, data_format)
  return post_process(ssd_net, predictions, localisations, bbox_imgs,
                      settings)


def post_process(ssd_net, predictions, localisations, bbox_imgs,
                 settings=DetectionSettings()):
  """`detect` after the network: decoding, selection, NMS, and the boxes
  mapped into the original images.

  Args:
    ssd_net: the SSD network object.
    predictions: per feature layer, float32 [B, H, W, A, num_classes].
    localisations: per feature layer, float32 [B, H, W, A, 4].
    bbox_imgs: [B, 4], each original image in the network input.
    settings: DetectionSettings.

  Returns:
    The dict of `detect`.
  """
  decoded = ssd_net.bboxes_decode(localisations, ssd_net.anchors())
  classes, scores, bboxes = ssd_net.detected_bboxes(
      predictions, decoded, select_threshold=settings.select_threshold,
      nms_threshold=settings.nms_threshold, top_k=settings.top_k,
      keep_top_k=settings.keep_top_k)
  return detections_in_images(classes, scores, bboxes, bbox_imgs)


def network_outputs(ssd_net, images, precision='float32',
                    data_format='NHWC'):
  """The network's float32 class probabilities and encoded boxes.

  With a mixed precision, the network computes in its COMPUTE_DTYPES dtype:
  the variables stay float32 (restored from the checkpoint as they are) and
  are cast when read, the images are cast, and the logits and boxes come
  back as float32; the softmax is float32.  The precision is in the graph,
  so an exported SavedModel keeps it.

  Args:
    ssd_net: the SSD network object.
    images: [B, h, w, 3] (or [B, 3, h, w]) float32 `preprocess` outputs.
    precision: one of platform_info.PRECISIONS, or 'auto'.
    data_format: 'NHWC' or 'NCHW', the layout of `images`.

  Returns:
    (predictions, localisations): per feature layer, float32
    [B, H, W, A, num_classes] and [B, H, W, A, 4].
  """
  if precision == 'auto':
    precision = resolve_precision(precision)
  dtype = COMPUTE_DTYPES[precision]
  getter = None if dtype == tf.float32 else _float32_variables_getter(dtype)
  with _v1.variable_scope(_v1.get_variable_scope(), custom_getter=getter):
    with slim.arg_scope(ssd_net.arg_scope(data_format=data_format)):
      predictions, localisations, logits, _ = ssd_net.net(
          tf.cast(images, dtype), is_training=False)
  if dtype == tf.float32:
    return predictions, localisations
  return ([tf.nn.softmax(tf.cast(layer, tf.float32)) for layer in logits],
          [tf.cast(layer, tf.float32) for layer in localisations])


def _float32_variables_getter(dtype):
  """A custom getter making float32 variables for layers of `dtype`, read
  as `dtype`."""
  def casting_getter(getter, *args, **kwargs):
    if kwargs.get('dtype') == dtype:
      kwargs['dtype'] = tf.float32
      return tf.cast(getter(*args, **kwargs), dtype)
    return getter(*args, **kwargs)
  return casting_getter


def detections_in_images(classes, scores, bboxes, bbox_imgs):
  """Maps detections from the network input to the original images.

  Args:
    classes: int64 [B, K] labels, 0 for padding.
    scores: float32 [B, K].
    bboxes: float32 [B, K, 4] boxes in the network input.
    bbox_imgs: float32 [B, 4], each original image in the network input.

  Returns:
    The dict of `detect`: boxes in the original images clipped to them,
    padding boxes zero, and the number of detections.
  """
  bboxes = tf.map_fn(lambda args: tf_image.bboxes_in_window(*args),
                     (bboxes, bbox_imgs), fn_output_signature=tf.float32)
  detected = classes > 0
  bboxes = tf.where(detected[..., tf.newaxis],
                    box_ops.clip(bboxes, tf_image.FULL_WINDOW), 0.)
  return {'classes': classes, 'scores': scores, 'bboxes': bboxes,
          'num_detections': tf.reduce_sum(tf.cast(detected, tf.int32),
                                          axis=1)}


def restore_detector(session, checkpoint_path, moving_average_decay=None,
                     model_name='ssd_300_vgg'):
  """Restores the network in the session's graph from the checkpoint.

  The network is the one `load_network` gave for this checkpoint, already
  built in the session's graph (by `detect` or `network_outputs`).

  Args:
    session: a tf.compat.v1 Session on the graph of the network.
    checkpoint_path: the checkpoint prefix (`load_network`'s).
    moving_average_decay: if set, restore the moving averages of the
      weights (see `make_saver`).
    model_name: network name (its variable scope).

  Raises:
    CheckpointError: variables missing from the checkpoint or of another
      shape, named with the fix (see `make_saver`).
  """
  with session.graph.as_default():
    saver = make_saver(checkpoint_path, moving_average_decay, model_name)
  saver.restore(session, checkpoint_path)


def make_saver(checkpoint_path, moving_average_decay=None,
               model_scope='ssd_300_vgg'):
  """A Saver restoring the model variables of the default graph.

  The variables are checked against the checkpoint by
  `utils.checkpointing.warm_start.variables_to_restore` (names and shapes, each mismatch
  named); with moving averages, their presence is checked too.

  Args:
    checkpoint_path: the checkpoint prefix, checked now.
    moving_average_decay: if set, the variables get their moving averages
      (`<name>/ExponentialMovingAverage` in the checkpoint); the value itself
      does not matter.
    model_scope: the variable scope of the model (its name).

  Raises:
    CheckpointError: variables missing from the checkpoint or of another
      shape, named with the fix.
  """
  restore_map, _ = warm_start.variables_to_restore(model_scope,
                                                    checkpoint_path)
  if not moving_average_decay:
    return _v1.train.Saver(restore_map)
  averages = _v1.train.ExponentialMovingAverage(moving_average_decay)
  names = {averages.average_name(variable): variable
           for variable in restore_map.values()}
  shapes = _checkpoint_shapes(checkpoint_path)
  missing = [name for name in names if name not in shapes]
  if missing:
    raise checkpoints.CheckpointError(
        'Checkpoint %s lacks %d of the %d moving averages to restore, e.g. '
        '%s. %s' % (checkpoint_path, len(missing), len(names), missing[0],
                    'It holds no moving averages: drop '
                    '--moving_average_decay.' if len(missing) == len(names)
                    else 'Was it written by this model?'))
  return _v1.train.Saver(names)


def _checkpoint_shapes(checkpoint_path):
  """{name: shape} of a checkpoint; CheckpointError if unreadable."""
  try:
    return tf.train.load_checkpoint(
        checkpoint_path).get_variable_to_shape_map()
  except (tf.errors.OpError, ValueError) as error:
    raise checkpoints.CheckpointError('Cannot read checkpoint %s: %s' % (
        checkpoint_path, getattr(error, 'message', error))) from None

