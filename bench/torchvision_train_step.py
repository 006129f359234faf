r"""torchvision's ssd300_vgg16 training step on CPU: the PyTorch reference.

Times the training step (forward, SSD loss, backward, Adam) of
`torchvision.models.detection.ssd300_vgg16` (random weights, 21 classes) on
random 300 x 300 images with two boxes each, in float32 and under bfloat16
autocast, interleaved step by step, and prints images/s of the median step.
It needs torch and torchvision, which are never project dependencies: run it
with the benchmark's virtualenv (bench/README.md, "Inference on CPU"):

  OMP_WAIT_POLICY=PASSIVE ../bench-venv/bin/python bench/torchvision_train_step.py
  # PyTorch held to AVX2 (its own kernels, oneDNN and MKL), float32 only:
  ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
      OMP_WAIT_POLICY=PASSIVE ../bench-venv/bin/python \
      bench/torchvision_train_step.py --precisions=float32
"""
import argparse
import os
import statistics
import time

import torch
import torchvision

# What each --precisions name runs under: autocast to this dtype, or none.
PRECISIONS = {'float32': None, 'bf16_autocast': torch.bfloat16}


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--steps', type=int, default=3,
                      help='Measured steps per precision.')
  parser.add_argument('--warmup', type=int, default=1)
  parser.add_argument('--threads', type=int, default=os.cpu_count())
  parser.add_argument('--precisions', default=','.join(PRECISIONS),
                      help='Comma-separated, of: %s.' % ', '.join(PRECISIONS))
  args = parser.parse_args()
  args.precisions = args.precisions.split(',')
  unknown = sorted(set(args.precisions) - set(PRECISIONS))
  if unknown:
    parser.error('--precisions: unknown %s; known: %s' % (
        ', '.join(unknown), ', '.join(PRECISIONS)))
  return args


def batch_of(batch, generator):
  """Random 300 x 300 images in [0, 1] and two boxes (x1 y1 x2 y2) each."""
  images = [torch.rand(3, 300, 300, generator=generator)
            for _ in range(batch)]
  boxes = torch.tensor([[30.0, 40.0, 150.0, 200.0],
                        [120.0, 100.0, 280.0, 290.0]])
  targets = [{'boxes': boxes, 'labels': torch.tensor([3, 7])}
             for _ in range(batch)]
  return images, targets


def step_function(model, optimizer, images, targets, dtype):
  """One training step under autocast to `dtype` (None: float32)."""
  def step():
    optimizer.zero_grad()
    with torch.autocast('cpu', dtype=dtype or torch.bfloat16,
                        enabled=dtype is not None):
      losses = model(images, targets)
      loss = sum(losses.values())
    loss.backward()
    optimizer.step()
  return step


def main():
  args = parse_args()
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  images, targets = batch_of(args.batch, torch.Generator().manual_seed(0))
  steps = {}
  for name in args.precisions:
    dtype = PRECISIONS[name]
    model = torchvision.models.detection.ssd300_vgg16(
        weights=None, weights_backbone=None, num_classes=21)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    steps[name] = step_function(model, optimizer, images, targets, dtype)
  print('torch %s, torchvision %s, %d threads, batch %d, CPU capability '
        '%s, ONEDNN_MAX_CPU_ISA=%s; load before: %.2f %.2f %.2f' % (
            (torch.__version__, torchvision.__version__,
             torch.get_num_threads(), args.batch,
             torch.backends.cpu.get_cpu_capability(),
             os.environ.get('ONEDNN_MAX_CPU_ISA', '(unset)')) +
            os.getloadavg()))
  for step in steps.values():
    for _ in range(args.warmup):
      step()
  seconds = {name: [] for name in steps}
  for _ in range(args.steps):
    for name, step in steps.items():
      start = time.perf_counter()
      step()
      seconds[name].append(time.perf_counter() - start)
  for name, times in seconds.items():
    median = statistics.median(times)
    print('torchvision %-13s batch %d: %.3f images/s, %.2f s/step '
          '(%.2f-%.2f)' % (name, args.batch, args.batch / median, median,
                            min(times), max(times)))
  print('load after: %.2f %.2f %.2f' % os.getloadavg())


if __name__ == '__main__':
  main()
