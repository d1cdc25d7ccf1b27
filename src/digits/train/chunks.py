"""Training pictures made in seeded chunks, on worker processes, and kept in the user cache.

The reader's training pictures (`digits.train.reader_data`), the extra sets'
normalized digits (`digits.train.extra_data`) and the sheet finder's photos
(`digits.train.sheet_finder`) are made chunk by chunk, each chunk from its own
seed, so the result is the same for any number of workers (`in_chunks`). The
first two are saved in the user cache (`cached`) under a key that holds what a
few of them came out as (`fingerprint`), beside the digests of the files they
come from: a change to a generator or to the preprocessing makes a new file
instead of serving stale pictures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import numpy as np

from digits.config import usable_cores
from digits.spec import SHAPE

# The folder of the user cache (`digits.data.cache_dir`) the pictures are kept in.
CACHE = "reader-data"


def stack(images: list[np.ndarray], labels: list[int]) -> dict[str, np.ndarray]:
    """A chunk's pictures and labels as the arrays every chunk returns."""
    return {"images": np.asarray(images, np.float32).reshape(-1, *SHAPE), "labels": np.asarray(labels, np.int32)}


def merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Chunks' arrays joined, in the chunks' order."""
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def in_chunks(job: Callable, jobs: list[tuple], workers: int, progress: str | None) -> dict[str, np.ndarray]:
    """Run `job(*args)` for every tuple in `jobs`, in worker processes when there are several, and merge.

    Each job returns arrays under "images" and "labels"; the merged arrays keep the jobs' order.

    `progress` is the label of a progress bar on stderr, or None for none.
    """
    from contextlib import ExitStack

    parts: Iterable[dict[str, np.ndarray]]
    with ExitStack() as pools:
        if workers > 1 and len(jobs) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # Not fork: training has TensorFlow's threads running, and a forked copy of them can deadlock.
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
            parts = pools.enter_context(pool).map(job, *zip(*jobs, strict=False))
        else:
            parts = (job(*args) for args in jobs)
        if progress:
            from rich.progress import track

            parts = track(parts, description=progress, total=len(jobs), console=_stderr())
        done = list(parts)
    return merge(done) if done else stack([], [])


def _stderr():
    from rich.console import Console

    return Console(stderr=True)


def cached(name: str, key: bytes, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """`make()`, saved under `name` and a digest of `key` in the user cache, or read back from there."""
    import zipfile

    from digits.atomic import atomic_path
    from digits.data import cache_dir

    path = cache_dir(CACHE) / f"{name}-{hashlib.sha256(key).hexdigest()[:16]}.npz"
    try:
        with np.load(path, allow_pickle=False) as saved:
            return {"images": saved["images"], "labels": saved["labels"]}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass  # missing, truncated or unreadable: make it again
    made = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **made)  # type: ignore[arg-type]  # numpy's stub: a key might be allow_pickle
    return made


def fingerprint(*parts: dict[str, np.ndarray]) -> bytes:
    """The bytes of chunks' arrays, for a cache key: a change to what made them makes another key."""
    return b"".join(part[key].tobytes() for part in parts for key in ("images", "labels"))


def worker_count(workers: int | None = None) -> int:
    """`workers`, or by default one per core up to four (more made little difference, and cost memory)."""
    return workers or min(4, usable_cores())
