"""Runs of train_ssd_network.py as a user runs it, and the graph it builds,
for the tests of the script's faults and refusals."""
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from datasets import dataset_flags
from utils.checkpointing import checkpoint_saver
from utils.trainer import config as config_lib
from utils.trainer import graph as graph_lib
from utils.trainer import input_pipeline
from utils.trainer import train_tools

from conftest import PROJECT_ROOT

v1 = tf.compat.v1

v1 = tf.compat.v1
SCRIPT = os.path.join(PROJECT_ROOT, 'train_ssd_network.py')
RUN_TIMEOUT_SECS = 300

# Stochastic gradient descent and no batch norm: no optimizer slots, the
# smallest checkpoint.
TRAIN_FLAGS = ['--batch_size=1', '--optimizer=sgd', '--nobatch_norm',
                '--num_readers=1',
                '--num_preprocessing_threads=1', '--log_every_n_steps=1',
                '--save_summaries_secs=600', '--precision=float32',
                '--seed=1']


def run_script(train_dir, dataset_dir, *flags):
  result = subprocess.run(
      [sys.executable, SCRIPT, '--train_dir=%s' % train_dir,
       '--dataset_dir=%s' % dataset_dir] + TRAIN_FLAGS + list(flags),
      capture_output=True, text=True, timeout=RUN_TIMEOUT_SECS,
      cwd=PROJECT_ROOT)
  return result.returncode, result.stdout + result.stderr


def small_config(dataset_dir, num_classes=None):
  """The TrainingConfig of TRAIN_FLAGS (the graph the script builds)."""
  config = config_lib.TrainingConfig(seed=1)
  config.data = config_lib.DataOptions(
      dataset=dataset_flags.DatasetConfig(dataset_dir=dataset_dir),
      batch_size=1, num_readers=1, num_preprocessing_threads=1)
  config.model = config_lib.ModelOptions(num_classes=num_classes)
  config.optimisation = config_lib.OptimisationOptions(optimizer='sgd')
  return config


def build_graph(config):
  """Builds the training graph of `config` in the default graph."""
  dataset = dataset_flags.load_dataset(config.data.dataset)
  ssd_net = graph_lib.build_ssd_net(config.model, dataset.num_classes)
  deploy_config = graph_lib.make_deploy_config(config.deployment)
  tensors = graph_lib.build_training_graph(
      config, ssd_net, deploy_config,
      input_pipeline.tfrecord_input_fn(config, dataset), dataset.num_samples)
  return tensors, deploy_config


@pytest.fixture(scope='module')
def step_1_run(tmp_path_factory, sample_dataset_dir):
  """A run directory as one step leaves it: the script's graph, saved at
  step 1 (made once; tests work on copies)."""
  train_dir = str(tmp_path_factory.mktemp('step_1_run'))
  with tf.Graph().as_default():
    tensors, deploy_config = build_graph(small_config(sample_dataset_dir))
    with v1.Session(config=train_tools.session_config(deploy_config)) as sess:
      sess.run(v1.global_variables_initializer())
      sess.run(tensors.global_step.assign(1))
      checkpoint_saver.CheckpointSaver().save(
          sess, os.path.join(train_dir, 'model.ckpt'), global_step=1)
  return train_dir
