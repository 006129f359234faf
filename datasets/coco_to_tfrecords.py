r"""Converts a COCO-format detection dataset to sharded detection TFRecords.

Input: an `instances_*.json` (COCO's object-detection format, as CVAT,
Label Studio and Roboflow export it) and the folder its `file_name`s are
relative to.  Output: exactly what `pascalvoc_to_tfrecords` writes (the
same shards, `<output_name>.json` metadata and `labels.txt`), through the
same plan and write steps (`datasets.conversion`), so the same bad-input
rules apply:

  python -m datasets.coco_to_tfrecords \
      --annotations_file=coco/annotations/instances_val2017.json \
      --image_dir=coco/val2017 --output_name=coco_val --output_dir=tfrecords

Mapping to the records:
  * Classes: category ids become labels 1..K, by sorted category name, or in
    the order of a `--labels` file (categories missing from it are unknown
    classes: an error, or skipped images with `--skip_bad`).
  * `bbox` [x, y, width, height] (pixels, continuous axis) becomes the box
    (x, y, x + width, y + height) in `datasets.voc_common`'s convention.
  * `iscrowd: 1` objects are marked difficult (the metrics ignore both).
  * `attributes.truncated` (CVAT's per-object attributes), when present,
    becomes the truncated flag; COCO has no such field otherwise.
  * Images in the JSON's order; an image without annotations is an empty
    image (skipped unless `--keep_empty`).
"""
import json
import math
import os
import sys

from absl import app
from absl import flags

from datasets import conversion
from datasets import dataset_writer
from datasets import voc_common


def object_from_annotation(annotation, name):
  """The `voc_common.VocObject` of a COCO annotation dict (pixel box)."""
  x, y, width, height = annotation['bbox']
  truncated = (annotation.get('attributes') or {}).get('truncated', 0)
  return voc_common.VocObject(
      name=name, xmin=x, ymin=y, xmax=x + width, ymax=y + height,
      difficult=int(bool(annotation.get('iscrowd', 0))),
      truncated=int(bool(truncated)))


def annotation_from_object(obj, annotation_id, image_id, category_id):
  """The COCO annotation dict of a `voc_common.VocObject` (its inverse)."""
  width, height = obj.xmax - obj.xmin, obj.ymax - obj.ymin
  return {'id': annotation_id, 'image_id': image_id,
          'category_id': category_id,
          'bbox': [obj.xmin, obj.ymin, width, height],
          'area': width * height, 'iscrowd': int(obj.difficult),
          'segmentation': [], 'attributes': {'truncated': int(obj.truncated)}}


def load_json(path):
  """The COCO dict of `path`; ConversionError naming the file if it is none."""
  try:
    with open(path, encoding='utf-8-sig') as json_file:
      coco = json.load(json_file)
  except (OSError, ValueError) as error:
    raise conversion.ConversionError('%s: unreadable COCO JSON (%s)' %
                                     (path, error)) from None
  if not isinstance(coco, dict) or not all(
      isinstance(coco.get(key), list) for key in ('images', 'categories')) or (
          not isinstance(coco.get('annotations', []), list)):
    raise conversion.ConversionError(
        '%s: not a COCO detection file (needs lists "images", "categories" '
        'and "annotations")' % path)
  return coco


def category_names(coco, path):
  """{category id: name}; ConversionError for duplicate ids or names."""
  names = {}
  for category in coco['categories']:
    if not isinstance(category, dict) or 'id' not in category or not (
        isinstance(category.get('name'), str) and category['name'].strip()):
      raise conversion.ConversionError('%s: category %r needs an "id" and a '
                                       '"name"' % (path, category))
    name = category['name'].strip()
    if category['id'] in names or name in names.values():
      raise conversion.ConversionError('%s: category %r is declared twice' %
                                       (path, category))
    names[category['id']] = name
  return names


def _is_box(value):
  return (isinstance(value, (list, tuple)) and len(value) == 4 and all(
      isinstance(v, (int, float)) and not isinstance(v, bool) and
      math.isfinite(v) for v in value))


def _image_size(image):
  height, width = image.get('height'), image.get('width')
  if isinstance(height, int) and isinstance(width, int):
    return (height, width, 3)
  return None


def _group_annotations(coco, path, images_by_id, names, skip_bad):
  """({image id: [annotation]}, {image id: error}, warnings)."""
  per_image = {image_id: [] for image_id in images_by_id}
  bad_images, warnings = {}, []
  for annotation in coco.get('annotations', []):
    image_id = annotation.get('image_id') if isinstance(annotation,
                                                        dict) else None
    where = '%s: annotation %s' % (path, annotation.get('id', '?') if
                                   isinstance(annotation, dict) else '?')
    if image_id not in per_image:
      error = conversion.SkippableError(
          'malformed_annotation', '%s: image_id %r is not in "images"' %
          (where, image_id))
      if not skip_bad:
        raise error
      warnings.append((error.kind, str(error)))
      continue
    where += ' (image %s)' % image_id
    if annotation.get('category_id') not in names:
      problem = 'category_id %r is not in "categories"' % (
          annotation.get('category_id'),)
    elif not _is_box(annotation.get('bbox')):
      problem = 'bbox %r is not [x, y, width, height]' % (
          annotation.get('bbox'),)
    else:
      per_image[image_id].append(annotation)
      continue
    bad_images.setdefault(image_id, conversion.SkippableError(
        'malformed_annotation', '%s: %s' % (where, problem)))
  return per_image, bad_images, warnings


def read_source_images(annotations_file, image_dir, skip_bad=False):
  """Reads a COCO JSON into `conversion.SourceImage`s.

  Args:
    annotations_file: COCO JSON path.
    image_dir: folder its `file_name`s are relative to.
    skip_bad: skip (and count) images with malformed entries instead of
      raising.

  Returns:
    (source images in JSON order, warnings, {category id: name}).

  Raises:
    conversion.ConversionError: not a COCO file; without `skip_bad`, the
      first malformed image or annotation (the message names it).
  """
  coco = load_json(annotations_file)
  names = category_names(coco, annotations_file)
  images, warnings, images_by_id = [], [], {}
  for image in coco['images']:
    if not isinstance(image, dict) or 'id' not in image or not isinstance(
        image.get('file_name'), str) or image['id'] in images_by_id:
      error = conversion.SkippableError(
          'malformed_annotation', '%s: image entry %r needs a unique "id" '
          'and a "file_name"' % (annotations_file, image))
      if not skip_bad:
        raise error
      warnings.append((error.kind, str(error)))
      continue
    images_by_id[image['id']] = image
  per_image, bad_images, group_warnings = _group_annotations(
      coco, annotations_file, images_by_id, names, skip_bad)
  warnings += group_warnings
  for image_id, image in images_by_id.items():
    if image_id in bad_images:
      if not skip_bad:
        raise bad_images[image_id]
      warnings.append((bad_images[image_id].kind, str(bad_images[image_id])))
      continue
    images.append(conversion.SourceImage(
        image_id=image_id,
        source='%s (image %s, %s)' % (annotations_file, image_id,
                                      image['file_name']),
        image_path=os.path.join(image_dir, image['file_name']),
        size=_image_size(image),
        objects=[object_from_annotation(annotation,
                                        names[annotation['category_id']])
                 for annotation in per_image[image_id]]))
  return images, warnings, names


def plan_conversion(annotations_file, image_dir, class_names=None,
                    shuffle=False, seed=0, skip_bad=False):
  """The plan step for a COCO JSON: what `convert` would write."""
  if not os.path.isdir(image_dir):
    raise conversion.ConversionError('image_dir %s is not a directory' %
                                     image_dir)
  images, warnings, names = read_source_images(annotations_file, image_dir,
                                               skip_bad)
  if class_names is None:
    class_names = sorted(names.values())
  return conversion.make_plan(images, warnings, class_names,
                              skip_bad=skip_bad, shuffle=shuffle, seed=seed)


def convert(annotations_file, image_dir, output_dir, output_name,
            class_names=None, shuffle=False, seed=0, skip_bad=False,
            **write_options):
  """Converts a COCO JSON and its images to TFRecords.

  Args:
    annotations_file: COCO JSON (`instances_*.json`).
    image_dir: folder the JSON's `file_name`s are relative to.
    output_dir: where shards, metadata and labels.txt go (created).
    output_name: shard prefix (split S of the factory: a name ending `_S`).
    class_names: class names, ids 1..N in this order; None: the sorted
      category names.
    shuffle: shuffle the record order (with `seed`).
    seed: shuffle seed.
    skip_bad: skip (and count) malformed entries, missing or corrupt images
      and images holding classes not in `class_names`.
    **write_options: `dataset_writer.write_dataset`'s (samples_per_file,
      num_threads, keep_empty, allow_empty, max_image_side, progress).

  Returns:
    The metadata dict written to `<output_dir>/<output_name>.json`.

  Raises:
    conversion.ConversionError: bad input, naming the file and entry.
  """
  plan = plan_conversion(annotations_file, image_dir, class_names, shuffle,
                         seed, skip_bad)
  source = {'split': None, 'source_dir': os.path.abspath(image_dir),
            'annotations_file': os.path.abspath(annotations_file)}
  return dataset_writer.write_dataset(plan, output_dir, output_name, source,
                                      skip_bad=skip_bad, **write_options)


FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a program)."""
  flags.DEFINE_string('annotations_file', None, 'COCO JSON, e.g. '
                      'annotations/instances_train2017.json.')
  flags.DEFINE_string('image_dir', None, 'Folder the JSON\'s file_name '
                      'entries are relative to.')
  flags.DEFINE_string('labels', None, 'Class-list file, one name per line (ids '
                      '1..N in order). Default: the sorted category names.')
  flags.DEFINE_boolean('shuffle', False, 'Shuffle the record order.')
  flags.DEFINE_integer('seed', 0, 'Seed for --shuffle.')
  flags.DEFINE_boolean('skip_bad', False, 'Skip (and count) images with '
                       'malformed entries, missing or corrupt image files or '
                       'a category not in --labels, instead of stopping.')
  dataset_writer.define_write_flags()
  flags.mark_flags_as_required(['annotations_file', 'image_dir',
                                'output_name'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  try:
    metadata = convert(
        FLAGS.annotations_file, FLAGS.image_dir,
        class_names=(conversion.read_class_list(FLAGS.labels)
                     if FLAGS.labels else None),
        shuffle=FLAGS.shuffle, seed=FLAGS.seed, skip_bad=FLAGS.skip_bad,
        **dataset_writer.read_write_flags(FLAGS))
  except conversion.ConversionError as error:
    sys.exit('error: %s' % error)
  print(conversion.format_summary(metadata))


if __name__ == '__main__':
  define_flags()
  app.run(main)
