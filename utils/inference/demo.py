"""The demo's library: detections on image files, printed and drawn.

`run` reads the images (an unreadable one skipped with a warning naming it,
or an error with `strict`; a truncated JPEG flagged by name), checks the
checkpoint's class count against the labels, runs the detector shared with
evaluation and export (`detection`), writes each image with its detections
drawn and returns them; `detect` gives the detections only.
"""
import collections
import os
import sys

from absl import logging
import cv2
import tensorflow as tf
import tqdm

from datasets import image_files
from datasets import voc_common
from utils.common import drawing
from utils.inference import detection

_v1 = tf.compat.v1

# One image's detections: classes [D] int64, scores [D] float32 (decreasing)
# and bboxes [D, 4] (ymin, xmin, ymax, xmax) normalised in the image.
ImageDetections = collections.namedtuple(
    'ImageDetections', ['path', 'height', 'width', 'classes', 'scores',
                        'bboxes'])

# An image the demo could not use as it is: skipped (unreadable) or kept
# with a warning (a truncated JPEG); `message` names the file.
ImageProblem = collections.namedtuple('ImageProblem',
                                      ['path', 'skipped', 'message'])

# The demo shows confident detections only.
DEFAULT_SETTINGS = detection.DetectionSettings(select_threshold=0.5)


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
          if name.endswith(image_files.IMAGE_EXTENSIONS))
      if not found:
        raise ValueError('folder %s holds no image (%s)' % (
            path, ' '.join(image_files.IMAGE_EXTENSIONS)))
      files.extend(found)
    elif os.path.isfile(path):
      files.append(path)
    else:
      raise ValueError('image %s does not exist' % path)
  return files


def read_image(path):
  """The image as uint8 RGB [H, W, 3] and whether it is a truncated JPEG.

  EXIF orientation is ignored, as TensorFlow's decoders (evaluation, the
  exported model) ignore it.

  Raises:
    ValueError: if the file cannot be read or decoded; the message names it.
  """
  try:
    with open(path, 'rb') as image_file:
      data = image_file.read()
  except OSError as error:
    raise ValueError('cannot read image %s: %s' % (
        path, error.strerror or error)) from None
  header = image_files.jpeg_header(data)
  truncated = header is not None and not header[2]
  # imread, not imdecode: OpenCV's imdecode rejects truncated JPEGs that
  # imread decodes (grey where the data ends).
  image = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
                    ) if data else None
  if image is None:
    raise ValueError('cannot read image %s: empty, or not an image format '
                     'OpenCV decodes' % path)
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), truncated


def read_images(image_paths, problems=None):
  """Yields (path, uint8 RGB pixels) of the images, one at a time.

  Args:
    image_paths: image files.
    problems: None to raise at the first bad image (strict), or a list that
      gets an `ImageProblem` for every unreadable image (skipped) and
      truncated JPEG (kept), each also logged as a warning.

  Raises:
    ValueError: with problems=None, an unreadable image or truncated JPEG.
  """
  for path in image_paths:
    try:
      pixels, truncated = read_image(path)
    except ValueError as error:
      if problems is None:
        raise
      logging.warning('skipping %s', error)
      problems.append(ImageProblem(path, True, str(error)))
      continue
    if truncated:
      message = ('image %s is a truncated JPEG (no end marker): its lower '
                 'part is not in the file' % path)
      if problems is None:
        raise ValueError(message)
      logging.warning('%s; detecting on what there is', message)
      problems.append(ImageProblem(path, False, message))
    yield path, pixels


def detect(checkpoint_path, image_paths, num_classes=None,
           model_name='ssd_300_vgg',
           settings=DEFAULT_SETTINGS,
           moving_average_decay=None, problems=None, progress=False):
  """Detects objects in image files.

  Args:
    checkpoint_path: prefix, one of its files, or a directory (latest).
    image_paths: image files.
    num_classes: classes (with background) the checkpoint must predict, e.g.
      len(labels); None accepts the checkpoint's.
    model_name: network name.
    settings: `utils.inference.detection.DetectionSettings`.
    moving_average_decay: if set, use the moving averages of the weights.
    problems: see `read_images`: None stops at a bad image, a list collects
      the bad images (unreadable ones are skipped).
    progress: show a progress bar (only when stdout is a terminal).

  Returns:
    One `ImageDetections` per image read, in order.

  Raises:
    CheckpointError: missing checkpoint or a class count that differs.
    ValueError: an unreadable image (with problems=None).
  """
  return [detections for detections, _ in iterate_detections(
      checkpoint_path, image_paths, num_classes, model_name, settings,
      moving_average_decay, problems, progress)]


def iterate_detections(checkpoint_path, image_paths, num_classes=None,
                       model_name='ssd_300_vgg', settings=DEFAULT_SETTINGS,
                       moving_average_decay=None, problems=None,
                       progress=False):
  """`detect` as a generator of (ImageDetections, RGB pixels), each image
  once its detections are found."""
  checkpoint_path, ssd_net = detection.load_network(
      checkpoint_path, model_name, num_classes, 'the labels')
  with tf.Graph().as_default():
    image = _v1.placeholder(tf.uint8, [None, None, 3], name='image')
    network_input, bbox_img = detection.preprocess(image, ssd_net, model_name,
                                                   settings.resize)
    outputs = detection.detect(ssd_net, network_input[tf.newaxis],
                               bbox_img[tf.newaxis], settings)
    with _v1.Session() as session:
      detection.restore_detector(session, checkpoint_path,
                                 moving_average_decay, model_name)
      images = tqdm.tqdm(image_paths, unit='image',
                         disable=not (progress and sys.stdout.isatty()))
      for path, pixels in read_images(images, problems):
        values = session.run(outputs, {image: pixels})
        count = values['num_detections'][0]
        yield ImageDetections(
            path, pixels.shape[0], pixels.shape[1],
            values['classes'][0][:count], values['scores'][0][:count],
            values['bboxes'][0][:count]), pixels


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
        strict=False, progress=False, **detect_kwargs):
  """The demo: detects, prints and writes the drawn images.

  Args:
    checkpoint_path: prefix, one of its files, or a directory (latest).
    image_paths: image files or folders (see `list_images`).
    output_dir: where the drawn images go (created).
    labels_path: labels file checked against the checkpoint, or None.
    strict: stop at the first unreadable image or truncated JPEG instead of
      skipping (flagging) it.
    progress: show a progress bar on a terminal.
    **detect_kwargs: model_name, settings, moving_average_decay of `detect`.

  Returns:
    (the `ImageDetections` of the images read, the `ImageProblem`s of the
    images skipped or flagged).

  Raises:
    ValueError: bad arguments, an output folder that cannot be created, a
      bad image with strict; CheckpointError for a checkpoint that does not
      fit.
  """
  image_paths = list_images(image_paths)
  names = [os.path.basename(path) for path in image_paths]
  repeated = sorted({name for name in names if names.count(name) > 1})
  if repeated:
    raise ValueError('several images are called %s; their outputs would '
                     'overwrite each other' % ', '.join(repeated))
  labels_to_names = detection.read_labels(labels_path) if labels_path else {}
  detection.make_output_dir(output_dir, '--output_dir')
  problems = None if strict else []
  results = []
  for detections, pixels in iterate_detections(
      checkpoint_path, image_paths, len(labels_to_names) or None,
      problems=problems, progress=progress, **detect_kwargs):
    results.append(detections)
    tqdm.tqdm.write('%s: %d detections' % (detections.path,
                                           len(detections.classes)))
    for line in format_detections(detections, labels_to_names):
      tqdm.tqdm.write('  ' + line)
    drawn = drawing.draw_detections(pixels, detections.bboxes,
                                    detections.classes, detections.scores,
                                    labels_to_names)
    output_path = os.path.join(output_dir, os.path.basename(detections.path))
    if not cv2.imwrite(output_path, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)):
      raise ValueError('cannot write %s' % output_path)
  problems = problems or []
  skipped = [problem.path for problem in problems if problem.skipped]
  flagged = [problem.path for problem in problems if not problem.skipped]
  if problems:
    logging.warning('%d of %d images skipped (unreadable): %s; %d truncated '
                    'JPEG(s) flagged: %s', len(skipped), len(image_paths),
                    ', '.join(skipped) or '-', len(flagged),
                    ', '.join(flagged) or '-')
  return results, problems
