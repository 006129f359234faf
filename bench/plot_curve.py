"""Line plots drawn with OpenCV (no plotting library needed).

`plot_curves` draws one panel per quantity (e.g. val mAP and train loss)
against a shared x quantity (images seen), one coloured line per series
(e.g. per training recipe), with ticks, axis labels and a legend, and
writes a PNG.  Points whose value is None are left out of their line.
"""
import math

import cv2
import numpy as np

# Series colours (BGR), distinct on white; cycled when there are more series.
SERIES_COLORS_BGR = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214),
    (189, 103, 148), (75, 86, 140), (194, 119, 227), (34, 189, 188))
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
GRID = (225, 225, 225)
FONT = cv2.FONT_HERSHEY_SIMPLEX

PANEL_WIDTH = 900
PANEL_HEIGHT = 340
# Room for the tick labels (left, bottom) and the title (top), in pixels.
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 80, 190, 40, 50


def nice_ticks(low, high, target_count=5):
  """Round tick values covering [low, high]: steps of 1, 2 or 5 × 10^k.

  Returns (ticks, axis_low, axis_high): the axis spans whole steps.
  """
  if high <= low:
    high = low + 1.0
  raw_step = (high - low) / max(1, target_count)
  magnitude = 10.0 ** math.floor(math.log10(raw_step))
  step = next(m * magnitude for m in (1, 2, 5, 10)
              if m * magnitude >= raw_step)
  axis_low = math.floor(low / step + 1e-9) * step
  axis_high = math.ceil(high / step - 1e-9) * step
  count = int(round((axis_high - axis_low) / step))
  return [axis_low + i * step for i in range(count + 1)], axis_low, axis_high


def to_pixel(value, axis_low, axis_high, pixel_low, pixel_high):
  """Linear map of `value` in [axis_low, axis_high] to [pixel_low, pixel_high]."""
  fraction = (value - axis_low) / (axis_high - axis_low)
  return int(round(pixel_low + fraction * (pixel_high - pixel_low)))


def _tick_label(value):
  return ('%d' % value if float(value).is_integer() and abs(value) >= 1
          else '%.3g' % value)


def _draw_panel(canvas, top, x_label, y_label, series, x_range, y_floor):
  """One panel: axes, grid, ticks and a polyline (with dots) per series."""
  y_values = [y for points in series.values() for _, y in points]
  if not y_values:
    y_values = [0.0, 1.0]
  low = min(y_values) if y_floor is None else min(y_floor, min(y_values))
  y_ticks, y_low, y_high = nice_ticks(low, max(y_values))
  x_ticks, x_low, x_high = x_range
  left, right = MARGIN_LEFT, PANEL_WIDTH - MARGIN_RIGHT
  upper, lower = top + MARGIN_TOP, top + PANEL_HEIGHT - MARGIN_BOTTOM

  for tick in y_ticks:
    y = to_pixel(tick, y_low, y_high, lower, upper)
    cv2.line(canvas, (left, y), (right, y), GRID, 1)
    cv2.putText(canvas, _tick_label(tick), (8, y + 5), FONT, 0.45, INK, 1,
                cv2.LINE_AA)
  for tick in x_ticks:
    x = to_pixel(tick, x_low, x_high, left, right)
    cv2.line(canvas, (x, upper), (x, lower), GRID, 1)
    cv2.putText(canvas, _tick_label(tick), (x - 15, lower + 20), FONT, 0.45,
                INK, 1, cv2.LINE_AA)
  cv2.rectangle(canvas, (left, upper), (right, lower), INK, 1)
  cv2.putText(canvas, y_label, (left, upper - 12), FONT, 0.55, INK, 1,
              cv2.LINE_AA)
  cv2.putText(canvas, x_label, ((left + right) // 2 - 50, lower + 42), FONT,
              0.5, INK, 1, cv2.LINE_AA)

  for index, (name, points) in enumerate(series.items()):
    color = SERIES_COLORS_BGR[index % len(SERIES_COLORS_BGR)]
    pixels = [(to_pixel(x, x_low, x_high, left, right),
               to_pixel(y, y_low, y_high, lower, upper)) for x, y in points]
    if len(pixels) > 1:
      cv2.polylines(canvas, [np.array(pixels, np.int32)], False, color, 2,
                    cv2.LINE_AA)
    for pixel in pixels:
      cv2.circle(canvas, pixel, 4, color, -1, cv2.LINE_AA)
    legend_y = upper + 10 + 22 * index
    cv2.line(canvas, (right + 15, legend_y), (right + 45, legend_y), color, 3)
    cv2.putText(canvas, name, (right + 52, legend_y + 5), FONT, 0.5, INK, 1,
                cv2.LINE_AA)


def plot_curves(path, title, x_label, panels):
  """Writes a PNG with one panel per quantity against a shared x axis.

  Args:
    path: output PNG path.
    title: text above the first panel.
    x_label: name of the x quantity.
    panels: list of (y_label, {series name: [(x, y or None), ...]}, y_floor)
      drawn top to bottom; y_floor (e.g. 0 for a mAP) is a value the y axis
      always includes, or None.

  Returns:
    The image (H, W, 3) uint8 BGR that was written.
  """
  cleaned = [(label, {name: [(x, y) for x, y in points if y is not None]
                      for name, points in series.items()}, y_floor)
             for label, series, y_floor in panels]
  x_values = [x for _, series, _ in cleaned for points in series.values()
              for x, _ in points] or [0.0, 1.0]
  x_range = nice_ticks(min(0.0, min(x_values)), max(x_values), 8)
  canvas = np.full((PANEL_HEIGHT * len(panels) + 30, PANEL_WIDTH, 3),
                   BACKGROUND, np.uint8)
  cv2.putText(canvas, title, (10, 22), FONT, 0.55, INK, 1, cv2.LINE_AA)
  for index, (y_label, series, y_floor) in enumerate(cleaned):
    _draw_panel(canvas, 30 + index * PANEL_HEIGHT, x_label, y_label, series,
                x_range, y_floor)
  if not cv2.imwrite(path, canvas):
    raise IOError('could not write %s' % path)
  return canvas
