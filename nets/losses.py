"""The SSD loss: softmax cross-entropy with hard negatives mined per image,
and smooth L1 on the encoded boxes of the positives."""
import collections

import tensorflow as tf

from nets import anchor_generator
from nets import matcher

LossTerms = collections.namedtuple(
    'LossTerms', ['cross_entropy_pos', 'cross_entropy_neg', 'localization'])


def smooth_l1(x):
  """0.5 x^2 where |x| < 1, |x| - 0.5 elsewhere."""
  absolute = tf.abs(x)
  return tf.where(absolute < 1., 0.5 * tf.square(x), absolute - 0.5)


def ssd_losses(logits, localisations, gclasses, glocalisations, gious,
               negative_threshold=None, negative_ratio=3., alpha=1.,
               label_smoothing=0., scope=None):
  """The SSD loss, with hard negatives mined per image.

  Anchors have the states the target assigner gave them: positives
  (gclasses > 0, the matcher's threshold and forced matches), ignored
  (gclasses < 0) and background (0).  `negative_threshold` moves background
  anchors whose IoU with their best box is in the ignore band
  (`matcher.in_ignore_band`) to ignored; None (the default) keeps them all,
  as SSD-Caffe does.  In each image the `negative_ratio * max(positives, 1)`
  background anchors with the highest cross-entropy are the negatives; an
  image without positives is mined as if it had one, so it still teaches
  background.

  All terms are computed in float32 and divided by the number of positives
  in the batch (at least 1), and each is added to the losses collection:
    cross_entropy_pos: softmax cross-entropy summed over positives.
    cross_entropy_neg: the same over the mined negatives.
    localization: alpha * smooth L1 of (localisations - glocalisations),
      summed over the 4 coordinates of the positives.

  Args:
    logits: per-layer [B, H, W, A, num_classes] logits.
    localisations: per-layer [B, H, W, A, 4] encoded predictions.
    gclasses: per-layer [B, H, W, A] int class targets (`target_assigner`).
    glocalisations: per-layer [B, H, W, A, 4] encoded ground truth.
    gious: per-layer [B, H, W, A] IoU of each anchor with its box.
    negative_threshold: lower end of the ignore band, or None for no band.
    negative_ratio: negatives per positive in each image.
    alpha: weight of the localisation term.
    label_smoothing: if > 0, the one-hot targets become
      (1 - label_smoothing) * one_hot + label_smoothing / num_classes.
    scope: name scope.

  Returns:
    LossTerms(cross_entropy_pos, cross_entropy_neg, localization) scalars.
  """
  with tf.compat.v1.name_scope(scope, 'ssd_losses'):
    num_classes = int(logits[0].shape[-1])
    logits = anchor_generator.concat_layers(logits, [num_classes])
    localisations = anchor_generator.concat_layers(localisations, [4])
    gclasses = anchor_generator.concat_layers(gclasses, [], tf.int64)
    glocalisations = anchor_generator.concat_layers(glocalisations, [4])
    gious = anchor_generator.concat_layers(gious, [])

    # Ignored anchors (negative labels) get an all-zero one-hot; masked below.
    targets = tf.one_hot(gclasses, num_classes)
    targets = (1. - label_smoothing) * targets + label_smoothing / num_classes
    cross_entropy = tf.nn.softmax_cross_entropy_with_logits(
        labels=targets, logits=logits)  # [B, N]

    positives = gclasses > 0
    num_positives = tf.reduce_sum(tf.cast(positives, tf.float32), axis=1)
    candidates = tf.logical_and(
        tf.equal(gclasses, 0),
        tf.logical_not(matcher.in_ignore_band(gious, negative_threshold)))
    negatives = _hardest(cross_entropy, candidates,
                         tf.cast(negative_ratio * tf.maximum(num_positives,
                                                             1.), tf.int32))

    normaliser = tf.maximum(tf.reduce_sum(num_positives), 1.)
    def normalised_sum(values, mask):
      return tf.reduce_sum(tf.where(mask, values, 0.)) / normaliser
    terms = LossTerms(
        cross_entropy_pos=normalised_sum(cross_entropy, positives),
        cross_entropy_neg=normalised_sum(cross_entropy, negatives),
        localization=alpha * normalised_sum(
            tf.reduce_sum(smooth_l1(localisations - glocalisations), axis=2),
            positives))
    terms = LossTerms(*[tf.identity(value, name=name)
                        for name, value in terms._asdict().items()])
    for value in terms:
      tf.compat.v1.losses.add_loss(value)
    return terms


def _hardest(cross_entropy, candidates, num_negatives):
  """[B, N] mask of each image's `num_negatives` [B] candidates of highest
  cross-entropy (ties: lower anchor index first)."""
  ranking_loss = tf.where(candidates, tf.stop_gradient(cross_entropy), -1.)
  rank = tf.argsort(tf.argsort(ranking_loss, axis=1, direction='DESCENDING',
                               stable=True), axis=1, stable=True)
  return tf.logical_and(candidates, rank < num_negatives[:, tf.newaxis])
