"""Naming, finding and reading checkpoints, with clear errors.

A checkpoint is given as a file prefix or as a directory meaning its newest
checkpoint (`resolve_checkpoint_path`); `find_checkpoint` orders a folder's
checkpoints by step number (two different checkpoints of one step are an
error listing them); `unreadable_reason` and `open_checkpoint` turn a
corrupt, truncated or foreign file into one line; `remove_partial_files`
clears what killed runs left. Fine-tuning is `warm_start.py`, resuming
`resume.py`, saving `checkpoint_saver.py`.
"""
import glob
import os
import re
import shutil

import tensorflow as tf

from nets import nets_factory
from utils.common import paths

_v1 = tf.compat.v1

# Kept for the scripts that take their default paths from here.
FINE_TUNING_DIR = paths.FINE_TUNING_DIR
PRETRAINED_DIR = paths.PRETRAINED_DIR

# Files a user may point at instead of the checkpoint prefix.
_CHECKPOINT_FILE_SUFFIX = re.compile(r'\.(index|meta|data-\d{5}-of-\d{5})$')
# 'model.ckpt-1000' -> ('model.ckpt', '1000').
_STEP_SUFFIX = re.compile(r'^(.*)-(\d+)$')
# What a killed or failed save leaves behind: TensorFlow writes each file of
# a checkpoint as '<file>.tempstate<random>' and renames it when complete;
# the 'checkpoint' index goes through 'checkpoint.tmp<uuid>'; sharded saves
# write into '<prefix>_temp/' (or '_temp_<uuid>/').
_PARTIAL_FILE = re.compile(r'(\.tempstate\d*$)|(^checkpoint\.tmp[0-9a-f]*$)')
_PARTIAL_DIR = re.compile(r'_temp(_[0-9a-f]{32})?$')
# Suffix given to the files of a checkpoint found corrupt on resume (kept for
# inspection, out of the way of the next resume).
CORRUPT_SUFFIX = '.corrupt'


class CheckpointError(ValueError):
  """A checkpoint is missing, unreadable or does not fit; says how to fix it."""


def split_scopes(scopes):
  """'a, b/c,' -> ['a', 'b/c']: a comma-separated flag value as a list."""
  return [scope.strip().rstrip('/') for scope in (scopes or '').split(',')
          if scope.strip()]


def in_scope(name, scope):
  """Whether `name` lies in `scope`, matching whole components.

  'ssd_300_vgg/block1' contains 'ssd_300_vgg/block1/conv1x1/weights' but not
  'ssd_300_vgg/block10/...' (a plain prefix test would say it does).
  """
  return name == scope or name.startswith(scope + '/')


# --------------------------------------------------------------------------
# Naming and finding checkpoints.


def resolve_checkpoint_path(path):
  """The checkpoint prefix that `path` designates.

  Accepts a prefix ('model.ckpt-1000'), one of its files
  ('model.ckpt-1000.index', '....data-00000-of-00001', '.meta': the suffix
  is stripped) or a directory (its latest checkpoint).

  Raises:
    CheckpointError: if there is no such checkpoint.
  """
  if os.path.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      raise CheckpointError('No checkpoint in directory %s (it has no '
                            '"checkpoint" index file).' % path)
    return latest
  prefix = _CHECKPOINT_FILE_SUFFIX.sub('', path)
  if not tf.io.gfile.exists(prefix + '.index') and not tf.io.gfile.exists(
      prefix):
    raise CheckpointError(
        'Checkpoint %s does not exist: give the checkpoint prefix (e.g. '
        'ckpt/pre_trained/model.ckpt-1000, without .index or '
        '.data-00000-of-00001) or a directory holding checkpoints.' % path)
  return prefix


def checkpoint_step(prefix):
  """The step in a checkpoint's name ('model.ckpt-1000' -> 1000), or None."""
  match = _STEP_SUFFIX.match(os.path.basename(prefix))
  return int(match.group(2)) if match else None


def _series(prefix):
  """A checkpoint's name without its step: 'model.ckpt-1000' -> 'model.ckpt'."""
  match = _STEP_SUFFIX.match(os.path.basename(prefix))
  return match.group(1) if match else os.path.basename(prefix)


def list_checkpoints(directory):
  """The checkpoint prefixes in `directory`, whatever its index file says.

  A TensorFlow 2-format checkpoint is found by its '.index' file; a
  single-file (V1) checkpoint, such as TF-slim's 'vgg_16.ckpt', by a name
  ending in '.ckpt' or '.ckpt-<step>'.
  """
  if not tf.io.gfile.isdir(directory):
    return []
  names = tf.io.gfile.listdir(directory)
  prefixes = set(name[:-len('.index')] for name in names
                 if name.endswith('.index'))
  for name in names:
    if (re.search(r'\.ckpt(-\d+)?$', name) and name not in prefixes and
        not tf.io.gfile.isdir(os.path.join(directory, name))):
      prefixes.add(name)
  return sorted(os.path.join(directory, prefix) for prefix in prefixes)


def newest_first(prefixes):
  """Sorted by step number, newest first (names without a step last)."""
  def key(prefix):
    step = checkpoint_step(prefix)
    return (step is not None, step or 0, prefix)
  return sorted(prefixes, key=key, reverse=True)


def find_checkpoint(directory):
  """The one checkpoint in `directory` to start from, or None if it has none.

  Checkpoints of one series ('model.ckpt-999', 'model.ckpt-1000') count as
  one: the highest step number wins (string order would pick -999).

  Raises:
    CheckpointError: when the directory holds different checkpoints (e.g.
      'vgg_16.ckpt' and an SSD checkpoint), listing them.
  """
  by_series = {}
  for prefix in newest_first(list_checkpoints(directory)):
    by_series.setdefault(_series(prefix), prefix)
  if not by_series:
    return None
  if len(by_series) > 1:
    raise CheckpointError(
        '%s holds %d different checkpoints:\n  %s\nPass the one to start '
        'from with --checkpoint_path (or keep only one there).' % (
            directory, len(by_series),
            '\n  '.join(sorted(by_series.values()))))
  return next(iter(by_series.values()))


# --------------------------------------------------------------------------
# Reading checkpoints.


def files_of(prefix):
  """The files a checkpoint consists of, for messages and renames."""
  if tf.io.gfile.exists(prefix + '.index'):
    return [prefix + '.index'] + sorted(glob.glob(prefix + '.data-*'))
  return [prefix]


def unreadable_reason(prefix):
  """None if every tensor of the checkpoint reads back, else what is wrong.

  Reads each tensor (TensorFlow checks its checksum), so a truncated data
  file, flipped bytes or a damaged index are all found.  The message names
  the file at fault: the index, or the data file(s).
  """
  try:
    reader = tf.train.load_checkpoint(prefix)
  except Exception as error:  # pylint: disable=broad-except
    return '%s is corrupt or truncated (%s)' % (files_of(prefix)[0],
                                                first_line(error))
  try:
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except Exception as error:  # pylint: disable=broad-except
    # A truncated data file surfaces as IndexError('Read less bytes...').
    data_files = files_of(prefix)[1:] or [prefix]
    return '%s is corrupt or truncated (%s, reading %s)' % (
        ' or '.join(data_files), first_line(error), name)
  return None


def check_readable(prefix):
  """Raises CheckpointError naming the file if the checkpoint is unreadable."""
  reason = unreadable_reason(prefix)
  if reason:
    raise CheckpointError('Checkpoint %s cannot be used: %s. Use another '
                          'checkpoint.' % (prefix, reason))


def open_checkpoint(prefix):
  """The checkpoint reader of `prefix`.

  Raises:
    CheckpointError: one line naming the path when it is not a TensorFlow
      checkpoint (a text file, an image...) or cannot be read.
  """
  try:
    return tf.train.load_checkpoint(prefix)
  except (tf.errors.OpError, ValueError) as error:
    raise CheckpointError('%s is not a TensorFlow checkpoint (%s).' % (
        prefix, first_line(error))) from None


def open_pretrained(path):
  """The prefix of --checkpoint_path `path`, checked to be a checkpoint
  (cheaply: its index; `get_init_fn` later reads every tensor).

  Raises:
    CheckpointError: no such checkpoint, or not a checkpoint.
  """
  prefix = resolve_checkpoint_path(path)
  open_checkpoint(prefix)
  return prefix


def saved_global_step(directory):
  """The global step of the newest checkpoint of `directory` that reads
  back (the one a resume starts from), or None when none does."""
  for prefix in newest_first(list_checkpoints(directory)):
    if unreadable_reason(prefix) is not None:
      continue
    reader = tf.train.load_checkpoint(prefix)
    if reader.has_tensor('global_step'):
      return int(reader.get_tensor('global_step'))
    return checkpoint_step(prefix)
  return None


def first_line(error):
  text = getattr(error, 'message', None) or str(error) or type(error).__name__
  return text.strip().split('\n')[0]


def optional_variables(graph):
  """Variables a resumed checkpoint may lack (it predates them): the SSD
  parameters (`nets_factory.create_ssd_params_variable`)."""
  return graph.get_collection(nets_factory.SSD_PARAMS_COLLECTION)


# --------------------------------------------------------------------------
# Partial files.


def remove_partial_files(directory):
  """Removes what killed or failed saves left in `directory`; returns them.

  Only TensorFlow's temporary names are touched ('.tempstate<n>' files,
  'checkpoint.tmp<uuid>', '<prefix>_temp' folders): a complete checkpoint
  never has them.  Call it only where no save is in progress.
  """
  if not tf.io.gfile.isdir(directory):
    return []
  removed = []
  for name in sorted(tf.io.gfile.listdir(directory)):
    path = os.path.join(directory, name.rstrip('/'))
    if os.path.isdir(path) and _PARTIAL_DIR.search(name.rstrip('/')):
      shutil.rmtree(path, ignore_errors=True)
      removed.append(path)
    elif _PARTIAL_FILE.search(name):
      try:
        os.remove(path)
        removed.append(path)
      except OSError:
        pass
  return removed


