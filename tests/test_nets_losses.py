"""Tests of nets/losses.py (via SSDNet.losses): hard negatives per image,
the explicit ignored state and the ignore band."""
import math

import numpy as np
import pytest
import tensorflow as tf

from nets import ssd_vgg_300

SSD = ssd_vgg_300.SSDNet()
LOSS_NAMES = ('cross_entropy_pos', 'cross_entropy_neg', 'localization')


def _run_losses(logits, localisations, gclasses, glocalisations, gious,
                logits_dtype=tf.float32, **kwargs):
  """Runs SSD.losses on per-layer NumPy arrays; returns the three values and
  checks they are the losses collection's, in float32."""
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    terms = SSD.losses(
        [tf.constant(layer, logits_dtype) for layer in logits],
        [tf.constant(layer, logits_dtype) for layer in localisations],
        [tf.constant(layer, tf.int64) for layer in gclasses],
        [tf.constant(layer, tf.float32) for layer in glocalisations],
        [tf.constant(layer, tf.float32) for layer in gious], **kwargs)
    collected = tf.compat.v1.losses.get_losses()
    assert [loss.op.name for loss in collected] == [
        'ssd_losses/' + name for name in LOSS_NAMES]
    assert all(loss.dtype == tf.float32 for loss in collected)
    assert terms._fields == LOSS_NAMES
    return sess.run(collected)


def test_hand_computed_loss_mines_negatives_per_image():
  # Two images, two layers of 4 and 2 anchors, 3 classes, zero logits: every
  # anchor's cross-entropy is log(3), whatever its label.
  logits = [np.zeros([2, 2, 2, 1, 3]), np.zeros([2, 1, 1, 2, 3])]
  localisations = [np.zeros([2, 2, 2, 1, 4]), np.zeros([2, 1, 1, 2, 4])]
  gclasses = [np.zeros([2, 2, 2, 1]), np.zeros([2, 1, 1, 2])]
  glocalisations = [np.zeros([2, 2, 2, 1, 4]), np.zeros([2, 1, 1, 2, 4])]
  gious = [np.zeros([2, 2, 2, 1]), np.zeros([2, 1, 1, 2])]
  # Image 0: one positive (5 negative candidates left).
  gclasses[0][0, 1, 0, 0] = 2
  gious[0][0, 1, 0, 0] = 0.7
  glocalisations[0][0, 1, 0, 0] = [0.5, 2., 0., -1.]
  # Image 1: no positive; one anchor at IoU 0.45 is ignored (threshold 0.4).
  gious[1][1, 0, 0, 1] = 0.45
  values = _run_losses(logits, localisations, gclasses, glocalisations,
                       gious, negative_threshold=0.4, alpha=2.)
  # Normaliser: 1 positive in the batch.  Negatives: 3 * 1 in image 0 and,
  # mined as if it had one positive, 3 in image 1.  Smooth L1 of
  # (0.5, 2, 0, -1): 0.125 + 1.5 + 0 + 0.5 = 2.125, times alpha = 2.
  np.testing.assert_allclose(values, [math.log(3), 6 * math.log(3), 4.25],
                             rtol=1e-6)


def _numpy_losses(logits, localisations, gclasses, glocalisations, gious,
                  negative_threshold=None, negative_ratio=3., alpha=1.,
                  label_smoothing=0.):
  """Reference SSD loss, image by image, on per-layer NumPy arrays."""
  def flat(layers, *inner):
    return np.concatenate([layer.reshape((len(layer), -1) + inner)
                           for layer in layers], axis=1).astype(np.float64)
  num_classes = logits[0].shape[-1]
  logits, localisations = flat(logits, num_classes), flat(localisations, 4)
  gclasses = flat(gclasses).astype(int)
  glocalisations, gious = flat(glocalisations, 4), flat(gious)
  cross_pos = cross_neg = localization = 0.
  num_positives = 0
  for image in range(len(logits)):
    log_probs = logits[image] - np.log(
        np.exp(logits[image]).sum(axis=1, keepdims=True))
    labels = np.maximum(gclasses[image], 0)  # Ignored ones are masked.
    targets = (np.eye(num_classes)[labels] * (1 - label_smoothing) +
               label_smoothing / num_classes)
    cross_entropy = -(targets * log_probs).sum(axis=1)
    positives = gclasses[image] > 0
    cross_pos += cross_entropy[positives].sum()
    error = np.abs(localisations[image] - glocalisations[image])[positives]
    localization += np.where(error < 1, 0.5 * error ** 2, error - 0.5).sum()
    band = (np.zeros(len(gious[image]), bool) if negative_threshold is None
            else gious[image] >= negative_threshold)
    candidates = np.flatnonzero((gclasses[image] == 0) & ~band)
    hardest = candidates[np.argsort(-cross_entropy[candidates])]
    num_negatives = int(negative_ratio * max(positives.sum(), 1))
    cross_neg += cross_entropy[hardest[:num_negatives]].sum()
    num_positives += positives.sum()
  normaliser = max(num_positives, 1)
  return [cross_pos / normaliser, cross_neg / normaliser,
          alpha * localization / normaliser]


def _random_targets(rng, batch, layer_shapes, num_classes, positive_rate):
  logits, localisations, gclasses, glocalisations, gious = [], [], [], [], []
  for shape in layer_shapes:
    shape = (batch,) + shape
    logits.append(rng.normal(0., 2., shape + (num_classes,)))
    localisations.append(rng.normal(0., 1.5, shape + (4,)))
    positive = rng.uniform(size=shape) < positive_rate
    positive[-1] = False  # The last image has no positive.
    ignored = ~positive & (rng.uniform(size=shape) < 0.1)
    gclasses.append(np.where(positive, rng.randint(1, num_classes, shape),
                             np.where(ignored, -1, 0)))
    glocalisations.append(np.where(positive[..., np.newaxis],
                                   rng.normal(size=shape + (4,)), 0.))
    gious.append(np.where(positive, rng.uniform(0.5, 1., shape),
                            rng.uniform(0., 0.6, shape)))
  return logits, localisations, gclasses, glocalisations, gious


@pytest.mark.parametrize('kwargs', [
    {},
    {'negative_threshold': 0.4, 'negative_ratio': 2., 'alpha': 0.5},
    {'label_smoothing': 0.1},
])
def test_loss_matches_numpy_reference(kwargs):
  rng = np.random.RandomState(1)
  inputs = _random_targets(rng, 3, [(4, 4, 3), (2, 2, 6), (1, 1, 4)],
                           num_classes=5, positive_rate=0.08)
  assert np.sum(inputs[2][0][0] > 0) > 0
  np.testing.assert_allclose(_run_losses(*inputs, **kwargs),
                             _numpy_losses(*inputs, **kwargs), rtol=1e-5)


def test_batch_without_positive_gives_finite_loss_and_gradients():
  rng = np.random.RandomState(2)
  logits, localisations, gclasses, glocalisations, gious = _random_targets(
      rng, 2, [(3, 3, 4)], num_classes=4, positive_rate=0.)
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    logits_variable = tf.Variable(logits[0], dtype=tf.float32)
    localisations_variable = tf.Variable(localisations[0], dtype=tf.float32)
    terms = SSD.losses([logits_variable], [localisations_variable],
                       [tf.constant(gclasses[0])],
                       [tf.constant(glocalisations[0], tf.float32)],
                       [tf.constant(gious[0], tf.float32)])
    gradients = tf.gradients(sum(terms),
                             [logits_variable, localisations_variable])
    sess.run(tf.compat.v1.global_variables_initializer())
    values, gradients = sess.run([terms, gradients])
  assert values.localization == 0. and values.cross_entropy_pos == 0.
  np.testing.assert_allclose(values, _numpy_losses(
      logits, localisations, gclasses, glocalisations, gious), rtol=1e-5)
  assert all(np.all(np.isfinite(g)) for g in gradients)
  # Exactly 3 negatives per image get a gradient.
  assert np.sum(np.any(gradients[0] != 0, axis=-1)) == 6


def test_bfloat16_network_outputs_are_lost_in_float32():
  rng = np.random.RandomState(3)
  inputs = _random_targets(rng, 2, [(3, 3, 4)], num_classes=4,
                           positive_rate=0.2)
  # Round the logits to bfloat16 first so both sides see the same values.
  bfloat16 = tf.bfloat16.as_numpy_dtype
  rounded = [layer.astype(bfloat16).astype(np.float64)
             for layer in inputs[0] + inputs[1]]
  inputs = (rounded[:1], rounded[1:]) + inputs[2:]
  np.testing.assert_allclose(_run_losses(*inputs, logits_dtype=tf.bfloat16),
                             _numpy_losses(*inputs), rtol=1e-5)


def test_ignored_anchors_are_never_negatives():
  # One image of 4 anchors, zero logits; anchor 0 positive, anchors 1 and 2
  # ignored (label -1), anchor 3 background: 1 negative although 3 allowed.
  logits = [np.zeros([1, 1, 1, 4, 3])]
  localisations = [np.zeros([1, 1, 1, 4, 4])]
  gclasses = [np.array([[[[1, -1, -1, 0]]]])]
  values = _run_losses(logits, localisations, gclasses, localisations,
                       [np.zeros([1, 1, 1, 4])])
  np.testing.assert_allclose(values, [math.log(3), math.log(3), 0.],
                             rtol=1e-6)


def test_no_negative_threshold_is_the_match_threshold_no_band():
  # Targets from the encoder at match threshold 0.4: every background anchor
  # has IoU < 0.4, so negative_threshold None and 0.4 give the same loss,
  # and 0.2 ignores the 0.2-0.4 band.
  anchors = [SSD.anchors()[2]]  # block8, 10 x 10 x 6.
  rng = np.random.RandomState(5)
  logits = [rng.normal(size=[1, 10, 10, 6, 21])]
  localisations = [rng.normal(size=[1, 10, 10, 6, 4])]
  values = {}
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    targets = SSD.bboxes_encode(tf.constant([3]),
                                tf.constant([[0.2, 0.25, 0.6, 0.7]]),
                                anchors, match_threshold=0.4)
    gclasses, glocalisations, gious = sess.run(targets)
  batched = [[layer[np.newaxis] for layer in kind]
             for kind in (gclasses, glocalisations, gious)]
  band = (gclasses[0] == 0) & (gious[0] >= 0.2)
  assert np.sum(gclasses[0] > 0) > 0 and np.sum(band) > 0
  for threshold in (None, 0.4, 0.2):
    values[threshold] = _run_losses(logits, localisations, *batched,
                                    negative_threshold=threshold)
  np.testing.assert_array_equal(values[None], values[0.4])
  np.testing.assert_allclose(values[0.2], _numpy_losses(
      logits, localisations, *batched, negative_threshold=0.2), rtol=1e-5)
  assert values[0.2][1] != values[None][1]
