"""train_ssd_network.py's flags: their defaults are the typed config's."""
import numbers

from absl import flags
import pytest

import train_ssd_network
from utils.trainer import config as config_lib

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

