"""Training presets as plain data, and the one validation every config goes through.

A preset is a dict of everything that defines how a network is built and
trained; `digits train --preset NAME` picks one and command-line flags
override single keys. A run's config is a preset plus the run's own keys
(dataset, seed, status, ...). `make_config` and `check_config` refuse an
unknown key or a bad value with one sentence, so a typo never trains
silently with a default.

This module imports nothing heavy: the CLI checks `--preset` against
`PRESETS` before TensorFlow is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from digits import calibration
from digits.errors import ConfigError
from digits.data import DIGIT_SETS, NEGATIVE_SETS

# What every preset starts from; each one below states only what it changes.
_BASE = {
    "arch": "dense",
    "dropout": 0.0,
    "batch_norm": False,
    "schedule": "constant",
    "weight_decay": 0.0,
    "validation_split": 0.1,
    "early_stopping": 0,  # patience in epochs; 0 = off. When on, the best epoch's weights are kept.
    "monitor": "val_loss",  # what "best epoch" means
    "augment": False,
    # Compile each chunk of training steps with XLA: at small batches it removes
    # the per-step overhead (the seed preset runs ~6x faster), at the cost of a
    # second or two of compile time.
    "jit_compile": True,
    # For reading real pictures (see the "reader" preset): real pens and
    # cameras, European 1s and 7s, and an 11th class learnt from junk.
    "augment_real": False,
    "european_ones": 0,
    "crossed_sevens": 0,
    "reject_class": False,
    "junk_train": 0,  # junk pictures made for training negatives (fewer survive preprocessing)
    "junk_val": 0,
    # Training digits photographed (`digits.synth.photograph`) and read back through
    # the reader's preprocessing: one-digit pictures, and numbers of 2 to 5 digits.
    "photo_singles": 0,
    "photo_lines": 0,
    # More writers and real non-digits (`digits.reader_mix`): names of the
    # extra digit sets whose training parts join training, and of the sets
    # of real non-digit pictures learnt as "not a digit".
    "extra_digits": [],
    "real_negatives": [],
    # Fit a temperature on the validation images after training (`digits.calibration`).
    "calibrate": False,
}

PRESETS: dict[str, dict] = {
    # The article, exactly: 784-128-32-10, Adam defaults, batch 32, 25 epochs,
    # the last 20 % of the training set held out for validation.
    "seed": {**_BASE, "hidden": [128, 32], "epochs": 25, "batch_size": 32, "learning_rate": 1e-3,
             "validation_split": 0.2},
    # The default: the article's network, trained fast. Large batches with a
    # cosine-decayed learning rate reach the article's accuracy in a few
    # seconds instead of a couple of minutes.
    # With only ~100 steps per epoch, XLA's compile time costs more than it saves.
    "fast": {**_BASE, "hidden": [128, 32], "epochs": 8, "batch_size": 512, "learning_rate": 5e-3,
             "schedule": "cosine", "jit_compile": False},
    # The article's family done right: wider, dropout, decoupled weight decay,
    # a cosine schedule and early stopping that restores the best weights.
    # Validation loss starts rising from over-confidence long before validation
    # accuracy stops improving, so the best epoch is chosen by accuracy.
    "mlp": {**_BASE, "hidden": [1024, 1024], "dropout": 0.5, "epochs": 30, "batch_size": 256,
            "learning_rate": 1e-3, "schedule": "cosine", "weight_decay": 1e-4, "early_stopping": 10,
            "monitor": "val_accuracy"},
    # Dense only, on images deformed on the fly (affine + elastic): the
    # Simard/Cireşan recipe.
    "mlp-aug": {**_BASE, "hidden": [1024, 1024], "dropout": 0.2, "epochs": 40, "batch_size": 256,
                "learning_rate": 1e-3, "schedule": "cosine", "weight_decay": 1e-4, "augment": True},
    # A small convnet: three 'same' convolutions of stride 2 (28 -> 14 -> 7 -> 4
    # pixels) instead of convolutions plus max-pooling, each with batch
    # normalization, on deformed images. Striding does the downsampling inside
    # the convolution, so three layers cost less than the two-layer pooled
    # version (25 s per epoch on 2 cores instead of 46 s). It runs as a plain
    # graph: XLA's CPU convolutions measured over 10x slower than TensorFlow's own.
    "cnn": {**_BASE, "arch": "cnn", "convs": [[32, 5, 2], [64, 5, 2], [128, 3, 2]], "jit_compile": False,
            "hidden": [128], "dropout": 0.3, "batch_norm": True, "epochs": 30, "batch_size": 128,
            "learning_rate": 2e-3, "schedule": "cosine", "weight_decay": 1e-4, "augment": True},
    # The model the package ships, for real pictures: the cnn, plus an 11th
    # class "not a digit" learnt from generated junk run through the
    # preprocessing (`digits.train.reader_data.negatives`), training digits
    # photographed and read back the same way (`reader_data.photographed_digits`),
    # pens from hairline to marker, blur and faint ink (`augment.real_batch`),
    # wider position and size jitter, and European 1s and crossed 7s
    # (`augment.european_variants`). The photographed digits outnumber MNIST's
    # own, so the junk grows with them: with 12000 junk pictures beside them,
    # specks and textures were read as digits twice as often. Issue 19: the
    # writers of USPS, Semeion, CVL (train split) and DIDA, and real non-digits
    # (Omniglot, QuickDraw, CoMNIST) beside the generated junk.
    "reader": {**_BASE, "arch": "cnn", "convs": [[32, 5, 2], [64, 5, 2], [128, 3, 2]], "jit_compile": False,
               "hidden": [128], "dropout": 0.3, "batch_norm": True, "epochs": 30, "batch_size": 128,
               "learning_rate": 2e-3, "schedule": "cosine", "weight_decay": 1e-4, "augment": True,
               "augment_real": True, "european_ones": 3000, "crossed_sevens": 2000,
               "reject_class": True, "junk_train": 30000, "junk_val": 1200, "photo_singles": 20000,
               "photo_lines": 20000, "extra_digits": list(DIGIT_SETS), "real_negatives": list(NEGATIVE_SETS),
               "calibrate": True},
    # A seconds-long smoke test for the test suite and for trying the CLI.
    "tiny": {**_BASE, "hidden": [32], "epochs": 2, "batch_size": 256, "learning_rate": 3e-3},
}

DEFAULT_PRESET = "fast"


# ---------------------------------------------------------------- validation
# Each check returns None when the value is fine, else what it should be.


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _int_at_least(low: int) -> Callable:
    return lambda v: None if _is_int(v) and v >= low else f"a whole number of at least {low}"


def _number_in(low: float, high: float, *, high_open: bool = False, low_open: bool = False) -> Callable:
    def check(v):
        if _is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high):
            return None
        return f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    return check


def _one_of(*choices) -> Callable:
    return lambda v: None if v in choices else f"one of {', '.join(map(str, choices))}"


def _boolean(v) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _positive_ints(v) -> str | None:
    ok = isinstance(v, list) and all(_is_int(u) and u > 0 for u in v)
    return None if ok else "a list of positive whole numbers"


def _convolutions(v) -> str | None:
    ok = isinstance(v, list) and v and all(isinstance(c, list) and len(c) == 3 and _positive_ints(c) is None for c in v)
    return None if ok else "a list of [filters, kernel, stride] triples of positive whole numbers"


def _names_from(*choices) -> Callable:
    ok = lambda v: isinstance(v, list) and all(name in choices for name in v) and len(set(v)) == len(v)  # noqa: E731
    return lambda v: None if ok(v) else f"a list of distinct names from {', '.join(choices)}"


def _anything(v) -> str | None:
    return None


def _optional(check: Callable) -> Callable:
    return lambda v: None if v is None else check(v)


# Every key a preset may hold, with its check. A new preset key is added here.
PRESET_KEYS: dict[str, Callable] = {
    "arch": _one_of("dense", "cnn"),
    "hidden": _positive_ints,
    "convs": _convolutions,
    "dropout": _number_in(0, 1, high_open=True),
    "batch_norm": _boolean,
    "schedule": _one_of("constant", "cosine"),
    "weight_decay": _number_in(0, 1),
    "validation_split": _number_in(0, 1, high_open=True),
    "early_stopping": _int_at_least(0),
    "monitor": _one_of("val_loss", "val_accuracy", "loss", "accuracy"),
    # true (the deformations of augment.py as set), or their strength (tuning sets 0 to 1).
    "augment": lambda v: None if isinstance(v, bool) or _number_in(0, 2)(v) is None else "true, false or a strength in [0, 2]",
    "jit_compile": _boolean,
    "epochs": _int_at_least(1),
    "batch_size": _int_at_least(1),
    "learning_rate": _number_in(0, 10, low_open=True),
    "chunk_steps": _int_at_least(1),
    "augment_real": _boolean,
    "european_ones": _int_at_least(0),
    "crossed_sevens": _int_at_least(0),
    "reject_class": _boolean,
    "junk_train": _int_at_least(0),
    "junk_val": _int_at_least(0),
    "photo_singles": _int_at_least(0),
    "photo_lines": _int_at_least(0),
    "extra_digits": _names_from(*DIGIT_SETS),
    "real_negatives": _names_from(*NEGATIVE_SETS),
    "calibrate": _boolean,
    "junk_test": _int_at_least(0),  # held-out junk pictures evaluation measures refusal on (default 500)
    # The `digits tune` study and trial a config came from (`train --from-study`); changes nothing in training.
    "tuned_from": _anything,
}

# What a run adds to its preset in config.json: identity, then what training recorded.
RUN_KEYS: dict[str, Callable] = {
    "preset": _anything,
    "dataset": _anything,
    "seed": _int_at_least(0),
    "train_limit": _optional(_int_at_least(1)),
    "provenance": _anything,
    "parameters": _optional(_int_at_least(0)),
    "status": _anything,
    "pid": _anything,
    "epochs_done": _optional(_int_at_least(0)),
    "calibration": calibration.check,  # the temperature fitted after training, when the preset calibrates
    "command": _anything,  # runs made before provenance existed kept their command line here
}

REQUIRED_KEYS = ("arch", "hidden", "epochs", "batch_size", "learning_rate")


def check_config(config: dict, where: str) -> dict:
    """Refuse an unknown key or a bad value in `config`; `where` names its source in the sentence."""
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: expected a JSON object of settings, found {type(config).__name__}.")
    known = PRESET_KEYS | RUN_KEYS
    for key, value in config.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r}; known settings are {', '.join(PRESET_KEYS)}.")
        expected = known[key](value)
        if expected:
            raise ConfigError(f"{where}: {key} is {value!r}, expected {expected}.")
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}.")
    if config["arch"] == "cnn" and "convs" not in config:
        raise ConfigError(f"{where}: a cnn needs convs ([filters, kernel, stride] per layer).")
    if config.get("real_negatives") and not config.get("reject_class"):
        raise ConfigError(f"{where}: real_negatives are learnt as 'not a digit', which needs reject_class true.")
    return config


def make_config(preset: str, overrides: dict, dataset: str, seed: int, train_limit: int | None) -> dict:
    """A preset's plain-data config with the command line's overrides applied and checked."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    config = {"preset": preset, **PRESETS[preset]}
    unknown = [key for key in overrides if key not in PRESET_KEYS]
    if unknown:
        raise ConfigError(f"unknown override {unknown[0]!r}; a preset has {', '.join(PRESET_KEYS)}.")
    config.update({k: v for k, v in overrides.items() if v is not None})
    config.update(dataset=dataset, seed=seed, train_limit=train_limit)
    return check_config(config, f"preset {preset!r}")
