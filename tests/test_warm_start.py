"""Tests of utils/checkpointing/warm_start.py: what a pretrained checkpoint restores.
"""
import logging as std_logging

import numpy as np
import tensorflow as tf

from nets import ssd_vgg_300
from utils.checkpointing import warm_start

from checkpoint_fixtures import save

v1 = tf.compat.v1


class TestVgg16Detection:

  def test_vgg16_gets_its_scope_and_the_ssd_only_exclusions(self, tmp_path,
                                                            caplog):
    prefix = save(tmp_path / 'vgg_16.ckpt', {
        'vgg_16/conv1/conv1_1/weights': np.zeros([3, 3, 3, 2], np.float32),
        'vgg_16/fc8/biases': np.zeros([4], np.float32),
        'global_step': np.int64(7)})
    ssd_net = ssd_vgg_300.SSDNet()
    caplog.set_level(std_logging.INFO)
    scope, excluded = warm_start.pretrained_settings(
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
    assert warm_start.pretrained_settings(
        vgg, ssd_net, 'ssd_300_vgg', 'my_scope', 'a,b') == ('my_scope', 'a,b')
    assert warm_start.pretrained_settings(
        ssd, ssd_net, 'ssd_300_vgg') == (None, None)
