"""tests/conftest.py's rule: a test that starts a Python process is marked slow."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT

_CASES = '''
import subprocess, sys
import pytest

def test_unmarked_starts_python():
  subprocess.run([sys.executable, '-c', 'pass'], check=True)

@pytest.mark.slow
def test_marked_starts_python():
  subprocess.run([sys.executable, '-c', 'pass'], check=True)

def test_unmarked_starts_no_python():
  subprocess.run(['true'], check=True)
'''


@pytest.mark.slow
def test_an_unmarked_test_that_starts_python_fails(tmp_path):
  shutil.copy(os.path.join(PROJECT_ROOT, 'tests', 'conftest.py'), tmp_path)
  shutil.copy(os.path.join(PROJECT_ROOT, 'pytest.ini'), tmp_path)
  (tmp_path / 'test_cases.py').write_text(_CASES)
  result = subprocess.run(
      [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-q',
       '--rootdir', str(tmp_path), str(tmp_path / 'test_cases.py')],
      cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
      env=dict(os.environ, PYTHONPATH=PROJECT_ROOT))
  assert 'test_unmarked_starts_python started 1 Python process' in (
      result.stdout), result.stdout
  assert '3 passed, 1 error' in result.stdout, result.stdout
  assert result.returncode != 0
