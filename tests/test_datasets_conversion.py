"""Converter tests on small synthetic VOC trees written to tmp_path."""
import fcntl
import json
import logging
import os
import pty
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import termios
import time

from absl import flags
import cv2
import numpy as np
import pytest

from datasets import dataset_writer
from datasets import dataset_factory
from datasets import image_files
from datasets import pascalvoc_to_tfrecords as converter
from datasets import voc_common
import datasets_fixtures as support
from utils.common import run_lock

CLASSES = ('cat', 'dog')
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def convert(voc, out, name='pets_train', **kwargs):
  kwargs.setdefault('class_names', CLASSES)
  return converter.convert(str(voc), str(out), name, **kwargs)


def test_records_hold_xml_boxes_flags_and_actual_size(tmp_path):
  voc = tmp_path / 'voc'
  boxes = support.make_voc(voc, 3)
  # The XML claims 100x200; the image (40x60) must win, with a warning.
  support.write_xml(voc, 'img01', [boxes['img01']], size=(100, 200))
  metadata = convert(voc, tmp_path / 'out')
  examples = support.read_examples(tmp_path / 'out', metadata)
  assert len(examples) == 3
  for image_id, example in zip(sorted(boxes), examples):
    name, xmin, ymin, xmax, ymax, difficult, truncated = boxes[image_id]
    value = lambda key: support.feature_values(example, key)  # noqa: E731
    assert value('image/filename') == [image_id.encode() + b'.jpg']
    assert value('image/shape') == [40, 60, 3]
    assert (value('image/height'), value('image/width'),
            value('image/channels')) == ([40], [60], [3])
    assert value('image/format') == [b'jpeg']
    with open(voc / 'JPEGImages' / (image_id + '.jpg'), 'rb') as f:
      assert value('image/encoded') == [f.read()]  # Original bytes kept.
    expected = {'xmin': xmin / 60, 'ymin': ymin / 40, 'xmax': xmax / 60,
                'ymax': ymax / 40}
    for coordinate, number in expected.items():
      assert value('image/object/bbox/' + coordinate) == pytest.approx(
          [number], abs=1e-6)
    assert value('image/object/bbox/label') == [CLASSES.index(name) + 1]
    assert value('image/object/bbox/label_text') == [name.encode()]
    assert value('image/object/bbox/difficult') == [difficult]
    assert value('image/object/bbox/truncated') == [truncated]
  assert metadata['warnings'] == {'size_mismatch': 1}


def test_labels_and_metadata_files(tmp_path):
  voc = tmp_path / 'voc'
  support.make_voc(voc, 5)  # img00, 02, 04 are cats, 01, 03 dogs.
  support.write_xml(voc, 'img04', [('cat', 1, 1, 9, 9, 0, 0),
                                   ('cat', 2, 2, 8, 8, 1, 0),
                                   ('dog', 3, 3, 7, 7, 0, 0)])
  metadata = convert(voc, tmp_path / 'out')
  with open(tmp_path / 'out' / 'labels.txt') as f:
    assert f.read() == '0:none\n1:cat\n2:dog\n'
  with open(tmp_path / 'out' / 'pets_train.json') as f:
    assert json.load(f) == metadata
  assert metadata['num_samples'] == 5
  assert metadata['num_objects'] == 7
  assert metadata['num_classes'] == 3
  assert metadata['labels'] == ['none', 'cat', 'dog']
  assert metadata['objects_per_class'] == {'cat': 4, 'dog': 3}
  assert metadata['images_per_class'] == {'cat': 3, 'dog': 3}
  # make_voc flags img01 and img03 difficult; img04 has one more.
  assert metadata['difficult_objects'] == 3
  assert metadata['files'] == ['pets_train_000.tfrecord']
  assert metadata['num_warnings'] == 0 and metadata['warnings'] == {}


def test_conflicting_labels_file_is_refused(tmp_path):
  voc = tmp_path / 'voc'
  support.make_voc(voc, 2)
  convert(voc, tmp_path / 'out')
  with pytest.raises(converter.ConversionError, match='labels.txt already '
                     'lists other classes'):
    convert(voc, tmp_path / 'out', 'other', class_names=('cat', 'dog', 'cow'))


def test_sharding_and_stale_shards(tmp_path):
  voc = tmp_path / 'voc'
  support.make_voc(voc, 7)
  out = tmp_path / 'out'
  metadata = convert(voc, out, samples_per_file=3)
  assert metadata['files'] == ['pets_train_%03d.tfrecord' % i
                               for i in range(3)]
  counts = [len(support.read_examples(out, {'files': [name]}))
            for name in metadata['files']]
  assert counts == [3, 3, 1]
  # A rerun with bigger shards leaves no stale shard behind.
  metadata = convert(voc, out, samples_per_file=10)
  assert sorted(name for name in os.listdir(out)
                if name.endswith('.tfrecord')) == ['pets_train_000.tfrecord']


def _record_order(examples):
  return [support.feature_values(e, 'image/filename')[0] for e in examples]


def test_shuffle_is_deterministic_with_seed(tmp_path):
  voc = tmp_path / 'voc'
  support.make_voc(voc, 12)
  orders = {}
  for run, (shuffle, seed) in enumerate([(False, 0), (True, 1), (True, 1),
                                         (True, 2)]):
    out = tmp_path / ('out%d' % run)
    metadata = convert(voc, out, shuffle=shuffle, seed=seed, num_threads=3)
    orders[run] = _record_order(support.read_examples(out, metadata))
  sorted_order = [b'img%02d.jpg' % i for i in range(12)]
  assert orders[0] == sorted_order
  assert orders[1] == orders[2]
  assert sorted(orders[1]) == sorted_order
  assert orders[1] != sorted_order and orders[1] != orders[3]


def test_split_list_selects_ids(tmp_path):
  voc = tmp_path / 'voc'
  support.make_voc(voc, 4)
  support.write_split(voc, 'val', ['img03', 'img01'])
  metadata = convert(voc, tmp_path / 'out', split='val')
  assert _record_order(support.read_examples(tmp_path / 'out', metadata)) == [
      b'img03.jpg', b'img01.jpg']
  assert metadata['split'] == 'val'
  with pytest.raises(converter.ConversionError,
                     match=r'test.txt not found; splits there: val'):
    convert(voc, tmp_path / 'out', split='test')


def test_out_of_image_boxes_are_clipped_and_degenerate_dropped(tmp_path,
                                                                caplog):
  voc = tmp_path / 'voc'
  support.write_image(voc, 'a.jpg', support.random_image(0))  # 40x60.
  support.write_xml(voc, 'a', [
      ('cat', -5, 3, 70, 50, 0, 0),   # Clipped to (0, 3, 60, 40).
      ('dog', 10, 10, 10, 20, 0, 0),  # Zero width.
      ('dog', 30, 20, 20, 30, 0, 0),  # Inverted.
      ('cat', 61, 5, 80, 9, 0, 0),    # Wholly outside: clipped then empty.
  ])
  with caplog.at_level(logging.WARNING):
    metadata = convert(voc, tmp_path / 'out')
  assert metadata['warnings'] == {'box_clipped': 2, 'box_dropped': 3}
  assert metadata['num_objects'] == 1
  example, = support.read_examples(tmp_path / 'out', metadata)
  box = [support.feature_values(example, 'image/object/bbox/' + key)[0]
         for key in ('ymin', 'xmin', 'ymax', 'xmax')]
  assert box == pytest.approx([3 / 40, 0, 1, 1], abs=1e-6)
  assert 'a.xml (object 1, dog): zero-area or inverted box' in caplog.text


@pytest.mark.parametrize('keep_empty', [False, True])
def test_images_without_boxes(tmp_path, keep_empty):
  voc = tmp_path / 'voc'
  support.make_voc(voc, 2)
  support.write_xml(voc, 'img01', [])
  metadata = convert(voc, tmp_path / 'out', keep_empty=keep_empty)
  assert metadata['warnings'] == {'empty_image': 1}
  assert metadata['num_samples'] == (2 if keep_empty else 1)


def _bad_tree(tmp_path, problem):
  """A 3-image VOC tree where img01 has `problem`; returns its root."""
  voc = tmp_path / 'voc'
  support.make_voc(voc, 3)
  if problem == 'missing_image':
    os.remove(voc / 'JPEGImages' / 'img01.jpg')
  elif problem == 'corrupt_image':
    (voc / 'JPEGImages' / 'img01.jpg').write_bytes(b'not an image at all')
  elif problem == 'truncated_jpeg':
    path = voc / 'JPEGImages' / 'img01.jpg'
    path.write_bytes(path.read_bytes()[:-200])
  elif problem == 'malformed_xml':
    (voc / 'Annotations' / 'img01.xml').write_text('<annotation><object>')
  elif problem == 'bad_coordinate':
    support.write_xml(voc, 'img01', [('cat', 'left', 1, 5, 5, 0, 0)])
  elif problem == 'missing_annotation':
    os.remove(voc / 'Annotations' / 'img01.xml')
  support.write_split(voc, 'all', ['img00', 'img01', 'img02'])
  return voc


@pytest.mark.parametrize('problem, kind, message', [
    ('missing_image', 'missing_image', r'img01.xml: image not found'),
    ('corrupt_image', 'corrupt_image', r'img01.jpg: not a decodable image'),
    ('truncated_jpeg', 'corrupt_image', r'img01.jpg: truncated JPEG'),
    ('malformed_xml', 'malformed_xml', r'img01.xml: malformed XML'),
    ('bad_coordinate', 'malformed_xml',
     r"img01.xml \(object 0\): <xmin> is 'left', not a number"),
    ('missing_annotation', 'missing_annotation',
     r'img01.xml: annotation file not found'),
])
def test_bad_input_errors_or_is_skipped(tmp_path, problem, kind, message):
  voc = _bad_tree(tmp_path, problem)
  out = tmp_path / 'out'
  with pytest.raises(converter.ConversionError, match=message):
    convert(voc, out, split='all')
  assert not list(out.glob('*.tfrecord'))  # Nothing half-written.
  metadata = convert(voc, out, split='all', skip_bad=True)
  assert metadata['warnings'] == {kind: 1}
  assert metadata['num_samples'] == 2


def test_unknown_class_lists_known_classes(tmp_path):
  voc = tmp_path / 'voc'
  support.make_voc(voc, 2)
  support.write_xml(voc, 'img01', [('cow', 1, 1, 5, 5, 0, 0),
                                   ('cow', 2, 2, 6, 6, 0, 0)])
  with pytest.raises(converter.ConversionError,
                     match=r"img01.xml: unknown class 'cow' \(in 1 file\(s\)"
                     r'.*Known classes: cat, dog'):
    convert(voc, tmp_path / 'out')


def test_default_and_discovered_labels(tmp_path):
  voc = tmp_path / 'voc'
  support.make_voc(voc, 2, class_names=('person', 'dog'))
  metadata = convert(voc, tmp_path / 'voc_out', class_names=None)
  assert metadata['labels'] == ['none'] + list(voc_common.VOC_CLASSES)
  assert metadata['labels'][15] == 'person'
  metadata = convert(voc, tmp_path / 'found', class_names=None,
                     discover_labels=True)
  assert metadata['labels'] == ['none', 'dog', 'person']


def test_class_list_file(tmp_path):
  path = tmp_path / 'classes.txt'
  path.write_text('b\n\na\n')
  assert converter.read_class_list(str(path)) == ('b', 'a')
  path.write_text('a\nb\na\n')
  with pytest.raises(converter.ConversionError, match='duplicates: a'):
    converter.read_class_list(str(path))


def _record_pixels(tmp_path, name, expected_format):
  """Converts the one image `<tmp_path>/<name>/JPEGImages/<name>`.

  Returns:
    Its record decoded by the factory's decoder, and the metadata.
  """
  voc = tmp_path / name
  support.write_xml(voc, 'x', [('cat', 1, 1, 20, 20, 0, 0)], filename=name)
  metadata = convert(voc, tmp_path / 'out', 'x_' + name.replace('.', '_'))
  example, = support.read_examples(tmp_path / 'out', metadata)
  assert support.feature_values(example, 'image/format') == [expected_format]
  decoded, = support.decode_records(
      [str(tmp_path / 'out' / metadata['files'][0])])
  return decoded, metadata


@pytest.mark.parametrize('name, channels, dtype, expected_format, reencoded', [
    ('rgb.png', 3, np.uint8, b'png', 0),
    ('rgba.png', 4, np.uint8, b'png', 1),
    ('deep.png', 3, np.uint16, b'png', 1),
    ('gray.jpg', 1, np.uint8, b'png', 1),
    ('gray.png', 1, np.uint8, b'png', 1),
    ('rgb.bmp', 3, np.uint8, b'png', 1),
])
def test_images_decode_to_rgb_like_opencv(tmp_path, name, channels, dtype,
                                          expected_format, reencoded):
  image = support.random_image(7, 30, 50, channels).astype(dtype) * (
      257 if dtype == np.uint16 else 1)
  path = support.write_image(tmp_path / name, name, image)
  decoded, metadata = _record_pixels(tmp_path, name, expected_format)
  reference = cv2.imread(path, cv2.IMREAD_COLOR)[:, :, ::-1]
  assert decoded['image'].shape == (30, 50, 3)
  np.testing.assert_array_equal(decoded['image'], reference)
  assert metadata['num_reencoded'] == reencoded


def test_cmyk_jpeg_decodes_to_rgb(tmp_path):
  image_module = pytest.importorskip(
      'PIL.Image', reason='PIL is not installed; no way to write a CMYK JPEG')
  path = tmp_path / 'cmyk.jpg' / 'JPEGImages' / 'cmyk.jpg'
  path.parent.mkdir(parents=True)
  image_module.fromarray(support.random_image(3, 30, 50, 4), 'CMYK').save(path)
  decoded, metadata = _record_pixels(tmp_path, 'cmyk.jpg', b'png')
  np.testing.assert_array_equal(decoded['image'],
                                cv2.imread(str(path))[:, :, ::-1])
  assert metadata['num_reencoded'] == 1


@pytest.mark.slow
def test_command_line_summary_and_clean_errors(tmp_path):
  voc = tmp_path / 'voc'
  support.make_voc(voc, 3)
  (tmp_path / 'classes.txt').write_text('cat\ndog\n')
  command = [sys.executable, '-m', 'datasets.pascalvoc_to_tfrecords',
             '--dataset_dir=%s' % voc, '--output_dir=%s' % (tmp_path / 'out'),
             '--output_name=pets_train', '--labels=%s' % (tmp_path /
                                                           'classes.txt')]
  done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True,
                        text=True, check=False)
  assert done.returncode == 0, done.stderr
  assert 'Wrote 3 images, 3 objects, in 1 file(s)' in done.stdout
  assert '3/3' not in done.stderr  # No progress bar into a pipe.
  assert re.search(r'^ +cat +2 +2$', done.stdout, re.M)
  assert re.search(r'^ +dog +1 +1$', done.stdout, re.M)
  shutil.rmtree(voc / 'JPEGImages')
  done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True,
                        text=True, check=False)
  assert done.returncode == 1
  assert 'error: %s' % (voc / 'Annotations' / 'img00.xml') in done.stderr
  assert 'Traceback' not in done.stderr


def test_only_8bit_three_component_jpegs_keep_their_bytes():
  """CMYK (4 components) and 12-bit JPEGs must be re-encoded.

  Patches the start-of-frame header of a real JPEG, since without PIL no
  CMYK JPEG can be written here; OpenCV decodes such files to BGR, and the
  converter stores that decoding.
  """
  _, encoded = cv2.imencode('.jpg', support.random_image(1))
  data = bytearray(encoded.tobytes())
  assert image_files.keepable_format(bytes(data)) == 'jpeg'
  frame = data.index(b'\xff\xc0')
  assert data[frame + 9] == 3  # Components.
  for offset, value in ((9, 4), (4, 12)):  # CMYK; 12-bit samples.
    patched = bytearray(data)
    patched[frame + offset] = value
    assert image_files.keepable_format(bytes(patched)) is None


def test_plan_step_counts_and_skips_without_writing(tmp_path):
  voc = _bad_tree(tmp_path, 'malformed_xml')
  plan = converter.plan_conversion(str(voc), split='all', class_names=CLASSES,
                                   skip_bad=True)
  assert [image.image_id for image in plan.images] == ['img00', 'img02']
  assert [image.image_path for image in plan.images] == [
      str(voc / 'JPEGImages' / name) for name in ('img00.jpg', 'img02.jpg')]
  assert [obj.name for image in plan.images for obj in image.objects] == [
      'cat', 'cat']
  assert plan.class_names == CLASSES
  assert [kind for kind, _ in plan.warnings] == ['malformed_xml']
  assert not (tmp_path / 'out').exists()
  with pytest.raises(converter.ConversionError, match='img01.xml: malformed'):
    converter.plan_conversion(str(voc), split='all', class_names=CLASSES)


def _run_cli(*args):
  command = [sys.executable, '-m', 'datasets.pascalvoc_to_tfrecords'] + list(
      args)
  return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True,
                        text=True, check=False, timeout=120)


def _file_bytes(folder):
  return {path.name: path.read_bytes() for path in sorted(folder.iterdir())
          if path.is_file()}


@pytest.mark.slow
def test_failed_reconversion_keeps_the_previous_dataset(tmp_path):
  """A re-run that stops on a bad image deletes nothing."""
  voc, out = tmp_path / 'voc', tmp_path / 'out'
  support.make_voc(voc, 5)
  (tmp_path / 'classes.txt').write_text('cat\ndog\n')
  convert(voc, out, samples_per_file=2)
  before = _file_bytes(out)
  assert sorted(before) == ['labels.txt', 'pets_train.json'] + [
      'pets_train_%03d.tfrecord' % i for i in range(3)]
  (voc / 'JPEGImages' / 'img03.jpg').write_bytes(b'\xff\xd8 broken')
  done = _run_cli('--dataset_dir=%s' % voc, '--output_dir=%s' % out,
                  '--output_name=pets_train', '--samples_per_file=1',
                  '--labels=%s' % (tmp_path / 'classes.txt'))
  assert done.returncode == 1
  error, = [line for line in done.stderr.splitlines()
            if line.startswith('error:')]
  assert 'img03.jpg' in error
  assert 'the previous dataset pets_train in %s was left unchanged' % out in (
      error)
  assert 'Traceback' not in done.stderr
  assert _file_bytes(out) == before
  assert sorted(os.listdir(out)) == sorted(before)  # No staging folder left.


def test_reconversion_replaces_old_shards_and_stale_staging(tmp_path):
  voc, out = tmp_path / 'voc', tmp_path / 'out'
  support.make_voc(voc, 5)
  convert(voc, out, samples_per_file=2)
  # A run killed while writing leaves its staging folder behind.
  (out / '.pets_train.incomplete-killed').mkdir()
  (out / '.pets_train.incomplete-killed' / 'pets_train_000.tfrecord'
   ).write_bytes(b'partial')
  metadata = convert(voc, out, samples_per_file=5)
  assert sorted(os.listdir(out)) == ['labels.txt', 'pets_train.json',
                                     'pets_train_000.tfrecord']
  assert len(support.read_examples(out, metadata)) == 5


@pytest.mark.slow
def test_a_conversion_to_a_name_in_use_is_refused_naming_the_holder(
    tmp_path):
  voc, out = tmp_path / 'voc', tmp_path / 'out'
  support.make_voc(voc, 2)
  out.mkdir()
  # The running conversion's staging folder, which a second one removed.
  staging = out / '.pets_train.incomplete-running'
  staging.mkdir()
  lock_path = dataset_writer.lock_path(str(out), 'pets_train')
  with run_lock.hold(lock_path, 'the test'):
    done = _run_cli('--dataset_dir=%s' % voc, '--output_dir=%s' % out,
                    '--output_name=pets_train', '--discover_labels')
  assert done.returncode == 1
  assert done.stderr.splitlines()[-1] == (
      'error: pets_train in %s is in use by another run: pid %d on host %s '
      '(lock file %s); wait for it to finish or stop it; nothing was written'
      % (out, os.getpid(), socket.gethostname(), lock_path)), done.stderr
  assert 'Traceback' not in done.stderr
  assert sorted(os.listdir(out)) == [staging.name]


def test_zero_images_fail_unless_allowed_and_factory_refuses(tmp_path):
  """No annotations -> an error, not an empty dataset."""
  voc, out = tmp_path / 'voc', tmp_path / 'out'
  (voc / 'Annotations').mkdir(parents=True)
  with pytest.raises(converter.ConversionError,
                     match=r'no images to convert .*--allow_empty.*nothing '
                     'was written'):
    convert(voc, out)
  assert not list(out.glob('pets_*'))
  support.make_voc(voc, 1)
  (voc / 'JPEGImages' / 'img00.jpg').write_bytes(b'garbage')
  with pytest.raises(converter.ConversionError,
                     match='all 1 images were skipped .corrupt_image: 1.'):
    convert(voc, out, skip_bad=True)
  metadata = convert(voc, out, skip_bad=True, allow_empty=True)
  assert metadata['num_samples'] == 0 and metadata['files'] == []
  with pytest.raises(ValueError, match=r"split 'train' of 'voc' in .* has 0 "
                     r'samples \(.*pets_train.json\)'):
    dataset_factory.get_dataset('voc', 'train', str(out))


def test_output_under_a_regular_file_is_a_conversion_error(tmp_path):
  """Not a NotADirectoryError traceback but a ConversionError,
  which main() prints as its one `error:` line (see the CLI tests)."""
  voc = tmp_path / 'voc'
  support.make_voc(voc, 1)
  (tmp_path / 'a_file').write_text('x')
  for output_dir in (tmp_path / 'a_file' / 'out', tmp_path / 'a_file'):
    with pytest.raises(converter.ConversionError) as raised:
      convert(voc, output_dir)
    assert str(raised.value) == (
        'cannot create output_dir %s (%s)' % (
            output_dir, 'Not a directory' if output_dir.name == 'out'
            else 'File exists'))


@pytest.mark.slow
def test_skip_bad_skips_unknown_classes_and_names_them(tmp_path):
  """--skip_bad skips images of unknown classes."""
  voc, out = tmp_path / 'voc', tmp_path / 'out'
  support.make_voc(voc, 4)
  support.write_xml(voc, 'img01', [('cow', 1, 1, 5, 5, 0, 0),
                                   ('cat', 2, 2, 9, 9, 0, 0)])
  support.write_xml(voc, 'img02', [('cow', 1, 1, 5, 5, 0, 0),
                                   ('horse', 2, 2, 6, 6, 0, 0)])
  (tmp_path / 'classes.txt').write_text('cat\ndog\n')
  args = ['--dataset_dir=%s' % voc, '--output_dir=%s' % out,
          '--output_name=pets_train', '--labels=%s' % (tmp_path /
                                                        'classes.txt')]
  done = _run_cli(*args + ['--skip_bad'])
  assert done.returncode == 0, done.stderr
  assert 'Wrote 2 images, 2 objects' in done.stdout
  assert re.search(r'^ +unknown_class +2 ', done.stdout, re.M)
  assert 'Skipped unknown classes (objects): cow: 2, horse: 1' in done.stdout
  with open(out / 'pets_train.json') as f:
    metadata = json.load(f)
  assert metadata['unknown_classes'] == {'cow': 2, 'horse': 1}
  assert metadata['warnings'] == {'unknown_class': 2}
  with pytest.raises(converter.ConversionError,
                     match=r"img01.xml: unknown class 'cow' \(in 2 file"):
    convert(voc, tmp_path / 'out2')


def _run_in_terminal(command, timeout=120):
  """Runs `command` with stdout and stderr on a pseudo-terminal; its output."""
  master, slave = pty.openpty()
  # A fresh pseudo-terminal is 0 columns wide; give it a real size.
  fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 120, 0, 0))
  process = subprocess.Popen(command, cwd=PROJECT_ROOT,
                             stdin=subprocess.DEVNULL,
                             stdout=slave, stderr=slave)
  os.close(slave)
  output, deadline = b'', time.monotonic() + timeout
  try:
    while time.monotonic() < deadline:
      ready, _, _ = select.select([master], [], [], 1.0)
      if not ready:
        continue
      try:
        chunk = os.read(master, 65536)
      except OSError:  # EIO: the child closed the terminal.
        break
      if not chunk:
        break
      output += chunk
  finally:
    os.close(master)
    if process.poll() is None:
      process.kill()
    process.wait(timeout=10)
  return process.returncode, output.decode('utf-8', 'replace')


@pytest.mark.slow
def test_progress_bar_on_a_terminal_only(tmp_path):
  """A tqdm bar when stdout is a terminal (pipes: see the
  command-line test above)."""
  voc = tmp_path / 'voc'
  support.make_voc(voc, 6)
  command = [sys.executable, '-m', 'datasets.pascalvoc_to_tfrecords',
             '--dataset_dir=%s' % voc, '--discover_labels',
             '--output_dir=%s' % (tmp_path / 'out'), '--output_name=pets_train']
  returncode, output = _run_in_terminal(command)
  assert returncode == 0, output
  assert re.search(r'pets_train: 100%\|.*\| 6/6 \[.*img/s\]', output), output
  assert 'Wrote 6 images' in output


@pytest.mark.parametrize('argv, is_terminal, progress', [
    ([], True, True), ([], False, False), (['--noprogress'], True, False)])
def test_progress_flag_and_terminal_decide(monkeypatch, argv, is_terminal,
                                           progress):
  flag_values = flags.FlagValues()
  dataset_writer.define_write_flags(flag_values)
  flag_values(['converter'] + argv)
  monkeypatch.setattr(sys.stdout, 'isatty', lambda: is_terminal)
  assert dataset_writer.read_write_flags(flag_values)['progress'] is progress


def _smooth_photo(height, width):
  """A photo-like BGR image (smooth gradients: small, fast JPEG)."""
  rows = np.linspace(0, 255, height, dtype=np.float32)[:, None]
  cols = np.linspace(0, 255, width, dtype=np.float32)[None, :]
  return np.stack([rows + 0 * cols, 0 * rows + cols, (rows + cols) / 2],
                  axis=2).astype(np.uint8)


def test_max_image_side_downscales_large_photos_boxes_unchanged(tmp_path):
  """--max_image_side stores large photos smaller, boxes exact."""
  voc = tmp_path / 'voc'
  large = _smooth_photo(1200, 1600)
  support.write_image(voc, 'large.jpg', large)
  support.write_xml(voc, 'large', [('cat', 100, 200, 1500, 1100, 0, 0)],
                    size=(1200, 1600))
  support.write_image(voc, 'small.jpg', support.random_image(3, 40, 60))
  support.write_xml(voc, 'small', [('dog', 5, 6, 30, 35, 0, 0)],
                    size=(40, 60))
  metadata = convert(voc, tmp_path / 'out', max_image_side=400)
  assert metadata['num_downscaled'] == 1 and metadata['num_reencoded'] == 1
  assert metadata['warnings'] == {}  # Sizes compared with the file's own.
  large_example, small_example = support.read_examples(tmp_path / 'out',
                                                       metadata)
  value = lambda example, key: support.feature_values(example, key)  # noqa
  # 1600 x 1200 scaled by 400 / 1600 = 1/4.
  assert value(large_example, 'image/shape') == [300, 400, 3]
  assert value(large_example, 'image/format') == [b'jpeg']
  box = [value(large_example, 'image/object/bbox/' + key)[0]
         for key in ('ymin', 'xmin', 'ymax', 'xmax')]
  np.testing.assert_allclose(box, [200 / 1200, 100 / 1600, 1100 / 1200,
                                   1500 / 1600], rtol=0, atol=1e-7)
  with open(voc / 'JPEGImages' / 'small.jpg', 'rb') as f:
    assert value(small_example, 'image/encoded') == [f.read()]
  decoded_large, _ = support.decode_records(
      [str(tmp_path / 'out' / metadata['files'][0])])
  reference = cv2.resize(cv2.imread(str(voc / 'JPEGImages' / 'large.jpg')),
                         (400, 300), interpolation=cv2.INTER_AREA)
  assert decoded_large['image'].shape == (300, 400, 3)
  assert np.abs(decoded_large['image'].astype(int) -
                reference[:, :, ::-1]).mean() < 1.5  # JPEG quality 95.
  assert image_files.downscaled_size(1800, 2400, 600) == (450, 600)
  assert image_files.downscaled_size(3000, 4000, 1000) == (750, 1000)
  assert image_files.downscaled_size(601, 7, 600) == (600, 7)
  assert image_files.downscaled_size(40, 60, None) == (40, 60)


def test_max_image_side_flag_reaches_the_write_step():
  flag_values = flags.FlagValues()
  dataset_writer.define_write_flags(flag_values)
  flag_values(['converter', '--max_image_side=512', '--allow_empty'])
  options = dataset_writer.read_write_flags(flag_values)
  assert options['max_image_side'] == 512 and options['allow_empty']


def test_a_failed_swap_puts_the_old_files_back(tmp_path, monkeypatch):
  voc, out = tmp_path / 'voc', tmp_path / 'out'
  support.make_voc(voc, 4)
  convert(voc, out, samples_per_file=2)
  before = _file_bytes(out)
  real_replace, failed = os.replace, []

  def replace_failing_on_the_metadata(source, target):
    # Fails once: moving the new metadata in, after the old files moved
    # aside and the new shards moved in.
    if not failed and target == str(out / 'pets_train.json'):
      failed.append(target)
      raise OSError(28, 'No space left on device')
    real_replace(source, target)

  monkeypatch.setattr(os, 'replace', replace_failing_on_the_metadata)
  with pytest.raises(converter.ConversionError,
                     match='No space left on device.*pets_train in .* was '
                     'left unchanged'):
    convert(voc, out, samples_per_file=1)
  monkeypatch.undo()
  assert failed
  assert _file_bytes(out) == before
  assert sorted(os.listdir(out)) == sorted(before)


_BOM = b'\xef\xbb\xbf'


def _tool_written_xml(filename, name=' cat ', xmin='12.5'):
  """An annotation as labelImg and editors save it: a UTF-8 BOM, an XML
  declaration, CRLF line ends, float coordinates, padded class names."""
  return _BOM + (
      '<?xml version="1.0" encoding="utf-8"?>\r\n<annotation>\r\n'
      '  %s\r\n  <size><width>60</width><height>40</height>'
      '<depth>3</depth></size>\r\n'
      '  <object><name>%s</name><difficult>0</difficult><bndbox>'
      '<xmin>%s</xmin><ymin>2.0</ymin><xmax>30.0</xmax><ymax>35</ymax>'
      '</bndbox></object>\r\n</annotation>\r\n' % (filename, name, xmin)
  ).encode()


@pytest.mark.slow
def test_files_as_labelling_tools_and_editors_write_them(tmp_path):
  voc, out = tmp_path / 'voc', tmp_path / 'out'
  support.write_image(voc, 'IMG_1.JPG', support.random_image(0))
  support.write_image(voc, 'photo2.jpg', support.random_image(1))
  (voc / 'Annotations').mkdir()
  # <filename> in another letter case than the file; no <filename> at all.
  (voc / 'Annotations' / 'first.xml').write_bytes(
      _tool_written_xml('<filename>IMG_1.jpg</filename>'))
  (voc / 'Annotations' / 'photo2.xml').write_bytes(
      _tool_written_xml('', xmin='12.0'))
  (voc / 'ImageSets' / 'Main').mkdir(parents=True)
  (voc / 'ImageSets' / 'Main' / 'train.txt').write_bytes(
      _BOM + b'first  \r\nphoto2\r\n\r\n')
  labels = tmp_path / 'classes.txt'
  labels.write_bytes(_BOM + b'cat\r\ndog  \r\n\r\n')
  done = _run_cli('--dataset_dir=%s' % voc, '--output_dir=%s' % out,
                  '--output_name=pets_train', '--split=train',
                  '--labels=%s' % labels, '--noprogress')
  assert done.returncode == 0, done.stderr[-2000:]
  metadata = json.loads((out / 'pets_train.json').read_text())
  assert metadata['labels'] == ['none', 'cat', 'dog']
  assert metadata['objects_per_class'] == {'cat': 2, 'dog': 0}
  first, second = support.read_examples(out, metadata)
  assert support.feature_values(first, 'image/filename') == [b'IMG_1.JPG']
  for example, xmin in ((first, 12.5), (second, 12.0)):
    assert support.feature_values(
        example, 'image/object/bbox/xmin') == pytest.approx([xmin / 60])
  # The labels.txt of the output, saved again by an editor, still matches.
  (out / 'labels.txt').write_bytes(_BOM + b'0:none\r\n1:cat\r\n2:dog\r\n')
  assert convert(voc, out, split='train')['num_samples'] == 2


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_keeps_the_previous_dataset(
    tmp_path, mount_tmpfs):
  voc = tmp_path / 'voc'
  support.make_voc(voc, 2)
  out = mount_tmpfs(1 << 20) / 'out'
  convert(voc, out)
  before = _file_bytes(out)
  # Noise does not compress: 8 images of about 300 kB each need 2.4 MB.
  support.make_voc(voc, 8, height=400, width=600)
  done = _run_cli('--dataset_dir=%s' % voc, '--output_dir=%s' % out,
                  '--output_name=pets_train', '--discover_labels',
                  '--noprogress')
  assert done.returncode == 1
  last_line = done.stderr.strip().splitlines()[-1]
  assert last_line.startswith(
      'error: No space left on device in %s while writing pets_train: it '
      'needs about ' % out), done.stderr[-3000:]
  assert 'the previous dataset pets_train in %s was left unchanged' % out in (
      last_line)
  assert 'Traceback' not in done.stderr
  assert _file_bytes(out) == before
  assert sorted(os.listdir(out)) == sorted(before)  # No partial files.
