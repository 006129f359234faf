r"""Training throughput of SSD300: images/second, seconds/step, peak RSS.

Two graphs, both built by the training library's build_training_graph
(utils/trainer/graph.py) from train_ssd_network.py's own flags (same network,
SSD loss, Adam, clone deployment, finiteness assertion and summaries; the
step is run by the library's StepRunner, as the training loop runs it):

  e2e    the real training graph: TFRecords -> decode -> augmentation ->
         box encoding -> batch -> prefetch queue -> clones -> optimizer;
  model  the same graph with an injected input_fn whose queue reads
         variables holding one preprocessed + encoded batch (made once by
         the real pipeline), i.e. the model step alone.

Each configuration (mode, precision, clones, batch size per clone) runs in
its own process, which reports its peak RSS (/proc/self/status VmHWM) at
the end.  The configurations are taken in order into groups whose
estimated memory fits --max_memory_gib; the processes of a group are built
and warmed up one after the other, then stepped in turn, one step each, so
that the variants compared are interleaved and a change of machine load
hits them alike; the median step is printed per configuration, then the
ratios of the pairs present (e2e/model, 2 clones/1 clone, bf16/float32).

  python bench/train_throughput.py --quick            # ~5 minutes
  python bench/train_throughput.py --full             # the whole matrix
  python bench/train_throughput.py --configs=e2e:float32:1:8,model:float32:1:8
  python bench/train_throughput.py --loss_trajectory  # float32 vs bf16 loss

A configuration is MODE:PRECISION:CLONES:BATCH (batch per clone, as
train_ssd_network.py's --batch_size); --train_flags passes any other flag
of train_ssd_network.py (e.g. --num_preprocessing_threads=2).

The parts: throughput_presets.py (configuration syntax, presets, the
targets table), throughput_harness.py (the child processes: graph, steps;
their interleaving), throughput_report.py (result lines, ratios, table).
"""
import os
import sys
import tempfile
import time

# Runs as a script from anywhere: the project root holds the packages.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags

import throughput_harness as harness
import throughput_presets as presets
import throughput_report as report
from utils.common import paths
# pylint: enable=g-import-not-at-top,wrong-import-position

# The benchmark's own flags live apart from absl's global FLAGS, which the
# child processes fill with train_ssd_network.py's flags (whose --precision
# and --batch_size would otherwise clash with ours).
BENCH = flags.FlagValues()
flags.DEFINE_boolean('quick', False, 'Preset, and the default when no '
                     'configuration flag is given: %s (the targets\' '
                     'ratios; about 5 minutes on 2 quiet cores).'
                     % ','.join(presets.QUICK_CONFIGS), flag_values=BENCH)
flags.DEFINE_boolean('full', False, 'Preset: %s (scaling with batch size and'
                     ' clones too; about 15 minutes on 2 quiet cores).'
                     % ','.join(presets.FULL_CONFIGS), flag_values=BENCH)
flags.DEFINE_list('configs', None, 'MODE:PRECISION:CLONES:BATCH[:VARIANT] '
                  'entries, VARIANT being +-separated environment '
                  'assignments and train_ssd_network.py flags for that '
                  'configuration alone (e.g. model:float32:1:8:'
                  'TF_NUM_INTEROP_THREADS=1 or e2e:float32:1:8:'
                  '--num_preprocessing_threads=1+--num_readers=1).',
                  flag_values=BENCH)
# Any of these four given: their product is run.
_PRODUCT_FLAGS = ('modes', 'precision', 'clones', 'batch_sizes')
flags.DEFINE_list('modes', ['e2e', 'model'], 'e2e and/or model.',
                  flag_values=BENCH)
flags.DEFINE_list('precision', ['float32'], 'Precisions to run: float32, '
                  'mixed_bfloat16, mixed_float16 (as train_ssd_network.py '
                  '--precision).', flag_values=BENCH)
flags.DEFINE_list('clones', ['1'], 'Clone counts (logical CPU devices).',
                  flag_values=BENCH)
flags.DEFINE_list('batch_sizes', ['8'], 'Batch sizes per clone.',
                  flag_values=BENCH)
flags.DEFINE_integer('warmup', 1, 'Untimed steps first (the first one '
                     'runs grappler and creates the oneDNN primitives).',
                     lower_bound=0, flag_values=BENCH)
flags.DEFINE_integer('steps', 5, 'Measured steps per configuration.',
                     lower_bound=1, flag_values=BENCH)
flags.DEFINE_float('max_memory_gib', None, 'Configurations are alive (and '
                   'interleaved) together, in groups taken in order while '
                   'their estimated peak RSS adds up to at most this; '
                   'default: 65% of the memory available at the start.',
                   flag_values=BENCH)
flags.DEFINE_boolean('loss_trajectory', False, 'Instead: train the '
                     'model-only graph --trajectory_steps steps on one fixed '
                     'batch from the same initial weights in each of '
                     '--trajectory_precisions; print the loss trajectories '
                     'and their max relative difference to the first.',
                     flag_values=BENCH)
flags.DEFINE_integer('trajectory_steps', 30, 'Steps of --loss_trajectory.',
                     lower_bound=1, flag_values=BENCH)
flags.DEFINE_integer('trajectory_batch_size', 2, 'Batch size of '
                     '--loss_trajectory.', lower_bound=1, flag_values=BENCH)
flags.DEFINE_list('trajectory_precisions', ['float32', 'mixed_bfloat16'],
                  'Precisions compared by --loss_trajectory (the first is '
                  'the reference).', flag_values=BENCH)
flags.DEFINE_enum('source', 'groceries', ['groceries', 'sample'],
                  'Real groceries data (converted subset, falls back to the '
                  'sample data when absent) or the built-in sample '
                  'dataset.', flag_values=BENCH)
flags.DEFINE_string('groceries_dir', paths.groceries_dir(),
                    'VOC root of the groceries data (default: $%s or '
                    '../shared/data/freiburg_groceries_voc).' %
                    paths.GROCERIES_ENV, flag_values=BENCH)
flags.DEFINE_integer('num_images', 256, 'Images converted (groceries: the '
                     'first ones of its train split) or rendered (sample).',
                     lower_bound=8, flag_values=BENCH)
flags.DEFINE_string('work_dir', None, 'Where the converted data goes '
                    '(kept, and reused when already there); default: a '
                    'temporary folder.', flag_values=BENCH)
flags.DEFINE_string('train_flags', '', 'Extra train_ssd_network.py flags, '
                    'space-separated, for every configuration (e.g. '
                    '"--num_preprocessing_threads=2 --num_readers=1").',
                    flag_values=BENCH)
flags.DEFINE_boolean('time_summary', False, 'In e2e mode, after the '
                     'measured steps, also time one run of the summary op '
                     '(which the training loop runs every '
                     '--save_summaries_secs in a thread of its own) and one '
                     'forward pass alone.', flag_values=BENCH)
flags.DEFINE_integer('seed', 1, 'Graph-level seed.', flag_values=BENCH)


def prepare_data(work_dir):
  """Converts (or renders) the training data; returns its folder."""
  # pylint: disable=g-import-not-at-top
  from datasets import pascalvoc_to_tfrecords
  from datasets import sample_data
  # pylint: enable=g-import-not-at-top
  source = BENCH.source
  if source == 'groceries' and not os.path.isdir(
      os.path.join(BENCH.groceries_dir, 'Annotations')):
    print('note: no groceries data at %s; using the sample dataset' %
          BENCH.groceries_dir)
    source = 'sample'
  data_dir = os.path.join(work_dir, '%s_%d' % (source, BENCH.num_images))
  marker = os.path.join(data_dir, 'READY')
  if os.path.exists(marker):
    return data_dir, source
  os.makedirs(data_dir, exist_ok=True)
  if source == 'sample':
    sample_data.ensure_sample_dataset(data_dir, num_train=BENCH.num_images,
                                      num_val=1)
  else:
    image_ids = pascalvoc_to_tfrecords.list_image_ids(BENCH.groceries_dir,
                                                      'train')
    class_names = pascalvoc_to_tfrecords.read_class_list(
        os.path.join(BENCH.groceries_dir, 'classes.txt'))
    pascalvoc_to_tfrecords.convert(
        BENCH.groceries_dir, data_dir, 'bench_train',
        image_ids=image_ids[:BENCH.num_images], class_names=class_names)
  open(marker, 'w').close()
  return data_dir, source


def configs_from_flags():
  """--configs, else --full, else the product flags if given, else quick."""
  if BENCH.configs:
    texts = BENCH.configs
  elif BENCH.full:
    texts = presets.FULL_CONFIGS
  elif not BENCH.quick and any(BENCH[name].present for name in
                               _PRODUCT_FLAGS):
    texts = ['%s:%s:%s:%s' % (m, p, c, b)
             for m in BENCH.modes for p in BENCH.precision
             for c in BENCH.clones for b in BENCH.batch_sizes]
  else:
    texts = presets.QUICK_CONFIGS
  return [presets.parse_config(text) for text in texts]


def memory_groups(configs):
  """The configurations in groups within --max_memory_gib; and the budget."""
  budget = BENCH.max_memory_gib or 0.65 * harness.mem_available_gib()
  return harness.groups(configs, budget), budget


def run_matrix(data_dir, extra, log_dir):
  configs = configs_from_flags()
  keys = [presets.config_key(config) for config in configs]
  if len(set(keys)) != len(keys):
    sys.exit('error: a configuration is listed twice')
  groups, budget = memory_groups(configs)
  start = time.perf_counter()
  print('load before: %s; %d configurations in %d group(s) (memory budget '
        '%.1f GiB), %d warm-up + %d measured steps each' % (
            harness.load(), len(configs), len(groups), budget, BENCH.warmup,
            BENCH.steps), flush=True)
  results = {presets.config_key(config): dict(config=config, steps=[],
                                              group=number)
             for number, group in enumerate(groups, 1) for config in group}

  def spec_of(config):
    return dict(config, data_dir=data_dir, warmup=BENCH.warmup,
                seed=BENCH.seed, extra=extra + config['flags'],
                time_summary=BENCH.time_summary)

  for number, group in enumerate(groups, 1):
    print('group %d: %s' % (number, ', '.join(
        ':'.join(str(part) for part in presets.config_key(config)
                 if part != '')
        for config in group)), flush=True)
    group_start = time.perf_counter()
    harness.run_group(group, spec_of, log_dir, results, BENCH.steps)
    print('  group %d took %.0f s' % (number,
                                      time.perf_counter() - group_start),
          flush=True)
  rows = report.print_results(configs, results)
  print('load after: %s; %.0f s in all' % (harness.load(),
                                           time.perf_counter() - start))
  report.print_table(rows)


def run_trajectory(data_dir, extra, log_dir):
  for precision in BENCH.trajectory_precisions:
    # mixed_float16 changes the graph (loss scaling); the trajectories share
    # one graph.
    if precision not in ('float32', 'mixed_bfloat16'):
      sys.exit('error: --trajectory_precisions takes float32 and '
               'mixed_bfloat16, not %r' % precision)
  print('load before: %s; loss trajectory, model-only graph, batch %d, %d '
        'steps, seed %d, train_ssd_network.py\'s optimizer and learning-rate '
        'flags%s' % (harness.load(), BENCH.trajectory_batch_size,
                     BENCH.trajectory_steps, BENCH.seed,
                     (' with ' + ' '.join(extra)) if extra else ''),
        flush=True)
  try:
    result = harness.spawn_once(dict(
        trajectory=True, data_dir=data_dir,
        precisions=BENCH.trajectory_precisions,
        batch=BENCH.trajectory_batch_size, steps=BENCH.trajectory_steps,
        seed=BENCH.seed, extra=extra), log_dir)
  except RuntimeError as error:
    sys.exit('FAILED %s' % error)
  report.print_trajectories(result['trajectories'],
                            BENCH.trajectory_precisions[0])
  print('peak RSS %.2f GiB; load after: %s' % (result['peak_rss'] / 2**30,
                                                harness.load()))


def main(argv):
  try:
    rest = BENCH(argv)
    if len(rest) > 1:
      raise flags.Error('unexpected arguments: %s' % ' '.join(rest[1:]))
    configs_from_flags()
  except (flags.Error, ValueError) as error:
    sys.exit('error: %s\nusage: see `%s --helpfull`' % (error, argv[0]))
  extra = BENCH.train_flags.split()
  with tempfile.TemporaryDirectory() as temp_dir:
    work_dir = BENCH.work_dir or temp_dir
    data_dir, source = prepare_data(work_dir)
    print('data: %s (%s)' % (source, data_dir))
    if BENCH.loss_trajectory:
      run_trajectory(data_dir, extra, temp_dir)
    else:
      run_matrix(data_dir, extra, temp_dir)


if __name__ == '__main__':
  if '--helpfull' in sys.argv[1:] or '--help' in sys.argv[1:]:
    print(__doc__)
    print(BENCH.get_help())
    sys.exit(0)
  main(sys.argv)
