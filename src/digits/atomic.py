"""Atomic file writes: a reader sees the old file or the whole new one, never half.

Every file `digits` writes goes through `atomic_path`: the content goes to a
temporary file in the same folder, is flushed to disk with fsync, and only
then renamed over the target. A crash, a full disk or Ctrl-C leaves at worst
a stray temporary file, which is removed when the error is caught.

A rename replaces whatever has the name, so the target is checked first:
  * a symlink is followed, and its target is what gets replaced (the link stays),
    where the user named the file (`--explain link.png`); with
    `follow_symlinks=False`, for files in a folder someone else may have
    filled (a run folder), the link itself is replaced and its target never touched;
  * a directory, device, FIFO or socket is refused with `WriteError`: writing
    `--explain /dev/null` must not swap the device for a PNG;
  * so is a read-only file (no write permission for us, or no write bit at
    all, which even root is refused): a rename needs only the folder's
    permission, and would replace a file its owner protected;
  * so is a folder we may not create files in, before any work is done
    (the temporary file could not be made there at the end);
  * a new file gets the mode the umask gives (0644 under umask 022), as
    `open()` would; a replaced file keeps its mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from digits.errors import WriteError

_KINDS = {
    stat.S_ISDIR: "a folder",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISFIFO: "a FIFO",
    stat.S_ISSOCK: "a socket",
}


def writable_target(target: str | os.PathLike, follow_symlinks: bool = True) -> tuple[Path, int]:
    """The regular file a write to `target` replaces or creates, and its mode (see the module's rules)."""
    target = Path(target)
    # Without following: the folders on the way are the caller's; only the name itself is not followed.
    real = Path(os.path.realpath(target)) if follow_symlinks else Path(os.path.realpath(target.parent)) / target.name
    try:
        info: os.stat_result | None = os.stat(real, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        if not real.parent.is_dir():
            # The folder as the user typed it; through a dangling link, the folder of the link's target.
            folder = real.parent if target.is_symlink() else target.parent
            raise WriteError(f"cannot write {target}: the folder {folder} does not exist; create it first.") from None
        info = None
    except OSError as err:  # a symlink loop, a folder on the way that is a file, no permission
        raise WriteError(f"cannot write {target}: {err.strerror or err}.") from None
    # A link not followed is replaced by a new file, like a name that does not exist yet.
    replaced = None if info is None or stat.S_ISLNK(info.st_mode) else info
    if replaced is not None:
        if not stat.S_ISREG(replaced.st_mode):
            kind = next((name for test, name in _KINDS.items() if test(replaced.st_mode)), "not a regular file")
            shown = f"{target} (-> {real})" if real != target.absolute() else str(target)
            raise WriteError(f"cannot write {shown}: it is {kind}, not a regular file; choose a file path.")
        if not replaced.st_mode & 0o222:
            raise WriteError(f"cannot write {target}: the file is read-only; make it writable or choose another path.")
        if not os.access(real, os.W_OK):
            raise WriteError(f"cannot write {target}: no permission to write this file; choose another path.")
    # Every write makes its new file beside the target and renames it over: the folder must take new files.
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise WriteError(
            f"cannot write {target}: no permission to create files in {real.parent}; choose another folder."
        )
    return real, stat.S_IMODE(replaced.st_mode) if replaced is not None else 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for a moment, under other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, follow_symlinks: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces `target` (see the module's rules)."""
    shown = target
    target, mode = writable_target(target, follow_symlinks)
    tmp = None
    try:
        # The name cut short: a target whose own name is near the file system's limit still gets its temporary twin.
        prefix, suffix = _temporary_affixes(target.name, target.suffix)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=suffix)
        os.close(fd)
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as err:
        raise WriteError(f"cannot write {shown}: {err.strerror or err}.") from err
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(target: str | os.PathLike, data: bytes, follow_symlinks: bool = True) -> None:
    with atomic_path(target, follow_symlinks) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike, text: str, follow_symlinks: bool = True) -> None:
    write_bytes(target, text.encode(), follow_symlinks)


def write_json(target: str | os.PathLike, obj: object, follow_symlinks: bool = True) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n", follow_symlinks)


def temporaries(folder: Path, name_pattern: str, suffix: str) -> list[Path]:
    """The temporary files in `folder` that `atomic_path` left, killed before its rename, for targets whose names
    match the glob `name_pattern` and end in `suffix`."""
    prefix, end = _temporary_affixes(name_pattern, suffix)
    return sorted(folder.glob(f"{prefix}*{end}"))


def _temporary_affixes(name: str, suffix: str) -> tuple[str, str]:
    """The prefix and suffix of the temporary twin of a target called `name`, ending in `suffix`."""
    return f".{_cut(name, 96)}.", ".tmp" + _cut(suffix, 16)


def _cut(name: str, most: int) -> str:
    """`name` cut to at most `most` bytes as the file system counts them, never inside a character
    (empty when its bytes there are no UTF-8: the temporary name needs no more than a hint of the target's)."""
    cut = os.fsencode(name)[:most]
    for end in range(len(cut), max(len(cut) - 4, 0) - 1, -1):  # a UTF-8 character is at most 4 bytes
        try:
            return cut[:end].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return ""
