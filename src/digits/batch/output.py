"""A batch's output file: CSV, JSON Lines or Parquet, written chunk by chunk, never half.

Rows have the columns `COLUMNS`. While a batch runs, each chunk of rows is
written to its own part file, atomically (`digits.atomic`), in a hidden folder
beside the output (`.results.csv.parts/`); when the batch ends the output is
rewritten, atomically, as its old rows followed by the parts' rows, and the
parts are removed (the folder too, when nothing else is in it). A kill (even SIGKILL) therefore loses at most the chunks in
flight, and the output file is always whole: the old one or the new one.

Resume: `done()` reads the output and any parts a killed run left, and says,
for each path, the size and mtime its row was read at and whether it failed.
A picture whose file still has that size and mtime is not read again; one
that changed is, and its new row replaces the old one (a path keeps only its
last row, which then comes after the rows that did not change).

One output, one command at a time: an `Output` holds a lock (`flock`) on a
hidden file beside it (`.results.csv.lock`) from its start to `close()` (or
the end of its `with` block), and a second command given the same output is
refused in one sentence, where it would have replaced the first one's rows
with its own.

Parquet needs pyarrow; without it, asking for a .parquet output is one
`OutputError` sentence before anything is read.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import signal
import stat
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from digits.atomic import atomic_path, temporaries, writable_target
from digits.batch.rows import COLUMN_TYPES, COLUMNS, ERROR, Row, escaped, json_row, mixed_with, problem_of, typed, utf8
from digits.errors import DigitsError, install_hint

FORMATS = (".csv", ".jsonl", ".parquet")
# Tests stop a run at a known point with this: after writing chunk N (from 0), the process SIGKILLs
# itself ("N"), or sends itself SIGINT or SIGTERM ("N:INT", "N:TERM"), as Ctrl-C and a supervisor do.
KILL_AFTER_CHUNK = "DIGITS_BATCH_KILL_AFTER_CHUNK"
_LONGEST_CELL = 64 * 2**20
_LONGEST_LINE = _LONGEST_CELL + 2**20  # the boxes cell and the rest of its row
# Parquet is compressed: a small file can hold rows of any length. Its footer says how large each row group is
# uncompressed; a row digits writes is far below this (a long path, a page's boxes), and a group beyond it is
# refused unread. A forged footer is not caught there, but each batch of rows is measured before it is decoded.
_PARQUET_ROW_BYTES = 64 * 2**10
_PARQUET_ROWS_PER_BATCH = 1024
# The text in one row group at most (a longer row goes alone): half what `_check_sizes` lets any group hold.
_PARQUET_GROUP_TEXT = _LONGEST_LINE // 2


class OutputError(DigitsError):
    """The output named for a batch cannot be written or read back."""


def _pyarrow() -> tuple[Any, Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise OutputError(f"writing Parquet needs pyarrow: {install_hint('batch')}; or write .csv or .jsonl.") from None
    types = {int: pyarrow.int64(), float: pyarrow.float64(), str: pyarrow.string()}
    schema = pyarrow.schema([(name, types[kind]) for name, kind in COLUMN_TYPES.items()])
    return pyarrow, pyarrow.parquet, schema


class Output:
    """One output file and the parts of the run that writes it."""

    # A part's name before its suffix: its number, nine digits (written by `write_chunk`), as a glob.
    _PART = "[0-9]" * 9

    def __init__(self, target: str | os.PathLike[str]):
        name = os.fspath(target)
        if not name:
            raise OutputError("the output's name is empty; --out takes a file, such as results.csv.")
        # Path() would drop a last "/" or "/." (a folder was meant); a folder there is one, whatever its name.
        if os.path.basename(name) in ("", ".", "..") or os.path.isdir(name):
            raise OutputError(f"{name}: names a folder; --out takes a file, such as results.csv.")
        self.target = Path(target)
        self.suffix = self.target.suffix.lower()
        if self.target.name.lower() in FORMATS:  # ".csv" is a hidden file's name, without a suffix
            raise OutputError(f"{target}: a name is needed before the suffix, such as results{self.target.name}.")
        if self.suffix not in FORMATS:
            raise OutputError(f"{target}: the output must end in .csv, .jsonl or .parquet.")
        if self.suffix == ".parquet":
            _pyarrow()
        # A missing folder, a folder or a device there fails now, before any picture. The lock sits beside the
        # file the output really is, so a link to it and its own name share one lock.
        real, _ = writable_target(self.target)
        self.parts = real.with_name(f".{real.name}.parts")  # beside the real file too, whatever name reached it
        self._lock_path = real.with_name(f".{real.name}.lock")
        self._lock = self._locked()
        # An Output dropped unclosed (or open at the interpreter's exit) lets go too, its lock file removed.
        self._release = weakref.finalize(self, _let_go, self._lock_path, self._lock, os.getpid())
        try:
            self._check_parts()
            # After the last part there: a kill in `finish` can leave later ones (a count could name one of them).
            self._next = max((int(part.name[:9]) for part in self._part_files()), default=-1) + 1
            if self._next >= 10**9:  # a tenth digit would fall outside the parts' names, and its rows be lost
                raise OutputError(f"{self.parts}: holds a part numbered 999999999, the last there is; move it away.")
        except BaseException:
            self.close()
            raise
        self._written = 0

    def _locked(self) -> int:
        """A descriptor of the lock file, locked for this command; an `OutputError` when another holds it."""
        while True:
            try:
                # Read-only: a lock file another user created in a shared folder can still be locked.
                # Non-blocking: a FIFO planted under the lock's name would hold the open for ever.
                # No link followed: one planted there would have us create its target, wherever it points.
                flags = os.O_RDONLY | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW
                lock = os.open(self._lock_path, flags, 0o644)
            except OSError as err:
                if self._lock_path.is_symlink():
                    raise OutputError(
                        f"{self.target}: its lock {self._lock_path} is a symbolic link; remove it, or name another --out."
                    ) from None
                raise OutputError(
                    f"{self.target}: cannot write in its folder ({err.strerror}); name another --out."
                ) from None
            if not stat.S_ISREG(os.fstat(lock).st_mode):
                os.close(lock)
                raise OutputError(
                    f"{self.target}: its lock {self._lock_path} is not a plain file; remove it, or name another --out."
                )
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(lock)
                if isinstance(err, BlockingIOError):
                    raise OutputError(
                        f"{self.target}: another command is writing it now (one output, one command at a time); "
                        "wait for it to end, or name another --out."
                    ) from None
                raise OutputError(f"{self.target}: cannot lock it ({err.strerror}); name another --out.") from None
            # The command before may have removed the file between our open and our lock: lock the one there now.
            try:
                if os.stat(self._lock_path).st_ino == os.fstat(lock).st_ino:
                    return lock
            except FileNotFoundError:
                pass
            os.close(lock)

    def _check_parts(self, create: bool = False) -> None:
        """The parts' folder, if there (or made, with `create`), is a folder of this user's, not a link: through
        a link its chunks would come from, and go, elsewhere. Checked at the start, at each chunk and at the end."""
        try:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self.parts, 0o700)
            found = os.lstat(self.parts)
        except FileNotFoundError:
            return
        except OSError as err:
            raise OutputError(
                f"{self.target}: {self.parts} cannot be used ({err.strerror}); name another --out."
            ) from None
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid():
            raise OutputError(
                f"{self.target}: {self.parts} (where a run keeps its chunks until it ends) is not a folder of "
                "its own; remove it, or name another --out."
            )

    @property
    def closed(self) -> bool:
        return not self._release.alive

    def close(self) -> None:
        """Let another command write the output: remove the lock file (while still holding it), then release it."""
        self._release()

    def __enter__(self) -> Output:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _part_files(self) -> list[Path]:
        # Numbered parts only: a kill can leave atomic_path's hidden temporary file beside them.
        parts = sorted(self.parts.glob(self._PART + self.suffix)) if self.parts.is_dir() else []
        # Each written by atomic_path: a FIFO planted under a part's name would hold the read for ever,
        # a link would be read (and removed by `finish`) wherever it points.
        if planted := next((part for part in parts if not stat.S_ISREG(part.lstat().st_mode)), None):
            raise OutputError(
                f"{planted}: not a regular file, so no part digits wrote (a link, FIFO or folder); move it away."
            )
        return parts

    def _sources(self) -> list[Path]:
        # An empty file holds no rows (a header-less CSV, a Parquet file without its footer would not read).
        whole = self.target.is_file() and self.target.stat().st_size > 0
        return ([self.target] if whole else []) + self._part_files()

    def done(self, model: str, command: str) -> dict[str, tuple[int | None, int | None, bool]]:
        """path -> (size, mtime_ns, failed) of the last row of each picture already written.

        Every row is read and checked, so a file that is not a batch output fails now, before any
        picture is read; so does one written by another model, or by the other command.
        """
        found: dict[str, tuple[int | None, int | None, bool]] = {}
        stored_model = self.stored(model)
        for source in self._sources():
            for row in self._read(source, COLUMNS, check=True):
                if other := mixed_with(row, stored_model, command):
                    raise OutputError(
                        f"{self.target}: holds answers of {other}; resuming it with `digits {command}` "
                        f'and the model "{model}" would mix the two: name another --out, or move this file away.'
                    )
                found[row["path"]] = (row["size"], row["mtime_ns"], row["status"] == ERROR)
        return found

    def stored(self, path: str) -> str:
        """`path` (or a model's name) as this output's rows hold it: escaped where Parquet needs UTF-8."""
        return escaped(path) if self.suffix == ".parquet" else path

    def write_chunk(self, rows: list[Row]) -> None:
        """One chunk of new rows, as a part file written atomically (for Parquet, their text escaped, once)."""
        self._check_parts(create=True)
        with atomic_path(self.parts / f"{self._next:09d}{self.suffix}") as tmp:
            self._write(tmp, map(utf8, rows) if self.suffix == ".parquet" else rows)
        self._next += 1
        self._written += 1
        chunk, _, name = os.environ.get(KILL_AFTER_CHUNK, "").partition(":")
        if chunk == str(self._written - 1):
            os.kill(os.getpid(), getattr(signal, f"SIG{name or 'KILL'}"))

    def finish(self) -> None:
        """Rewrite the output as its rows and the parts', each path's last row only; remove the parts."""
        self._check_parts()
        sources = self._sources()
        if not self._part_files():
            return
        last = {
            row["path"]: (i, j)
            for i, source in enumerate(sources)
            for j, row in enumerate(self._read(source, ("path",)))
        }
        keep = (
            row
            for i, source in enumerate(sources)
            for j, row in enumerate(self._read(source, COLUMNS))
            if last[row["path"]] == (i, j)
        )
        with atomic_path(self.target) as tmp:
            self._write(tmp, keep)
        # Only digits' own files go: its parts, and the temporary files a kill left.
        # A folder of the user's that happened to bear the parts' name keeps the rest, and stays.
        for file in [*self._part_files(), *temporaries(self.parts, self._PART + self.suffix, self.suffix)]:
            file.unlink()
        with contextlib.suppress(OSError):
            self.parts.rmdir()

    def _write(self, path: Path, rows: Iterable[Row]) -> None:
        if self.suffix == ".parquet":
            pyarrow, parquet, schema = _pyarrow()
            with parquet.ParquetWriter(path, schema) as writer:
                for batch in _row_groups(rows):  # rows read back are escaped already
                    writer.write_table(pyarrow.Table.from_pylist(batch, schema))
            return
        with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
            if self.suffix == ".csv":
                writer = csv.DictWriter(f, COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
            else:
                f.writelines(json.dumps({name: row[name] for name in COLUMNS}) + "\n" for row in rows)

    def _read(self, path: Path, columns: tuple[str, ...], check: bool = False) -> Iterator[Row]:
        """`columns` of each row; with `check` (`done`, before any work), every value's type is checked too."""
        try:
            for number, row in enumerate(self._rows(path, columns), start=1):
                if check and (problem := problem_of(row)):
                    raise OutputError(
                        f"{path}: not a batch output that digits can resume from (row {number}: {problem}); "
                        "name another --out or move this file away."
                    )
                yield {name: row[name] for name in columns}
        except OutputError:
            raise
        except (OSError, ValueError, KeyError, TypeError, RecursionError, csv.Error) as err:
            raise OutputError(
                f"{path}: not a batch output that digits can resume from ({err}); "
                "name another --out or move this file away."
            ) from None
        except Exception as err:  # pyarrow's own error types for a damaged file
            raise OutputError(
                f"{path}: not a {self.suffix[1:]} file digits wrote ({err}); name another --out or move this file away."
            ) from None

    def _rows(self, path: Path, columns: tuple[str, ...]) -> Iterator[Row]:
        """The rows of one output or part file (of Parquet, only `columns`), its columns checked: exactly `COLUMNS`."""
        if self.suffix == ".parquet":
            pyarrow, parquet, schema = _pyarrow()
            table = parquet.ParquetFile(path)
            if not table.schema_arrow.equals(schema):
                raise OutputError(
                    f"{path}: not a Parquet file digits wrote (its columns are not {', '.join(COLUMNS)} with "
                    "digits' types); name another --out or move this file away."
                )
            _check_sizes(table.metadata)
            # As dictionaries: a long value stored once in a dictionary page and named by every row was decoded into
            # each of a batch's rows (8 GB for a 6 KB file). Measured in Arrow's buffers, before Python copies them.
            texts = [name for name in columns if schema.field(name).type == pyarrow.string()]
            dictionaries = parquet.ParquetFile(path, metadata=table.metadata, read_dictionary=texts)
            for batch in dictionaries.iter_batches(_PARQUET_ROWS_PER_BATCH, columns=list(columns)):
                longest, total = _text_sizes(batch)
                if longest > _LONGEST_CELL:
                    raise ValueError(f"a value is longer than any digits writes ({_LONGEST_CELL // 2**20} MiB)")
                if total > batch.num_rows * _PARQUET_ROW_BYTES + 2 * _LONGEST_LINE:
                    raise ValueError(f"{batch.num_rows} rows hold {total:,} bytes of text, more than digits writes")
                yield from batch.to_pylist()
            return
        # "-sig": a byte-order mark an editor added goes, as an @list's does.
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            if self.suffix == ".csv":
                # A page of many digits has a long `boxes` cell: csv's default cap (128 KiB) would refuse our own row.
                csv.field_size_limit(max(csv.field_size_limit(), _LONGEST_CELL))
                rows = csv.DictReader(_lines(f))
                if tuple(rows.fieldnames or ()) != COLUMNS:
                    raise ValueError(f"its header is not {','.join(COLUMNS)}")
                for row in rows:
                    yield {name: typed(name, row[name]) for name in COLUMNS}
                return
            yield from (json_row(line, number) for number, line in enumerate(_lines(f), 1) if line.strip())


def _row_groups(rows: Iterable[Row], most_rows: int = 10_000) -> Iterator[list[Row]]:
    """Rows in Parquet row groups that `_check_sizes` accepts when read back: up to `most_rows`, and no more
    text (UTF-8 bytes) than `_PARQUET_GROUP_TEXT` unless one row alone is more (a page of many digits' boxes)."""
    group: list[Row] = []
    text = 0
    for row in rows:
        size = sum(len(value.encode("utf-8", "replace")) for value in row.values() if isinstance(value, str))
        if group and (len(group) == most_rows or text + size > _PARQUET_GROUP_TEXT):
            yield group
            group, text = [], 0
        group.append(row)
        text += size
    if group:
        yield group


def _check_sizes(metadata: Any) -> None:
    """A Parquet file's row groups, by what its footer says they take uncompressed: none beyond what digits writes."""
    for group in range(metadata.num_row_groups):
        found = metadata.row_group(group)
        largest = max(_LONGEST_LINE, found.num_rows * _PARQUET_ROW_BYTES)
        if found.total_byte_size > largest or any(
            found.column(column).total_uncompressed_size > largest for column in range(found.num_columns)
        ):
            raise ValueError(
                f"its row group {group} holds {found.total_byte_size:,} bytes uncompressed for {found.num_rows} rows, "
                "more than digits writes"
            )


def _lines(file: TextIO) -> Iterator[str]:
    """The file's lines, each read up to the longest digits writes: a file of no line breaks is refused, not loaded whole."""
    while line := file.readline(_LONGEST_LINE + 1):
        if len(line) > _LONGEST_LINE:
            raise ValueError(f"a line is longer than any row digits writes ({_LONGEST_LINE // 2**20} MiB)")
        yield line


def _text_sizes(batch: Any) -> tuple[int, int]:
    """A Parquet record batch's longest text value and all its text once decoded, in bytes, from its dictionaries."""
    import pyarrow
    import pyarrow.compute as compute

    longest = total = 0
    for column in (column for column in batch.columns if pyarrow.types.is_dictionary(column.type)):
        lengths = compute.binary_length(column.dictionary)
        longest = max(longest, compute.max(lengths).as_py() or 0)
        total += compute.sum(compute.take(lengths, column.indices)).as_py() or 0
    return longest, total


def _let_go(lock_path: Path, lock: int, owner: int) -> None:
    """Remove the lock file while still holding its lock, then release it: no other command ever holds a lock on
    a file about to go. A forked child that exits only closes its copy: the file is its parent's."""
    if os.getpid() == owner:
        with contextlib.suppress(OSError):
            lock_path.unlink(missing_ok=True)
    os.close(lock)
