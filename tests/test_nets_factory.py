"""Tests of nets/nets_factory.py: look-up, building, ssd_params.json."""
import json

import pytest

from nets import nets_factory
from nets import ssd_vgg_300
from utils.common import run_directory


def test_get_network():
  assert nets_factory.get_network('ssd_300_vgg') is ssd_vgg_300.SSDNet
  with pytest.raises(ValueError, match='ssd_300_vgg'):
    nets_factory.get_network('ssd_301_vgg')


def test_build_ssd_net_replaces_only_what_is_given():
  default = ssd_vgg_300.SSDNet.default_params
  ssd_net = nets_factory.build_ssd_net('ssd_300_vgg', num_classes=4,
                                       anchor_offset=0.25,
                                       normalizations=None)
  assert isinstance(ssd_net, ssd_vgg_300.SSDNet)
  assert ssd_net.params == default._replace(num_classes=4, anchor_offset=0.25)
  assert nets_factory.build_ssd_net('ssd_300_vgg').params == default
  with pytest.raises(ValueError, match='num_clases'):
    nets_factory.build_ssd_net('ssd_300_vgg', num_clases=4)


def test_ssd_params_round_trip(tmp_path):
  assert nets_factory.read_ssd_params(str(tmp_path)) is None
  params = ssd_vgg_300.SSDNet.make_params(
      num_classes=7, anchor_sizes=((1., 2.),) * 6, img_shape=(320, 300))
  path = nets_factory.write_ssd_params(str(tmp_path / 'run'), 'ssd_300_vgg',
                                       params)
  assert path == str(tmp_path / 'run' / run_directory.SSD_PARAMS_FILE_NAME)
  with open(path) as source:
    content = json.load(source)
  assert content['model_name'] == 'ssd_300_vgg'
  assert content['params']['num_classes'] == 7
  assert content['params']['anchor_sizes'][0] == [1., 2.]
  model_name, read = nets_factory.read_ssd_params(str(tmp_path / 'run'))
  assert model_name == 'ssd_300_vgg' and read == params


def test_read_ssd_params_defaults_missing_fields_and_rejects_unknown(
    tmp_path):
  path = tmp_path / run_directory.SSD_PARAMS_FILE_NAME
  path.write_text(json.dumps({'model_name': 'ssd_300_vgg',
                              'params': {'num_classes': 3}}))
  _, params = nets_factory.read_ssd_params(str(tmp_path))
  assert params == ssd_vgg_300.SSDNet.default_params._replace(num_classes=3)
  path.write_text(json.dumps({'model_name': 'ssd_300_vgg',
                              'params': {'colour': 3}}))
  with pytest.raises(ValueError, match='colour'):
    nets_factory.read_ssd_params(str(tmp_path))
  path.write_text('{not json')
  with pytest.raises(ValueError, match='cannot read'):
    nets_factory.read_ssd_params(str(tmp_path))


def test_ssd_params_file_carries_the_anchor_sizes(tmp_path):
  ssd_net = nets_factory.build_ssd_net('ssd_300_vgg', num_classes=3,
                                       anchor_sizes='voc')
  nets_factory.write_ssd_params(str(tmp_path), 'ssd_300_vgg', ssd_net.params)
  with open(tmp_path / run_directory.SSD_PARAMS_FILE_NAME) as source:
    sizes = json.load(source)['params']['anchor_sizes']
  assert sizes[0] == [30., 60.] and sizes[-1] == [264., 315.]
  _, params = nets_factory.read_ssd_params(str(tmp_path))
  assert params.anchor_sizes == ssd_vgg_300.SSDNet.make_params(
      anchor_sizes='voc').anchor_sizes
