"""The write step of a conversion: records, shards, metadata, the swap.

`write_dataset(plan, output_dir, output_name, ...)` takes the plan of
`conversion.make_plan`, reads and encodes the images in threads, writes the
shards, `<output_name>.json` (schema in `dataset_utils`) and `labels.txt`
into a hidden staging folder inside `output_dir`, and swaps the result in
only when it is complete, so a failed run never removes the previous dataset
of the same name. A lock on the output name keeps two runs apart.
"""
import collections
import concurrent.futures
import contextlib
import os
import re
import shutil
import sys
import tempfile

from absl import flags
from absl import logging
import tensorflow as tf
import tqdm

from datasets import conversion
from datasets import dataset_utils
from datasets import image_files
from datasets import voc_common
from utils.common import paths
from utils.common import run_lock

# Staging folders of an unfinished run: `.<output_name>.incomplete-XXXX`
# (removed by the next run); the previous files during the swap:
# `.<output_name>.previous-XXXX` (never removed automatically).
_STAGING_INFIX = '.incomplete-'
_BACKUP_INFIX = '.previous-'


# What a worker produced for one image: a serialized example or None
# (skipped), the (kind, message) warnings, and bookkeeping for the summary.
_Result = collections.namedtuple(
    '_Result', ['serialized', 'warnings', 'label_texts', 'difficult',
                'reencoded', 'downscaled'])



def _convert_one(image, class_ids, keep_empty, max_image_side):
  """Builds the record of one image (runs in a worker thread)."""
  if not os.path.isfile(image.image_path):
    raise conversion.SkippableError('missing_image', '%s: image %s not found' %
                         (image.source, image.image_path))
  try:
    stored = image_files.read_for_record(image.image_path, max_image_side)
  except image_files.ImageFileError as error:
    raise conversion.SkippableError('corrupt_image', str(error)) from None
  # Boxes refer to the file's pixels; normalised, they fit the stored ones.
  height, width = stored.source_shape[:2]
  warnings = []
  if image.size is not None and image.size[:2] != (height, width):
    warnings.append(('size_mismatch', '%s: annotated size %dx%d, image %dx%d '
                     '(image used)' % (image.source, image.size[1],
                                       image.size[0], width, height)))
  kept, box_warnings = conversion.clip_and_normalize_boxes(image, height, width)
  warnings += box_warnings
  if not kept:
    warnings.append(('empty_image', '%s: no boxes left, image %s' % (
        image.source, 'kept' if keep_empty else 'skipped')))
    if not keep_empty:
      return _Result(None, warnings, [], 0, False, False)
  objects = [obj for obj, _ in kept]
  example = dataset_utils.make_example(
      stored.encoded, stored.format, stored.shape,
      filename=os.path.basename(image.image_path),
      boxes=[box for _, box in kept],
      labels=[class_ids[obj.name] for obj in objects],
      label_texts=[obj.name for obj in objects],
      difficult=[obj.difficult for obj in objects],
      truncated=[obj.truncated for obj in objects])
  return _Result(example.SerializeToString(), warnings,
                 [obj.name for obj in objects],
                 sum(obj.difficult for obj in objects), stored.reencoded,
                 stored.downscaled)


def _check_labels_file(output_dir, labels_to_names):
  """Refuses an existing labels.txt that lists different classes."""
  path = os.path.join(output_dir, dataset_utils.LABELS_FILENAME)
  if os.path.exists(path):
    existing = dataset_utils.read_label_file(path)
    if existing != labels_to_names:
      raise conversion.ConversionError(
          '%s already lists other classes (%s); convert into another '
          '--output_dir' % (path, ', '.join(list(existing.values())[1:])))


class _ShardWriter(object):
  """Writes records into `<name>_000.tfrecord`, ... of `per_file` records."""

  def __init__(self, output_dir, name, per_file):
    self._output_dir, self._name, self._per_file = output_dir, name, per_file
    self._writer = None
    self.files = []
    self.num_written = 0

  def write(self, serialized):
    if self.num_written == len(self.files) * self._per_file:
      self.close()
      self.files.append('%s_%03d.tfrecord' % (self._name, len(self.files)))
      self._writer = tf.io.TFRecordWriter(
          os.path.join(self._output_dir, self.files[-1]))
    self._writer.write(serialized)
    self.num_written += 1

  def close(self):
    if self._writer is not None:
      self._writer.close()
      self._writer = None


def _old_output(output_dir, output_name):
  """Names of the shards and metadata of an earlier run with this name."""
  shard = re.compile(re.escape(output_name) + r'_\d{3,}\.tfrecord$')
  return [name for name in sorted(os.listdir(output_dir))
          if shard.match(name) or name == output_name + '.json']


def _remove_stale_staging(output_dir, output_name):
  """Deletes staging folders left by killed runs of the same name."""
  prefix = '.' + output_name + _STAGING_INFIX
  for name in os.listdir(output_dir):
    if name.startswith(prefix):
      logging.warning('removing %s, left by an unfinished conversion',
                      os.path.join(output_dir, name))
      shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)


def _swap_in(staging_dir, output_dir, output_name, new_names, kept_note):
  """Replaces the old output of `output_name` with the staged files.

  The old files (and labels.txt) are first moved aside into a
  `.<output_name>.previous-XXXX` folder, the new ones moved in (metadata
  last), then the old ones deleted.  If a move fails, the old files are put
  back; if even that fails, the error names the folder that holds them.

  Raises:
    conversion.ConversionError: a move failed.
  """
  old_names = _old_output(output_dir, output_name)
  if os.path.exists(os.path.join(output_dir, dataset_utils.LABELS_FILENAME)):
    old_names.append(dataset_utils.LABELS_FILENAME)
  backup_dir = tempfile.mkdtemp(prefix='.' + output_name + _BACKUP_INFIX,
                                dir=output_dir)
  moved_in = []
  try:
    for name in old_names:
      os.replace(os.path.join(output_dir, name),
                 os.path.join(backup_dir, name))
    for name in new_names:
      os.replace(os.path.join(staging_dir, name),
                 os.path.join(output_dir, name))
      moved_in.append(name)
  except OSError as error:
    try:
      for name in moved_in:
        os.remove(os.path.join(output_dir, name))
      for name in os.listdir(backup_dir):
        os.replace(os.path.join(backup_dir, name),
                   os.path.join(output_dir, name))
      os.rmdir(backup_dir)
    except OSError as restore_error:
      raise conversion.ConversionError(
          'writing %s in %s failed (%s), and putting the previous files back '
          'failed too (%s): they are in %s' % (
              output_name, output_dir, error, restore_error,
              backup_dir)) from None
    raise conversion.ConversionError('writing %s in %s failed: %s (%s)' % (
        output_name, output_dir, error, kept_note)) from None
  shutil.rmtree(backup_dir, ignore_errors=True)


def _write_records(plan, staging_dir, output_name, samples_per_file,
                   num_threads, skip_bad, keep_empty, max_image_side,
                   progress):
  """Encodes the plan's images into shards; returns (shards, tallies)."""
  labels_to_names = voc_common.labels_to_names(plan.class_names)
  class_ids = {name: label for label, name in labels_to_names.items()}
  shards = _ShardWriter(staging_dir, output_name, samples_per_file)
  tallies = {'warnings': [], 'objects': collections.Counter(),
             'images': collections.Counter(), 'difficult': 0, 'reencoded': 0,
             'downscaled': 0}

  def convert_or_skip(image):
    try:
      return _convert_one(image, class_ids, keep_empty, max_image_side)
    except conversion.SkippableError as error:
      if not skip_bad:
        raise
      return _Result(None, [(error.kind, str(error))], [], 0, False, False)

  bar = tqdm.tqdm(total=len(plan.images), unit='img', disable=not progress,
                  desc=output_name, file=sys.stderr)
  try:
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
      # Chunks bound the encoded images held in memory at once.
      chunk = 32 * num_threads
      for start in range(0, len(plan.images), chunk):
        for result in pool.map(convert_or_skip,
                               plan.images[start:start + chunk]):
          bar.update()
          tallies['warnings'] += result.warnings
          if result.serialized is None:
            continue
          shards.write(result.serialized)
          tallies['images'].update(set(result.label_texts))
          tallies['objects'].update(result.label_texts)
          tallies['difficult'] += result.difficult
          tallies['reencoded'] += result.reencoded
          tallies['downscaled'] += result.downscaled
  finally:
    bar.close()
    shards.close()
  return shards, tallies


def _metadata(plan, output_name, shards, tallies, source):
  """The metadata dict (schema in `dataset_utils`)."""
  labels_to_names = voc_common.labels_to_names(plan.class_names)
  warnings = plan.warnings + tallies['warnings']
  warning_counts = collections.Counter(kind for kind, _ in warnings)
  objects, images = tallies['objects'], tallies['images']
  metadata = dict(source)
  metadata.update({
      'format_version': dataset_utils.METADATA_VERSION,
      'name': output_name,
      'files': shards.files,
      'num_samples': shards.num_written,
      'num_objects': sum(objects.values()),
      'num_classes': len(labels_to_names),
      'labels': [labels_to_names[label] for label in sorted(labels_to_names)],
      'objects_per_class': {name: objects[name] for name in plan.class_names},
      'images_per_class': {name: images[name] for name in plan.class_names},
      'difficult_objects': tallies['difficult'],
      'num_reencoded': tallies['reencoded'],
      'num_downscaled': tallies['downscaled'],
      'unknown_classes': plan.unknown_classes,
      'num_warnings': len(warnings),
      'warnings': {kind: warning_counts[kind] for kind in conversion.WARNING_KINDS
                   if warning_counts[kind]},
  })
  return metadata, warnings


def _source_bytes(plan):
  """The size of the plan's image files: about what its records need."""
  total = 0
  for image in plan.images:
    try:
      total += os.path.getsize(image.image_path)
    except OSError:
      pass
  return total


def _write_error(error, plan, output_dir, output_name, kept_note):
  """The conversion.ConversionError of a failed write (partial files removed)."""
  if paths.is_disk_full(error):
    return conversion.ConversionError(
        'No space left on device in %s while writing %s: it needs about %s, '
        '%s free. Free some space there or choose another --output_dir (%s; '
        'partial files removed).' % (
            output_dir, output_name, paths.megabytes(_source_bytes(plan)),
            paths.megabytes(shutil.disk_usage(output_dir).free), kept_note))
  return conversion.ConversionError('writing %s in %s failed: %s (%s)' % (
      output_name, output_dir, getattr(error, 'message', None) or error,
      kept_note))


def _prepare_output_dir(output_dir):
  try:
    os.makedirs(output_dir, exist_ok=True)
  except OSError as error:
    raise conversion.ConversionError('cannot create output_dir %s (%s)' %
                          (output_dir, error.strerror or error)) from None


def lock_path(output_dir, output_name):
  """The lock file a conversion to `output_name` holds."""
  return os.path.join(output_dir, '.%s.lock' % output_name)


@contextlib.contextmanager
def _output_lock(output_dir, output_name):
  """Holds `lock_path` for the block; conversion.ConversionError if another run does."""
  try:
    with run_lock.hold(lock_path(output_dir, output_name),
                       '%s in %s' % (output_name, output_dir)):
      yield
  except run_lock.LockHeld as error:
    raise conversion.ConversionError('%s; nothing was written' % error) from None


def write_dataset(plan, output_dir, output_name, source, samples_per_file=200,
                  num_threads=2, skip_bad=False, keep_empty=False,
                  allow_empty=False, max_image_side=None, progress=False):
  """The write step: encodes the plan's images and swaps the dataset in.

  Args:
    plan: a `ConversionPlan`.
    output_dir: where shards, metadata and labels.txt go (created).
    output_name: shard prefix.
    source: dict of metadata keys saying where the data came from (e.g.
      'split', 'source_dir').
    samples_per_file: records per shard.
    num_threads: threads reading and encoding images.
    skip_bad: skip (and count) missing or corrupt images instead of raising.
    keep_empty: keep images left without boxes (counted either way).
    allow_empty: write a dataset of 0 images instead of raising.
    max_image_side: store images whose longer side is larger downscaled to
      it; None keeps every size.
    progress: show a progress bar on stderr.

  Returns:
    The metadata dict written to `<output_dir>/<output_name>.json`.

  Raises:
    conversion.ConversionError: bad input; the message names the file and says that
      an earlier dataset of the same name was left unchanged.
  """
  if samples_per_file < 1 or num_threads < 1:
    raise conversion.ConversionError('samples_per_file and num_threads must be >= 1')
  if not re.match(r'^[\w.-]+$', output_name or ''):
    raise conversion.ConversionError('output_name %r: use letters, digits, _ . -' %
                          output_name)
  labels_to_names = voc_common.labels_to_names(plan.class_names)
  _prepare_output_dir(output_dir)
  with _output_lock(output_dir, output_name):
    _check_labels_file(output_dir, labels_to_names)
    _remove_stale_staging(output_dir, output_name)
    if os.path.exists(dataset_utils.metadata_path(output_dir, output_name)):
      kept_note = ('the previous dataset %s in %s was left unchanged' %
                   (output_name, output_dir))
    else:
      kept_note = 'nothing was written'
    staging_dir = tempfile.mkdtemp(prefix='.' + output_name + _STAGING_INFIX,
                                   dir=output_dir)
    try:
      if not plan.images and not allow_empty:
        skipped = collections.Counter(kind for kind, _ in plan.warnings)
        raise conversion.ConversionError('no images to convert (skipped: %s); pass '
                              '--allow_empty to write an empty dataset' % (
                                  ', '.join('%s: %d' % item for item in
                                            sorted(skipped.items()))
                                  or 'none'))
      shards, tallies = _write_records(
          plan, staging_dir, output_name, samples_per_file, num_threads,
          skip_bad, keep_empty, max_image_side, progress)
      metadata, warnings = _metadata(plan, output_name, shards, tallies, source)
      for kind, message in warnings:
        logging.warning('%s: %s', kind, message)
      if not shards.num_written and not allow_empty:
        raise conversion.ConversionError(
            'all %d images were skipped (%s); pass --allow_empty to write an '
            'empty dataset' % (len(plan.images), ', '.join(
                '%s: %d' % item for item in metadata['warnings'].items())))
      dataset_utils.write_metadata(metadata, staging_dir)
      dataset_utils.write_label_file(labels_to_names, staging_dir)
    except conversion.ConversionError as error:
      raise conversion.ConversionError('%s (%s)' % (error, kept_note)) from None
    except (OSError, tf.errors.OpError) as error:
      shutil.rmtree(staging_dir, ignore_errors=True)
      raise _write_error(error, plan, output_dir, output_name,
                         kept_note) from None
    else:
      _swap_in(staging_dir, output_dir, output_name,
               shards.files + [dataset_utils.LABELS_FILENAME,
                               output_name + '.json'], kept_note)
    finally:
      shutil.rmtree(staging_dir, ignore_errors=True)
    return metadata


def define_write_flags(flag_values=flags.FLAGS):
  """Defines the flags of the write step, shared by the converter scripts."""
  flags.DEFINE_string('output_dir', 'tfrecords/', 'Where shards, '
                      '<output_name>.json and labels.txt are written.',
                      flag_values=flag_values)
  flags.DEFINE_string('output_name', None, 'Shard prefix, e.g. '
                      'commodity_train. The factory finds split S by a name '
                      'ending in _S.', flag_values=flag_values)
  flags.DEFINE_integer('samples_per_file', 200, 'Records per shard.',
                       lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer('num_threads', 2, 'Threads reading and encoding '
                       'images.', lower_bound=1, flag_values=flag_values)
  flags.DEFINE_boolean('keep_empty', False, 'Keep images that have no valid '
                       'box (they are skipped and counted by default).',
                       flag_values=flag_values)
  flags.DEFINE_boolean('allow_empty', False, 'Write a dataset even when no '
                       'image is left (by default that is an error).',
                       flag_values=flag_values)
  flags.DEFINE_integer('max_image_side', None, 'Store images whose longer '
                       'side is larger downscaled to this many pixels (boxes '
                       'stay exact: they are normalised). Default: original '
                       'size.', lower_bound=1, flag_values=flag_values)
  flags.DEFINE_boolean('progress', True, 'Show a progress bar (only when '
                       'stdout is a terminal; --noprogress: never).',
                       flag_values=flag_values)


def read_write_flags(flag_values=flags.FLAGS):
  """The `define_write_flags` values as keyword arguments of `convert`."""
  return {
      'output_dir': flag_values.output_dir,
      'output_name': flag_values.output_name,
      'samples_per_file': flag_values.samples_per_file,
      'num_threads': flag_values.num_threads,
      'keep_empty': flag_values.keep_empty,
      'allow_empty': flag_values.allow_empty,
      'max_image_side': flag_values.max_image_side,
      'progress': flag_values.progress and sys.stdout.isatty(),
  }
