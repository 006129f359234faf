"""SSD300 on a VGG16 backbone.

SSD: Single Shot MultiBox Detector, Liu et al., https://arxiv.org/abs/1512.02325

Variable names and shapes are those of the SSD-Tensorflow checkpoints
(scope `ssd_300_vgg`): `conv1/conv1_1` ... `conv5/conv5_3` (TF-slim's vgg_16
names, see `SSDNet.vgg_16_variables`), `conv6`, `conv7`, `block8/conv1x1`,
`block8/conv3x3` ... `block11/conv3x3`, and per feature layer `<layer>_box/`
`conv_loc` and `conv_cls` (plus `block4_box/L2Normalization/gamma`).  With
`batch_norm` (off by default) every convolution but the heads' has a
`BatchNorm` scope instead of its `biases`.

Feature layers for a 300x300 input:
  block4 (conv4_3) 38x38, block7 (conv7) 19x19, block8 10x10, block9 5x5,
  block10 3x3, block11 1x1.

`SSDNet` only wires the SSD concepts, each in its own module:
`anchor_generator`, `box_coder`, `matcher`, `target_assigner`, `losses`,
`post_processing`.  It never changes its parameters.
"""
import collections

import numpy as np
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from nets import anchor_generator
from nets import custom_layers
from nets import losses as ssd_losses
from nets import post_processing
from nets import target_assigner

SSDParams = collections.namedtuple('SSDParams', [
    'img_shape',        # (height, width) of the input, in pixels.
    'num_classes',      # Classes including background (label 0).
    'feat_layers',      # End points that get a prediction head.
    'anchor_sizes',     # (s_k, s_k+1) in pixels, per feature layer.
    'anchor_ratios',    # Aspect ratios besides the two squares, per layer.
    'anchor_steps',     # Pixels between anchor centres, per layer.
    'anchor_offset',    # Centre of the first cell, in steps.
    'anchor_clip',      # Whether anchor heights and widths are clamped to
                        # the image size (torchvision's DefaultBoxGenerator).
    'normalizations',   # Initial L2-normalisation scale, <= 0 for none.
    'prior_scaling',    # Scalings of the encoded (cx, cy, w, h).
    'dropout_keep_prob',  # Keep probability of a dropout after conv6 and
                          # conv7 in training; 1 (SSD-Caffe's): no dropout.
    'batch_norm',       # Batch normalisation after every convolution of the
                        # backbone and the extra blocks (not the heads).
])

# Anchor sizes in pixels, s_1 .. s_7: layer k has squares s_k and
# sqrt(s_k * s_k+1).  SSD-Tensorflow's (those of the COCO-trained and `_ft`
# Caffe models, and of the pretrained SSD-Tensorflow checkpoint: the default)
# and the plain VOC Caffe model's, the paper's VOC recipe.
ANCHOR_SIZES = {
    'ssd_tensorflow': (21., 45., 99., 153., 207., 261., 315.),
    'voc': (30., 60., 111., 162., 213., 264., 315.),
    'torchvision': (21., 45., 99., 153., 207., 261., 315.),
}
# Presets whose anchors are clamped to the image (torchvision's ssd300_vgg16
# clamps the wide boxes of its last two maps).
CLIPPED_ANCHOR_PRESETS = ('torchvision',)
DEFAULT_ANCHOR_SIZES = 'ssd_tensorflow'

# VGG16's convolution blocks as (convolutions, depth); `conv<i>/conv<i>_<j>`
# like TF-slim's vgg_16, whose ImageNet checkpoint they load from.
_VGG_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
VGG_SCOPES = tuple('conv%d' % index for index in range(1, len(_VGG_BLOCKS) + 1))
VGG_16_SCOPE = 'vgg_16'

# Extra feature blocks: (scope, 1x1 depth, 3x3 depth, 3x3 stride).  Strided
# blocks pad by one pixel first, as Caffe does (19 -> 10 -> 5); the others
# are unpadded (5 -> 3 -> 1).
_EXTRA_BLOCKS = (('block8', 256, 512, 2),
                 ('block9', 128, 256, 2),
                 ('block10', 128, 256, 1),
                 ('block11', 128, 256, 1))


class SSDNet(object):
  """SSD300 with a VGG16 backbone: network, anchors, encoding, losses, NMS.

  Build it with `nets_factory.build_ssd_net('ssd_300_vgg', num_classes=K)`.
  """
  default_params = SSDParams(
      img_shape=(300, 300),
      num_classes=21,
      feat_layers=('block4', 'block7', 'block8', 'block9', 'block10',
                   'block11'),
      anchor_sizes=tuple(zip(ANCHOR_SIZES[DEFAULT_ANCHOR_SIZES][:-1],
                             ANCHOR_SIZES[DEFAULT_ANCHOR_SIZES][1:])),
      anchor_ratios=((2, .5), (2, .5, 3, 1. / 3), (2, .5, 3, 1. / 3),
                     (2, .5, 3, 1. / 3), (2, .5), (2, .5)),
      anchor_steps=(8, 16, 32, 64, 100, 300),
      anchor_offset=0.5,
      anchor_clip=False,
      normalizations=(20, -1, -1, -1, -1, -1),
      prior_scaling=(0.1, 0.1, 0.2, 0.2),
      dropout_keep_prob=1.,
      batch_norm=False)

  def __init__(self, params=None):
    self.params = params if params is not None else SSDNet.default_params

  @classmethod
  def make_params(cls, num_classes=None, **overrides):
    """`default_params` with the given fields replaced; None keeps a default.

    `anchor_sizes` may also be given as for `anchor_size_pairs`; a preset
    of CLIPPED_ANCHOR_PRESETS also sets `anchor_clip`.

    Raises:
      ValueError: unknown field names, bad anchor sizes.
    """
    overrides['num_classes'] = num_classes
    if overrides.get('anchor_sizes') in CLIPPED_ANCHOR_PRESETS:
      overrides['anchor_clip'] = True
    if overrides.get('anchor_sizes') is not None:
      overrides['anchor_sizes'] = anchor_size_pairs(
          overrides['anchor_sizes'], len(cls.default_params.feat_layers))
    unknown = sorted(set(overrides) - set(cls.default_params._fields))
    if unknown:
      raise ValueError('Unknown SSD parameters %s; valid: %s' % (
          unknown, ', '.join(cls.default_params._fields)))
    return cls.default_params._replace(
        **{name: value for name, value in overrides.items()
           if value is not None})

  def net(self, inputs, is_training=True, reuse=None, scope='ssd_300_vgg'):
    """Builds the network; call it inside `self.arg_scope()`.

    Args:
      inputs: [B, H, W, 3] images, or [B, 3, H, W] under an NCHW arg_scope;
        H and W give the feature shapes of `feat_shapes((H, W))`.
      is_training: whether dropout (`params.dropout_keep_prob` < 1) is
        active, and whether batch normalisation (`params.batch_norm`) uses
        and updates (UPDATE_OPS collection) the batch statistics rather than
        the moving ones.
      reuse: whether to reuse the variables of `scope`.
      scope: variable scope.

    Returns:
      predictions: per feature layer, [B, H, W, A, num_classes] softmax.
      localisations: per feature layer, [B, H, W, A, 4] encoded boxes
        (cx, cy, w, h), see `box_coder`.
      logits: per feature layer, [B, H, W, A, num_classes].
      end_points: dict of activations 'block1' ... 'block11'.
      The three lists are NHWC whatever the data format.
    """
    end_points = {}
    with tf.compat.v1.variable_scope(scope, 'ssd_300_vgg', [inputs],
                                     reuse=reuse):
      with slim.arg_scope(self._normalizer_arg_scope(is_training)):
        self._backbone(inputs, is_training, end_points)

      predictions, localisations, logits = [], [], []
      for layer, ratios, normalization in zip(self.params.feat_layers,
                                              self.params.anchor_ratios,
                                              self.params.normalizations):
        with tf.compat.v1.variable_scope(layer + '_box'):
          layer_logits, layer_localisations = _multibox_head(
              end_points[layer], self.params.num_classes,
              anchor_generator.anchors_per_cell(ratios), normalization)
        logits.append(layer_logits)
        predictions.append(tf.nn.softmax(layer_logits))
        localisations.append(layer_localisations)
    return predictions, localisations, logits, end_points

  def _normalizer_arg_scope(self, is_training):
    """Batch norm (or none) for the convolutions of `_backbone`."""
    normalizer_fn = slim.batch_norm if self.params.batch_norm else None
    with slim.arg_scope([slim.conv2d, custom_layers.dilated_conv2d],
                        normalizer_fn=normalizer_fn):
      with slim.arg_scope([slim.batch_norm], is_training=is_training) as scope:
        return scope

  def _backbone(self, inputs, is_training, end_points):
    """VGG16's conv1..conv5, conv6, conv7 and the extra blocks: fills
    `end_points` 'block1' ... 'block11'."""
    net = inputs
    for index, (num_convs, depth) in enumerate(_VGG_BLOCKS, 1):
      net = slim.repeat(net, num_convs, slim.conv2d, depth, [3, 3],
                        scope='conv%d' % index)
      end_points['block%d' % index] = net
      if index < len(_VGG_BLOCKS):
        net = slim.max_pool2d(net, [2, 2], scope='pool%d' % index)
      else:
        # pool5 keeps the resolution, as the dilated conv6 expects.
        net = slim.max_pool2d(net, [3, 3], stride=1, scope='pool5')

    # conv6 and conv7 replace VGG's fc6 and fc7.
    # Native dilation only in training graphs, which run where they are
    # built; saved inference graphs keep the portable form.
    net = custom_layers.dilated_conv2d(
        net, 1024, [3, 3], rate=6, scope='conv6',
        native=is_training and custom_layers.onednn_enabled())
    end_points['block6'] = net
    net = self._dropout(net, is_training, scope='dropout6')
    net = slim.conv2d(net, 1024, [1, 1], scope='conv7')
    end_points['block7'] = net
    net = self._dropout(net, is_training, scope='dropout7')

    for block, depth_1x1, depth_3x3, stride in _EXTRA_BLOCKS:
      with tf.compat.v1.variable_scope(block):
        net = slim.conv2d(net, depth_1x1, [1, 1], scope='conv1x1')
        if stride > 1:
          net = custom_layers.pad2d(net, pad=1)
        net = slim.conv2d(net, depth_3x3, [3, 3], stride=stride,
                          padding='VALID', scope='conv3x3')
      end_points[block] = net

  def _dropout(self, net, is_training, scope):
    """Dropout of keep probability `params.dropout_keep_prob` in training;
    no op at all when it is 1 or in inference."""
    if not is_training or self.params.dropout_keep_prob >= 1.:
      return net
    return slim.dropout(net, self.params.dropout_keep_prob,
                        is_training=True, scope=scope)

  def arg_scope(self, weight_decay=0.0005, data_format='NHWC',
                batch_norm_decay=0.99):
    """The arg_scope to build the network in.

    Args:
      weight_decay: L2 regularisation of the convolution weights.
      data_format: 'NHWC' or 'NCHW' (on a CPU only through oneDNN); the
        variables are the same either way.
      batch_norm_decay: decay of the batch norm moving statistics (with
        `params.batch_norm`); batch norm learns a scale and an offset.
    """
    with slim.arg_scope([slim.conv2d, custom_layers.dilated_conv2d],
                        activation_fn=tf.nn.relu,
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        weights_initializer=slim.xavier_initializer(),
                        biases_initializer=tf.compat.v1.zeros_initializer()):
      with slim.arg_scope([slim.batch_norm], decay=batch_norm_decay,
                          scale=True):
        with slim.arg_scope([slim.conv2d, custom_layers.dilated_conv2d,
                             slim.max_pool2d], padding='SAME',
                            data_format=data_format):
          with slim.arg_scope([custom_layers.pad2d,
                               custom_layers.l2_normalization,
                               custom_layers.channel_to_last,
                               slim.batch_norm],
                              data_format=data_format) as scope:
            return scope

  def feat_shapes(self, img_shape=None):
    """(H, W) of each feature layer for an input of `img_shape` (height,
    width), `params.img_shape` if None."""
    shapes = feature_shapes(img_shape or self.params.img_shape)
    return [shapes[layer] for layer in self.params.feat_layers]

  def anchors(self, img_shape=None, dtype=np.float32):
    """Anchors of every feature layer, see `anchor_generator.layer_anchors`.

    Args:
      img_shape: (height, width) of the input; `params.img_shape` if None.
      dtype: NumPy dtype of the arrays.

    Returns:
      A list with one (cy, cx, h, w) per feature layer: cy and cx of shape
      [H, W, 1], h and w of shape [A], normalised (8732 anchors in SSD300).
    """
    img_shape = img_shape or self.params.img_shape
    return anchor_generator.all_anchors(
        img_shape, self.feat_shapes(img_shape), self.params.anchor_sizes,
        self.params.anchor_ratios, self.params.anchor_steps,
        self.params.anchor_offset, dtype, clip=self.params.anchor_clip)

  def bboxes_encode(self, labels, bboxes, anchors, match_threshold=0.5,
                    negative_threshold=None, scope=None):
    """Training targets of ONE image for every anchor:
    `target_assigner.Targets(gclasses, glocalisations, gious)`, see
    `target_assigner.assign`."""
    return target_assigner.assign(labels, bboxes, anchors,
                                  self.params.prior_scaling,
                                  match_threshold=match_threshold,
                                  negative_threshold=negative_threshold,
                                  scope=scope)

  def bboxes_decode(self, localisations, anchors, scope=None):
    """Per-layer localisations [..., H, W, A, 4] to float32 boxes
    (ymin, xmin, ymax, xmax)."""
    return post_processing.decode_layers(localisations, anchors,
                                         self.params.prior_scaling,
                                         scope=scope)

  def detected_bboxes(self, predictions, decoded_bboxes,
                      select_threshold=0.01, nms_threshold=0.45,
                      clipping_bbox=None, top_k=400, keep_top_k=200):
    """Detections of a batch from per-layer class probabilities and DECODED
    boxes (`bboxes_decode`): [B, keep_top_k] classes and scores and
    [B, keep_top_k, 4] boxes, zero-padded; see
    `post_processing.detected_bboxes`."""
    return post_processing.detected_bboxes(
        predictions, decoded_bboxes, select_threshold=select_threshold,
        nms_threshold=nms_threshold, clipping_bbox=clipping_bbox, top_k=top_k,
        keep_top_k=keep_top_k)

  def losses(self, logits, localisations, gclasses, glocalisations, gious,
             negative_threshold=None, negative_ratio=3., alpha=1.,
             label_smoothing=0., scope=None):
    """Adds the SSD losses to the losses collection and returns them; the
    g* arguments are per-layer batches of `bboxes_encode` outputs.  See
    `losses.ssd_losses`."""
    return ssd_losses.ssd_losses(
        logits, localisations, gclasses, glocalisations, gious,
        negative_threshold=negative_threshold, negative_ratio=negative_ratio,
        alpha=alpha, label_smoothing=label_smoothing, scope=scope)

  def non_vgg_scopes(self, scope='ssd_300_vgg'):
    """Variable scopes absent from TF-slim's vgg_16 checkpoint (conv6, conv7,
    the extra blocks and the heads, and with `params.batch_norm` the batch
    norms of conv1..conv5): exclude them when fine-tuning from it."""
    ssd_only = (['conv6', 'conv7'] + [block[0] for block in _EXTRA_BLOCKS] +
                [layer + '_box' for layer in self.params.feat_layers])
    if self.params.batch_norm:
      ssd_only += ['%s/BatchNorm' % name for name in _vgg_convolutions()]
    return ['%s/%s' % (scope, name) for name in ssd_only]

  def class_heads(self, scope='ssd_300_vgg'):
    """(variable scope, output channels) of each feature layer's class
    prediction convolution: anchors per cell x classes."""
    return [('%s/%s_box/conv_cls' % (scope, layer),
             anchor_generator.anchors_per_cell(ratios) *
             self.params.num_classes)
            for layer, ratios in zip(self.params.feat_layers,
                                     self.params.anchor_ratios)]

  @staticmethod
  def vgg_16_variables(variables, scope='ssd_300_vgg'):
    """{vgg_16 checkpoint name: variable} for the VGG variables among
    `variables`, e.g. 'vgg_16/conv1/conv1_1/weights' for
    'ssd_300_vgg/conv1/conv1_1/weights' (batch norms excluded: vgg_16 has
    none)."""
    prefixes = tuple('%s/%s/' % (scope, name) for name in VGG_SCOPES)
    return {VGG_16_SCOPE + variable.op.name[len(scope):]: variable
            for variable in variables
            if variable.op.name.startswith(prefixes) and
            '/BatchNorm/' not in variable.op.name}


def _vgg_convolutions():
  """Scopes 'conv1/conv1_1' ... 'conv5/conv5_3' of VGG16's convolutions."""
  return ['conv%d/conv%d_%d' % (block, block, index)
          for block, (num_convs, _) in enumerate(_VGG_BLOCKS, 1)
          for index in range(1, num_convs + 1)]


def anchor_sizes_text(pairs):
  """Per-layer (s_k, s_k+1) pairs as --anchor_sizes takes them:
  '21,45,99,153,207,261,315' (chained pairs), else the pairs."""
  chained = all(pairs[i][1] == pairs[i + 1][0] for i in range(len(pairs) - 1))
  if not chained:
    return str(tuple(tuple(pair) for pair in pairs))
  return ','.join('%g' % size for size in [pair[0] for pair in pairs] +
                  [pairs[-1][1]])


def anchor_size_pairs(anchor_sizes, num_layers):
  """Per-layer (s_k, s_k+1) pixel sizes from any of: a name of ANCHOR_SIZES,
  a string of comma-separated sizes, num_layers + 1 sizes, or num_layers
  pairs.

  Raises:
    ValueError: an unknown name or a wrong number of sizes.
  """
  if isinstance(anchor_sizes, str):
    if anchor_sizes in ANCHOR_SIZES:
      anchor_sizes = ANCHOR_SIZES[anchor_sizes]
    else:
      try:
        anchor_sizes = [float(size) for size in anchor_sizes.split(',')]
      except ValueError:
        raise ValueError('anchor sizes %r: neither one of %s nor '
                         'comma-separated numbers' % (
                             anchor_sizes, sorted(ANCHOR_SIZES))) from None
  if all(not isinstance(size, (list, tuple)) for size in anchor_sizes):
    sizes = [float(size) for size in anchor_sizes]
    pairs = tuple(zip(sizes[:-1], sizes[1:]))
    if len(sizes) != num_layers + 1:
      pairs = ()
  else:
    pairs = tuple((float(small), float(large))
                  for small, large in anchor_sizes)
  if len(pairs) != num_layers:
    raise ValueError('anchor sizes %r: need %d sizes or %d pairs (s_k, '
                     's_k+1)' % (anchor_sizes, num_layers + 1, num_layers))
  return pairs


def feature_shapes(img_shape):
  """{end point: (H, W)} of the network's blocks for an input of `img_shape`
  (height, width): 2x2 pools halve (rounding up) after block1..block4,
  pool5 keeps the size, the strided extra blocks (padded by 1, 3x3 stride 2)
  map s to (s - 1) // 2 + 1, the others (3x3 VALID) to s - 2."""
  shape = tuple(img_shape)
  shapes = {}
  for index in range(1, len(_VGG_BLOCKS) + 1):
    shapes['block%d' % index] = shape
    if index < len(_VGG_BLOCKS):
      shape = tuple(-(-side // 2) for side in shape)
  shapes['block6'] = shapes['block7'] = shape
  for block, _, _, stride in _EXTRA_BLOCKS:
    if stride > 1:
      shape = tuple((side - 1) // 2 + 1 for side in shape)
    else:
      shape = tuple(side - 2 for side in shape)
    shapes[block] = shape
  return shapes


def _multibox_head(features, num_classes, num_anchors, normalization):
  """Class logits [B, H, W, A, num_classes] and localisations [B, H, W, A, 4]
  of one feature layer."""
  if normalization > 0:
    features = custom_layers.l2_normalization(
        features, scale_initial_value=normalization)
  localisations = slim.conv2d(features, num_anchors * 4, [3, 3],
                              activation_fn=None, normalizer_fn=None,
                              scope='conv_loc')
  logits = slim.conv2d(features, num_anchors * num_classes, [3, 3],
                       activation_fn=None, normalizer_fn=None,
                       scope='conv_cls')
  return (_split_anchors(logits, num_anchors),
          _split_anchors(localisations, num_anchors))


def _split_anchors(outputs, num_anchors):
  """Head outputs with A * K channels as NHWC [B, H, W, A, K]."""
  outputs = custom_layers.channel_to_last(outputs)
  shape = [static if static is not None else dynamic
           for static, dynamic in zip(outputs.shape.as_list(),
                                      tf.unstack(tf.shape(outputs), num=4))]
  return tf.reshape(outputs,
                    shape[:-1] + [num_anchors, shape[-1] // num_anchors])
