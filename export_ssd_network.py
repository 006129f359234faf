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
detector of `utils.inference.detection`, so its detections are those of
the demo and of evaluation (`utils.inference.saved_model` writes it).
With --labels, the labels file is checked against the
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
import sys

from absl import app
from absl import flags
import tensorflow as tf

from utils.common import paths
from utils.inference import detection
from utils.inference import saved_model

_v1 = tf.compat.v1

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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  _v1.disable_eager_execution()
  try:
    saved_model.export(FLAGS.checkpoint_path, FLAGS.export_dir,
                       model_name=FLAGS.model_name,
                       settings=detection.settings_from_flags(FLAGS),
                       moving_average_decay=FLAGS.moving_average_decay,
                       labels_path=FLAGS.labels)
  except ValueError as error:
    sys.exit('error: %s' % error)


if __name__ == '__main__':
  define_flags()
  app.run(main)
