"""Tests of utils/checkpointing/checkpoints.py on real checkpoint files of tiny models.

Each bad case is made on disk as a user meets it: several checkpoints in
ckpt/pre_trained, a truncated or flipped data file, a damaged index, a run
directory copied or moved with `cp -r`/`mv`, a checkpoint of another class
count, leftovers of a killed save, and a disk that fills up (a real 1 MB
tmpfs where this process may mount one, else an injected ENOSPC).
"""
import errno
import logging as std_logging
import os
import shutil
import subprocess
import uuid

import numpy as np
import pytest
import tensorflow as tf

from nets import ssd_vgg_300
from utils.checkpointing import checkpoints

v1 = tf.compat.v1


def save(path, values, step=None, relative=True):
  """Saves {name: array} at `path` (with `-step`); returns the prefix."""
  with tf.Graph().as_default():
    variables = [v1.get_variable(name, initializer=np.asarray(value))
                 for name, value in values.items()]
    saver_class = (checkpoints.CheckpointSaver if relative
                   else v1.train.Saver)
    saver = saver_class(variables, max_to_keep=10)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      return saver.save(sess, str(path), global_step=step)


def graph_variables(shapes):
  """Variables of the given {name: shape} in the current default graph."""
  return [v1.get_variable(name, shape, initializer=v1.zeros_initializer())
          for name, shape in shapes.items()]


WEIGHTS = {'net/conv/weights': np.ones([3, 3, 2, 4], np.float32),
           'net/cls/biases': np.arange(6, dtype=np.float32)}


def truncate(path):
  with open(path, 'r+b') as data:
    data.truncate(os.path.getsize(path) // 2)


def flip_bytes(path):
  with open(path, 'r+b') as data:
    content = bytearray(data.read())
    for i in range(min(16, len(content))):
      content[i] ^= 0xFF
    data.seek(0)
    data.write(content)


class TestFindPretrainedCheckpoint:

  def test_highest_step_wins_not_string_order(self, tmp_path):
    for step in (999, 1000, 20):
      save(tmp_path / 'model.ckpt', WEIGHTS, step)
    os.remove(str(tmp_path / 'checkpoint'))  # As downloaded: no index file.
    assert checkpoints.find_checkpoint(str(tmp_path)) == str(
        tmp_path / 'model.ckpt-1000')

  def test_two_different_checkpoints_are_an_error_listing_them(self,
                                                               tmp_path):
    save(tmp_path / 'vgg_16.ckpt', {'vgg_16/conv1/w': np.zeros(2)})
    save(tmp_path / 'ssd.ckpt', WEIGHTS, 5)
    with pytest.raises(checkpoints.CheckpointError) as error:
      checkpoints.find_checkpoint(str(tmp_path))
    message = str(error.value)
    assert '2 different checkpoints' in message
    assert str(tmp_path / 'vgg_16.ckpt') in message
    assert str(tmp_path / 'ssd.ckpt-5') in message
    assert '--checkpoint_path' in message

  def test_empty_or_absent_directory_has_none(self, tmp_path):
    (tmp_path / 'README.md').write_text('Put checkpoints here.')
    assert checkpoints.find_checkpoint(str(tmp_path)) is None
    assert checkpoints.find_checkpoint(str(tmp_path / 'absent')) is None


class TestVgg16Detection:

  def test_vgg16_gets_its_scope_and_the_ssd_only_exclusions(self, tmp_path,
                                                            caplog):
    prefix = save(tmp_path / 'vgg_16.ckpt', {
        'vgg_16/conv1/conv1_1/weights': np.zeros([3, 3, 3, 2], np.float32),
        'vgg_16/fc8/biases': np.zeros([4], np.float32),
        'global_step': np.int64(7)})
    ssd_net = ssd_vgg_300.SSDNet()
    caplog.set_level(std_logging.INFO)
    scope, excluded = checkpoints.pretrained_settings(
        prefix, ssd_net, 'ssd_300_vgg')
    assert scope == 'vgg_16'
    excluded = excluded.split(',')
    # Everything of SSD that VGG16 lacks, and none of VGG16's conv blocks.
    assert set(excluded) == {
        'ssd_300_vgg/conv6', 'ssd_300_vgg/conv7', 'ssd_300_vgg/block8',
        'ssd_300_vgg/block9', 'ssd_300_vgg/block10', 'ssd_300_vgg/block11',
        'ssd_300_vgg/block4_box', 'ssd_300_vgg/block7_box',
        'ssd_300_vgg/block8_box', 'ssd_300_vgg/block9_box',
        'ssd_300_vgg/block10_box', 'ssd_300_vgg/block11_box'}
    assert 'ImageNet VGG16 checkpoint' in caplog.text
    assert '--checkpoint_exclude_scopes=' in caplog.text

  def test_given_values_and_ssd_checkpoints_are_left_alone(self, tmp_path):
    vgg = save(tmp_path / 'vgg_16.ckpt', {'vgg_16/conv1/w': np.zeros(2)})
    ssd = save(tmp_path / 'ssd.ckpt', {'ssd_300_vgg/conv1/w': np.zeros(2)})
    ssd_net = ssd_vgg_300.SSDNet()
    assert checkpoints.pretrained_settings(
        vgg, ssd_net, 'ssd_300_vgg', 'my_scope', 'a,b') == ('my_scope', 'a,b')
    assert checkpoints.pretrained_settings(
        ssd, ssd_net, 'ssd_300_vgg') == (None, None)


class TestCorruptCheckpoints:

  @pytest.mark.parametrize('damage, damaged_file', [
      (truncate, '.data-00000-of-00001'),
      (flip_bytes, '.data-00000-of-00001'),
      (flip_bytes, '.index'),
      (lambda path: open(path, 'w').close(), '.index'),
  ])
  def test_the_damaged_file_is_named(self, tmp_path, damage, damaged_file):
    prefix = save(tmp_path / 'model.ckpt', WEIGHTS, 3)
    assert checkpoints.unreadable_reason(prefix) is None
    damage(prefix + damaged_file)
    reason = checkpoints.unreadable_reason(prefix)
    assert reason.startswith(prefix + damaged_file), reason
    assert 'corrupt or truncated' in reason

  def test_a_corrupt_pretrained_checkpoint_fails_before_training(self,
                                                                 tmp_path):
    prefix = save(tmp_path / 'model.ckpt', WEIGHTS, 3)
    truncate(prefix + '.data-00000-of-00001')
    with tf.Graph().as_default():
      with pytest.raises(checkpoints.CheckpointError,
                         match='data-00000-of-00001 is corrupt or truncated'):
        checkpoints.get_init_fn('net', prefix)


class TestResume:

  def test_falls_back_to_the_newest_readable_checkpoint(self, tmp_path,
                                                        caplog):
    for step in (1, 2, 3):
      save(tmp_path / 'model.ckpt', WEIGHTS, step)
    truncate(str(tmp_path / 'model.ckpt-3.data-00000-of-00001'))
    flip_bytes(str(tmp_path / 'model.ckpt-2.index'))
    caplog.set_level(std_logging.WARNING)
    with tf.Graph().as_default():
      graph_variables({n: v.shape for n, v in WEIGHTS.items()})
      chosen = checkpoints.resume_checkpoint(str(tmp_path))
    assert chosen == str(tmp_path / 'model.ckpt-1')
    assert 'model.ckpt-3.data-00000-of-00001 is corrupt' in caplog.text
    assert 'model.ckpt-2.index is corrupt' in caplog.text
    assert 'Resuming from %s' % chosen in caplog.text
    # The training loop restores what the index names: the fallback.
    assert tf.train.latest_checkpoint(str(tmp_path)) == chosen
    # The bad files are kept, out of the way.
    assert os.path.exists(str(tmp_path / 'model.ckpt-3.index.corrupt'))
    assert not os.path.exists(str(tmp_path / 'model.ckpt-3.index'))

  def test_no_readable_checkpoint_is_an_error_not_a_fresh_start(self,
                                                                tmp_path):
    prefix = save(tmp_path / 'model.ckpt', WEIGHTS, 1)
    truncate(prefix + '.data-00000-of-00001')
    with tf.Graph().as_default():
      with pytest.raises(checkpoints.CheckpointError,
                         match='No checkpoint in --train_dir .* reads back'):
        checkpoints.resume_checkpoint(str(tmp_path))

  def test_another_class_count_names_the_variables_and_the_fix(self,
                                                               tmp_path):
    prefix = save(tmp_path / 'model.ckpt', WEIGHTS, 4)
    with tf.Graph().as_default():
      graph_variables({'net/conv/weights': [3, 3, 2, 4],
                       'net/cls/biases': [9]})
      with pytest.raises(checkpoints.CheckpointError) as error:
        checkpoints.resume_checkpoint(str(tmp_path))
    message = str(error.value)
    assert 'net/cls/biases: model [9], checkpoint [6]' in message
    assert 'net/conv' not in message
    assert 'number of classes' in message and '--train_dir' in message
    assert ('--checkpoint_path=%s --checkpoint_exclude_scopes=net/cls' %
            prefix) in message

  def test_missing_variables_name_the_flags(self, tmp_path):
    save(tmp_path / 'model.ckpt', WEIGHTS, 4)
    with tf.Graph().as_default():
      graph_variables(dict({n: v.shape for n, v in WEIGHTS.items()},
                           **{'net/conv/weights/Adam': [3, 3, 2, 4]}))
      with pytest.raises(checkpoints.CheckpointError,
                         match=r'lacks 1 variables(.|\n)*--optimizer'):
        checkpoints.resume_checkpoint(str(tmp_path))

  def test_empty_directory_trains_from_scratch(self, tmp_path):
    assert checkpoints.resume_checkpoint(str(tmp_path / 'new')) is None

  @pytest.mark.parametrize('command', ['cp -r', 'mv'])
  def test_copied_or_moved_run_directory_resumes_from_its_own_files(
      self, tmp_path, command):
    run1, run2 = tmp_path / 'run1', tmp_path / 'run2'
    save(run1 / 'model.ckpt', WEIGHTS, 1)
    save(run1 / 'model.ckpt', WEIGHTS, 2)
    subprocess.run(command.split() + [str(run1), str(run2)], check=True,
                   timeout=30)
    assert tf.train.latest_checkpoint(str(run2)) == str(run2 / 'model.ckpt-2')
    with tf.Graph().as_default():
      graph_variables({n: v.shape for n, v in WEIGHTS.items()})
      assert checkpoints.resume_checkpoint(str(run2)) == str(
          run2 / 'model.ckpt-2')

  def test_an_old_absolute_index_in_a_copy_is_read_from_the_copy(
      self, tmp_path, caplog):
    run1, run2 = tmp_path / 'run1', tmp_path / 'run2'
    save(run1 / 'model.ckpt', WEIGHTS, 1, relative=False)
    shutil.copytree(str(run1), str(run2))
    # Without relative paths the copy's index still names run1's files...
    assert tf.train.latest_checkpoint(str(run2)) == str(run1 / 'model.ckpt-1')
    caplog.set_level(std_logging.WARNING)
    with tf.Graph().as_default():
      graph_variables({n: v.shape for n, v in WEIGHTS.items()})
      chosen = checkpoints.resume_checkpoint(str(run2))
    # ... the resume uses the copy and rewrites the index relative.
    assert chosen == str(run2 / 'model.ckpt-1')
    assert tf.train.latest_checkpoint(str(run2)) == chosen
    assert 'copied or moved' in caplog.text
    with open(str(run2 / 'checkpoint')) as index:
      assert str(tmp_path) not in index.read()

  def test_leftovers_of_a_killed_save_are_removed(self, tmp_path, caplog):
    prefix = save(tmp_path / 'model.ckpt', WEIGHTS, 1)
    leftovers = [str(tmp_path / 'model.ckpt-2.data-00000-of-00001.tempstate12'),
                 str(tmp_path / 'model.ckpt-2.index.tempstate99'),
                 str(tmp_path / ('checkpoint.tmp' + uuid.uuid4().hex))]
    for path in leftovers:
      with open(path, 'wb') as partial:
        partial.write(b'\0' * 100)
    os.makedirs(str(tmp_path / 'model.ckpt-2_temp'))
    caplog.set_level(std_logging.WARNING)
    with tf.Graph().as_default():
      graph_variables({n: v.shape for n, v in WEIGHTS.items()})
      assert checkpoints.resume_checkpoint(str(tmp_path)) == prefix
    assert sorted(os.listdir(str(tmp_path))) == [
        'checkpoint', 'model.ckpt-1.data-00000-of-00001', 'model.ckpt-1.index',
        'model.ckpt-1.meta']
    assert 'interrupted checkpoint save' in caplog.text


def _save_into(directory, num_floats):
  """Saves a model of `num_floats` floats into `directory` with our saver."""
  with tf.Graph().as_default():
    variable = v1.get_variable('big', [num_floats],
                               initializer=v1.ones_initializer())
    saver = checkpoints.CheckpointSaver([variable])
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
