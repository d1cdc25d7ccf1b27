"""`digits read` and `digits predict` on many pictures: inputs, workers, output file, progress.

The commands take files, folders (`--recursive`), globs, `@list.txt` and `-`
(paths on standard input); `digits.batch.expand` makes them one list. The
pictures are read in chunks by `digits.batch.write`, here, on `--workers`
processes or on a Dask cluster (`--dask`). With `--out` the rows go to a CSV,
JSON Lines or Parquet file that a second run resumes; without it, each
picture's answer is printed as the commands always printed it, in input order.

A progress bar (pictures/s and time left) is drawn on stderr when stderr is
a terminal. Exit code: 0 when every picture was read (finding no digit is an
answer), 2 when any picture could not be (each has its error row or error
line) or the command itself was wrong. File names that hold line breaks or
terminal escapes are printed escaped.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import typer

from digits.batch import InputError, Output, Summary, expand, job_for, write
from digits.batch.work import PREDICT, Job
from digits.cli.terminal import echo, error, percent, shown
from digits.spec import NO_DIGIT, NO_DIGITS, UNSURE


def run(
    command: str,
    images: list[str],
    model: Path | None,
    as_json: bool,
    threshold: float,
    recursive: bool,
    out: str | None,
    workers: int | None,
    dask: str | None,
) -> None:
    """Read every picture the arguments name; exit 2 at the end if any could not be read."""
    paths = expand(images, recursive)
    if not paths:
        named = [shown(image) if image != "-" else "the standard input" for image in images[:3]]
        given = ", ".join(named) + (f" and {len(images) - 3} more" if len(images) > 3 else "")
        folders = any(Path(image).is_dir() for image in images if image != "-" and not image.startswith("@"))
        why = (
            "in a folder, pictures are found by their suffix; for sub-folders add --recursive"
            if folders
            else "a list names pictures one per line, and this one names none"
        )
        raise InputError(f"no pictures to read in {given} ({why}).")
    if as_json and out is not None:
        raise InputError("--json prints answers, --out writes them: give one (the rows' format is --out's suffix).")
    if dask is not None and workers is not None:
        raise InputError("--workers sets this machine's processes, --dask reads on the cluster's workers: give one.")
    job = job_for(command, model, threshold)  # a bad model fails before the output is locked
    if dask is not None:
        _quiet_dask()
    with Output(out) if out is not None else contextlib.nullcontext() as output:
        summary = _read(command, paths, output, job, as_json, workers, dask)
    if out is not None:
        _report(summary, out)
    if summary.bugs:
        error(
            f"{summary.bugs} picture{'s' * (summary.bugs != 1)} met a bug in digits, not a fault of the file "
            "(the error says which): please report it; run the command again to retry them."
        )
        raise typer.Exit(1)
    if summary.failed:
        raise typer.Exit(2)


def _quiet_dask() -> None:
    """Keep Dask's own log lines off the command's stderr (a worker lost and its chunk retried, a scheduler
    gone, with tracebacks): the command says what went wrong in one sentence, and a retried chunk is read once."""
    import logging

    try:
        import distributed  # noqa: F401 (its loggers are set up as it is imported)
    except ImportError:
        return  # the engine says what to install
    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _read(
    command: str,
    paths: list[str],
    output: Output | None,
    job: Job,
    as_json: bool,
    workers: int | None,
    dask: str | None,
) -> Summary:
    progress = _Progress()

    def chunk_done(results: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
        for result in results if output is None else ():
            if result["error"]:
                error(result["error"])
            else:
                show(command, result["path"], result["result"], as_json)
        progress.advance(len(rows))

    with progress:
        return write(paths, output, job, workers, dask, on_plan=progress.plan, on_chunk=chunk_done)


def _report(summary: Summary, out: str) -> None:
    skipped = f", {summary.skipped} already there" if summary.skipped else ""
    failed = f"; {summary.failed} could not be read (see their error column)" if summary.failed else ""
    echo(f"{shown(out)}: {summary.read} picture{'s' * (summary.read != 1)} read{skipped}{failed}")


def show(command: str, path: str, found: dict[str, Any], as_json: bool) -> None:
    """Print a command's answer about one picture (`Digit.to_dict()` or `Page.to_dict()`): JSON, or its lines."""
    if as_json:
        echo(json.dumps({"file": str(path), **found}))
        return
    name = shown(path)
    for line in _digit_lines(found) if command == PREDICT else _page_lines(found):
        echo(f"{name}: {line}")


def _digit_lines(found: dict[str, Any]) -> list[str]:
    """`digits predict`: one line."""
    if found["status"] == NO_DIGIT:
        return [NO_DIGIT]
    if found["status"] == UNSURE:
        return ["unsure (" + ", ".join(f"{d['digit']} {percent(d['confidence'])}" for d in found["top3"]) + ")"]
    return [f"{found['digit']} ({percent(found['confidence'])})"]


def _page_lines(page: dict[str, Any]) -> list[str]:
    """`digits read`: one line per line of digits, with the digits it doubts."""
    if not page["lines"]:
        return [NO_DIGITS]
    lines = []
    for line in page["lines"]:
        doubts = [
            f"{d['top3'][0]['digit']} or {d['top3'][1]['digit']}" for d in line["digits"] if d["status"] == UNSURE
        ]
        lines.append(line["text"] + (f"  (unsure: {', '.join(doubts)})" if doubts else ""))
    return lines


class _Progress:
    """A rich progress bar on stderr, or nothing when stderr is not a terminal."""

    def __init__(self) -> None:
        from rich.progress import Progress, TaskID

        self.bar: Progress | None = None
        self.task: TaskID | None = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __enter__(self) -> _Progress:
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar:
            self.bar.__exit__(*exc)

    def plan(self, to_read: int, skipped: int) -> None:
        if self.bar:
            already = f" ({skipped} already done)" if skipped else ""
            self.task = self.bar.add_task(f"reading{already}", total=to_read, rate="")

    def advance(self, count: int) -> None:
        if self.bar and self.task is not None:
            self.bar.advance(self.task, count)
            speed = self.bar.tasks[0].speed
            self.bar.update(self.task, rate=f"{speed:,.0f} pictures/s" if speed else "")
