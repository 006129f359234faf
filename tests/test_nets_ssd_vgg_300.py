"""Tests of the SSD300 network: variables, checkpoints, layouts, training."""
import numpy as np
import pytest
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim
from tf_slim.nets import vgg

from nets import anchor_generator
from nets import ssd_vgg_300

# Every variable of SSD-Tensorflow's ssd_300_vgg checkpoint (21 classes),
# under the scope ssd_300_vgg.
EXPECTED_VARIABLES = [
    ('conv1/conv1_1/weights', [3, 3, 3, 64]), ('conv1/conv1_1/biases', [64]),
    ('conv1/conv1_2/weights', [3, 3, 64, 64]), ('conv1/conv1_2/biases', [64]),
    ('conv2/conv2_1/weights', [3, 3, 64, 128]), ('conv2/conv2_1/biases', [128]),
    ('conv2/conv2_2/weights', [3, 3, 128, 128]),
    ('conv2/conv2_2/biases', [128]),
    ('conv3/conv3_1/weights', [3, 3, 128, 256]),
    ('conv3/conv3_1/biases', [256]),
    ('conv3/conv3_2/weights', [3, 3, 256, 256]),
    ('conv3/conv3_2/biases', [256]),
    ('conv3/conv3_3/weights', [3, 3, 256, 256]),
    ('conv3/conv3_3/biases', [256]),
    ('conv4/conv4_1/weights', [3, 3, 256, 512]),
    ('conv4/conv4_1/biases', [512]),
    ('conv4/conv4_2/weights', [3, 3, 512, 512]),
    ('conv4/conv4_2/biases', [512]),
    ('conv4/conv4_3/weights', [3, 3, 512, 512]),
    ('conv4/conv4_3/biases', [512]),
    ('conv5/conv5_1/weights', [3, 3, 512, 512]),
    ('conv5/conv5_1/biases', [512]),
    ('conv5/conv5_2/weights', [3, 3, 512, 512]),
    ('conv5/conv5_2/biases', [512]),
    ('conv5/conv5_3/weights', [3, 3, 512, 512]),
    ('conv5/conv5_3/biases', [512]),
    ('conv6/weights', [3, 3, 512, 1024]), ('conv6/biases', [1024]),
    ('conv7/weights', [1, 1, 1024, 1024]), ('conv7/biases', [1024]),
    ('block8/conv1x1/weights', [1, 1, 1024, 256]),
    ('block8/conv1x1/biases', [256]),
    ('block8/conv3x3/weights', [3, 3, 256, 512]),
    ('block8/conv3x3/biases', [512]),
    ('block9/conv1x1/weights', [1, 1, 512, 128]),
    ('block9/conv1x1/biases', [128]),
    ('block9/conv3x3/weights', [3, 3, 128, 256]),
    ('block9/conv3x3/biases', [256]),
    ('block10/conv1x1/weights', [1, 1, 256, 128]),
    ('block10/conv1x1/biases', [128]),
    ('block10/conv3x3/weights', [3, 3, 128, 256]),
    ('block10/conv3x3/biases', [256]),
    ('block11/conv1x1/weights', [1, 1, 256, 128]),
    ('block11/conv1x1/biases', [128]),
    ('block11/conv3x3/weights', [3, 3, 128, 256]),
    ('block11/conv3x3/biases', [256]),
    ('block4_box/L2Normalization/gamma', [512]),
    ('block4_box/conv_loc/weights', [3, 3, 512, 16]),
    ('block4_box/conv_loc/biases', [16]),
    ('block4_box/conv_cls/weights', [3, 3, 512, 84]),
    ('block4_box/conv_cls/biases', [84]),
    ('block7_box/conv_loc/weights', [3, 3, 1024, 24]),
    ('block7_box/conv_loc/biases', [24]),
    ('block7_box/conv_cls/weights', [3, 3, 1024, 126]),
    ('block7_box/conv_cls/biases', [126]),
    ('block8_box/conv_loc/weights', [3, 3, 512, 24]),
    ('block8_box/conv_loc/biases', [24]),
    ('block8_box/conv_cls/weights', [3, 3, 512, 126]),
    ('block8_box/conv_cls/biases', [126]),
    ('block9_box/conv_loc/weights', [3, 3, 256, 24]),
    ('block9_box/conv_loc/biases', [24]),
    ('block9_box/conv_cls/weights', [3, 3, 256, 126]),
    ('block9_box/conv_cls/biases', [126]),
    ('block10_box/conv_loc/weights', [3, 3, 256, 16]),
    ('block10_box/conv_loc/biases', [16]),
    ('block10_box/conv_cls/weights', [3, 3, 256, 84]),
    ('block10_box/conv_cls/biases', [84]),
    ('block11_box/conv_loc/weights', [3, 3, 256, 16]),
    ('block11_box/conv_loc/biases', [16]),
    ('block11_box/conv_cls/weights', [3, 3, 256, 84]),
    ('block11_box/conv_cls/biases', [84]),
]
FEAT_SHAPES_300 = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
ANCHORS_PER_CELL = [4, 6, 6, 6, 4, 4]


def _build(ssd, inputs, data_format='NHWC', **kwargs):
  with slim.arg_scope(ssd.arg_scope(data_format=data_format)):
    return ssd.net(inputs, **kwargs)


def _variables():
  return [(v.op.name, v.shape.as_list())
          for v in tf.compat.v1.global_variables()]


def test_variables_match_ssd_tensorflow_checkpoint():
  ssd = ssd_vgg_300.SSDNet()
  with tf.Graph().as_default():
    _build(ssd, tf.compat.v1.placeholder(tf.float32, [None, 300, 300, 3]))
    assert _variables() == [('ssd_300_vgg/' + name, shape)
                            for name, shape in EXPECTED_VARIABLES]
    assert len(tf.compat.v1.trainable_variables()) == len(EXPECTED_VARIABLES)
    # Weight decay on every convolution's weights (35), not on gamma.
    assert len(tf.compat.v1.losses.get_regularization_losses()) == 35
    assert 'ssd_300_vgg/block4_box/L2Normalization/gamma' in [
        v.op.name for v in slim.get_model_variables()]


@pytest.mark.parametrize('img_shape', [(512, 512), (301, 600)])
def test_outputs_follow_the_input_size_as_feat_shapes_computes(img_shape):
  ssd = ssd_vgg_300.SSDNet(
      ssd_vgg_300.SSDNet.default_params._replace(num_classes=5))
  params = ssd.params
  with tf.Graph().as_default():
    predictions, localisations, logits, end_points = _build(
        ssd, tf.compat.v1.placeholder(tf.float32, [None] + list(img_shape) +
                                      [3]))
  assert ssd.params is params  # Building never changes the parameters.
  feat_shapes = ssd.feat_shapes(img_shape)
  assert [tuple(p.shape[1:3].as_list()) for p in predictions] == feat_shapes
  assert feat_shapes != FEAT_SHAPES_300
  assert ssd.feat_shapes() == FEAT_SHAPES_300
  assert sum(h * w * a for (h, w), a in zip(
      feat_shapes, ANCHORS_PER_CELL)) == sum(
          cy.size * h.size for cy, _, h, _ in ssd.anchors(img_shape))
  for layer, (h, w), a in zip(range(6), feat_shapes, ANCHORS_PER_CELL):
    assert predictions[layer].shape.as_list() == [None, h, w, a, 5]
    assert logits[layer].shape.as_list() == [None, h, w, a, 5]
    assert localisations[layer].shape.as_list() == [None, h, w, a, 4]
  assert sorted(end_points) == sorted('block%d' % i for i in range(1, 12))


def test_vgg_part_maps_onto_tf_slim_vgg_16_checkpoint_names():
  with tf.Graph().as_default():
    with slim.arg_scope(vgg.vgg_arg_scope()):
      vgg.vgg_16(tf.compat.v1.placeholder(tf.float32, [1, 224, 224, 3]))
    vgg_16_variables = dict(_variables())
  ssd = ssd_vgg_300.SSDNet()
  with tf.Graph().as_default():
    _build(ssd, tf.compat.v1.placeholder(tf.float32, [1, 300, 300, 3]))
    variables = tf.compat.v1.global_variables()
    vgg_map = ssd.vgg_16_variables(variables)
    # All 26 convolution variables of conv1..conv5, nothing else (vgg_16's
    # fc6..fc8 have no SSD counterpart).
    assert len(vgg_map) == 26
    for name, variable in vgg_map.items():
      assert vgg_16_variables[name] == variable.shape.as_list()
    assert sorted(set(vgg_16_variables) - set(vgg_map)) == [
        'vgg_16/fc%d/%s' % (i, kind) for i in (6, 7, 8)
        for kind in ('biases', 'weights')]
    # The other variables are exactly those under the SSD-only scopes.
    ssd_only = [v for v in variables if v not in vgg_map.values()]
    scopes = ssd.non_vgg_scopes()
    assert 'ssd_300_vgg/conv6' in scopes and 'ssd_300_vgg/block4_box' in scopes
    for variable in variables:
      under_ssd_scope = any(variable.op.name.startswith(scope + '/')
                            for scope in scopes)
      assert under_ssd_scope == (variable in ssd_only)


def test_gamma_starts_at_the_normalisation_value():
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    _build(ssd_vgg_300.SSDNet(),
           tf.compat.v1.placeholder(tf.float32, [1, 300, 300, 3]))
    gamma = slim.get_model_variables('ssd_300_vgg/block4_box/L2Normalization')
    sess.run(gamma[0].initializer)
    np.testing.assert_array_equal(sess.run(gamma[0]), np.full([512], 20.))


def test_nhwc_and_nchw_give_the_same_outputs_with_the_same_weights():
  ssd = ssd_vgg_300.SSDNet()
  images = np.random.RandomState(5).uniform(
      -1., 1., [1, 300, 300, 3]).astype(np.float32)
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    nhwc = _build(ssd, tf.constant(images), is_training=False)[:3]
    num_variables = len(tf.compat.v1.global_variables())
    nchw = _build(ssd, tf.constant(images.transpose(0, 3, 1, 2)),
                  data_format='NCHW', is_training=False, reuse=True)[:3]
    assert len(tf.compat.v1.global_variables()) == num_variables
    for nhwc_layer, nchw_layer in zip(sum(nhwc, []), sum(nchw, [])):
      assert nhwc_layer.shape == nchw_layer.shape
    assert [tuple(p.shape[1:3]) for p in nchw[0]] == FEAT_SHAPES_300
    sess.run(tf.compat.v1.global_variables_initializer())
    nhwc_values = sess.run(nhwc)
    try:
      nchw_values = sess.run(nchw)
    except (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError) as e:
      pytest.skip('NCHW graph builds but this device lacks an NCHW kernel: '
                  '%s' % e.message.splitlines()[0])
  for nhwc_layers, nchw_layers in zip(nhwc_values, nchw_values):
    for nhwc_layer, nchw_layer in zip(nhwc_layers, nchw_layers):
      scale = np.abs(nhwc_layer).max()
      np.testing.assert_allclose(nchw_layer, nhwc_layer, rtol=1e-4,
                                 atol=1e-5 * scale)


def test_gradients_reach_every_trainable_variable():
  ssd = ssd_vgg_300.SSDNet()
  anchors = ssd.anchors()
  # One ground-truth box equal to a central anchor of each layer, so every
  # head gets positives.
  boxes = [anchor_generator.anchor_corners(layer)[feat_h // 2, feat_w // 2, 0]
           for layer, (feat_h, feat_w) in zip(anchors, FEAT_SHAPES_300)]
  images = np.random.RandomState(6).uniform(
      -1., 1., [1, 300, 300, 3]).astype(np.float32)
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    _, localisations, logits, _ = _build(ssd, tf.constant(images))
    targets = ssd.bboxes_encode(tf.range(1, 7), tf.constant(np.stack(boxes)),
                                anchors)
    batched = [[layer[tf.newaxis] for layer in target] for target in targets]
    ssd.losses(logits, localisations, *batched)
    total = tf.add_n(tf.compat.v1.losses.get_losses() +
                     tf.compat.v1.losses.get_regularization_losses())
    variables = tf.compat.v1.trainable_variables()
    gradients = tf.gradients(total, variables)
    assert all(g is not None for g in gradients)
    sess.run(tf.compat.v1.global_variables_initializer())
    norms = sess.run([tf.norm(g) for g in gradients])
  for variable, norm in zip(variables, norms):
    assert np.isfinite(norm) and norm > 0., variable.op.name


def _op_names():
  return [op.name for op in tf.compat.v1.get_default_graph().get_operations()]


@pytest.mark.parametrize('keep_prob, is_training, expected_scopes', [
    (1., True, []),                              # The default: none at all.
    (0.5, True, ['dropout6', 'dropout7']),
    (0.5, False, []),
])
def test_dropout_after_conv6_and_conv7_only_when_asked(keep_prob, is_training,
                                                      expected_scopes):
  assert ssd_vgg_300.SSDNet.default_params.dropout_keep_prob == 1.
  ssd = ssd_vgg_300.SSDNet(ssd_vgg_300.SSDNet.make_params(
      dropout_keep_prob=keep_prob))
  with tf.Graph().as_default():
    _build(ssd, tf.compat.v1.placeholder(tf.float32, [1, 300, 300, 3]),
           is_training=is_training)
    scopes = sorted({name.split('/')[1] for name in _op_names()
                     if 'dropout' in name.lower()})
    assert _variables() == [('ssd_300_vgg/' + name, shape)
                            for name, shape in EXPECTED_VARIABLES]
  assert scopes == expected_scopes


def _batch_norm_variables():
  """EXPECTED_VARIABLES with batch norm: every convolution but the heads'
  loses its biases and gets a BatchNorm (beta, gamma, moving statistics)."""
  expected = []
  for name, shape in EXPECTED_VARIABLES:
    if name.endswith('/biases') and '_box/' not in name:
      scope = name[:-len('/biases')] + '/BatchNorm/'
      expected += [(scope + kind, shape) for kind in (
          'beta', 'gamma', 'moving_mean', 'moving_variance')]
    else:
      expected.append((name, shape))
  return expected


BATCH_NORM_SSD = ssd_vgg_300.SSDNet(ssd_vgg_300.SSDNet.make_params(
    batch_norm=True))
# 13 VGG16 convolutions, conv6, conv7 and 2 per extra block.
NUM_BATCH_NORMS = 13 + 2 + 8


def test_batch_norm_variables_updates_and_vgg_16_mapping():
  assert ssd_vgg_300.SSDNet.default_params.batch_norm is False
  with tf.Graph().as_default():
    _build(BATCH_NORM_SSD,
           tf.compat.v1.placeholder(tf.float32, [1, 300, 300, 3]))
    variables = tf.compat.v1.global_variables()
    assert sorted(_variables()) == sorted(
        ('ssd_300_vgg/' + name, shape) for name, shape in
        _batch_norm_variables())
    # The moving statistics are model variables (checkpoints, EMA, eval),
    # not trainable; the updates are in UPDATE_OPS.
    moving = [v for v in slim.get_model_variables() if 'moving_' in v.op.name]
    assert len(moving) == 2 * NUM_BATCH_NORMS
    assert not set(moving) & set(tf.compat.v1.trainable_variables())
    assert len(tf.compat.v1.get_collection(
        tf.compat.v1.GraphKeys.UPDATE_OPS)) == 2 * NUM_BATCH_NORMS
    assert len(tf.compat.v1.losses.get_regularization_losses()) == 35
    # vgg_16 maps the 13 convolution weights; the batch norms start fresh
    # (excluded like the SSD-only scopes).
    vgg_map = BATCH_NORM_SSD.vgg_16_variables(variables)
    assert len(vgg_map) == 13
    scopes = BATCH_NORM_SSD.non_vgg_scopes()
    assert 'ssd_300_vgg/conv1/conv1_1/BatchNorm' in scopes
    for variable in variables:
      excluded = any(variable.op.name.startswith(scope + '/')
                     for scope in scopes)
      assert excluded == (variable not in vgg_map.values()), variable.op.name


def _conv1_1(graph):
  """conv1_1's convolution output (before batch norm) and its ReLU."""
  scope = 'ssd_300_vgg/conv1/conv1_1/'
  return (graph.get_tensor_by_name(scope + 'Conv2D:0'),
          graph.get_tensor_by_name(scope + 'Relu:0'))


def test_batch_norm_moving_statistics_train_and_infer():
  images = np.random.RandomState(7).uniform(
      -1., 1., [1, 300, 300, 3]).astype(np.float32)
  decay = 0.99
  with tf.Graph().as_default() as graph, tf.compat.v1.Session() as sess:
    _build(BATCH_NORM_SSD, tf.constant(images), is_training=True)
    convolution, _ = _conv1_1(graph)
    # Only conv1_1 runs: its variables and its two updates.
    update_ops = tf.compat.v1.get_collection(
        tf.compat.v1.GraphKeys.UPDATE_OPS, 'ssd_300_vgg/conv1/conv1_1/')
    assert len(update_ops) == 2
    mean, variance = slim.get_model_variables(
        'ssd_300_vgg/conv1/conv1_1/BatchNorm/moving_')
    sess.run(tf.compat.v1.variables_initializer(
        slim.get_model_variables('ssd_300_vgg/conv1/conv1_1/')))
    pre_activations, _ = sess.run([convolution, update_ops])
    moving_mean, moving_variance = sess.run([mean, variance])
  # One update from (0, 1) towards the batch statistics of the 90000 pixels.
  batch_mean = pre_activations.mean(axis=(0, 1, 2))
  batch_variance = pre_activations.var(axis=(0, 1, 2))
  np.testing.assert_allclose(moving_mean, (1 - decay) * batch_mean,
                             rtol=1e-3, atol=1e-7)
  np.testing.assert_allclose(moving_variance,
                             decay + (1 - decay) * batch_variance, rtol=1e-3)

  # Inference normalises with the moving statistics (here set by hand).
  rng = np.random.RandomState(8)
  stats = {'moving_mean': rng.normal(0., 0.1, 64),
           'moving_variance': rng.uniform(0.5, 2., 64),
           'gamma': rng.uniform(0.5, 1.5, 64), 'beta': rng.normal(0., 0.1, 64)}
  with tf.Graph().as_default() as graph, tf.compat.v1.Session() as sess:
    _build(BATCH_NORM_SSD, tf.constant(images), is_training=False)
    sess.run(tf.compat.v1.variables_initializer(
        slim.get_model_variables('ssd_300_vgg/conv1/conv1_1/')))
    for variable in slim.get_model_variables(
        'ssd_300_vgg/conv1/conv1_1/BatchNorm'):
      variable.load(stats[variable.op.name.split('/')[-1]], sess)
    assert not tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
    pre_activations, activations = sess.run(_conv1_1(graph))
  epsilon = 1e-3  # slim.batch_norm's default.
  expected = np.maximum(
      (pre_activations - stats['moving_mean']) /
      np.sqrt(stats['moving_variance'] + epsilon) * stats['gamma'] +
      stats['beta'], 0.)
  np.testing.assert_allclose(activations, expected, rtol=1e-4, atol=1e-5)
