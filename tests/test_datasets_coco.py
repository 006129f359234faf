"""COCO JSON in and out: coco_to_tfrecords, voc_to_coco, and their cross-check.

A VOC folder converted directly and through its COCO export must give the
same records; the COCO mapping itself is checked against hand-computed
values on a small hand-written JSON.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from datasets import coco_to_tfrecords
from datasets import conversion
from datasets import pascalvoc_to_tfrecords
from datasets import sample_data
from datasets import voc_to_coco
import datasets_fixtures as support

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(module, *args):
  return subprocess.run([sys.executable, '-m', module] + list(args),
                        cwd=PROJECT_ROOT, capture_output=True, text=True,
                        check=False, timeout=120)


def _assert_same_records(first_dir, first, second_dir, second):
  first_examples = support.read_examples(first_dir, first)
  second_examples = support.read_examples(second_dir, second)
  assert len(first_examples) == len(second_examples) == first['num_samples']
  for one, other in zip(first_examples, second_examples):
    assert one == other, support.feature_values(one, 'image/filename')
  for key in ('num_samples', 'num_objects', 'labels', 'objects_per_class',
              'images_per_class', 'difficult_objects', 'warnings'):
    assert first[key] == second[key], key


@pytest.mark.slow
def test_sample_voc_direct_and_through_coco_export_are_identical(tmp_path):
  voc = tmp_path / 'voc'
  sample_data.write_voc_dataset(str(voc), num_train=10, num_val=2)
  # Exercise every field of the mapping: a difficult and a truncated object.
  support.write_xml(voc, 'train_00001', [('box', 10, 12, 90, 80, 1, 0),
                                         ('can', 100, 20, 150, 90, 0, 1)],
                    size=(300, 400), filename='train_00001.jpg')
  direct = pascalvoc_to_tfrecords.convert(
      str(voc), str(tmp_path / 'direct'), 'sample_train', split='train',
      class_names=sample_data.CLASS_NAMES)
  coco_path = tmp_path / 'instances_train.json'
  coco = voc_to_coco.voc_to_coco(str(voc), 'train',
                                 class_names=sample_data.CLASS_NAMES)
  coco_path.write_text(json.dumps(coco))
  assert len(coco['images']) == 10
  assert [c['name'] for c in coco['categories']] == list(
      sample_data.CLASS_NAMES)
  done = _run('datasets.coco_to_tfrecords',
              '--annotations_file=%s' % coco_path,
              '--image_dir=%s' % (voc / 'JPEGImages'),
              '--labels=%s' % (voc / 'classes.txt'),
              '--output_dir=%s' % (tmp_path / 'via_coco'),
              '--output_name=sample_train')
  assert done.returncode == 0, done.stderr
  assert 'Wrote 10 images' in done.stdout
  with open(tmp_path / 'via_coco' / 'sample_train.json') as f:
    via_coco = json.load(f)
  assert via_coco['difficult_objects'] == 1
  _assert_same_records(tmp_path / 'direct', direct, tmp_path / 'via_coco',
                       via_coco)
  assert (tmp_path / 'direct' / 'labels.txt').read_text() == (
      tmp_path / 'via_coco' / 'labels.txt').read_text()


def test_groceries_val_direct_and_through_coco_are_identical(groceries_dir,
                                                             tmp_path):
  classes = conversion.read_class_list(os.path.join(groceries_dir,
                                                    'classes.txt'))
  direct = pascalvoc_to_tfrecords.convert(
      groceries_dir, str(tmp_path / 'direct'), 'groceries_val', split='val',
      class_names=classes)
  coco_path = tmp_path / 'instances_val.json'
  coco_path.write_text(json.dumps(voc_to_coco.voc_to_coco(
      groceries_dir, 'val', class_names=classes)))
  via_coco = coco_to_tfrecords.convert(
      str(coco_path), os.path.join(groceries_dir, 'JPEGImages'),
      str(tmp_path / 'via_coco'), 'groceries_val', class_names=classes)
  assert direct['num_samples'] == 499
  _assert_same_records(tmp_path / 'direct', direct, tmp_path / 'via_coco',
                       via_coco)


def _write_image(folder, name, height, width, seed=0):
  return support.write_image(folder, name,
                             support.random_image(seed, height, width))


def _coco_tree(tmp_path, annotations=None, images=None):
  """A hand-written COCO set: two images (40x60, 50x80), sparse category ids."""
  image_dir = tmp_path / 'images'
  _write_image(tmp_path / 'images_root', 'a.jpg', 40, 60)
  _write_image(tmp_path / 'images_root', 'b.jpg', 50, 80, seed=1)
  os.replace(tmp_path / 'images_root' / 'JPEGImages', image_dir)
  coco = {
      'images': images if images is not None else [
          {'id': 7, 'file_name': 'a.jpg', 'width': 60, 'height': 40},
          {'id': 9, 'file_name': 'b.jpg', 'width': 80, 'height': 50}],
      'categories': [{'id': 17, 'name': 'zebra'}, {'id': 3, 'name': 'apple'}],
      'annotations': annotations if annotations is not None else [
          {'id': 1, 'image_id': 7, 'category_id': 17,
           'bbox': [6.5, 4, 30, 20], 'iscrowd': 0},
          {'id': 2, 'image_id': 9, 'category_id': 3,
           'bbox': [0, 10, 40, 25], 'iscrowd': 1},
          {'id': 3, 'image_id': 9, 'category_id': 17,
           'bbox': [60, 30, 30, 30], 'iscrowd': 0}],  # Clipped at x = 80.
  }
  path = tmp_path / 'instances.json'
  path.write_text(json.dumps(coco))
  return str(path), str(image_dir)


def _boxes_and_flags(example):
  value = lambda key: support.feature_values(example, key)  # noqa: E731
  boxes = list(zip(*(value('image/object/bbox/' + key)
                     for key in ('ymin', 'xmin', 'ymax', 'xmax'))))
  return (boxes, value('image/object/bbox/label'),
          value('image/object/bbox/label_text'),
          value('image/object/bbox/difficult'))


def test_coco_mapping_hand_computed(tmp_path):
  annotations_file, image_dir = _coco_tree(tmp_path)
  metadata = coco_to_tfrecords.convert(annotations_file, image_dir,
                                       str(tmp_path / 'out'), 'set_train')
  assert metadata['labels'] == ['none', 'apple', 'zebra']  # Sorted names.
  assert metadata['warnings'] == {'box_clipped': 1}
  assert metadata['annotations_file'] == annotations_file
  first, second = support.read_examples(tmp_path / 'out', metadata)
  boxes, labels, texts, difficult = _boxes_and_flags(first)
  np.testing.assert_allclose(boxes, [(4 / 40, 6.5 / 60, 24 / 40, 36.5 / 60)],
                             rtol=0, atol=1e-7)
  assert (labels, texts, difficult) == ([2], [b'zebra'], [0])
  boxes, labels, texts, difficult = _boxes_and_flags(second)
  np.testing.assert_allclose(boxes, [(10 / 50, 0, 35 / 50, 40 / 80),
                                     (30 / 50, 60 / 80, 1, 1)],
                             rtol=0, atol=1e-7)
  assert (labels, texts, difficult) == ([1, 2], [b'apple', b'zebra'], [1, 0])
  # A label file sets the order instead.
  metadata = coco_to_tfrecords.convert(
      annotations_file, image_dir, str(tmp_path / 'ordered'), 'set_train',
      class_names=('zebra', 'apple'))
  first, second = support.read_examples(tmp_path / 'ordered', metadata)
  assert _boxes_and_flags(second)[1] == [2, 1]


@pytest.mark.parametrize('annotations, message, kind', [
    ([{'id': 5, 'image_id': 9, 'category_id': 4, 'bbox': [0, 0, 5, 5]}],
     r'annotation 5 \(image 9\): category_id 4 is not in',
     'malformed_annotation'),
    ([{'id': 6, 'image_id': 9, 'category_id': 3, 'bbox': [0, 0, 5]}],
     r'annotation 6 \(image 9\): bbox \[0, 0, 5\] is not',
     'malformed_annotation'),
    ([{'id': 7, 'image_id': 42, 'category_id': 3, 'bbox': [0, 0, 5, 5]}],
     r'annotation 7: image_id 42 is not in "images"', 'malformed_annotation'),
])
def test_malformed_annotations_error_or_are_skipped(tmp_path, annotations,
                                                    message, kind):
  good = {'id': 1, 'image_id': 7, 'category_id': 17, 'bbox': [1, 1, 9, 9]}
  annotations_file, image_dir = _coco_tree(tmp_path, [good] + annotations)
  with pytest.raises(conversion.ConversionError, match=message):
    coco_to_tfrecords.convert(annotations_file, image_dir,
                              str(tmp_path / 'out'), 'set_train')
  metadata = coco_to_tfrecords.convert(annotations_file, image_dir,
                                       str(tmp_path / 'out'), 'set_train',
                                       skip_bad=True)
  assert metadata['num_samples'] == 1  # Image 7.
  assert metadata['warnings'][kind] == 1


def test_same_bad_input_rules_as_voc(tmp_path):
  annotations_file, image_dir = _coco_tree(tmp_path)
  os.remove(os.path.join(image_dir, 'a.jpg'))
  with pytest.raises(conversion.ConversionError,
                     match=r'\(image 7, a.jpg\): image .*a.jpg not found'):
    coco_to_tfrecords.convert(annotations_file, image_dir,
                              str(tmp_path / 'out'), 'set_train')
  with open(os.path.join(image_dir, 'b.jpg'), 'wb') as f:
    f.write(b'not an image')
  metadata = coco_to_tfrecords.convert(
      annotations_file, image_dir, str(tmp_path / 'out'), 'set_train',
      skip_bad=True, allow_empty=True)
  assert metadata['warnings'] == {'missing_image': 1, 'corrupt_image': 1}
  # Classes outside --labels: an error naming file and class, or skipped.
  annotations_file, image_dir = _coco_tree(tmp_path / 'two')
  with pytest.raises(conversion.ConversionError,
                     match=r"\(image 9, b.jpg\): unknown class 'apple'"):
    coco_to_tfrecords.convert(annotations_file, image_dir,
                              str(tmp_path / 'two' / 'out'), 'set_train',
                              class_names=('zebra',))
  metadata = coco_to_tfrecords.convert(
      annotations_file, image_dir, str(tmp_path / 'two' / 'out'), 'set_train',
      class_names=('zebra',), skip_bad=True)
  assert metadata['num_samples'] == 1
  assert metadata['unknown_classes'] == {'apple': 1}


def test_images_without_annotations_and_non_coco_files(tmp_path):
  annotations_file, image_dir = _coco_tree(tmp_path, annotations=[
      {'id': 1, 'image_id': 7, 'category_id': 17, 'bbox': [1, 1, 9, 9]}])
  metadata = coco_to_tfrecords.convert(annotations_file, image_dir,
                                       str(tmp_path / 'out'), 'set_train')
  assert metadata['warnings'] == {'empty_image': 1}
  assert metadata['num_samples'] == 1
  (tmp_path / 'list.json').write_text('[1, 2]')
  with pytest.raises(conversion.ConversionError,
                     match='list.json: not a COCO detection file'):
    coco_to_tfrecords.convert(str(tmp_path / 'list.json'), image_dir,
                              str(tmp_path / 'out'), 'set_train')


def test_a_bom_and_padded_category_names_are_read(tmp_path):
  annotations_file, image_dir = _coco_tree(tmp_path)
  with open(annotations_file) as json_file:
    coco = json.load(json_file)
  coco['categories'][0]['name'] = ' zebra '
  with open(annotations_file, 'wb') as json_file:
    json_file.write(b'\xef\xbb\xbf' + json.dumps(coco).encode())
  metadata = coco_to_tfrecords.convert(annotations_file, image_dir,
                                       str(tmp_path / 'out'), 'set_train',
                                       class_names=('zebra', 'apple'))
  assert metadata['objects_per_class'] == {'zebra': 2, 'apple': 1}
