"""Tests of utils/checkpointing/checkpoint_saver.py: a disk that fills up while
saving (a real 1 MB tmpfs where this process may mount one, else an injected
ENOSPC) is one line, and the partial files go.
"""
import errno
import os
import subprocess

import pytest
import tensorflow as tf

from utils.checkpointing import checkpoints
from utils.checkpointing import checkpoint_saver

v1 = tf.compat.v1


def _save_into(directory, num_floats):
  """Saves a model of `num_floats` floats into `directory` with our saver."""
  with tf.Graph().as_default():
    variable = v1.get_variable('big', [num_floats],
                               initializer=v1.ones_initializer())
    saver = checkpoint_saver.CheckpointSaver([variable])
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      return saver.save(sess, os.path.join(directory, 'model.ckpt'),
                        global_step=1)


@pytest.fixture
def small_disk(tmp_path):
  """A 1 MB tmpfs (needs root and mount); skips where it cannot be mounted."""
  mount_point = tmp_path / 'disk'
  mount_point.mkdir()
  result = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs',
                           str(mount_point)], capture_output=True, timeout=30)
  if result.returncode != 0:
    pytest.skip('cannot mount a tmpfs here: %s' % result.stderr.strip())
  try:
    yield str(mount_point)
  finally:
    subprocess.run(['umount', '-l', str(mount_point)], timeout=30)


class TestDiskFull:

  def test_a_full_disk_is_one_line_and_leaves_no_partial_file(self,
                                                              small_disk):
    with pytest.raises(checkpoints.CheckpointError) as error:
      _save_into(small_disk, 1 << 19)  # 2 MB of float32 on a 1 MB disk.
    message = str(error.value)
    assert '\n' not in message
    assert message.startswith('No space left on device in %s' % small_disk)
    assert 'needs about 2.1 MB' in message
    assert not [name for name in os.listdir(small_disk)
                if 'tempstate' in name], os.listdir(small_disk)

  def test_injected_disk_full_is_caught_the_same_way(self, tmp_path,
                                                     monkeypatch):
    """Where no tmpfs can be mounted: the same error, raised by the save."""
    partial = tmp_path / 'model.ckpt-1.data-00000-of-00001.tempstate42'

    def full_disk(*unused_args, **unused_kwargs):
      partial.write_bytes(b'\0' * 10)
      raise tf.errors.ResourceExhaustedError(
          None, None, '%s; No space left on device' % partial)
    monkeypatch.setattr(v1.train.Saver, 'save', full_disk)
    with pytest.raises(checkpoints.CheckpointError,
                       match='No space left on device in %s' % tmp_path):
      _save_into(str(tmp_path), 1000)
    assert not partial.exists()

  def test_other_save_errors_pass_through(self, tmp_path, monkeypatch):
    def failing(*unused_args, **unused_kwargs):
      raise OSError(errno.EACCES, 'Permission denied')
    monkeypatch.setattr(v1.train.Saver, 'save', failing)
    with pytest.raises(PermissionError):
      _save_into(str(tmp_path), 10)
