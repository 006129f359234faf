"""SSD's anchors (default boxes), and the order anchors are counted in.

Layouts (one entry per feature layer in every list):
  * anchors of one layer: (cy, cx, h, w) NumPy arrays, cy and cx [H, W, 1],
    h and w [A], normalised by the image height and width; they broadcast to
    [H, W, A].
  * per-layer tensors: [..., H, W, A, *inner] (network outputs, targets).
All layers' anchors are counted in one order: layer by layer, each in
(H, W, A) row-major order, the order the network's outputs are flattened
in.  `flatten_anchors`, `concat_layers` and `split_layers` put anchors and
per-layer tensors into it and back.
"""
import math

import numpy as np
import tensorflow as tf

from nets import box_coder


def anchors_per_cell(ratios):
  """Anchors per feature-map cell: two squares, then one box per ratio."""
  return 2 + len(ratios)


def layer_anchors(img_shape, feat_shape, sizes, ratios, step, offset=0.5,
                  dtype=np.float32, clip=False):
  """Anchors of one feature layer, in the order of SSD-Caffe.

  Args:
    img_shape: (height, width) of the network input, in pixels.
    feat_shape: (H, W) of the feature layer.
    sizes: (s_k, s_k+1), the sizes in pixels of this layer and the next.
    ratios: aspect ratios (width / height) after the two squares.
    step: pixels between two neighbouring anchor centres.
    offset: centre of the first cell, in steps.
    dtype: NumPy dtype of the returned arrays.
    clip: clamp the normalised heights and widths to at most 1 (the centres
      stay), as torchvision's DefaultBoxGenerator(clip=True).

  Returns:
    (cy, cx, h, w): centres of shape [H, W, 1]; heights and widths of shape
    [A] ordered: square s_k, square sqrt(s_k * s_k+1), then for each ratio r
    a box of height s_k / sqrt(r) and width s_k * sqrt(r); all normalised by
    the image size.
  """
  rows, cols = np.mgrid[0:feat_shape[0], 0:feat_shape[1]]
  cy = (rows + offset) * step / img_shape[0]
  cx = (cols + offset) * step / img_shape[1]
  small, large = sizes
  heights = [small, math.sqrt(small * large)] + [small / math.sqrt(r)
                                                 for r in ratios]
  widths = [small, math.sqrt(small * large)] + [small * math.sqrt(r)
                                                for r in ratios]
  heights = np.array(heights) / img_shape[0]
  widths = np.array(widths) / img_shape[1]
  if clip:
    heights, widths = np.minimum(heights, 1.0), np.minimum(widths, 1.0)
  return (cy[..., np.newaxis].astype(dtype), cx[..., np.newaxis].astype(dtype),
          heights.astype(dtype), widths.astype(dtype))


def all_anchors(img_shape, feat_shapes, anchor_sizes, anchor_ratios,
                anchor_steps, offset=0.5, dtype=np.float32, clip=False):
  """`layer_anchors` of every layer: a list of (cy, cx, h, w)."""
  return [layer_anchors(img_shape, feat_shape, sizes, ratios, step, offset,
                        dtype, clip)
          for feat_shape, sizes, ratios, step in zip(
              feat_shapes, anchor_sizes, anchor_ratios, anchor_steps)]


def anchor_corners(anchors):
  """Anchors (cy, cx, h, w) as boxes (ymin, xmin, ymax, xmax) in the last
  axis (NumPy for NumPy anchors)."""
  anchor_cy, anchor_cx, anchor_h, anchor_w = anchors
  return box_coder.center_to_corners(anchor_cy, anchor_cx, anchor_h, anchor_w)


def flatten_anchors(anchors):
  """All layers' anchors as one (cy, cx, h, w) of [N] float32 arrays, in the
  anchor order, and the [H, W, A] shape of each layer."""
  layer_shapes = []
  flat = [[], [], [], []]
  for cy, cx, h, w in anchors:
    shape = np.broadcast_shapes(cy.shape, h.shape)
    layer_shapes.append(shape)
    for values, component in zip(flat, (cy, cx, h, w)):
      values.append(np.broadcast_to(component, shape).reshape(-1))
  return (tuple(np.concatenate(values).astype(np.float32) for values in flat),
          layer_shapes)


def concat_layers(tensors, inner_shape, dtype=tf.float32):
  """Per-layer [B, H, W, A, *inner_shape] tensors as one [B, N, *inner_shape]
  tensor of `dtype`, anchors in the anchor order."""
  return tf.concat([
      tf.reshape(tf.cast(t, dtype), [tf.shape(t)[0], -1] + list(inner_shape))
      for t in tensors], axis=1)


def split_layers(values, layer_shapes, inner_shape=()):
  """Inverse of `concat_layers` for one image: [N, *inner_shape] values as a
  list of [H, W, A, *inner_shape] tensors, one per layer shape [H, W, A]."""
  layer_sizes = [int(np.prod(shape)) for shape in layer_shapes]
  return [tf.reshape(layer, list(shape) + list(inner_shape))
          for layer, shape in zip(tf.split(values, layer_sizes),
                                  layer_shapes)]
