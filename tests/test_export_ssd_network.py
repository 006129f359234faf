"""Tests of the export (utils.inference.saved_model, export_ssd_network.py):
the SavedModel, loaded by TensorFlow 2 alone, finds the detections of the
demo.

The checkpoint keeps random class-head weights (detection_fixtures,
random_weights=True), so the detections depend on the pixels: equal
detections mean equal decoding, preprocessing and post-processing.
"""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from datasets import dataset_utils
from datasets import voc_common
from utils.inference import demo
import detection_fixtures as helpers
from utils.checkpointing import checkpoints
from utils.inference import detection
from utils.inference import saved_model

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = detection.DetectionSettings(select_threshold=0.01, keep_top_k=20,
                                       resize='pad')

# Runs in a fresh interpreter that imports nothing of the project: loads
# the SavedModel, runs the batch of images given, then the first image alone
# (a scalar), and prints the outputs as JSON.
_SERVE = '''
import json, sys
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']
images = [open(path, 'rb').read() for path in sys.argv[2:]]
outputs = [serve(encoded_images=tf.constant(value))
           for value in (images, images[0])]
print(json.dumps([{k: v.numpy().tolist() for k, v in output.items()}
                  for output in outputs]))
'''


@pytest.fixture(scope='module')
def checkpoint_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('checkpoint'))
  helpers.write_checkpoint(directory, {helpers.SQUARE_ANCHOR: (1, 0.9)},
                           random_weights=True)
  return directory


def _labels_file(directory, class_names):
  dataset_utils.write_label_file(voc_common.labels_to_names(class_names),
                                 str(directory))
  return os.path.join(str(directory), dataset_utils.LABELS_FILENAME)


@pytest.mark.slow
def test_saved_model_finds_the_demo_detections(checkpoint_dir, tmp_path):
  images = [str(tmp_path / 'wide.jpg'), str(tmp_path / 'tall.png')]
  cv2.imwrite(images[0], helpers.gray_image(100, 200, seed=1))
  cv2.imwrite(images[1], helpers.gray_image(160, 120, seed=2))
  labels = _labels_file(tmp_path, helpers.CLASS_NAMES)
  export_dir = str(tmp_path / 'export')
  process = subprocess.run(
      [sys.executable, os.path.join(PROJECT_ROOT, 'export_ssd_network.py'),
       '--checkpoint_path', checkpoint_dir, '--export_dir', export_dir,
       '--labels', labels, '--select_threshold', '0.01', '--keep_top_k', '20',
       '--eval_resize', 'pad'],
      capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
  assert process.returncode == 0, process.stderr[-3000:]
  with open(os.path.join(export_dir, 'assets.extra', 'labels.txt')) as copy:
    with open(labels) as original:
      assert copy.read() == original.read()

  process = subprocess.run([sys.executable, '-c', _SERVE, export_dir] + images,
                           capture_output=True, text=True, cwd=str(tmp_path),
                           timeout=300)
  assert process.returncode == 0, process.stderr[-3000:]
  batch, single = json.loads(process.stdout.splitlines()[-1])

  expected = demo.detect(checkpoint_dir, images, settings=SETTINGS)
  assert batch['num_detections'] == [20, 20]
  for index, result in enumerate(expected):
    assert len(result.classes) == 20
    np.testing.assert_array_equal(batch['detection_classes'][index],
                                  result.classes)
    np.testing.assert_allclose(batch['detection_scores'][index],
                               result.scores, atol=1e-5)
    np.testing.assert_allclose(batch['detection_boxes'][index],
                               result.bboxes, atol=1e-5)
  # The set detection (cat, SQUARE_BOX) is first in both.
  assert expected[0].classes[0] == 1
  np.testing.assert_allclose(expected[0].bboxes[0], [0., 0.065, 1., 0.935],
                             atol=1e-5)
  # A scalar input is a batch of one.
  assert single['num_detections'] == [20]
  np.testing.assert_allclose(single['detection_boxes'][0],
                             batch['detection_boxes'][0], atol=1e-6)


def test_bad_arguments(checkpoint_dir, tmp_path):
  with pytest.raises(ValueError, match='already exists'):
    saved_model.export(checkpoint_dir, str(tmp_path))
  with pytest.raises(checkpoints.CheckpointError,
                     match='predicts 4 classes .* labels file .* has 2'):
    saved_model.export(checkpoint_dir, str(tmp_path / 'export'),
                       labels_path=_labels_file(tmp_path, ['cat']))
  with pytest.raises(ValueError, match='cannot read labels file'):
    saved_model.export(checkpoint_dir, str(tmp_path / 'export'),
                       labels_path=str(tmp_path / 'missing.txt'))
  regular_file = tmp_path / 'file'
  regular_file.write_text('')
  with pytest.raises(ValueError, match='--export_dir .*: cannot create the '
                     'folder (.*file is a file, not a folder)'):
    saved_model.export(checkpoint_dir, str(regular_file / 'ssd' / '1'))


def test_bfloat16_export_keeps_its_precision_in_the_graph(checkpoint_dir,
                                                         tmp_path):
  # Every detection above 0.5 (no keep_top_k cut among near-ties).
  settings = detection.DetectionSettings(select_threshold=0.5)
  export_dir = str(tmp_path / 'bf16')
  saved_model.export(checkpoint_dir, export_dir, settings=settings._replace(
      precision='mixed_bfloat16'))
  image = tmp_path / 'wide.png'
  cv2.imwrite(str(image), helpers.gray_image(100, 200, seed=1))
  serve = tf.saved_model.load(export_dir).signatures['serving_default']
  outputs = {key: value.numpy()[0] for key, value in serve(
      encoded_images=tf.constant(image.read_bytes())).items()}
  expected, = demo.detect(checkpoint_dir, [str(image)], settings=settings)
  # float32's detections, up to bfloat16's 8 bits of mantissa: the random
  # heads' scores move by ~0.005, so detections near the threshold or tied
  # in NMS may differ.  Most are shared (the set one, the cat at
  # SQUARE_BOX, among them), with scores within 0.02.

  def by_box(classes, scores, boxes):
    return {(tuple(round(float(value), 3) for value in box), int(label)):
            float(score)
            for box, label, score in zip(boxes, classes, scores)}
  count = outputs['num_detections']
  found = by_box(outputs['detection_classes'][:count],
                 outputs['detection_scores'][:count],
                 outputs['detection_boxes'][:count])
  float32 = by_box(expected.classes, expected.scores, expected.bboxes)
  shared = set(found) & set(float32)
  assert ((0.065, 0.065, 0.935, 0.935), 1) in shared
  assert len(shared) >= 0.8 * max(len(found), len(float32))
  for key in shared:
    assert abs(found[key] - float32[key]) < 0.02, key
  graph = serve.graph.as_graph_def()
  conv_types = {node.attr['T'].type for node in graph.node
                if node.op == 'Conv2D'}
  conv_types |= {node.attr['T'].type for function in graph.library.function
                 for node in function.node_def if node.op == 'Conv2D'}
  assert conv_types == {tf.bfloat16.as_datatype_enum}


def test_auto_precision_is_a_concrete_one():
  assert detection.resolve_precision('auto') in ('float32', 'mixed_bfloat16')
  with pytest.raises(ValueError, match='Unknown precision'):
    detection.resolve_precision('int8')
