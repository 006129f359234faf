"""Tests of preprocessing/preprocessing_factory.py."""
import pytest

from preprocessing import preprocessing_factory


def test_preprocessing_factory_names():
  for name in ('ssd_300_vgg', 'ssd_512_vgg'):
    assert preprocessing_factory.get_preprocessing(name).keywords == {
        'is_training': False}
  with pytest.raises(ValueError, match='ssd_300_vgg, ssd_512_vgg'):
    preprocessing_factory.get_preprocessing('ssd_301_vgg')
