"""Runs an SSD checkpoint on image files: prints and draws the detections.

  python demo_ssd.py --checkpoint_path=ckpt/fine_tuning \\
      --images photo1.jpg photo2.jpg  (or a folder) \\
      --labels=tfrecords/sample/labels.txt --output_dir=demo_out

Every image is written to --output_dir under its own name with the
detections drawn (a colour per class, the class name and score), and each
detection is printed as `class score xmin ymin xmax ymax` in the image's
pixels.  The detector is the one evaluation and export use
(`utils.inference.detection`), so the detections are the same.

Before anything is built, the checkpoint's number of classes is checked
against --labels and the output folder is created.  An unreadable file in
the images is skipped with a warning naming it (the run ends with the count
of skipped files); --strict stops at the first one instead.  A truncated
JPEG (which OpenCV decodes with its lower part grey, saying only "Premature
end of JPEG file") is flagged by name, and is an error with --strict.  On a
terminal a progress bar shows the images done, their rate and the time left
(--noprogress turns it off).  --precision mixed_bfloat16 (or auto) runs
the network in bfloat16, as evaluation and export can.
"""
import sys

from absl import app
from absl import flags
import tensorflow as tf

from utils.common import paths
from utils.inference import demo
from utils.inference import detection

_v1 = tf.compat.v1

FLAGS = flags.FLAGS


def define_flags():
  """Defines the demo flags (only when run as a program)."""
  detection.define_flags(paths.FINE_TUNING_DIR,
                         demo.DEFAULT_SETTINGS)
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
  flags.DEFINE_boolean('strict', False,
                       'Stop at the first unreadable image or truncated JPEG '
                       'instead of skipping (flagging) it with a warning.')
  flags.DEFINE_boolean('progress', True,
                       'Show a progress bar (only on a terminal); '
                       '--noprogress turns it off.')
  flags.mark_flags_as_required(['output_dir'])


def main(argv):
  # Arguments left after the flags are images too: --images a.jpg b.jpg.
  images = (FLAGS.images or []) + argv[1:]
  if not images:
    raise app.UsageError('no images: give them with --images')
  _v1.disable_eager_execution()
  try:
    results, problems = demo.run(
        FLAGS.checkpoint_path, images, FLAGS.output_dir, FLAGS.labels,
        strict=FLAGS.strict, progress=FLAGS.progress,
        model_name=FLAGS.model_name,
        settings=detection.settings_from_flags(FLAGS),
        moving_average_decay=FLAGS.moving_average_decay)
  except ValueError as error:
    sys.exit('error: %s' % error)
  if not results:
    sys.exit('error: none of the %d image(s) could be read: nothing was '
             'drawn' % len(problems))
  if problems:
    print('%d image(s) skipped or flagged, see the warnings' % len(problems),
          file=sys.stderr)


if __name__ == '__main__':
  define_flags()
  app.run(main)
