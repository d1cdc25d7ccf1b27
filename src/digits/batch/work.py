"""One chunk of pictures read in a worker: the task a process pool or a Dask cluster runs.

`read_chunk(job, items)` reads a list of `(path, size, mtime_ns)` and returns one
result per item, in order: `{"path", "size", "mtime_ns", "error", "result"}`,
where `result` is `Page.to_dict()` (`digits read`) or `Digit.to_dict()`
(`digits predict`), and `error` the one sentence that says why a picture could
not be read (`result` is then None). A bad picture never stops its chunk.

Each process loads the model once (`reader`) and makes one `Reader.classify`
per chunk for the digits of all its pictures (one model call, and one more for
the turns of the digits the model is unsure of); `digits read` makes a few
more: for the halves of pieces as wide as two digits that are in doubt, for the
pictures whose only number is one digit, read whole (`Segmented.whole`), and the
steadiness test of the chunk's candidate numbers. Pictures are decoded and segmented
one at a time, so a worker holds one decoded picture at a time, whatever the
chunk size. Everything here is picklable and importable on a Dask worker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

from digits.batch.rows import model_column
from digits.errors import DigitsError
from digits.read.load import load_image
from digits.read.pipeline import segment_page
from digits.read.reader import Reader
from digits.runs import RunDir

READ = "read"
PREDICT = "predict"
T = TypeVar("T")
Item = tuple[str, int | None, int | None]  # path, size in bytes, mtime in ns (None: could not stat)


@dataclass(frozen=True)
class Job:
    """What every chunk of one batch is read with: the command, the model file, the threshold."""

    command: str  # READ or PREDICT
    model: str | None  # the .onnx file, resolved (workers must see the same path); None: the shipped model
    threshold: float = 0.5

    @cached_property  # asked once per row: built once, and carried by each pickled copy a worker gets
    def model_name(self) -> str:
        """What answered, for the rows and for resuming: the model file's name (a run's `model.onnx` as
        `<run>/model.onnx`, every run's has that name), the first 12 hex digits of the SHA-256 of the bytes
        this process loaded, the threshold and the temperature stored beside it (`digits.calibration`),
        each number exactly (repr).

        A name alone let two runs' folders of one name, or a new shipped model after an upgrade, resume
        each other's output; a threshold or a temperature changes the statuses. Any would mix answers in one file.
        """
        model = reader(self).recognizer
        in_a_run = self.model is not None and (model.path.parent / RunDir.CONFIG).is_file()
        name = f"{model.path.parent.name}/{model.path.name}" if in_a_run else model.path.name
        return model_column(name, model.sha256, self.threshold, model.temperature)


_readers: dict[Job, Reader] = {}
_lock = threading.Lock()


def reader(job: Job) -> Reader:
    """This process's reader for `job`: loaded on first use, then kept (one ONNX Runtime thread)."""
    with _lock:
        if job not in _readers:
            # One thread per process: the batch's parallelism is its processes.
            _readers[job] = Reader(job.model, threshold=job.threshold, threads=1)
        return _readers[job]


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` items (the last one shorter), in order."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def read_chunk(job: Job, items: list[Item]) -> list[dict[str, Any]]:
    """Read every picture of a chunk: one `Reader.classify` for all their digits (for `read`, one more for
    the halves of pieces as wide as two digits in doubt, one for the pictures read whole that a lone digit
    needs, and one or two to test the numbers)."""
    model = reader(job)
    results = [
        {"path": path, "size": size, "mtime_ns": mtime, "error": None, "result": None} for path, size, mtime in items
    ]
    prepared: list[Any] = []  # per picture: its Segmented (read) or its Prepared (predict)
    where: list[int] = []
    for index, (path, _, _) in enumerate(items):
        try:
            image = load_image(path)
            # Without --explain's steps (full-size arrays), a chunk holds little memory.
            prepared.append(segment_page(image) if job.command == READ else model.prepare(image, explain=False))
            where.append(index)
        except DigitsError as err:
            results[index]["error"] = str(err)
        except Exception as err:  # a bug in digits must not cost the rest of the batch
            results[index]["error"] = f"{path}: unexpected {type(err).__name__} while reading it ({err})."
            results[index]["bug"] = True  # the command's exit code says so: 1, not 2
    answers: list[Any] = model.decide_pages(prepared) if job.command == READ else model.answer_many(prepared)
    for index, answer in zip(where, answers, strict=True):
        results[index]["result"] = answer.to_dict()
    return results
