"""Tests of utils/trainer/train_tools.py."""
import numpy as np
import pytest
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from deployment import model_deploy
from utils.trainer import train_tools

v1 = tf.compat.v1


class TestReshapeList:

  def test_flatten_then_regroup_is_identity(self):
    nested = ['image', ['c1', 'c2', 'c3'], ['l1', 'l2', 'l3'], 'x']
    flat = train_tools.reshape_list(nested)
    assert flat == ['image', 'c1', 'c2', 'c3', 'l1', 'l2', 'l3', 'x']
    assert train_tools.reshape_list(flat, [1, 3, 3, 1]) == nested

  def test_ssd_batch_has_19_tensors(self):
    nested = ['image'] + [['t%d_%d' % (k, i) for i in range(6)]
                          for k in range(3)]
    assert len(train_tools.reshape_list(nested)) == 19

  def test_wrong_shape_raises(self):
    with pytest.raises(ValueError, match='covers 3 items'):
      train_tools.reshape_list([1, 2, 3, 4], [1, 2])


def _learning_rates(steps, **schedule):
  """The rate at each of `steps` (initial rate 0.1, 20 steps per decay)."""
  schedule = dict(dict(learning_rate=0.1, decay_type='exponential',
                       steps_per_decay=20, decay_factor=0.5,
                       end_learning_rate=0.001), **schedule)
  with tf.Graph().as_default():
    global_step = v1.placeholder(tf.int64, [])
    rate = train_tools.configure_learning_rate(global_step, **schedule)
    with v1.Session() as sess:
      return [sess.run(rate, {global_step: s}) for s in steps]


class TestLearningRate:

  def test_decay_steps_counts_images_per_step(self):
    # 80 samples / (4 images x 2 clones) = 10 steps an epoch, x 2 epochs.
    assert train_tools.decay_steps(80, 8, 2.0) == 20
    # Two synchronous replicas aggregated per step: half the steps.
    assert train_tools.decay_steps(80, 16, 2.0) == 10

  def test_exponential_is_a_staircase(self):
    rates = _learning_rates([0, 19, 20, 39, 40])
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.05, 0.05, 0.025])

  def test_fixed(self):
    rates = _learning_rates([0, 99], decay_type='fixed')
    np.testing.assert_allclose(rates, [0.1, 0.1])

  def test_integer_rate_is_a_float_rate(self):
    rates = _learning_rates([0, 5], decay_type='fixed', learning_rate=0,
                            warmup_steps=4)
    np.testing.assert_array_equal(rates, [0.0, 0.0])

  def test_polynomial_reaches_end_rate(self):
    rates = _learning_rates([0, 10, 20, 30], decay_type='polynomial')
    np.testing.assert_allclose(rates, [0.1, 0.0505, 0.001, 0.001], rtol=1e-5)

  def test_warmup_ramps_linearly_then_follows_the_schedule(self):
    rates = _learning_rates([0, 1, 3, 19, 20], warmup_steps=4)
    np.testing.assert_allclose(rates, [0.025, 0.05, 0.1, 0.1, 0.05],
                               rtol=1e-6)

  def test_piecewise_changes_at_each_boundary(self):
    rates = _learning_rates([0, 9, 10, 19, 20, 100], decay_type='piecewise',
                            boundaries=[10, 20], values=[1.0, 0.1, 0.01])
    np.testing.assert_allclose(rates, [1.0, 1.0, 0.1, 0.1, 0.01, 0.01])

  def test_piecewise_without_values_divides_by_ten(self):
    rates = _learning_rates([9, 10, 19, 20], decay_type='piecewise',
                            boundaries=[10, 20])
    np.testing.assert_allclose(rates, [0.1, 0.01, 0.01, 0.001], rtol=1e-6)

  def test_piecewise_with_warmup(self):
    # Step s < 5 at (s + 1) / 5 of the schedule's 1.0.
    rates = _learning_rates([0, 3, 4, 10], decay_type='piecewise',
                            boundaries=[10], values=[1.0, 0.5],
                            warmup_steps=5)
    np.testing.assert_allclose(rates, [0.2, 0.8, 1.0, 0.5], rtol=1e-6)

  @pytest.mark.parametrize('boundaries, values, message', [
      ([], [], 'needs --learning_rate_boundaries'),
      ([20, 10], [], 'must increase'),
      ([10], [1.0], 'one value more')])
  def test_piecewise_errors(self, boundaries, values, message):
    with pytest.raises(ValueError, match=message):
      _learning_rates([0], decay_type='piecewise', boundaries=boundaries,
                      values=values)

  def test_cosine(self):
    # 0.1 * (1 + cos(pi * s / 100)) / 2: cos(pi / 4) = 0.70710678.
    rates = _learning_rates([0, 25, 50, 100, 150], decay_type='cosine',
                            end_learning_rate=0.0, total_steps=100)
    np.testing.assert_allclose(rates, [0.1, 0.0853553, 0.05, 0.0, 0.0],
                               rtol=1e-5, atol=1e-9)

  def test_cosine_with_warmup(self):
    # Ramp 0.1 * (s + 1) / 10 to step 9, then from 0.1 at step 10 half a
    # cosine over 100 steps to 0.001: halfway (step 60) 0.001 + 0.099 / 2.
    rates = _learning_rates([0, 4, 9, 10, 60, 110, 200], decay_type='cosine',
                            warmup_steps=10, total_steps=110)
    np.testing.assert_allclose(
        rates, [0.01, 0.05, 0.1, 0.1, 0.0505, 0.001, 0.001], rtol=1e-5)

  def test_cosine_needs_a_last_step(self):
    with pytest.raises(ValueError, match='--max_number_of_steps'):
      _learning_rates([0], decay_type='cosine', warmup_steps=10,
                      total_steps=10)

  def test_unknown_type_lists_valid_ones(self):
    with pytest.raises(ValueError,
                       match='cosine, exponential, fixed, piecewise, '
                       'polynomial'):
      _learning_rates([0], decay_type='linear')


class TestOptimizer:

  @pytest.mark.parametrize('name, cls', [
      ('adadelta', v1.train.AdadeltaOptimizer),
      ('adagrad', v1.train.AdagradOptimizer),
      ('adam', v1.train.AdamOptimizer),
      ('ftrl', v1.train.FtrlOptimizer),
      ('momentum', v1.train.MomentumOptimizer),
      ('rmsprop', v1.train.RMSPropOptimizer),
      ('sgd', v1.train.GradientDescentOptimizer),
  ])
  def test_each_optimizer_takes_a_step(self, name, cls):
    with tf.Graph().as_default():
      optimizer = train_tools.configure_optimizer(name, 0.1)
      assert isinstance(optimizer, cls)
      var = v1.get_variable('w', initializer=1.0)
      step = optimizer.minimize(tf.square(var))
      with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        sess.run(step)
        assert sess.run(var) < 1.0

  def test_adam_and_rmsprop_epsilons_are_separate(self):
    optimizer = train_tools.configure_optimizer('adam', 0.1)
    assert optimizer._epsilon == 1e-8
    optimizer = train_tools.configure_optimizer('rmsprop', 0.1)
    assert optimizer._epsilon == 1.0
    optimizer = train_tools.configure_optimizer('adam', 0.1, adam_epsilon=0.5)
    assert optimizer._epsilon == 0.5

  def test_unknown_optimizer_lists_valid_ones(self):
    with pytest.raises(ValueError, match='adadelta, adagrad, adam'):
      train_tools.configure_optimizer('lamb', 0.1)
    with pytest.raises(ValueError, match='adam_epsilo'):
      train_tools.configure_optimizer('adam', 0.1, adam_epsilo=1.0)


class TestVariablesToTrain:

  def _make_variables(self):
    for name in ('net/block1/w', 'net/block10/w', 'net/block2/w'):
      v1.get_variable(name, [1])

  def test_all_when_no_scopes(self):
    with tf.Graph().as_default():
      self._make_variables()
      assert len(train_tools.get_variables_to_train('')) == 3

  def test_scopes_match_whole_components(self):
    with tf.Graph().as_default():
      self._make_variables()
      names = [v.op.name for v in
               train_tools.get_variables_to_train('net/block1, net/block2')]
      assert names == ['net/block1/w', 'net/block2/w']

  def test_empty_scope_is_an_error(self):
    with tf.Graph().as_default():
      self._make_variables()
      with pytest.raises(ValueError, match='net/blok1'):
        train_tools.get_variables_to_train('net/blok1')


def test_deploy_loss_summary_summarises_first_clone_only():
  config = model_deploy.DeploymentConfig(num_clones=2, clone_on_cpu=True)

  def clone_fn():
    inputs = tf.ones([2, 3])
    net = slim.fully_connected(inputs, 4, scope='fc')
    v1.losses.add_loss(tf.reduce_mean(net), v1.GraphKeys.LOSSES)
    return {'fc': net}

  with tf.Graph().as_default():
    clones, scope, update_ops, summaries = train_tools.deploy_loss_summary(
        config, clone_fn)
    assert len(clones) == 2 and scope == 'clone_0/' and update_ops == []
    with v1.Session(config=train_tools.session_config(config)) as sess:
      sess.run(v1.global_variables_initializer())
      merged = v1.Summary.FromString(sess.run(v1.summary.merge(
          list(summaries))))
    tags = {value.tag for value in merged.value}
    assert tags == {'activations/fc', 'sparsity/fc', 'losses/Mean',
                    'variables/fc/weights', 'variables/fc/biases'}


def test_session_config():
  config = train_tools.session_config(
      model_deploy.DeploymentConfig(num_clones=3, clone_on_cpu=True))
  assert config.allow_soft_placement
  assert config.device_count['CPU'] == 3
  assert config.gpu_options.allow_growth
  config = train_tools.session_config(model_deploy.DeploymentConfig(), 0.5)
  assert config.gpu_options.per_process_gpu_memory_fraction == 0.5
  assert 'CPU' not in config.device_count


def test_precision_rewrites():
  deploy_config = model_deploy.DeploymentConfig()

  def rewrites(precision):
    return train_tools.session_config(
        deploy_config, precision=precision).graph_options.rewrite_options
  on = rewrites('float32').ON
  assert rewrites('mixed_bfloat16').auto_mixed_precision_onednn_bfloat16 == on
  assert rewrites('mixed_float16').auto_mixed_precision == on
  assert rewrites('float32').auto_mixed_precision_onednn_bfloat16 != on
  with pytest.raises(ValueError, match='float32, mixed_bfloat16'):
    train_tools.session_config(deploy_config, precision='int8')
  optimizer = v1.train.GradientDescentOptimizer(0.1)
  assert train_tools.wrap_optimizer_for_precision(
      optimizer, 'mixed_bfloat16') is optimizer
  assert isinstance(
      train_tools.wrap_optimizer_for_precision(optimizer, 'mixed_float16'),
      v1.mixed_precision.MixedPrecisionLossScaleOptimizer)
