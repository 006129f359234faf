"""bench/side_by_side.py: curves of several runs in one wide CSV."""
import csv
import os
import sys

import pytest

from conftest import PROJECT_ROOT

sys.path.insert(0, os.path.join(PROJECT_ROOT, 'bench'))
import side_by_side  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

_HEADER = ('recipe,step,images_seen,train_loss,val_map_voc07,val_map_voc12,'
           'train_images_per_second,precision,train_seconds,eval_seconds\n')


def test_parse_curve():
  assert side_by_side.parse_curve('ours, seed 2=a/curve.csv:nobn') == (
      'ours, seed 2', 'a/curve.csv', 'nobn')
  assert side_by_side.parse_curve('tv=b.csv') == ('tv', 'b.csv', None)
  with pytest.raises(Exception, match='LABEL=CSV'):
    side_by_side.parse_curve('no label')


def test_wide_csv_has_a_column_per_label_and_blanks_where_missing(tmp_path):
  first = tmp_path / 'first.csv'
  first.write_text(_HEADER + 'nobn,125,1000,9.4,0.02,0.02,,,,\n'
                   'bn,125,1000,10.8,0.013,0.012,,,,\n'
                   'nobn,250,2000,7.4,0.045,0.03,,,,\n')
  second = tmp_path / 'second.csv'
  second.write_text(_HEADER + 'torchvision,125,1000,10.9,0.029,0.026,,,,\n')
  curves = {
      'nobn': side_by_side.read_points(str(first), 'nobn'),
      'torchvision': side_by_side.read_points(str(second), None)}
  assert curves['nobn'] == [(1000, 0.02, 9.4), (2000, 0.045, 7.4)]
  path = str(tmp_path / 'wide.csv')
  side_by_side.write_wide_csv(path, curves)
  with open(path, newline='') as wide:
    rows = list(csv.reader(wide))
  assert rows == [['images_seen', 'val_map_voc07 nobn',
                   'val_map_voc07 torchvision'],
                  ['1000', '0.0200', '0.0290'],
                  ['2000', '0.0450', '']]
