"""Finds a converted dataset split: `get_dataset(name, split, dataset_dir)`.

Split -> files rule.  `datasets.pascalvoc_to_tfrecords` writes a split as
`<output_name>_NNN.tfrecord` shards plus `<output_name>.json` metadata.  For
dataset `voc` (any custom VOC-layout dataset), split S is the metadata whose
`name` is S or ends in `_S`: `--output_name commodity_train` is split `train`
of `--dataset_name voc`.  For `pascalvoc_2007` / `pascalvoc_2012` the name
must be `voc_2007_S` / `voc_2012_S`; without metadata their shards
`voc_2007_S_*.tfrecord` (SSD-Tensorflow's names) are sized from a table of
the standard VOC splits.  Metadata always wins over the table.

When several metadata files match (two datasets converted into one folder),
pass `file_pattern` (a glob relative to `dataset_dir`, `%s` = split name):
the split is then exactly the shards it matches, sized by the metadata files
that list them.
"""
import collections
import glob
import os

from datasets import dataset_utils
from datasets import voc_common

# prefix: what an output_name starts with before the split name.
# split_sizes: records per split when there is no metadata.
# class_names: object classes when there is no metadata.
_DatasetSpec = collections.namedtuple(
    '_DatasetSpec', ['prefix', 'split_sizes', 'class_names'])

DATASETS = {
    # 'train' is VOC2007 trainval, as in SSD-Tensorflow.
    'pascalvoc_2007': _DatasetSpec('voc_2007_', {'train': 5011, 'test': 4952},
                                   voc_common.VOC_CLASSES),
    'pascalvoc_2012': _DatasetSpec('voc_2012_', {'train': 17125},
                                   voc_common.VOC_CLASSES),
    'voc': _DatasetSpec('', {}, None),
}


def _split_of(spec, metadata_name):
  """The split a metadata name stands for under `spec`, or None."""
  if spec.prefix:
    if metadata_name.startswith(spec.prefix):
      return metadata_name[len(spec.prefix):]
    return None
  return metadata_name.rpartition('_')[2]


def _names_split(spec, metadata_name, split_name):
  if spec.prefix:
    return metadata_name == spec.prefix + split_name
  return (metadata_name == split_name or
          metadata_name.endswith('_' + split_name))


def _load_metadata(dataset_dir, wanted):
  """{path: metadata} of the folder's metadata files.

  JSON files that are not converter metadata are ignored, unless
  `wanted(file name without .json)` says the split needs them, in which
  case their ValueError propagates.
  """
  found = {}
  for path in sorted(glob.glob(os.path.join(dataset_dir, '*.json'))):
    try:
      found[path] = dataset_utils.read_metadata(path)
    except ValueError:
      if wanted(os.path.basename(path)[:-len('.json')]):
        raise
  return found


def _labels_of(metadata_list, spec, where):
  """{id: name} shared by the metadata files (or the spec's classes)."""
  labels = {tuple(metadata['labels']) for metadata in metadata_list}
  if len(labels) > 1:
    raise ValueError('%s: the matched metadata files have different classes; '
                     'narrow file_pattern' % where)
  if labels:
    return dict(enumerate(labels.pop()))
  return voc_common.labels_to_names(spec.class_names)


def _select_by_pattern(dataset_dir, split_name, file_pattern, all_metadata,
                       spec):
  """(files, num_samples, metadata list) for an explicit file_pattern."""
  pattern = (file_pattern % split_name if '%s' in file_pattern
             else file_pattern)
  files = sorted(glob.glob(os.path.join(dataset_dir, pattern)))
  if not files:
    raise ValueError('no files match %s in %s' % (pattern, dataset_dir))
  names = {os.path.basename(path) for path in files}
  matched = {path: metadata for path, metadata in all_metadata.items()
             if names & set(metadata['files'])}
  for path, metadata in matched.items():
    missing = set(metadata['files']) - names
    if missing:
      raise ValueError('%s matches only part of the dataset described by %s '
                       '(not %s); its size is unknown' %
                       (pattern, path, ', '.join(sorted(missing))))
  unlisted = names.difference(*[m['files'] for m in matched.values()])
  if not unlisted:
    return (files, sum(m['num_samples'] for m in matched.values()),
            list(matched.values()))
  if not matched and split_name in spec.split_sizes:
    return files, spec.split_sizes[split_name], []
  raise ValueError('no metadata JSON in %s lists %s; convert the data with '
                   'datasets.pascalvoc_to_tfrecords' %
                   (dataset_dir, ', '.join(sorted(unlisted))))


def _select_by_split(name, dataset_dir, split_name, all_metadata, spec):
  """(files, num_samples, metadata list) by the split -> files rule."""
  candidates = {path: metadata for path, metadata in all_metadata.items()
                if _names_split(spec, metadata['name'], split_name)}
  if len(candidates) > 1:
    raise ValueError(
        'split %r of %r is ambiguous in %s: %s.  Pass file_pattern, e.g. %r' %
        (split_name, name, dataset_dir, ', '.join(sorted(candidates)),
         '%s_*.tfrecord' % next(iter(candidates.values()))['name']))
  if candidates:
    path, metadata = candidates.popitem()
    files = [os.path.join(dataset_dir, shard) for shard in metadata['files']]
    missing = [shard for shard in files if not os.path.isfile(shard)]
    if missing:
      raise ValueError('%s lists missing shard(s) %s; convert again' %
                       (path, ', '.join(missing)))
    return files, metadata['num_samples'], [metadata]
  if split_name in spec.split_sizes:
    pattern = '%s%s_*.tfrecord' % (spec.prefix, split_name)
    files = sorted(glob.glob(os.path.join(dataset_dir, pattern)))
    if not files:
      raise ValueError('no %s in %s (convert split %r with '
                       'datasets.pascalvoc_to_tfrecords --output_name=%s%s)' %
                       (pattern, dataset_dir, split_name, spec.prefix,
                        split_name))
    return files, spec.split_sizes[split_name], []
  available = sorted(set(spec.split_sizes) | {
      split for split in (_split_of(spec, metadata['name'])
                          for metadata in all_metadata.values()) if split})
  raise ValueError('no split %r of %r in %s; available: %s' %
                   (split_name, name, dataset_dir,
                    ', '.join(available) or 'none (convert the data with '
                    'datasets.pascalvoc_to_tfrecords first)'))


def get_dataset(name, split_name, dataset_dir, file_pattern=None):
  """Returns the DetectionDataset of one converted split.

  Args:
    name: one of DATASETS ('pascalvoc_2007', 'pascalvoc_2012', 'voc').
    split_name: split, e.g. 'train' (see the module docstring for the rule).
    dataset_dir: folder holding the shards and metadata.
    file_pattern: optional glob relative to `dataset_dir` ('%s' = split)
      selecting the shards explicitly.

  Returns:
    A `dataset_utils.DetectionDataset`.

  Raises:
    ValueError: unknown name or split, missing or ambiguous files, or a
      split of 0 samples; the message lists what exists.
  """
  if name not in DATASETS:
    raise ValueError('unknown dataset %r; known: %s' %
                     (name, ', '.join(sorted(DATASETS))))
  if not os.path.isdir(dataset_dir):
    raise ValueError('dataset_dir %s is not a directory' % dataset_dir)
  spec = DATASETS[name]
  all_metadata = _load_metadata(
      dataset_dir, lambda stem: _names_split(spec, stem, split_name))
  if file_pattern:
    files, num_samples, used = _select_by_pattern(
        dataset_dir, split_name, file_pattern, all_metadata, spec)
  else:
    files, num_samples, used = _select_by_split(
        name, dataset_dir, split_name, all_metadata, spec)
  if not num_samples:
    raise ValueError(
        'split %r of %r in %s has 0 samples (%s); convert data with images '
        'into it' % (split_name, name, dataset_dir, ', '.join(
            dataset_utils.metadata_path(dataset_dir, metadata['name'])
            for metadata in used) or 'no metadata'))
  return dataset_utils.DetectionDataset(
      name, split_name, files, num_samples,
      _labels_of(used, spec, dataset_dir), metadata=used)
