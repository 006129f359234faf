"""Built-in sample detection dataset, rendered with OpenCV (no download).

A fresh machine has no data and no network, so the default training run
uses this: images of 300-500 px with 1-3 coloured "products" each (red
boxes, green bottles, blue cans) on muted shelf-like backgrounds.  Objects
never overlap and are at least 15% of the shorter image side, so a small
SSD learns them quickly; every box is the exact extent of the painted
pixels.  Everything is a pure function of the seed.

`ensure_sample_dataset()` writes the VOC tree to `<output_dir>/voc/` and
converts it with `pascalvoc_to_tfrecords.convert` into `<output_dir>` as
splits `sample_train` and `sample_val` (dataset `voc`, splits `train` and
`val` for the factory).  Command line:

  python -m datasets.sample_data --output_dir=tfrecords/sample
"""
import json
import os
import shutil
import xml.etree.ElementTree as ElementTree

from absl import app
from absl import flags
from absl import logging
import cv2
import numpy as np

from datasets import conversion
from datasets import dataset_utils
from datasets import pascalvoc_to_tfrecords
from utils.common import paths

CLASS_NAMES = ('box', 'bottle', 'can')
SPLITS = ('train', 'val')
IMAGE_SIDE_RANGE = (300, 500)
MAX_OBJECTS = 3
# Object height as a fraction of the shorter image side, and height / width.
_HEIGHT_RANGE = {'box': (0.25, 0.45), 'bottle': (0.45, 0.7),
                 'can': (0.3, 0.5)}
_ASPECT_RANGE = {'box': (0.7, 1.4), 'bottle': (1.9, 2.3),
                 'can': (1.2, 1.5)}
# Base BGR colour of each class; shades vary around it.
_BASE_COLOR = {'box': (40, 60, 220), 'bottle': (60, 190, 40),
               'can': (220, 110, 30)}
_MARKER_NAME = 'sample_data.json'

# Where the scripts keep the sample dataset when no --dataset_dir is given.
DEFAULT_DIR = paths.SAMPLE_DIR
_JPEG_QUALITY = 95


def _shade(rng, color, spread=30):
  return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255))
               for c in color)


def _background(rng, height, width):
  """Muted vertical gradient with shelf lines and mild noise."""
  top, bottom = (rng.integers(90, 200, size=3) for _ in range(2))
  # Pull colours toward gray so the products stand out.
  top, bottom = (0.4 * c + 0.6 * c.mean() for c in (top, bottom))
  ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
  image = 6 * rng.standard_normal((height, width, 3), dtype=np.float32)
  image += (1 - ramp) * top + ramp * bottom
  for y in rng.integers(0, height, size=rng.integers(1, 4)):
    image[y:y + 6] *= 0.7
  return np.clip(image, 0, 255).astype(np.uint8)


def _paint_object(name, mask, x0, y0, x1, y1):
  """Draws the shape of class `name` into `mask` (filled with 255)."""
  width, height = x1 - x0, y1 - y0
  if name == 'box':
    cv2.rectangle(mask, (x0, y0), (x1 - 1, y1 - 1), 255, cv2.FILLED)
  elif name == 'bottle':
    neck = width // 3
    shoulder = y0 + height // 3
    cv2.rectangle(mask, (x0, shoulder), (x1 - 1, y1 - 1), 255, cv2.FILLED)
    center = (x0 + x1) // 2
    cv2.rectangle(mask, (center - neck // 2, y0),
                  (center + neck // 2, shoulder), 255, cv2.FILLED)
  else:  # can: a cylinder, rounded top and bottom.
    rim = max(2, height // 10)
    cv2.rectangle(mask, (x0, y0 + rim), (x1 - 1, y1 - 1 - rim), 255,
                  cv2.FILLED)
    for center_y in (y0 + rim, y1 - 1 - rim):
      cv2.ellipse(mask, ((x0 + x1 - 1) // 2, center_y),
                  ((width - 1) // 2, rim), 0, 0, 360, 255, cv2.FILLED)


def _decorate(rng, name, image, mask, box):
  """Colours the object and adds a class-typical detail inside the mask."""
  x0, y0, x1, y1 = box
  image[mask > 0] = _shade(rng, _BASE_COLOR[name])
  detail = np.zeros_like(mask)
  height = y1 - y0
  if name == 'box':  # A pale label band.
    band = y0 + int(height * rng.uniform(0.3, 0.6))
    cv2.rectangle(detail, (x0, band), (x1, band + height // 5), 255,
                  cv2.FILLED)
    color = _shade(rng, (225, 225, 225), 20)
  elif name == 'bottle':  # A dark cap.
    cv2.rectangle(detail, (x0, y0), (x1, y0 + height // 12), 255, cv2.FILLED)
    color = _shade(rng, (40, 40, 40), 20)
  else:  # A metallic stripe.
    cv2.rectangle(detail, (x0, y0 + height // 3), (x1, y0 + height // 2), 255,
                  cv2.FILLED)
    color = _shade(rng, (200, 200, 200), 20)
  image[(detail > 0) & (mask > 0)] = color


def _place(rng, name, height, width, taken):
  """A box (x0, y0, x1, y1) for `name` clear of `taken`, or None."""
  side = min(height, width)
  for _ in range(20):
    box_height = int(side * rng.uniform(*_HEIGHT_RANGE[name]))
    box_width = int(box_height / rng.uniform(*_ASPECT_RANGE[name]))
    x0 = int(rng.integers(0, width - box_width))
    y0 = int(rng.integers(0, height - box_height))
    box = (x0, y0, x0 + box_width, y0 + box_height)
    if all(box[2] < other[0] or other[2] < box[0] or
           box[3] < other[1] or other[3] < box[1] for other in taken):
      return box
  return None


def render_image(rng):
  """Renders one sample image.

  Args:
    rng: numpy Generator; the image is a pure function of its state.

  Returns:
    (image, objects): BGR uint8 image and a list of (class name, xmin, ymin,
    xmax, ymax) boxes in pixel-edge coordinates (columns xmin..xmax-1 are
    painted), as written to the VOC XML.
  """
  height, width = (int(rng.integers(IMAGE_SIDE_RANGE[0],
                                    IMAGE_SIDE_RANGE[1] + 1))
                   for _ in range(2))
  image = _background(rng, height, width)
  objects, taken = [], []
  for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
    name = CLASS_NAMES[int(rng.integers(len(CLASS_NAMES)))]
    box = _place(rng, name, height, width, taken)
    if box is None:
      continue
    mask = np.zeros((height, width), np.uint8)
    _paint_object(name, mask, *box)
    _decorate(rng, name, image, mask, box)
    x, y, painted_width, painted_height = cv2.boundingRect(mask)
    taken.append(box)
    objects.append((name, x, y, x + painted_width, y + painted_height))
  return image, objects


def _annotation_xml(filename, height, width, objects):
  root = ElementTree.Element('annotation')
  ElementTree.SubElement(root, 'filename').text = filename
  size = ElementTree.SubElement(root, 'size')
  for tag, value in (('width', width), ('height', height), ('depth', 3)):
    ElementTree.SubElement(size, tag).text = str(value)
  for name, xmin, ymin, xmax, ymax in objects:
    element = ElementTree.SubElement(root, 'object')
    ElementTree.SubElement(element, 'name').text = name
    ElementTree.SubElement(element, 'truncated').text = '0'
    ElementTree.SubElement(element, 'difficult').text = '0'
    box = ElementTree.SubElement(element, 'bndbox')
    for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'),
                          (xmin, ymin, xmax, ymax)):
      ElementTree.SubElement(box, tag).text = str(value)
  ElementTree.indent(root)
  return ElementTree.tostring(root, encoding='unicode') + '\n'


def write_voc_dataset(voc_dir, num_train=240, num_val=60, seed=0):
  """Renders the sample dataset as a VOC tree in `voc_dir`.

  Args:
    voc_dir: output VOC root (JPEGImages/, Annotations/, ImageSets/Main/,
      classes.txt); created.
    num_train: images in split 'train'.
    num_val: images in split 'val'.
    seed: the dataset is a pure function of the seed and the counts'
      prefixes (image i of a split is the same for any count > i).
  """
  for folder in ('JPEGImages', 'Annotations', os.path.join('ImageSets',
                                                           'Main')):
    os.makedirs(os.path.join(voc_dir, folder), exist_ok=True)
  with open(os.path.join(voc_dir, 'classes.txt'), 'w') as classes_file:
    classes_file.write('\n'.join(CLASS_NAMES) + '\n')
  for split_index, (split, count) in enumerate(zip(SPLITS,
                                                   (num_train, num_val))):
    ids = ['%s_%05d' % (split, index) for index in range(count)]
    for index, image_id in enumerate(ids):
      image, objects = render_image(
          np.random.default_rng([seed, split_index, index]))
      filename = image_id + '.jpg'
      cv2.imwrite(os.path.join(voc_dir, 'JPEGImages', filename), image,
                  [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
      with open(os.path.join(voc_dir, 'Annotations', image_id + '.xml'),
                'w') as xml_file:
        xml_file.write(_annotation_xml(filename, image.shape[0],
                                       image.shape[1], objects))
    with open(os.path.join(voc_dir, 'ImageSets', 'Main', split + '.txt'),
              'w') as split_file:
      split_file.write(''.join(image_id + '\n' for image_id in ids))


def _is_complete(output_dir, settings):
  """True when a finished conversion with the same settings is there."""
  try:
    with open(os.path.join(output_dir, _MARKER_NAME)) as marker_file:
      if json.load(marker_file) != settings:
        return False
    for split in SPLITS:
      metadata = dataset_utils.read_metadata(
          dataset_utils.metadata_path(output_dir, 'sample_' + split))
      if not all(os.path.isfile(os.path.join(output_dir, shard))
                 for shard in metadata['files']):
        return False
  except (OSError, ValueError):
    return False
  return True


def ensure_sample_dataset(output_dir=DEFAULT_DIR, num_train=240,
                          num_val=60, seed=0):
  """Generates and converts the sample dataset unless it is already there.

  Args:
    output_dir: gets `voc/` (the VOC tree), the shards of `sample_train` and
      `sample_val`, their metadata, labels.txt and a completion marker.
    num_train: training images.
    num_val: validation images.
    seed: generator seed.

  Returns:
    `output_dir`, for `dataset_factory.get_dataset('voc', split, ...)`.
  """
  settings = {'num_train': num_train, 'num_val': num_val, 'seed': seed,
              'classes': list(CLASS_NAMES)}
  if _is_complete(output_dir, settings):
    return output_dir
  voc_dir = os.path.join(output_dir, 'voc')
  shutil.rmtree(voc_dir, ignore_errors=True)
  marker = os.path.join(output_dir, _MARKER_NAME)
  if os.path.exists(marker):
    os.remove(marker)
  write_voc_dataset(voc_dir, num_train, num_val, seed)
  for split in SPLITS:
    pascalvoc_to_tfrecords.convert(voc_dir, output_dir, 'sample_' + split,
                                   split=split, class_names=CLASS_NAMES)
  # Written last: its presence means the conversion finished.
  with open(marker, 'w') as marker_file:
    json.dump(settings, marker_file)
  return output_dir


FLAGS = flags.FLAGS


def dataset_dir_or_sample(dataset_dir):
  """`dataset_dir`, or (when empty) the sample dataset, generated on first use."""
  if dataset_dir:
    return dataset_dir
  logging.info('No --dataset_dir: using the built-in sample dataset in %s.',
               DEFAULT_DIR)
  return ensure_sample_dataset(DEFAULT_DIR)


def define_flags():
  """Defines the command-line flags (only when run as a program)."""
  flags.DEFINE_string('output_dir', DEFAULT_DIR, 'Where the VOC tree '
                      '(voc/) and the converted splits sample_train / '
                      'sample_val are written.')
  flags.DEFINE_integer('num_train', 240, 'Training images.', lower_bound=1)
  flags.DEFINE_integer('num_val', 60, 'Validation images.', lower_bound=1)
  flags.DEFINE_integer('seed', 0, 'Generator seed.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  try:
    output_dir = ensure_sample_dataset(FLAGS.output_dir, FLAGS.num_train,
                                       FLAGS.num_val, FLAGS.seed)
  except conversion.ConversionError as error:
    raise SystemExit('error: %s' % error)
  for split in SPLITS:
    print(conversion.format_summary(dataset_utils.read_metadata(
        dataset_utils.metadata_path(output_dir, 'sample_' + split))))


if __name__ == '__main__':
  define_flags()
  app.run(main)
