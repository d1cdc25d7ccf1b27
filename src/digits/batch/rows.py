"""The rows of a batch output: their columns and types, and what is done to a row between Python and a file.

`problem_of` says what is wrong with a row read back, `command_of` which command
wrote it, `model_column` what its `model` holds and `mixed_with` whether another
command or model wrote it, `utf8` and `escaped` make its text storable as
Parquet's UTF-8, `typed` turns a CSV cell back into the value the row had, and
`json_row` reads a JSON Lines row.
"""

from __future__ import annotations

import json
from typing import Any

# Every column in file order, with the type of its values (each may also be None). The one home of both:
# checking a row read back, a CSV cell's value and Parquet's schema all come from here.
COLUMN_TYPES: dict[str, type] = {
    "path": str,
    "status": str,
    "text": str,
    "digit": int,
    "confidence": float,
    "boxes": str,
    "error": str,
    "model": str,
    "size": int,
    "mtime_ns": int,
}
COLUMNS = tuple(COLUMN_TYPES)
ERROR = "error"

Row = dict[str, Any]


def problem_of(row: Row) -> str | None:
    """What is wrong with a row read back (a column of the wrong type), or None."""
    for name, kind in COLUMN_TYPES.items():
        value = row[name]
        kinds: tuple[type, ...] = (int, float) if kind is float else (kind,)  # JSON writes 1.0 as 1
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
            return f"{name} is {type(value).__name__}"
        if value is None and name in ("path", "status", "model"):  # every row digits writes names its model
            return f"it has no {name}"
    return None


def command_of(row: Row) -> str | None:
    """Which command wrote a row: `predict` and `read` differ in their statuses and boxes; None for an error row."""
    status = row["status"]
    if status == ERROR:
        return None
    if status == "no digit found" or (row["boxes"] or "").startswith("[["):
        return "predict"
    return "read"


def utf8(row: Row) -> Row:
    """Parquet strings are UTF-8: a file name that is not (bytes kept by surrogateescape) is stored escaped,
    in the path, in the error sentence that names it, and in the model's name."""
    return row | {name: escaped(row[name]) for name in ("path", "error", "model") if isinstance(row[name], str)}


def escaped(text: str) -> str:
    """`text` with the bytes surrogateescape kept (a name that is not UTF-8) written as \\xNN, and \\ as \\\\.

    Doubling the backslashes keeps two names apart that would otherwise be stored alike:
    a byte 0xFF, and the four characters \\xff that another file's name may hold.
    """
    if text.isascii() and "\\" not in text:
        return text
    doubled = text.replace("\\", "\\\\")
    return doubled.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def typed(name: str, value: str) -> Any:
    """A CSV cell back as the row had it: "" is None; integer and float columns as numbers."""
    return None if value == "" else COLUMN_TYPES[name](value)


_SHA256 = " sha256:"


def model_column(name: str, sha256: str, threshold: float, temperature: float) -> str:
    """A row's `model`: the model file's name, then what decides its answers (`mixed_with`)."""
    return f"{name}{_SHA256}{sha256[:12]} threshold {threshold + 0.0!r} temperature {temperature!r}"  # -0.0 is 0.0


def mixed_with(row: Row, model: str, command: str) -> str | None:
    """What wrote a row, said for a sentence, if not `digits command` with `model` (a `model_column`), else None:
    resuming would mix the two. A model is its bytes' hash, threshold and temperature, not its file's name
    (`runs/latest` and its run's own name are one model)."""
    if row["model"].partition(_SHA256)[2] != model.partition(_SHA256)[2]:
        return f'the model "{row["model"]}"'
    written_by = command_of(row)
    return None if written_by in (None, command) else f"`digits {written_by}`"


def json_row(line: str, number: int) -> Row:
    """A JSON Lines output's row from its line `number` (from 1): an object with exactly the keys `COLUMNS`."""
    try:
        row = json.loads(line)
    except ValueError as err:  # json's own position counts within the line, not the file
        raise ValueError(f"line {number} is not JSON ({getattr(err, 'msg', err)})") from None
    if not isinstance(row, dict) or set(row) != set(COLUMNS):
        raise ValueError(f"line {number} is not an object with the keys {', '.join(COLUMNS)}")
    return row
