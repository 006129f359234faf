"""utils/common/run_lock.py: one holder at a time, named; a killed holder's lock
is free."""
import os
import signal
import socket
import subprocess
import sys

import pytest

from utils.common import run_lock

from conftest import PROJECT_ROOT

# Takes the lock, says so, then waits to be killed.
_HOLDER = '''
import sys, time
from utils.common import run_lock
with run_lock.hold(sys.argv[1], 'the folder'):
  print('held', flush=True)
  time.sleep(600)
'''


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
  lock_path = str(tmp_path / '.lock')
  with run_lock.hold(lock_path, 'the folder'):
    with pytest.raises(run_lock.LockHeld) as refused:
      with run_lock.hold(lock_path, 'the folder'):
        pass
  assert str(refused.value) == (
      'the folder is in use by another run: pid %d on host %s (lock file '
      '%s); wait for it to finish or stop it' % (
          os.getpid(), socket.gethostname(), lock_path))
  # Released, and removed, at the end of the block.
  assert not os.path.exists(lock_path)
  with run_lock.hold(lock_path, 'the folder'):
    pass


@pytest.mark.slow
def test_the_lock_of_a_killed_process_is_free(tmp_path):
  lock_path = str(tmp_path / '.lock')
  holder = subprocess.Popen([sys.executable, '-c', _HOLDER, lock_path],
                            stdout=subprocess.PIPE, text=True,
                            cwd=PROJECT_ROOT)
  try:
    assert holder.stdout.readline() == 'held\n'
    with pytest.raises(run_lock.LockHeld, match='pid %d on host' %
                       holder.pid):
      with run_lock.hold(lock_path, 'the folder'):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
  # Its pid is still written in the file, but nobody holds it.
  assert open(lock_path).read().split()[0] == str(holder.pid)
  with run_lock.hold(lock_path, 'the folder'):
    assert open(lock_path).read().split()[0] == str(os.getpid())
  assert not os.path.exists(lock_path)
