r"""Exports a Pascal VOC folder's annotations as one COCO JSON.

For tools that want COCO (and to cross-check the two converters: a VOC
folder converted directly and through its COCO export gives identical
records).  The images stay where they are; `file_name`s are relative to
`<dataset_dir>/JPEGImages`:

  python -m datasets.voc_to_coco --dataset_dir=voc --split=val \
      --labels=voc/classes.txt --output_path=voc/instances_val.json

Categories get ids 1..K in class-list order.  Boxes are the XML values as
[xmin, ymin, xmax - xmin, ymax - ymin]; `difficult` becomes `iscrowd` and
`truncated` a CVAT-style `attributes.truncated` (the inverse of
`coco_to_tfrecords`' mapping).  Image sizes are the XML's <size>, or the
image's own when the XML has none.
"""
import json
import os
import sys

from absl import app
from absl import flags
import cv2

from datasets import coco_to_tfrecords
from datasets import conversion
from datasets import pascalvoc_to_tfrecords


def _size(image):
  """(height, width) of a `SourceImage`: annotated, else read from the file."""
  if image.size is not None:
    return image.size[:2]
  pixels = cv2.imread(image.image_path, cv2.IMREAD_UNCHANGED)
  if pixels is None:
    raise conversion.ConversionError('%s: not a decodable image' %
                                     image.image_path)
  return pixels.shape[:2]


def voc_to_coco(dataset_dir, split=None, image_ids=None, class_names=None,
                discover_labels=False):
  """The COCO dict of a VOC root's annotations (of one split).

  Args: as `pascalvoc_to_tfrecords.convert`'s (every problem is an error).

  Returns:
    {'images', 'annotations', 'categories'} in COCO's detection format.
  """
  plan = pascalvoc_to_tfrecords.plan_conversion(
      dataset_dir, split, image_ids, class_names, discover_labels)
  category_ids = {name: index + 1
                  for index, name in enumerate(plan.class_names)}
  images_dir = os.path.join(dataset_dir, pascalvoc_to_tfrecords.IMAGES_DIR)
  coco = {'images': [], 'annotations': [], 'categories': [
      {'id': category_ids[name], 'name': name} for name in plan.class_names]}
  for image_id, image in enumerate(plan.images, 1):
    height, width = _size(image)
    coco['images'].append({
        'id': image_id, 'width': width, 'height': height,
        'file_name': os.path.relpath(image.image_path, images_dir)})
    for obj in image.objects:
      coco['annotations'].append(coco_to_tfrecords.annotation_from_object(
          obj, len(coco['annotations']) + 1, image_id,
          category_ids[obj.name]))
  return coco


FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a program)."""
  flags.DEFINE_string('dataset_dir', None, 'VOC root directory.')
  flags.DEFINE_string('split', None, 'ImageSets/Main list to export; default: '
                      'every annotation file.')
  flags.DEFINE_string('labels', None, 'Class-list file (category ids 1..K in '
                      'order). Default: the 20 VOC classes, or the names '
                      'found with --discover_labels.')
  flags.DEFINE_boolean('discover_labels', False, 'Use the sorted set of class '
                       'names found in the annotations.')
  flags.DEFINE_string('output_path', None, 'COCO JSON to write.')
  flags.mark_flags_as_required(['dataset_dir', 'output_path'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  try:
    coco = voc_to_coco(
        FLAGS.dataset_dir, FLAGS.split,
        class_names=(conversion.read_class_list(FLAGS.labels)
                     if FLAGS.labels else None),
        discover_labels=FLAGS.discover_labels)
    with open(FLAGS.output_path, 'w') as json_file:
      json.dump(coco, json_file, indent=1)
  except conversion.ConversionError as error:
    sys.exit('error: %s' % error)
  except OSError as error:
    sys.exit('error: cannot write %s (%s)' % (FLAGS.output_path,
                                              error.strerror or error))
  print('Wrote %s: %d images, %d objects, %d categories' % (
      FLAGS.output_path, len(coco['images']), len(coco['annotations']),
      len(coco['categories'])))


if __name__ == '__main__':
  define_flags()
  app.run(main)
