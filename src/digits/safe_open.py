"""Reading a file that someone else may have chosen: only a regular file, under a size cap, never blocking.

`open_regular(path, limit, error, fix)` opens `path` for reading without
blocking (a FIFO with no writer would hang `open` forever), then checks the
open file itself, so a swap after the check changes nothing: a folder,
device, FIFO or socket, or a file over `limit` bytes (a huge sparse file
included), is refused with `error` and one sentence that names the file and
ends with `fix`. `read_regular` returns the bytes, and never reads past
`limit` even if the file grows while it is read (`/dev/zero` through a race).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from digits.errors import DigitsError


@contextlib.contextmanager
def open_regular(path: str | os.PathLike, limit: int, error: type[DigitsError], fix: str) -> Iterator[BinaryIO]:
    """The open regular file at `path`, at most `limit` bytes long, or `error`."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise error(f"{path}: cannot be read ({err.strerror or err}).") from None
    try:
        # Checked before `os.fdopen`, which refuses a folder with an error of its own that names no file.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: not a regular file (a folder, device, FIFO or socket); {fix}.")
        if info.st_size > limit:
            raise error(
                f"{path}: the file is {info.st_size / 2**20:.0f} MiB, over the limit of {limit / 2**20:.0f} MiB; {fix}."
            )
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        yield file


def read_regular(path: str | os.PathLike, limit: int, error: type[DigitsError], fix: str) -> bytes:
    """The bytes of the regular file at `path`, never more than `limit` of them, or `error`."""
    with open_regular(path, limit, error, fix) as file:
        try:
            data = file.read(limit + 1)  # the file may have grown since it was checked
        except OSError as err:
            raise error(f"{path}: cannot be read ({err.strerror or err}).") from None
    if data is None:  # a file of the kernel's that has nothing to give yet (/proc/kmsg): it would block
        raise error(f"{path}: not a file with contents to read (reading it would wait); {fix}.")
    if len(data) > limit:
        raise error(f"{path}: the file grew past the limit of {limit / 2**20:.0f} MiB while it was read; {fix}.")
    return data
