"""Proof that training generalises: held-out val mAP along a from-scratch run.

Takes a fixed subset of the Freiburg groceries dataset (Pascal VOC layout):
a few classes, *all* their `train` images and all their `val` images.  It
converts both with the converter's command line
(`python -m datasets.pascalvoc_to_tfrecords`), then for each recipe trains
`train_ssd_network.py` from scratch, with the full SSD augmentation, for a
budget of images seen.  Training runs in legs: each leg resumes from the
previous checkpoint and stops `--eval_every_images` later, and that
checkpoint is evaluated on the `val` images with `eval_ssd_network.py`.

  python bench/generalises.py                         # nobn vs bn, 8,000 images each
  python bench/generalises.py --recipes=nobn,bn,torchvision   # torchvision's
      # ssd300_vgg16 beside ours (bench/torchvision_leg.py, --torch_python)
  python bench/generalises.py --recipes=bn,bn_lr3e-3 --precision=mixed_bfloat16
  python bench/generalises.py --classes=beans,coffee --budget_images=160 \
      --eval_every_images=80                          # a short slice

Outputs, under --work_dir (default bench/out/generalises, ignored by git):
  curve.csv     one row per evaluated checkpoint: recipe, step, images seen,
                mean train loss over the leg, val mAP@0.5 VOC07 and VOC12,
                training images/s, the precision the training used,
                seconds spent training and evaluating;
  curve.png     val mAP (VOC07) and train loss against images seen;
  summary.md    the recipe table (best and last val mAP, wall time) and
                the machine (CPU, load average);
  <recipe>/     train/ (checkpoints, logs per leg), eval/step_<N>/
                (results.json, comp4 files); records/ and voc_subset/ hold
                the converted data and the subset's lists (the images are
                only linked, never copied).
With --resume, the legs already trained and evaluated are kept (a leg's
row is saved in eval/step_<N>/row.json).
"""
import collections
import csv
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)
sys.path.insert(0, os.path.join(PROJECT_ROOT, 'bench'))

# pylint: disable=g-import-not-at-top,wrong-import-position
import plot_curve
from datasets import voc_common
from utils.checkpointing import checkpoints
from utils.common import paths
from utils.common import run_directory
from utils.evaluation import evaluator
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

# A training recipe: what is compared between runs of the same budget.
# Every recipe uses Adam with a linear learning-rate decay to
# end_fraction times its initial value over --schedule_images, after
# warmup_steps of warm-up.
# `implementation` is 'ours' (train_ssd_network.py) or 'torchvision'
# (bench/torchvision_leg.py in the benchmark virtualenv, --torch_python).
Recipe = collections.namedtuple(
    'Recipe', ['description', 'batch_size', 'learning_rate', 'end_fraction',
               'warmup_steps', 'weight_decay', 'batch_norm',
               'implementation'])
_BASE = Recipe('no normalisation (SSD as published, but from scratch)',
               batch_size=8, learning_rate=0.001, end_fraction=0.1,
               warmup_steps=100, weight_decay=0.0005, batch_norm=False,
               implementation='ours')
_BN = _BASE._replace(description='batch norm after every backbone and extra '
                     'convolution (ScratchDet / VGG16-BN)', batch_norm=True)
RECIPES = collections.OrderedDict([
    ('nobn', _BASE),
    ('bn', _BN),
    ('bn_lr3e-3', _BN._replace(description='bn, learning rate 0.003',
                               learning_rate=0.003)),
    ('bn_lr1e-4', _BN._replace(description='bn, learning rate 0.0001, '
                               'constant after the warm-up',
                               learning_rate=0.0001, end_fraction=1.0)),
    ('bn_nowarmup', _BN._replace(description='bn, no warm-up',
                                 warmup_steps=0)),
    ('bn_batch4', _BN._replace(description='bn, batch 4 (twice the steps)',
                               batch_size=4)),
    ('bn_wd5e-5', _BN._replace(description='bn, weight decay 0.00005',
                               weight_decay=0.00005)),
    ('torchvision', _BASE._replace(
        description='torchvision\'s ssd300_vgg16, its initialisation and '
        'SSD augmentation, nobn\'s optimiser and schedule',
        implementation='torchvision')),
])

# What every recipe shares in one run of the benchmark (from the flags).
RunSettings = collections.namedtuple(
    'RunSettings', ['work_dir', 'budget_images', 'schedule_images',
                    'eval_every_images', 'num_clones', 'precision', 'seed',
                    'torch_python', 'torch_threads'])
# The converted subset: records, the VOC root listing it, its classes.
SubsetData = collections.namedtuple(
    'SubsetData', ['records_dir', 'voc_dir', 'classes', 'num_train_images'])
# How one recipe trains a leg and what its checkpoints are:
#   trained(step) -> whether the leg up to `step` is already trained;
#   train(step, seed, log_path) -> seconds spent training it;
#   checkpoint(step) -> the checkpoint eval_ssd_network.py scores.
LegRunner = collections.namedtuple(
    'LegRunner', ['train_dir', 'flags', 'trained', 'train', 'checkpoint'])
DEFAULT_TORCH_PYTHON = os.path.join(PROJECT_ROOT, os.pardir, 'bench-venv',
                                    'bin', 'python')

# Written beside each checkpoint's results.json: its CSV row, for --resume.
ROW_FILE_NAME = 'row.json'
CSV_FIELDS = ('recipe', 'step', 'images_seen', 'train_loss', 'val_map_voc07',
              'val_map_voc12', 'train_images_per_second', 'precision',
              'train_seconds', 'eval_seconds')

_LOSS_LINE = re.compile(r'step (\d+): loss ([0-9.eE+-]+|nan|inf)')
_SPEED = re.compile(r'([0-9.]+) images/s')
# The training script logs the precision it resolved (e.g. from auto).
_PRECISION = re.compile(r'Precision: (\w+)')
_FLAG_NAME = re.compile(r'^\s+--(?:\[no\])?([A-Za-z0-9_]+)', re.MULTILINE)


def define_flags():
  """The benchmark's command-line flags."""
  flags.DEFINE_string('dataset_dir', paths.groceries_dir(),
                      'Freiburg groceries VOC root (env %s).' %
                      paths.GROCERIES_ENV)
  flags.DEFINE_string('work_dir', os.path.join(PROJECT_ROOT, 'bench', 'out',
                                               'generalises'),
                      'Where everything is written (erased unless --resume).')
  flags.DEFINE_list('classes', ['beans', 'coffee', 'pasta', 'water'],
                    'Classes of the subset: all their train and val images.')
  flags.DEFINE_list('recipes', ['nobn', 'bn'],
                    'Recipes to compare, of: %s.' % ', '.join(RECIPES))
  flags.DEFINE_integer('budget_images', 8000,
                       'Images seen per recipe (a smaller value runs the '
                       'start of the full run).', lower_bound=1)
  flags.DEFINE_integer('schedule_images', 8000,
                       'Images over which the learning rate decays; keep it '
                       'when running a short slice with --budget_images. A '
                       'budget beyond it trains on at the end rate (and '
                       'extends a finished run with --resume).',
                       lower_bound=1)
  flags.DEFINE_integer('eval_every_images', 1000,
                       'Images seen between two evaluated checkpoints.',
                       lower_bound=1)
  flags.DEFINE_integer('num_clones', 1, 'Training clones on logical CPU '
                       'devices; each takes the recipe\'s batch.',
                       lower_bound=1)
  flags.DEFINE_string('precision', None, 'Training --precision; default: '
                      'the training script\'s own (auto). The CSV says which '
                      'one each leg used.')
  flags.DEFINE_integer('seed', 1, 'Seed of the first leg (leg k uses '
                       'seed + k, so each leg draws new augmentations).')
  flags.DEFINE_boolean('resume', False, 'Keep --work_dir and skip the legs '
                       'already trained and evaluated.')
  flags.DEFINE_string('torch_python', DEFAULT_TORCH_PYTHON,
                      'Python of the benchmark virtualenv (torch, '
                      'torchvision), for the torchvision recipe.')
  flags.DEFINE_integer('torch_threads', None, 'PyTorch threads of the '
                       'torchvision recipe; default: all cores (1 keeps it '
                       'fast beside other jobs: its parallel loops stall '
                       'when a thread is descheduled).', lower_bound=1)


# --- The subset --------------------------------------------------------------


def select_images(dataset_dir, split, classes):
  """Ids of the split's images whose objects all belong to `classes`, in list order."""
  with open(os.path.join(dataset_dir, 'ImageSets', 'Main',
                         split + '.txt')) as split_file:
    image_ids = [line.strip() for line in split_file if line.strip()]
  wanted = set(classes)
  chosen = []
  for image_id in image_ids:
    annotation = voc_common.parse_annotation(
        os.path.join(dataset_dir, 'Annotations', image_id + '.xml'), image_id)
    names = {obj.name for obj in annotation.objects}
    if names and names <= wanted:
      chosen.append(image_id)
  return chosen


def write_subset_root(dataset_dir, subset_dir, classes, image_ids_by_split):
  """A VOC root listing only the subset: its own lists, linked data folders.

  Returns the path of its class-list file.
  """
  lists_dir = os.path.join(subset_dir, 'ImageSets', 'Main')
  os.makedirs(lists_dir, exist_ok=True)
  for folder in ('Annotations', 'JPEGImages'):
    link = os.path.join(subset_dir, folder)
    if not os.path.lexists(link):
      os.symlink(os.path.abspath(os.path.join(dataset_dir, folder)), link)
  for split, image_ids in image_ids_by_split.items():
    with open(os.path.join(lists_dir, split + '.txt'), 'w') as split_file:
      split_file.write(''.join(i + '\n' for i in image_ids))
  classes_path = os.path.join(subset_dir, 'classes.txt')
  with open(classes_path, 'w') as classes_file:
    classes_file.write(''.join(name + '\n' for name in classes))
  return classes_path


def convert_split(subset_dir, classes_path, split, records_dir):
  """Runs the converter's command line on one split of the subset root."""
  subprocess.run(
      [sys.executable, '-m', 'datasets.pascalvoc_to_tfrecords',
       '--dataset_dir', subset_dir, '--split', split, '--labels',
       classes_path, '--output_name', 'groceries_' + split,
       '--output_dir', records_dir],
      cwd=PROJECT_ROOT, check=True, stdout=subprocess.DEVNULL)


# --- Recipes and legs --------------------------------------------------------


def checkpoint_steps(budget_images, eval_every_images, images_per_step):
  """Global steps to stop and evaluate at: every eval_every_images, then the budget."""
  last = math.ceil(budget_images / images_per_step)
  steps = [math.ceil(k * eval_every_images / images_per_step)
           for k in range(1, budget_images // eval_every_images + 1)]
  return sorted(set(steps + [last]))


def recipe_flags(recipe, schedule_epochs):
  """Training flags of a recipe (flags the benchmark sets for all recipes aside)."""
  command = [
      '--batch_size', str(recipe.batch_size),
      '--learning_rate', str(recipe.learning_rate),
      '--end_learning_rate',
      str(recipe.learning_rate * recipe.end_fraction),
      '--learning_rate_decay_type', 'polynomial',
      '--num_epochs_per_decay', repr(schedule_epochs),
      '--warmup_steps', str(recipe.warmup_steps),
      '--weight_decay', str(recipe.weight_decay)]
  if recipe.batch_norm:
    command.append('--batch_norm')
  return command


def training_flag_names():
  """Names of the flags train_ssd_network.py defines (from its --helpfull)."""
  # absl exits with status 1 after printing the help.
  output = subprocess.run(
      [sys.executable, os.path.join(PROJECT_ROOT, 'train_ssd_network.py'),
       '--helpfull'], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
      stderr=subprocess.DEVNULL, universal_newlines=True).stdout
  return set(_FLAG_NAME.findall(output))


def missing_flags(command, known_names):
  """Flags of `command` (a list of arguments) that are not in known_names."""
  names = {argument[2:].split('=')[0] for argument in command
           if argument.startswith('--')}
  return sorted(names - known_names)


def parse_training_log(text):
  """(mean loss, median images/s, precision) of a training log.

  The first two come from the step lines, the precision from the line that
  says which one the run used; each is None when the log has no such line.
  """
  losses = [float(loss) for _, loss in _LOSS_LINE.findall(text)]
  speeds = [float(speed) for speed in _SPEED.findall(text)]
  precision = _PRECISION.search(text)
  return (statistics.mean(losses) if losses else None,
          statistics.median(speeds) if speeds else None,
          precision.group(1) if precision else None)


def _run_logged(command, log_path):
  """Runs a command with stdout and stderr into log_path; returns seconds."""
  start = time.time()
  with open(log_path, 'w') as log:
    process = subprocess.run(command, cwd=PROJECT_ROOT, stdout=log,
                             stderr=subprocess.STDOUT)
  if process.returncode:
    raise RuntimeError('%s failed (exit %d); see %s' % (
        os.path.basename(command[1]), process.returncode, log_path))
  return time.time() - start


def ours_leg_runner(settings, recipe, data, train_dir, num_checkpoints):
  """The LegRunner of train_ssd_network.py with the recipe's flags."""
  common_flags = [
      '--dataset_dir', data.records_dir, '--dataset_split_name', 'train',
      '--augmentation', 'ssd', '--optimizer', 'adam',
      '--num_clones', str(settings.num_clones), '--clone_on_cpu',
      '--log_every_n_steps', '1', '--save_interval_secs', '100000',
      '--save_summaries_secs', '600', '--max_to_keep',
      str(num_checkpoints + 1)]
  common_flags += recipe_flags(
      recipe, settings.schedule_images / data.num_train_images)
  if settings.precision:
    common_flags += ['--precision', settings.precision]

  def checkpoint(step):
    return os.path.join(train_dir, 'model.ckpt-%d' % step)

  def train(step, seed, log_path):
    command = [sys.executable, os.path.join(PROJECT_ROOT,
                                            'train_ssd_network.py')]
    command += common_flags + [
        '--train_dir', train_dir, '--max_number_of_steps', str(step),
        '--seed', str(seed)]
    return _run_logged(command, log_path)

  return LegRunner(train_dir, common_flags,
                   lambda step: os.path.exists(checkpoint(step) + '.index'),
                   train, checkpoint)


def torchvision_leg_flags(settings, recipe, data):
  """bench/torchvision_leg.py's flags for the recipe (the step and seed aside)."""
  images_per_step = recipe.batch_size * settings.num_clones
  command = [
      '--voc_dir', data.voc_dir, '--classes', ','.join(data.classes),
      '--batch_size', str(images_per_step),
      '--learning_rate', str(recipe.learning_rate),
      '--end_learning_rate', str(recipe.learning_rate * recipe.end_fraction),
      '--decay_steps', str(math.ceil(settings.schedule_images /
                                     images_per_step)),
      '--warmup_steps', str(recipe.warmup_steps),
      '--weight_decay', str(recipe.weight_decay),
      '--precision',
      'float32' if settings.precision == 'float32' else 'bf16_autocast']
  if settings.torch_threads:
    command += ['--threads', str(settings.torch_threads)]
  return command


def torchvision_leg_runner(settings, recipe, data, recipe_dir):
  """The LegRunner of torchvision_leg.py; its weights (model-<step>.npz) are
  imported with import_checkpoint.py to be scored by our evaluator."""
  train_dir = os.path.join(recipe_dir, 'train')
  leg_flags = torchvision_leg_flags(settings, recipe, data)

  def weights(step):
    return os.path.join(train_dir, 'model-%d.npz' % step)

  def train(step, seed, log_path):
    return _run_logged(
        [settings.torch_python,
         os.path.join(PROJECT_ROOT, 'bench', 'torchvision_leg.py')] +
        leg_flags + ['--train_dir', train_dir, '--until_step', str(step),
                     '--seed', str(seed)], log_path)

  def checkpoint(step):
    imported = os.path.join(recipe_dir, 'imported', 'step_%d' % step)
    if not os.path.exists(run_directory.checkpoint_index(imported)):
      shutil.rmtree(imported, ignore_errors=True)
      os.makedirs(os.path.dirname(imported), exist_ok=True)
      _run_logged([sys.executable,
                   os.path.join(PROJECT_ROOT, 'import_checkpoint.py'),
                   '--source', 'torchvision', '--input', weights(step),
                   '--output_dir', imported], imported + '.log')
    return imported

  return LegRunner(train_dir, leg_flags,
                   lambda step: os.path.exists(weights(step)), train,
                   checkpoint)


def evaluate_checkpoint(checkpoint, records_dir, eval_dir):
  """Evaluates one checkpoint on the val records; returns (results, seconds)."""
  os.makedirs(eval_dir, exist_ok=True)
  seconds = _run_logged(
      [sys.executable, os.path.join(PROJECT_ROOT, 'eval_ssd_network.py'),
       '--checkpoint_path', checkpoint, '--dataset_dir', records_dir,
       '--dataset_split_name', 'val', '--eval_dir', eval_dir],
      os.path.join(eval_dir, 'eval.log'))
  results_path = os.path.join(eval_dir, evaluator.RESULTS_FILENAME)
  with open(results_path) as results_file:
    return json.load(results_file), seconds


def run_recipe(settings, name, recipe, data, on_row):
  """Trains and evaluates one recipe leg by leg; calls on_row(row) per checkpoint."""
  recipe_dir = os.path.join(settings.work_dir, name)
  train_dir = os.path.join(recipe_dir, 'train')
  os.makedirs(train_dir, exist_ok=True)
  images_per_step = recipe.batch_size * settings.num_clones
  steps = checkpoint_steps(settings.budget_images, settings.eval_every_images,
                           images_per_step)
  if recipe.implementation == 'torchvision':
    runner = torchvision_leg_runner(settings, recipe, data, recipe_dir)
  else:
    runner = ours_leg_runner(settings, recipe, data, train_dir, len(steps))
  for leg, step in enumerate(steps):
    eval_dir = os.path.join(recipe_dir, 'eval', 'step_%d' % step)
    row_path = os.path.join(eval_dir, ROW_FILE_NAME)
    if os.path.exists(row_path):
      with open(row_path) as row_file:
        row = json.load(row_file)
    else:
      row = run_leg(runner, step, settings.seed + leg, data.records_dir,
                    eval_dir)
      row.update(recipe=name, images_seen=step * images_per_step)
      os.makedirs(eval_dir, exist_ok=True)
      with open(row_path, 'w') as row_file:
        json.dump(row, row_file)
    on_row(row)


def run_leg(runner, step, seed, records_dir, eval_dir):
  """Trains up to `step` (unless already trained) and evaluates it.

  Returns the row's step, train_loss, val_map_voc07, val_map_voc12,
  train_images_per_second, precision, train_seconds and eval_seconds.
  """
  log_path = os.path.join(runner.train_dir, 'leg_%05d.log' % step)
  train_seconds = 0.0
  if not runner.trained(step):
    train_seconds = runner.train(step, seed, log_path)
  results, eval_seconds = evaluate_checkpoint(runner.checkpoint(step),
                                              records_dir, eval_dir)
  with open(log_path) as log:
    loss, images_per_second, precision = parse_training_log(log.read())
  return {'step': step, 'train_loss': loss, 'precision': precision,
          'val_map_voc07': results['mAP_VOC07'],
          'val_map_voc12': results['mAP_VOC12'],
          'train_images_per_second': images_per_second,
          'train_seconds': train_seconds, 'eval_seconds': eval_seconds}


# --- Outputs -----------------------------------------------------------------


def _format(value, digits):
  return '' if value is None else '%.*f' % (digits, value)


def write_csv(path, rows):
  """Writes the rows (dicts with CSV_FIELDS); None or absent is an empty cell."""
  digits = {'train_loss': 4, 'val_map_voc07': 4, 'val_map_voc12': 4,
            'train_images_per_second': 3, 'train_seconds': 1,
            'eval_seconds': 1}
  with open(path, 'w', newline='') as csv_file:
    writer = csv.writer(csv_file)
    writer.writerow(CSV_FIELDS)
    for row in rows:
      writer.writerow([_format(row.get(field), digits[field])
                       if field in digits else row.get(field, '')
                       for field in CSV_FIELDS])


def plot_rows(path, rows, title):
  """curve.png: val mAP VOC07 and train loss against images seen, per recipe."""
  def series(field):
    by_recipe = collections.OrderedDict()
    for row in rows:
      by_recipe.setdefault(row['recipe'], []).append(
          (row['images_seen'], row[field]))
    return by_recipe
  return plot_curve.plot_curves(
      path, title, 'images seen',
      [('val mAP@0.5 (VOC07)', series('val_map_voc07'), 0.0),
       ('train loss (mean over each leg)', series('train_loss'), 0.0)])


def summary_table(rows, recipes):
  """Markdown table: per recipe, best and last val mAP, wall time, speed."""
  lines = ['| recipe | what | images seen | best val mAP VOC07 (at images) | '
           'last val mAP VOC07 / VOC12 | last train loss | train images/s | '
           'train + eval min |', '|---|---|---|---|---|---|---|---|']
  for name in recipes:
    own = [row for row in rows if row['recipe'] == name]
    if not own:
      continue
    scored = [row for row in own if row['val_map_voc07'] is not None]
    best = max(scored, key=lambda row: row['val_map_voc07']) if scored else None
    last = own[-1]
    speeds = [row['train_images_per_second'] for row in own
              if row['train_images_per_second'] is not None]
    precisions = sorted({row.get('precision') or '?' for row in own})
    minutes = sum(row['train_seconds'] + row['eval_seconds']
                  for row in own) / 60
    lines.append('| %s | %s | %d | %s | %s / %s | %s | %s | %.1f |' % (
        name, RECIPES[name].description, last['images_seen'],
        '%.3f (%d)' % (best['val_map_voc07'], best['images_seen'])
        if best else 'n/a',
        _format(last['val_map_voc07'], 3) or 'n/a',
        _format(last['val_map_voc12'], 3) or 'n/a',
        _format(last['train_loss'], 3) or 'n/a',
        '%s %s' % ('%.2f' % statistics.median(speeds) if speeds else 'n/a',
                   '/'.join(precisions)), minutes))
  return '\n'.join(lines)


def machine_description():
  """CPU model, logical CPU count and load averages, for the report."""
  model = 'unknown CPU'
  try:
    with open('/proc/cpuinfo') as cpuinfo:
      for line in cpuinfo:
        if line.startswith('model name'):
          model = line.split(':', 1)[1].strip()
          break
  except OSError:
    pass
  return '%s, %d logical CPUs, load average %.2f / %.2f / %.2f' % (
      (model, os.cpu_count()) + os.getloadavg())


# --- Main --------------------------------------------------------------------


def check_runnable(recipe_names):
  """Exits with a message when a recipe or a from-scratch run is impossible."""
  unknown = [name for name in recipe_names if name not in RECIPES]
  if unknown:
    raise app.UsageError('unknown recipe(s) %s; known: %s' % (
        ', '.join(unknown), ', '.join(RECIPES)))
  known_flags = training_flag_names()
  for name in recipe_names:
    if RECIPES[name].implementation == 'torchvision':
      if not os.path.exists(FLAGS.torch_python):
        sys.exit('recipe %s runs with the benchmark virtualenv, and %s does '
                 'not exist: python3 -m venv ../bench-venv && '
                 '../bench-venv/bin/pip install torch==2.14.1 '
                 'torchvision==0.29.1, or pass --torch_python' % (
                     name, FLAGS.torch_python))
      continue
    missing = missing_flags(recipe_flags(RECIPES[name], 1.0), known_flags)
    if missing:
      sys.exit('recipe %s needs --%s, which train_ssd_network.py does not '
               'define' % (name, ', --'.join(missing)))
  pretrained = checkpoints.find_checkpoint(paths.PRETRAINED_DIR)
  if pretrained:
    sys.exit('%s would initialise the runs, and this benchmark trains from '
             'scratch: move it out of %s' % (pretrained, paths.PRETRAINED_DIR))


def prepare_subset(dataset_dir, work_dir, classes):
  """Selects and converts the subset; returns (SubsetData, ids by split)."""
  records_dir = os.path.join(work_dir, 'records')
  subset_dir = os.path.join(work_dir, 'voc_subset')
  image_ids = {split: select_images(dataset_dir, split, classes)
               for split in ('train', 'val')}
  classes_path = write_subset_root(dataset_dir, subset_dir, classes,
                                   image_ids)
  for split in image_ids:
    convert_split(subset_dir, classes_path, split, records_dir)
  return (SubsetData(records_dir, subset_dir, classes,
                     len(image_ids['train'])), image_ids)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  check_runnable(FLAGS.recipes)
  start = time.time()
  machine_before = machine_description()
  if not FLAGS.resume and os.path.isdir(FLAGS.work_dir):
    shutil.rmtree(FLAGS.work_dir)
  data, image_ids = prepare_subset(FLAGS.dataset_dir, FLAGS.work_dir,
                                   FLAGS.classes)
  subset = '%d train / %d val images of %s' % (
      len(image_ids['train']), len(image_ids['val']), ', '.join(FLAGS.classes))
  print('subset: %s; machine: %s' % (subset, machine_before), flush=True)
  print(','.join(CSV_FIELDS), flush=True)

  rows = []
  csv_path = os.path.join(FLAGS.work_dir, 'curve.csv')
  png_path = os.path.join(FLAGS.work_dir, 'curve.png')

  def on_row(row):
    rows.append(row)
    write_csv(csv_path, rows)
    plot_rows(png_path, rows, 'Freiburg groceries, from scratch: ' + subset)
    with open(csv_path) as csv_file:
      print(csv_file.read().splitlines()[-1], flush=True)

  settings = RunSettings(
      FLAGS.work_dir, FLAGS.budget_images, FLAGS.schedule_images,
      FLAGS.eval_every_images, FLAGS.num_clones, FLAGS.precision, FLAGS.seed,
      FLAGS.torch_python, FLAGS.torch_threads)
  for name in FLAGS.recipes:
    run_recipe(settings, name, RECIPES[name], data, on_row)

  summary = '%s\n\n%s. Before: %s. After: %s. Wall time %.1f min.\n' % (
      summary_table(rows, FLAGS.recipes), subset, machine_before,
      machine_description(), (time.time() - start) / 60)
  with open(os.path.join(FLAGS.work_dir, 'summary.md'), 'w') as summary_file:
    summary_file.write(summary)
  print(summary)
  print('wrote %s, %s' % (csv_path, png_path))


if __name__ == '__main__':
  define_flags()
  app.run(main)
