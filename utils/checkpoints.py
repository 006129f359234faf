"""Finding, checking, writing and restoring checkpoints, with clear errors.

Used by training (fine-tuning from an SSD or ImageNet VGG16 checkpoint,
resuming from --train_dir, saving), evaluation, the demo and export (all of
which accept a checkpoint file prefix or a directory meaning its latest
checkpoint).

What it guards against:
  * the default pretrained checkpoint picked by string order
    (`find_checkpoint`: by step number; two different checkpoints are an
    error listing them);
  * a TF-slim ImageNet VGG16 checkpoint restoring nothing
    (`pretrained_settings` finds its `vgg_16` scope and the SSD-only scopes
    to leave out);
  * a copied or moved run directory (`make_saver` writes relative paths in
    the `checkpoint` index; `resume_checkpoint` also reads older absolute
    ones from the run directory itself);
  * a corrupt or truncated checkpoint (`unreadable_reason`; on resume the
    newest readable one is used, with a warning);
  * a resumed checkpoint of another model (another class count): the same
    variable-by-variable shape check as for --checkpoint_path;
  * a full disk while saving (`CheckpointSaver`: one line, partial files
    removed), and partial files of killed runs (`remove_partial_files`).
"""
import errno
import glob
import os
import re
import shutil

from absl import logging
import tensorflow as tf
from utils import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from nets import ssd_vgg_300
from utils import paths

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


def _newest_first(prefixes):
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
  for prefix in _newest_first(list_checkpoints(directory)):
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


def _files_of(prefix):
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
    return '%s is corrupt or truncated (%s)' % (_files_of(prefix)[0],
                                                _first_line(error))
  try:
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except Exception as error:  # pylint: disable=broad-except
    # A truncated data file surfaces as IndexError('Read less bytes...').
    data_files = _files_of(prefix)[1:] or [prefix]
    return '%s is corrupt or truncated (%s, reading %s)' % (
        ' or '.join(data_files), _first_line(error), name)
  return None


def check_readable(prefix):
  """Raises CheckpointError naming the file if the checkpoint is unreadable."""
  reason = unreadable_reason(prefix)
  if reason:
    raise CheckpointError('Checkpoint %s cannot be used: %s. Use another '
                          'checkpoint.' % (prefix, reason))


def saved_global_step(directory):
  """The global step of the newest checkpoint of `directory` that reads
  back (the one a resume starts from), or None when none does."""
  for prefix in _newest_first(list_checkpoints(directory)):
    if unreadable_reason(prefix) is not None:
      continue
    reader = tf.train.load_checkpoint(prefix)
    if reader.has_tensor('global_step'):
      return int(reader.get_tensor('global_step'))
    return checkpoint_step(prefix)
  return None


def _first_line(error):
  text = getattr(error, 'message', None) or str(error) or type(error).__name__
  return text.strip().split('\n')[0]


# --------------------------------------------------------------------------
# Fine-tuning from a pretrained checkpoint.


def is_vgg16_checkpoint(prefix):
  """Whether the checkpoint is TF-slim's ImageNet VGG16 ('vgg_16/...' names)."""
  names = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  scope = ssd_vgg_300.VGG_16_SCOPE
  return any(in_scope(name, scope) for name in names) and not any(
      name.split('/')[0] not in (scope, 'global_step') for name in names)


def pretrained_settings(checkpoint_path, ssd_net, model_scope,
                        checkpoint_model_scope=None, exclude_scopes=None):
  """The scope and exclusions with which to restore `checkpoint_path`.

  For TF-slim's VGG16 checkpoint, when not given: checkpoint_model_scope
  'vgg_16' and the SSD-only scopes (conv6, conv7, the extra blocks, the
  heads, from `ssd_net.non_vgg_scopes`; default: SSD300's) excluded, which
  is what restores its 26 convolution variables.  Each choice made is
  logged.  Other checkpoints keep the given values.

  Returns:
    (checkpoint_model_scope, exclude_scopes) to pass to `get_init_fn`.
  """
  if not is_vgg16_checkpoint(checkpoint_path):
    return checkpoint_model_scope, exclude_scopes
  if not checkpoint_model_scope:
    checkpoint_model_scope = ssd_vgg_300.VGG_16_SCOPE
    logging.info('%s is an ImageNet VGG16 checkpoint: restoring its '
                 '%s/conv* variables into %s (--checkpoint_model_scope=%s).',
                 checkpoint_path, checkpoint_model_scope, model_scope,
                 checkpoint_model_scope)
  if not exclude_scopes:
    ssd_net = ssd_net or ssd_vgg_300.SSDNet()
    exclude_scopes = ','.join(ssd_net.non_vgg_scopes(model_scope))
    logging.info('The SSD-only layers start from scratch '
                 '(--checkpoint_exclude_scopes=%s).', exclude_scopes)
  return checkpoint_model_scope, exclude_scopes


def checkpoint_name(variable_name, model_scope, checkpoint_model_scope):
  """The name a model variable has in a checkpoint whose scope differs.

  'ssd_300_vgg/conv1/conv1_1/weights' with checkpoint scope 'vgg_16' becomes
  'vgg_16/conv1/conv1_1/weights'.
  """
  if checkpoint_model_scope and in_scope(variable_name,
                                                   model_scope):
    return checkpoint_model_scope + variable_name[len(model_scope):]
  return variable_name


def _shape_mismatches(variables, saved_shapes, saved_name_fn):
  """(mismatched descriptions, missing names, {saved name: variable})."""
  mismatched, missing, matched = [], [], {}
  for variable in variables:
    name = variable.op.name
    saved_name = saved_name_fn(name)
    if saved_name not in saved_shapes:
      missing.append(name)
    elif list(saved_shapes[saved_name]) != variable.shape.as_list():
      mismatched.append('%s: model %s, checkpoint %s' % (
          name, variable.shape.as_list(), saved_shapes[saved_name]))
    else:
      matched[saved_name] = variable
  return mismatched, missing, matched


def _mismatched_scopes(mismatched):
  return ','.join(_scopes_of(m.split(':')[0] for m in mismatched))


def variables_to_restore(model_scope, checkpoint_path,
                         checkpoint_model_scope=None, exclude_scopes=None,
                         ignore_missing_vars=False):
  """Maps checkpoint names to the model variables they initialise.

  Args:
    model_scope: the model's variable scope, e.g. 'ssd_300_vgg'.
    checkpoint_path: checkpoint prefix.
    checkpoint_model_scope: the scope the checkpoint uses instead of
      `model_scope` (e.g. 'vgg_16'), or None.
    exclude_scopes: comma-separated scopes of variables not to restore;
      whole components match ('block1' does not exclude 'block10').
    ignore_missing_vars: leave variables absent from the checkpoint at
      their initial values instead of failing.

  Returns:
    (restore_map, left_out): {checkpoint name: variable} and the names of the
    model variables that keep their initial values.

  Raises:
    CheckpointError: for variables missing from the checkpoint (without
      ignore_missing_vars) or whose shapes differ, naming them and the flag
      that fixes it.
  """
  excluded = split_scopes(exclude_scopes)
  shapes = tf.train.load_checkpoint(checkpoint_path).get_variable_to_shape_map()
  left_out = []
  kept = []
  for variable in slim.get_model_variables():
    if any(in_scope(variable.op.name, scope) for scope in excluded):
      left_out.append(variable.op.name)
    else:
      kept.append(variable)
  mismatched, missing, restore_map = _shape_mismatches(
      kept, shapes,
      lambda name: checkpoint_name(name, model_scope, checkpoint_model_scope))
  if mismatched:
    raise CheckpointError(
        'Checkpoint %s does not fit the model; shapes differ for:\n  %s\n'
        'This happens when the number of classes differs (e.g. a 21-class '
        'checkpoint into a model with another --num_classes). Exclude those '
        'layers so they start from scratch, e.g. '
        '--checkpoint_exclude_scopes=%s' % (
            checkpoint_path, '\n  '.join(mismatched),
            _mismatched_scopes(mismatched)))
  if missing and not ignore_missing_vars:
    raise CheckpointError(
        'Checkpoint %s lacks %d model variables, e.g.:\n  %s\nExclude their '
        'scopes with --checkpoint_exclude_scopes=%s, set '
        '--checkpoint_model_scope if the checkpoint uses another scope (vgg_16 '
        'for the ImageNet VGG16 checkpoint), or pass --ignore_missing_vars.' % (
            checkpoint_path, len(missing), '\n  '.join(missing[:10]),
            ','.join(_scopes_of(missing))))
  return restore_map, left_out + missing


def _scopes_of(names):
  """Distinct 'model/layer' scopes of variable names, in order."""
  found = []
  for name in names:
    scope = '/'.join(name.split('/')[:2])
    if scope not in found:
      found.append(scope)
  return found


def get_init_fn(model_scope, checkpoint_path, checkpoint_model_scope=None,
                exclude_scopes=None, ignore_missing_vars=False):
  """The init_fn for slim.learning.train that loads a pretrained checkpoint.

  Validates the checkpoint now, before the session starts: every file reads
  back, and the variables fit the model.  Logs how many variables it
  restores and which keep their initial values.

  Returns:
    A function(session) doing the restore.

  Raises:
    CheckpointError: naming the missing, corrupt or mismatched file or
      variables.
  """
  checkpoint_path = resolve_checkpoint_path(checkpoint_path)
  check_readable(checkpoint_path)
  restore_map, left_out = variables_to_restore(
      model_scope, checkpoint_path, checkpoint_model_scope, exclude_scopes,
      ignore_missing_vars)
  logging.info('Initialising %d variables from %s.', len(restore_map),
               checkpoint_path)
  if left_out:
    logging.info('%d variables keep their initial values:\n  %s',
                 len(left_out), '\n  '.join(left_out))
  saver = _v1.train.Saver(restore_map, reshape=False)

  def restore(session):
    saver.restore(session, checkpoint_path)
  return restore


# --------------------------------------------------------------------------
# Resuming from the training directory.


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


def _local_copy(path, train_dir):
  """`path` as a file of `train_dir` (an index written elsewhere holds other
  absolute paths: a copied or moved run directory)."""
  return os.path.join(train_dir, os.path.basename(path))


def _set_aside(prefix):
  """Renames a corrupt checkpoint's files to '<file>.corrupt'."""
  renamed = []
  for path in _files_of(prefix):
    if os.path.exists(path):
      os.replace(path, path + CORRUPT_SUFFIX)
      renamed.append(path + CORRUPT_SUFFIX)
  return renamed


def resume_checkpoint(train_dir, variables=None):
  """The checkpoint of `train_dir` to resume from, checked; None if none.

  At the start of the chief, before the training loop restores:
    1. removes partial files of killed runs (`remove_partial_files`);
    2. takes the checkpoints of `train_dir` itself, newest step first, even
       when its `checkpoint` index holds absolute paths of another directory
       (a copied or moved run): the copy in `train_dir` is used;
    3. skips corrupt or truncated ones with a warning naming the file (their
       files are renamed '*.corrupt'), falling back to the newest readable;
       never silently to scratch: if none reads, an error;
    4. checks every variable against the checkpoint, as for a pretrained
       checkpoint: another class count (or optimizer, or model) is an error
       naming the variables and the fix;
    5. rewrites the index with relative paths if it did not point at the
       chosen checkpoint, so that the training loop restores that one.

  Args:
    train_dir: the training directory.
    variables: the variables the training loop restores (default: all
      global variables of the default graph).

  Returns:
    The checkpoint prefix, or None when `train_dir` holds no checkpoint.

  Raises:
    CheckpointError: when no checkpoint reads back, or the newest readable
      one does not fit the model.
  """
  for path in remove_partial_files(train_dir):
    logging.warning('Removed %s, left by an interrupted checkpoint save.',
                    path)
  state = tf.train.get_checkpoint_state(train_dir)
  indexed = [] if state is None else list(
      state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
  moved = [path for path in indexed
           if os.path.dirname(os.path.abspath(path)) !=
           os.path.abspath(train_dir)]
  if moved:
    logging.warning('The checkpoint index of %s names files of another '
                    'directory (%s): it was copied or moved; resuming from '
                    'its own files.', train_dir, os.path.dirname(moved[-1]))
  candidates = set(list_checkpoints(train_dir))
  candidates.update(p for p in (_local_copy(path, train_dir)
                                for path in indexed)
                    if tf.io.gfile.exists(p + '.index'))
  if not candidates:
    return None
  corrupt = []
  chosen = None
  for prefix in _newest_first(candidates):
    reason = unreadable_reason(prefix)
    if reason is None:
      chosen = prefix
      break
    corrupt.append(reason)
    renamed = _set_aside(prefix)
    logging.warning('Checkpoint %s is unusable: %s. Set aside as %s.',
                    prefix, reason, ', '.join(renamed))
  if chosen is None:
    raise CheckpointError(
        'No checkpoint in --train_dir %s reads back:\n  %s\nTheir files were '
        'renamed *%s. Resume from a copy of a good checkpoint, or use a new '
        '--train_dir to start afresh.' % (train_dir, '\n  '.join(corrupt),
                                          CORRUPT_SUFFIX))
  if corrupt:
    logging.warning('Resuming from %s, the newest readable checkpoint, '
                    'instead.', chosen)
  check_resume_fits(chosen, train_dir, variables)
  kept = [p for p in (_local_copy(path, train_dir) for path in indexed)
          if tf.io.gfile.exists(p + '.index') and
          (checkpoint_step(p) or 0) <= (checkpoint_step(chosen) or 0)]
  if chosen not in kept:
    kept.append(chosen)
  if (state is None or moved or corrupt or
      os.path.abspath(state.model_checkpoint_path) != os.path.abspath(chosen)):
    kept = [p for p in kept if p != chosen] + [chosen]
    _v1.train.update_checkpoint_state(train_dir, os.path.basename(chosen), [
        os.path.basename(p) for p in kept])
  return chosen


def check_resume_fits(prefix, train_dir, variables=None):
  """Raises CheckpointError unless each variable is in `prefix`, same shape."""
  if variables is None:
    variables = _v1.global_variables()
  shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  mismatched, missing, _ = _shape_mismatches(variables, shapes,
                                             lambda name: name)
  if mismatched:
    raise CheckpointError(
        'Cannot resume from %s: it was written by another model (most often '
        'another number of classes: --num_classes or the dataset); shapes '
        'differ for:\n  %s\nTrain into a new --train_dir. To start that run '
        'from this checkpoint, pass --checkpoint_path=%s '
        '--checkpoint_exclude_scopes=%s' % (
            prefix, '\n  '.join(mismatched), prefix,
            _mismatched_scopes(mismatched)))
  if missing:
    raise CheckpointError(
        'Cannot resume from %s: it lacks %d variables of this run, e.g.:\n'
        '  %s\nIt was written with another --optimizer, '
        '--moving_average_decay or model. Train into a new --train_dir (with '
        '--checkpoint_path=%s to start from its weights), or resume with the '
        'flags it was trained with (see %s).' % (
            prefix, len(missing), '\n  '.join(missing[:10]), prefix,
            os.path.join(train_dir, 'training_config.txt')))


# --------------------------------------------------------------------------
# Saving.


class CheckpointSaver(_v1.train.Saver):
  """tf.compat.v1.train.Saver with relative paths and a clear full-disk error.

  The `checkpoint` index holds paths relative to its directory, so that a
  run directory copied or moved elsewhere resumes from its own files.  When
  the disk fills up during a save, the partial files are removed and a
  CheckpointError says in one line which directory needs how much space.
  """

  def __init__(self, *args, **kwargs):
    kwargs.setdefault('save_relative_paths', True)
    kwargs.setdefault('write_version', _v1.train.SaverDef.V2)
    super().__init__(*args, **kwargs)

  def save(self, sess, save_path, *args, **kwargs):  # pylint: disable=W0221
    try:
      return super().save(sess, save_path, *args, **kwargs)
    except (tf.errors.OpError, OSError) as error:
      if not _is_disk_full(error):
        raise
      directory = os.path.dirname(os.path.abspath(save_path))
      removed = remove_partial_files(directory)
      raise CheckpointError(
          'No space left on device in %s while saving a checkpoint: it needs '
          'about %s, %s free. Free some space there or choose another '
          '--train_dir (partial files removed: %d).' % (
              directory, _megabytes(_checkpoint_bytes(sess.graph, directory)),
              _megabytes(shutil.disk_usage(directory).free), len(removed))
      ) from None


def _is_disk_full(error):
  if isinstance(error, OSError) and error.errno == errno.ENOSPC:
    return True
  return 'No space left on device' in (getattr(error, 'message', None) or
                                       str(error))


def _checkpoint_bytes(graph, directory):
  """Size of a checkpoint: the newest complete one in `directory`, or the
  variables of `graph`."""
  for prefix in _newest_first(list_checkpoints(directory)):
    files = [f for f in _files_of(prefix) if os.path.exists(f)]
    if len(files) > 1:
      return sum(os.path.getsize(f) for f in files)
  variables = graph.get_collection(_v1.GraphKeys.GLOBAL_VARIABLES)
  return sum(v.shape.num_elements() * v.dtype.base_dtype.size
             for v in variables if v.shape.is_fully_defined())


def _megabytes(num_bytes):
  return '%.1f MB' % (num_bytes / 1e6)
