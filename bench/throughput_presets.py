"""bench/train_throughput.py's configurations: syntax, presets, targets.

A configuration is MODE:PRECISION:CLONES:BATCH[:VARIANT] (batch per clone,
as train_ssd_network.py's --batch_size); VARIANT holds +-separated
environment assignments and train_ssd_network.py flags for that
configuration alone.
"""
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from utils.common import platform_info
# pylint: enable=g-import-not-at-top,wrong-import-position

MODES = ('e2e', 'model')
PRECISIONS = platform_info.PRECISIONS

# Presets.  Configurations compared with each other sit next to each other,
# so that they land in the same group (see --max_memory_gib).
QUICK_CONFIGS = ['e2e:float32:1:8', 'model:float32:1:8', 'e2e:float32:2:4',
                 'e2e:mixed_bfloat16:1:8', 'model:mixed_bfloat16:1:8']
FULL_CONFIGS = QUICK_CONFIGS + [
    'e2e:mixed_bfloat16:2:4', 'e2e:float32:1:4', 'model:float32:1:4',
    'e2e:float32:1:1', 'model:float32:1:1', 'e2e:float32:2:1',
    'e2e:float32:2:8']

# The targets: (comparison, the configurations it applies to, minimum ratio).
# Comparisons (throughput_report.COMPARISONS): 'e2e/model' (the input
# pipeline's cost), 'clones' (N clones x b against 1 clone x N*b),
# 'precision' (a precision against float32 at the same configuration).
Target = collections.namedtuple('Target', ['comparison', 'where', 'minimum'])
TARGETS = (
    Target('e2e/model', dict(clones=1, batch=8), 0.95),
    Target('clones', dict(clones=2, batch=4), 0.9),
    Target('precision', dict(precision='mixed_bfloat16'), 2.0),
)


def parse_config(text):
  """'MODE:PRECISION:CLONES:BATCH[:VARIANT]' -> dict.

  Raises:
    ValueError: for a malformed configuration.
  """
  parts = text.strip().split(':', 4)
  try:
    mode, precision, clones, batch = parts[:4]
    clones, batch = int(clones), int(batch)
  except ValueError:
    raise ValueError('configuration %r is not MODE:PRECISION:CLONES:BATCH'
                     '[:VARIANT]' % text) from None
  if mode not in MODES or precision not in PRECISIONS or clones < 1 or (
      batch < 1):
    raise ValueError('bad configuration %r (modes %s, precisions %s)' %
                     (text, '/'.join(MODES), '/'.join(PRECISIONS)))
  variant = parts[4] if len(parts) > 4 else ''
  env, train_flags = {}, []
  for item in filter(None, variant.split('+')):
    if item.startswith('--'):
      train_flags.append(item)
    elif '=' in item:
      name, value = item.split('=', 1)
      env[name] = value
    else:
      raise ValueError('configuration %r: %r is neither --flag=value nor '
                       'VAR=value' % (text, item))
  return dict(mode=mode, precision=precision, clones=clones, batch=batch,
              variant=variant, env=env, flags=train_flags)


def config_name(config):
  name = 'mode=%s precision=%s clones=%d batch=%d' % (
      config['mode'], config['precision'], config['clones'], config['batch'])
  if config['variant']:
    name += ' variant=' + config['variant']
  return name


def config_key(config):
  """(mode, precision, clones, batch, variant): a configuration's identity."""
  return (config['mode'], config['precision'], config['clones'],
          config['batch'], config['variant'])


def estimated_rss_gib(config):
  """Peak RSS guess (measured float32: 1.4 GiB at 1 image/step, 2.6-2.7 at
  8; bfloat16 2.2 at 8; a second clone adds about 0.2)."""
  images = config['clones'] * config['batch']
  extra_clones = 0.2 * (config['clones'] - 1)
  if config['precision'] == 'mixed_bfloat16':
    return 1.4 + 0.1 * images + extra_clones
  return 1.2 + 0.19 * images + extra_clones


def target_of(comparison, key):
  """The minimum ratio TARGETS sets for `comparison` at `key`, or None."""
  fields = dict(zip(('mode', 'precision', 'clones', 'batch', 'variant'), key))
  for target in TARGETS:
    if target.comparison == comparison and all(
        fields[name] == value for name, value in target.where.items()):
      return target.minimum
  return None
