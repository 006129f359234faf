"""The repository as a fresh clone sees it: nothing machine-specific tracked,
and CI runs the README's two commands exactly as printed."""
import os
import re
import subprocess

import pytest

from conftest import PROJECT_ROOT


def _git(*args):
  return subprocess.run(['git', '-C', PROJECT_ROOT] + list(args),
                        capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope='module')
def tracked_files():
  try:
    files = _git('ls-files', '-s', '-z')
  except (OSError, subprocess.CalledProcessError):
    pytest.skip('not a git checkout (git ls-files failed)')
  entries = [entry.split('\t', 1) for entry in files.split('\0') if entry]
  return [(meta.split()[0], path) for meta, path in entries]


def test_no_tracked_file_is_a_symbolic_link(tracked_files):
  links = [path for mode, path in tracked_files if mode == '120000']
  assert not links, 'tracked symbolic links (machine-specific): %s' % links


def test_no_tracked_file_is_ignored(tracked_files):
  ignored = _git('ls-files', '--cached', '--ignored', '--exclude-standard')
  assert not ignored.split(), 'tracked files that .gitignore matches: %s' % ignored


def test_gitignore_matches_a_virtualenv_folder_and_a_link(tmp_path):
  for name in ('.venv', '.venv/bin/python'):
    done = subprocess.run(['git', '-C', PROJECT_ROOT, 'check-ignore', '-q',
                           '--no-index', name], check=False)
    assert done.returncode == 0, '%s is not ignored' % name


def test_no_tracked_text_holds_an_absolute_path_of_this_machine(tracked_files):
  home = os.path.abspath(PROJECT_ROOT)
  offenders = []
  for _, path in tracked_files:
    full = os.path.join(PROJECT_ROOT, path)
    if not os.path.isfile(full) or os.path.getsize(full) > 1 << 20:
      continue
    with open(full, 'rb') as source:
      if home.encode() in source.read():
        offenders.append(path)
  assert not offenders, 'files naming %s: %s' % (home, offenders)


def _readme_commands():
  with open(os.path.join(PROJECT_ROOT, 'README.md')) as readme:
    return [line.strip() for line in readme
            if line.startswith('python3 -m venv .venv')]


def test_ci_runs_the_readme_commands_exactly_and_nothing_before_them():
  readme = _readme_commands()
  assert len(readme) == 2, readme
  with open(os.path.join(PROJECT_ROOT, '.ci', 'run')) as script:
    lines = [line.strip() for line in script
             if line.strip() and not line.lstrip().startswith('#')]
  commands = [line for line in lines if line.startswith('python3 -m venv')]
  assert commands == readme
  first = lines.index(commands[0])
  # Before the first command only shell settings: nothing that repairs the tree.
  for line in lines[:first]:
    assert re.match(r'^(set -[a-z]+( [a-z]+)?|set [+-]x|cd "\$\(dirname "\$0"\)/\.\."|'
                    r'#!.*)$', line), line


def test_the_project_paths_point_into_this_checkout():
  from utils.common import paths  # pylint: disable=g-import-not-at-top
  assert os.path.samefile(paths.PROJECT_ROOT, PROJECT_ROOT)
  assert os.path.isfile(os.path.join(paths.PROJECT_ROOT,
                                     'train_ssd_network.py'))
  assert paths.FINE_TUNING_DIR == os.path.join(PROJECT_ROOT, 'ckpt',
                                               'fine_tuning')
