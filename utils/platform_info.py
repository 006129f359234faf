"""What this machine's CPU can do, and the defaults that follow from it.

Bottom layer: imports nothing of the project and never TensorFlow, because
`configure_onednn` must run before TensorFlow is imported (TensorFlow reads
TF_ENABLE_ONEDNN_OPTS once, when it loads).

The CPU kinds this project runs on, as measured (2 cores, e2e training step
of SSD300 at batch 8):
  * Intel with AMX-BF16: oneDNN on by itself; bfloat16 2.5x float32;
  * AMD EPYC Zen 4 class, AVX512_BF16 (no AMX): oneDNN on by itself;
    float32 7.3 s/step, mixed_bfloat16 4.0 s/step (1.8x, quiet machine);
  * AMD EPYC with AVX2 + FMA only: oneDNN off by default and no faster
    when forced on (0.247 vs 0.246 images/s); bfloat16 no gain (TensorFlow's
    bfloat16 rewrite needs AVX512_BF16 or AMX).
"""
import os
import platform

# float32; bfloat16 compute through oneDNN's grappler rewrite (CPUs with
# AVX512-BF16/AMX); float16 compute through grappler's GPU rewrite with
# dynamic loss scaling.  Weights, optimizer state and losses stay float32.
PRECISIONS = ('float32', 'mixed_bfloat16', 'mixed_float16')
# What a user may ask for: 'auto' picks one of PRECISIONS (resolve_precision).
REQUESTED_PRECISIONS = ('auto',) + PRECISIONS

# The /proc/cpuinfo flags that decide oneDNN and the precision (in the order
# they are reported).
RELEVANT_CPU_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl',
                      'avx512_vnni', 'avx512_bf16', 'amx_tile', 'amx_bf16')
# Either one makes TensorFlow's bfloat16 rewrite fast.
BFLOAT16_CPU_FLAGS = ('amx_bf16', 'avx512_bf16')

ONEDNN_ENV = 'TF_ENABLE_ONEDNN_OPTS'
# TensorFlow turns oneDNN on by itself on x86 CPUs with one of these.
_ONEDNN_BY_DEFAULT_FLAGS = ('avx512_vnni', 'avx512_bf16', 'amx_tile')
_X86_MACHINES = ('x86_64', 'amd64', 'i386', 'i686')
_TRUE_VALUES = ('1', 'true', 'yes', 'on')


def read_cpuinfo(path='/proc/cpuinfo'):
  """The text of /proc/cpuinfo, or '' where there is none (not Linux)."""
  try:
    with open(path) as cpuinfo:
      return cpuinfo.read()
  except OSError:
    return ''


def cpu_description(cpuinfo=None):
  """(CPU model name, the relevant flags it has) from /proc/cpuinfo.

  Args:
    cpuinfo: the text of /proc/cpuinfo; default: read it.

  Returns:
    (model_name, flags): the first processor's model name (the platform's
    processor name when /proc/cpuinfo has none) and the RELEVANT_CPU_FLAGS
    present, in that order.
  """
  if cpuinfo is None:
    cpuinfo = read_cpuinfo()
  model_name, cpu_flags = None, set()
  for line in cpuinfo.splitlines():
    key, _, value = line.partition(':')
    key = key.strip()
    if key == 'model name' and model_name is None:
      model_name = value.strip()
    elif key == 'flags' and not cpu_flags:
      cpu_flags = set(value.split())
  model_name = model_name or platform.processor() or 'unknown CPU'
  return model_name, [flag for flag in RELEVANT_CPU_FLAGS
                      if flag in cpu_flags]


def is_x86(machine=None):
  """Whether the machine (default: this one) is x86."""
  return (machine or platform.machine()).lower() in _X86_MACHINES


def configure_onednn(environ=None, machine=None, cpu_flags=None):
  """Turns TensorFlow's oneDNN optimisations on for x86, unless set already.

  Call before TensorFlow is imported.  TensorFlow 2.21 turns oneDNN on by
  itself on CPUs with AVX512_VNNI/AVX512_BF16/AMX; on AVX2-only CPUs it
  leaves it off (forcing it on there measured neither faster nor slower,
  so one setting serves every x86 kind).  A value the user set wins.

  Args:
    environ: the environment to read and change; default os.environ.
    machine: platform.machine() value; default this machine's.
    cpu_flags: the CPU's relevant flags; default: this machine's.

  Returns:
    (enabled, reason): whether oneDNN will be on, and why, for the log.
  """
  environ = os.environ if environ is None else environ
  value = environ.get(ONEDNN_ENV)
  if value is not None:
    enabled = value.strip().lower() in _TRUE_VALUES
    return enabled, '%s=%s set by the user' % (ONEDNN_ENV, value)
  if not is_x86(machine):
    return False, ('not an x86 CPU (%s): TensorFlow\'s own default' %
                   (machine or platform.machine()))
  environ[ONEDNN_ENV] = '1'
  if cpu_flags is None:
    cpu_flags = cpu_description()[1]
  own_default = [flag for flag in _ONEDNN_BY_DEFAULT_FLAGS
                 if flag in cpu_flags]
  if own_default:
    why = 'TensorFlow would turn it on by itself here, for %s' % '+'.join(
        own_default)
  else:
    why = ('TensorFlow leaves it off on CPUs without AVX512_VNNI, '
           'AVX512_BF16 or AMX; measured on AVX2-only EPYC: no slower')
  return True, '%s=1 set for this x86 CPU: %s' % (ONEDNN_ENV, why)


def resolve_precision(requested, gpu_available, cpu_flags=None):
  """The compute precision to train with, and why.

  'auto' is mixed_bfloat16 on a CPU with AMX or AVX512_BF16 when no GPU is
  visible, float32 elsewhere (mixed_float16 on GPUs stays opt-in: it needs
  loss scaling and may need tuning).  An explicit precision is kept.

  Args:
    requested: one of REQUESTED_PRECISIONS.
    gpu_available: whether TensorFlow sees a GPU.
    cpu_flags: the CPU's relevant flags; default: this machine's.

  Returns:
    (precision, reason): precision is one of PRECISIONS.

  Raises:
    ValueError: for an unknown precision.
  """
  if requested not in REQUESTED_PRECISIONS:
    raise ValueError('Unknown precision %r; valid: %s.' %
                     (requested, ', '.join(REQUESTED_PRECISIONS)))
  if requested != 'auto':
    return requested, 'asked for with --precision'
  if gpu_available:
    return 'float32', ('auto: a GPU is visible (mixed_float16 is opt-in: '
                       '--precision mixed_float16)')
  if cpu_flags is None:
    cpu_flags = cpu_description()[1]
  bfloat16_flags = [flag for flag in BFLOAT16_CPU_FLAGS if flag in cpu_flags]
  if bfloat16_flags:
    return 'mixed_bfloat16', ('auto: no GPU, and the CPU has %s (fast '
                              'bfloat16)' % '+'.join(bfloat16_flags))
  return 'float32', ('auto: no GPU, and the CPU has neither AMX-BF16 nor '
                     'AVX512_BF16 (bfloat16 would be no faster)')


def startup_report(onednn, precision, cpuinfo=None):
  """The lines the training log starts with: CPU, oneDNN, precision, why.

  Args:
    onednn: configure_onednn's (enabled, reason).
    precision: resolve_precision's (precision, reason).
    cpuinfo: the text of /proc/cpuinfo; default: read it.
  """
  model_name, cpu_flags = cpu_description(cpuinfo)
  return ['CPU: %s, %d logical cores; flags: %s' % (
              model_name, os.cpu_count() or 0, ' '.join(cpu_flags) or 'none'),
          'oneDNN: %s (%s)' % ('on' if onednn[0] else 'off', onednn[1]),
          'Precision: %s (%s)' % precision]
