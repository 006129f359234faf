"""Tests of utils/checkpointing/resume.py on real run directories: copied or
moved with `cp -r`/`mv`, a checkpoint of another class count, leftovers of a
killed save, a corrupt newest checkpoint.
"""
import logging as std_logging
import os
import shutil
import subprocess
import uuid

import pytest
import tensorflow as tf

from utils.checkpointing import checkpoints
from utils.checkpointing import resume

from checkpoint_fixtures import WEIGHTS, flip_bytes, graph_variables, save, truncate

v1 = tf.compat.v1


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
      chosen = resume.resume_checkpoint(str(tmp_path))
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
        resume.resume_checkpoint(str(tmp_path))

  def test_another_class_count_names_the_variables_and_the_fix(self,
                                                               tmp_path):
    prefix = save(tmp_path / 'model.ckpt', WEIGHTS, 4)
    with tf.Graph().as_default():
      graph_variables({'net/conv/weights': [3, 3, 2, 4],
                       'net/cls/biases': [9]})
      with pytest.raises(checkpoints.CheckpointError) as error:
        resume.resume_checkpoint(str(tmp_path))
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
        resume.resume_checkpoint(str(tmp_path))

  def test_empty_directory_trains_from_scratch(self, tmp_path):
    assert resume.resume_checkpoint(str(tmp_path / 'new')) is None

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
      assert resume.resume_checkpoint(str(run2)) == str(
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
      chosen = resume.resume_checkpoint(str(run2))
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
      assert resume.resume_checkpoint(str(tmp_path)) == prefix
    assert sorted(os.listdir(str(tmp_path))) == [
        'checkpoint', 'model.ckpt-1.data-00000-of-00001', 'model.ckpt-1.index',
        'model.ckpt-1.meta']
    assert 'interrupted checkpoint save' in caplog.text
