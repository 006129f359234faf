"""utils/common/tf_compat.py makes tf_slim 1.1.0 work on today's TensorFlow."""
import os

import cv2
import numpy as np
import tensorflow as tf

import utils.common.tf_compat as tf_compat  # Any project package imports it first.
import tf_slim as slim
from tf_slim.data import tfexample_decoder

v1 = tf.compat.v1


def test_restored_names_resolve_to_the_moved_symbols():
  from tensorflow.python.framework import ops
  from tensorflow.python.ops import array_ops
  from tensorflow.python.ops import control_flow_ops
  assert ops.Tensor is tf.Tensor
  assert ops.IndexedSlices is tf.IndexedSlices
  assert callable(control_flow_ops.cond) and callable(array_ops.stack)
  # Restoring again changes nothing: names are only set when missing.
  assert tf_compat.restore_missing_names() == []


def test_every_module_that_imports_tf_slim_imports_the_compat_module_first():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  checked = 0
  for folder, dirs, files in os.walk(root):
    dirs[:] = [d for d in dirs if not d.startswith('.') and d != 'out']
    for name in files:
      if not name.endswith('.py') or name == 'tf_compat.py':
        continue
      with open(os.path.join(folder, name)) as module_file:
        imports = [line.strip() for line in module_file
                   if line.startswith(('from ', 'import '))]
      slim_at = [i for i, line in enumerate(imports)
                 if line.startswith(('import tf_slim', 'from tf_slim'))]
      if not slim_at:
        continue
      compat_at = [i for i, line in enumerate(imports)
                   if line.startswith(('from utils.common import tf_compat',
                                             'import utils.common.tf_compat'))]
      assert compat_at and compat_at[0] < slim_at[0], os.path.join(folder, name)
      checked += 1
  assert checked >= 5


def test_batch_norm_normalises_and_updates_moving_averages():
  rng = np.random.RandomState(0)
  batch = (rng.randn(8, 4, 4, 3) * 3 + 5).astype(np.float32)
  with tf.Graph().as_default():
    inputs = tf.constant(batch)
    with slim.arg_scope([slim.batch_norm], decay=0.5, scale=True):
      outputs = slim.batch_norm(inputs, is_training=True)
    update_ops = v1.get_collection(v1.GraphKeys.UPDATE_OPS)
    moving_mean = [v for v in v1.global_variables()
                   if v.op.name == 'BatchNorm/moving_mean'][0]
    assert {v.op.name for v in v1.global_variables()} == {
        'BatchNorm/beta', 'BatchNorm/gamma', 'BatchNorm/moving_mean',
        'BatchNorm/moving_variance'}
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      normalised, _ = sess.run([outputs, update_ops])
      mean_after_update = sess.run(moving_mean)
  np.testing.assert_allclose(normalised.mean(axis=(0, 1, 2)), 0, atol=1e-4)
  np.testing.assert_allclose(normalised.std(axis=(0, 1, 2)), 1, atol=1e-2)
  # decay 0.5: moving mean = 0.5 * 0 + 0.5 * batch mean.
  np.testing.assert_allclose(mean_after_update,
                             0.5 * batch.mean(axis=(0, 1, 2)), rtol=1e-4)


def test_tfrecord_image_decode_through_tfexample_decoder():
  rng = np.random.RandomState(1)
  image = rng.randint(0, 255, (6, 5, 3)).astype(np.uint8)
  # OpenCV encodes BGR; the decoder yields RGB.
  png = cv2.imencode('.png', image[:, :, ::-1])[1].tobytes()
  example = tf.train.Example(features=tf.train.Features(feature={
      'image/encoded': tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[png])),
      'image/format': tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[b'png'])),
  })).SerializeToString()
  with tf.Graph().as_default():
    decoder = tfexample_decoder.TFExampleDecoder(
        {'image/encoded': v1.FixedLenFeature((), tf.string),
         'image/format': v1.FixedLenFeature((), tf.string)},
        {'image': tfexample_decoder.Image(channels=3)})
    [decoded] = decoder.decode(tf.constant(example), ['image'])
    with v1.Session() as sess:
      np.testing.assert_array_equal(sess.run(decoded), image)


def test_slim_learning_train_runs_a_few_steps(tmp_path):
  with tf.Graph().as_default():
    global_step = v1.train.get_or_create_global_step()
    inputs = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    predictions = slim.fully_connected(inputs, 1, activation_fn=None)
    loss = v1.losses.mean_squared_error(tf.constant([[1.0], [2.0]]),
                                        predictions)
    train_op = slim.learning.create_train_op(
        loss, v1.train.GradientDescentOptimizer(0.01), global_step)
    final_loss = slim.learning.train(
        train_op, str(tmp_path), number_of_steps=3, save_summaries_secs=0,
        save_interval_secs=0, log_every_n_steps=1)
  assert np.isfinite(final_loss)
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith('model.ckpt-3')
