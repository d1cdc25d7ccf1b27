"""The lock a run's training holds, which tells a run being trained from one whose process died.

While a process trains a run, it holds an exclusive `flock` on the run folder's
`training.lock` (`held`). The kernel lets go of it when that process ends,
however it ends (SIGKILL, a power cut of a container, an out-of-memory kill),
so the lock cannot outlive the training. A recorded process number can: the
system gives the number to the next program, and in a restarted container
PID 1 is the new command itself. So:

  * `digits train --resume` takes the lock first, and a run another process
    trains is refused (`held` raises what `busy` makes);
  * `digits runs` shows a run recorded as running as "killed" when nobody
    holds its lock (`training_now`).

A run folder written before the lock existed has no lock file; for it, the
recorded process number is all there is (`training_now` falls back to it).
The lock file is opened without following a link (a run folder may come from
someone else) and must be a regular file. Processes the training starts do
not inherit it: the descriptor is closed on exec, and the plotter and the
data workers are started by exec (`subprocess`, multiprocessing's forkserver).
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from digits.errors import RunError

_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a planted FIFO must not hang the open


@contextmanager
def held(path: Path, busy: Callable[[], Exception]) -> Iterator[None]:
    """Hold the lock at `path` (created if missing) for the block; raise `busy()` if another process holds it."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | _OPEN_FLAGS, 0o644)
    except OSError as err:
        raise RunError(
            f"{path}: cannot open the run's training lock ({err.strerror}); "
            "remove it if it is not a file digits made, and check that the run folder is writable."
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise RunError(f"{path}: not a regular file, so it cannot be the run's training lock; remove it.")
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy() from None
        yield
    finally:
        os.close(descriptor)  # and with it the lock


def training_now(path: Path, pid: int | None) -> bool:
    """Whether a process holds the lock at `path`; for a run folder without one, whether process `pid` lives."""
    try:
        descriptor = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    except OSError:
        return _alive(pid)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return _alive(pid)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False
    finally:
        os.close(descriptor)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    return True
