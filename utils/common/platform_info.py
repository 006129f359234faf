"""What this machine's CPU can do, and the defaults that follow from it.

Bottom layer: imports nothing of the project and never TensorFlow, because
`configure_onednn` must run before TensorFlow is imported (TensorFlow reads
TF_ENABLE_ONEDNN_OPTS once, when it loads).

The CPU kinds this project runs on, and why each default (the measured
figures are in bench/README.md):
  * Intel with AMX-BF16 and AMD Zen 4 class with AVX512_BF16: TensorFlow turns
    oneDNN on by itself, and its bfloat16 rewrite makes mixed_bfloat16 the
    faster precision;
  * AMD with AVX2 + FMA only: oneDNN is off by default and no faster when
    forced on; bfloat16 brings nothing (the rewrite needs AVX512_BF16 or AMX);
    oneDNN's AVX2 convolutions of NHWC tensors are slower than its NCHW path,
    so NCHW is the default layout there.
"""
import functools
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

# The layouts of the network's activations; 'auto' picks one
# (resolve_data_format).
DATA_FORMATS = ('NHWC', 'NCHW')
REQUESTED_DATA_FORMATS = ('auto',) + DATA_FORMATS
# oneDNN's avx512_core kernels (AVX-512 F + BW + VL) convolve NHWC tensors
# directly; below them, its NHWC kernels are slower than its NCHW path.
_AVX512_CORE_FLAGS = ('avx512f', 'avx512bw', 'avx512vl')
# Environment variables that hold oneDNN to an instruction set (oneDNN
# reads the first one set), and their values below AVX-512: the AVX2 ones,
# then the older ones.
ONEDNN_ISA_ENVS = ('ONEDNN_MAX_CPU_ISA', 'DNNL_MAX_CPU_ISA')
_AVX2_ISAS = ('avx2', 'avx2_vnni', 'avx2_vnni_2')
_BELOW_AVX2_ISAS = ('sse41', 'avx')

ONEDNN_ENV = 'TF_ENABLE_ONEDNN_OPTS'
# TensorFlow turns oneDNN on by itself on x86 CPUs with one of these.
_ONEDNN_BY_DEFAULT_FLAGS = ('avx512_vnni', 'avx512_bf16', 'amx_tile')
_X86_MACHINES = ('x86_64', 'amd64', 'i386', 'i686')
_TRUE_VALUES = ('1', 'true', 'yes', 'on')


@functools.lru_cache(maxsize=None)
def read_cpuinfo(path='/proc/cpuinfo'):
  """The text of /proc/cpuinfo, or '' where there is none (not Linux).

  Read once per process: every start-up decision (oneDNN, precision, layout,
  the report) asks for it, and the CPU does not change while a process runs.
  """
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


def resolve_precision(requested, gpu_available, cpu_flags=None,
                      environ=None):
  """The compute precision to train with, and why.

  'auto' is mixed_bfloat16 on a CPU with AMX or AVX512_BF16 when no GPU is
  visible and oneDNN is not held below AVX-512 (ONEDNN_MAX_CPU_ISA), float32
  elsewhere (mixed_float16 on GPUs stays opt-in: it needs
  loss scaling and may need tuning).  An explicit precision is kept.

  Args:
    requested: one of REQUESTED_PRECISIONS.
    gpu_available: whether TensorFlow sees a GPU.
    cpu_flags: the CPU's relevant flags; default: this machine's.
    environ: the environment (ONEDNN_MAX_CPU_ISA below AVX-512 makes auto
      float32); default os.environ.

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
  cap = onednn_isa_cap(environ)
  if cap:
    return 'float32', ('auto: no GPU, and oneDNN is held below AVX-512 '
                       '(%s; bfloat16 would be no faster)' % cap[0])
  if cpu_flags is None:
    cpu_flags = cpu_description()[1]
  bfloat16_flags = [flag for flag in BFLOAT16_CPU_FLAGS if flag in cpu_flags]
  if bfloat16_flags:
    return 'mixed_bfloat16', ('auto: no GPU, and the CPU has %s (fast '
                              'bfloat16)' % '+'.join(bfloat16_flags))
  return 'float32', ('auto: no GPU, and the CPU has neither AMX-BF16 nor '
                     'AVX512_BF16 (bfloat16 would be no faster)')


def onednn_isa_cap(environ=None):
  """How oneDNN is held below AVX-512: (setting, is_avx2), or None.

  setting is the 'NAME=value' that holds it; is_avx2 whether the value is
  one of the AVX2 instruction sets (or an older one).  oneDNN reads the
  first of ONEDNN_ISA_ENVS that is set.
  """
  environ = os.environ if environ is None else environ
  for name in ONEDNN_ISA_ENVS:
    if name in environ:
      value = environ[name].strip().lower()
      if value in _AVX2_ISAS + _BELOW_AVX2_ISAS:
        return '%s=%s' % (name, environ[name]), value in _AVX2_ISAS
      return None
  return None


def resolve_data_format(requested, gpu_available, onednn_enabled,
                        batch_size, cpu_flags=None, environ=None):
  """The layout of the network's activations to train with, and why.

  'auto' is NCHW where oneDNN convolves with AVX2 kernels (oneDNN on, and a
  CPU with AVX2 but not AVX-512 or oneDNN held to AVX2 by
  ONEDNN_MAX_CPU_ISA), no GPU is visible and a clone's batch holds 2
  images or more: there oneDNN's
  NHWC kernels are slower than its NCHW path (im2col and its GEMM), but for
  a batch of 1 it falls back to its naive reference convolution on NCHW
  (tens of seconds a layer).  NHWC elsewhere: oneDNN's AVX-512 kernels take
  NHWC directly (NCHW is slower there, bench/README.md), and GPUs keep the layout they
  had.  An explicit layout is kept, but NCHW on a CPU needs oneDNN
  (TensorFlow's own CPU convolution is NHWC only).

  Args:
    requested: one of REQUESTED_DATA_FORMATS.
    gpu_available: whether TensorFlow sees a GPU.
    onednn_enabled: configure_onednn's verdict.
    batch_size: images per clone per step.
    cpu_flags: the CPU's relevant flags; default: this machine's.
    environ: the environment (ONEDNN_MAX_CPU_ISA); default os.environ.

  Returns:
    (data_format, reason): data_format is one of DATA_FORMATS.

  Raises:
    ValueError: for an unknown layout, or NCHW on a CPU without oneDNN.
  """
  if requested not in REQUESTED_DATA_FORMATS:
    raise ValueError('Unknown --data_format %r; valid: %s.' %
                     (requested, ', '.join(REQUESTED_DATA_FORMATS)))
  if requested == 'NCHW' and not (gpu_available or onednn_enabled):
    raise ValueError('--data_format=NCHW needs a GPU or oneDNN (%s=1): '
                     'TensorFlow\'s own CPU convolution takes NHWC only; '
                     'use --data_format=auto or NHWC.' % ONEDNN_ENV)
  kernels = why = None
  if onednn_enabled and not gpu_available:
    kernels, why = onednn_convolution_kernels(cpu_flags, environ)
  if requested != 'auto':
    if requested == 'NCHW' and kernels == 'avx2' and batch_size < 2:
      return requested, ('asked for with --data_format; slow here: for a '
                         'batch of 1, oneDNN\'s AVX2 path convolves NCHW '
                         'with its reference kernel')
    return requested, 'asked for with --data_format'
  if gpu_available:
    return 'NHWC', 'auto: a GPU is visible'
  if not onednn_enabled:
    return 'NHWC', 'auto: oneDNN is off (TensorFlow\'s own convolution)'
  if kernels == 'avx512':
    return 'NHWC', ('auto: oneDNN\'s AVX-512 convolutions take NHWC '
                    'directly')
  if kernels == 'older':
    return 'NHWC', ('auto: oneDNN has neither AVX-512 nor AVX2 here (%s; '
                    'NCHW was measured with AVX2 only)' % why)
  if batch_size < 2:
    return 'NHWC', ('auto: oneDNN convolves with AVX2 kernels here (%s); '
                    'NCHW would be faster, but not for a batch of 1' % why)
  return 'NCHW', ('auto: oneDNN convolves with AVX2 kernels here (%s), '
                  'faster on NCHW' % why)


def onednn_convolution_kernels(cpu_flags=None, environ=None):
  """The instruction set of oneDNN's convolutions here, and why.

  Returns:
    (kernels, why): kernels is 'avx512', 'avx2' or 'older'; why names the
    ISA cap or the CPU flags that decide it.
  """
  cap = onednn_isa_cap(environ)
  if cap:
    return ('avx2' if cap[1] else 'older'), cap[0]
  if cpu_flags is None:
    cpu_flags = cpu_description()[1]
  if all(flag in cpu_flags for flag in _AVX512_CORE_FLAGS):
    return 'avx512', 'AVX-512'
  if 'avx2' in cpu_flags:
    return 'avx2', 'no AVX-512'
  return 'older', 'CPU flags: %s' % (' '.join(cpu_flags) or 'none')


def startup_report(onednn, precision, cpuinfo=None, data_format=None):
  """The lines the training log starts with: CPU, oneDNN, precision,
  layout, and why.

  Args:
    onednn: configure_onednn's (enabled, reason).
    precision: resolve_precision's (precision, reason).
    cpuinfo: the text of /proc/cpuinfo; default: read it.
    data_format: resolve_data_format's (data_format, reason), if resolved.
  """
  model_name, cpu_flags = cpu_description(cpuinfo)
  lines = ['CPU: %s, %d logical cores; flags: %s' % (
               model_name, os.cpu_count() or 0, ' '.join(cpu_flags) or 'none'),
           'oneDNN: %s (%s)' % ('on' if onednn[0] else 'off', onednn[1]),
           'Precision: %s (%s)' % precision]
  if data_format is not None:
    lines.append('Data format: %s (%s)' % data_format)
  return lines
