"""Fine-tuning from a pretrained checkpoint: which variables it restores.

An SSD checkpoint (ours, or torchvision's through `checkpoint_import`) or a
TF-slim ImageNet `vgg_16` one: `pretrained_settings` finds its scope and the
scopes to leave out (the SSD-only layers of a VGG16 checkpoint, the class
heads of an SSD with another class count), `variables_to_restore` checks
every shape, `get_init_fn` restores them (and fc6/fc7 reduced to conv6/conv7
from a vgg_16).
"""
import collections

from absl import logging
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from nets import ssd_vgg_300
from utils.checkpointing import checkpoints

_v1 = tf.compat.v1


# --------------------------------------------------------------------------
# Fine-tuning from a pretrained checkpoint.


def is_vgg16_checkpoint(prefix):
  """Whether the checkpoint is TF-slim's ImageNet VGG16 ('vgg_16/...' names)."""
  names = checkpoints.open_checkpoint(prefix).get_variable_to_shape_map()
  scope = ssd_vgg_300.VGG_16_SCOPE
  return any(checkpoints.in_scope(name, scope) for name in names) and not any(
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
  shapes = checkpoints.open_checkpoint(checkpoint_path).get_variable_to_shape_map()
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
  if checkpoint_model_scope and checkpoints.in_scope(variable_name,
                                                   model_scope):
    return checkpoint_model_scope + variable_name[len(model_scope):]
  return variable_name


def shape_mismatches(variables, saved_shapes, saved_name_fn):
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


def mismatched_scopes(mismatched):
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
    checkpoints.CheckpointError: for variables missing from the checkpoint (without
      ignore_missing_vars) or whose shapes differ, naming them and the flag
      that fixes it.
  """
  excluded = checkpoints.split_scopes(exclude_scopes)
  shapes = checkpoints.open_checkpoint(checkpoint_path).get_variable_to_shape_map()
  left_out = []
  kept = []
  for variable in slim.get_model_variables():
    if any(checkpoints.in_scope(variable.op.name, scope) for scope in excluded):
      left_out.append(variable.op.name)
    else:
      kept.append(variable)
  mismatched, missing, restore_map = shape_mismatches(
      kept, shapes,
      lambda name: checkpoint_name(name, model_scope, checkpoint_model_scope))
  if mismatched:
    raise checkpoints.CheckpointError(
        'Checkpoint %s does not fit the model; shapes differ for:\n  %s\n'
        'This happens when the number of classes differs (e.g. a 21-class '
        'checkpoint into a model with another --num_classes). Exclude those '
        'layers so they start from scratch, e.g. '
        '--checkpoint_exclude_scopes=%s' % (
            checkpoint_path, '\n  '.join(mismatched),
            mismatched_scopes(mismatched)))
  if missing and not ignore_missing_vars:
    raise checkpoints.CheckpointError(
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
    checkpoints.CheckpointError: naming the missing, corrupt or mismatched file or
      variables.
  """
  checkpoint_path = checkpoints.resolve_checkpoint_path(checkpoint_path)
  checkpoints.check_readable(checkpoint_path)
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


