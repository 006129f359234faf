"""Tests of nets/box_coder.py: one encoding for NumPy arrays and TF tensors."""
import numpy as np
import tensorflow as tf

from nets import box_coder

PRIOR_SCALING = [0.1, 0.1, 0.2, 0.2]
# Anchor centred at (cy, cx) = (0.48, 0.48), 0.33 x 0.33 (block8's square).
ANCHOR = (np.float32(0.48), np.float32(0.48), np.float32(0.33),
          np.float32(0.33))
# Box centred at (cy, cx) = (0.48, 0.52), height 0.30, width 0.36.
BOX = np.array([0.33, 0.34, 0.63, 0.70], np.float32)
# Computed by hand, in the order (cx, cy, w, h):
#   (0.52 - 0.48) / 0.33 / 0.1 = 1.212121,  (0.48 - 0.48) / 0.33 / 0.1 = 0,
#   log(0.36 / 0.33) / 0.2 = 0.435057,      log(0.30 / 0.33) / 0.2 = -0.476551.
ENCODED_BOX = [1.212121, 0., 0.435057, -0.476551]


def _run(tensor):
  with tf.compat.v1.Session() as sess:
    return sess.run(tensor)


def test_encode_order_is_cx_cy_w_h():
  np.testing.assert_allclose(box_coder.encode(BOX, ANCHOR, PRIOR_SCALING),
                             ENCODED_BOX, rtol=1e-5, atol=1e-6)


def test_numpy_and_tensorflow_give_the_same_encoding_and_decoding():
  rng = np.random.RandomState(0)
  anchors = (rng.uniform(0.2, 0.8, [5, 1]).astype(np.float32),
             rng.uniform(0.2, 0.8, [5, 1]).astype(np.float32),
             rng.uniform(0.1, 0.5, [3]).astype(np.float32),
             rng.uniform(0.1, 0.5, [3]).astype(np.float32))
  localisations = rng.normal(size=[5, 3, 4]).astype(np.float32)
  with tf.Graph().as_default():
    tf_boxes = box_coder.decode(tf.constant(localisations), anchors,
                                PRIOR_SCALING)
    tf_encoded = box_coder.encode(tf_boxes, anchors, PRIOR_SCALING)
    assert tf.is_tensor(tf_boxes)
    tf_boxes, tf_encoded = _run([tf_boxes, tf_encoded])
  np_boxes = box_coder.decode(localisations, anchors, PRIOR_SCALING)
  assert isinstance(np_boxes, np.ndarray) and np_boxes.shape == (5, 3, 4)
  np.testing.assert_allclose(tf_boxes, np_boxes, rtol=1e-6, atol=1e-7)
  # Decoding inverts encoding.
  np.testing.assert_allclose(tf_encoded, localisations, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(
      box_coder.encode(np_boxes, anchors, PRIOR_SCALING), localisations,
      rtol=1e-4, atol=1e-5)


def test_decode_of_hand_encoding_gives_the_box_back():
  np.testing.assert_allclose(
      box_coder.decode(np.array(ENCODED_BOX, np.float32), ANCHOR,
                       PRIOR_SCALING), BOX, atol=1e-6)


def test_zero_localisation_decodes_to_the_anchor():
  np.testing.assert_allclose(
      box_coder.decode(np.zeros(4, np.float32), ANCHOR, PRIOR_SCALING),
      [0.315, 0.315, 0.645, 0.645], atol=1e-7)
