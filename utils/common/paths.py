"""Where the project keeps its files: one place for every default path.

Bottom layer: imports nothing of the project.
"""
import errno
import os

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# Checkpoints in (pretrained) and out (training runs).
PRETRAINED_DIR = os.path.join(PROJECT_ROOT, 'ckpt', 'pre_trained')
FINE_TUNING_DIR = os.path.join(PROJECT_ROOT, 'ckpt', 'fine_tuning')
# Converted datasets; the built-in sample dataset is generated into SAMPLE_DIR.
TFRECORDS_DIR = os.path.join(PROJECT_ROOT, 'tfrecords')
SAMPLE_DIR = os.path.join(TFRECORDS_DIR, 'sample')
# Real detection data written by others (never copied into the repository):
# the Freiburg groceries dataset in Pascal VOC layout.
GROCERIES_ENV = 'FREIBURG_GROCERIES_DIR'
GROCERIES_DEFAULT = os.path.join(PROJECT_ROOT, os.pardir, 'shared', 'data',
                                 'freiburg_groceries_voc')


def groceries_dir():
  """The Freiburg groceries VOC root: $FREIBURG_GROCERIES_DIR or ../shared/data."""
  return os.path.abspath(os.environ.get(GROCERIES_ENV, GROCERIES_DEFAULT))


def blocking_file(path):
  """The regular file (or other non-folder) on the way to folder `path`
  (`path` itself or one of its parents), or None."""
  parent = os.path.abspath(path)
  while parent != os.path.dirname(parent):
    if os.path.exists(parent) and not os.path.isdir(parent):
      return parent
    parent = os.path.dirname(parent)
  return None


def write_text_atomically(path, text):
  """Writes `text` to `path` through a temporary file in the same folder
  and os.replace: readers see the old content or the new, never a part."""
  directory = os.path.dirname(os.path.abspath(path))
  temporary = os.path.join(directory, '.%s.tmp%d' % (os.path.basename(path),
                                                     os.getpid()))
  try:
    with open(temporary, 'w') as out:
      out.write(text)
    os.replace(temporary, path)
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)


def is_disk_full(error):
  """Whether an OSError or a TensorFlow error says the disk is full."""
  if isinstance(error, OSError) and error.errno == errno.ENOSPC:
    return True
  return 'No space left on device' in (getattr(error, 'message', None) or
                                       str(error))


def megabytes(num_bytes):
  return '%.1f MB' % (num_bytes / 1e6)
