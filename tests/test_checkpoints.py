"""Tests of utils/checkpointing/checkpoints.py on real checkpoint files of tiny
models: finding a pretrained checkpoint among several, and truncated, flipped
or foreign files turned into one line.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from utils.checkpointing import checkpoints
from utils.checkpointing import warm_start

from checkpoint_fixtures import WEIGHTS, flip_bytes, save, truncate

v1 = tf.compat.v1


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
        warm_start.get_init_fn('net', prefix)
