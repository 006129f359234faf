"""The flags that choose a converted dataset split, defined once for all.

Training and evaluation select their data the same way:

  dataset_flags.define_dataset_flags(default_split='train')   # at import
  ...
  def main(_):
    data = dataset_flags.read_dataset_flags()   # a plain DatasetConfig
    dataset = dataset_flags.load_dataset(data)  # a DetectionDataset

No flag is read anywhere else: `read_dataset_flags` turns them into a
`DatasetConfig` value, and everything below `main` takes that value.
"""
import collections

from absl import flags

from datasets import dataset_factory
from datasets import sample_data

# Which split of which converted dataset; each field is the flag of its name,
# and its default the flag's.  dataset_dir None or '' means the built-in
# sample dataset (generated on first use); file_pattern None means the
# split -> files rule of `dataset_factory`.
DatasetConfig = collections.namedtuple(
    'DatasetConfig',
    ['dataset_name', 'dataset_split_name', 'dataset_dir', 'file_pattern'],
    defaults=['voc', 'train', None, None])
_DEFAULTS = DatasetConfig()


def define_dataset_flags(flag_values=flags.FLAGS,
                         default_split=_DEFAULTS.dataset_split_name):
  """Defines --dataset_dir, --dataset_name, --dataset_split_name and
  --file_pattern.

  Args:
    flag_values: the FlagValues to define them in.
    default_split: default of --dataset_split_name ('train' for training,
      'val' for evaluation).
  """
  flags.DEFINE_string('dataset_dir', _DEFAULTS.dataset_dir,
                      'Directory of the converted TFRecords. Default: the '
                      'built-in sample dataset in tfrecords/sample, generated '
                      'on first use.', flag_values=flag_values)
  flags.DEFINE_string('dataset_name', _DEFAULTS.dataset_name,
                      'Dataset reader: %s. voc reads any converted '
                      'VOC- or COCO-style data from its metadata.' %
                      ', '.join(sorted(dataset_factory.DATASETS)),
                      flag_values=flag_values)
  flags.DEFINE_string('dataset_split_name', default_split, 'Split to read.',
                      flag_values=flag_values)
  flags.DEFINE_string('file_pattern', _DEFAULTS.file_pattern,
                      'Glob of the shards, when the split name does not '
                      'identify them unambiguously.', flag_values=flag_values)


def read_dataset_flags(flag_values=flags.FLAGS):
  """The parsed `define_dataset_flags` values as a `DatasetConfig`."""
  return DatasetConfig(**{name: flag_values[name].value
                          for name in DatasetConfig._fields})


def load_dataset(config):
  """The `DetectionDataset` a `DatasetConfig` names.

  Raises:
    ValueError: from `dataset_factory.get_dataset` (unknown name or split,
      missing, ambiguous or empty data; the message says what exists).
  """
  return dataset_factory.get_dataset(
      config.dataset_name, config.dataset_split_name,
      sample_data.dataset_dir_or_sample(config.dataset_dir),
      config.file_pattern)
