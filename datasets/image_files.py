"""Image files as detection records store them: sniffing, checking, encoding.

Records hold images that decode to 3-channel 8-bit RGB.  A 3-channel 8-bit
JPEG or an 8-bit RGB PNG keeps its original bytes (decoding is pixel-exact);
any other image (grayscale, CMYK, alpha, 16-bit, other formats) is decoded
with OpenCV and re-encoded losslessly as PNG.  A photo whose longer side
exceeds `max_side` is stored downscaled (JPEG stays JPEG, quality
`DOWNSCALED_JPEG_QUALITY`; anything else becomes PNG); boxes are normalised,
so they need no change.

NumPy and OpenCV only: no TensorFlow here.
"""
import collections
import struct

import cv2
import numpy as np

# File name endings the tools look for when they search for images.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.JPG', '.JPEG', '.PNG')
DOWNSCALED_JPEG_QUALITY = 95

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# Start-of-frame markers (all but DHT 0xC4, JPG 0xC8 and DAC 0xCC).
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE_MARKERS = frozenset(range(0xD0, 0xDA)) | {0x01}
_JPEG_START_OF_SCAN = 0xDA

# What a record stores for one image file.  `shape` is the stored image's
# (height, width, 3); `source_shape` the file's own, which box coordinates
# refer to; `reencoded`: the bytes are not the file's; `downscaled`: shape is
# smaller than source_shape.
StoredImage = collections.namedtuple(
    'StoredImage', ['encoded', 'format', 'shape', 'source_shape', 'reencoded',
                    'downscaled'])


class ImageFileError(ValueError):
  """An unreadable, undecodable or truncated image; the message names it."""


def jpeg_header(data):
  """(components, precision, complete) of a JPEG, or None if not parseable.

  `complete` tells whether an end-of-image marker follows the first scan, so
  a truncated file (which OpenCV decodes silently but TensorFlow rejects)
  is caught here.
  """
  if not data.startswith(b'\xff\xd8'):
    return None
  position, frame = 2, None
  while position + 4 <= len(data):
    if data[position] != 0xFF:
      return None
    marker = data[position + 1]
    if marker == 0xFF:  # Fill byte.
      position += 1
      continue
    if marker in _JPEG_STANDALONE_MARKERS:
      position += 2
      continue
    if marker in _JPEG_SOF_MARKERS and position + 10 <= len(data):
      frame = (data[position + 9], data[position + 4])
    if marker == _JPEG_START_OF_SCAN:
      if frame is None:
        return None
      return frame + (b'\xff\xd9' in data[position:],)
    position += 2 + struct.unpack('>H', data[position + 2:position + 4])[0]
  return None


def keepable_format(data):
  """'jpeg' / 'png' when the bytes already decode to 8-bit RGB, else None."""
  if data.startswith(_PNG_SIGNATURE):
    bit_depth, color_type = data[24:26]
    return 'png' if (bit_depth, color_type) == (8, 2) else None
  header = jpeg_header(data)
  if header is not None and header[:2] == (3, 8):
    return 'jpeg'
  return None


def downscaled_size(height, width, max_side):
  """(height, width) with the longer side at most `max_side`, aspect kept."""
  if not max_side or max(height, width) <= max_side:
    return height, width
  scale = max_side / max(height, width)
  return (max(1, int(round(height * scale))),
          max(1, int(round(width * scale))))


def _decode(path, data):
  """BGR uint8 pixels of an image file's bytes; ImageFileError when bad."""
  header = jpeg_header(data)
  if header is not None and not header[2]:
    raise ImageFileError('%s: truncated JPEG (no end marker)' % path)
  # Ignore EXIF orientation: TensorFlow's decoders do, and boxes are drawn
  # on the stored pixels.
  image = cv2.imdecode(np.frombuffer(data, np.uint8),
                       cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
                      ) if data else None
  if image is None:
    raise ImageFileError('%s: not a decodable image' % path)
  return image


def read_for_record(path, max_side=None):
  """Reads an image file and returns what a record stores for it.

  Args:
    path: image file.
    max_side: store images whose longer side is larger downscaled to it
      (area interpolation); None or 0 keeps every size.

  Returns:
    A `StoredImage`.

  Raises:
    ImageFileError: the file cannot be read or decoded, or is truncated.
  """
  try:
    with open(path, 'rb') as image_file:
      data = image_file.read()
  except OSError as error:
    raise ImageFileError('%s: cannot read image (%s)' % (path, error)) from None
  image = _decode(path, data)
  image_format = keepable_format(data)
  height, width = downscaled_size(image.shape[0], image.shape[1], max_side)
  if (height, width) != image.shape[:2]:
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if image_format == 'jpeg':
      _, encoded = cv2.imencode('.jpg', small, [cv2.IMWRITE_JPEG_QUALITY,
                                                DOWNSCALED_JPEG_QUALITY])
    else:
      image_format = 'png'
      _, encoded = cv2.imencode('.png', small)
    return StoredImage(encoded.tobytes(), image_format.encode(), small.shape,
                       image.shape, True, True)
  if image_format is not None:
    return StoredImage(data, image_format.encode(), image.shape, image.shape,
                       False, False)
  _, png = cv2.imencode('.png', image)
  return StoredImage(png.tobytes(), b'png', image.shape, image.shape, True,
                     False)
