"""bench/train_throughput.py's report: result lines, ratios against the
targets (throughput_presets.TARGETS), the markdown table, trajectories."""
import statistics

import throughput_presets as presets


def _reference_keys(key):
  """[(comparison, description, reference key)] `key` is compared with."""
  mode, precision, clones, batch, variant = key
  suffix = (' variant=' + variant) if variant else ''
  references = []
  if mode == 'e2e':
    references.append((
        'e2e/model', 'ratio e2e/model precision=%s clones=%d batch=%d%s' % (
            precision, clones, batch, suffix),
        ('model', precision, clones, batch, variant)))
  if clones > 1:
    references.append((
        'clones', 'ratio %d clones x %d / 1 clone x %d mode=%s precision=%s%s'
        % (clones, batch, clones * batch, mode, precision, suffix),
        (mode, precision, 1, clones * batch, variant)))
  if precision != 'float32':
    references.append((
        'precision', 'speed-up %s/float32 mode=%s clones=%d batch=%d%s' % (
            precision, mode, clones, batch, suffix),
        (mode, 'float32', clones, batch, variant)))
  return references


def ratio_lines(results):
  """Lines comparing the configurations present in `results`.

  Args:
    results: {config key: dict(config=..., images_s=..., group=...)}.
  """
  rate = {key: value['images_s'] for key, value in results.items()
          if 'images_s' in value}
  group = {key: value['group'] for key, value in results.items()}

  def line(text, a, b, minimum):
    note = '' if group[a] == group[b] else ' [different groups]'
    target = '' if minimum is None else ' (target >= %g)' % minimum
    return '%s: %.3f%s%s' % (text, rate[a] / rate[b], target, note)

  lines = []
  for key in sorted(rate):
    for comparison, text, reference in _reference_keys(key):
      if reference in rate:
        lines.append(line(text, key, reference,
                          presets.target_of(comparison, key)))
  # Variants against the same configuration without one.
  for key in sorted(rate):
    base = key[:4] + ('',)
    if key[4] and base in rate:
      lines.append(line('variant %s / none, %s' % (
          key[4], presets.config_name(results[base]['config'])), key, base,
                        None))
  return lines


def _warmup_text(entry):
  return '+'.join('%.0f' % t for t in entry['warmup_s']) or '0'


def print_results(configs, results):
  """Prints a line per configuration, the ratios and the markdown table.

  Sets results[key]['images_s'] (the median step's rate) on the way.
  """
  print('results (median of the measured steps; CPU: CPU seconds of the '
        'process per step, all threads):')
  rows = []
  for config in configs:
    entry = results[presets.config_key(config)]
    if not entry['steps']:
      print('%s: FAILED %s' % (presets.config_name(config),
                               entry.get('error', '')))
      continue
    peak_rss = entry.get('peak_rss', float('nan')) / 2**30
    walls = [step['wall'] for step in entry['steps']]
    step = statistics.median(walls)
    cpu = statistics.median(s['cpu'] for s in entry['steps'])
    entry['images_s'] = entry['images_per_step'] / step
    line = ('%s (%d images/step): %.3f images/s, %.2f s/step (median of %d;'
            ' min %.2f, max %.2f), CPU %.1f s/step, peak RSS %.2f GiB, '
            'build %.0f s, warm-up %s s, group %d' % (
                presets.config_name(config), entry['images_per_step'],
                entry['images_s'], step, len(walls), min(walls), max(walls),
                cpu, peak_rss, entry['build_s'], _warmup_text(entry),
                entry['group']))
    if 'summary_s' in entry:
      line += ', summary op %.1f s (forward pass alone %.1f s)' % (
          entry['summary_s'], entry['forward_s'])
    print(line)
    rows.append('| %s | %s | %d | %d | %s | %.3f | %.2f (%.2f-%.2f) | %.1f | '
                '%.2f | %d |' % (
                    config['mode'], config['precision'], config['clones'],
                    config['batch'], config['variant'] or '-',
                    entry['images_s'], step, min(walls), max(walls), cpu,
                    peak_rss, entry['group']))
  ratios = ratio_lines(results)
  for line in ratios:
    print(line)
  return rows


def print_table(rows):
  print()
  print('| mode | precision | clones | batch/clone | variant | images/s | '
        's/step (min-max) | CPU s/step | peak RSS GiB | group |')
  print('|---|---|---|---|---|---|---|---|---|---|')
  for row in rows:
    print(row)


def print_trajectories(trajectories, reference_name):
  """The loss per step per precision, and each one's distance to the first."""
  reference = trajectories[reference_name]
  for precision, losses in trajectories.items():
    print('%s: %s' % (precision, ' '.join('%.4f' % x for x in losses)))
  for precision, losses in trajectories.items():
    if precision == reference_name:
      continue
    relative = [abs(a - b) / abs(b) for a, b in zip(losses, reference)]
    print('max relative difference %s vs %s: %.4f (at step %d); final '
          'losses %.4f vs %.4f; first %.4f vs %.4f' % (
              precision, reference_name, max(relative),
              relative.index(max(relative)) + 1, losses[-1], reference[-1],
              losses[0], reference[0]))
