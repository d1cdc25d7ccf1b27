"""Which pictures a batch reads: folders, globs, lists and standard input, as one list of paths.

`expand` turns what a user types into the paths of the pictures, in a
deterministic order, each once (the first time it is named):

  * a folder: the pictures in it (by suffix, see `digits.read.load.picture_suffixes`), sorted by
    name; with `recursive`, those of its sub-folders too, folder by folder;
  * a glob (`scans/*.jpg`, `scans/**/*.png`, `**` crossing folders) that names
    no existing file: the files it matches, sorted; one that matches nothing is
    an `InputError`. `**` alone as a part crosses folders (at the end too:
    `scans/**` is every file below; two at most in a pattern), within a
    name it is `*`; it does not follow links to folders, so a link loop is
    walked once. Hidden names match only a pattern with a part that starts
    with a dot; a pattern ending in `/` names folders, so it matches no
    picture;
  * `@list.txt`: one path per line, encoded as the system's file names are
    (blank lines skipped; a line ends at "\n" only, so a name may hold a
    carriage return, and a CRLF's goes; a byte-order mark before the first
    path goes too), relative to the current folder as on the command line; `-`: the same, from standard input.
    A line longer than any path (`MAX_LINE`) or holding a NUL byte is an
    `InputError`: the file is not a list of paths;
  * anything else: a path, passed on as it is, so that a missing or unreadable
    file becomes that picture's error row instead of stopping the batch; but an
    empty name is an `InputError` (an output keys its rows by path).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import reprlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar

from digits.errors import DigitsError
from digits.read.load import picture_suffixes

_GLOB_CHARACTERS = frozenset("*?[")
PathsT = TypeVar("PathsT", bound=Iterable[Any])
# Linux's PATH_MAX: a longer line is no path (and /dev/zero is one endless line).
MAX_LINE = 4096
# How the system encodes file names (UTF-8 on Linux and macOS, whatever the locale in Python's UTF-8 mode).
_NAMES = sys.getfilesystemencoding()
# A glob's `**` parts, at most: each more multiplies the ways pathlib walks the tree (11: 37 s, 12 folders deep).
_MOST_CROSSINGS = 2


class InputError(DigitsError):
    """A folder, glob or list given to a batch cannot be expanded."""


def many_paths(paths: PathsT) -> PathsT:
    """`paths` itself, refused when it is one path: a string is iterable too, and would be read letter by letter."""
    if isinstance(paths, bytes):  # a picture's data, most likely: not repeated here, it may run to megabytes
        raise TypeError(f"expected a list of paths, not {len(paths)} bytes; digits.Reader reads a picture's bytes.")
    if isinstance(paths, (str, os.PathLike)):
        raise TypeError(f"expected a list of paths, not the one path {reprlib.repr(os.fspath(paths))}: pass [path].")
    return paths


def expand(
    arguments: Iterable[str | os.PathLike[str]], recursive: bool = False, stdin: TextIO | None = None
) -> list[str]:
    """The picture paths the arguments name, in order, each once: as the command line takes them, a folder is
    its pictures, a glob its matches, `@list.txt` the paths it lists and `-` those on `stdin` (standard input)."""
    seen: dict[str, None] = {}
    for argument in many_paths(arguments):
        for path in _paths(a_path(argument), recursive, stdin or sys.stdin):
            seen.setdefault(path)
    return list(seen)


def a_path(path: str | os.PathLike[str]) -> str:
    """A path given to a batch as a string; bytes are refused (as picture data elsewhere, they are ambiguous here)."""
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    if not isinstance(name, str):
        raise TypeError(
            f"a picture's path is a str or a pathlib.Path, not {type(path).__name__}: {reprlib.repr(path)}."
        )
    return name


def _paths(argument: str, recursive: bool, stdin: TextIO) -> Iterator[str]:
    if not argument:  # an output's row keys each picture by its path: "" would be no key at all
        raise InputError("an empty name is no picture: pass the path of a picture, a folder, a glob or @list.")
    if argument == "-":
        if stdin is sys.stdin and isinstance(stdin, io.TextIOWrapper):  # as a list file is read (`_open_list`)
            # Refused once the stream has been read from (a second "-", a caller's own read): its lines
            # then split as they were opened to split. A caller's own stream is read as it was opened.
            with contextlib.suppress(ValueError):
                stdin.reconfigure(encoding=_NAMES, errors=sys.getfilesystemencodeerrors(), newline="\n")
        yield from _lines(stdin, "standard input")
    elif argument.startswith("@") and len(argument) > 1:
        name = argument[1:]
        try:
            with _open_list(name) as listing:
                yield from _lines(listing, name)
        except OSError as err:
            raise InputError(f"{name}: the list of pictures cannot be read ({err.strerror or err}).") from None
    elif argument and os.path.isdir(argument):
        yield from _folder(argument, recursive)
    elif _GLOB_CHARACTERS & set(argument) and not os.path.lexists(argument):
        matches = sorted(_matches(argument))
        if not matches:
            raise InputError(f"{argument}: no file matches this pattern.")
        yield from matches
    else:
        yield argument


def _open_list(name: str) -> TextIO:
    """The list file for reading; a FIFO that no program writes to yet reads as empty instead of blocking for ever.

    Opening a FIFO waits for a writer, unless non-blocking; the flag then goes, so that the
    lines of a writer that is there (`digits read @<(find ...)`) are waited for.
    """
    descriptor = os.open(name, os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.set_blocking(descriptor, True)
        # Only "\n" ends a line: a name may hold a carriage return (a CRLF's goes in `_lines`). Names decode
        # as the system's own file names do, so any bytes come back as the same name.
        return open(descriptor, encoding=_NAMES, errors=sys.getfilesystemencodeerrors(), newline="\n")
    except BaseException:  # a folder given as the list: its descriptor goes too
        os.close(descriptor)
        raise


def _matches(pattern: str) -> Iterator[str]:
    """The files a glob matches: pathlib's `**` does not follow links to folders, where `glob.glob`'s does."""
    if pattern.endswith(os.sep):
        return  # folders only, as in the shell: no picture
    # As glob.glob had it: "**" within a name is "*", and a final "**" is every file below (pathlib gives folders).
    parts = [part if part == "**" else re.sub(r"\*{2,}", "*", part) for part in pattern.split(os.sep)]
    if parts[-1] == "**":
        parts.append("*")
    if parts.count("**") > _MOST_CROSSINGS:  # pathlib walks the tree once per way of splitting it among them
        raise InputError(
            f"{pattern}: more than {_MOST_CROSSINGS} '**' take exponential time; one crosses any depth of folders."
        )
    fixed = next(i for i, part in enumerate(parts) if _GLOB_CHARACTERS & set(part))
    # The folders before the first wildcard, as typed ("./scans" stays "./scans"; "/x*" starts at "/").
    root = os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else "")
    rest = Path(*(part for part in parts[fixed:] if part))
    shows_hidden = any(part.startswith(".") for part in rest.parts)
    try:
        for path in Path(root or ".").glob(str(rest)):
            below = path.relative_to(root or ".")
            hidden = any(part.startswith(".") for part in below.parts)
            if (shows_hidden or not hidden) and not path.is_dir():
                yield os.path.join(root, below)
    except RecursionError:  # Python 3.11's pathlib walks `**` by recursion, a frame per folder level
        raise InputError(
            f"{pattern}: the folders below are too deep for a glob; give the folder with --recursive instead."
        ) from None


def _lines(stream: TextIO, name: str) -> Iterator[str]:
    """One path per line; the line ending goes, spaces stay (a file name may start or end with one)."""
    number = 0
    while line := stream.readline(MAX_LINE + 2):  # room for the longest path and its CRLF
        number += 1
        # The line's end: "\n" and a CR before it (CRLF); a byte-order mark an editor put before the first path.
        path = line.removesuffix("\n").removesuffix("\r")
        if number == 1:
            path = path.removeprefix("\ufeff")
        if len(path) > MAX_LINE or "\0" in path:
            problem = f"is longer than any path ({MAX_LINE} characters)" if len(path) > MAX_LINE else "holds a NUL byte"
            raise InputError(f"{name}: line {number} {problem}; a list of pictures is text, one path per line.")
        if path:
            yield path


def _folder(top: str, recursive: bool) -> Iterator[str]:
    """The pictures of a folder by name; with `recursive`, then each sub-folder's, depth first, by name.

    A stack of folders still to list, not recursion: a tree a thousand folders deep is walked too.
    """
    waiting = [top]
    while waiting:
        folder = waiting.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as err:
            if folder != top and isinstance(err, (FileNotFoundError, NotADirectoryError)):
                continue  # a sub-folder removed (or replaced) since its parent was listed holds nothing to read now
            raise InputError(f"{folder}: the folder cannot be listed ({err.strerror or err}).") from None
        for entry in entries:
            if os.path.splitext(entry.name)[1].lower() in picture_suffixes() and not _is_folder(entry):
                yield entry.path  # a link that loops or leads nowhere too: reading it gives its error row
        if recursive:
            waiting.extend(reversed([entry.path for entry in entries if _is_folder(entry, follow_symlinks=False)]))


def _is_folder(entry: os.DirEntry, follow_symlinks: bool = True) -> bool:
    """Whether an entry is a folder; not when asking fails (a link that loops, or runs through a file)."""
    try:
        return entry.is_dir(follow_symlinks=follow_symlinks)
    except OSError:
        return False
