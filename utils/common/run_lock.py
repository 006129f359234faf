"""An exclusive lock on a directory's output, held for a run's life.

Two trainings in one --train_dir, or two conversions to one output name,
would overwrite each other's files.  `hold` takes an exclusive `flock` on a
lock file and writes the holder's pid and host into it, so that a second
run is refused with one line naming the holder; the holder removes the file
when it is done.  The kernel releases a flock when its process ends, however
it ends: a lock file left by a killed run is not held, and the next run
takes it.  On NFS, Linux maps flock onto
the server's byte-range locks, so runs on two machines exclude each other
too.

Standard library only: the converters (datasets/) and the training library
both use it.
"""
import contextlib
import errno
import fcntl
import os
import socket


class LockHeld(RuntimeError):
  """Another process holds the lock; the message names it (pid, host)."""


def _holder(fd):
  """'pid 123 on host h' as the holder wrote it, or what is known."""
  os.lseek(fd, 0, os.SEEK_SET)
  fields = os.read(fd, 1024).decode('utf-8', 'replace').split()
  if len(fields) < 2:
    return 'a process that has not written its pid yet'
  return 'pid %s on host %s' % (fields[0], fields[1])


def _write_holder(fd):
  os.ftruncate(fd, 0)
  os.lseek(fd, 0, os.SEEK_SET)
  os.write(fd, ('%d %s\n' % (os.getpid(), socket.gethostname())).encode())


def _same_file(fd, path):
  try:
    return os.path.samestat(os.fstat(fd), os.stat(path))
  except FileNotFoundError:
    return False


def _lock(lock_path, what):
  """An open descriptor of `lock_path`, flocked; LockHeld if it is held.

  A holder removes the file when it releases it: a lock taken on a file
  removed in between is given up and taken again on the new file.
  """
  while True:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
      holder = _holder(fd)
      os.close(fd)
      if error.errno not in (errno.EAGAIN, errno.EACCES):
        raise
      raise LockHeld('%s is in use by another run: %s (lock file %s); wait '
                     'for it to finish or stop it' % (
                         what, holder, lock_path)) from None
    if _same_file(fd, lock_path):
      return fd
    os.close(fd)


@contextlib.contextmanager
def hold(lock_path, what):
  """Holds an exclusive lock on `lock_path` for the `with` block.

  The file is created, holds '<pid> <host>' while held, and is removed at
  the end of the block (a killed holder leaves it, unheld).

  Args:
    lock_path: the lock file; its folder must exist.
    what: what the lock guards, for the message (e.g. '--train_dir ckpt/x').

  Raises:
    LockHeld: another process holds it, naming its pid and host.
  """
  fd = _lock(lock_path, what)
  try:
    _write_holder(fd)
    yield
  finally:
    try:
      os.remove(lock_path)
    except OSError:
      pass  # Left in place, unheld: harmless.
    os.close(fd)
