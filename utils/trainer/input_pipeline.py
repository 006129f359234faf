"""The training input: what the clones dequeue their batches from.

An input_fn(ssd_net, deploy_config) -> (batch_queue, batch_shape) builds it.
The default, `tfrecord_input_fn`, is the CPU pipeline TFRecords -> decode ->
SSD augmentation -> ground-truth encoding against the anchors -> batches,
flattened into a prefetch queue; `fixed_batch_input_fn` serves one fixed
batch instead (benchmarks of the model step alone, memorisation tests).
"""
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from preprocessing import preprocessing_factory
from utils.trainer import train_tools

_v1 = tf.compat.v1

# Name scope of the input pipeline (errors of its ops name it).
INPUT_SCOPE = 'input_pipeline'


def tfrecord_input_fn(config, dataset):
  """The default input_fn: the TFRecord pipeline of `dataset`.

  Args:
    config: the TrainingConfig (its data options, the model's name and data
      format, the match threshold and the seed: with a seed, each example's
      augmentation is seeded by its index).
    dataset: a datasets.dataset_factory dataset (its read()).

  Returns:
    input_fn(ssd_net, deploy_config) -> (batch_queue, batch_shape).
  """
  def input_fn(ssd_net, deploy_config):
    return build_input_queue(
        dataset, config.data, config.model.model_name,
        config.model.data_format, config.loss.match_threshold, config.seed,
        ssd_net, deploy_config)
  return input_fn


def build_input_queue(dataset, data, model_name, data_format,
                      match_threshold, seed, ssd_net, deploy_config):
  """The CPU input pipeline, ending in one prefetch queue for the clones.

  Returns:
    (batch_queue, batch_shape): a queue of flat lists of 1 + 3 x L tensors
    (the image batch, then gclasses, glocalisations and gious for each of
    the L feature layers) and the group sizes for reshape_list.
  """
  augment = data.augmentation == 'ssd'
  image_preprocessing_fn = preprocessing_factory.get_preprocessing(
      model_name, is_training=augment)
  anchors = ssd_net.anchors(ssd_net.params.img_shape)
  preprocess_and_encode = _preprocess_and_encode_fn(
      image_preprocessing_fn, augment, ssd_net, anchors, data_format,
      match_threshold, seed)
  with _v1.device(deploy_config.inputs_device()):
    with tf.name_scope(INPUT_SCOPE):
      batches = _batches(dataset, data, ssd_net, preprocess_and_encode, seed)
      batch = _v1.data.make_one_shot_iterator(batches).get_next()
      batch_queue = slim.prefetch_queue.prefetch_queue(
          list(batch), capacity=2 * deploy_config.num_clones)
  num_layers = len(anchors)
  return batch_queue, [1] + [num_layers] * 3


def _preprocess_and_encode_fn(image_preprocessing_fn, augment, ssd_net,
                              anchors, data_format, match_threshold, seed):
  """The map function of the pipeline: (index, example) -> the flat tuple
  of the image and its targets for every feature layer."""

  def preprocess(index, example):
    """Training augmentation, or the evaluation resize without it."""
    inputs = (example['image'], example['labels'], example['bboxes'])
    out_shape = ssd_net.params.img_shape
    if not augment:
      return image_preprocessing_fn(*inputs, out_shape=out_shape,
                                    data_format=data_format)[:3]
    # With a seed, each example's augmentation is seeded by its index, so a
    # run is reproducible whatever the number of parallel calls.
    example_seed = None if seed is None else tf.stack(
        [tf.constant(seed, tf.int64), index])
    return image_preprocessing_fn(*inputs, out_shape=out_shape,
                                  data_format=data_format, seed=example_seed)

  def preprocess_and_encode(index, example):
    image, labels, bboxes = preprocess(index, example)
    gclasses, glocalisations, gious = ssd_net.bboxes_encode(
        labels, bboxes, anchors, match_threshold=match_threshold)
    return tuple(train_tools.reshape_list(
        [image, gclasses, glocalisations, gious]))
  return preprocess_and_encode


def _batches(dataset, data, ssd_net, preprocess_and_encode, seed):
  """The tf.data pipeline of batches of `dataset`'s shuffled examples."""
  # Large JPEGs (a short side of 4x the input's or more) decode at
  # 1/2 to 1/8 size, keeping twice the input's side (bench/README.md).
  examples = dataset.read(
      num_readers=data.num_readers, shuffle=True, seed=seed,
      shuffle_buffer_size=dataset.shuffle_buffer_size(
          data.shuffle_buffer_mib),
      decode_min_side=2 * max(ssd_net.params.img_shape))
  batches = (examples
             .enumerate()
             .map(preprocess_and_encode,
                  num_parallel_calls=data.num_preprocessing_threads)
             .batch(data.batch_size, drop_remainder=True)
             .prefetch(2))
  # Without a seed the order is random anyway: let parallel calls
  # deliver out of order rather than wait for the slowest.
  options = tf.data.Options()
  options.deterministic = seed is not None
  return batches.with_options(options)


class FixedBatchQueue(object):
  """Stands in for the prefetch queue: every dequeue() reads one fixed batch.

  The batch lives in local (not saved) variables, so a graph holding it
  stays small to serialise.
  """

  def __init__(self, arrays):
    with tf.name_scope('fixed_batch'):
      self._variables = [
          _v1.Variable(array, trainable=False, name='batch_%d' % i,
                       collections=[_v1.GraphKeys.LOCAL_VARIABLES])
          for i, array in enumerate(arrays)]

  def dequeue(self):
    return [variable.read_value() for variable in self._variables]


def fixed_batch_input_fn(arrays, batch_shape):
  """An input_fn serving one batch (a flat list of arrays) at every step.

  For the model step alone (benchmarks) and memorisation checks (tests).
  """
  def input_fn(unused_ssd_net, unused_deploy_config):
    return FixedBatchQueue(arrays), batch_shape
  return input_fn


def read_batch(input_fn, ssd_net, deploy_config, seed=None):
  """One batch of `input_fn`'s queue, as numpy arrays (in its own graph).

  Returns:
    (flat list of arrays, batch_shape).
  """
  with tf.Graph().as_default():
    if seed is not None:
      _v1.set_random_seed(seed)
    queue, batch_shape = input_fn(ssd_net, deploy_config)
    batch = queue.dequeue()
    with _v1.Session() as sess:
      coord = _v1.train.Coordinator()
      threads = _v1.train.start_queue_runners(sess, coord)
      try:
        arrays = sess.run(batch)
      finally:
        coord.request_stop()
        coord.join(threads, stop_grace_period_secs=10)
  return arrays, batch_shape
