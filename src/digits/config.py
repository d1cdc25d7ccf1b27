"""One typed training config, validated once; the presets it starts from are in `digits.presets`.

Contract:
- `TrainConfig` is a frozen dataclass: everything that defines how a network
  is built and trained, plus what it is trained on (preset, dataset, seed,
  training subset). Its field defaults are the one home of every default.
- Each field declares its check once (`setting(check, default)`, the idea
  of scikit-learn's `_parameter_constraints`); `__post_init__` runs them all,
  so a `TrainConfig` that exists is valid. An unknown key or a bad value is
  refused with one `ConfigError` sentence, so a typo never trains silently
  with a default. `from_preset` and `from_dict` name the source in it.
- A preset (`digits.presets.PRESETS`) is plain data: only what it changes from the
  defaults. `digits train --preset NAME` picks one; flags override single keys.
- A run's bookkeeping (status, pid, epochs done, provenance) is not config:
  it is `digits.runs.RunInfo`, checked the same way (`Settings`).
- `to_dict()` is the plain JSON data a run folder's config.json holds.

This module imports nothing heavy: the CLI builds the config before
TensorFlow is loaded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Self

from digits.data import DATASETS, DEFAULT_DATASET, DIGIT_SETS, NEGATIVE_SETS
from digits.errors import ConfigError
from digits.presets import PRESETS

# ---------------------------------------------------------------- validation
# Each check returns None when the value is fine, else what it should be.

Check = Callable[[Any], "str | None"]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int of more digits than a float holds (JSON sets no limit)
        return False


def int_at_least(low: int) -> Callable:
    return lambda v: None if _is_int(v) and v >= low else f"a whole number of at least {low}"


def int_from(low: int, high: int) -> Callable:
    return lambda v: None if _is_int(v) and low <= v <= high else f"a whole number from {low:,} to {high:,}"


# NumPy's and TensorFlow's seeds are 32-bit.
MAX_SEED = 2**32 - 1
# Far past any training on a CPU; TensorFlow refuses an epoch count of more than 64 bits (exit 1).
MAX_EPOCHS = 100_000
# `digits tune`: seconds between a worker's heartbeats (one silent for twice this is dead), and the most
# epochs one trial may train.
TUNE_HEARTBEAT = 30
TUNE_MAX_EPOCHS = 30


def _number_in(low: float, high: float, *, high_open: bool = False, low_open: bool = False) -> Callable:
    def check(v):
        if is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high):
            return None
        return f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"

    return check


def one_of(*choices) -> Callable:
    return lambda v: None if v in choices else f"one of {', '.join(map(str, choices))}"


def _boolean(v) -> str | None:
    return None if isinstance(v, bool) else "true or false"


# A layer wider than this is no network for 28×28 digits on a CPU: a planted config.json asked for a
# dense layer of 3,000,000 units (9.4 GB of weights) and `train --resume` died of an allocation in TensorFlow.
MOST_UNITS = 16_384
MOST_LAYERS = 32


def _positive_ints(v) -> str | None:
    ok = isinstance(v, (list, tuple)) and len(v) <= MOST_LAYERS and all(_is_int(u) and 0 < u <= MOST_UNITS for u in v)
    return None if ok else f"a list of at most {MOST_LAYERS} whole numbers from 1 to {MOST_UNITS:,}"


def _convolutions(v) -> str | None:
    ok = (
        isinstance(v, (list, tuple))
        and v
        and len(v) <= MOST_LAYERS
        and all(isinstance(c, (list, tuple)) and len(c) == 3 and _positive_ints(c) is None for c in v)
        and all(kernel <= 28 and stride <= 28 for _, kernel, stride in v)
    )
    return (
        None
        if ok
        else (
            f"a list of at most {MOST_LAYERS} [filters, kernel, stride] triples: filters from 1 to {MOST_UNITS:,}, "
            "kernel and stride from 1 to 28"
        )
    )


def _names_from(*choices) -> Callable:
    def check(v) -> str | None:
        ok = isinstance(v, (list, tuple)) and all(name in choices for name in v) and len(set(v)) == len(v)
        return None if ok else f"a list of distinct names from {', '.join(choices)}"

    return check


def usable_cores() -> int:
    """The cores this process may run on (its affinity, where the system has one): the default count of
    worker processes, for reading in bulk, serving and making training data alike."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def process_number(v) -> str | None:
    """None for a process number a run may record (its `pid`), else what it should be."""
    # os.kill takes a C int; 0 and negative numbers name process groups, not the run's process.
    ok = isinstance(v, int) and not isinstance(v, bool) and 1 <= v < 2**31
    return None if ok else "a process number (a whole number from 1 to 2147483647)"


def run_members(v) -> str | None:
    """None for an ensemble's list of members (`digits.train.ensemble`), else what it should be."""
    ok = isinstance(v, (list, tuple)) and len(v) >= 2 and all(isinstance(m, dict) and "run" in m for m in v)
    return None if ok else "a list of at least two members, each with its run folder"


def anything(v) -> str | None:
    return None


def string(v) -> str | None:
    return None if isinstance(v, str) else "a string"


def optional(check: Callable) -> Callable:
    return lambda v: None if v is None else check(v)


# ---------------------------------------------------------------- settings


def setting(check: Check, default: Any = MISSING) -> Any:
    """A dataclass field and the check its value must pass; without a default it is required."""
    return field(default=default, metadata={"check": check})


@contextmanager
def located(where: str) -> Iterator[None]:
    """Name `where` (a file, a preset) at the start of any `ConfigError` raised inside."""
    try:
        yield
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _frozen(value: Any) -> Any:
    """Lists as tuples, all the way down: a frozen config holds no list to change in place."""
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


class Settings:
    """What `TrainConfig` and `RunInfo` share: frozen dataclasses whose fields carry their checks."""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            expected = f.metadata["check"](value)
            if expected:
                raise ConfigError(f"{f.name} is {value!r}, expected {expected}.")
            object.__setattr__(self, f.name, _frozen(value))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: dict, where: str) -> Self:
        """The settings `data` holds (JSON from a file), checked; `where` names the file in any refusal."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a JSON object of settings, found {type(data).__name__}.")
        unknown = next((key for key in data if key not in cls.names()), None)
        if unknown is not None:
            raise ConfigError(f"{where}: unknown setting {unknown!r}; known settings are {', '.join(cls.names())}.")
        missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in data]  # type: ignore[arg-type]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)}.")
        with located(where):
            return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON data (tuples back to lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


# ---------------------------------------------------------------- the config


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Settings):
    """How one network is built and trained, and on what; valid once constructed."""

    # What the run trains on; the seed makes the weights the same every time.
    preset: str = setting(string)
    dataset: str = setting(one_of(*DATASETS, *DIGIT_SETS), DEFAULT_DATASET)
    seed: int = setting(int_from(0, MAX_SEED), 0)
    train_limit: int | None = setting(optional(int_at_least(1)), None)  # only the first N training images
    # The network.
    arch: str = setting(one_of("dense", "cnn"), "dense")
    hidden: tuple[int, ...] = setting(_positive_ints)
    convs: tuple[tuple[int, int, int], ...] | None = setting(optional(_convolutions), None)  # a cnn's layers
    dropout: float = setting(_number_in(0, 1, high_open=True), 0.0)
    batch_norm: bool = setting(_boolean, False)
    # The training.
    epochs: int = setting(int_from(1, MAX_EPOCHS))
    batch_size: int = setting(int_at_least(1))
    learning_rate: float = setting(_number_in(0, 10, low_open=True))
    # cosine: decays to 0; onecycle: warms up over the first quarter, then decays (models.optimizer).
    schedule: str = setting(one_of("constant", "cosine", "onecycle"), "constant")
    weight_decay: float = setting(_number_in(0, 1), 0.0)
    validation_split: float = setting(_number_in(0, 1, high_open=True), 0.1)
    # Momentum of an exponential moving average of the weights, which becomes the model; 0 = off.
    ema: float = setting(_number_in(0, 1, high_open=True), 0.0)
    # Training targets of 1 - s for the label and s / classes spread over all classes; 0 = off.
    label_smoothing: float = setting(_number_in(0, 0.5), 0.0)
    # Patience in epochs; 0 = off. When on, the best epoch's weights are kept.
    early_stopping: int = setting(int_at_least(0), 0)
    # What "best epoch" means.
    monitor: str = setting(one_of("val_loss", "val_accuracy", "loss", "accuracy"), "val_loss")
    # true (the deformations of augment.py as set), or their strength (tuning sets 0 to 1).
    augment: bool | float = setting(
        lambda v: None if isinstance(v, bool) or _number_in(0, 2)(v) is None else "true, false or a strength in [0, 2]",
        False,
    )
    # Compile each chunk of training steps with XLA: at small batches it removes
    # the per-step overhead (the seed preset runs ~6x faster), at the cost of a
    # second or two of compile time.
    jit_compile: bool = setting(_boolean, True)
    chunk_steps: int = setting(int_at_least(1), 64)  # optimizer steps per compiled call, at most
    # For reading real pictures (see the "reader" preset): real pens and
    # cameras, European 1s and 7s, and an 11th class learnt from junk.
    augment_real: bool = setting(_boolean, False)
    european_ones: int = setting(int_at_least(0), 0)
    crossed_sevens: int = setting(int_at_least(0), 0)
    reject_class: bool = setting(_boolean, False)
    # Junk pictures made for training negatives (fewer survive preprocessing).
    junk_train: int = setting(int_at_least(0), 0)
    junk_val: int = setting(int_at_least(0), 0)
    junk_test: int = setting(int_at_least(0), 500)  # held-out junk pictures evaluation measures refusal on
    # Training digits photographed (`digits.synth.photograph`) and read back through
    # the reader's preprocessing: one-digit pictures, and numbers of 2 to 5 digits.
    photo_singles: int = setting(int_at_least(0), 0)
    photo_lines: int = setting(int_at_least(0), 0)
    # More writers and real non-digits (`digits.train.reader_mix`): names of the
    # extra digit sets whose training parts join training, and of the sets
    # of real non-digit pictures learnt as "not a digit".
    extra_digits: tuple[str, ...] = setting(_names_from(*DIGIT_SETS), ())
    # How many times each epoch sees the extra sets' training digits: their few
    # thousand writers are otherwise a small share beside MNIST's and the
    # photographed digits, and the model underfits them.
    extra_repeat: int = setting(int_at_least(1), 1)
    real_negatives: tuple[str, ...] = setting(_names_from(*NEGATIVE_SETS), ())
    # At most this many real negatives, drawn at random (0: all of them).
    real_negatives_limit: int = setting(int_at_least(0), 0)
    # Fit a temperature on the validation images after training (`digits.calibration`).
    calibrate: bool = setting(_boolean, False)
    # The `digits tune` study and trial a config came from (`train --from-study`); changes nothing in training.
    tuned_from: dict | None = setting(anything, None)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.arch == "cnn" and not self.convs:
            raise ConfigError("a cnn needs convs ([filters, kernel, stride] per layer).")
        if self.ema and self.early_stopping:
            raise ConfigError("ema and early_stopping exclude each other: the best epoch is judged on raw weights.")
        if self.real_negatives and not self.reject_class:
            raise ConfigError("real_negatives are learnt as 'not a digit', which needs reject_class true.")

    @classmethod
    def from_preset(
        cls,
        name: str,
        overrides: dict | None = None,
        dataset: str = DEFAULT_DATASET,
        seed: int = 0,
        train_limit: int | None = None,
    ) -> TrainConfig:
        """A preset with the command line's overrides (None = keep the preset's) applied, checked once."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
        overrides = overrides or {}
        unknown = [key for key in overrides if key not in PRESET_KEYS]
        if unknown:
            raise ConfigError(f"unknown override {unknown[0]!r}; a preset has {', '.join(PRESET_KEYS)}.")
        values = PRESETS[name] | {key: value for key, value in overrides.items() if value is not None}
        with located(f"preset {name!r}"):
            return cls(preset=name, dataset=dataset, seed=seed, train_limit=train_limit, **values)


# What a preset or an override may set: everything but what the run trains on.
PRESET_KEYS = tuple(name for name in TrainConfig.names() if name not in ("preset", "dataset", "seed", "train_limit"))
