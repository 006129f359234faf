"""Graph-mode box and window geometry, and window resampling, for SSD inputs.

Boxes and windows are float32 (ymin, xmin, ymax, xmax) tuples in coordinates
normalised by an image's height and width: (0, 0, 1, 1) is the whole image.
A *window* is a view of an image; it may reach outside [0, 1] (a zoom-out
canvas), where the view shows a fill colour instead of the image.  Boxes "in
a window" use that window's own normalised coordinates.
"""
import tensorflow as tf

from utils.common import box_ops

FULL_WINDOW = (0., 0., 1., 1.)


def bboxes_in_window(bboxes, window):
  """Expresses boxes in the normalised coordinates of a window.

  Args:
    bboxes: float32 [..., 4] boxes in the frame the window is given in.
    window: float32 [4] window in that frame.

  Returns:
    float32 [..., 4] boxes, (0, 0, 1, 1) being the window; nothing is clipped.
  """
  start, size = _start_and_size(window)
  return (bboxes - start) / size


def window_in_frame(outer, inner):
  """Inverse of `bboxes_in_window` for one window inside another.

  Args:
    outer: float32 [4] window in the base frame.
    inner: float32 [4] window in `outer`'s normalised coordinates.

  Returns:
    float32 [4], `inner` in the base frame.
  """
  start, size = _start_and_size(outer)
  return start + inner * size


def flip_bboxes_left_right(bboxes):
  """Mirrors [N, 4] boxes about the vertical centre line of their frame."""
  ymin, xmin, ymax, xmax = tf.unstack(bboxes, axis=-1)
  return tf.stack([ymin, 1. - xmax, ymax, 1. - xmin], axis=-1)


def bboxes_iou(bboxes, windows):
  """Intersection over union of every window with every box.

  Args:
    bboxes: float32 [N, 4].
    windows: float32 [K, 4] with positive areas.

  Returns:
    float32 [K, N].
  """
  return box_ops.iou(bboxes[tf.newaxis, :, :], windows[:, tf.newaxis, :])


def bboxes_centres_in_windows(bboxes, windows):
  """Whether each box's centre lies in each window: bool [K, N]."""
  centres = (bboxes[:, :2] + bboxes[:, 2:]) / 2.
  centres = centres[tf.newaxis, :, :]
  windows = windows[:, tf.newaxis, :]
  inside = (centres >= windows[..., :2]) & (centres <= windows[..., 2:])
  return tf.reduce_all(inside, axis=-1)


def crop_bboxes(labels, bboxes, window):
  """Keeps the boxes whose centre is in `window`, clipped to it.

  Boxes keep their order; those left without positive width and height after
  clipping are dropped with their labels.

  Args:
    labels: [N] labels aligned with `bboxes`.
    bboxes: float32 [N, 4].
    window: float32 [4] in the boxes' frame.

  Returns:
    (labels [M], bboxes float32 [M, 4] in the window's coordinates, in [0, 1]).
  """
  keep = bboxes_centres_in_windows(bboxes, window[tf.newaxis, :])[0]
  labels = tf.boolean_mask(labels, keep)
  bboxes = tf.clip_by_value(
      bboxes_in_window(tf.boolean_mask(bboxes, keep), window), 0., 1.)
  positive = tf.reduce_all(bboxes[:, 2:] > bboxes[:, :2], axis=-1)
  return tf.boolean_mask(labels, positive), tf.boolean_mask(bboxes, positive)


def letterbox_window(image_size, out_size):
  """The window that shows a whole image undistorted in `out_size` pixels.

  The image is scaled to fit and centred; the window extends past it along
  the axis with room to spare.

  Args:
    image_size: [2] (height, width) of the image.
    out_size: [2] (height, width) of the view.

  Returns:
    float32 [4] window in the image's normalised coordinates.
  """
  image_size = tf.cast(image_size, tf.float32)
  out_size = tf.cast(out_size, tf.float32)
  pixels_per_image_pixel = tf.reduce_min(out_size / image_size)
  extent = out_size / (image_size * pixels_per_image_pixel)
  start = (1. - extent) / 2.
  return tf.concat([start, start + extent], axis=0)


def sample_window(image, window, size):
  """Bilinearly resamples the view of `image` through `window`.

  Pixel centres follow `tf.image.resize` (half-pixel centres, edge pixels
  extended), so `sample_window(image, FULL_WINDOW, size)` equals
  `tf.image.resize(image, size)`.  Output pixels whose centre falls outside
  the image are 0: centre the image first to fill them with its mean colour.
  Only the output pixels are computed, however large the window.

  Args:
    image: [H, W, C], float32 or uint8 (read as its 0-255 values).
    window: float32 [4] in the image's normalised coordinates.
    size: (height, width) of the output.

  Returns:
    float32 [height, width, C].
  """
  image_size = tf.cast(tf.shape(image)[:2], tf.float32)
  out_size = tf.cast(size, tf.float32)
  start, end = window[:2], window[2:]
  # Centres of the first and last output pixel in source pixel indices of
  # the image padded by one edge pixel, which crop_and_resize needs to read
  # the outer half of the edge pixels (it reads 0 past the outer centres).
  step = (end - start) * image_size / out_size
  first = start * image_size + step / 2. + 0.5
  last = first + (out_size - 1.) * step
  padded = _pad_with_edges(image)
  crop_box = tf.concat([first, last], axis=0) / tf.tile(image_size + 1., [2])
  sampled = tf.image.crop_and_resize(
      padded[tf.newaxis], crop_box[tf.newaxis], [0], size)[0]
  return zero_outside(sampled, pixels_in_image(window, size))


def window_region(image, window):
  """The block of pixels `sample_window(image, window, ...)` reads.

  Args:
    image: [H, W, C].
    window: float32 [4] in the image's normalised coordinates.

  Returns:
    region: [h, w, C], the pixels under the window, with one more on each
      side where the image has them (bilinear reads the next pixel); at
      least one pixel, even when the window misses the image.
    region_window: float32 [4], `window` in the region's normalised
      coordinates: sample_window(region, region_window, size) equals
      sample_window(image, window, size) on the pixels that show the image.
  """
  image_size = tf.shape(image)[:2]
  scaled = window * tf.tile(tf.cast(image_size, tf.float32), [2])
  start = tf.clip_by_value(tf.cast(tf.floor(scaled[:2]), tf.int32) - 1, 0,
                           image_size - 1)
  end = tf.maximum(tf.minimum(tf.cast(tf.math.ceil(scaled[2:]), tf.int32) + 1,
                              image_size), start + 1)
  region = tf.slice(image, tf.concat([start, [0]], axis=0),
                    tf.concat([end - start, [-1]], axis=0))
  start_f = tf.tile(tf.cast(start, tf.float32), [2])
  region_window = (scaled - start_f) / tf.tile(
      tf.cast(end - start, tf.float32), [2])
  return region, region_window


def pixels_in_image(window, size):
  """Which pixels of a `size` view through `window` show the image.

  Args:
    window: float32 [4] in the image's normalised coordinates.
    size: (height, width) of the view.

  Returns:
    bool [height, width], True where the pixel's centre lies in the image.
  """
  window = tf.convert_to_tensor(window, tf.float32)
  in_image_rows = _centres_in_unit_interval(window[0], window[2], size[0])
  in_image_cols = _centres_in_unit_interval(window[1], window[3], size[1])
  return in_image_rows[:, tf.newaxis] & in_image_cols[tf.newaxis, :]


def zero_outside(view, in_image):
  """[H, W, C] view with 0 where the [H, W] bool `in_image` is False; the
  view itself when the window shows only the image (no pass over it)."""
  return tf.cond(
      tf.reduce_all(in_image), lambda: view,
      lambda: view * tf.cast(in_image, view.dtype)[:, :, tf.newaxis])


def _pad_with_edges(image):
  """Repeats the edge pixels of [H, W, C] once on every side.

  The same as tf.pad's SYMMETRIC mode by one pixel, several times faster
  (tf.concat copies whole rows).
  """
  image = tf.concat([image[:1], image, image[-1:]], axis=0)
  return tf.concat([image[:, :1], image, image[:, -1:]], axis=1)


def _centres_in_unit_interval(start, end, count):
  """Whether the centres of `count` pixels tiling [start, end] are in [0, 1]."""
  centres = start + (tf.range(count, dtype=tf.float32) + 0.5) * (
      (end - start) / tf.cast(count, tf.float32))
  return (centres >= 0.) & (centres <= 1.)


def _start_and_size(window):
  """A window's corner and extent, each repeated to match (y, x, y, x)."""
  window = tf.convert_to_tensor(window, tf.float32)
  return tf.tile(window[:2], [2]), tf.tile(window[2:] - window[:2], [2])
