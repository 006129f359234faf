"""Tests of utils/platform_info.py on the three CPU kinds this project meets.

The /proc/cpuinfo texts are cut down from real machines of each kind (one
processor, the lines that matter).
"""
import pytest

from utils import platform_info

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
  precision, reason = platform_info.resolve_precision('auto', False, flags)
  assert precision == expected
  assert reason.startswith('auto: no GPU')
  if expected == 'mixed_bfloat16':
    assert 'avx512_bf16' in reason


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


def test_startup_report_names_cpu_onednn_and_precision():
  lines = platform_info.startup_report(
      (True, 'why oneDNN'), ('float32', 'why float32'), cpuinfo=EPYC_AVX2)
  assert lines[0].startswith('CPU: AMD EPYC 7B12, ')
  assert lines[0].endswith('flags: avx2 fma')
  assert lines[1] == 'oneDNN: on (why oneDNN)'
  assert lines[2] == 'Precision: float32 (why float32)'
