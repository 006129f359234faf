"""Finding checkpoints and initialising a model from one, with clear errors.

Used by training (fine-tuning from an SSD or ImageNet VGG16 checkpoint),
evaluation, the demo and export (all of which accept a checkpoint file prefix
or a directory meaning its latest checkpoint).
"""
import os
import re

from absl import logging
import tensorflow as tf
from utils import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from utils import train_tools

_v1 = tf.compat.v1

_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where training writes its checkpoints by default, and where pretrained
# checkpoints are looked for when no --checkpoint_path is given.
FINE_TUNING_DIR = os.path.join(_PROJECT_ROOT, 'ckpt', 'fine_tuning')
PRETRAINED_DIR = os.path.join(_PROJECT_ROOT, 'ckpt', 'pre_trained')

# Files a user may point at instead of the checkpoint prefix.
_CHECKPOINT_FILE_SUFFIX = re.compile(r'\.(index|meta|data-\d{5}-of-\d{5})$')


class CheckpointError(ValueError):
  """A checkpoint is missing or does not fit the model; says how to fix it."""


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


def find_checkpoint(directory):
  """The latest checkpoint prefix in `directory`, or None if it has none."""
  if not tf.io.gfile.isdir(directory):
    return None
  latest = tf.train.latest_checkpoint(directory)
  if latest:
    return latest
  # A downloaded checkpoint comes without the 'checkpoint' index file.
  prefixes = sorted(name[:-len('.index')]
                    for name in tf.io.gfile.listdir(directory)
                    if name.endswith('.index'))
  return os.path.join(directory, prefixes[-1]) if prefixes else None


def checkpoint_name(variable_name, model_scope, checkpoint_model_scope):
  """The name a model variable has in a checkpoint whose scope differs.

  'ssd_300_vgg/conv1/conv1_1/weights' with checkpoint scope 'vgg_16' becomes
  'vgg_16/conv1/conv1_1/weights'.
  """
  if checkpoint_model_scope and train_tools.in_scope(variable_name,
                                                     model_scope):
    return checkpoint_model_scope + variable_name[len(model_scope):]
  return variable_name


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
  excluded = train_tools.split_scopes(exclude_scopes)
  shapes = tf.train.load_checkpoint(checkpoint_path).get_variable_to_shape_map()
  restore_map = {}
  left_out = []
  missing = []
  mismatched = []
  for variable in slim.get_model_variables():
    name = variable.op.name
    if any(train_tools.in_scope(name, scope) for scope in excluded):
      left_out.append(name)
      continue
    saved_name = checkpoint_name(name, model_scope, checkpoint_model_scope)
    if saved_name not in shapes:
      missing.append(name)
      continue
    if list(shapes[saved_name]) != variable.shape.as_list():
      mismatched.append('%s: model %s, checkpoint %s' % (
          name, variable.shape.as_list(), shapes[saved_name]))
      continue
    restore_map[saved_name] = variable
  if mismatched:
    raise CheckpointError(
        'Checkpoint %s does not fit the model; shapes differ for:\n  %s\n'
        'This happens when the number of classes differs (e.g. a 21-class '
        'checkpoint into a model with another --num_classes). Exclude those '
        'layers so they start from scratch, e.g. '
        '--checkpoint_exclude_scopes=%s' % (
            checkpoint_path, '\n  '.join(mismatched),
            ','.join(_scopes_of(m.split(':')[0] for m in mismatched))))
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
  scopes = []
  for name in names:
    scope = '/'.join(name.split('/')[:2])
    if scope not in scopes:
      scopes.append(scope)
  return scopes


def get_init_fn(model_scope, checkpoint_path, checkpoint_model_scope=None,
                exclude_scopes=None, ignore_missing_vars=False):
  """The init_fn for slim.learning.train that loads a pretrained checkpoint.

  Validates the checkpoint against the model now, before the session starts,
  and logs how many variables it restores and which keep their initial
  values.

  Returns:
    A function(session) doing the restore.
  """
  checkpoint_path = resolve_checkpoint_path(checkpoint_path)
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
