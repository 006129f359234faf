"""Several generalises.py runs on one plot and in one wide CSV.

Each `--curve LABEL=CSV[:RECIPE]` takes the rows of recipe RECIPE (default:
every row) of a `curve.csv` written by bench/generalises.py, under LABEL:
runs of other seeds, machines or sessions side by side.

  python bench/side_by_side.py \\
      --curve 'ours nobn=run1/curve.csv:nobn' \\
      --curve 'ours nobn, seed 11=run2/curve.csv:nobn' \\
      --curve 'torchvision=run3/curve.csv' --output docs/images/side_by_side

writes `<output>.csv` (images seen, then one val mAP VOC07 column per
label) and `<output>.png` (val mAP and train loss against images seen).
"""
import collections
import csv
import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=g-import-not-at-top,wrong-import-position
import plot_curve
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_multi_string('curve', [], 'LABEL=CSV[:RECIPE], repeated.')
  flags.DEFINE_string('output', None, 'Path of the outputs, without '
                      'extension: <output>.csv and <output>.png.')
  flags.DEFINE_string('title', 'val mAP side by side', 'Title of the plot.')
  flags.mark_flags_as_required(['output'])


def parse_curve(spec):
  """(label, csv path, recipe or None) of one --curve value."""
  label, separator, source = spec.partition('=')
  if not separator or not label or not source:
    raise app.UsageError('--curve %r: expected LABEL=CSV[:RECIPE]' % spec)
  path, _, recipe = source.partition(':')
  return label, path, recipe or None


def read_points(path, recipe):
  """[(images seen, val mAP VOC07 or None, train loss or None)] of a curve."""
  def number(text):
    return float(text) if text not in ('', None) else None
  with open(path, newline='') as csv_file:
    return [(int(row['images_seen']), number(row['val_map_voc07']),
             number(row['train_loss']))
            for row in csv.DictReader(csv_file)
            if recipe is None or row['recipe'] == recipe]


def write_wide_csv(path, curves):
  """images_seen, then one val mAP column per label (empty where missing)."""
  images = sorted({x for points in curves.values() for x, _, _ in points})
  by_label = {label: {x: value for x, value, _ in points}
              for label, points in curves.items()}
  with open(path, 'w', newline='') as csv_file:
    writer = csv.writer(csv_file)
    writer.writerow(['images_seen'] + ['val_map_voc07 %s' % label
                                       for label in curves])
    for x in images:
      writer.writerow([x] + [
          '' if by_label[label].get(x) is None
          else '%.4f' % by_label[label][x] for label in curves])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  curves = collections.OrderedDict()
  for spec in FLAGS.curve:
    label, path, recipe = parse_curve(spec)
    curves[label] = read_points(path, recipe)
    if not curves[label]:
      raise app.UsageError('--curve %r: no rows%s in %s' % (
          spec, ' of recipe %s' % recipe if recipe else '', path))
  write_wide_csv(FLAGS.output + '.csv', curves)
  plot_curve.plot_curves(
      FLAGS.output + '.png', FLAGS.title, 'images seen',
      [('val mAP@0.5 (VOC07)', {label: [(x, y) for x, y, _ in points]
                                for label, points in curves.items()}, 0.0),
       ('train loss (mean over each leg)',
        {label: [(x, loss) for x, _, loss in points]
         for label, points in curves.items()}, 0.0)])
  print('wrote %s.csv and %s.png' % (FLAGS.output, FLAGS.output))


if __name__ == '__main__':
  define_flags()
  app.run(main)
