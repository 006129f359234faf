r"""Inference throughput on CPU: our SavedModel vs torchvision's ssd300_vgg16.

  ../bench-venv/bin/python bench/inference.py            # ~5-15 minutes
  ../bench-venv/bin/python bench/inference.py --rounds=3 --batch_sizes=1

Variants, all with random weights (speed does not depend on the values;
21 classes as VOC):
  tf_float32   the SavedModel of export_ssd_network.py (--precision float32)
  tf_bfloat16  the same, exported with --precision mixed_bfloat16
  openvino     utils/inference/openvino_detector.py (the faster serving path, if
               requirements-serve.txt is installed): the same pre- and
               post-processing in TensorFlow, the network in OpenVINO
               (its default precision: bf16 on CPUs with AVX512_BF16/AMX)
  torchvision  torchvision.models.detection.ssd300_vgg16, float32, eval mode
               (the same SSD300-VGG16 architecture), if torch is installed:
               PyTorch lives only in the benchmark's virtualenv
               (../bench-venv), never in the project's requirements.
What each one times, for a batch of VOC-sized photos (500x375):
  ours: JPEG decode, resize, the network, decoding and NMS (select 0.01,
        top 400 per class, keep 200), all inside the SavedModel (openvino:
        the same steps, three calls);
  torchvision: its transform (resize to 300, normalise), the network,
        decoding and NMS (score 0.01, top 400, keep 200), from decoded
        float tensors: JPEG decode is NOT in its time (about 2-4 ms per
        500x375 photo with OpenCV, printed below for reference).

Rounds are interleaved: each round runs every variant once per batch size,
in a rotated order, so a change of machine load hits all alike; the median
of the rounds is reported.  The load average and the CPU kind are printed:
on a shared machine the numbers are noisy, compare ratios within one run.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from utils.common import platform_info  # noqa: E402  (no TensorFlow: before it)

NUM_CLASSES = 21
IMAGE_SIZE = (375, 500)  # (height, width): a VOC photo.


def load():
  return '%.2f %.2f %.2f' % os.getloadavg()


def synthetic_photos(count, seed=0):
  """`count` VOC-sized BGR images: smooth noise, JPEG-like in content."""
  rng = np.random.default_rng(seed)
  images = []
  for _ in range(count):
    noise = rng.integers(0, 256, size=IMAGE_SIZE + (3,), dtype=np.uint8)
    images.append(cv2.GaussianBlur(noise, (0, 0), 3))
  return images


def write_random_checkpoint(directory):
  """A random-weight SSD300 checkpoint with NUM_CLASSES classes."""
  import tensorflow as tf
  from utils.common import tf_compat  # noqa: F401  (before tf_slim)
  import tf_slim as slim
  from nets import nets_factory

  ssd_net = nets_factory.build_ssd_net('ssd_300_vgg', num_classes=NUM_CLASSES)
  with tf.Graph().as_default():
    with slim.arg_scope(ssd_net.arg_scope()):
      ssd_net.net(tf.compat.v1.placeholder(tf.float32, [1, 300, 300, 3]),
                  is_training=False)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      return tf.compat.v1.train.Saver().save(
          session, os.path.join(directory, 'model.ckpt'))


def tensorflow_variants(work_dir):
  """{name: function(encoded JPEG list) -> outputs} of our SavedModels."""
  import tensorflow as tf
  from utils.inference import detection
  from utils.inference import saved_model

  checkpoint = write_random_checkpoint(work_dir)
  variants = {}
  for name, precision in (('tf_float32', 'float32'),
                          ('tf_bfloat16', 'mixed_bfloat16')):
    export_dir = os.path.join(work_dir, name)
    saved_model.export(
        checkpoint, export_dir,
        settings=detection.DetectionSettings(precision=precision))
    serve = tf.saved_model.load(export_dir).signatures['serving_default']

    def run(encoded, serve=serve):
      outputs = serve(encoded_images=tf.constant(encoded))
      return outputs['num_detections'].numpy()
    variants[name] = run
  try:
    from utils.inference import openvino_detector
    detector = openvino_detector.OpenVINODetector(checkpoint)
  except ImportError as error:
    print('openvino skipped: %s' % error)
  else:
    print('openvino %s, inference precision %s' % (
        openvino_detector.import_openvino().__version__, detector.precision))
    variants['openvino'] = lambda encoded: detector(encoded)['num_detections']
  return variants


def torchvision_variant():
  """{'torchvision': function(float tensors list)}, or {} without torch."""
  try:
    import torch
    import torchvision
  except ImportError as error:
    print('torchvision skipped: %s (install torch and torchvision in the '
          'benchmark virtualenv, ../bench-venv)' % error)
    return {}
  model = torchvision.models.detection.ssd300_vgg16(
      weights=None, weights_backbone=None, num_classes=NUM_CLASSES).eval()

  def run(images):
    with torch.inference_mode():
      return [len(output['boxes']) for output in model(images)]
  print('torch %s, torchvision %s, %d threads' % (
      torch.__version__, torchvision.__version__, torch.get_num_threads()))
  return {'torchvision': run}


def torch_inputs(images):
  import torch
  return [torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).permute(
      2, 0, 1).float().div(255.) for image in images]


def measure(variants, inputs, batch_sizes, rounds):
  """{(variant, batch size): [seconds per call]}, interleaved rounds."""
  times = {(name, size): [] for name in variants for size in batch_sizes}
  names = sorted(variants)
  for name in names:  # Warm-up: graph optimisation, allocations.
    for size in batch_sizes:
      variants[name](inputs[name][:size])
  for index in range(rounds):
    order = names[index % len(names):] + names[:index % len(names)]
    for size in batch_sizes:
      for name in order:
        start = time.perf_counter()
        variants[name](inputs[name][:size])
        times[(name, size)].append(time.perf_counter() - start)
    print('round %d/%d done, load %s' % (index + 1, rounds, load()),
          flush=True)
  return times


def report(times, batch_sizes):
  """The result table: median seconds per batch, images/s, ratios."""
  lines = ['%-12s %5s %10s %10s %10s' % ('variant', 'batch', 'median s',
                                         'min s', 'images/s')]
  rates = {}
  for (name, size), seconds in sorted(times.items()):
    median = statistics.median(seconds)
    rates[(name, size)] = size / median
    lines.append('%-12s %5d %10.3f %10.3f %10.2f' % (
        name, size, median, min(seconds), size / median))
  # Ratios of medians, and of the fastest rounds (the least disturbed by
  # other processes on a shared machine).
  fastest = {key: min(seconds) for key, seconds in times.items()}
  for size in batch_sizes:
    for numerator, denominator in (('tf_bfloat16', 'tf_float32'),
                                   ('tf_bfloat16', 'torchvision'),
                                   ('tf_float32', 'torchvision'),
                                   ('openvino', 'tf_float32'),
                                   ('openvino', 'torchvision')):
      if (numerator, size) in rates and (denominator, size) in rates:
        lines.append('batch %d: %s / %s = %.2fx (fastest rounds: %.2fx)' % (
            size, numerator, denominator,
            rates[(numerator, size)] / rates[(denominator, size)],
            fastest[(denominator, size)] / fastest[(numerator, size)]))
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--batch_sizes', default='1,8')
  args = parser.parse_args()
  batch_sizes = [int(size) for size in args.batch_sizes.split(',')]
  model_name, cpu_flags = platform_info.cpu_description()
  print('CPU: %s, %d logical CPUs, flags %s' % (
      model_name, os.cpu_count(), ' '.join(cpu_flags)))
  print('load average at start: %s' % load())
  import tensorflow as tf
  print('tensorflow %s, oneDNN %s' % (
      tf.__version__, os.environ.get(platform_info.ONEDNN_ENV, 'default')))

  images = synthetic_photos(max(batch_sizes))
  encoded = [cv2.imencode('.jpg', image)[1].tobytes() for image in images]
  start = time.perf_counter()
  for data in encoded:
    cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  print('OpenCV JPEG decode of a %dx%d photo: %.1f ms' % (
      IMAGE_SIZE[1], IMAGE_SIZE[0],
      1000 * (time.perf_counter() - start) / len(encoded)))

  with tempfile.TemporaryDirectory(prefix='bench_inference_') as work_dir:
    variants = tensorflow_variants(work_dir)
    inputs = {name: encoded for name in variants}
    torch_variant = torchvision_variant()
    if torch_variant:
      variants.update(torch_variant)
      inputs['torchvision'] = torch_inputs(images)
    times = measure(variants, inputs, batch_sizes, args.rounds)
  print(report(times, batch_sizes))
  print('load average at end: %s' % load())


if __name__ == '__main__':
  main()
