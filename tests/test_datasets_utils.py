"""dataset_utils tests: the shuffle buffer's size, the record order, the
large-record suggestion."""
import logging

import pytest
import tensorflow as tf

from datasets import dataset_utils

MIB = 1 << 20


@pytest.mark.parametrize('num_records, mean_bytes, budget_mib, expected', [
    (10000, 4 * MIB, 512, 128),      # 12 MP photos: 512 / 4.
    (10000, 5e6, 512, 107),          # 536,870,912 / 5,000,000 = 107.4.
    (10000, 100e3, 512, 1024),       # VOC-sized: 5,368 fit, capped.
    (10000, 100 * MIB, 512, 16),     # 5 fit: the floor.
    (20, 4 * MIB, 512, 20),          # The whole split fits.
    (10, 100 * MIB, 512, 10),        # The floor, but only 10 records.
    (10000, 1 * MIB, 64, 64),        # A smaller budget.
])
def test_shuffle_buffer_records(num_records, mean_bytes, budget_mib,
                                expected):
  assert dataset_utils.shuffle_buffer_records(
      num_records, mean_bytes, budget_mib) == expected


def test_shuffle_buffer_default_budget_is_the_constant():
  assert dataset_utils.shuffle_buffer_records(
      10000, dataset_utils.SHUFFLE_BUFFER_MIB * MIB // 128) == 128


def _write_shards(folder, records_per_shard, num_shards):
  """Shards of records b'<index>' in file order; returns their paths."""
  paths = []
  for shard in range(num_shards):
    path = str(folder / ('shard_%d.tfrecord' % shard))
    with tf.io.TFRecordWriter(path) as writer:
      for offset in range(records_per_shard):
        writer.write(b'%d' % (shard * records_per_shard + offset))
    paths.append(path)
  return paths


def _read_indices(paths, count, **read_kwargs):
  """The first `count` records of read_records, as ints (graph mode)."""
  with tf.Graph().as_default():
    records = dataset_utils.read_records(paths, **read_kwargs)
    batch = tf.compat.v1.data.make_one_shot_iterator(
        records.batch(count)).get_next()
    with tf.compat.v1.Session() as session:
      return [int(record) for record in session.run(batch)]


@pytest.mark.parametrize('buffer_size', [8, 1024])
def test_each_epoch_is_a_shuffled_permutation(tmp_path, buffer_size):
  paths = _write_shards(tmp_path, records_per_shard=10, num_shards=3)
  epochs = 4
  stream = _read_indices(paths, 30 * epochs, num_readers=2,
                         shuffle_buffer_size=buffer_size, seed=7)
  orders = [stream[i * 30:(i + 1) * 30] for i in range(epochs)]
  for order in orders:
    assert sorted(order) == list(range(30))
    assert order != list(range(30))
  assert len({tuple(order) for order in orders}) == epochs


def test_without_buffer_records_come_in_file_order(tmp_path):
  paths = _write_shards(tmp_path, records_per_shard=5, num_shards=2)
  assert _read_indices(paths, 20, num_readers=1, num_epochs=2) == (
      list(range(10)) * 2)


def test_mean_record_bytes_divides_the_shards_by_the_samples(tmp_path):
  sizes = (3000, 5000)
  paths = []
  for index, size in enumerate(sizes):
    path = tmp_path / ('data_%d.tfrecord' % index)
    path.write_bytes(b'\0' * size)
    paths.append(str(path))
  dataset = dataset_utils.DetectionDataset('voc', 'train', paths, 4, {})
  assert dataset.mean_record_bytes() == 2000


def test_large_records_warning_suggests_max_image_side():
  assert dataset_utils.large_records_warning(100e3) is None
  assert '--max_image_side' in dataset_utils.large_records_warning(3.5e6)


def test_shuffle_buffer_size_logs_the_suggestion_for_large_records(
    tmp_path, caplog):
  path = tmp_path / 'photos_000.tfrecord'
  path.write_bytes(b'\0' * (6 * MIB))
  dataset = dataset_utils.DetectionDataset('voc', 'train', [str(path)], 2, {})
  with caplog.at_level(logging.INFO):
    assert dataset.shuffle_buffer_size(budget_mib=30) == 2
  warnings = [record.getMessage() for record in caplog.records
              if record.levelno == logging.WARNING]
  assert len(warnings) == 1
  assert 'Records average 3.1 MB' in warnings[0]
  assert '--max_image_side' in warnings[0]
