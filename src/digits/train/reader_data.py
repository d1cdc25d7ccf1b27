"""Training images as the reader sees them: made-up pictures run through its own preprocessing.

A model that reads photos learns best from the 28×28 images the reader's
preprocessing makes of photos (strokes brought into MNIST's range, chalk
grain, crops of digits found in a line), not only from MNIST's clean scans.
This module makes two such sets for a reader preset (`digits.train.dataset.add_reader_data`):

  * `negatives`: junk pictures (`digits.synth.junk`) through `digits.read.pipeline.prepare`,
    learnt as the 11th class, "not a digit";
  * `photographed_digits`: MNIST *training* digits photographed by
    `digits.synth.photograph`, single digits through `prepare` and numbers through
    `segment_page`, each with its label. The realistic benchmark sets are
    drawn from MNIST's *test* digits, so no digit they show is ever trained on.

Both are made in chunks of `_CHUNK` pictures, each chunk from its own seeded
random stream, so the result is the same for any number of worker
processes (`digits.train.chunks`). Making them costs tens of milliseconds a
picture, so both are cached in the user cache (`~/.cache/digits/reader-data/`). The cache key holds
a digest of a first small chunk's output, so a change to the generators or
to the preprocessing makes a new file instead of serving stale images.
"""

from __future__ import annotations

import hashlib

import numpy as np

from digits.config import TrainConfig
from digits.train.chunks import cached, fingerprint, in_chunks, merge, stack, worker_count

__all__ = ["looks_like_a_one", "negatives", "photographed_digits", "wanted"]

# Pictures per chunk: the unit of work of one worker process.
_CHUNK = 200
# A chunk of numbers (2 to 5 digits each) draws their digits at random from its
# own slice of this many training digits; a chunk of single digits has one each.
_DIGITS_PER_LINE_CHUNK = 4 * _CHUNK
# The random stream (`digits.synth.photograph.random_stream`) that orders the training digits.
_ORDER_STREAM = 6


def looks_like_a_one(image: np.ndarray) -> bool:
    """A single straight stroke within 40 degrees of vertical: what a 1 is, so never a negative.

    Judged on the prepared 28×28 image from the ink's second moments: the
    stroke is straight when the ink's spread across its main axis is small
    next to its spread along it.
    """
    rows, cols = np.nonzero(image > 0.3)
    if rows.size < 3:
        return False
    covariance = np.cov(np.stack([rows, cols]).astype(np.float64))
    values, vectors = np.linalg.eigh(covariance)
    along = vectors[:, 1]  # (row, col) direction of the larger spread
    straight = values[0] < (0.3**2) * values[1]
    return bool(straight and abs(along[0]) > np.cos(np.radians(40)))


def wanted(config: TrainConfig) -> bool:
    """Whether a training config asks for any of these pictures."""
    return bool(config.reject_class or config.photo_singles or config.photo_lines)


# --- Junk: "not a digit" --------------------------------------------------------


def _negatives_chunk(seed: int, chunk: int, n: int) -> dict[str, np.ndarray]:
    from digits.read.pipeline import prepare
    from digits.spec import REJECT
    from digits.synth.junk import make_junk

    kept = []
    for picture, _ in make_junk(n, seed=(seed, chunk)):
        prepared = prepare(picture, explain=False)
        if prepared.has_ink and not looks_like_a_one(prepared.image):
            kept.append(prepared.image)
    return stack(kept, [REJECT] * len(kept))


def negatives(n: int, seed: int, workers: int | None = None, cache: bool = True, progress: bool = False) -> np.ndarray:
    """`n` junk pictures through `prepare`, as (M, 28, 28) float32 training negatives.

    Pictures in which the pipeline finds no ink are dropped (the reader
    refuses those before the model sees them), and so are those it turns
    into one near-vertical straight stroke, which is a 1; so M ≤ n. With
    `progress`, a bar on stderr follows the making (not a read from the cache).
    """
    jobs = [(seed, chunk, min(_CHUNK, n - start)) for chunk, start in enumerate(range(0, n, _CHUNK))]

    def make():
        return in_chunks(_negatives_chunk, jobs, worker_count(workers), f"{n} junk pictures" if progress else None)

    if not cache:
        return make()["images"]
    probe = _negatives_chunk(seed, 0, min(_CHUNK, n, 20))
    return cached(f"negatives-{n}-{seed}", fingerprint(probe), make)["images"]


# --- MNIST training digits, photographed ----------------------------------------------


def _singles_chunk(seed: int, chunk: int, digits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    from digits.read.pipeline import prepare
    from digits.synth.photograph import make_singles

    kept: list[np.ndarray] = []
    kept_labels: list[int] = []
    for picture, label in make_singles(digits, labels, len(digits), seed=(seed, chunk)):
        prepared = prepare(picture, explain=False)
        if prepared.has_ink:
            kept.append(prepared.image)
            kept_labels.append(label)
    return stack(kept, kept_labels)


def _lines_chunk(seed: int, chunk: int, digits: np.ndarray, labels: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """The digits of `n` photographed numbers, from the numbers the reader splits into exactly their digits."""
    from digits.read.pipeline import segment_page
    from digits.synth.photograph import make_lines

    kept: list[np.ndarray] = []
    kept_labels: list[int] = []
    for picture, text in make_lines(digits, labels, n, seed=(seed, chunk)):
        lines = segment_page(picture).lines
        # Any other split leaves no way to tell which piece is which digit.
        if len(lines) == 1 and len(lines[0]) == len(text):
            kept.extend(piece.image for piece in lines[0])
            kept_labels.extend(int(character) for character in text)
    return stack(kept, kept_labels)


def photographed_digits(
    x: np.ndarray,
    y: np.ndarray,
    singles: int,
    lines: int,
    seed: int,
    workers: int | None = None,
    cache: bool = True,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Digits of (x, y) photographed as `singles` one-digit pictures and `lines` numbers, as the reader sees them.

    x: (N, 28, 28) MNIST digits, uint8 0-255 or float in [0, 1]; y: their labels.
    Returns (M, 28, 28) float32 images and their labels. A single digit in
    which the pipeline finds no ink, and a number it splits into more or
    fewer pieces than it has digits, are left out. With `progress`, bars on
    stderr follow the making (not a read from the cache).
    """
    if not singles and not lines:
        empty = stack([], [])
        return empty["images"], empty["labels"]
    x = np.asarray(x)
    digits = np.round(x * 255).astype(np.uint8) if x.dtype.kind == "f" else x.astype(np.uint8)
    y = np.asarray(y)
    # Digits are taken in one seeded order, a slice per chunk, so none repeats
    # until all have been photographed once.
    from digits.synth.photograph import random_stream

    order, taken = random_stream(seed, _ORDER_STREAM).permutation(len(digits)), 0

    def take(count: int) -> np.ndarray:
        nonlocal taken
        picked = order[np.arange(taken, taken + count) % len(order)]
        taken += count
        return picked

    jobs_singles, jobs_lines = [], []
    for chunk, start in enumerate(range(0, singles, _CHUNK)):
        pick = take(min(_CHUNK, singles - start))
        jobs_singles.append((seed, chunk, digits[pick], y[pick]))
    for chunk, start in enumerate(range(0, lines, _CHUNK)):
        pick = take(_DIGITS_PER_LINE_CHUNK)
        jobs_lines.append((seed, chunk, digits[pick], y[pick], min(_CHUNK, lines - start)))

    def make():
        return merge(
            [
                in_chunks(
                    _singles_chunk,
                    jobs_singles,
                    worker_count(workers),
                    f"{singles} photographed digits" if progress else None,
                ),
                in_chunks(
                    _lines_chunk,
                    jobs_lines,
                    worker_count(workers),
                    f"{lines} photographed numbers" if progress else None,
                ),
            ]
        )

    if not cache:
        made = make()
    else:
        # A few pictures of each kind made now, and the digits themselves:
        # a change to either generator, to the preprocessing or to the
        # training split gives another cache file.
        probes = []
        if jobs_singles:
            _, _, first_digits, first_labels = jobs_singles[0]
            probes.append(_singles_chunk(seed, 0, first_digits[:10], first_labels[:10]))
        if jobs_lines:
            _, _, first_digits, first_labels, _ = jobs_lines[0]
            probes.append(_lines_chunk(seed, 0, first_digits[:20], first_labels[:20], 5))
        # numpy's stubs do not say that an ndarray is a buffer; hashlib reads it as one.
        digest = hashlib.sha256(digits)  # type: ignore[arg-type]
        digest.update(np.ascontiguousarray(y, np.int64))  # type: ignore[arg-type]
        data = digest.digest()
        made = cached(f"photographed-{singles}-{lines}-{seed}", fingerprint(*probes) + data, make)
    return made["images"], made["labels"]
