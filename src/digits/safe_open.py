"""Reading a file that someone else may have chosen: only a regular file, under a size cap, never blocking.

`open_regular(path, limit, error, fix)` opens `path` for reading without
blocking (a FIFO with no writer would hang `open` forever), then checks the
open file itself, so a swap after the check changes nothing: a folder,
device, FIFO or socket, or a file over `limit` bytes (a huge sparse file
included), is refused with `error` and one sentence that names the file and
ends with `fix`. `read_regular` returns the bytes, and never reads past
`limit` even if the file grows while it is read (`/dev/zero` through a race);
`read_open` the same of a file someone else opened, by its descriptor.
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
        _check_open(fd, path, limit, error, fix)  # before `os.fdopen`, which refuses a folder naming no file
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        yield file


def _check_open(fd: int, name: str | os.PathLike, limit: int, error: type[DigitsError], fix: str) -> int:
    """The size of the regular file open at `fd`, at most `limit`, or `error` naming `name`."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{name}: not a regular file (a folder, device, FIFO or socket); {fix}.")
    if info.st_size > limit:
        raise error(
            f"{name}: the file is {info.st_size / 2**20:.0f} MiB, over the limit of {limit / 2**20:.0f} MiB; {fix}."
        )
    return info.st_size


def read_open(fd: int, name: str, limit: int, error: type[DigitsError], fix: str) -> bytes:
    """The bytes of the regular file someone else opened at `fd`, from its start, never more than `limit` of
    them, or `error` naming `name`; its position is left where it was (its owner may be reading it)."""
    size = _check_open(fd, name, limit, error, fix)
    data = os.pread(fd, size + 1, 0)
    if len(data) > limit:
        raise error(f"{name}: the file grew past the limit of {limit / 2**20:.0f} MiB while it was read; {fix}.")
    return data


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
