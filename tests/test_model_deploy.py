"""Tests of deployment/model_deploy.py: devices, scopes, loss scaling, gradients."""
import numpy as np
import pytest
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401  (before tf_slim: restores the names it needs)
import tf_slim as slim

from deployment import model_deploy

v1 = tf.compat.v1


def _session_config(num_cpus):
  """Session with `num_cpus` logical CPU devices; GPU ops fall back to CPU."""
  return v1.ConfigProto(allow_soft_placement=True,
                        device_count={'CPU': num_cpus})


def _linear_model(inputs, targets, weight_decay=0.0):
  """A tiny model: one dense layer and a mean squared error in the losses."""
  regularizer = slim.l2_regularizer(weight_decay) if weight_decay else None
  predictions = slim.fully_connected(
      inputs, 1, activation_fn=None, weights_regularizer=regularizer,
      weights_initializer=v1.constant_initializer([[0.5], [-1.0], [2.0]]),
      biases_initializer=v1.constant_initializer(0.25), scope='linear')
  v1.losses.mean_squared_error(targets, predictions)
  return predictions


def _batch(size=8):
  rng = np.random.RandomState(0)
  inputs = rng.randn(size, 3).astype(np.float32)
  targets = (inputs @ np.array([[1.], [2.], [3.]], np.float32)).astype(
      np.float32)
  return inputs, targets


class TestDeploymentConfig:

  @pytest.mark.parametrize('kwargs, message', [
      (dict(num_replicas=2), 'num_ps_tasks'),
      (dict(num_replicas=2, num_ps_tasks=1, replica_id=2), 'replica_id'),
      (dict(replica_id=-1), 'replica_id'),
      (dict(num_ps_tasks=1, worker_job_name=''), 'worker_job_name'),
      (dict(num_ps_tasks=1, ps_job_name=''), 'ps_job_name'),
      (dict(num_clones=0), 'num_clones'),
  ])
  def test_invalid_configs_raise(self, kwargs, message):
    with pytest.raises(ValueError, match=message):
      model_deploy.DeploymentConfig(**kwargs)

  @pytest.mark.parametrize('num_clones', [1, 2, 4])
  def test_gpu_clone_devices_and_scopes(self, num_clones):
    config = model_deploy.DeploymentConfig(num_clones=num_clones)
    devices = [config.clone_device(i) for i in range(num_clones)]
    assert devices == ['/device:GPU:%d' % i for i in range(num_clones)]
    scopes = [config.clone_scope(i) for i in range(num_clones)]
    if num_clones == 1:
      assert scopes == ['']
    else:
      assert scopes == ['clone_%d' % i for i in range(num_clones)]
    assert config.optimizer_device() == '/device:CPU:0'
    assert config.inputs_device() == '/device:CPU:0'
    assert config.variables_device() == '/device:CPU:0'
    assert config.caching_device() is None

  def test_clone_on_cpu(self):
    config = model_deploy.DeploymentConfig(num_clones=2, clone_on_cpu=True)
    assert config.clone_device(0) == '/device:CPU:0'
    assert config.clone_device(1) == '/device:CPU:1'

  def test_clone_index_out_of_range(self):
    config = model_deploy.DeploymentConfig(num_clones=2)
    for bad in (-1, 2):
      with pytest.raises(ValueError, match='clone_index'):
        config.clone_device(bad)
      with pytest.raises(ValueError, match='clone_index'):
        config.clone_scope(bad)

  def test_distributed_devices(self):
    config = model_deploy.DeploymentConfig(
        num_clones=2, replica_id=1, num_replicas=3, num_ps_tasks=2)
    assert config.clone_device(1) == '/job:worker/device:GPU:1'
    assert config.optimizer_device() == '/job:worker/device:CPU:0'
    assert config.inputs_device() == '/job:worker/device:CPU:0'
    assert callable(config.variables_device())

    class FakeOp:
      device = '/job:worker/device:GPU:0'
    assert config.caching_device()(FakeOp()) == FakeOp.device


def test_the_public_api():
  """TF-slim's names and fields, less `deploy`, plus `clones_update_ops`."""
  assert sorted(model_deploy.__all__) == sorted([
      'create_clones', 'optimize_clones', 'clones_update_ops',
      'DeploymentConfig', 'Clone'])
  assert model_deploy.Clone._fields == ('outputs', 'scope', 'device')
  config = model_deploy.DeploymentConfig(
      num_clones=3, clone_on_cpu=True, replica_id=1, num_replicas=2,
      num_ps_tasks=1, worker_job_name='trainer', ps_job_name='server')
  assert (config.num_clones, config.clone_on_cpu, config.replica_id,
          config.num_replicas, config.num_ps_tasks) == (3, True, 1, 2, 1)
  assert config.ps_device == '/job:server'
  assert config.worker_device == '/job:trainer'
  assert config.clone_device(2) == '/job:trainer/device:CPU:2'
  assert config.clone_scope(2) == 'clone_2'


class TestPlacement:

  @pytest.mark.parametrize('num_clones', [1, 2, 4])
  def test_clone_ops_on_their_gpu_and_variables_on_cpu(self, num_clones):
    config = model_deploy.DeploymentConfig(num_clones=num_clones)
    with tf.Graph().as_default():
      inputs, targets = _batch()
      clones = model_deploy.create_clones(
          config, _linear_model, [tf.constant(inputs), tf.constant(targets)])
      assert len(clones) == num_clones
      for i, clone in enumerate(clones):
        assert clone.device == '/device:GPU:%d' % i
        assert clone.scope == ('' if num_clones == 1 else 'clone_%d/' % i)
        assert clone.outputs.device == '/device:GPU:%d' % i
        # Every op of the clone's layer is on its GPU, except the ops that
        # belong to the variables themselves (created by the first clone).
        graph = v1.get_default_graph()
        prefix = clone.scope + 'linear/'
        variable_prefixes = ('linear/weights', 'linear/biases')
        clone_ops = [op for op in graph.get_operations()
                     if op.name.startswith(prefix)
                     and not op.name.startswith(variable_prefixes)]
        assert clone_ops
        for op in clone_ops:
          # A variable read may carry no device: the placer then runs it
          # beside its variable, which is where a read belongs.
          allowed = ({'', clone.device} if op.type == 'ReadVariableOp'
                     else {clone.device})
          assert op.device in allowed, op.name
      # One set of variables, created once, on the variables device.
      variables = v1.global_variables()
      assert sorted(v.op.name for v in variables) == [
          'linear/biases', 'linear/weights']
      for var in variables:
        assert var.op.type == 'VarHandleOp'
        assert var.op.device == '/device:CPU:0'
      assert len(v1.losses.get_losses()) == num_clones

  @pytest.mark.parametrize('use_resource', [True, False])
  def test_ps_round_robin_places_both_variable_kinds(self, use_resource):
    config = model_deploy.DeploymentConfig(num_clones=1, num_ps_tasks=2)
    with tf.Graph().as_default():
      with v1.variable_scope('model', use_resource=use_resource):
        with v1.device(config.variables_device()):
          variables = [v1.get_variable('v%d' % i, [2]) for i in range(5)]
          plain_op = tf.constant(1.0, name='not_a_variable')
      expected_type = 'VarHandleOp' if use_resource else 'VariableV2'
      for i, var in enumerate(variables):
        assert var.op.type == expected_type
        assert var.op.device == '/job:ps/task:%d/device:CPU:0' % (i % 2)
      assert plain_op.device == ''

  def test_create_clones_places_slim_variables_on_ps(self):
    config = model_deploy.DeploymentConfig(num_clones=2, num_ps_tasks=3,
                                           num_replicas=2, replica_id=0)
    with tf.Graph().as_default():
      inputs, targets = _batch()
      clones = model_deploy.create_clones(
          config, _linear_model, [tf.constant(inputs), tf.constant(targets)])
      devices = sorted(v.op.device for v in v1.global_variables())
      assert devices == ['/job:ps/task:0/device:CPU:0',
                         '/job:ps/task:1/device:CPU:0']
      assert clones[1].outputs.device == '/job:worker/device:GPU:1'


class TestOptimizeClones:

  def _build(self, num_clones, weight_decay=0.0):
    """Splits one batch over the clones; returns (total_loss, grads, clones)."""
    config = model_deploy.DeploymentConfig(num_clones=num_clones,
                                           clone_on_cpu=True)
    inputs, targets = _batch()
    inputs_split = np.split(inputs, num_clones)
    targets_split = np.split(targets, num_clones)
    clone_index = iter(range(num_clones))

    def model_fn():
      i = next(clone_index)
      return _linear_model(tf.constant(inputs_split[i]),
                           tf.constant(targets_split[i]), weight_decay)

    clones = model_deploy.create_clones(config, model_fn)
    optimizer = v1.train.GradientDescentOptimizer(0.1)
    total_loss, grads_and_vars = model_deploy.optimize_clones(clones, optimizer)
    return total_loss, grads_and_vars, clones

  @pytest.mark.parametrize('num_clones', [2, 4])
  def test_clones_sum_to_the_whole_batch_gradient(self, num_clones):
    results = {}
    for clones in (1, num_clones):
      with tf.Graph().as_default():
        total_loss, grads_and_vars, _ = self._build(clones, weight_decay=0.01)
        with v1.Session(config=_session_config(clones)) as sess:
          sess.run(v1.global_variables_initializer())
          results[clones] = sess.run(
              [total_loss, {v.op.name: g for g, v in grads_and_vars}])
    loss_one, grads_one = results[1]
    loss_many, grads_many = results[num_clones]
    np.testing.assert_allclose(loss_many, loss_one, rtol=1e-5)
    assert grads_one.keys() == grads_many.keys() == {'linear/weights',
                                                      'linear/biases'}
    for name in grads_one:
      np.testing.assert_allclose(grads_many[name], grads_one[name], rtol=1e-5,
                                 atol=1e-6)

  def test_loss_scaling_and_regularization_once(self):
    inputs, targets = _batch()
    weights = np.array([[0.5], [-1.0], [2.0]], np.float32)
    predictions = inputs @ weights + 0.25
    halves = np.split((predictions - targets) ** 2, 2)
    weight_decay = 0.01
    regularization = weight_decay * 0.5 * np.sum(weights ** 2)
    expected = np.mean([h.mean() for h in halves]) + regularization
    with tf.Graph().as_default():
      total_loss, _, _ = self._build(2, weight_decay)
      graph = v1.get_default_graph()
      scaled = [op.name for op in graph.get_operations()
                if op.name.endswith('scaled_clone_loss')]
      assert sorted(scaled) == ['clone_0/scaled_clone_loss',
                                'clone_1/scaled_clone_loss']
      regularization_ops = [op.name for op in graph.get_operations()
                            if op.type != 'ScalarSummary'
                            and op.name.endswith('/regularization_loss')]
      assert regularization_ops == ['clone_0/regularization_loss']
      with v1.Session(config=_session_config(2)) as sess:
        sess.run(v1.global_variables_initializer())
        np.testing.assert_allclose(sess.run(total_loss), expected, rtol=1e-5)

  def test_sum_grads_named_and_not_on_a_clone_device(self):
    with tf.Graph().as_default():
      _, grads_and_vars, _ = self._build(2)
      for grad, var in grads_and_vars:
        assert grad.op.name == var.op.name + '/sum_grads'
        assert grad.op.device == ''
        for inp in grad.op.inputs:
          assert inp.device.startswith('/device:CPU:')

  def test_gradients_computed_on_each_clone_device(self):
    with tf.Graph().as_default():
      _, grads_and_vars, _ = self._build(2)
      per_clone = grads_and_vars[0][0].op.inputs
      assert sorted(t.device for t in per_clone) == ['/device:CPU:0',
                                                     '/device:CPU:1']


class TestUpdateOps:

  def test_every_clone_updates_the_moving_statistics(self):
    decay = 0.5
    batches = [np.array([[1.0], [3.0]], np.float32),     # batch mean 2
               np.array([[10.0], [14.0]], np.float32)]   # batch mean 12
    config = model_deploy.DeploymentConfig(num_clones=2, clone_on_cpu=True)
    with tf.Graph().as_default():
      clone_inputs = iter([tf.constant(batch) for batch in batches])

      def model_fn():
        return slim.batch_norm(next(clone_inputs), decay=decay,
                               is_training=True, scope='bn')
      clones = model_deploy.create_clones(config, model_fn)
      update_ops = model_deploy.clones_update_ops(clones)
      assert [op.name.split('/')[0] for op in update_ops] == [
          'clone_0', 'clone_0', 'clone_1', 'clone_1']
      moving_mean = [v for v in v1.global_variables()
                     if v.op.name == 'bn/moving_mean'][0]
      with v1.Session(config=_session_config(2)) as sess:
        sess.run(v1.global_variables_initializer())
        for op in update_ops:
          sess.run(op)
        mean = sess.run(moving_mean)[0]
    # m <- d * m + (1 - d) * batch_mean, from m = 0: clone 0, then clone 1.
    assert mean == pytest.approx(decay * (1 - decay) * 2 + (1 - decay) * 12)

  def test_clones_train_through_optimize_clones(self):
    config = model_deploy.DeploymentConfig(num_clones=2, clone_on_cpu=True)
    inputs, targets = _batch()
    with tf.Graph().as_default():
      global_step = v1.train.get_or_create_global_step()
      clones = model_deploy.create_clones(
          config, _linear_model, [tf.constant(inputs), tf.constant(targets)])
      optimizer = v1.train.GradientDescentOptimizer(0.05)
      total_loss, grads_and_vars = model_deploy.optimize_clones(clones,
                                                                optimizer)
      with tf.control_dependencies(model_deploy.clones_update_ops(clones)):
        train_op = optimizer.apply_gradients(grads_and_vars, global_step)
      with v1.Session(config=_session_config(2)) as sess:
        sess.run(v1.global_variables_initializer())
        losses = [sess.run([train_op, total_loss])[1] for _ in range(20)]
        assert sess.run(global_step) == 20
    assert losses[-1] < 0.2 * losses[0]
