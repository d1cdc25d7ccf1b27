"""Every fault a user can cause or fix, as one family of exceptions.

Each `DigitsError` carries one sentence that names the file (or option) at
fault and, where there is one, the fix. The CLI prints that sentence after
`error: ` and exits 2; the server turns it into a 4xx JSON error. Anything
that is not a `DigitsError` is a bug in `digits`, not in the input.

`Interrupted` is not an error: it is a run that stopped cleanly on a signal.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType


class DigitsError(Exception):
    """A user-facing fault, described in one sentence."""


def first_line(err: BaseException, most: int = 160) -> str:
    """The first line of a library's error message, cut to `most` characters (its type's name when it has none),
    to quote inside one of our sentences."""
    return (str(err).splitlines() or [type(err).__name__])[0][:most]


def install_hint(extra: str) -> str:
    """How to install an extra, from the package index or from a clone (as the README installs it)."""
    return f"pip install 'digits[{extra}]' (from a clone: pip install '.[{extra}]')"


class DataError(DigitsError):
    """A dataset file is missing, corrupt or not what it claims to be."""


class ImageError(DigitsError, ValueError):
    """An input cannot be used as an image; the message names the file and the fault."""


class ModelError(DigitsError):
    """A model file is missing, corrupt or of the wrong kind."""


class TrainingError(DigitsError):
    """A run cannot start or continue (bad folder, finished run, bad config)."""


class ConfigError(TrainingError):
    """A preset, an override or a run's config.json holds an unknown key or a bad value."""


class RunError(TrainingError):
    """A run folder is missing, or one of its files is unreadable or corrupt."""


# The fix for a checkpoint that cannot be resumed. Not "start the run again": its name is taken until the
# folder goes, and `digits train` says so.
TRAIN_AGAIN = "train again under another --name, or delete the run folder and train it again"


class WriteError(DigitsError):
    """A file could not be written (disk full, no permission, not a regular file); nothing half-written remains."""


# The shell's convention: 128 + the signal's number.
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


@contextlib.contextmanager
def stop_signals_call(handler: Callable[[int, FrameType | None], object]) -> Iterator[None]:
    """Inside the block SIGINT and SIGTERM call `handler`; after it, the handlers before come back.

    A signal the command was started ignoring (SIGINT in a background job) stays ignored. Outside the main
    thread (a training started from a caller's thread) nothing changes: Python lets only the main thread set
    handlers, and delivers signals to it alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in EXIT_CODES if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, before in previous.items():
            signal.signal(s, before)


class Interrupted(BaseException):
    """A command stopped on SIGINT or SIGTERM, after leaving its work resumable (a checkpoint, written chunks) or its server shut down.

    A `BaseException`, like `KeyboardInterrupt`: raised from a signal handler wherever the command
    stands, it must pass every `except Exception` (a model call's, a batch picture's) on its way out.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = EXIT_CODES[signal.Signals(signum)]
