"""Exports an SSD checkpoint as a TensorFlow SavedModel for serving.

  python export_ssd_network.py --checkpoint_path=ckpt/fine_tuning \\
      --export_dir=export/ssd/1 --labels=tfrecords/sample/labels.txt

The SavedModel (tag 'serve') has one signature, 'serving_default':
  input  `encoded_images`: string, one encoded JPEG or PNG image (a scalar)
         or a batch of them ([N]); images may have any size.
  outputs, for a batch of N images (1 for a scalar), K = --keep_top_k:
    `detection_boxes`   float32 [N, K, 4] (ymin, xmin, ymax, xmax)
                        normalised in the ORIGINAL image (multiply by its
                        height and width for pixels);
    `detection_classes` int64 [N, K] labels (1..num_classes-1);
    `detection_scores`  float32 [N, K], decreasing;
    `num_detections`    int32 [N]: the first num_detections rows of each
                        image are detections, the rest is zero padding.
Decoding, the evaluation preprocessing (--eval_resize), the network and the
post-processing (--select_threshold, NMS) are all inside the graph: the
detector of `utils.inference.detection`, so its detections are those of the demo and
of evaluation.  With --labels, the labels file is checked against the
checkpoint and copied to `assets.extra/labels.txt` in the export.
--precision mixed_bfloat16 exports a network that computes in bfloat16 (the
casts are in the graph, weights stay float32; fast on CPUs with
AVX512_BF16, bench/inference.py times it); decoding and NMS stay float32.
For a faster CPU path still, see utils/inference/openvino_detector.py.

In TensorFlow 2:
  model = tf.saved_model.load(export_dir)
  outputs = model.signatures['serving_default'](
      encoded_images=tf.constant(open('photo.jpg', 'rb').read()))
"""
import os
import shutil
import sys

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from datasets import dataset_utils
from utils.common import paths
from utils.inference import detection
from utils.inference import signature

_v1 = tf.compat.v1

LABELS_EXPORT_PATH = os.path.join('assets.extra', dataset_utils.LABELS_FILENAME)

FLAGS = flags.FLAGS


def define_flags():
  """Defines the export flags (only when run as a program)."""
  detection.define_flags(paths.FINE_TUNING_DIR)
  flags.adopt_module_key_flags(detection)
  flags.DEFINE_string('export_dir', None,
                      'Directory of the SavedModel; must not exist yet (for '
                      'TensorFlow Serving, a version folder such as '
                      'export/ssd/1).')
  flags.DEFINE_string('labels', None,
                      'Labels file (id:name lines, 0 = background), checked '
                      'against the checkpoint and copied into the export.')
  flags.mark_flag_as_required('export_dir')


def build_serving_graph(ssd_net, model_name, settings):
  """The serving graph in the default graph: (input, outputs dict)."""
  encoded_images = _v1.placeholder(tf.string, shape=None,
                                   name=signature.INPUT_NAME)

  images, bbox_imgs = detection.decode_and_preprocess(
      encoded_images, ssd_net, model_name, settings.resize)
  outputs = detection.detect(ssd_net, images, bbox_imgs, settings)
  names = signature.OUTPUT_NAMES
  return encoded_images, {names[key]: tf.identity(value, name=names[key])
                          for key, value in outputs.items()}


def export(checkpoint_path, export_dir, model_name='ssd_300_vgg',
           settings=detection.DetectionSettings(), moving_average_decay=None,
           labels_path=None):
  """Writes the SavedModel of a checkpoint (see the module docstring).

  Args:
    checkpoint_path: prefix, one of its files, or a directory (latest).
    export_dir: SavedModel directory; must not exist.
    model_name: network name.
    settings: `utils.inference.detection.DetectionSettings`, fixed in the graph.
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
              signature.SIGNATURE_NAME:
                  _v1.saved_model.predict_signature_def(
                      {signature.INPUT_NAME: encoded_images}, outputs)},
          strip_default_attrs=True)
      builder.save()
  if labels_path:
    os.makedirs(os.path.dirname(os.path.join(export_dir, LABELS_EXPORT_PATH)))
    shutil.copyfile(labels_path, os.path.join(export_dir, LABELS_EXPORT_PATH))
  logging.info('Exported %s to %s.', checkpoint_path, export_dir)
  return checkpoint_path


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  _v1.disable_eager_execution()
  try:
    export(FLAGS.checkpoint_path, FLAGS.export_dir,
           model_name=FLAGS.model_name,
           settings=detection.settings_from_flags(FLAGS),
           moving_average_decay=FLAGS.moving_average_decay,
           labels_path=FLAGS.labels)
  except ValueError as error:
    sys.exit('error: %s' % error)


if __name__ == '__main__':
  define_flags()
  app.run(main)
