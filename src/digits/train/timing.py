"""Where the seconds of one `digits train` command go, for benchmarks/speed.py.

`with phase("export"): ...` adds the block's wall time to that phase. When the
variable `DIGITS_PHASES` names a file, `save()` writes the phases there as
JSON at the end of the command; otherwise nothing is written. Phases that run
at the same time (the data load beside the TensorFlow import) both count
their own wall time, so their sum can exceed the command's.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

PHASES_VARIABLE = "DIGITS_PHASES"
_seconds: dict[str, float] = {}


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        add(name, time.perf_counter() - start)


def add(name: str, seconds: float) -> None:
    _seconds[name] = _seconds.get(name, 0.0) + seconds


def save() -> None:
    path = os.environ.get(PHASES_VARIABLE)
    if path:
        from digits import atomic

        atomic.write_json(path, dict(_seconds))
