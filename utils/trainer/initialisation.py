"""How a run's variables start: from the checkpoint it resumes, from a
pretrained checkpoint (with its scope, exclusions and, from an ImageNet
vgg_16, the reduced fc6/fc7), or from scratch."""
from absl import logging

from nets import ssd_vgg_300
from utils.checkpointing import checkpoint_import
from utils.checkpointing import checkpoints
from utils.checkpointing import resume
from utils.checkpointing import warm_start
from utils.trainer import config as config_lib


def make_init_fn(train_dir, model, ssd_net=None):
  """Initialisation from model.checkpoint_path, unless train_dir resumes.

  Call it once the graph is built: a checkpoint to resume from is checked
  against its variables (utils.checkpointing.resume.resume_checkpoint).

  Args:
    train_dir: the run's directory; a checkpoint there is resumed from.
    model: ModelOptions (checkpoint path, scopes).
    ssd_net: the SSDNet (its SSD-only scopes, for a VGG16 checkpoint; its
      parameters must be those a resumed run was trained with).

  Returns:
    The init_fn(session) of slim.learning.train, or None.
  """
  resume_from = resume.resume_checkpoint(
      train_dir, model_params=(model.model_name, ssd_net.params)
      if ssd_net is not None else None)
  if resume_from:
    logging.info('Resuming from %s (global step, optimizer state and '
                 'learning-rate schedule continue from there).', resume_from)
    return None
  checkpoint_path = config_lib.pretrained_checkpoint(model)
  if not checkpoint_path:
    logging.info('No checkpoint to start from: training from scratch.')
    return None
  checkpoint_path = checkpoints.resolve_checkpoint_path(checkpoint_path)
  checkpoint_model_scope, exclude_scopes = warm_start.pretrained_settings(
      checkpoint_path, ssd_net, model.model_name, model.checkpoint_model_scope,
      model.checkpoint_exclude_scopes)
  return warm_start.get_init_fn(
      model.model_name, checkpoint_path, checkpoint_model_scope,
      exclude_scopes, model.ignore_missing_vars,
      derived_values=reduced_fc_init(model, checkpoint_path,
                                     checkpoint_model_scope))


def reduced_fc_init(model, checkpoint_path, checkpoint_model_scope):
  """conv6/conv7 sampled from a vgg_16 checkpoint's fc6/fc7, or None."""
  if (not model.restore_reduced_fc or
      checkpoint_model_scope != ssd_vgg_300.VGG_16_SCOPE):
    return None
  values = checkpoint_import.reduced_fc_values(
      checkpoints.open_checkpoint(checkpoint_path), checkpoint_model_scope,
      model.model_name)
  if values:
    logging.info('conv6 and conv7 start from %s\'s fc6 and fc7, sampled as '
                 'the SSD paper\'s reduced VGG16 (--norestore_reduced_fc '
                 'keeps them random).', checkpoint_path)
  return values
