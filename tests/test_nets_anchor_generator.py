"""Tests of nets/anchor_generator.py and of SSD300's feature shapes."""
import numpy as np
import pytest
import tensorflow as tf

from nets import anchor_generator
from nets import ssd_vgg_300

SSD = ssd_vgg_300.SSDNet()
ANCHORS = SSD.anchors()
FEAT_SHAPES_300 = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]


def test_ssd300_has_8732_anchors():
  counts = [cy.shape[0] * cy.shape[1] * h.shape[0]
            for cy, _, h, _ in ANCHORS]
  assert counts == [38 * 38 * 4, 19 * 19 * 6, 10 * 10 * 6, 5 * 5 * 6,
                    3 * 3 * 4, 1 * 1 * 4]
  assert sum(counts) == 8732


# Per layer, computed by hand from step, sizes (s_k, s_k+1) and last ratio r:
# first centre 0.5 * step / 300, last centre (H - 0.5) * step / 300,
# small square s_k / 300, large square sqrt(s_k * s_k+1) / 300, and the last
# anchor's height s_k / sqrt(r) / 300 and width s_k * sqrt(r) / 300.
@pytest.mark.parametrize('layer, expected', [
    (0, (0.013333, 1.0, 0.07, 0.102470, 0.098995, 0.049497)),
    (1, (0.026667, 0.986667, 0.15, 0.222486, 0.259808, 0.086603)),
    (2, (0.053333, 1.013333, 0.33, 0.410244, 0.571577, 0.190526)),
    (3, (0.106667, 0.96, 0.51, 0.593212, 0.883346, 0.294449)),
    (4, (0.166667, 0.833333, 0.69, 0.774790, 0.975807, 0.487904)),
    (5, (0.5, 0.5, 0.87, 0.955772, 1.230366, 0.615183)),
])
def test_first_and_last_anchor_of_each_layer(layer, expected):
  first_centre, last_centre, small, large, last_h, last_w = expected
  cy, cx, h, w = ANCHORS[layer]
  assert cy.dtype == np.float32 and h.dtype == np.float32
  assert cy.shape == cx.shape == FEAT_SHAPES_300[layer] + (1,)
  np.testing.assert_allclose([cy[0, 0, 0], cx[0, 0, 0], h[0], w[0]],
                             [first_centre, first_centre, small, small],
                             atol=1e-6)
  np.testing.assert_allclose([cy[-1, -1, 0], cx[-1, -1, 0], h[-1], w[-1]],
                             [last_centre, last_centre, last_h, last_w],
                             atol=1e-6)
  np.testing.assert_allclose([h[1], w[1]], [large, large], atol=1e-6)
  # Rows vary along y only, columns along x only.
  assert np.all(cy[:, 0] == cy[:, -1]) and np.all(cx[0] == cx[-1])


def test_anchors_follow_the_image_shape():
  cy, cx, h, w = SSD.anchors(img_shape=(600, 300))[0]
  np.testing.assert_allclose([cy[0, 0, 0], cx[0, 0, 0], h[0], w[0]],
                             [4. / 600, 4. / 300, 21. / 600, 21. / 300])
  assert cy.shape == (75, 38, 1)


@pytest.mark.parametrize('img_shape, expected', [
    ((300, 300), FEAT_SHAPES_300),
    # 512: 256, 128, 64 | 32 | (32 - 1) // 2 + 1 = 16, 8 | 8 - 2, 6 - 2.
    ((512, 512), [(64, 64), (32, 32), (16, 16), (8, 8), (6, 6), (4, 4)]),
    # 301 rounds up at every pool: 151, 76, 38 | 19 | 10, 5 | 3, 1.
    ((301, 600), [(38, 75), (19, 38), (10, 19), (5, 10), (3, 8), (1, 6)]),
])
def test_feature_shapes_are_computed_from_the_input_shape(img_shape,
                                                          expected):
  assert SSD.feat_shapes(img_shape) == expected
  # Never stored: the parameters and the default shapes stay the same.
  assert SSD.params == ssd_vgg_300.SSDNet.default_params
  assert SSD.feat_shapes() == FEAT_SHAPES_300


def test_anchor_corners_and_flattening_follow_the_h_w_a_order():
  anchors = anchor_generator.layer_anchors((100, 200), (2, 3), (10., 40.),
                                           [2.], step=50)
  corners = anchor_generator.anchor_corners(anchors)
  assert corners.shape == (2, 3, 3, 4)
  # Cell (1, 2), third anchor (ratio 2): centre (75, 125) px, height
  # 10 / sqrt(2), width 10 * sqrt(2), normalised by (100, 200).
  half_h, half_w = 5. / np.sqrt(2.), 5. * np.sqrt(2.)
  np.testing.assert_allclose(
      corners[1, 2, 2], [(75 - half_h) / 100, (125 - half_w) / 200,
                         (75 + half_h) / 100, (125 + half_w) / 200],
      rtol=1e-6)
  (cy, cx, h, w), shapes = anchor_generator.flatten_anchors([anchors,
                                                             anchors])
  assert shapes == [(2, 3, 3), (2, 3, 3)] and cy.shape == (36,)
  # Flat index (1 * 3 + 2) * 3 + 2 = 17 is that anchor.
  np.testing.assert_allclose([cy[17], cx[17], h[17], w[17]],
                             [0.75, 0.625, 0.1 / np.sqrt(2.),
                              0.05 * np.sqrt(2.)], rtol=1e-6)


def test_concat_then_split_layers_gives_the_layers_back():
  layers = [np.arange(2 * 2 * 3 * 1 * 4).reshape(2, 2, 3, 1, 4),
            np.arange(2 * 1 * 1 * 2 * 4).reshape(2, 1, 1, 2, 4) + 100]
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    flat = anchor_generator.concat_layers(
        [tf.constant(layer) for layer in layers], [4])
    split = anchor_generator.split_layers(flat[1], [(2, 3, 1), (1, 1, 2)],
                                          [4])
    flat, split = sess.run([flat, split])
  assert flat.shape == (2, 8, 4) and flat.dtype == np.float32
  np.testing.assert_array_equal(flat[0, 6], layers[1][0, 0, 0, 0])
  for layer, values in zip(layers, split):
    np.testing.assert_array_equal(values, layer[1])


def test_anchor_size_presets_and_explicit_sizes():
  default = ssd_vgg_300.SSDNet.default_params.anchor_sizes
  assert default == ((21., 45.), (45., 99.), (99., 153.), (153., 207.),
                     (207., 261.), (261., 315.))
  voc = ((30., 60.), (60., 111.), (111., 162.), (162., 213.), (213., 264.),
         (264., 315.))
  for given in ('voc', '30,60,111,162,213,264,315',
                [30, 60, 111, 162, 213, 264, 315], [list(p) for p in voc]):
    assert ssd_vgg_300.SSDNet.make_params(anchor_sizes=given).anchor_sizes == (
        voc)
  assert ssd_vgg_300.SSDNet.make_params(
      anchor_sizes='ssd_tensorflow').anchor_sizes == default
  for bad in ('pascal', '30,60', [30, 60, 111]):
    with pytest.raises(ValueError, match='anchor sizes'):
      ssd_vgg_300.SSDNet.make_params(anchor_sizes=bad)


def test_voc_preset_gives_the_voc_caffe_conv4_3_anchor():
  # conv4_3's small square at cell (0, 0): 21 px (SSD-Tensorflow) against
  # 30 px (VOC Caffe), same centre (4, 4) px: IoU 21^2 / 30^2 = 0.49.
  voc = ssd_vgg_300.SSDNet(ssd_vgg_300.SSDNet.make_params(anchor_sizes='voc'))
  cy, cx, h, w = voc.anchors()[0]
  np.testing.assert_allclose([cy[0, 0, 0], cx[0, 0, 0], h[0], w[0], h[1]],
                             [4. / 300, 4. / 300, 0.1, 0.1,
                              np.sqrt(30. * 60.) / 300], rtol=1e-6)
  assert (SSD.anchors()[0][2][0] / h[0]) ** 2 == pytest.approx(0.49)


def test_torchvision_preset_clamps_only_the_boxes_larger_than_the_image():
  plain = ssd_vgg_300.SSDNet(ssd_vgg_300.SSDNet.make_params(
      anchor_sizes='ssd_tensorflow'))
  clipped = ssd_vgg_300.SSDNet(ssd_vgg_300.SSDNet.make_params(
      anchor_sizes='torchvision'))
  assert clipped.params.anchor_clip and not plain.params.anchor_clip
  (_, _, plain_h, plain_w), _ = anchor_generator.flatten_anchors(
      plain.anchors())
  (_, _, clip_h, clip_w), _ = anchor_generator.flatten_anchors(
      clipped.anchors())
  changed = np.flatnonzero((plain_h != clip_h) | (plain_w != clip_w))
  # 261 px * sqrt(2) = 369 px: the 1x1 map's wide and tall boxes only.
  assert changed.tolist() == [8732 - 2, 8732 - 1]
  np.testing.assert_allclose(plain_w[changed[0]], 261 * np.sqrt(2) / 300,
                             rtol=1e-6)
  assert clip_w[changed[0]] == 1.0 and clip_h[changed[1]] == 1.0
  np.testing.assert_array_equal(np.minimum(plain_h, 1), clip_h)
  np.testing.assert_array_equal(np.minimum(plain_w, 1), clip_w)
