"""A run's data: the dataset split into training and validation, and the extra pictures a reader preset adds.

`split_data` scales the pixels to float32 in [0, 1] once and holds out the last `validation_split`
(as Keras does); `add_reader_data` adds what a reader preset asks for, from seeds of its own, so the
same config always gives the same pictures. The images are held where TensorFlow can train on them
without a copy of its own (`aligned_empty`). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from digits.config import TrainConfig
from digits.spec import REJECT, SHAPE
from digits.train import reader_data
from digits.train.timing import phase


@dataclass
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


# TensorFlow shares an array's memory instead of copying it (`digits.train.loop.as_tensor`) only when the
# array starts on this boundary; NumPy's own start on 16 bytes.
TENSOR_ALIGNMENT = 64


def aligned_empty(shape: tuple[int, ...], dtype: np.typing.DTypeLike) -> np.ndarray:
    """`np.empty(shape, dtype)` starting on a `TENSOR_ALIGNMENT` boundary.

    MNIST's training images are 188 MB as float32: a copy made when training starts took 0.1-0.4 s of
    a one-epoch `sprint` (9 % of it) and doubled the memory they hold.
    """
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    raw = np.empty(size + TENSOR_ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % TENSOR_ALIGNMENT
    return raw[start : start + size].view(dtype).reshape(shape)


def _aligned_concatenate(parts: list[np.ndarray]) -> np.ndarray:
    out = aligned_empty((sum(len(p) for p in parts), *parts[0].shape[1:]), parts[0].dtype)
    return np.concatenate(parts, out=out)


def training_count(images: int, validation_split: float) -> int:
    """How many of `images` train when the last `validation_split` of them is held out."""
    return images - int(round(images * validation_split))


def split_data(x: np.ndarray, y: np.ndarray, validation_split: float, limit: int | None = None) -> Split:
    """Pixels / 255 as float32 once, and the last `validation_split` held out (as Keras does)."""
    if limit:
        x, y = x[:limit], y[:limit]
    x = np.divide(x, np.float32(255), out=aligned_empty(x.shape, np.float32), dtype=np.float32)
    n_train = training_count(len(x), validation_split)  # 28x28 float32 rows: x[n_train:] is aligned too
    return Split(x[:n_train], y[:n_train].astype(np.int32), x[n_train:], y[n_train:].astype(np.int32))


# Junk negatives for training and validation, and the photographed training
# digits, come from these seeds (plus the run's seed). The held-out junk that
# evaluation measures comes from `digits.synth.junk.make_junk`'s own stream, and
# the benchmarks photograph MNIST's test digits, never its training digits.
JUNK_TRAIN_SEED, JUNK_VAL_SEED, PHOTOGRAPHED_SEED = 1000, 2000, 3000


def adds_pictures(config: TrainConfig) -> bool:
    """Whether `add_reader_data` adds anything to the dataset for this config."""
    return bool(
        config.european_ones
        or config.crossed_sevens
        or config.extra_digits
        or config.real_negatives
        or reader_data.wanted(config)
    )


def add_reader_data(
    split: Split, config: TrainConfig, progress: bool = False, data_dir: str | os.PathLike[str] | None = None
) -> Split:
    """The extra training images a reader preset asks for.

    European 1s and crossed 7s drawn onto training 1s and 7s; training digits
    photographed and read back through the reader's preprocessing; and junk
    negatives (label 10, "not a digit") for both training and validation.
    The variants and the photographed digits go to training only: validation
    stays MNIST's own digits (plus junk), comparable with the other presets.
    The extra sets (`digits.train.reader_mix`, found through `data_dir` like the
    dataset) add their writers and real non-digits.
    With `progress`, bars on stderr follow the pictures being made.
    """
    variants = config.european_ones or config.crossed_sevens
    extra = config.extra_digits or config.real_negatives
    if not adds_pictures(config):
        return split  # nothing to add: no copy of the whole training set
    x_train, y_train, x_val, y_val = [split.x_train], [split.y_train], [split.x_val], [split.y_val]
    if extra:
        from digits.train.reader_mix import extra_training

        with phase("extra sets"):
            more_train, more_val = extra_training(config, data_dir, progress)
        for xs, ys, parts in ((x_train, y_train, more_train), (x_val, y_val, more_val)):
            xs.extend(images for images, _ in parts)
            ys.extend(labels for _, labels in parts)
    if variants:
        from digits.train.augment import european_variants

        images, labels = european_variants(
            split.x_train, split.y_train, config.european_ones, config.crossed_sevens, config.seed
        )
        x_train.append(images)
        y_train.append(labels)
    if config.photo_singles or config.photo_lines:
        with phase("photograph training digits"):
            images, labels = reader_data.photographed_digits(
                split.x_train,
                split.y_train,
                config.photo_singles,
                config.photo_lines,
                seed=PHOTOGRAPHED_SEED + config.seed,
                progress=progress,
            )
        x_train.append(images)
        y_train.append(labels)
    if config.reject_class:
        for xs, ys, count, base in (
            (x_train, y_train, config.junk_train, JUNK_TRAIN_SEED),
            (x_val, y_val, config.junk_val, JUNK_VAL_SEED),
        ):
            images = (
                reader_data.negatives(count, seed=base + config.seed, progress=progress)
                if count
                else np.zeros((0, *SHAPE), np.float32)
            )
            xs.append(images)
            ys.append(np.full(len(images), REJECT, np.int32))
    return Split(
        _aligned_concatenate(x_train),
        np.concatenate(y_train).astype(np.int32),
        _aligned_concatenate(x_val),
        np.concatenate(y_val).astype(np.int32),
    )
