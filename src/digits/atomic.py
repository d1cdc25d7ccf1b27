"""Atomic file writes: a reader sees the old file or the whole new one, never half.

Every file a run folder holds is written through `atomic_path`: the content
goes to a temporary file in the same folder, is flushed to disk with fsync,
and only then renamed over the target. A crash, a full disk or Ctrl-C leaves
at worst a stray temporary file, which is removed when the error is caught.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from digits.errors import WriteError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces `target`."""
    target = Path(target)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp" + target.suffix)
        os.close(fd)
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as err:
        raise WriteError(f"cannot write {target}: {err.strerror or err}.") from err
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike, text: str) -> None:
    write_bytes(target, text.encode())


def write_json(target: str | os.PathLike, obj: object) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")
