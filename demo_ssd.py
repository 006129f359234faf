"""Runs an SSD checkpoint on image files: prints and draws the detections.

  python demo_ssd.py --checkpoint_path=ckpt/fine_tuning \\
      --images photo1.jpg photo2.jpg  (or a folder) \\
      --labels=tfrecords/sample/labels.txt --output_dir=demo_out

Every image is written to --output_dir under its own name with the
detections drawn (a colour per class, the class name and score), and each
detection is printed as `class score xmin ymin xmax ymax` in the image's
pixels.  The detector is the one evaluation and export use
(`utils.detection`), so the detections are the same.

Before anything is built, the checkpoint's number of classes is checked
against --labels, and every image is read (an unreadable one stops the run
with its name).
"""
import collections
import os
import sys

from absl import app
from absl import flags
from absl import logging
import cv2
import tensorflow as tf

from datasets import pascalvoc_to_tfrecords
from datasets import voc_common
from utils import checkpoints
from utils import detection
from utils import drawing

_v1 = tf.compat.v1

# One image's detections: classes [D] int64, scores [D] float32 (decreasing)
# and bboxes [D, 4] (ymin, xmin, ymax, xmax) normalised in the image.
ImageDetections = collections.namedtuple(
    'ImageDetections', ['path', 'height', 'width', 'classes', 'scores',
                        'bboxes'])

# The demo shows confident detections only.
DEFAULT_SETTINGS = detection.DetectionSettings(select_threshold=0.5)

FLAGS = flags.FLAGS


def define_flags():
  """Defines the demo flags (only when run as a program)."""
  detection.define_flags(checkpoints.FINE_TUNING_DIR,
                         DEFAULT_SETTINGS)
  flags.adopt_module_key_flags(detection)
  flags.DEFINE_multi_string('images', None,
                            'Image files or folders (their JPEG, PNG and BMP '
                            'files). Repeat the flag, or list more images '
                            'after it: --images a.jpg b.jpg.')
  flags.DEFINE_string('output_dir', None,
                      'Where the images with their detections drawn go.')
  flags.DEFINE_string('labels', None,
                      'Labels file (id:name lines, 0 = background), e.g. the '
                      'labels.txt of the training TFRecords; checked against '
                      'the checkpoint. Default: classes shown as numbers.')
  flags.mark_flags_as_required(['output_dir'])


def list_images(paths):
  """The image files of `paths`: files as given, folders' images sorted.

  Raises:
    ValueError: a path that does not exist, or a folder without images.
  """
  files = []
  for path in paths:
    if os.path.isdir(path):
      found = sorted(
          os.path.join(path, name) for name in os.listdir(path)
          if name.endswith(pascalvoc_to_tfrecords.IMAGE_EXTENSIONS))
      if not found:
        raise ValueError('folder %s holds no image (%s)' % (
            path, ' '.join(pascalvoc_to_tfrecords.IMAGE_EXTENSIONS)))
      files.extend(found)
    elif os.path.isfile(path):
      files.append(path)
    else:
      raise ValueError('image %s does not exist' % path)
  return files


def read_image(path):
  """The image as uint8 RGB [H, W, 3].

  Raises:
    ValueError: if OpenCV cannot read it.
  """
  image = cv2.imread(path, cv2.IMREAD_COLOR)
  if image is None:
    raise ValueError('cannot read image %s: missing, unreadable, or not an '
                     'image format OpenCV decodes' % path)
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def detect(checkpoint_path, image_paths, num_classes=None,
           model_name='ssd_300_vgg',
           settings=DEFAULT_SETTINGS,
           moving_average_decay=None):
  """Detects objects in image files.

  Args:
    checkpoint_path: prefix, one of its files, or a directory (latest).
    image_paths: image files.
    num_classes: classes (with background) the checkpoint must predict, e.g.
      len(labels); None accepts the checkpoint's.
    model_name: network name.
    settings: `utils.detection.DetectionSettings`.
    moving_average_decay: if set, use the moving averages of the weights.

  Returns:
    One `ImageDetections` per image, in order.

  Raises:
    CheckpointError: missing checkpoint or a class count that differs.
    ValueError: an unreadable image.
  """
  checkpoint_path, ssd_net = detection.load_network(
      checkpoint_path, model_name, num_classes, 'the labels')
  images = [read_image(path) for path in image_paths]
  with tf.Graph().as_default():
    image = _v1.placeholder(tf.uint8, [None, None, 3], name='image')
    network_input, bbox_img = detection.preprocess(image, ssd_net, model_name,
                                                   settings.resize)
    outputs = detection.detect(ssd_net, network_input[tf.newaxis],
                               bbox_img[tf.newaxis], settings)
    saver = detection.make_saver(checkpoint_path, moving_average_decay)
    results = []
    with _v1.Session() as session:
      saver.restore(session, checkpoint_path)
      for path, pixels in zip(image_paths, images):
        values = session.run(outputs, {image: pixels})
        count = values['num_detections'][0]
        results.append(ImageDetections(
            path, pixels.shape[0], pixels.shape[1],
            values['classes'][0][:count], values['scores'][0][:count],
            values['bboxes'][0][:count]))
  return results


def pixel_boxes(detections):
  """The detections' boxes as (xmin, ymin, xmax, ymax) pixels, [D, 4]."""
  boxes = voc_common.denormalize_boxes(detections.bboxes, detections.height,
                                       detections.width)
  return boxes.reshape(-1, 4)[:, [1, 0, 3, 2]]


def format_detections(detections, labels_to_names):
  """One line per detection: `class score xmin ymin xmax ymax` (pixels);
  classes missing from `labels_to_names` show as their number."""
  return ['%s %.3f %.1f %.1f %.1f %.1f' % (
      (labels_to_names.get(label, str(label)), score) + tuple(box))
          for label, score, box in zip(detections.classes, detections.scores,
                                       pixel_boxes(detections))]


def run(checkpoint_path, image_paths, output_dir, labels_path=None,
        **detect_kwargs):
  """The demo: detects, prints and writes the drawn images.

  Args:
    checkpoint_path: prefix, one of its files, or a directory (latest).
    image_paths: image files or folders (see `list_images`).
    output_dir: where the drawn images go (created).
    labels_path: labels file checked against the checkpoint, or None.
    **detect_kwargs: model_name, settings, moving_average_decay of `detect`.

  Returns:
    The `ImageDetections` of the images.
  """
  image_paths = list_images(image_paths)
  names = [os.path.basename(path) for path in image_paths]
  repeated = sorted({name for name in names if names.count(name) > 1})
  if repeated:
    raise ValueError('several images are called %s; their outputs would '
                     'overwrite each other' % ', '.join(repeated))
  labels_to_names = detection.read_labels(labels_path) if labels_path else {}
  results = detect(checkpoint_path, image_paths,
                   num_classes=len(labels_to_names) or None, **detect_kwargs)
  os.makedirs(output_dir, exist_ok=True)
  for detections, name in zip(results, names):
    print('%s: %d detections' % (detections.path, len(detections.classes)))
    for line in format_detections(detections, labels_to_names):
      print('  ' + line)
    image = drawing.draw_detections(
        read_image(detections.path), detections.bboxes, detections.classes,
        detections.scores, labels_to_names)
    cv2.imwrite(os.path.join(output_dir, name),
                cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  return results


def main(argv):
  # Arguments left after the flags are images too: --images a.jpg b.jpg.
  images = (FLAGS.images or []) + argv[1:]
  if not images:
    raise app.UsageError('no images: give them with --images')
  _v1.disable_eager_execution()
  try:
    run(FLAGS.checkpoint_path, images, FLAGS.output_dir, FLAGS.labels,
        model_name=FLAGS.model_name,
        settings=detection.settings_from_flags(FLAGS),
        moving_average_decay=FLAGS.moving_average_decay)
  except ValueError as error:
    logging.error('%s', error)
    sys.exit(1)


if __name__ == '__main__':
  define_flags()
  app.run(main)
