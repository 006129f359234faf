"""The shared dataset flags: defined once, read into a plain value."""
from absl import flags
import pytest

from datasets import dataset_flags


def _parsed(argv, **define_kwargs):
  flag_values = flags.FlagValues()
  dataset_flags.define_dataset_flags(flag_values, **define_kwargs)
  flag_values(['program'] + argv)
  return flag_values


def test_defaults_are_the_flags_defaults():
  train = dataset_flags.read_dataset_flags(_parsed([]))
  assert train == dataset_flags.DatasetConfig(
      dataset_dir=None, dataset_name='voc', dataset_split_name='train',
      file_pattern=None)
  assert train == dataset_flags.DatasetConfig()
  evaluation = dataset_flags.read_dataset_flags(
      _parsed([], default_split='val'))
  assert evaluation.dataset_split_name == 'val'


def test_parsed_values_load_the_named_split(sample_dataset_dir):
  config = dataset_flags.read_dataset_flags(_parsed([
      '--dataset_dir=%s' % sample_dataset_dir, '--dataset_split_name=val']))
  assert config.dataset_dir == sample_dataset_dir
  dataset = dataset_flags.load_dataset(config)
  assert (dataset.split_name, dataset.num_samples) == ('val', 8)
  pattern = dataset_flags.load_dataset(config._replace(
      file_pattern='sample_train_*.tfrecord'))
  assert pattern.num_samples == 16


def test_unknown_split_is_a_value_error(sample_dataset_dir):
  config = dataset_flags.DatasetConfig(dataset_dir=sample_dataset_dir,
                                       dataset_split_name='test')
  with pytest.raises(ValueError, match=r"no split 'test'.*available: train, "
                     'val'):
    dataset_flags.load_dataset(config)
