"""What a reader preset adds from the extra sets: more writers, and real pictures of "not a digit".

Contract (`digits.train.dataset.add_reader_data` calls `extra_training`):

  * `extra_digits` names digit sets (`digits.data.DIGIT_SETS`) whose
    *training* parts join the training images, `extra_repeat` times each
    (with `augment` on, every copy is deformed afresh). CVL's validation writers join
    the validation images instead, so validation (and the temperature fitted
    on it, `digits.calibration`) sees writers training never saw; CVL's
    evaluation writers, and every set's test part, are never touched here.
  * `real_negatives` names non-digit sets (`extra_data.NEGATIVE_SETS`), learnt
    as the 11th class beside the generated junk, at most
    `real_negatives_limit` of them, drawn at random. A fixed 1/20 of them goes
    to validation. A negative that the reader's rule for junk calls a 1 (one
    near-vertical straight stroke: Latin l, I, Korean ㅣ) is dropped as the
    generated junk's are, or the model would learn to refuse real 1s.
    QuickDraw's categories that `real-digits/junk` also shows are kept out
    by `extra_data.load_negatives`.

Images come back float32 in [0, 1], labels int32, as `digits.train.dataset.split_data` makes them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from digits.config import TrainConfig
from digits.train import extra_data

# Added to the run's seed: which real negatives go to validation.
REAL_NEGATIVES_SEED = 4000
_VALIDATION_SHARE = 20  # one in this many real negatives validates


def _floats(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / np.float32(255)


def more_writers(
    names: Sequence[str], data_dir: str | os.PathLike | None, progress: bool = False, repeat: int = 1
) -> tuple[list, list]:
    """(training parts, validation parts) of the named digit sets, each part (images, labels); each
    training part holds its set's training digits `repeat` times over."""
    train, val = [], []
    for name in names:
        parts = extra_data.load_parts(name, data_dir, progress=progress)
        images, labels = parts["train"]
        # A digit set's parts always have labels (only negatives come without).
        train.append((np.tile(_floats(images), (repeat, 1, 1)), np.tile(labels.astype(np.int32), repeat)))  # type: ignore[union-attr]
        if "val" in parts:
            val.append((_floats(parts["val"][0]), parts["val"][1].astype(np.int32)))  # type: ignore[union-attr]
    return train, val


def real_negatives(
    names: Sequence[str], data_dir: str | os.PathLike | None, seed: int, limit: int = 0, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) real non-digits, float32 (N, 28, 28), at most `limit` (0: all) drawn at
    random; what reads as a 1 is left out."""
    from digits.train.reader_data import looks_like_a_one

    images = _floats(extra_data.load_negatives(tuple(names), data_dir, progress=progress))
    images = images[[not looks_like_a_one(image) for image in images]]
    order = np.random.default_rng(REAL_NEGATIVES_SEED + seed).permutation(len(images))[: limit or None]
    to_val = order[::_VALIDATION_SHARE]
    return images[np.setdiff1d(order, to_val)], images[to_val]


def extra_training(
    config: TrainConfig, data_dir: str | os.PathLike | None, progress: bool = False
) -> tuple[list, list]:
    """(training parts, validation parts), each part (images, labels), that the config's extra sets add."""
    from digits.spec import REJECT

    train, val = more_writers(config.extra_digits, data_dir, progress, config.extra_repeat)
    if config.real_negatives:
        negatives_train, negatives_val = real_negatives(
            config.real_negatives, data_dir, config.seed, config.real_negatives_limit, progress
        )
        train.append((negatives_train, np.full(len(negatives_train), REJECT, np.int32)))
        val.append((negatives_val, np.full(len(negatives_val), REJECT, np.int32)))
    return train, val
