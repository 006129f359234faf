"""Tiny checkpoints on disk, and ways to damage them, for the checkpoint tests."""
import os

import numpy as np
import tensorflow as tf

from utils.checkpointing import checkpoint_saver

v1 = tf.compat.v1


def save(path, values, step=None, relative=True):
  """Saves {name: array} at `path` (with `-step`); returns the prefix."""
  with tf.Graph().as_default():
    variables = [v1.get_variable(name, initializer=np.asarray(value))
                 for name, value in values.items()]
    saver_class = (checkpoint_saver.CheckpointSaver if relative
                   else v1.train.Saver)
    saver = saver_class(variables, max_to_keep=10)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      return saver.save(sess, str(path), global_step=step)


def graph_variables(shapes):
  """Variables of the given {name: shape} in the current default graph."""
  return [v1.get_variable(name, shape, initializer=v1.zeros_initializer())
          for name, shape in shapes.items()]


WEIGHTS = {'net/conv/weights': np.ones([3, 3, 2, 4], np.float32),
           'net/cls/biases': np.arange(6, dtype=np.float32)}


def truncate(path):
  with open(path, 'r+b') as data:
    data.truncate(os.path.getsize(path) // 2)


def flip_bytes(path):
  with open(path, 'r+b') as data:
    content = bytearray(data.read())
    for i in range(min(16, len(content))):
      content[i] ^= 0xFF
    data.seek(0)
    data.write(content)
