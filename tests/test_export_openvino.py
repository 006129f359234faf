"""Tests of the optional OpenVINO serving path (utils/inference/openvino_detector.py):
its detections equal the exported SavedModel's.  Skipped when OpenVINO is
not installed (pip install -r requirements-serve.txt)."""
import cv2
import numpy as np
import pytest
import tensorflow as tf

import detection_fixtures as helpers
from utils.inference import detection
from utils.inference import saved_model

openvino = pytest.importorskip(
    'openvino', reason='optional serving extra not installed: pip install -r '
    'requirements-serve.txt')
from utils.inference import openvino_detector  # noqa: E402

SETTINGS = detection.DetectionSettings(select_threshold=0.5, keep_top_k=20,
                                       resize='pad')


@pytest.fixture(scope='module')
def checkpoint_dir(tmp_path_factory):
  # Random class heads: the detections depend on the pixels.
  directory = str(tmp_path_factory.mktemp('checkpoint'))
  helpers.write_checkpoint(directory, {helpers.SQUARE_ANCHOR: (1, 0.9)},
                           random_weights=True)
  return directory


def _by_box(outputs, index):
  count = outputs['num_detections'][index]
  return sorted(zip(
      np.round(outputs['detection_boxes'][index][:count], 3).tolist(),
      outputs['detection_classes'][index][:count].tolist(),
      outputs['detection_scores'][index][:count].tolist()))


def test_openvino_detections_equal_the_saved_model(checkpoint_dir, tmp_path):
  export_dir = str(tmp_path / 'export')
  saved_model.export(checkpoint_dir, export_dir, settings=SETTINGS)
  images = [cv2.imencode(extension, helpers.gray_image(*size, seed=seed))[1]
            .tobytes() for extension, size, seed in
            (('.png', (100, 200), 1), ('.jpg', (160, 120), 2))]
  serve = tf.saved_model.load(export_dir).signatures['serving_default']
  expected = {key: value.numpy() for key, value in
              serve(encoded_images=tf.constant(images)).items()}
  assert expected['num_detections'].min() >= 1
  # float32: the same arithmetic up to the order of sums: the same
  # detections.  bfloat16 (OpenVINO's default on CPUs with AVX512_BF16):
  # 8 bits of mantissa move the random heads' scores by ~0.005, so
  # detections near the threshold or tied in NMS may differ: most are
  # shared, with scores within 0.02, and the strongest is the same.
  for precision, min_shared, score_tolerance in (('f32', 1., 1e-4),
                                                 ('bf16', 0.8, 0.02)):
    detector = openvino_detector.OpenVINODetector(
        checkpoint_dir, settings=SETTINGS, inference_precision=precision)
    found = detector(images)
    detector.close()
    for index in range(len(images)):
      assert found['detection_classes'][index][0] == (
          expected['detection_classes'][index][0]), precision
      np.testing.assert_allclose(found['detection_boxes'][index][0],
                                 expected['detection_boxes'][index][0],
                                 atol=1e-3)
      found_scores = {(tuple(box), label): score
                      for box, label, score in _by_box(found, index)}
      expected_scores = {(tuple(box), label): score
                         for box, label, score in _by_box(expected, index)}
      shared = set(found_scores) & set(expected_scores)
      assert len(shared) >= min_shared * max(len(found_scores),
                                             len(expected_scores)), precision
      for key in shared:
        assert abs(found_scores[key] - expected_scores[key]) < (
            score_tolerance), (precision, key)


def test_missing_openvino_says_how_to_install(monkeypatch):
  import builtins
  real_import = builtins.__import__

  def no_openvino(name, *args, **kwargs):
    if name == 'openvino':
      raise ImportError('No module named openvino')
    return real_import(name, *args, **kwargs)
  monkeypatch.setattr(builtins, '__import__', no_openvino)
  with pytest.raises(ImportError, match='requirements-serve.txt'):
    openvino_detector.import_openvino()
