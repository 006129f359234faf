"""SSD (VGG16 base) input preprocessing: the SSD paper's augmentation.

Training (`preprocess_for_train`) follows the reference Caffe implementation
(weiliu89/caffe `ssd` branch, `ssd_pascal.py`): photometric distortion,
zoom-out ("expand"), the batch-sampler crop, resize, flip.  The geometry runs
first, on windows only:
  1. `random_zoom_out`: half the time, the image sits on a canvas 1 to 4
     times its size filled with the mean colour.
  2. `random_crop`: Caffe's batch samplers; the whole frame or a crop whose
     IoU with some object reaches one of several minimums.
  3. The crop is resampled to `out_shape` (`tf_image.sample_window`).
  4. `distort_color` (`distorted_view`): Caffe's brightness, contrast,
     saturation, hue (each with probability 1/2, in one of Caffe's two
     orders) and channel swap.
  5. `random_flip_left_right`.
  6. The VGG means are subtracted (`normalize_image`), channels first or last.
Steps 1 and 2 only move a window over the image: step 3 computes the output
pixels through it once, so no canvas or crop is ever materialised.  Caffe
distorts the whole photo before the geometry; every distortion acts on each
pixel alone, so distorting only the photo's pixels under the crop, or the
resampled pixels, whichever are fewer, gives the same image up to
interpolation (it differs only where neighbours clip differently), at a
cost that no longer grows with the photo's size.  The canvas outside the
image keeps the undistorted mean colour, as in Caffe.

Randomness comes from stateless ops fed by one [2] seed per call, split
between the steps; see `preprocess_for_train` for how to seed it.

Evaluation (`preprocess_for_eval`) resizes only; it never drops or reorders
boxes, so per-box data the caller keeps (difficult flags) stays aligned.
"""
import numbers

import tensorflow as tf

from preprocessing import tf_image
from utils.common import platform_info

# Per-channel (R, G, B) means of the VGG16 training images, on a 0-255 scale.
VGG_MEANS = (123., 117., 104.)

# Photometric distortions of ssd_pascal.py's distort_param, for images in
# [0, 1].  Each distortion applies with DISTORTION_PROBABILITY.
DISTORTION_PROBABILITY = 0.5
BRIGHTNESS_MAX_DELTA = 32. / 255.  # Caffe: brightness_delta 32 of 255.
CONTRAST_RANGE = (0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)
# Caffe's hue_delta is 18 on OpenCV's 8-bit hue scale, where 180 is the full
# circle: +-36 degrees.  tf.image.adjust_hue takes a fraction of the full
# circle, so the same shift is 18 / 180.
HUE_MAX_DELTA = 18. / 180.
# Caffe's random_order_prob: how often the colour channels are shuffled
# (any of the 6 orders, the identity included).  ssd_pascal.py sets 0.
CHANNEL_SWAP_PROBABILITY = 0.

ZOOM_OUT_PROBABILITY = 0.5
ZOOM_OUT_MAX_RATIO = 4.

# Caffe's batch samplers besides the whole frame, which always is one: the
# IoU a crop must reach with at least one object.  The 0 stands for
# ssd_pascal.py's last sampler (max_jaccard_overlap 1), which any crop of a
# frame with an object satisfies.
CROP_MIN_IOUS = (0.1, 0.3, 0.5, 0.7, 0.9, 0.)
CROP_SCALE_RANGE = (0.3, 1.)  # sqrt(crop area / frame area).
# Crop width over height in the frame's normalised coordinates.
CROP_ASPECT_RATIO_RANGE = (0.5, 2.)
CROP_MAX_TRIALS = 50  # Per sampler.

FLIP_PROBABILITY = 0.5

EVAL_RESIZE_MODES = ('warp', 'pad')
# The layouts: one list, in utils/platform_info (which picks the default).
DATA_FORMATS = platform_info.DATA_FORMATS


def normalize_image(image):
  """Subtracts the VGG means from a uint8 or 0-255 float RGB image.

  Args:
    image: [..., 3] RGB, channels last.

  Returns:
    float32 image of the same shape, 0 at the mean colour.
  """
  return tf.cast(image, tf.float32) - tf.constant(VGG_MEANS)


def denormalize_image(image, data_format='NHWC'):
  """Undoes `normalize_image`, for display.

  Args:
    image: float32 image or batch of images, normalised RGB.
    data_format: 'NHWC' (channels last) or 'NCHW' (channels first).

  Returns:
    float32 RGB of the same shape on a 0-255 scale (not clipped).
  """
  means = tf.constant(VGG_MEANS)
  if _check_data_format(data_format) == 'NCHW':
    means = means[:, tf.newaxis, tf.newaxis]
  return image + means


def distort_color(image, seed, probability=DISTORTION_PROBABILITY,
                  channel_swap_probability=CHANNEL_SWAP_PROBABILITY):
  """Caffe's photometric distortions (`DistortImage` of the SSD branch).

  Brightness first; then, with even odds, contrast, saturation, hue or
  saturation, hue, contrast (Caffe's two orders); each applies with
  `probability`, its value uniform in its range (module constants).  Last,
  with `channel_swap_probability`, the channels are shuffled.  So with the
  defaults 1/16 of the images stay untouched (bit for bit).

  Where TensorFlow's op differs from Caffe's, Caffe's is followed: contrast
  is a plain multiply (tf.image.adjust_contrast scales about the image's
  mean instead).  Caffe works on 8-bit images, so it rounds after every step
  and its negative hue shifts saturate at hue 0 instead of wrapping; here
  values stay float and the hue wraps round the circle (tf.image.adjust_hue).

  Args:
    image: float32 [H, W, 3] RGB in [0, 1].
    seed: int32 or int64 [2] seed.
    probability: how often each of the four distortions applies.
    channel_swap_probability: how often the channels are shuffled.

  Returns:
    float32 [H, W, 3] RGB, clipped to [0, 1] after every distortion.
  """
  apply_seed, value_seed, order_seed, swap_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 4))
  brightness, contrast, saturation, hue, swap = tf.unstack(
      tf.random.stateless_uniform([5], apply_seed) <
      tf.constant([probability] * 4 + [channel_swap_probability]))
  low, high = zip((-BRIGHTNESS_MAX_DELTA, BRIGHTNESS_MAX_DELTA),
                  CONTRAST_RANGE, SATURATION_RANGE,
                  (-HUE_MAX_DELTA, HUE_MAX_DELTA))
  low = tf.constant(low)
  delta, contrast_factor, saturation_factor, hue_delta = tf.unstack(
      low + (tf.constant(high) - low) *
      tf.random.stateless_uniform([4], value_seed))
  contrast_first = tf.random.stateless_uniform([], order_seed) < 0.5
  image = _apply_if(brightness, lambda x: _clip(x + delta), image)
  image = _apply_if(contrast & contrast_first,
                    lambda x: _clip(x * contrast_factor), image)
  image = _apply_if(
      saturation, lambda x: _clip(adjust_saturation(x, saturation_factor)),
      image)
  image = _apply_if(hue, lambda x: _clip(tf.image.adjust_hue(x, hue_delta)),
                    image)
  image = _apply_if(contrast & ~contrast_first,
                    lambda x: _clip(x * contrast_factor), image)
  order = tf.argsort(tf.random.stateless_uniform([3], swap_seed))
  return tf.cond(swap, lambda: tf.gather(image, order, axis=-1),
                 lambda: image)


def adjust_saturation(image, factor):
  """tf.image.adjust_saturation of a float RGB image, without HSV.

  HSV saturation is s = (M - m) / M for a pixel of largest and smallest
  channel M and m; hue and value M fixed, every channel c is affine in s,
  so scaling s by `factor` (s clipped to 1, as HSV's) moves each channel to
  M - f (M - c), f = min(factor, M / (M - m)).  Equal to TensorFlow's op up
  to float rounding, ~10x faster on one core than its RGB-HSV-RGB kernel.

  Args:
    image: float32 [H, W, 3] RGB in [0, 1].
    factor: float32 scalar >= 0.
  """
  # Per channel, not [H, W, 1] against [H, W, 3]: TensorFlow's broadcasts
  # and 3-wide reductions cost more than the arithmetic.
  channels = tf.unstack(image, num=3, axis=-1)
  largest = tf.maximum(tf.maximum(channels[0], channels[1]), channels[2])
  spread = largest - tf.minimum(tf.minimum(channels[0], channels[1]),
                                channels[2])
  # spread = 0 (grey): every channel is M whatever f is.
  scale = tf.where(spread > 0.,
                   tf.minimum(factor, tf.math.divide_no_nan(largest, spread)),
                   1.)
  return tf.stack([largest - scale * (largest - channel)
                   for channel in channels], axis=-1)


def random_zoom_out(bboxes, seed, max_ratio=ZOOM_OUT_MAX_RATIO,
                    probability=ZOOM_OUT_PROBABILITY):
  """Places the image on a larger canvas, at random ("expand" in SSD).

  The canvas is `ratio` (uniform in [1, max_ratio]) times the image's height
  and width, with the image at a uniformly random place on it; with
  probability 1 - `probability` it is the image itself.

  Args:
    bboxes: float32 [N, 4] boxes in the image.
    seed: int32 or int64 [2] seed.
    max_ratio: largest canvas side over image side.
    probability: how often to zoom out.

  Returns:
    canvas: float32 [4], the canvas as a window of the image.
    bboxes: float32 [N, 4], the same boxes in the canvas.
  """
  zoom_seed, ratio_seed, offset_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 3))
  zoom = tf.random.stateless_uniform([], zoom_seed) < probability
  ratio = tf.where(
      zoom, tf.random.stateless_uniform([], ratio_seed, 1., max_ratio), 1.)
  # How far the canvas reaches above and left of the image, in image sides.
  offset = tf.random.stateless_uniform([2], offset_seed) * (ratio - 1.)
  canvas = tf.concat([-offset, ratio - offset], axis=0)
  return canvas, tf_image.bboxes_in_window(bboxes, canvas)


def random_crop(labels, bboxes, seed, min_ious=CROP_MIN_IOUS,
                max_trials=CROP_MAX_TRIALS):
  """Caffe's batch-sampler crop (`GenerateBatchSamples`, then `CropImage`).

  The whole frame is always a candidate.  Each sampler of `min_ious` draws
  up to `max_trials` crops as Caffe's `SampleBBox` does (scale s uniform in
  CROP_SCALE_RANGE; aspect ratio r uniform in CROP_ASPECT_RATIO_RANGE
  narrowed to [s^2, 1 / s^2], so the crop fits; width s * sqrt(r), height
  s / sqrt(r), position uniform in the frame) and adds its first crop whose
  IoU with at least one object reaches the sampler's minimum.  One candidate
  is then picked uniformly, so the whole frame is kept only when the pick
  falls on it: a frame without objects is never cropped.  All trials are
  drawn at once and tested in one batched IoU.

  The kept boxes are those whose centre lies in the crop (Caffe's
  emit_type CENTER), clipped to it (see tf_image.crop_bboxes); a crop may
  keep none, as in Caffe.

  Args:
    labels: [N] labels aligned with `bboxes`.
    bboxes: float32 [N, 4] boxes in the frame (image or zoom-out canvas).
    seed: int32 or int64 [2] seed.
    min_ious: one minimum IoU per sampler.
    max_trials: crops each sampler tries.

  Returns:
    window: float32 [4], the crop in the frame.
    labels: [M] labels of the kept boxes, M <= N, in their order.
    bboxes: float32 [M, 4] kept boxes in the crop.
  """
  scale_seed, ratio_seed, start_seed, pick_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 4))
  trials = [len(min_ious), max_trials]
  scale = tf.random.stateless_uniform(trials, scale_seed, *CROP_SCALE_RANGE)
  low = tf.maximum(CROP_ASPECT_RATIO_RANGE[0], scale**2)
  high = tf.minimum(CROP_ASPECT_RATIO_RANGE[1], 1. / scale**2)
  aspect_ratio = low + (high - low) * tf.random.stateless_uniform(
      trials, ratio_seed)
  # (height, width); the minimum absorbs rounding past 1.
  sizes = tf.minimum(tf.stack([scale / tf.sqrt(aspect_ratio),
                               scale * tf.sqrt(aspect_ratio)], axis=-1), 1.)
  starts = tf.random.stateless_uniform(trials + [2], start_seed) * (1. - sizes)
  windows = tf.concat([starts, starts + sizes], axis=-1)
  iou = tf.reshape(tf_image.bboxes_iou(bboxes, tf.reshape(windows, [-1, 4])),
                   trials + [-1])
  min_iou = tf.constant(min_ious, tf.float32)[:, tf.newaxis, tf.newaxis]
  satisfied = tf.reduce_any(iou >= min_iou, axis=-1)
  first = tf.argmax(tf.cast(satisfied, tf.int32), axis=1, output_type=tf.int32)
  candidates = tf.concat([tf.constant([tf_image.FULL_WINDOW]),
                          tf.gather(windows, first, batch_dims=1)], axis=0)
  succeeded = tf.concat([[True], tf.reduce_any(satisfied, axis=1)], axis=0)
  pick = tf.argmax(tf.where(
      succeeded, tf.random.stateless_uniform([len(min_ious) + 1], pick_seed),
      -1.))
  window = candidates[pick]
  labels, bboxes = tf_image.crop_bboxes(labels, bboxes, window)
  return window, labels, bboxes


def random_geometry(labels, bboxes, seed):
  """`random_zoom_out`, then `random_crop` of the canvas.

  Args:
    labels: [N] labels aligned with `bboxes`.
    bboxes: float32 [N, 4] boxes in the image.
    seed: int32 or int64 [2] seed.

  Returns:
    canvas: float32 [4], the zoom-out canvas as a window of the image.
    crop: float32 [4], the crop as a window of the canvas; the output shows
      `tf_image.window_in_frame(canvas, crop)` of the image.
    labels: [M] labels of the kept boxes.
    bboxes: float32 [M, 4] kept boxes in the crop.
  """
  zoom_seed, crop_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 2))
  canvas, bboxes = random_zoom_out(bboxes, zoom_seed)
  crop, labels, bboxes = random_crop(labels, bboxes, crop_seed)
  return canvas, crop, labels, bboxes


def distorted_view(image, window, out_shape, seed):
  """`distort_color` of the view of `image` through `window`.

  Distorts whichever holds fewer pixels: the part of the image the view
  reads (then resamples it), or the resampled view; every distortion acts
  on each pixel alone, so both give the same image up to interpolation.

  Args:
    image: uint8 [H, W, 3] RGB.
    window: float32 [4] in the image's normalised coordinates.
    out_shape: (height, width) of the view.
    seed: int32 or int64 [2] seed of `distort_color`.

  Returns:
    float32 [height, width, 3] RGB in [0, 1]; pixels that do not show the
    image hold arbitrary values.
  """
  region, region_window = tf_image.window_region(image, window)

  def distort_then_sample():
    distorted = distort_color(tf.cast(region, tf.float32) / 255., seed)
    return tf_image.sample_window(distorted, region_window, out_shape)

  def sample_then_distort():
    return distort_color(
        tf_image.sample_window(region, region_window, out_shape) / 255., seed)
  return tf.cond(
      tf.size(region) < out_shape[0] * out_shape[1] * 3,
      distort_then_sample, sample_then_distort)


def random_flip_left_right(image, bboxes, seed,
                           probability=FLIP_PROBABILITY):
  """Mirrors an [H, W, C] image and its [N, 4] boxes with `probability`."""
  flip = tf.random.stateless_uniform([], seed) < probability
  return tf.cond(
      flip,
      lambda: (tf.reverse(image, axis=[1]),
               tf_image.flip_bboxes_left_right(bboxes)),
      lambda: (image, bboxes))


def preprocess_for_train(image, labels, bboxes, out_shape, data_format='NHWC',
                         seed=None, scope=None):
  """Augments one training example (see the module docstring).

  Seeding: `seed` may be an int32/int64 [2] tensor (or pair of ints), used
  as is: the output is then a pure function of the inputs and the seed, so
  give every element its own seed (e.g. `dataset.enumerate()` and
  `seed=tf.stack([base_seed, index])`), which stays reproducible under any
  `num_parallel_calls`.  Otherwise `seed` (None or an int) is the op-level
  seed of a stateful op that draws each call's seed; with a graph-level seed
  (`tf.compat.v1.set_random_seed`) the draws repeat from run to run as long
  as the calls happen in the same order (one map thread or sequential
  session runs).  Reproducible means bitwise equal when the same graph is
  built again; Grappler's arithmetic rewrites may round two copies of the
  computation (two calls in one graph, say) differently, by up to about
  0.02 on the 0-255 scale.

  Args:
    image: uint8 [H, W, 3] RGB.
    labels: int64 [N].
    bboxes: float32 [N, 4] (ymin, xmin, ymax, xmax) normalised to [0, 1].
    out_shape: (height, width) of the output.
    data_format: 'NHWC' (channels last) or 'NCHW' (channels first).
    seed: see above.
    scope: optional name scope.

  Returns:
    image: float32 [height, width, 3] (or [3, height, width]) normalised.
    labels: int64 [M] labels of the kept boxes, M <= N (possibly 0).
    bboxes: float32 [M, 4] in [0, 1], positive height and width, aligned.
  """
  _check_data_format(data_format)
  with tf.compat.v1.name_scope(scope, 'ssd_preprocessing_train',
                               [image, labels, bboxes]):
    color_seed, geometry_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(_call_seed(seed), 3))
    canvas, crop, labels, bboxes = random_geometry(labels, bboxes,
                                                   geometry_seed)
    window = tf_image.window_in_frame(canvas, crop)
    image = distorted_view(image, window, out_shape, color_seed)
    # The canvas outside the image shows the mean colour, undistorted.
    in_image = tf_image.pixels_in_image(window, out_shape)
    image = tf_image.zero_outside(normalize_image(image * 255.), in_image)
    image, bboxes = random_flip_left_right(image, bboxes, flip_seed)
    return _to_data_format(image, data_format), labels, bboxes


def preprocess_for_eval(image, labels, bboxes, out_shape, data_format='NHWC',
                        resize='warp', scope=None):
  """Resizes one evaluation example; never drops or reorders boxes.

  Args:
    image: uint8 [H, W, 3] RGB.
    labels: [N] labels, returned as they are.
    bboxes: float32 [N, 4] (ymin, xmin, ymax, xmax) normalised to [0, 1].
    out_shape: (height, width) of the output.
    data_format: 'NHWC' (channels last) or 'NCHW' (channels first).
    resize: 'warp' stretches the image to `out_shape`; 'pad' keeps its
      aspect ratio, centred on the mean colour.
    scope: optional name scope.

  Returns:
    image: float32 [height, width, 3] (or [3, height, width]) normalised.
    labels: the input labels.
    bboxes: float32 [N, 4], the same boxes in the output image.
    bbox_img: float32 [4], the original image in the output image, so a box
      b in the output is, in original pixels,
      (b - bbox_img[:2]) / (bbox_img[2:] - bbox_img[:2]) * (H, W).
  """
  _check_data_format(data_format)
  if resize not in EVAL_RESIZE_MODES:
    raise ValueError('resize must be one of %s, not %r' %
                     (EVAL_RESIZE_MODES, resize))
  with tf.compat.v1.name_scope(scope, 'ssd_preprocessing_eval',
                               [image, labels, bboxes]):
    if resize == 'pad':
      window = tf_image.letterbox_window(tf.shape(image)[:2], out_shape)
    else:
      window = tf.constant(tf_image.FULL_WINDOW)
    image = tf_image.sample_window(normalize_image(image), window, out_shape)
    bboxes = tf_image.bboxes_in_window(bboxes, window)
    bbox_img = tf_image.bboxes_in_window(
        tf.constant(tf_image.FULL_WINDOW), window)
    return _to_data_format(image, data_format), labels, bboxes, bbox_img


def preprocess_image(image, labels, bboxes, out_shape, data_format='NHWC',
                     is_training=False, **kwargs):
  """`preprocess_for_train` or `preprocess_for_eval`, with their kwargs."""
  if is_training:
    return preprocess_for_train(image, labels, bboxes, out_shape,
                                data_format=data_format, **kwargs)
  return preprocess_for_eval(image, labels, bboxes, out_shape,
                             data_format=data_format, **kwargs)


def _clip(image):
  return tf.clip_by_value(image, 0., 1.)


def _apply_if(condition, function, image):
  """function(image) when `condition`, else image untouched (and no pass
  over its pixels: on one core each costs ~1 ns per value)."""
  return tf.cond(condition, lambda: function(image), lambda: image)


def _call_seed(seed):
  """The [2] seed of one preprocessing call (see preprocess_for_train)."""
  if seed is None or isinstance(seed, numbers.Integral):
    return tf.random.uniform([2], maxval=tf.int64.max, dtype=tf.int64,
                             seed=seed)
  return tf.convert_to_tensor(seed)


def _check_data_format(data_format):
  if data_format not in DATA_FORMATS:
    raise ValueError('data_format must be one of %s, not %r' %
                     (DATA_FORMATS, data_format))
  return data_format


def _to_data_format(image, data_format):
  """Turns an [H, W, C] image channels-first for 'NCHW'."""
  if data_format == 'NCHW':
    return tf.transpose(image, [2, 0, 1])
  return image
