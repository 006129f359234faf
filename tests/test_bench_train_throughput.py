"""Tests of bench/train_throughput.py's bookkeeping (no timing, no TF run)."""
import os
import sys

import pytest

from conftest import PROJECT_ROOT

sys.path.insert(0, os.path.join(PROJECT_ROOT, 'bench'))
# pylint: disable=g-import-not-at-top,wrong-import-position
import throughput_harness
import throughput_presets as presets
import throughput_report
import train_throughput
# pylint: enable=g-import-not-at-top,wrong-import-position


def test_parse_config_with_variant():
  config = presets.parse_config(
      'e2e:mixed_bfloat16:2:4:--num_readers=1+TF_NUM_INTEROP_THREADS=1')
  assert config['mode'] == 'e2e'
  assert config['precision'] == 'mixed_bfloat16'
  assert (config['clones'], config['batch']) == (2, 4)
  assert config['flags'] == ['--num_readers=1']
  assert config['env'] == {'TF_NUM_INTEROP_THREADS': '1'}


@pytest.mark.parametrize('text', ['e2e:float32:1', 'gpu:float32:1:8',
                                  'e2e:float64:1:8', 'e2e:float32:0:8',
                                  'e2e:float32:1:8:oops'])
def test_parse_config_rejects(text):
  with pytest.raises(ValueError):
    presets.parse_config(text)


def test_presets_parse_and_list_each_configuration_once():
  for preset in (presets.QUICK_CONFIGS, presets.FULL_CONFIGS):
    keys = [presets.config_key(presets.parse_config(text))
            for text in preset]
    assert len(set(keys)) == len(keys)


def test_targets_table():
  key = presets.config_key(presets.parse_config('e2e:float32:1:8'))
  assert presets.target_of('e2e/model', key) == 0.95
  assert presets.target_of('clones', key) is None
  key = presets.config_key(presets.parse_config('model:mixed_bfloat16:2:4'))
  assert presets.target_of('clones', key) == 0.9
  assert presets.target_of('precision', key) == 2.0
  assert presets.target_of('e2e/model', key) is None


def test_groups_keep_order_and_memory_budget():
  configs = [presets.parse_config(text) for text in
             ['e2e:float32:1:8', 'model:float32:1:8', 'e2e:float32:1:1',
              'model:float32:1:1']]
  # Estimated 2.72, 2.72, 1.39, 1.39 GiB: a 6 GiB budget takes the first
  # two (5.44), then the last two.
  groups = throughput_harness.groups(configs, 6)
  assert groups == [configs[:2], configs[2:]]
  train_throughput.BENCH(['bench', '--max_memory_gib=6'])
  try:
    assert train_throughput.memory_groups(configs) == (groups, 6)
  finally:
    train_throughput.BENCH.unparse_flags()


def test_ratio_lines_name_the_targets():
  def entry(text, images_s, group=1):
    config = presets.parse_config(text)
    return presets.config_key(config), dict(config=config,
                                            images_s=images_s, group=group)
  results = dict([entry('e2e:float32:1:8', 0.97),
                  entry('model:float32:1:8', 1.0),
                  entry('e2e:float32:2:4', 0.9),
                  entry('e2e:mixed_bfloat16:1:8', 2.5, group=2)])
  lines = throughput_report.ratio_lines(results)
  assert ('ratio e2e/model precision=float32 clones=1 batch=8: 0.970 '
          '(target >= 0.95)') in lines
  assert ('ratio 2 clones x 4 / 1 clone x 8 mode=e2e precision=float32: '
          '0.928 (target >= 0.9)') in lines
  assert ('speed-up mixed_bfloat16/float32 mode=e2e clones=1 batch=8: '
          '2.577 (target >= 2) [different groups]') in lines
  assert len(lines) == 3


@pytest.mark.parametrize('argv, expected', [
    ([], presets.QUICK_CONFIGS),
    (['--quick'], presets.QUICK_CONFIGS),
    (['--full'], presets.FULL_CONFIGS),
    (['--precision=mixed_bfloat16', '--modes=model'],
     ['model:mixed_bfloat16:1:8']),
    (['--configs=e2e:float32:2:4'], ['e2e:float32:2:4'])])
def test_configurations_chosen_by_flags(argv, expected):
  train_throughput.BENCH(['bench'] + argv)
  try:
    configs = train_throughput.configs_from_flags()
  finally:
    train_throughput.BENCH.unparse_flags()
  assert configs == [presets.parse_config(t) for t in expected]
