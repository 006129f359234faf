"""train_ssd_network.py's flags and limits: their defaults are the typed
config's, bad values fail naming the flag, a run that has nothing to train
trains nothing, and a train_dir in use is refused naming its holder."""
import numbers
import os
import shutil
import socket
import subprocess
import sys

from absl import flags
import pytest
import tensorflow as tf

import train_ssd_network
from utils.checkpointing import checkpoints
from utils.common import run_directory
from utils.common import run_lock
from utils.trainer import config as config_lib

from conftest import PROJECT_ROOT
from script_runs import RUN_TIMEOUT_SECS, run_script
from script_runs import step_1_run  # noqa: F401  (a fixture)

v1 = tf.compat.v1

# Flags whose default is resolved when the run starts (for this machine),
# not a setting's default.
RESOLVED_AT_RUN_TIME = {'precision': 'auto', 'data_format': 'auto'}
# Given below, so that neither the first-run settings (the sample data) nor
# the from-scratch recipe (no pretrained checkpoint) apply.
GIVEN = ['--dataset_dir=some/data', '--checkpoint_path=some/model.ckpt']


def _same(flag_value, setting):
  """Whether a flag's value is the setting (a list flag: the same items)."""
  if isinstance(setting, (list, tuple)):
    return list(flag_value) == list(setting)
  if isinstance(setting, numbers.Number) and not isinstance(setting, bool):
    return flag_value == setting and not isinstance(flag_value, bool)
  return flag_value == setting and type(flag_value) is type(setting)


@pytest.fixture
def parsed_flags():
  """The training flags parsed from `GIVEN`."""
  if 'train_dir' not in flags.FLAGS:
    train_ssd_network.define_flags()
  flags.FLAGS.unparse_flags()
  flags.FLAGS(['train_ssd_network.py'] + GIVEN)
  try:
    yield flags.FLAGS
  finally:
    flags.FLAGS.unparse_flags()


def test_every_flag_default_is_its_config_field_default(parsed_flags):
  given = {argument[2:].split('=')[0] for argument in GIVEN}
  built = dict(train_ssd_network.config_from_flags().settings())
  defaults = config_lib.TrainingConfig().settings()
  # Every setting (as spelled in training_config.txt) has a flag.
  assert sorted(built) == sorted(name for name, _ in defaults)
  for name, default in defaults:
    flag = parsed_flags[name]
    if name in RESOLVED_AT_RUN_TIME:
      assert flag.default == RESOLVED_AT_RUN_TIME[name], name
      continue
    assert _same(flag.default, default), (name, flag.default, default)
    if name not in given:
      assert _same(built[name], default), (name, built[name], default)


# --------------------------------------------------------------------------
# What the script refuses, or has nothing to do for, before it builds its
# graph: nothing is left in train_dir.


@pytest.mark.slow
def test_a_train_dir_in_use_is_refused_naming_the_holder(
    tmp_path, sample_dataset_dir):
  train_dir = tmp_path / 'run'
  train_dir.mkdir()
  lock_path = str(train_dir / run_directory.LOCK_FILE_NAME)
  with run_lock.hold(lock_path, 'the test'):
    code, log = run_script(train_dir, sample_dataset_dir,
                           '--max_number_of_steps=1')
  assert code == 1, log
  last_line = log.strip().split('\n')[-1]
  assert ('--train_dir %s is in use by another run: pid %d on host %s '
          '(lock file %s)' % (train_dir, os.getpid(), socket.gethostname(),
                              lock_path)) in last_line, log[-3000:]
  assert 'Traceback' not in log
  assert os.listdir(str(train_dir)) == []


@pytest.mark.slow
def test_out_of_bounds_numeric_flags_fail_naming_the_flag(
    tmp_path, sample_dataset_dir):
  train_dir = tmp_path / 'run'
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--learning_rate=-1')
  assert code == 1, log
  assert log.strip().split('\n')[-1].endswith(
      '] --learning_rate must be >= 0, got -1'), log[-3000:]
  assert not train_dir.exists()
  # The other bounds, in one process: each bad value's message.
  checks = subprocess.run(
      [sys.executable, '-c', _CHECK_BOUNDS] + list(_BAD_FLAGS),
      capture_output=True, text=True, timeout=RUN_TIMEOUT_SECS,
      cwd=PROJECT_ROOT)
  assert checks.returncode == 0, checks.stderr[-3000:]
  assert checks.stdout.splitlines() == list(_BAD_FLAGS.values())


# Parses each flag alone and prints what check_flag_bounds says of it.
_CHECK_BOUNDS = '''
import sys
from absl import flags
import train_ssd_network
train_ssd_network.define_flags()
for flag in sys.argv[1:]:
  flags.FLAGS.unparse_flags()
  flags.FLAGS(['train_ssd_network.py', flag])
  try:
    train_ssd_network.check_flag_bounds()
    print('accepted: ' + flag)
  except ValueError as error:
    print(error)
'''
_BAD_FLAGS = {
    '--learning_rate=-1': '--learning_rate must be >= 0, got -1',
    '--batch_size=0': '--batch_size must be >= 1, got 0',
    '--batch_size=-2': '--batch_size must be >= 1, got -2',
    '--num_clones=0': '--num_clones must be >= 1, got 0',
    '--max_number_of_steps=-1': '--max_number_of_steps must be >= 0, got -1',
    '--weight_decay=-0.1': '--weight_decay must be >= 0, got -0.1',
    '--warmup_steps=-5': '--warmup_steps must be >= 0, got -5',
    '--dropout_keep_prob=1.5': '--dropout_keep_prob must be <= 1, got 1.5',
    '--max_number_of_steps=0': 'accepted: --max_number_of_steps=0',
}


def _files(directory):
  return sorted(os.listdir(str(directory)))


@pytest.mark.slow
def test_max_number_of_steps_0_trains_nothing(tmp_path, sample_dataset_dir):
  train_dir = tmp_path / 'run'
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--max_number_of_steps=0')
  assert code == 0, log
  assert ('%s is already at step 0 >= --max_number_of_steps 0: nothing to '
          'train.' % train_dir) in log
  assert 'Starting Session' not in log
  assert _files(train_dir) == []


@pytest.mark.slow
def test_a_finished_run_trains_no_further_step(tmp_path, sample_dataset_dir,
                                               step_1_run):
  train_dir = str(tmp_path / 'run')
  shutil.copytree(step_1_run, train_dir)
  before = _files(train_dir)
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--max_number_of_steps=1')
  assert code == 0, log
  assert ('%s is already at step 1 >= --max_number_of_steps 1: nothing to '
          'train.' % train_dir) in log
  assert 'Starting Session' not in log and 'Next steps' not in log
  assert _files(train_dir) == before
  assert checkpoints.saved_global_step(train_dir) == 1
