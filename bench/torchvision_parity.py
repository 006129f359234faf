r"""Numerical parity of this project's SSD300 with torchvision's ssd300_vgg16.

  ../bench-venv/bin/python bench/torchvision_parity.py      # a few minutes

torchvision's `ssd300_vgg16(weights=None, weights_backbone=None,
num_classes=K)` gets seeded random weights; its state_dict goes through
`import_checkpoint.py --source torchvision` and `export_ssd_network.py`
(run with the project's virtualenv, --project_python), and both sides see the
same real photos (the Freiburg groceries `val` split, resized once to
300x300 and written as PNG, so both read identical pixels) with their VOC
boxes.  bench/parity_ours.py computes our side in the project's virtualenv.
All float32.  It compares:
  * the 8,732 default boxes (within 0.01 px);
  * each feature map's class logits and box regressions on torchvision's
    normalised input tensor (max abs difference / largest magnitude), and
    the network input of each side's own preprocessing;
  * the detections per image: our SavedModel (select 0.01, NMS 0.45, top
    400 per class, keep 200) against `model.eval()(images)`;
  * the training loss on the batch with the photos' boxes (classification
    and localisation terms, each over the positives), the positives and
    the anchors' class targets per image, and every parameter's gradient
    norm, with each side's own matching: on the images where no two boxes
    share a best anchor (there the two matching rules agree) and on the
    whole batch, whose last --probe_images photos get a synthetic box that
    shares its best anchor with a real one (no real photo of the split has
    such boxes).
The heads are scaled per map first (see `normalise_heads`) so that the
scores are spread and not saturated.  Two differences are deliberate and
measured in their own rows: torchvision clips the decoded boxes to the
image before NMS (ours, like SSD-Caffe, clips the kept boxes after NMS;
rows `clipping after NMS` rerun torchvision without its clip), and its
matcher gives a best anchor shared by two boxes to the later box only
(ours, greedy bipartite like SSD-Caffe, gives the other box its next best
anchor).
It prints one table (check, value, tolerance, ok) and a last line
`parity: N checks, M outside tolerance`.
"""
import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from unittest import mock
import xml.etree.ElementTree as ElementTree

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.models.detection import ssd
from torchvision.ops import boxes as box_ops

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from utils.common import platform_info  # noqa: E402  (no TensorFlow in it)

IMAGE_SIZE = 300
# Feature maps: (name, side, anchors per cell), in the anchor order.
FEATURE_MAPS = (('block4', 38, 4), ('block7', 19, 6), ('block8', 10, 6),
                ('block9', 5, 6), ('block10', 3, 4), ('block11', 1, 4))
DETECTION_FLAGS = ('--select_threshold', '0.01', '--nms_threshold', '0.45',
                   '--select_top_k', '400', '--keep_top_k', '200',
                   '--precision', 'float32')
# Tolerances.
ANCHOR_PX = 0.01
HEAD_RELATIVE = 1e-4
INPUT_ABS = 1e-3     # 0-255 scale: torchvision's rounded means, see below.
SCORE_ABS = 1e-4
BOX_PX = 0.5
LOSS_RELATIVE = 1e-4
GRADIENT_RELATIVE = 1e-3
# Standard deviations of the head outputs on the photos (normalise_heads).
LOGIT_STD = 1.5
BOX_STD = 1.


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--dataset_dir', default=os.environ.get(
      'FREIBURG_GROCERIES_DIR', os.path.join(
          ROOT, '..', 'shared', 'data', 'freiburg_groceries_voc')),
                      help='VOC root of the groceries photos (env '
                      'FREIBURG_GROCERIES_DIR).')
  parser.add_argument('--split', default='val')
  parser.add_argument('--num_images', type=int, default=8)
  parser.add_argument('--num_classes', type=int, default=5,
                      help='Classes with background; the groceries classes '
                      'are folded onto 1..K-1.')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--probe_images', type=int, default=2,
                      help='Photos (the last ones) given a second box that '
                      'shares the best anchor of their first box.')
  parser.add_argument('--project_python',
                      default=os.path.join(ROOT, '.venv', 'bin', 'python'))
  parser.add_argument('--work_dir', default=None,
                      help='Kept if given; else a temporary folder, removed.')
  return parser.parse_args(argv)


def read_photos(dataset_dir, split, count, num_classes, work_dir):
  """`count` photos spread over the split, resized to 300x300 PNGs in
  work_dir; returns [{png, boxes (x1 y1 x2 y2 px), labels}]."""
  with open(os.path.join(dataset_dir, 'ImageSets', 'Main',
                         split + '.txt')) as stream:
    ids = stream.read().split()
  with open(os.path.join(dataset_dir, 'classes.txt')) as stream:
    classes = stream.read().split()
  photos = []
  for image_id in ids[::max(1, len(ids) // count)][:count]:
    root = ElementTree.parse(os.path.join(dataset_dir, 'Annotations',
                                          image_id + '.xml')).getroot()
    image = Image.open(os.path.join(dataset_dir, 'JPEGImages',
                                    image_id + '.jpg')).convert('RGB')
    scale_x = IMAGE_SIZE / image.width
    scale_y = IMAGE_SIZE / image.height
    boxes, labels = [], []
    for item in root.iter('object'):
      box = item.find('bndbox')
      x1, y1, x2, y2 = (float(box.find(tag).text)
                        for tag in ('xmin', 'ymin', 'xmax', 'ymax'))
      boxes.append([float(np.float32(value)) for value in (
          (x1 - 1) * scale_x, (y1 - 1) * scale_y, x2 * scale_x,
          y2 * scale_y)])
      labels.append(1 + classes.index(item.find('name').text) %
                    (num_classes - 1))
    png = image_id + '.png'
    image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR).save(
        os.path.join(work_dir, png))
    photos.append({'id': image_id, 'png': png, 'boxes': boxes,
                   'labels': labels})
  return photos


def best_anchor(box, anchors):
  return int(box_ops.box_iou(torch.tensor([box]), anchors).argmax())


def add_probe_boxes(photos, anchors, count, num_classes):
  """Gives the last `count` photos a second box on their first one, moved
  right by the fewest pixels that keep its best anchor (so two boxes share
  one: the case where the two matching rules differ), of another class.
  Real photos never have such boxes; returns the shifts."""
  anchors = torch.from_numpy(anchors)
  shifts = []
  for photo in photos[len(photos) - count:]:
    box = photo['boxes'][0]
    target = best_anchor(box, anchors)
    for shift in range(1, 50):
      moved = [min(box[0] + shift, IMAGE_SIZE - 1.), box[1],
               min(box[2] + shift, IMAGE_SIZE), box[3]]
      if best_anchor(moved, anchors) == target:
        break
    photo['boxes'].append(moved)
    photo['labels'].append(photo['labels'][0] % (num_classes - 1) + 1)
    photo['probe'] = shift
    shifts.append(shift)
  return shifts


def write_photos(photos, work_dir):
  with open(os.path.join(work_dir, 'photos.json'), 'w') as stream:
    json.dump(photos, stream)


def load_images(work_dir, photos):
  """The PNGs as float32 [3, 300, 300] tensors in [0, 1]."""
  return [torchvision.io.read_image(os.path.join(work_dir, photo['png']))
          .float() / 255. for photo in photos]


def targets_of(photos):
  return [{'boxes': torch.tensor(photo['boxes'], dtype=torch.float32),
           'labels': torch.tensor(photo['labels'], dtype=torch.int64)}
          for photo in photos]


def build_model(num_classes, seed):
  torch.manual_seed(seed)
  model = torchvision.models.detection.ssd300_vgg16(
      weights=None, weights_backbone=None, num_classes=num_classes)
  return model.eval()


def head_outputs(model, images):
  """(normalised input NCHW, anchors xyxy px, cls_logits, bbox_regression)."""
  with torch.no_grad():
    image_list, _ = model.transform(images)
    features = list(model.backbone(image_list.tensors).values())
    head = model.head(features)
    anchors = model.anchor_generator(image_list, features)[0]
  return (image_list.tensors.numpy(), anchors.numpy(),
          head['cls_logits'].numpy(), head['bbox_regression'].numpy())


def map_slices():
  """(name, slice of the anchors) of each feature map."""
  slices, start = [], 0
  for name, side, per_cell in FEATURE_MAPS:
    slices.append((name, slice(start, start + side * side * per_cell)))
    start += side * side * per_cell
  return slices


def normalise_heads(model, images):
  """Scales each map's class and box head (weights and biases) so that its
  outputs on the photos have standard deviation LOGIT_STD / BOX_STD, as a
  trained network's: the randomly initialised backbone makes some maps'
  outputs large (saturated softmax scores, boxes past torchvision's decoding
  clamp) and others tiny.  Returns {head: [factor per map]}."""
  _, _, cls_logits, bbox_regression = head_outputs(model, images)
  factors = {}
  for head, outputs, target in (
      (model.head.classification_head, cls_logits, LOGIT_STD),
      (model.head.regression_head, bbox_regression, BOX_STD)):
    factors[head] = []
    for module, (_, anchors) in zip(head.module_list, map_slices()):
      factor = target / float(outputs[:, anchors].std())
      with torch.no_grad():
        module.weight.mul_(factor)
        module.bias.mul_(factor)
      factors[head].append(factor)
  return list(factors.values())


def score_quality(cls_logits):
  """(share of each image's 200 best foreground scores above 0.999, share
  of their consecutive gaps below 1e-6): saturation and ties."""
  scores = torch.softmax(torch.from_numpy(cls_logits), dim=-1)[..., 1:]
  best = scores.reshape(len(scores), -1).topk(200, dim=1).values
  gaps = best[:, :-1] - best[:, 1:]
  return float((best > 0.999).float().mean()), float(
      (gaps < 1e-6).float().mean())


def detections(model, images, clip_before_nms=True):
  """`model.eval()(images)` as NumPy; without `clip_before_nms`, its boxes
  are clipped to the image after NMS instead of before (as ours)."""
  with contextlib.ExitStack() as stack:
    if not clip_before_nms:
      stack.enter_context(mock.patch.object(
          ssd.box_ops, 'clip_boxes_to_image', lambda boxes, size: boxes))
    with torch.no_grad():
      results = [{key: value.numpy() for key, value in result.items()}
                 for result in model.eval()(images)]
  for result in results:
    result['boxes'] = np.clip(result['boxes'], 0., IMAGE_SIZE)
  return results


def matching(model, anchors, photos):
  """Per image: torchvision's positives and whether two of its boxes share
  a best anchor (where its forced match keeps only the later box)."""
  positives, shared, classes = [], [], []
  for target in targets_of(photos):
    quality = box_ops.box_iou(target['boxes'], torch.from_numpy(anchors))
    matches = model.proposal_matcher(quality)
    best = quality.max(dim=1).indices
    positives.append(int((matches >= 0).sum()))
    shared.append(len(set(best.tolist())) < len(best))
    classes.append(np.where(matches.numpy() >= 0,
                            target['labels'][matches.clamp(min=0)].numpy(),
                            0))
  return positives, shared, np.stack(classes)


def training(model, images, targets):
  """torchvision's training loss terms and each parameter's gradient norm."""
  model.train()
  model.zero_grad()
  losses = model(images, targets)
  sum(losses.values()).backward()
  norms = {name: float(parameter.grad.norm())
           for name, parameter in model.named_parameters()}
  model.zero_grad()
  model.eval()
  return {key: float(value.detach()) for key, value in losses.items()}, norms


def run_project(args, work_dir, state_dict, clean):
  """Imports and exports the weights, then runs bench/parity_ours.py."""
  npz = os.path.join(work_dir, 'torchvision.npz')
  np.savez(npz, **{key: value.numpy() for key, value in state_dict.items()})
  imported = os.path.join(work_dir, 'imported')
  export = os.path.join(work_dir, 'export')
  commands = [
      ['import_checkpoint.py', '--source', 'torchvision', '--input', npz,
       '--output_dir', imported],
      ['export_ssd_network.py', '--checkpoint_path', imported,
       '--export_dir', export] + list(DETECTION_FLAGS),
      ['bench/parity_ours.py', '--work_dir', work_dir, '--checkpoint_dir',
       imported, '--export_dir', export, '--clean_images',
       ','.join(str(i) for i in clean)]]
  for command in commands:
    print('running', command[0], flush=True)
    subprocess.run([args.project_python] + command, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
  with open(os.path.join(work_dir, 'ours.json')) as stream:
    training_ours = json.load(stream)
  return dict(np.load(os.path.join(work_dir, 'ours.npz'))), training_ours


# The deliberate differences between the two implementations, by the
# label their rows carry when outside tolerance.
CLIP_BEFORE_NMS = 'named: torchvision clips before NMS, ours after (Caffe)'
SHARED_BEST_ANCHOR = ('named: a shared best anchor goes to the later box '
                      '(torchvision) or the higher IoU (ours)')


class Table(object):
  """Rows (check, value, tolerance, ok); rows added inside
  `named_difference(label)` measure that deliberate difference."""

  def __init__(self):
    self.rows = []
    self._difference = None

  @contextlib.contextmanager
  def named_difference(self, label):
    self._difference = label
    try:
      yield
    finally:
      self._difference = None

  def add(self, check, value, tolerance, ok=None, text=None):
    if ok is None:
      ok = value <= tolerance
    status = 'ok' if ok else self._difference or 'NOT OK'
    self.rows.append((check, text if text is not None else '%.3g' % value,
                      tolerance if isinstance(tolerance, str)
                      else '%.3g' % tolerance, status))

  def print(self):
    widths = [max(len(row[i]) for row in self.rows + [self.header()])
              for i in range(4)]
    for row in [self.header()] + self.rows:
      print('| ' + ' | '.join(cell.ljust(width)
                              for cell, width in zip(row, widths)) + ' |')
    failed = sum(row[3] == 'NOT OK' for row in self.rows)
    named = sum(row[3].startswith('named') for row in self.rows)
    print('parity: %d checks, %d outside tolerance (and %d measuring a named '
          'difference)' % (len(self.rows), failed, named))

  @staticmethod
  def header():
    return ('check', 'value', 'tolerance', 'ok')


def relative_difference(ours, theirs):
  scale = max(float(np.abs(theirs).max()), 1e-30)
  return float(np.abs(ours - theirs).max()) / scale


def compare_anchors(table, ours, theirs_xyxy):
  """Ours (cx, cy, w, h) normalised against torchvision's xyxy pixels."""
  cx, cy, w, h = (ours[:, i] * IMAGE_SIZE for i in range(4))
  corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
  table.add('default boxes: count %d vs %d' % (len(ours), len(theirs_xyxy)),
            abs(len(ours) - len(theirs_xyxy)), 0)
  table.add('default boxes: max |corner diff| px',
            float(np.abs(corners - theirs_xyxy).max()), ANCHOR_PX)


def compare_heads(table, ours, cls_logits, bbox_regression, label):
  for layer, (name, anchors) in enumerate(map_slices()):
    for kind, theirs in (('logits', cls_logits),
                         ('localisations', bbox_regression)):
      table.add('%s %s %s: max|diff|/max|value|' % (label, name, kind),
                relative_difference(ours['%s_%s_%d' % (kind, label, layer)],
                                    theirs[:, anchors]), HEAD_RELATIVE)


def detection_differences(ours, theirs):
  """Per image count pairs, and over all images: differing classes (and
  those at near-tied scores), max score and box differences."""
  counts, classes, ties, scores, boxes = [], 0, 0, 0., 0.
  for index, result in enumerate(theirs):
    count = int(ours['export_num_detections'][index])
    counts.append((count, len(result['scores'])))
    if count != len(result['scores']):
      continue
    order = np.argsort(-ours['export_detection_scores'][index][:count],
                       kind='stable')
    their_order = np.argsort(-result['scores'], kind='stable')
    their_scores = result['scores'][their_order]
    scores = max(scores, float(np.abs(
        ours['export_detection_scores'][index][order] - their_scores).max()))
    mismatch = (ours['export_detection_classes'][index][order] !=
                result['labels'][their_order])
    # Scores within SCORE_ABS may sort either way: near-ties.
    near = np.abs(np.diff(their_scores)) <= SCORE_ABS
    near = np.concatenate([near, [False]]) | np.concatenate([[False], near])
    ties += int((mismatch & near).sum())
    classes += int((mismatch & ~near).sum())
    our_boxes = ours['export_detection_boxes'][index][order][
        :, [1, 0, 3, 2]] * IMAGE_SIZE
    box_diff = np.abs(our_boxes - result['boxes'][their_order]).max(axis=1)
    boxes = max(boxes, float(box_diff[~near].max(initial=0.)))
  return counts, classes, ties, scores, boxes


def unmatched_detections(ours, theirs):
  """Detections of `theirs` with no detection of ours of the same class
  within SCORE_ABS and BOX_PX, and their total."""
  unmatched, total = 0, 0
  for index, result in enumerate(theirs):
    count = int(ours['export_num_detections'][index])
    our_boxes = ours['export_detection_boxes'][index][:count][
        :, [1, 0, 3, 2]] * IMAGE_SIZE
    for label, score, box in zip(result['labels'], result['scores'],
                                 result['boxes']):
      found = ((ours['export_detection_classes'][index][:count] == label) &
               (np.abs(ours['export_detection_scores'][index][:count] -
                       score) <= SCORE_ABS) &
               (np.abs(our_boxes - box).max(axis=1) <= BOX_PX))
      unmatched += int(not found.any())
      total += 1
  return unmatched, total


def compare_detections(table, ours, theirs, label):
  counts, classes, ties, scores, boxes = detection_differences(ours, theirs)
  unmatched, total = unmatched_detections(ours, theirs)
  table.add('detections %s: theirs not among ours (of %d)' % (label, total),
            unmatched, 0)
  table.add('detections %s: count per image (ours/theirs)' % label, 0, 0,
            ok=all(a == b for a, b in counts),
            text=' '.join('%d/%d' % pair for pair in counts))
  table.add('detections %s: classes differing (near-ties apart: %d)' % (
      label, ties), classes, 0)
  table.add('detections %s: max |score diff|' % label, scores, SCORE_ABS)
  table.add('detections %s: max |box diff| px (near-ties apart)' % label,
            boxes, BOX_PX)


def compare_training(table, ours, theirs, subset, positives_note=''):
  our_terms = ours['terms']
  classification = (our_terms['cross_entropy_pos'] +
                    our_terms['cross_entropy_neg'])
  for name, value, reference in (
      ('classification', classification, theirs['classification']),
      ('localisation', our_terms['localization'],
       theirs['bbox_regression'])):
    table.add('loss %s (%s): rel diff%s' % (name, subset, positives_note),
              abs(value - reference) / abs(reference), LOSS_RELATIVE)


def compare_gradients(table, ours, theirs, subset):
  groups = {}
  for key, norm in theirs.items():
    group = ('class heads' if 'classification_head' in key else
             'box heads' if 'regression_head' in key else
             'L2 scale' if 'scale_weight' in key else 'backbone')
    difference = abs(ours[key] - norm) / max(norm, 1e-30)
    worst = groups.get(group, (0., ''))
    groups[group] = max(worst, (difference, key))
  for group, (difference, key) in sorted(groups.items()):
    table.add('grad norms %s (%s): max rel diff (%s)' % (group, subset, key),
              difference, GRADIENT_RELATIVE)


def main(argv=None):
  args = parse_args(argv)
  work_dir = args.work_dir or tempfile.mkdtemp(prefix='parity_')
  os.makedirs(work_dir, exist_ok=True)
  try:
    report(args, work_dir)
  finally:
    if not args.work_dir:
      shutil.rmtree(work_dir, ignore_errors=True)


def torchvision_side(args, work_dir):
  """Everything torchvision computes; the photos and its inputs are written
  for bench/parity_ours.py."""
  photos = read_photos(args.dataset_dir, args.split, args.num_images,
                       args.num_classes, work_dir)
  images = load_images(work_dir, photos)
  model = build_model(args.num_classes, args.seed)
  side = {'photos': photos, 'model': model,
          'factors': normalise_heads(model, images)}
  (side['inputs'], side['anchors'], side['cls_logits'],
   side['bbox_regression']) = head_outputs(model, images)
  side['shifts'] = add_probe_boxes(photos, side['anchors'],
                                   args.probe_images, args.num_classes)
  write_photos(photos, work_dir)
  np.save(os.path.join(work_dir, 'torchvision_inputs.npy'), side['inputs'])
  side['positives'], shared, side['classes'] = matching(
      model, side['anchors'], photos)
  side['clean'] = [i for i, flag in enumerate(shared) if not flag]
  side['detections'] = detections(model, images)
  side['detections_clip_after'] = detections(model, images,
                                             clip_before_nms=False)
  side['loss_all'] = training(model, images, targets_of(photos))
  side['loss_clean'] = training(
      model, [images[i] for i in side['clean']],
      targets_of([photos[i] for i in side['clean']]))
  return side


def print_setup(theirs):
  print('photos: %s' % ' '.join(
      '%s(%d box%s%s)' % (photo['id'], len(photo['boxes']),
                          'es' if len(photo['boxes']) > 1 else '',
                          ', +1 synthetic box %d px right of its first: '
                          'shares its best anchor' % photo['probe']
                          if 'probe' in photo else '')
      for photo in theirs['photos']))
  for name, factors in zip(('class', 'box'), theirs['factors']):
    print('%s heads scaled per map (weights and biases) to output std %g: '
          'x %s' % (name, LOGIT_STD if name == 'class' else BOX_STD,
                    ' '.join('%.3g' % factor for factor in factors)))


def compare_matching(table, ours, theirs):
  our_positives = ours['positives']
  clean = theirs['clean']
  table.add('positives per image (ours/theirs)', 0, 0,
            ok=all(our_positives[i] == theirs['positives'][i]
                   for i in clean),
            text=' '.join('%d/%d' % pair for pair in zip(
                our_positives, theirs['positives'])))
  differing = (np.asarray(ours['gclasses']) != theirs['classes']).sum(1)
  for subset, indices in (('clean', clean), ('probes: matching rule', [
      i for i in range(len(differing)) if i not in clean])):
    if indices:
      with table.named_difference(None if subset == 'clean'
                                  else SHARED_BEST_ANCHOR):
        table.add('anchors with another class target (%s): per image' %
                  subset, int(differing[indices].sum()), 0,
                  text=' '.join(str(differing[i]) for i in indices))


def report(args, work_dir):
  theirs = torchvision_side(args, work_dir)
  ours, training_ours = run_project(args, work_dir,
                                    theirs['model'].state_dict(),
                                    theirs['clean'])
  print_setup(theirs)
  table = Table()
  saturated, tied = score_quality(theirs['cls_logits'])
  table.add('class scores: top 200 per image > 0.999 (share)', saturated,
            0.01)
  table.add('class scores: top 200 gaps < 1e-6 (share)', tied, 0.01)
  compare_anchors(table, ours['anchors'], theirs['anchors'])
  inputs = theirs['inputs']
  own = ours['own_inputs'].transpose(0, 3, 1, 2)
  table.add('network input, own preprocessing: max |diff| (0-255)',
            float(np.abs(own - inputs).max()), INPUT_ABS)
  compare_heads(table, ours, theirs['cls_logits'], theirs['bbox_regression'],
                'theirs')
  heads = _flat_heads(theirs['cls_logits'], theirs['bbox_regression'])
  table.add('heads on own input: max over maps of max|diff|/max|value|',
            max(relative_difference(ours[key.replace('_theirs_', '_own_')],
                                    value) for key, value in heads.items()),
            HEAD_RELATIVE)
  with table.named_difference(CLIP_BEFORE_NMS):
    compare_detections(table, ours, theirs['detections'],
                       'vs torchvision (it clips before NMS)')
  compare_detections(table, ours, theirs['detections_clip_after'],
                     'vs torchvision clipping after NMS')
  compare_matching(table, training_ours, theirs)
  if theirs['clean']:
    compare_training(table, training_ours['clean'], theirs['loss_clean'][0],
                     'clean %d' % len(theirs['clean']))
    compare_gradients(table, training_ours['clean']['gradient_norms'],
                      theirs['loss_clean'][1], 'clean')
  probes = len(theirs['photos']) - len(theirs['clean'])
  subset = 'all %d' % len(theirs['photos'])
  if probes:
    subset += ', %d probes: matching rule' % probes
  with table.named_difference(SHARED_BEST_ANCHOR if probes else None):
    compare_training(table, training_ours['all'], theirs['loss_all'][0],
                     subset)
    compare_gradients(table, training_ours['all']['gradient_norms'],
                      theirs['loss_all'][1], subset)
  model_name, _ = platform_info.cpu_description()
  print('CPU: %s; load average %s; torch %s, torchvision %s' % (
      model_name, '%.2f %.2f %.2f' % os.getloadavg(), torch.__version__,
      torchvision.__version__))
  table.print()


def _flat_heads(cls_logits, bbox_regression):
  """{'<kind>_theirs_<layer>': torchvision's slice of that map}."""
  heads = {}
  for layer, (_, anchors) in enumerate(map_slices()):
    heads['logits_theirs_%d' % layer] = cls_logits[:, anchors]
    heads['localisations_theirs_%d' % layer] = bbox_regression[:, anchors]
  return heads


if __name__ == '__main__':
  main()
