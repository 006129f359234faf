r"""Converts a Pascal VOC style dataset to sharded detection TFRecords.

The VOC root holds `Annotations/<id>.xml`, `JPEGImages/<image>` and,
optionally, `ImageSets/Main/<split>.txt` lists.  The output directory gets
`<output_name>_000.tfrecord`, ... (SSD-Tensorflow / TF-slim feature keys, see
`dataset_utils.make_example`), `<output_name>.json` (metadata: counts per
class, warnings) and `labels.txt`.  The dataset factory reads those, so
training on a custom dataset needs no Python edits:

  python -m datasets.pascalvoc_to_tfrecords \
      --dataset_dir=../shared/data/freiburg_groceries_voc --split=train \
      --labels=../shared/data/freiburg_groceries_voc/classes.txt \
      --output_name=commodity_train --output_dir=tfrecords

This module reads VOC annotations into `conversion.SourceImage`s; the plan
and write steps (class checks, image encoding, shards, metadata, the swap
that never destroys an earlier dataset) are `datasets.conversion`'s, and how
images are stored is `datasets.image_files`'.  Sizes come from the image
itself, not from the XML.  Boxes follow the convention of
`datasets.voc_common`.
"""
import functools
import os
import sys

from absl import app
from absl import flags

from datasets import conversion
from datasets import dataset_writer
from datasets import image_files
from datasets import voc_common

ANNOTATIONS_DIR = 'Annotations'
IMAGES_DIR = 'JPEGImages'
SPLITS_DIR = os.path.join('ImageSets', 'Main')
# The converters' shared API, under the names this module always had.
ConversionError = conversion.ConversionError
read_class_list = conversion.read_class_list


def list_image_ids(dataset_dir, split=None):
  """Ids of the split (ImageSets/Main/<split>.txt), or of every XML file."""
  if split is None:
    annotations_dir = os.path.join(dataset_dir, ANNOTATIONS_DIR)
    if not os.path.isdir(annotations_dir):
      raise ConversionError('%s: no %s/ folder; is it a VOC root?' %
                            (dataset_dir, ANNOTATIONS_DIR))
    return sorted(name[:-len('.xml')] for name in os.listdir(annotations_dir)
                  if name.endswith('.xml'))
  split_path = os.path.join(dataset_dir, SPLITS_DIR, split + '.txt')
  if not os.path.isfile(split_path):
    splits_dir = os.path.join(dataset_dir, SPLITS_DIR)
    listed = os.listdir(splits_dir) if os.path.isdir(splits_dir) else []
    known = sorted(name[:-4] for name in listed if name.endswith('.txt'))
    raise ConversionError('split list %s not found; splits there: %s' %
                          (split_path, ', '.join(known) or 'none'))
  with open(split_path, encoding='utf-8-sig') as split_file:
    # Class-specific lists have a second column ("id  1"); keep the id.
    return [line.split()[0] for line in split_file if line.strip()]


@functools.lru_cache(maxsize=4)
def _names_by_lower_case(images_dir, unused_mtime_ns):
  """{lower-case name: name} of the files in `images_dir` (cached per
  folder version: one listing for all the images of a dataset)."""
  names = {}
  for name in sorted(os.listdir(images_dir), reverse=True):
    names[name.lower()] = name
  return names


def _same_name_other_case(images_dir, name):
  """The file in `images_dir` named `name` but for letter case, or None
  (labelling tools write `IMG_1.jpg` for `IMG_1.JPG`)."""
  try:
    listed = _names_by_lower_case(images_dir,
                                  os.stat(images_dir).st_mtime_ns)
  except OSError:
    return None
  match = listed.get(name.lower())
  return os.path.join(images_dir, match) if match else None


def find_image(dataset_dir, annotation):
  """Path of the annotation's image: its <filename>, else `<id>.<ext>`;
  letter case decides only between files that differ in it."""
  images_dir = os.path.join(dataset_dir, IMAGES_DIR)
  names = [os.path.basename(annotation.filename)] if annotation.filename else []
  names += [annotation.image_id + extension
            for extension in image_files.IMAGE_EXTENSIONS]
  for name in names:
    path = os.path.join(images_dir, name)
    if os.path.isfile(path):
      return path
  for name in names:
    path = _same_name_other_case(images_dir, name)
    if path is not None and os.path.isfile(path):
      return path
  raise conversion.SkippableError(
      'missing_image', '%s: image not found (looked for %s in %s)' %
      (annotation.xml_path, ', '.join(names), images_dir))


def _read_one(dataset_dir, image_id):
  """The `SourceImage` of one id; SkippableError when it cannot be used."""
  xml_path = os.path.join(dataset_dir, ANNOTATIONS_DIR, image_id + '.xml')
  if not os.path.isfile(xml_path):
    raise conversion.SkippableError('missing_annotation',
                                    '%s: annotation file not found' % xml_path)
  try:
    annotation = voc_common.parse_annotation(xml_path, image_id)
  except voc_common.AnnotationError as error:
    raise conversion.SkippableError('malformed_xml', str(error)) from None
  return conversion.SourceImage(
      image_id=image_id, source=xml_path,
      image_path=find_image(dataset_dir, annotation), size=annotation.size,
      objects=annotation.objects)


def read_source_images(dataset_dir, image_ids, skip_bad):
  """Parses the annotations and finds their images.

  Returns:
    (source images, warnings): `conversion.SourceImage`s in id order and
    (kind, message) pairs of the skipped ids (only with `skip_bad`).

  Raises:
    conversion.SkippableError: without `skip_bad`, the first id whose XML
      or image is missing or whose XML is malformed.
  """
  images, warnings = [], []
  for image_id in image_ids:
    try:
      images.append(_read_one(dataset_dir, image_id))
    except conversion.SkippableError as error:
      if not skip_bad:
        raise
      warnings.append((error.kind, str(error)))
  return images, warnings


def plan_conversion(dataset_dir, split=None, image_ids=None, class_names=None,
                    discover_labels=False, shuffle=False, seed=0,
                    skip_bad=False):
  """The plan step for a VOC root: what `convert` would write.

  Args: as `convert`'s.

  Returns:
    A `conversion.ConversionPlan`.
  """
  if not os.path.isdir(dataset_dir):
    raise ConversionError('dataset_dir %s is not a directory' % dataset_dir)
  if image_ids is None:
    image_ids = list_image_ids(dataset_dir, split)
  images, warnings = read_source_images(dataset_dir, image_ids, skip_bad)
  if class_names is None:
    class_names = (sorted({obj.name for image in images
                           for obj in image.objects})
                   if discover_labels else voc_common.VOC_CLASSES)
  return conversion.make_plan(images, warnings, class_names,
                              skip_bad=skip_bad, shuffle=shuffle, seed=seed)


def convert(dataset_dir, output_dir, output_name, split=None, image_ids=None,
            class_names=None, discover_labels=False, shuffle=False, seed=0,
            skip_bad=False, **write_options):
  """Converts a VOC dataset (or one split of it) to TFRecords.

  Args:
    dataset_dir: VOC root (Annotations/, JPEGImages/, ImageSets/Main/).
    output_dir: where shards, metadata and labels.txt go (created).
    output_name: shard prefix; the factory maps split S to a name ending
      in `_S` (or equal to S).
    split: ImageSets/Main list to convert; None: every annotation file.
    image_ids: explicit ids to convert instead of `split`.
    class_names: object class names (ids 1..N in this order); None: the 20
      VOC classes, or the sorted names found when `discover_labels`.
    discover_labels: take the classes from the annotations.
    shuffle: shuffle the record order (with `seed`).
    seed: shuffle seed.
    skip_bad: skip (and count) images whose annotation or image is missing,
      malformed or corrupt, or that hold an unknown class, instead of
      stopping with an error.
    **write_options: `dataset_writer.write_dataset`'s (samples_per_file,
      num_threads, keep_empty, allow_empty, max_image_side, progress).

  Returns:
    The metadata dict written to `<output_dir>/<output_name>.json`.

  Raises:
    ConversionError: bad arguments or bad input; the message names the file.
      An earlier dataset of the same name is then left unchanged.
  """
  plan = plan_conversion(dataset_dir, split, image_ids, class_names,
                         discover_labels, shuffle, seed, skip_bad)
  source = {'split': split, 'source_dir': os.path.abspath(dataset_dir)}
  return dataset_writer.write_dataset(plan, output_dir, output_name, source,
                                      skip_bad=skip_bad, **write_options)


FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a program)."""
  flags.DEFINE_string('dataset_dir', None, 'VOC root directory (Annotations/, '
                      'JPEGImages/, ImageSets/Main/).')
  flags.DEFINE_string('split', None, 'Name of an ImageSets/Main/<split>.txt '
                      'list to convert; default: every annotation file.')
  flags.DEFINE_string('labels', None, 'Class-list file, one name per line (ids '
                      '1..N in order). Default: the 20 VOC classes, or the '
                      'names found with --discover_labels.')
  flags.DEFINE_boolean('discover_labels', False, 'Use the sorted set of class '
                       'names found in the annotations.')
  flags.DEFINE_boolean('shuffle', False, 'Shuffle the record order.')
  flags.DEFINE_integer('seed', 0, 'Seed for --shuffle.')
  flags.DEFINE_boolean('skip_bad', False, 'Skip (and count) images whose XML '
                       'or image is missing, malformed or corrupt, or that '
                       'hold a class not in the label list, instead of '
                       'stopping.')
  dataset_writer.define_write_flags()
  flags.mark_flags_as_required(['dataset_dir', 'output_name'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  if FLAGS.labels and FLAGS.discover_labels:
    raise app.UsageError('give --labels or --discover_labels, not both')
  try:
    metadata = convert(
        FLAGS.dataset_dir, split=FLAGS.split,
        class_names=read_class_list(FLAGS.labels) if FLAGS.labels else None,
        discover_labels=FLAGS.discover_labels, shuffle=FLAGS.shuffle,
        seed=FLAGS.seed, skip_bad=FLAGS.skip_bad,
        **dataset_writer.read_write_flags(FLAGS))
  except ConversionError as error:
    sys.exit('error: %s' % error)
  print(conversion.format_summary(metadata))


if __name__ == '__main__':
  define_flags()
  app.run(main)
