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
    variable-by-variable shape check as for --checkpoint_path, and the SSD
    parameters it was trained with (`check_resume_params`: saved inside
    every checkpoint, `saved_ssd_params`) against the run's; all before
    anything in the run directory changes;
  * a file that is not a checkpoint (`open_checkpoint`: one line);
  * a full disk while saving (`CheckpointSaver`: one line, partial files
    removed), and partial files of killed runs (`remove_partial_files`).
"""
import collections
import glob
import os
import re
import shutil

from absl import logging
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from nets import nets_factory
from nets import ssd_vgg_300
from utils.common import paths
from utils.common import run_directory

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
                                                first_line(error))
  try:
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except Exception as error:  # pylint: disable=broad-except
    # A truncated data file surfaces as IndexError('Read less bytes...').
    data_files = _files_of(prefix)[1:] or [prefix]
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
  for prefix in _newest_first(list_checkpoints(directory)):
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


# --------------------------------------------------------------------------
# Fine-tuning from a pretrained checkpoint.


def is_vgg16_checkpoint(prefix):
  """Whether the checkpoint is TF-slim's ImageNet VGG16 ('vgg_16/...' names)."""
  names = open_checkpoint(prefix).get_variable_to_shape_map()
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

  An SSD checkpoint whose class heads predict another number of classes
  than `ssd_net`, given no exclusions, has its class heads excluded (they
  start from scratch), logged with the flag that does it.

  Returns:
    (checkpoint_model_scope, exclude_scopes) to pass to `get_init_fn`.
  """
  if not is_vgg16_checkpoint(checkpoint_path):
    if not exclude_scopes and ssd_net is not None:
      exclude_scopes = _other_class_heads(checkpoint_path, ssd_net,
                                          model_scope, checkpoint_model_scope)
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


def _other_class_heads(checkpoint_path, ssd_net, model_scope,
                       checkpoint_model_scope):
  """The class-head scopes to exclude (comma-separated) when the checkpoint's
  class heads have other output channels than `ssd_net`'s, else None."""
  shapes = open_checkpoint(checkpoint_path).get_variable_to_shape_map()
  heads = ssd_net.class_heads(model_scope)
  saved_channels = [
      shapes.get(checkpoint_name(scope + '/weights', model_scope,
                                 checkpoint_model_scope), [None])[-1]
      for scope, _ in heads]
  if all(saved in (None, channels)
         for saved, (_, channels) in zip(saved_channels, heads)):
    return None
  exclude_scopes = ','.join(scope for scope, _ in heads)
  logging.info('%s predicts another number of classes than this model (%d '
               'with background): its class heads start from scratch '
               '(--checkpoint_exclude_scopes=%s).', checkpoint_path,
               ssd_net.params.num_classes, exclude_scopes)
  return exclude_scopes


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
  shapes = open_checkpoint(checkpoint_path).get_variable_to_shape_map()
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
                exclude_scopes=None, ignore_missing_vars=False,
                derived_values=None):
  """The init_fn for slim.learning.train that loads a pretrained checkpoint.

  Validates the checkpoint now, before the session starts: every file reads
  back, and the variables fit the model.  Logs how many variables it
  restores and which keep their initial values.

  Args:
    model_scope, checkpoint_path, checkpoint_model_scope, exclude_scopes,
    ignore_missing_vars: see `variables_to_restore`.
    derived_values: {model variable name: array} assigned after the restore
      to excluded variables of that shape (conv6/conv7 sampled from
      vgg_16's fc6/fc7); others are ignored.

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
  derived = _derived_assignments(derived_values or {}, left_out)
  left_out = [name for name in left_out if name not in derived.names]
  logging.info('Initialising %d variables from %s%s.', len(restore_map),
               checkpoint_path, ' (and %s derived from it)' % ', '.join(
                   derived.names) if derived.names else '')
  if left_out:
    logging.info('%d variables keep their initial values:\n  %s',
                 len(left_out), '\n  '.join(left_out))
  saver = _v1.train.Saver(restore_map, reshape=False)

  def restore(session):
    saver.restore(session, checkpoint_path)
    if derived.names:
      session.run(derived.assign_ops, derived.feeds)
  return restore


_Assignments = collections.namedtuple('_Assignments',
                                      ['names', 'assign_ops', 'feeds'])


def _derived_assignments(values, left_out):
  """Assign ops (fed at restore) for the `values` of left-out variables of
  the same shape."""
  names, assign_ops, feeds = [], [], {}
  for variable in slim.get_model_variables():
    name = variable.op.name
    value = values.get(name)
    if (value is None or name not in left_out or
        list(value.shape) != variable.shape.as_list()):
      continue
    feed = _v1.placeholder(variable.dtype.base_dtype, variable.shape)
    assign_ops.append(variable.assign(feed))
    feeds[feed] = value
    names.append(name)
  return _Assignments(names, assign_ops, feeds)


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


def resume_checkpoint(train_dir, variables=None, model_params=None):
  """The checkpoint of `train_dir` to resume from, checked; None if none.

  At the start of the chief, before the training loop restores:
    1. takes the checkpoints of `train_dir` itself, newest step first, even
       when its `checkpoint` index holds absolute paths of another directory
       (a copied or moved run): the copy in `train_dir` is used;
    2. skips corrupt or truncated ones, falling back to the newest
       readable; never silently to scratch: if none reads, an error (their
       files renamed '*.corrupt');
    3. checks every variable against the checkpoint, as for a pretrained
       checkpoint: another class count (or optimizer, or model) is an error
       naming the variables and the fix; and, with `model_params`, the SSD
       parameters the run was trained with (`check_resume_params`);
    4. only then changes `train_dir`: removes partial files of killed runs
       (`remove_partial_files`), sets the corrupt checkpoints aside with a
       warning naming the file, and rewrites the index with relative paths
       if it did not point at the chosen checkpoint, so that the training
       loop restores that one.

  Args:
    train_dir: the training directory.
    variables: the variables the training loop restores (default: all
      global variables of the default graph).
    model_params: (model_name, SSDParams) of this run, or None not to
      compare them.

  Returns:
    The checkpoint prefix, or None when `train_dir` holds no checkpoint.

  Raises:
    CheckpointError: when no checkpoint reads back, or the newest readable
      one does not fit the model.
  """
  state = tf.train.get_checkpoint_state(train_dir)
  indexed = [] if state is None else list(
      state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
  candidates = set(list_checkpoints(train_dir))
  candidates.update(p for p in (_local_copy(path, train_dir)
                                for path in indexed)
                    if tf.io.gfile.exists(p + '.index'))
  chosen, corrupt = _newest_readable(candidates)
  if chosen is None and not corrupt:
    _remove_partial_files(train_dir)
    return None
  if chosen is None:
    _set_aside_all(corrupt)
    raise CheckpointError(
        'No checkpoint in --train_dir %s reads back:\n  %s\nTheir files were '
        'renamed *%s. Resume from a copy of a good checkpoint, or use a new '
        '--train_dir to start afresh.' % (
            train_dir, '\n  '.join(corrupt.values()), CORRUPT_SUFFIX))
  check_resume_fits(chosen, train_dir, variables)
  if model_params is not None:
    check_resume_params(chosen, *model_params)
  _remove_partial_files(train_dir)
  _set_aside_all(corrupt)
  if corrupt:
    logging.warning('Resuming from %s, the newest readable checkpoint, '
                    'instead.', chosen)
  _point_index_at(train_dir, state, indexed, chosen, bool(corrupt))
  return chosen


def _newest_readable(candidates):
  """(newest readable prefix or None, {newer corrupt prefix: reason})."""
  corrupt = {}
  for prefix in _newest_first(candidates):
    reason = unreadable_reason(prefix)
    if reason is None:
      return prefix, corrupt
    corrupt[prefix] = reason
  return None, corrupt


def _remove_partial_files(train_dir):
  for path in remove_partial_files(train_dir):
    logging.warning('Removed %s, left by an interrupted checkpoint save.',
                    path)


def _set_aside_all(corrupt):
  for prefix, reason in corrupt.items():
    renamed = _set_aside(prefix)
    logging.warning('Checkpoint %s is unusable: %s. Set aside as %s.',
                    prefix, reason, ', '.join(renamed))


def _point_index_at(train_dir, state, indexed, chosen, had_corrupt):
  """Rewrites the `checkpoint` index (relative paths) to end at `chosen`
  when it names another directory's files, a corrupt checkpoint or
  another latest one."""
  moved = [path for path in indexed
           if os.path.dirname(os.path.abspath(path)) !=
           os.path.abspath(train_dir)]
  if moved:
    logging.warning('The checkpoint index of %s names files of another '
                    'directory (%s): it was copied or moved; resuming from '
                    'its own files.', train_dir, os.path.dirname(moved[-1]))
  if not (state is None or moved or had_corrupt or
          os.path.abspath(state.model_checkpoint_path) !=
          os.path.abspath(chosen)):
    return
  kept = [p for p in (_local_copy(path, train_dir) for path in indexed)
          if tf.io.gfile.exists(p + '.index') and p != chosen and
          (checkpoint_step(p) or 0) <= (checkpoint_step(chosen) or 0)]
  _v1.train.update_checkpoint_state(train_dir, os.path.basename(chosen), [
      os.path.basename(p) for p in kept + [chosen]])


def _optional_variables(graph):
  """Variables a resumed checkpoint may lack (it predates them): the SSD
  parameters (`nets_factory.create_ssd_params_variable`)."""
  return graph.get_collection(nets_factory.SSD_PARAMS_COLLECTION)


def check_resume_fits(prefix, train_dir, variables=None):
  """Raises CheckpointError unless each variable is in `prefix`, same shape
  (optional variables, see `_optional_variables`, may be absent)."""
  if variables is None:
    variables = _v1.global_variables()
  optional = set(v.op.name for v in
                 _optional_variables(_v1.get_default_graph()))
  shapes = open_checkpoint(prefix).get_variable_to_shape_map()
  mismatched, missing, _ = _shape_mismatches(variables, shapes,
                                             lambda name: name)
  missing = [name for name in missing if name not in optional]
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
            run_directory.training_config_file(train_dir)))


# The flag that sets each SSD parameter, for the messages.
_PARAM_FLAGS = {'num_classes': '--num_classes', 'anchor_sizes':
                '--anchor_sizes', 'anchor_clip': '--anchor_sizes',
                'batch_norm': '--batch_norm'}
# Parameters of training alone, free to change when a run resumes.
_TRAINING_ONLY_PARAMS = ('dropout_keep_prob',)


def _param_setting(name, value):
  """'--anchor_sizes=30,60,...' or 'SSD parameter img_shape=(300, 300)'."""
  if name == 'anchor_sizes':
    value = ssd_vgg_300.anchor_sizes_text(value)
  if name in _PARAM_FLAGS:
    return '%s=%s' % (_PARAM_FLAGS[name], value)
  return 'SSD parameter %s=%s' % (name, value)


def check_resume_params(prefix, model_name, params):
  """Raises CheckpointError, one line, unless the checkpoint was trained
  with `params` (compared with `saved_ssd_params`; nothing to compare when
  it has none), naming each flag with both values."""
  saved = saved_ssd_params(prefix, model_name)
  if saved is None:
    return
  saved_params = saved[1]
  differing = [name for name in params._fields
               if name not in _TRAINING_ONLY_PARAMS and
               getattr(params, name) != getattr(saved_params, name)]
  if not differing:
    return
  raise CheckpointError(
      'Cannot resume from %s: it was trained with %s (read from %s), this '
      'run asks for %s. Resume with the settings it was trained with, or '
      'train into a new --train_dir.' % (
          prefix,
          ', '.join(_param_setting(n, getattr(saved_params, n))
                    for n in differing), saved[2],
          ', '.join(_param_setting(n, getattr(params, n))
                    for n in differing)))


def saved_ssd_params(prefix, model_name):
  """(model_name, SSDParams, where) the model of checkpoint `prefix` was
  trained with, or None when nothing says.

  The checkpoint's own copy (`nets_factory.checkpoint_ssd_params`) comes
  first; older checkpoints have only the ssd_params.json beside them.  When
  both exist and differ, the checkpoint's wins, with a warning naming both.

  Raises:
    CheckpointError: not a checkpoint, or unreadable parameters.
  """
  json_path = os.path.join(os.path.dirname(prefix),
                           run_directory.SSD_PARAMS_FILE_NAME)
  reader = open_checkpoint(prefix)
  try:
    inside = nets_factory.checkpoint_ssd_params(reader, model_name)
  except ValueError as error:
    raise CheckpointError('Checkpoint %s: %s' % (prefix, error)) from None
  try:
    beside = nets_factory.read_ssd_params(os.path.dirname(prefix))
  except ValueError as error:
    if inside is None:
      raise CheckpointError(str(error)) from None
    beside = None
    logging.warning('Ignoring %s (%s): checkpoint %s holds its SSD '
                    'parameters.', json_path, error, prefix)
  if inside is None:
    return None if beside is None else beside + (
        'the %s beside it' % run_directory.SSD_PARAMS_FILE_NAME,)
  if beside is not None and beside != inside:
    logging.warning('%s differs from the SSD parameters inside checkpoint '
                    '%s; using the checkpoint\'s.', json_path, prefix)
  return inside + ('the checkpoint',)


# --------------------------------------------------------------------------
# Saving.


class CheckpointSaver(_v1.train.Saver):
  """tf.compat.v1.train.Saver with relative paths and a clear full-disk error.

  The `checkpoint` index holds paths relative to its directory, so that a
  run directory copied or moved elsewhere resumes from its own files.  When
  the disk fills up during a save, the partial files are removed and a
  CheckpointError says in one line which directory needs how much space.
  The graph's optional variables (`_optional_variables`: the SSD
  parameters) are saved, and restored when the checkpoint holds them; from
  an older checkpoint without them, they keep this run's initial values.
  """

  def __init__(self, *args, **kwargs):
    kwargs.setdefault('save_relative_paths', True)
    kwargs.setdefault('write_version', _v1.train.SaverDef.V2)
    super().__init__(*args, **kwargs)
    optional = _optional_variables(_v1.get_default_graph())
    self._without_optional = None
    if optional:
      names = set(v.op.name for v in optional)
      self._optional_names = sorted(names)
      self._without_optional = _v1.train.Saver(
          [v for v in _v1.global_variables() if v.op.name not in names],
          write_version=_v1.train.SaverDef.V2)
      self._initialise_optional = _v1.variables_initializer(optional)

  def restore(self, sess, save_path):
    if self._without_optional is None or all(
        open_checkpoint(save_path).has_tensor(name)
        for name in self._optional_names):
      return super().restore(sess, save_path)
    logging.info('%s predates %s: restoring the rest; they keep this '
                 'run\'s values.', save_path, ', '.join(self._optional_names))
    self._without_optional.restore(sess, save_path)
    sess.run(self._initialise_optional)

  def save(self, sess, save_path, *args, **kwargs):  # pylint: disable=W0221
    try:
      return super().save(sess, save_path, *args, **kwargs)
    except (tf.errors.OpError, OSError) as error:
      if not paths.is_disk_full(error):
        raise
      directory = os.path.dirname(os.path.abspath(save_path))
      removed = remove_partial_files(directory)
      raise CheckpointError(
          'No space left on device in %s while saving a checkpoint: it needs '
          'about %s, %s free. Free some space there or choose another '
          '--train_dir (partial files removed: %d).' % (
              directory, paths.megabytes(_checkpoint_bytes(sess.graph, directory)),
              paths.megabytes(shutil.disk_usage(directory).free), len(removed))
      ) from None


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
