"""TFRecord features, label and metadata files, and the dataset object.

A converted dataset directory holds, per converted split `<name>`:
  `<name>_000.tfrecord`, `<name>_001.tfrecord`, ...  the shards;
  `<name>.json`                                      its metadata (below);
and once per directory `labels.txt` (`id:name` lines, 0 = background), the
TF-slim label file convention.

Metadata JSON schema (written by `datasets.dataset_writer.write_dataset` for
`pascalvoc_to_tfrecords` and `coco_to_tfrecords`):
  format_version      int, METADATA_VERSION.
  name                str, the shard prefix (`--output_name`).
  split               str or null, the ImageSets/Main list converted (VOC).
  source_dir          str, the VOC root (COCO: the image folder) it was
                      converted from.
  annotations_file    str, the COCO JSON converted (COCO only).
  files               [str], shard file names, relative to the JSON's folder.
  num_samples         int, records written.
  num_objects         int, boxes written.
  num_classes         int, object classes + 1 (background).
  labels              [str], class names by id; labels[0] is the background.
  objects_per_class   {name: int} boxes per class (every class listed).
  images_per_class    {name: int} records holding at least one such box.
  difficult_objects   int, boxes flagged difficult.
  num_reencoded       int, images not stored as their file's bytes
                      (re-encoded to 3-channel PNG, or downscaled).
  num_downscaled      int, images stored downscaled (`--max_image_side`).
  unknown_classes     {name: int} objects of classes not in the label list,
                      whose images `--skip_bad` skipped.
  num_warnings        int, total of `warnings`.
  warnings            {kind: int}, see `conversion.WARNING_KINDS`.
"""
import functools
import json
import os
import struct

from absl import logging
import tensorflow as tf

METADATA_VERSION = 1
LABELS_FILENAME = 'labels.txt'
_METADATA_KEYS = ('name', 'files', 'num_samples', 'num_classes', 'labels')

# Serialized records the training shuffle may hold, in MiB (the default of
# train_ssd_network.py's --shuffle_buffer_mib).
SHUFFLE_BUFFER_MIB = 512
# The shuffle holds this many records at least, whatever their size, and at
# most this many, however small.
MIN_SHUFFLE_RECORDS = 16
MAX_SHUFFLE_RECORDS = 1024
# Mean record size from which the stored photos are far larger than the
# network's input: converting with --max_image_side saves memory and time.
LARGE_RECORD_BYTES = 1 << 20

# The SSD-Tensorflow / TF-slim feature keys.
_BBOX_KEY = 'image/object/bbox/'
BBOX_COORDINATE_KEYS = tuple(
    _BBOX_KEY + name for name in ('ymin', 'xmin', 'ymax', 'xmax'))


def int64_feature(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def float_feature(values):
  return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def bytes_feature(values):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def make_example(image_bytes, image_format, shape, filename, boxes, labels,
                 label_texts, difficult, truncated):
  """Builds one detection tf.train.Example.

  Args:
    image_bytes: encoded image (JPEG or PNG) that decodes to `shape`.
    image_format: b'jpeg' or b'png'.
    shape: (height, width, channels) of the decoded image.
    filename: the image's file name, str.
    boxes: normalised (ymin, xmin, ymax, xmax) tuples.
    labels: class id per box.
    label_texts: class name per box, str.
    difficult: 0/1 per box.
    truncated: 0/1 per box.

  Returns:
    The tf.train.Example.
  """
  features = {
      'image/encoded': bytes_feature([image_bytes]),
      'image/format': bytes_feature([image_format]),
      'image/filename': bytes_feature([filename.encode('utf-8')]),
      'image/height': int64_feature([shape[0]]),
      'image/width': int64_feature([shape[1]]),
      'image/channels': int64_feature([shape[2]]),
      'image/shape': int64_feature(shape),
      _BBOX_KEY + 'label': int64_feature(labels),
      _BBOX_KEY + 'label_text': bytes_feature(
          [text.encode('utf-8') for text in label_texts]),
      _BBOX_KEY + 'difficult': int64_feature(difficult),
      _BBOX_KEY + 'truncated': int64_feature(truncated),
  }
  for index, key in enumerate(BBOX_COORDINATE_KEYS):
    features[key] = float_feature([box[index] for box in boxes])
  return tf.train.Example(features=tf.train.Features(feature=features))


def decode_image(encoded, min_side=None):
  """Decodes JPEG or PNG bytes to uint8 RGB [H, W, 3] (graph ops).

  JPEGs use the accurate integer IDCT, the one OpenCV and PIL use, so the
  pixels equal `cv2.imread`'s; TensorFlow's default (fast IDCT) differs by
  up to a few levels.

  With `min_side`, a large JPEG is decoded at reduced size: libjpeg scales
  its DCT by 1/2, 1/4 or 1/8 (`decode_jpeg`'s ratio), several times faster
  than decoding whole.  The largest ratio that keeps the shorter side at
  least `min_side` pixels is picked from the JPEG header.  Normalised boxes
  stay exact.  PNGs are always decoded whole.

  Args:
    encoded: scalar string tensor, JPEG or PNG bytes.
    min_side: None decodes at full size; else the shortest side a reduced
      JPEG decode may have, in pixels.

  Returns:
    uint8 [H, W, 3] RGB.
  """
  if min_side is None:
    decode_jpeg = functools.partial(_decode_jpeg, encoded, 1)
  else:
    decode_jpeg = functools.partial(_decode_jpeg_reduced, encoded, min_side)
  image = tf.cond(tf.io.is_jpeg(encoded), decode_jpeg,
                  lambda: tf.io.decode_png(encoded, channels=3))
  image.set_shape([None, None, 3])
  return image


# The DCT scalings libjpeg offers, as decode_jpeg's `ratio`.
JPEG_DECODE_RATIOS = (1, 2, 4, 8)


def _decode_jpeg(encoded, ratio):
  return tf.io.decode_jpeg(encoded, channels=3, ratio=ratio,
                           dct_method='INTEGER_ACCURATE')


def _decode_jpeg_reduced(encoded, min_side):
  """A JPEG decoded at the largest ratio keeping its short side >= min_side."""
  shorter_side = tf.reduce_min(tf.io.extract_jpeg_shape(encoded)[:2])
  # decode_jpeg's ratio is an attribute: one branch per ratio.
  branch = tf.add_n([tf.cast(shorter_side >= min_side * ratio, tf.int32)
                     for ratio in JPEG_DECODE_RATIOS[1:]])
  return tf.switch_case(branch, [
      functools.partial(_decode_jpeg, encoded, ratio)
      for ratio in JPEG_DECODE_RATIOS])


def decode_example(serialized, min_side=None):
  """Parses and decodes one serialized detection example (graph ops).

  Args:
    serialized: scalar string tensor, a tf.train.Example from `make_example`
      or from the SSD-Tensorflow converter.
    min_side: reduced-size JPEG decoding, see `decode_image`.

  Returns:
    A dict of tensors: 'image' uint8 [H, W, 3] RGB, 'shape' int32 [3],
    'labels' int64 [N], 'bboxes' float32 [N, 4] (ymin, xmin, ymax, xmax),
    'difficult' int64 [N], 'truncated' int64 [N], 'filename' string.
  """
  per_box_int = tf.io.VarLenFeature(tf.int64)
  spec = {
      'image/encoded': tf.io.FixedLenFeature([], tf.string),
      'image/filename': tf.io.FixedLenFeature([], tf.string, default_value=''),
      _BBOX_KEY + 'label': per_box_int,
      _BBOX_KEY + 'difficult': per_box_int,
      _BBOX_KEY + 'truncated': per_box_int,
  }
  spec.update({key: tf.io.VarLenFeature(tf.float32)
               for key in BBOX_COORDINATE_KEYS})
  features = tf.io.parse_single_example(serialized, spec)
  dense = {key: tf.sparse.to_dense(value) for key, value in features.items()
           if isinstance(value, tf.sparse.SparseTensor)}
  image = decode_image(features['image/encoded'], min_side)
  return {
      'image': image,
      'shape': tf.shape(image),
      'labels': dense[_BBOX_KEY + 'label'],
      'bboxes': tf.stack([dense[key] for key in BBOX_COORDINATE_KEYS], axis=1),
      'difficult': dense[_BBOX_KEY + 'difficult'],
      'truncated': dense[_BBOX_KEY + 'truncated'],
      'filename': features['image/filename'],
  }


# A TFRecord record: uint64 length, uint32 CRC of the length, the data,
# uint32 CRC of the data.
_RECORD_HEADER_BYTES = 12
_RECORD_FOOTER_BYTES = 4


def tfrecord_damage(path):
  """Why TFRecord file `path` is cut short, or None if it is not.

  Walks the record headers (their lengths, seeking over the data), so it
  takes a moment even for gigabytes; a record whose bytes are damaged but
  whose length is intact is not found.
  """
  size = os.path.getsize(path)
  offset = 0
  with open(path, 'rb') as records:
    while offset < size:
      records.seek(offset)
      header = records.read(_RECORD_HEADER_BYTES)
      if len(header) < _RECORD_HEADER_BYTES:
        return ('truncated: the record at byte %d has no complete header '
                '(the file ends at byte %d)' % (offset, size))
      length, = struct.unpack('<Q', header[:8])
      end = offset + _RECORD_HEADER_BYTES + length + _RECORD_FOOTER_BYTES
      if end > size:
        return ('truncated: the record at byte %d needs %d bytes, the file '
                'ends at byte %d' % (offset, end - offset, size))
      offset = end
  return None


def write_label_file(labels_to_names, dataset_dir):
  """Writes `labels.txt` (`id:name` per line) into `dataset_dir`."""
  with open(os.path.join(dataset_dir, LABELS_FILENAME), 'w') as label_file:
    for label in sorted(labels_to_names):
      label_file.write('%d:%s\n' % (label, labels_to_names[label]))


def read_label_file(path):
  """Reads a `labels.txt` written by `write_label_file` into {id: name}."""
  labels_to_names = {}
  with open(path, encoding='utf-8-sig') as label_file:
    for number, line in enumerate(label_file, 1):
      if not line.strip():
        continue
      label, sep, name = line.strip().partition(':')
      if not sep or not label.isdigit():
        raise ValueError('%s:%d: expected "id:name", got %r' %
                         (path, number, line.strip()))
      labels_to_names[int(label)] = name
  return labels_to_names


def metadata_path(dataset_dir, name):
  return os.path.join(dataset_dir, name + '.json')


def write_metadata(metadata, dataset_dir):
  """Writes the metadata dict (schema above) as `<name>.json`."""
  with open(metadata_path(dataset_dir, metadata['name']), 'w') as json_file:
    json.dump(metadata, json_file, indent=2, sort_keys=True)
    json_file.write('\n')


def read_metadata(path):
  """Reads a metadata JSON; ValueError naming the file when it is not one."""
  try:
    with open(path) as json_file:
      metadata = json.load(json_file)
  except (OSError, ValueError) as error:
    raise ValueError('%s: unreadable metadata (%s)' % (path, error)) from None
  missing = [key for key in _METADATA_KEYS
             if not isinstance(metadata, dict) or key not in metadata]
  if missing:
    raise ValueError('%s: not a converter metadata file (missing %s)' %
                     (path, ', '.join(missing)))
  return metadata


def shuffle_buffer_records(num_records, mean_record_bytes,
                           budget_mib=SHUFFLE_BUFFER_MIB):
  """Records the shuffle buffer holds: those fitting in `budget_mib`.

  Kept between MIN_SHUFFLE_RECORDS and MAX_SHUFFLE_RECORDS, and never more
  than `num_records` (the buffer then holds the whole split).
  """
  fitting = int(budget_mib * (1 << 20) // max(1, mean_record_bytes))
  bounded = min(MAX_SHUFFLE_RECORDS, max(MIN_SHUFFLE_RECORDS, fitting))
  return max(1, min(num_records, bounded))


def large_records_warning(mean_record_bytes):
  """A suggestion to store smaller photos when records are large, or None."""
  if mean_record_bytes <= LARGE_RECORD_BYTES:
    return None
  return ('Records average %.1f MB: the photos are far larger than the '
          'network\'s input, and each one held in the shuffle buffer or '
          'decoded costs memory and time. Converting them with the '
          'converter\'s --max_image_side 1200 stores them at ~0.3 MB.' %
          (mean_record_bytes / 1e6))


def read_records(files, num_readers=4, shuffle_buffer_size=0,
                 num_epochs=None, seed=None):
  """The serialized records of `files`, as a tf.data.Dataset.

  With a shuffle buffer, the shard order is shuffled, `num_readers` shards
  are interleaved and the records pass through the buffer, all before the
  repeat: each epoch is a new permutation of the records, and the buffer
  never holds two copies of one record.

  Args:
    files: TFRecord paths.
    num_readers: shards read in parallel.
    shuffle_buffer_size: records the shuffle holds; 0: file order.
    num_epochs: passes over the data; None repeats forever.
    seed: shuffle seed, None for a random order.
  """
  shards = tf.data.Dataset.from_tensor_slices(list(files))
  if shuffle_buffer_size:
    shards = shards.shuffle(len(files), seed=seed)
  records = shards.interleave(
      tf.data.TFRecordDataset, cycle_length=max(1, num_readers),
      num_parallel_calls=max(1, num_readers))
  if shuffle_buffer_size:
    records = records.shuffle(shuffle_buffer_size, seed=seed)
  return records.repeat(num_epochs)


class DetectionDataset(object):
  """A split of converted detection TFRecords and how to read it.

  Attributes:
    name: dataset name given to the factory.
    split_name: split name given to the factory.
    files: sorted list of shard paths.
    num_samples: number of records in `files`.
    labels_to_names: {id: name}, 0 = background.
    num_classes: object classes + 1 (background).
    metadata: the converter's metadata dict(s) (list), or [] when the sizes
      came from a built-in table.
  """

  def __init__(self, name, split_name, files, num_samples, labels_to_names,
               metadata=()):
    self.name = name
    self.split_name = split_name
    self.files = list(files)
    self.num_samples = num_samples
    self.labels_to_names = dict(labels_to_names)
    self.num_classes = len(self.labels_to_names)
    self.metadata = list(metadata)

  def __repr__(self):
    return ('DetectionDataset(%r, split %r: %d samples in %d files, '
            '%d classes)' % (self.name, self.split_name, self.num_samples,
                             len(self.files), self.num_classes))

  def mean_record_bytes(self):
    """Mean size of a serialized record: the shards' bytes / num_samples."""
    total = sum(tf.io.gfile.stat(path).length for path in self.files)
    return total / max(1, self.num_samples)

  def shuffle_buffer_size(self, budget_mib=SHUFFLE_BUFFER_MIB):
    """Records of this split that the training shuffle holds (logged, with
    a suggestion when the records are large)."""
    mean_bytes = self.mean_record_bytes()
    size = shuffle_buffer_records(self.num_samples, mean_bytes, budget_mib)
    logging.info('Shuffle buffer: %d records of %.2f MB on average '
                 '(budget %d MiB, %d records in the split).', size,
                 mean_bytes / 1e6, budget_mib, self.num_samples)
    warning = large_records_warning(mean_bytes)
    if warning:
      logging.warning('%s', warning)
    return size

  def read(self, num_readers=4, shuffle=True, num_epochs=None, seed=None,
           num_parallel_calls=tf.data.AUTOTUNE, shuffle_buffer_size=None,
           decode_min_side=None):
    """Returns a tf.data.Dataset of decoded examples (`decode_example` dicts).

    The serialized records come from `read_records` (each epoch a new
    permutation when shuffled); decoding runs in parallel.  The order is
    deterministic for a given `seed` (or when `shuffle` is False).

    Args:
      num_readers: shards read in parallel.
      shuffle: shuffle shard order and records (reshuffled every epoch).
      num_epochs: passes over the data; None repeats forever.
      seed: shuffle seed, None for a random order.
      num_parallel_calls: parallel decodes (tf.data.AUTOTUNE by default).
      shuffle_buffer_size: records held by the record shuffle; None: those
        fitting in SHUFFLE_BUFFER_MIB (`shuffle_buffer_size()`).
      decode_min_side: decode large JPEGs at reduced size, keeping at least
        this many pixels on the shorter side (see `decode_image`).

    Returns:
      The tf.data.Dataset.
    """
    if not shuffle:
      shuffle_buffer_size = 0
    elif shuffle_buffer_size is None:
      shuffle_buffer_size = self.shuffle_buffer_size()
    records = read_records(self.files, num_readers, shuffle_buffer_size,
                           num_epochs, seed)
    return records.map(
        functools.partial(decode_example, min_side=decode_min_side),
        num_parallel_calls=num_parallel_calls)
