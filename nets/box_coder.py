"""SSD's box coding: ground-truth boxes encoded against anchors, and back.

The encoding that training learns and the decoding that evaluation, export
and the demo apply come from this one definition.  Every function works on
NumPy arrays and on TensorFlow tensors alike (the result is a tensor as soon
as one argument is).  Box geometry (IoU, areas, clipping) is in
`utils.common.box_ops`.

Conventions:
  * boxes: (ymin, xmin, ymax, xmax) in the last axis, normalised to [0, 1]
    by the image height and width.
  * anchors: a tuple (cy, cx, h, w) of arrays that broadcast together, e.g.
    one layer of `SSDNet.anchors()` (see `anchor_generator`): cy, cx of shape [H, W, 1] and h, w of
    shape [A], which broadcast to [H, W, A].
  * encoded localisations: (cx, cy, w, h) in the last axis, the order of
    SSD-Caffe and SSD-Tensorflow, so that their checkpoints' `conv_loc`
    outputs decode correctly:
        ((cx_box - cx) / w / prior_scaling[0],
         (cy_box - cy) / h / prior_scaling[1],
         log(w_box / w) / prior_scaling[2],
         log(h_box / h) / prior_scaling[3])
"""
import collections

import numpy as np
import tensorflow as tf

# The few element-wise functions whose NumPy and TensorFlow spellings differ.
_ArrayOps = collections.namedtuple('_ArrayOps', ['log', 'exp', 'stack'])
_NUMPY_OPS = _ArrayOps(np.log, np.exp, np.stack)
_TENSORFLOW_OPS = _ArrayOps(tf.math.log, tf.math.exp, tf.stack)


def _array_ops(*values):
  """TensorFlow functions if any of `values` is a tensor, else NumPy's."""
  if any(tf.is_tensor(value) for value in values):
    return _TENSORFLOW_OPS
  return _NUMPY_OPS


def center_to_corners(cy, cx, h, w):
  """Boxes (ymin, xmin, ymax, xmax) in the last axis from centres and sizes."""
  ops = _array_ops(cy, cx, h, w)
  return ops.stack([cy - h / 2., cx - w / 2., cy + h / 2., cx + w / 2.],
                   axis=-1)


def encode(boxes, anchors, prior_scaling):
  """Encodes boxes against anchors (see the module docstring for the formula).

  Args:
    boxes: [..., 4] boxes (ymin, xmin, ymax, xmax) with positive sizes.
    anchors: (cy, cx, h, w), each broadcastable to `boxes.shape[:-1]`.
    prior_scaling: 4 scalings of the (cx, cy, w, h) components.

  Returns:
    [..., 4] localisations (cx, cy, w, h).
  """
  ops = _array_ops(boxes)
  anchor_cy, anchor_cx, anchor_h, anchor_w = anchors
  ymin, xmin, ymax, xmax = (boxes[..., i] for i in range(4))
  return ops.stack([
      ((xmin + xmax) / 2. - anchor_cx) / anchor_w / prior_scaling[0],
      ((ymin + ymax) / 2. - anchor_cy) / anchor_h / prior_scaling[1],
      ops.log((xmax - xmin) / anchor_w) / prior_scaling[2],
      ops.log((ymax - ymin) / anchor_h) / prior_scaling[3],
  ], axis=-1)


def decode(localisations, anchors, prior_scaling):
  """Inverts `encode`: [..., 4] localisations (cx, cy, w, h) to boxes."""
  ops = _array_ops(localisations)
  anchor_cy, anchor_cx, anchor_h, anchor_w = anchors
  return center_to_corners(
      cy=localisations[..., 1] * anchor_h * prior_scaling[1] + anchor_cy,
      cx=localisations[..., 0] * anchor_w * prior_scaling[0] + anchor_cx,
      h=anchor_h * ops.exp(localisations[..., 3] * prior_scaling[3]),
      w=anchor_w * ops.exp(localisations[..., 2] * prior_scaling[2]))
