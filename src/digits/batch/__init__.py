"""Reading many pictures: one machine's cores, or a Dask cluster, in chunks, resumable.

    >>> from digits import batch
    >>> for row in batch.read(["a.png", "b.jpg"], workers=2):   # rows in input order
    ...     print(row["path"], row["text"], row["status"])
    >>> batch.bag(paths).compute()                               # the same rows, from a dask.bag

A row is a flat dict with the columns `COLUMNS`: `path`; `status` ("ok",
"unsure", "no digit found" / "no digits found", or "error"); `text` (the
number(s) read, one line per line; for `predict`, the digit); `digit`
(`predict` only); `confidence` (of the digit, or the least sure digit of
the page); `boxes` (JSON: `read`'s lines with their digits and boxes, or
`predict`'s one box); `error` (the sentence saying why the picture could not
be read); `model` (what answered: the model file's name, a run's as `<run>/model.onnx`, its SHA-256's first 12 hex digits, the threshold and the temperature: `work.Job.model_name`); `size` and `mtime_ns` (the file
as it was read, for resuming).

Pictures go in chunks of `chunk_size` to the workers (`digits.batch.engine`);
each worker loads the model once and batches its model calls over a chunk. A bad
picture becomes an error row and the batch goes on. `write` sends the rows to
an output file (`digits.batch.output`) that a killed run resumes.
"""

from __future__ import annotations

import contextlib
import json
import math
import operator
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from digits.batch.engine import ClusterError, chunks_read
from digits.batch.inputs import InputError, a_path, expand, many_paths
from digits.batch.output import Output, OutputError
from digits.batch.rows import COLUMNS, ERROR, Row
from digits.batch.work import PREDICT, READ, Item, Job, chunked, read_chunk, reader
from digits.config import usable_cores
from digits.read.model import resolve_model

__all__ = [
    "COLUMNS",
    "ClusterError",
    "InputError",
    "Output",
    "OutputError",
    "Summary",
    "bag",
    "expand",
    "job_for",
    "read",
    "usable_cores",
    "write",
]

# A chunk: enough digits for an efficient model call, few enough that a kill loses little.
CHUNK_SIZE = 64
# Below this many pictures, starting worker processes costs more than it saves (unless asked for).
_FEW = 32


def job_for(command: str = READ, model: str | os.PathLike[str] | None = None, threshold: float = 0.5) -> Job:
    """The job every chunk runs: the model resolved and loaded here once, so a bad one fails now, and the
    name of what answers (`Job.model_name`) computed from what was loaded."""
    if command not in (READ, PREDICT):
        raise ValueError(f"command must be {READ!r} or {PREDICT!r}, not {command!r}.")
    # The shipped model stays None: each worker then loads the one its own installation ships.
    job = Job(command, None if model is None else str(resolve_model(model)), threshold)
    reader(job)  # the model, loaded (and the threshold checked, by the Reader) before any picture is read
    job.model_name  # noqa: B018 (computed now, so that each pickled copy a worker gets carries it)
    return job


def stat_item(path: str) -> Item:
    """(path, size, mtime_ns) as the file is now; a file that cannot be stat'ed has None (its read will say why)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return path, None, None
    return path, info.st_size, info.st_mtime_ns


def to_row(result: dict[str, Any], job: Job) -> Row:
    """A worker's result for one picture -> a flat row (`COLUMNS`)."""
    row: Row = {name: None for name in COLUMNS}
    row.update(path=result["path"], size=result["size"], mtime_ns=result["mtime_ns"], model=job.model_name)
    found = result["result"]
    if found is None:
        return row | {"status": ERROR, "error": result["error"]}
    if job.command == PREDICT:
        digit = found["digit"]
        return row | {
            "status": found["status"],
            "digit": digit,
            "text": "" if digit is None else str(digit),
            "confidence": found["confidence"],
            "boxes": json.dumps([found["box"]] if found["box"] else []),
        }
    digits = [d for line in found["lines"] for d in line["digits"]]
    return row | {
        "status": found["status"],
        "text": found["text"],
        "boxes": json.dumps(found["lines"]),
        "confidence": min((d["confidence"] for d in digits), default=None),
    }


def plan(items: int, workers: int | None, chunk_size: int | None) -> tuple[int, int]:
    """(workers, chunk size) for this many pictures: chunks spread over the workers, no idle processes.

    Never more processes than cores: each loads its own model, and more would only take turns.
    """
    cores = usable_cores()
    wanted = min(workers, cores) if workers else cores
    if workers is None and items < _FEW:
        wanted = 1
    size = chunk_size or max(1, min(CHUNK_SIZE, math.ceil(items / (4 * wanted))))
    return max(1, min(wanted, math.ceil(items / size))), size


def results(
    job: Job, items: Sequence[Item], workers: int | None = None, dask: str | None = None, chunk_size: int | None = None
) -> Generator[list[dict[str, Any]], None, None]:
    """Each chunk's worker results, in input order (closing it stops the workers)."""
    count, size = plan(len(items), workers, chunk_size)
    return chunks_read(job, chunked(items, size), count, dask)


def read(
    paths: Iterable[str | os.PathLike[str]],
    command: str = READ,
    model: str | os.PathLike[str] | None = None,
    threshold: float = 0.5,
    workers: int | None = None,
    dask: str | None = None,
    chunk_size: int | None = None,
) -> Iterator[Row]:
    """One row per picture, in the order of `paths` (each path once; `expand` turns folders, globs and lists
    into paths). The model, the paths and the settings are checked now; the pictures are read as the rows
    are taken."""
    _check_counts(workers=workers, chunk_size=chunk_size)
    job = job_for(command, model, threshold)
    return _rows(job, _items(paths), workers, dask, chunk_size)


def _rows(
    job: Job, items: Sequence[Item], workers: int | None, dask: str | None, chunk_size: int | None
) -> Iterator[Row]:
    # A caller that stops iterating closes this generator, and with it the pool.
    with contextlib.closing(results(job, items, workers, dask, chunk_size)) as chunks:
        for chunk in chunks:
            yield from (to_row(result, job) for result in chunk)


def _check_counts(**counts: int | None) -> None:
    """`workers` and `chunk_size` are None (chosen for the machine and the batch) or a whole number from 1."""
    for name, value in counts.items():
        if value is None:
            continue
        wanted = f"{name} is {value!r}: a whole number from 1, or None to choose it for the machine."
        if isinstance(value, bool) or not hasattr(value, "__index__"):  # int and NumPy's integers have one
            raise TypeError(wanted)
        if operator.index(value) < 1:
            raise ValueError(wanted)


def bag(
    paths: Iterable[str | os.PathLike[str]],
    command: str = READ,
    model: str | os.PathLike[str] | None = None,
    threshold: float = 0.5,
    chunk_size: int | None = CHUNK_SIZE,
) -> Any:
    """The rows as a `dask.bag.Bag`, one partition per chunk, computed wherever the bag is computed."""
    import dask.bag

    _check_counts(chunk_size=chunk_size)
    job = job_for(command, model, threshold)
    items = _items(paths)
    partitions = dask.bag.from_sequence(items, partition_size=chunk_size or CHUNK_SIZE)  # type: ignore[no-untyped-call]
    return partitions.map_partitions(_rows_of, job)


def _items(paths: Iterable[str | os.PathLike[str]]) -> list[Item]:
    """Each path once, in order, with what `stat` says of its file now."""
    return [stat_item(path) for path in dict.fromkeys(a_path(path) for path in many_paths(paths))]


def _rows_of(items: Iterable[Item], job: Job) -> list[Row]:
    return [to_row(result, job) for result in read_chunk(job, list(items))]


@dataclass
class Summary:
    """What a `write` did: pictures read, skipped as already read, failed (each one a row with its error),
    and of those, failed on a bug in digits rather than on their file."""

    read: int = 0
    skipped: int = 0
    failed: int = 0
    bugs: int = 0


def write(
    paths: Sequence[str],
    output: Output | None,
    job: Job,
    workers: int | None = None,
    dask: str | None = None,
    chunk_size: int | None = None,
    on_chunk: Callable[[list[dict[str, Any]], list[Row]], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> Summary:
    """Read `paths` into `output` (None: only `on_chunk` sees the rows), skipping what it already holds.

    `on_plan(to_read, skipped)` is called once before reading, `on_chunk(results, rows)` after each chunk
    (in input order) once it is written.
    """
    _check_counts(workers=workers, chunk_size=chunk_size)
    if output is not None and not isinstance(output, Output):
        raise TypeError(f"output is a digits.batch.Output (with Output(path) as output: ...) or None, not {output!r}.")
    if not isinstance(job, Job):
        raise TypeError(f"job is a digits.batch.Job, made by digits.batch.job_for(command, model), not {job!r}.")
    if output is not None and output.closed:
        raise OutputError(f"{output.target}: this Output is closed; open it again to write more rows.")
    done = output.done(job.model_name, job.command) if output else {}
    summary = Summary()
    items = []
    for item in _items(paths):
        path = item[0]
        before = done.get(output.stored(path) if output else path)
        # A picture that failed is tried again: the file may be whole now, or readable, or the bug fixed.
        if before is not None and before[:2] == item[1:] and item[1] is not None and not before[2]:
            summary.skipped += 1
        else:
            items.append(item)
    if on_plan:
        on_plan(len(items), summary.skipped)
    # Closed on any way out (Ctrl-C while a chunk is written included): the pool stops then, not at exit.
    with contextlib.closing(results(job, items, workers, dask, chunk_size)) as chunks:
        for chunk in chunks:
            rows = [to_row(result, job) for result in chunk]
            if output:
                output.write_chunk(rows)
            failed = sum(row["status"] == ERROR for row in rows)
            summary.read += len(rows) - failed
            summary.failed += failed
            summary.bugs += sum(bool(result.get("bug")) for result in chunk)
            if on_chunk:
                on_chunk(chunk, rows)
    if output:
        output.finish()
    return summary
