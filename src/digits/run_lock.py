"""The lock a run's training holds, which tells a run being trained from one whose process died.

While a process trains a run, it holds an exclusive `flock` on the run folder
itself (`held`). The kernel lets go of it when that process ends, however it
ends (SIGKILL, an out-of-memory kill, a container stopped), so the lock cannot
outlive the training. A recorded process number can: the system gives the
number to the next program, and in a restarted container PID 1 is the new
command itself. So:

  * `digits train --resume` takes the lock first, and a run another process
    trains is refused (`held`);
  * `digits runs` shows a run recorded as running as "killed" when nobody
    holds its lock (`training_now`).

The folder, not a file in it, is locked: a lock file could be deleted or
replaced while the run trains (a cleanup, a restore that renames files in),
letting a second trainer in, and a planted link, FIFO or device could stand
in its place. A folder cannot be removed while it holds the run's files, and
a link to one (`runs/latest`) locks the folder it names.

Where the file system has no locks (some FUSE mounts answer ENOLCK or
EOPNOTSUPP), the recorded process number is all there is: a resume is refused
while it names another live process, and `training_now` asks whether it
lives. On NFS a folder's lock holds on one machine only: two machines sharing
a folder of runs can each resume the same run. A run an older digits trains
holds no lock, so `digits runs` shows it as killed: stop it before resuming
its run with this one. Processes the training starts
do not inherit the lock: the descriptor is closed on exec, and the plotter
and the data workers are started by exec (`subprocess`, multiprocessing's
forkserver).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from digits.errors import RunError

_OPEN_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC  # following a link: runs/latest is one
# `training_now` takes a shared lock for an instant; a trainer that meets it waits this long, not refused.
_PATIENCE_SECONDS = 1.0
_sleep = time.sleep  # the module's own name for it: a test stands in for it here alone


@contextmanager
def held(folder: Path, recorded_trainer: Callable[[], int | None]) -> Iterator[None]:
    """Hold the run folder's lock for the block. A `RunError` when another process holds it, or, where the
    file system has no locks, when `recorded_trainer()` (the live process the run's record names as training
    it, None for none) is one; the sentence names that process when there is one."""

    def busy() -> RunError:
        if pid := recorded_trainer():
            return RunError(f"{folder}: the run is training now (process {pid}); wait for it, or stop it first.")
        return RunError(f"{folder}: another process holds the run folder's lock; wait for it, or stop it first.")

    try:
        descriptor = os.open(folder, _OPEN_FLAGS)
    except OSError as err:
        raise RunError(f"{folder}: cannot open the run folder to lock it ({err.strerror}).") from None
    try:
        deadline = time.monotonic() + _PATIENCE_SECONDS
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise busy() from None
                _sleep(0.02)
            except OSError:  # no locks on this file system: the run's record is all there is
                if recorded_trainer() is not None:
                    raise busy() from None
                break
        yield
    finally:
        os.close(descriptor)  # and with it the lock


def training_now(folder: Path, pid: int | None) -> bool:
    """Whether a process holds the run folder's lock; where it cannot be asked, whether process `pid` lives."""
    try:
        descriptor = os.open(folder, _OPEN_FLAGS)
    except OSError:
        return alive(pid)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return alive(pid)
    finally:
        os.close(descriptor)
    return False


def alive(pid: int | None) -> bool:
    """Whether a process of number `pid` lives (another user's counts)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    return True
