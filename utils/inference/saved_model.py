"""The SavedModel export of a checkpoint, and its serving signature.

The SavedModel (tag 'serve') has one signature, SIGNATURE_NAME:
  input  INPUT_NAME: string, one encoded JPEG or PNG image (a scalar) or a
         batch of them ([N]); images may have any size.
  outputs OUTPUT_NAMES of the `utils.inference.detection.detect` outputs,
         for a batch of N images (1 for a scalar), K = keep_top_k:
    detection_boxes    float32 [N, K, 4] (ymin, xmin, ymax, xmax)
                       normalised in the original image;
    detection_classes  int64 [N, K] labels (1..num_classes-1);
    detection_scores   float32 [N, K], decreasing;
    num_detections     int32 [N]: the first num_detections rows of each
                       image are detections, the rest is zero padding.
Decoding, the evaluation preprocessing, the network and the post-processing
are all inside the graph: the detector of `utils.inference.detection`, so
its detections are those of the demo and of evaluation.
"""
import os
import shutil

from absl import logging
import tensorflow as tf

from datasets import dataset_utils
from utils.inference import detection

_v1 = tf.compat.v1

SIGNATURE_NAME = 'serving_default'
INPUT_NAME = 'encoded_images'
# Output names (those of the TensorFlow Object Detection API) of the
# `utils.inference.detection.detect` outputs.
OUTPUT_NAMES = {'bboxes': 'detection_boxes', 'classes': 'detection_classes',
                'scores': 'detection_scores',
                'num_detections': 'num_detections'}
LABELS_EXPORT_PATH = os.path.join('assets.extra', dataset_utils.LABELS_FILENAME)


def build_serving_graph(ssd_net, model_name, settings):
  """The serving graph in the default graph: (input, outputs dict)."""
  encoded_images = _v1.placeholder(tf.string, shape=None, name=INPUT_NAME)
  images, bbox_imgs = detection.decode_and_preprocess(
      encoded_images, ssd_net, model_name, settings.resize)
  outputs = detection.detect(ssd_net, images, bbox_imgs, settings)
  return encoded_images, {OUTPUT_NAMES[key]: tf.identity(
      value, name=OUTPUT_NAMES[key]) for key, value in outputs.items()}


def export(checkpoint_path, export_dir, model_name='ssd_300_vgg',
           settings=detection.DetectionSettings(), moving_average_decay=None,
           labels_path=None):
  """Writes the SavedModel of a checkpoint (see the module docstring).

  Args:
    checkpoint_path: prefix, one of its files, or a directory (latest).
    export_dir: SavedModel directory; must not exist.
    model_name: network name.
    settings: `detection.DetectionSettings`, fixed in the graph.
    moving_average_decay: if set, export the moving averages of the weights.
    labels_path: optional labels file, checked and copied into the export.

  Returns:
    The checkpoint prefix exported.

  Raises:
    CheckpointError: missing checkpoint, or one that does not fit the labels.
    ValueError: an existing export_dir, an unreadable labels file.
  """
  if tf.io.gfile.exists(export_dir):
    raise ValueError('export_dir %s already exists: SavedModels are not '
                     'overwritten, give a new directory' % export_dir)
  detection.make_output_dir(os.path.dirname(os.path.abspath(export_dir)),
                            '--export_dir')
  num_classes = len(detection.read_labels(labels_path)) if labels_path else None
  checkpoint_path, ssd_net = detection.load_network(
      checkpoint_path, model_name, num_classes,
      'labels file %s' % labels_path)
  with tf.Graph().as_default():
    encoded_images, outputs = build_serving_graph(ssd_net, model_name,
                                                  settings)
    with _v1.Session() as session:
      detection.restore_detector(session, checkpoint_path,
                                 moving_average_decay, model_name)
      builder = _v1.saved_model.Builder(export_dir)
      builder.add_meta_graph_and_variables(
          session, [tf.saved_model.SERVING],
          signature_def_map={
              SIGNATURE_NAME:
                  _v1.saved_model.predict_signature_def(
                      {INPUT_NAME: encoded_images}, outputs)},
          strip_default_attrs=True)
      builder.save()
  if labels_path:
    os.makedirs(os.path.dirname(os.path.join(export_dir, LABELS_EXPORT_PATH)))
    shutil.copyfile(labels_path, os.path.join(export_dir, LABELS_EXPORT_PATH))
  logging.info('Exported %s to %s.', checkpoint_path, export_dir)
  return checkpoint_path
