"""Resuming from the training directory, checked before anything changes.

`resume_checkpoint` picks the newest readable checkpoint of a run directory
(a copied or moved directory reads its own files; a corrupt newest one is set
aside with a warning); `check_resume_fits` and `check_resume_params` refuse
a checkpoint of another model (variable shapes, and the SSD parameters saved
inside every checkpoint, `saved_ssd_params`) in one line.
"""
import os

from absl import logging
import tensorflow as tf

from nets import nets_factory
from nets import ssd_vgg_300
from utils.checkpointing import checkpoints
from utils.checkpointing import warm_start
from utils.common import run_directory

_v1 = tf.compat.v1


# --------------------------------------------------------------------------
# Resuming from the training directory.


def _local_copy(path, train_dir):
  """`path` as a file of `train_dir` (an index written elsewhere holds other
  absolute paths: a copied or moved run directory)."""
  return os.path.join(train_dir, os.path.basename(path))


def _set_aside(prefix):
  """Renames a corrupt checkpoint's files to '<file>.corrupt'."""
  renamed = []
  for path in checkpoints.files_of(prefix):
    if os.path.exists(path):
      os.replace(path, path + checkpoints.CORRUPT_SUFFIX)
      renamed.append(path + checkpoints.CORRUPT_SUFFIX)
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
       (`checkpoints.remove_partial_files`), sets the corrupt checkpoints aside with a
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
    checkpoints.CheckpointError: when no checkpoint reads back, or the newest readable
      one does not fit the model.
  """
  state = tf.train.get_checkpoint_state(train_dir)
  indexed = [] if state is None else list(
      state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
  candidates = set(checkpoints.list_checkpoints(train_dir))
  candidates.update(p for p in (_local_copy(path, train_dir)
                                for path in indexed)
                    if tf.io.gfile.exists(p + '.index'))
  chosen, corrupt = _newest_readable(candidates)
  if chosen is None and not corrupt:
    _remove_partial_files(train_dir)
    return None
  if chosen is None:
    _set_aside_all(corrupt)
    raise checkpoints.CheckpointError(
        'No checkpoint in --train_dir %s reads back:\n  %s\nTheir files were '
        'renamed *%s. Resume from a copy of a good checkpoint, or use a new '
        '--train_dir to start afresh.' % (
            train_dir, '\n  '.join(corrupt.values()), checkpoints.CORRUPT_SUFFIX))
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
  for prefix in checkpoints.newest_first(candidates):
    reason = checkpoints.unreadable_reason(prefix)
    if reason is None:
      return prefix, corrupt
    corrupt[prefix] = reason
  return None, corrupt


def _remove_partial_files(train_dir):
  for path in checkpoints.remove_partial_files(train_dir):
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
          (checkpoints.checkpoint_step(p) or 0) <= (checkpoints.checkpoint_step(chosen) or 0)]
  _v1.train.update_checkpoint_state(train_dir, os.path.basename(chosen), [
      os.path.basename(p) for p in kept + [chosen]])


def check_resume_fits(prefix, train_dir, variables=None):
  """Raises checkpoints.CheckpointError unless each variable is in `prefix`, same shape
  (optional variables, see `checkpoints.optional_variables`, may be absent)."""
  if variables is None:
    variables = _v1.global_variables()
  optional = set(v.op.name for v in
                 checkpoints.optional_variables(_v1.get_default_graph()))
  shapes = checkpoints.open_checkpoint(prefix).get_variable_to_shape_map()
  mismatched, missing, _ = warm_start.shape_mismatches(variables, shapes,
                                             lambda name: name)
  missing = [name for name in missing if name not in optional]
  if mismatched:
    raise checkpoints.CheckpointError(
        'Cannot resume from %s: it was written by another model (most often '
        'another number of classes: --num_classes or the dataset); shapes '
        'differ for:\n  %s\nTrain into a new --train_dir. To start that run '
        'from this checkpoint, pass --checkpoint_path=%s '
        '--checkpoint_exclude_scopes=%s' % (
            prefix, '\n  '.join(mismatched), prefix,
            warm_start.mismatched_scopes(mismatched)))
  if missing:
    raise checkpoints.CheckpointError(
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
  """Raises checkpoints.CheckpointError, one line, unless the checkpoint was trained
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
  raise checkpoints.CheckpointError(
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
    checkpoints.CheckpointError: not a checkpoint, or unreadable parameters.
  """
  json_path = run_directory.ssd_params_file(os.path.dirname(prefix))
  reader = checkpoints.open_checkpoint(prefix)
  try:
    inside = nets_factory.checkpoint_ssd_params(reader, model_name)
  except ValueError as error:
    raise checkpoints.CheckpointError('Checkpoint %s: %s' % (prefix, error)) from None
  try:
    beside = nets_factory.read_ssd_params(os.path.dirname(prefix))
  except ValueError as error:
    if inside is None:
      raise checkpoints.CheckpointError(str(error)) from None
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


