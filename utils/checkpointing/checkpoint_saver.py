"""Saving checkpoints: relative paths in the index, a full disk in one line.

`CheckpointSaver` writes the `checkpoint` index with relative paths (so a
copied or moved run directory resumes from its own files) and turns a full
disk into one line, removing the partial files.
"""
import os
import shutil

from absl import logging
import tensorflow as tf

from utils.checkpointing import checkpoints
from utils.common import paths

_v1 = tf.compat.v1


# --------------------------------------------------------------------------
# Saving.


class CheckpointSaver(_v1.train.Saver):
  """tf.compat.v1.train.Saver with relative paths and a clear full-disk error.

  The `checkpoint` index holds paths relative to its directory, so that a
  run directory copied or moved elsewhere resumes from its own files.  When
  the disk fills up during a save, the partial files are removed and a
  checkpoints.CheckpointError says in one line which directory needs how much space.
  The graph's optional variables (`checkpoints.optional_variables`: the SSD
  parameters) are saved, and restored when the checkpoint holds them; from
  an older checkpoint without them, they keep this run's initial values.
  """

  def __init__(self, *args, **kwargs):
    kwargs.setdefault('save_relative_paths', True)
    kwargs.setdefault('write_version', _v1.train.SaverDef.V2)
    super().__init__(*args, **kwargs)
    optional = checkpoints.optional_variables(_v1.get_default_graph())
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
        checkpoints.open_checkpoint(save_path).has_tensor(name)
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
      removed = checkpoints.remove_partial_files(directory)
      raise checkpoints.CheckpointError(
          'No space left on device in %s while saving a checkpoint: it needs '
          'about %s, %s free. Free some space there or choose another '
          '--train_dir (partial files removed: %d).' % (
              directory, paths.megabytes(_checkpoint_bytes(sess.graph, directory)),
              paths.megabytes(shutil.disk_usage(directory).free), len(removed))
      ) from None


def _checkpoint_bytes(graph, directory):
  """Size of a checkpoint: the newest complete one in `directory`, or the
  variables of `graph`."""
  for prefix in checkpoints.newest_first(checkpoints.list_checkpoints(directory)):
    files = [f for f in checkpoints.files_of(prefix) if os.path.exists(f)]
    if len(files) > 1:
      return sum(os.path.getsize(f) for f in files)
  variables = graph.get_collection(_v1.GraphKeys.GLOBAL_VARIABLES)
  return sum(v.shape.num_elements() * v.dtype.base_dtype.size
             for v in variables if v.shape.is_fully_defined())
