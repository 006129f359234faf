"""Imports another implementation's SSD300 weights as this project's checkpoint.

  python import_checkpoint.py --source torchvision \\
      --input ssd300_vgg16_coco-b556d3b4.pth --output_dir ckpt/pre_trained/torchvision_coco

`--input` is a `state_dict` of torchvision's
`torchvision.models.detection.ssd300_vgg16` (any number of classes) as
`.pth` (read with PyTorch, when it is installed), `.npz` or `.safetensors`
(read without it).  `--output_dir` receives `model.ckpt-0.*`, its
`checkpoint` index and `ssd_params.json` (the class count and torchvision's
clamped anchors), so `eval_ssd_network.py`, `demo_ssd.py`,
`export_ssd_network.py` and `train_ssd_network.py --checkpoint_path` take
the directory with no other flag.
"""
import os
import sys

from absl import app
from absl import flags
from absl import logging

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
# pylint: disable=g-import-not-at-top,wrong-import-position
from utils.checkpointing import checkpoint_import
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_enum('source', 'torchvision', list(checkpoint_import.SOURCES),
                    'Whose weights --input holds: torchvision '
                    '(models.detection.ssd300_vgg16).')
  flags.DEFINE_string('input', None, 'The state_dict file: .pth (needs '
                      'PyTorch), .npz or .safetensors.')
  flags.DEFINE_string('output_dir', None, 'Directory to write the '
                      'checkpoint and ssd_params.json into.')
  flags.mark_flags_as_required(['input', 'output_dir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  try:
    prefix, num_classes = checkpoint_import.import_torchvision(
        FLAGS.input, FLAGS.output_dir)
  except (checkpoint_import.CheckpointImportError, OSError) as error:
    logging.error('%s', error)
    sys.exit(1)
  print('Wrote %s (%d classes with background, torchvision\'s anchors).\n'
        'Evaluate:  eval_ssd_network.py --checkpoint_path %s '
        '--dataset_dir <records>\n'
        'Fine-tune: train_ssd_network.py --checkpoint_path %s '
        '--dataset_dir <records>' % (prefix, num_classes, FLAGS.output_dir,
                                      FLAGS.output_dir))


if __name__ == '__main__':
  define_flags()
  app.run(main)
