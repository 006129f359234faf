"""Detections drawn on images: the project's one drawing and colour map.

NumPy and OpenCV only (no TensorFlow, nothing of the project), so the demo,
the TFRecord inspection, evaluation's TensorBoard images and the training
summaries (through `tf.numpy_function`) all draw alike:

  drawn = drawing.draw_detections(image_rgb, boxes, labels, scores,
                                  class_names={1: 'cat', 2: 'dog'})

Images are uint8 RGB [H, W, 3]; boxes are normalised (ymin, xmin, ymax,
xmax).  A box's outline lies inside the box (its outer edge on the box's
pixel bounds), so boxes along the image border stay fully visible.
"""
import colorsys

import cv2
import numpy as np

# Hues a golden ratio of a turn apart: any number of classes get distinct
# colours, and neighbouring labels the most distinct ones.
_GOLDEN_RATIO_TURN = 0.618034
_SATURATION = 1.
_VALUE = 0.86
# Colour of boxes drawn without labels (ground truth in training summaries).
UNLABELLED_COLOR = (255, 255, 255)
# Relative luma of sRGB (ITU-R BT.601): text is black on colours brighter
# than half scale, white on the others.
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_color(label):
  """The RGB colour (three ints in 0..255) of class `label` (an int)."""
  hue = int(label) * _GOLDEN_RATIO_TURN % 1.
  return tuple(int(round(255 * channel)) for channel in
               colorsys.hsv_to_rgb(hue, _SATURATION, _VALUE))


def default_thickness(height, width):
  """Outline width in pixels: 2 up to 500 px images, then 1 per 250 px."""
  return max(2, int(round(max(height, width) / 250.)))


def pixel_bounds(box, height, width):
  """(top, left, bottom, right) inclusive pixel rows/columns of a
  normalised (ymin, xmin, ymax, xmax) box, clipped to the image; None when
  nothing of it is inside."""
  ymin, xmin, ymax, xmax = (float(v) for v in box)
  top = int(round(ymin * height))
  left = int(round(xmin * width))
  bottom = min(int(round(ymax * height)), height) - 1
  right = min(int(round(xmax * width)), width) - 1
  top, left = max(top, 0), max(left, 0)
  if bottom < top or right < left:
    return None
  return top, left, bottom, right


def caption(label, score=None, class_names=None):
  """The tag text of a detection: `name score` (or the label number)."""
  name = None
  if class_names is not None:
    try:
      name = class_names[int(label)]
    except (KeyError, IndexError):
      pass
  text = str(int(label)) if name is None else str(name)
  return text if score is None else '%s %.2f' % (text, float(score))


def draw_detections(image_rgb_uint8, boxes_normalised_yxyx, labels,
                    scores=None, class_names=None, thickness=None):
  """Draws boxes and `name score` tags on a copy of an RGB image.

  Args:
    image_rgb_uint8: uint8 [H, W, 3] RGB image (left unchanged).
    boxes_normalised_yxyx: [N, 4] normalised (ymin, xmin, ymax, xmax).
    labels: [N] int class ids, each box drawn in `class_color(label)` with
      its tag; label 0 (background, padding) is not drawn.  None draws every
      box in UNLABELLED_COLOR without a tag.
    scores: optional [N] scores, shown in the tags.
    class_names: optional {id: name} (or a sequence indexed by id); ids it
      lacks show as numbers.
    thickness: outline width in pixels; default `default_thickness`.

  Returns:
    The drawn uint8 [H, W, 3] RGB image. Boxes that are empty or outside
    the image are skipped.
  """
  image = np.array(image_rgb_uint8, dtype=np.uint8, copy=True, order='C')
  if image.ndim != 3 or image.shape[2] != 3:
    raise ValueError('draw_detections needs an [H, W, 3] image, got shape %s'
                     % (image.shape,))
  height, width = image.shape[:2]
  boxes = np.asarray(boxes_normalised_yxyx, np.float64).reshape(-1, 4)
  if thickness is None:
    thickness = default_thickness(height, width)
  for index, box in enumerate(boxes):
    label = None if labels is None else int(labels[index])
    if label == 0:
      continue
    bounds = pixel_bounds(box, height, width)
    if bounds is None:
      continue
    color = UNLABELLED_COLOR if label is None else class_color(label)
    _draw_outline(image, bounds, color, thickness)
    if label is not None:
      score = None if scores is None else scores[index]
      _draw_tag(image, bounds, caption(label, score, class_names), color,
                thickness)
  return image


def _draw_outline(image, bounds, color, thickness):
  """Fills the `thickness` pixels inside the box's edges with `color`."""
  top, left, bottom, right = bounds
  image[top:min(top + thickness, bottom + 1), left:right + 1] = color
  image[max(bottom - thickness + 1, top):bottom + 1, left:right + 1] = color
  image[top:bottom + 1, left:min(left + thickness, right + 1)] = color
  image[top:bottom + 1, max(right - thickness + 1, left):right + 1] = color


def _draw_tag(image, bounds, text, color, thickness):
  """The text on a filled tag of `color` above the box (inside it at the
  image's top edge), black or white for contrast."""
  top, left = bounds[:2]
  font_scale = 0.25 * thickness + 0.15
  text_thickness = max(1, thickness // 2)
  (text_width, text_height), baseline = cv2.getTextSize(
      text, _FONT, font_scale, text_thickness)
  tag_height = text_height + baseline + 2
  tag_top = top - tag_height if top >= tag_height else top
  tag_left = min(left, max(image.shape[1] - text_width - 2, 0))
  cv2.rectangle(image, (tag_left, tag_top),
                (tag_left + text_width + 1, tag_top + tag_height - 1), color,
                cv2.FILLED)
  luma = np.dot(_LUMA_WEIGHTS, color)
  cv2.putText(image, text, (tag_left + 1, tag_top + text_height + 1), _FONT,
              font_scale, (0, 0, 0) if luma > 127.5 else (255, 255, 255),
              text_thickness, cv2.LINE_AA)
