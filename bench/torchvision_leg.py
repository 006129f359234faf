r"""One training leg of torchvision's ssd300_vgg16: the reference contender.

`bench/generalises.py --recipes=...,torchvision` runs this script with the
benchmark's virtualenv (torch and torchvision are never project
dependencies), leg by leg like its own recipes: each call resumes from
`--train_dir/state.pt` (weights, Adam moments, step), trains up to global
step `--until_step` and writes the weights as `model-<step>.npz` (the
state_dict's names, float32), which `import_checkpoint.py --source
torchvision` turns into this project's checkpoint so that
`eval_ssd_network.py` scores both contenders with one evaluator.

The recipe is ours, applied to torchvision's model and augmentation:
  * model: `ssd300_vgg16(weights=None, weights_backbone=None)`, its own
    initialisation (Kaiming fan-out on VGG, Xavier on the extras and heads);
  * augmentation: the SSD preset of torchvision's detection references
    (photometric distortion, zoom-out on the mean colour, IoU crop,
    horizontal flip), from `torchvision.transforms.v2`;
  * optimiser: Adam with L2 weight decay on the convolution kernels only
    (our `slim.l2_regularizer` leaves biases and the L2-norm scale alone),
    a linear warm-up over --warmup_steps from learning_rate / warmup_steps,
    and a linear decay to --end_learning_rate at --decay_steps, as
    `train_ssd_network.py --learning_rate_decay_type polynomial`;
  * precision: bfloat16 autocast (the forward pass and the loss) or float32.

  ../bench-venv/bin/python bench/torchvision_leg.py --voc_dir SUBSET \
      --classes beans,coffee,pasta,water --train_dir DIR --until_step 125

Each step prints `step N: loss L (...) lr R, X images/s` like the training
script, so generalises.py reads both logs alike.
"""
import argparse
import os
import random
import time
import xml.etree.ElementTree as ElementTree

import numpy as np
import torch
import torchvision
from torchvision import tv_tensors
from torchvision.io import ImageReadMode
from torchvision.io import decode_image
from torchvision.transforms import v2 as transforms

# torchvision's SSD preset fills the zoom-out canvas with these (0-255 RGB).
CANVAS_MEAN = (123, 117, 104)
PRECISIONS = ('bf16_autocast', 'float32')
STATE_FILE = 'state.pt'


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--voc_dir', required=True,
                      help='VOC root with ImageSets/Main/<split>.txt.')
  parser.add_argument('--split', default='train')
  parser.add_argument('--classes', required=True,
                      help='Comma-separated; class i + 1 is the i-th name.')
  parser.add_argument('--train_dir', required=True)
  parser.add_argument('--until_step', type=int, required=True,
                      help='Global step at which this leg stops.')
  parser.add_argument('--batch_size', type=int, default=8)
  parser.add_argument('--learning_rate', type=float, default=0.001)
  parser.add_argument('--end_learning_rate', type=float, default=0.0001)
  parser.add_argument('--decay_steps', type=int, required=True,
                      help='Step at which the linear decay reaches '
                      '--end_learning_rate.')
  parser.add_argument('--warmup_steps', type=int, default=100)
  parser.add_argument('--weight_decay', type=float, default=0.0005)
  parser.add_argument('--precision', choices=PRECISIONS,
                      default='bf16_autocast')
  parser.add_argument('--seed', type=int, default=1)
  parser.add_argument('--threads', type=int, default=os.cpu_count())
  parser.add_argument('--loader_workers', type=int, default=1)
  return parser.parse_args(argv)


def learning_rate_factor(step, args):
  """Multiplier of --learning_rate at `step` (0-based, as the global step)."""
  progress = min(step, args.decay_steps) / float(args.decay_steps)
  end_fraction = args.end_learning_rate / args.learning_rate
  decayed = (1.0 - end_fraction) * (1.0 - progress) + end_fraction
  if args.warmup_steps:
    decayed *= min(1.0, (step + 1) / float(args.warmup_steps))
  return decayed


def read_annotation(xml_path, class_ids):
  """(boxes [N, 4] x1 y1 x2 y2 in pixels, labels [N]) of one VOC file."""
  root = ElementTree.parse(xml_path).getroot()
  boxes, labels = [], []
  for obj in root.iter('object'):
    box = obj.find('bndbox')
    boxes.append([float(box.find(name).text)
                  for name in ('xmin', 'ymin', 'xmax', 'ymax')])
    labels.append(class_ids[obj.find('name').text.strip()])
  return boxes, labels


class VocDetection(torch.utils.data.Dataset):
  """The split's photos and boxes, augmented by torchvision's SSD preset."""

  def __init__(self, voc_dir, split, classes):
    with open(os.path.join(voc_dir, 'ImageSets', 'Main',
                           split + '.txt')) as split_file:
      self.image_ids = [line.strip() for line in split_file if line.strip()]
    class_ids = {name: i + 1 for i, name in enumerate(classes)}
    self.voc_dir = voc_dir
    self.annotations = [
        read_annotation(os.path.join(voc_dir, 'Annotations', i + '.xml'),
                        class_ids) for i in self.image_ids]
    self.transform = transforms.Compose([
        transforms.RandomPhotometricDistort(p=0.5),
        transforms.RandomZoomOut(fill={tv_tensors.Image: CANVAS_MEAN,
                                       'others': 0}, p=0.5),
        transforms.RandomIoUCrop(),
        transforms.RandomHorizontalFlip(p=0.5),
        transforms.SanitizeBoundingBoxes(),
        transforms.ToDtype(torch.float32, scale=True),
    ])

  def __len__(self):
    return len(self.image_ids)

  def __getitem__(self, index):
    image = tv_tensors.Image(decode_image(
        os.path.join(self.voc_dir, 'JPEGImages',
                     self.image_ids[index] + '.jpg'), mode=ImageReadMode.RGB))
    boxes, labels = self.annotations[index]
    target = {
        'boxes': tv_tensors.BoundingBoxes(
            torch.tensor(boxes, dtype=torch.float32), format='XYXY',
            canvas_size=tuple(image.shape[-2:])),
        'labels': torch.tensor(labels, dtype=torch.int64)}
    return self.transform(image, target)


class EpochSampler(torch.utils.data.Sampler):
  """Indices in a new random order every epoch, without end (like ours)."""

  def __init__(self, size, seed):
    self.size = size
    self.generator = torch.Generator().manual_seed(seed)

  def __iter__(self):
    while True:
      yield from torch.randperm(self.size, generator=self.generator).tolist()


def build_model(num_classes):
  return torchvision.models.detection.ssd300_vgg16(
      weights=None, weights_backbone=None, num_classes=num_classes)


def build_optimizer(model, args):
  """Adam; weight decay on the convolution kernels only (L2 as ours)."""
  kernels = [p for p in model.parameters() if p.ndim > 1]
  others = [p for p in model.parameters() if p.ndim <= 1]
  return torch.optim.Adam(
      [{'params': kernels, 'weight_decay': args.weight_decay},
       {'params': others, 'weight_decay': 0.0}], lr=args.learning_rate)


def l2_penalty(model, weight_decay):
  """weight_decay * sum(w^2) / 2 over the kernels: our regularisation loss."""
  return weight_decay * 0.5 * sum(
      float(p.detach().pow(2).sum()) for p in model.parameters() if p.ndim > 1)


def save_npz(model, path):
  """The state_dict as float32 arrays under its own names, written atomically."""
  arrays = {name: tensor.detach().float().numpy()
            for name, tensor in model.state_dict().items()}
  partial = path + '.partial.npz'
  np.savez(partial, **arrays)
  os.replace(partial, path)


def main(argv=None):
  args = parse_args(argv)
  torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  random.seed(args.seed)
  classes = args.classes.split(',')
  os.makedirs(args.train_dir, exist_ok=True)
  model = build_model(len(classes) + 1)
  optimizer = build_optimizer(model, args)
  state_path = os.path.join(args.train_dir, STATE_FILE)
  step = 0
  if os.path.exists(state_path):
    state = torch.load(state_path, weights_only=True)
    model.load_state_dict(state['model'])
    optimizer.load_state_dict(state['optimizer'])
    step = state['step']
    print('Resuming from %s at step %d' % (state_path, step), flush=True)
  else:
    print('Training from scratch (torchvision initialisation)', flush=True)
  print('Precision: %s; torch %s, torchvision %s, %d threads' % (
      args.precision, torch.__version__, torchvision.__version__,
      torch.get_num_threads()), flush=True)
  dataset = VocDetection(args.voc_dir, args.split, classes)
  loader = torch.utils.data.DataLoader(
      dataset, batch_size=args.batch_size,
      sampler=EpochSampler(len(dataset), args.seed),
      num_workers=args.loader_workers, collate_fn=lambda batch: tuple(zip(*batch)),
      worker_init_fn=lambda worker: random.seed(args.seed * 1000 + worker),
      persistent_workers=args.loader_workers > 0)
  model.train()
  autocast = args.precision == 'bf16_autocast'
  batches = iter(loader)
  while step < args.until_step:
    images, targets = next(batches)
    rate = args.learning_rate * learning_rate_factor(step, args)
    for group in optimizer.param_groups:
      group['lr'] = rate
    start = time.perf_counter()
    optimizer.zero_grad()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
      losses = model(list(images), list(targets))
    loss = losses['classification'].float() + losses['bbox_regression'].float()
    loss.backward()
    optimizer.step()
    seconds = time.perf_counter() - start
    step += 1
    total = float(loss.detach()) + l2_penalty(model, args.weight_decay)
    print('step %d: loss %.4f (classification %.4f, localisation %.4f) '
          'lr %.3g, %.2f images/s, %.2f s/step' % (
              step, total, float(losses['classification']),
              float(losses['bbox_regression']), rate,
              len(images) / seconds, seconds), flush=True)
    if not np.isfinite(total):
      raise SystemExit('step %d: the loss is %s' % (step, total))
  partial = state_path + '.partial'
  torch.save({'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
              'step': step}, partial)
  os.replace(partial, state_path)
  save_npz(model, os.path.join(args.train_dir, 'model-%d.npz' % step))
  print('Wrote %s and model-%d.npz' % (state_path, step), flush=True)


if __name__ == '__main__':
  main()
