"""What every converter shares: the plan step and the write step.

A converter (`pascalvoc_to_tfrecords`, `coco_to_tfrecords`) reads its
annotation format into `SourceImage`s and calls

  plan = make_plan(images, warnings, class_names, skip_bad=..., ...)
  metadata = dataset_writer.write_dataset(plan, output_dir, output_name, ...)

The plan step (here) checks the class names and fixes the order: what will
be written, how many objects of which class, which inputs were skipped and
why. The write step is `dataset_writer.write_dataset`. Box convention:
`datasets.voc_common`.
"""
import collections
import random

import numpy as np

from datasets import voc_common

# Everything a converter counts, with the summary's description.  The kinds
# from 'missing_annotation' on are errors unless `skip_bad` turns them into
# skipped images.
WARNING_KINDS = collections.OrderedDict([
    ('size_mismatch', 'annotated size differs from the image (image used)'),
    ('box_clipped', 'box outside the image, clipped'),
    ('box_dropped', 'zero-area or inverted box, dropped'),
    ('empty_image', 'image without boxes (kept only with keep_empty)'),
    ('missing_annotation', 'split lists an id without XML, skipped'),
    ('malformed_xml', 'malformed annotation, skipped'),
    ('malformed_annotation', 'malformed COCO annotation, skipped'),
    ('unknown_class', 'image with a class not in the label list, skipped'),
    ('missing_image', 'annotation without image file, skipped'),
    ('corrupt_image', 'unreadable or corrupt image, skipped'),
])


class ConversionError(ValueError):
  """Input that cannot be converted; the message names the file."""


class SkippableError(ConversionError):
  """A per-image problem that `skip_bad` turns into a counted skip."""

  def __init__(self, kind, message):
    super().__init__(message)
    self.kind = kind


# One image to convert.  `source` names it in messages (e.g. the XML path);
# `image_path` is its file; `size` the annotated (height, width, depth) or
# None; `objects` `voc_common.VocObject`s with raw pixel boxes.
SourceImage = collections.namedtuple(
    'SourceImage', ['image_id', 'source', 'image_path', 'size', 'objects'])

# The plan step's result: the images to write in record order, the class
# names (ids 1..N), warnings so far as (kind, message), and the objects per
# class name of the images skipped for unknown classes.
ConversionPlan = collections.namedtuple(
    'ConversionPlan', ['images', 'class_names', 'warnings', 'unknown_classes'])



def read_class_list(path):
  """Reads a class-list file: one class name per line, blank lines ignored."""
  try:
    with open(path, encoding='utf-8-sig') as class_file:
      names = [line.strip() for line in class_file if line.strip()]
  except OSError as error:
    raise ConversionError('cannot read class list %s (%s)' %
                          (path, error)) from None
  duplicates = sorted({name for name in names if names.count(name) > 1})
  if not names or duplicates or voc_common.BACKGROUND_NAME in names:
    raise ConversionError(
        '%s: need distinct class names other than %r, one per line '
        '(duplicates: %s)' % (path, voc_common.BACKGROUND_NAME,
                              ', '.join(duplicates) or 'none'))
  return tuple(names)


def make_plan(images, warnings, class_names, skip_bad=False, shuffle=False,
              seed=0):
  """The plan step: checks the classes and fixes the record order.

  Args:
    images: `SourceImage`s, in the order to write them (unless `shuffle`).
    warnings: (kind, message) pairs of the reading so far.
    class_names: object class names, ids 1..N in this order.
    skip_bad: skip (and count) images holding a class not in `class_names`
      instead of raising.
    shuffle: shuffle the record order with `seed`.
    seed: shuffle seed.

  Returns:
    A `ConversionPlan`.

  Raises:
    ConversionError: an unknown class (without `skip_bad`): names the first
      file, the class, and the known classes.
  """
  warnings = list(warnings)
  known = set(class_names)
  kept, unknown_objects = [], collections.Counter()
  # {unknown name: {source: None}} in first-seen order (dicts as ordered
  # sets: the first file is named in the error).
  unknown = collections.OrderedDict()
  for image in images:
    names = [obj.name for obj in image.objects if obj.name not in known]
    for name in names:
      unknown.setdefault(name, {})[image.source] = None
    if names:
      unknown_objects.update(names)
      warnings.append(('unknown_class', '%s: unknown class(es) %s, image '
                       'skipped' % (image.source, ', '.join(sorted(set(
                           names))))))
    else:
      kept.append(image)
  if unknown and not skip_bad:
    name, sources = next(iter(unknown.items()))
    raise ConversionError(
        '%s: unknown class %r (in %d file(s); %d unknown name(s) in all: '
        '%s).  Known classes: %s.  Pass --labels, --discover_labels, or '
        '--skip_bad to skip those images.' %
        (next(iter(sources)), name, len(sources), len(unknown),
         ', '.join(unknown), ', '.join(class_names)))
  if shuffle:
    random.Random(seed).shuffle(kept)
  return ConversionPlan(kept, tuple(class_names), warnings,
                        dict(unknown_objects))


def clip_and_normalize_boxes(image, height, width):
  """Clips the boxes to the image and normalises them.

  Args:
    image: a `SourceImage`.
    height: actual image height.
    width: actual image width.

  Returns:
    (kept, warnings): kept is a list of (VocObject, normalised box) pairs;
    warnings a list of (kind, message).
  """
  kept, warnings = [], []
  for index, obj in enumerate(image.objects):
    where = '%s (object %d, %s)' % (image.source, index, obj.name)
    raw = (obj.xmin, obj.ymin, obj.xmax, obj.ymax)
    clipped = tuple(float(np.clip(value, 0, limit))
                    for value, limit in zip(raw, (width, height) * 2))
    if clipped != raw:
      warnings.append(('box_clipped', '%s: box %s clipped to %s' %
                       (where, raw, clipped)))
    xmin, ymin, xmax, ymax = clipped
    if xmax <= xmin or ymax <= ymin:
      warnings.append(('box_dropped', '%s: zero-area or inverted box %s '
                       'dropped' % (where, raw)))
      continue
    kept.append((obj, voc_common.normalize_box(xmin, ymin, xmax, ymax,
                                               height, width)))
  return kept, warnings


def format_summary(metadata):
  """Human-readable summary of a conversion's metadata dict."""
  lines = ['Wrote %d images, %d objects, in %d file(s) %s_*.tfrecord' % (
      metadata['num_samples'], metadata['num_objects'],
      len(metadata['files']), metadata['name'])]
  width = max(len(name) for name in metadata['labels'])
  lines.append('  %-*s %8s %8s' % (width, 'class', 'objects', 'images'))
  for name in metadata['labels'][1:]:
    lines.append('  %-*s %8d %8d' % (width, name,
                                     metadata['objects_per_class'][name],
                                     metadata['images_per_class'][name]))
  lines.append('Re-encoded images: %d' % metadata['num_reencoded'])
  if metadata.get('num_downscaled'):
    lines.append('Downscaled images: %d' % metadata['num_downscaled'])
  lines.append('Warnings: %d' % metadata['num_warnings'])
  for kind, count in metadata['warnings'].items():
    lines.append('  %-20s %6d  %s' % (kind, count, WARNING_KINDS[kind]))
  unknown = metadata.get('unknown_classes') or {}
  if unknown:
    lines.append('Skipped unknown classes (objects): %s' % ', '.join(
        '%s: %d' % (name, unknown[name]) for name in sorted(unknown)))
  return '\n'.join(lines)
