"""Tests of utils/common/platform_info.py on the three CPU kinds this project meets.

The /proc/cpuinfo texts are cut down from real machines of each kind (one
processor, the lines that matter).
"""
import pytest

from utils.common import platform_info

INTEL_AMX = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx fma avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8
"""
ZEN4_AVX512_BF16 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx fma avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vnni
"""
EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse2 avx fma avx2 bmi2 sha_ni
"""


@pytest.mark.parametrize('cpuinfo, model, flags', [
    (INTEL_AMX, 'Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz',
     ['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni',
      'avx512_bf16', 'amx_tile', 'amx_bf16']),
    (ZEN4_AVX512_BF16, 'AMD EPYC',
     ['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni',
      'avx512_bf16']),
    (EPYC_AVX2, 'AMD EPYC 7B12', ['avx2', 'fma']),
])
def test_cpu_description(cpuinfo, model, flags):
  assert platform_info.cpu_description(cpuinfo) == (model, flags)


def test_no_cpuinfo_still_names_a_cpu():
  model, flags = platform_info.cpu_description('')
  assert model and flags == []


@pytest.mark.parametrize('cpuinfo, expected', [
    (INTEL_AMX, 'mixed_bfloat16'),
    (ZEN4_AVX512_BF16, 'mixed_bfloat16'),
    (EPYC_AVX2, 'float32'),
])
def test_auto_precision_per_cpu_kind(cpuinfo, expected):
  flags = platform_info.cpu_description(cpuinfo)[1]
  precision, reason = platform_info.resolve_precision('auto', False, flags,
                                                      environ={})
  assert precision == expected
  assert reason.startswith('auto: no GPU')
  if expected == 'mixed_bfloat16':
    assert 'avx512_bf16' in reason


def test_auto_precision_is_float32_with_onednn_held_to_avx2():
  amx_flags = platform_info.cpu_description(INTEL_AMX)[1]
  precision, reason = platform_info.resolve_precision(
      'auto', False, amx_flags, environ={'ONEDNN_MAX_CPU_ISA': 'AVX2'})
  assert precision == 'float32' and 'ONEDNN_MAX_CPU_ISA=AVX2' in reason
  assert platform_info.resolve_precision(
      'mixed_bfloat16', False, amx_flags,
      environ={'ONEDNN_MAX_CPU_ISA': 'AVX2'})[0] == 'mixed_bfloat16'


def test_auto_is_float32_with_a_gpu_and_explicit_choices_stay():
  amx_flags = platform_info.cpu_description(INTEL_AMX)[1]
  assert platform_info.resolve_precision('auto', True, amx_flags)[0] == (
      'float32')
  for precision in platform_info.PRECISIONS:
    assert platform_info.resolve_precision(precision, True, [])[0] == (
        precision)
  with pytest.raises(ValueError, match='auto, float32'):
    platform_info.resolve_precision('bfloat16', False, [])


@pytest.mark.parametrize('cpuinfo, by_itself', [
    (INTEL_AMX, True), (ZEN4_AVX512_BF16, True), (EPYC_AVX2, False)])
def test_onednn_is_turned_on_for_x86_unless_set(cpuinfo, by_itself):
  flags = platform_info.cpu_description(cpuinfo)[1]
  environ = {}
  enabled, reason = platform_info.configure_onednn(environ, 'x86_64', flags)
  assert enabled and environ == {'TF_ENABLE_ONEDNN_OPTS': '1'}
  assert ('would turn it on by itself' in reason) == by_itself
  # The user's choice wins, either way.
  for value, expected in (('0', False), ('1', True)):
    environ = {'TF_ENABLE_ONEDNN_OPTS': value}
    enabled, reason = platform_info.configure_onednn(environ, 'x86_64', flags)
    assert enabled == expected and 'set by the user' in reason
    assert environ == {'TF_ENABLE_ONEDNN_OPTS': value}


def test_onednn_is_left_alone_off_x86():
  environ = {}
  enabled, reason = platform_info.configure_onednn(environ, 'aarch64', [])
  assert not enabled and environ == {} and 'not an x86 CPU' in reason


def test_startup_report_names_cpu_onednn_precision_and_layout():
  lines = platform_info.startup_report(
      (True, 'why oneDNN'), ('float32', 'why float32'), cpuinfo=EPYC_AVX2,
      data_format=('NCHW', 'why NCHW'))
  assert lines[0].startswith('CPU: AMD EPYC 7B12, ')
  assert lines[0].endswith('flags: avx2 fma')
  assert lines[1] == 'oneDNN: on (why oneDNN)'
  assert lines[2] == 'Precision: float32 (why float32)'
  assert lines[3] == 'Data format: NCHW (why NCHW)'
  assert len(platform_info.startup_report(
      (True, ''), ('float32', ''), cpuinfo=EPYC_AVX2)) == 3


@pytest.mark.parametrize('cpuinfo, expected', [
    (INTEL_AMX, 'NHWC'), (ZEN4_AVX512_BF16, 'NHWC'), (EPYC_AVX2, 'NCHW')])
def test_auto_layout_per_cpu_kind(cpuinfo, expected):
  """NCHW where oneDNN convolves with AVX2 kernels, NHWC on AVX-512."""
  flags = platform_info.cpu_description(cpuinfo)[1]
  data_format, reason = platform_info.resolve_data_format(
      'auto', False, True, 8, flags, environ={})
  assert data_format == expected
  assert reason.startswith('auto: ')
  assert ('no AVX-512' in reason) == (expected == 'NCHW')


def test_auto_layout_follows_onednn_held_to_avx2():
  zen4 = platform_info.cpu_description(ZEN4_AVX512_BF16)[1]
  for name in platform_info.ONEDNN_ISA_ENVS:
    for value in ('AVX2', 'avx2_vnni'):
      data_format, reason = platform_info.resolve_data_format(
          'auto', False, True, 8, zen4, environ={name: value})
      assert data_format == 'NCHW'
      assert '%s=%s' % (name, value) in reason
  # oneDNN reads ONEDNN_MAX_CPU_ISA first.
  assert platform_info.resolve_data_format(
      'auto', False, True, 8, zen4, environ={
          'ONEDNN_MAX_CPU_ISA': 'AVX512_CORE', 'DNNL_MAX_CPU_ISA': 'AVX2'}
  )[0] == 'NHWC'
  # Held below AVX2 (not measured): NHWC, saying why.
  data_format, reason = platform_info.resolve_data_format(
      'auto', False, True, 8, zen4, environ={'DNNL_MAX_CPU_ISA': 'AVX'})
  assert data_format == 'NHWC' and 'DNNL_MAX_CPU_ISA=AVX' in reason
  # Held at (or above) AVX-512: NHWC.
  assert platform_info.resolve_data_format(
      'auto', False, True, 8, zen4,
      environ={'ONEDNN_MAX_CPU_ISA': 'AVX512_CORE'})[0] == 'NHWC'


@pytest.mark.parametrize('flags', [[], ['fma'], ['avx512f']])
def test_auto_layout_is_nhwc_without_avx2_or_unread_flags(flags):
  data_format, reason = platform_info.resolve_data_format(
      'auto', False, True, 8, flags, environ={})
  assert data_format == 'NHWC' and 'neither AVX-512 nor AVX2' in reason


def test_auto_layout_is_nhwc_with_a_gpu_or_without_onednn():
  avx2 = platform_info.cpu_description(EPYC_AVX2)[1]
  assert platform_info.resolve_data_format(
      'auto', True, True, 8, avx2, environ={}) == ('NHWC',
                                                'auto: a GPU is visible')
  data_format, reason = platform_info.resolve_data_format(
      'auto', False, False, 8, avx2, environ={})
  assert data_format == 'NHWC' and 'oneDNN is off' in reason
  # A batch of 1 on NCHW meets oneDNN's reference convolution on AVX2.
  data_format, reason = platform_info.resolve_data_format(
      'auto', False, True, 1, avx2, environ={})
  assert data_format == 'NHWC' and 'not for a batch of 1' in reason


def test_explicit_layouts_stay_but_nchw_needs_onednn_or_a_gpu():
  avx2 = platform_info.cpu_description(EPYC_AVX2)[1]
  zen4 = platform_info.cpu_description(ZEN4_AVX512_BF16)[1]
  for data_format in platform_info.DATA_FORMATS:
    for flags in (avx2, zen4):
      assert platform_info.resolve_data_format(
          data_format, False, True, 8, flags, environ={}) == (
              data_format, 'asked for with --data_format')
  # Kept, but the log says that a batch of 1 on NCHW is slow with AVX2.
  data_format, reason = platform_info.resolve_data_format(
      'NCHW', False, True, 1, avx2, environ={})
  assert data_format == 'NCHW' and 'slow here' in reason
  assert platform_info.resolve_data_format(
      'NCHW', False, True, 1, zen4, environ={})[1] == (
          'asked for with --data_format')
  assert platform_info.resolve_data_format(
      'NCHW', True, False, 8, avx2, environ={})[0] == 'NCHW'
  assert platform_info.resolve_data_format(
      'NHWC', False, False, 8, avx2, environ={})[0] == 'NHWC'
  with pytest.raises(ValueError, match=r'--data_format=NCHW needs a GPU '
                     r'or oneDNN \(TF_ENABLE_ONEDNN_OPTS=1\)'):
    platform_info.resolve_data_format('NCHW', False, False, 8, avx2,
                                      environ={})
  with pytest.raises(ValueError, match='auto, NHWC, NCHW'):
    platform_info.resolve_data_format('NCWH', False, True, 8, avx2,
                                      environ={})
