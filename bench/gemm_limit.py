r"""The sustained matrix-multiply rate of this CPU through TensorFlow.

A training step of SSD300-VGG16 is ~188 GFLOP per image, nearly all of it
convolutions that oneDNN runs as matrix multiplies, so the rate of one large
square matmul is the limit the step is measured against (bench/README.md).
For each dtype (float32, and bfloat16 where the CPU runs it natively) the
script times `--runs` products of two N x N matrices (2 N^3 FLOP each),
interleaving the dtypes run by run so that a change of load hits all of
them, and prints the median and best GFLOP/s with the CPU and the load.

  python bench/gemm_limit.py                   # N=4096, 5 runs, ~1 min
  python bench/gemm_limit.py --size=2048 --runs=9
"""
import os
import statistics
import sys
import time

from absl import app
from absl import flags

# Runs as a script from anywhere: the project root holds the packages, so
# it goes on the path before they are imported.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)
# pylint: disable=g-import-not-at-top,wrong-import-position
from utils.common import platform_info

# oneDNN's setting must be made before TensorFlow is imported.
ONEDNN = platform_info.configure_onednn()
import tensorflow as tf

flags.DEFINE_integer('size', 4096, 'N of the N x N matrices.', lower_bound=1)
flags.DEFINE_integer('runs', 5, 'Timed products per dtype.', lower_bound=1)
flags.DEFINE_list('dtypes', ['float32', 'bfloat16'], 'Dtypes to time.')
FLAGS = flags.FLAGS


def product_function(size, dtype):
  """A tf.function computing one size x size product of random matrices.

  The matrices are variables, so a call times the product alone; the
  result is reduced to one number so that copying it out costs nothing.
  """
  left = tf.Variable(tf.cast(tf.random.uniform((size, size)), dtype))
  right = tf.Variable(tf.cast(tf.random.uniform((size, size)), dtype))

  @tf.function
  def product():
    return tf.reduce_sum(tf.cast(tf.linalg.matmul(left, right)[0, :8],
                                 tf.float32))
  return product


def gflops_per_second(size, seconds):
  """GFLOP/s of one size x size x size product taking `seconds`."""
  return 2.0 * size ** 3 / seconds / 1e9


def main(argv):
  del argv
  model_name, cpu_flags = platform_info.cpu_description()
  print('CPU: %s, %d logical cores; flags: %s' % (
      model_name, os.cpu_count() or 0, ' '.join(cpu_flags)))
  print('oneDNN: %s (%s); TensorFlow %s' % (
      'on' if ONEDNN[0] else 'off', ONEDNN[1], tf.__version__))
  print('load average before: %.2f %.2f %.2f' % os.getloadavg())
  products = {dtype: product_function(FLAGS.size, dtype)
              for dtype in FLAGS.dtypes}
  for product in products.values():  # traces, creates the primitives
    product()
  seconds = {dtype: [] for dtype in FLAGS.dtypes}
  for _ in range(FLAGS.runs):
    for dtype, product in products.items():
      start = time.perf_counter()
      product().numpy()
      seconds[dtype].append(time.perf_counter() - start)
  for dtype in FLAGS.dtypes:
    print('%-8s N=%d: %7.1f GFLOP/s median, %7.1f best (%d runs, '
          '%.3f s median)' % (
              dtype, FLAGS.size,
              gflops_per_second(FLAGS.size, statistics.median(seconds[dtype])),
              gflops_per_second(FLAGS.size, min(seconds[dtype])),
              FLAGS.runs, statistics.median(seconds[dtype])))
  print('load average after: %.2f %.2f %.2f' % os.getloadavg())


if __name__ == '__main__':
  app.run(main)
