"""Confidence you can trust: one temperature, fitted on validation data, applied to every prediction.

Contract. A preset with `"calibrate": true` (the reader) fits, after
training, the temperature T that minimises the negative log-likelihood of
softmax(log p / T) on its *validation* images (never the test set) and
stores it in the run's config.json as `calibration` (T, and the NLL and
expected calibration error before and after, on those images); metrics.json
repeats it, the run's ONNX models hold T in their metadata (`METADATA_KEY`),
so a copy taken out of the run keeps it, and `digits.train.export.ship` carries
the config into the shipped model's card (`reader.json`).
`digits.read.model.Recognizer` reads it back (`stored_temperature`) and
applies it in `predict_proba`, so the reader,
the CLI and the server all report calibrated confidence. Dividing the
log-probabilities by one positive number never changes which class is
largest: accuracy is untouched. A model with no stored temperature gets its
probabilities unchanged. Log-probabilities are the logits up to a constant
per row, which the softmax cancels, so the ONNX model needs no change.

This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from digits.safe_open import read_regular

# The temperatures searched: beyond these a model's confidence is noise, not something to rescale.
_BOUNDS = (0.05, 20.0)
FLOOR = 1e-12  # probabilities below this are taken as this before the log (also in `train.ensemble`'s graph)
_BINS = 15
# The key of the temperature in an ONNX model's metadata (its `metadata_props`), as text.
METADATA_KEY = "digits.temperature"
# A model's card is a few kilobytes; a link to /dev/zero or a huge file beside a model is refused, not read.
_MAX_CARD_BYTES = 2**20


def apply(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T), row by row; T == 1 returns `probabilities` itself."""
    if temperature == 1.0:
        return probabilities
    if not 0 < temperature < math.inf:  # 0 gave NaN everywhere; a negative T turned the ranking upside down
        raise ValueError(f"a temperature is a positive number, not {temperature}.")
    from scipy.special import softmax  # here: `digits.runs` imports this module, and a CLI start need not load SciPy

    logits = np.log(np.maximum(probabilities.astype(np.float64), FLOOR)) / temperature
    return softmax(logits, axis=1).astype(np.float32)


def nll(probabilities: np.ndarray, labels: np.ndarray, floor: float = FLOOR) -> float:
    """Mean negative log-likelihood of the labels, each probability floored at `floor` (a 0 is not infinite)."""
    rows = np.arange(len(labels))
    return float(-np.log(np.maximum(probabilities[rows, labels].astype(np.float64), floor)).mean())


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = _BINS) -> float:
    """The gap between confidence and accuracy, averaged over equal-width confidence bins, weighted by count."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = sum(
        abs(correct[which == b].mean() - confidence[which == b].mean()) * (which == b).sum()
        for b in range(bins)
        if (which == b).any()
    )
    return float(gap / len(labels))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T in `_BOUNDS` that minimises the NLL of `apply(probabilities, T)` on these labels."""
    if len(probabilities) != len(labels) or not len(labels):  # fancy indexing would fit on the first rows only
        raise ValueError(
            f"a temperature is fitted on rows with one label each: {len(probabilities)} rows, {len(labels)} labels."
        )
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    log_p = np.log(np.maximum(probabilities.astype(np.float64), FLOOR))
    rows = np.arange(len(labels))

    def loss(log_t: float) -> float:
        return float(-log_softmax(log_p / math.exp(log_t), axis=1)[rows, labels].mean())

    found = minimize_scalar(loss, bounds=tuple(math.log(b) for b in _BOUNDS), method="bounded")
    return float(math.exp(found.x))


def calibrate(probabilities: np.ndarray, labels: np.ndarray, fitted_on: str) -> dict:
    """The `calibration` record a run stores: T and what it does on the images it was fitted on."""
    labels = np.asarray(labels)
    temperature = fit_temperature(probabilities, labels)
    after = apply(probabilities, temperature)
    return {
        "temperature": round(temperature, 4),
        "fitted_on": fitted_on,
        "nll_before": round(nll(probabilities, labels), 5),
        "nll_after": round(nll(after, labels), 5),
        "ece_before": round(expected_calibration_error(probabilities, labels), 5),
        "ece_after": round(expected_calibration_error(after, labels), 5),
    }


def check(value) -> str | None:
    """None when `value` is a stored calibration record, else what it should be (for `digits.runs.RunInfo`)."""
    t = value.get("temperature") if isinstance(value, dict) else None
    # Only what `fit_temperature` can find: 1e-320 made every confidence NaN, and 10**400 is no float.
    ok = isinstance(t, (int, float)) and not isinstance(t, bool) and _BOUNDS[0] <= t <= _BOUNDS[1]
    return None if ok else f"an object whose temperature is a number from {_BOUNDS[0]} to {_BOUNDS[1]}"


def metadata(record: dict | None) -> dict[str, str]:
    """What an ONNX model's metadata holds of a run's `calibration` record: T as text (nothing without one)."""
    return {METADATA_KEY: repr(float(record["temperature"]))} if record else {}


def stored_temperature(model: Path, model_metadata: dict[str, str] | None = None) -> float:
    """The temperature stored with an `.onnx` model, 1.0 when none is.

    Looked for in the model's card beside it (`reader.onnx` -> `reader.json`, a
    JSON object whose key config.calibration holds it; another JSON file of
    that name is not a card), for a run's `model.onnx` in the run's
    config.json, else in the model's own metadata (`model_metadata`, its
    `metadata_props`: a model copied out of its run). A card, config or
    metadata that cannot be read is a `ModelError` / `RunError` naming the
    file: silently dropping the calibration would report other confidences
    than the model's.
    """
    from digits.errors import ModelError
    from digits.runs import RunDir

    card, record, where = model.with_suffix(".json"), None, model
    if card.exists() or card.is_symlink():  # a card that is not a readable file is an error, not no card
        fix = "restore it or ship the model again"
        try:
            found = json.loads(read_regular(card, _MAX_CARD_BYTES, ModelError, fix).decode())
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise ModelError(f"{card}: the model's card cannot be read ({err}); {fix}.") from None
        # A card holds a "config" object; any other JSON of that name (an app's own) is not ours to read.
        config = found.get("config") if isinstance(found, dict) else None
        if isinstance(config, dict):
            record, where = config.get("calibration"), card
    run_config = model.parent / RunDir.CONFIG  # one that is no regular file is named by read_info, not passed over
    if record is None and model.name == RunDir.ONNX and (run_config.exists() or run_config.is_symlink()):
        record, where = RunDir(model.parent).read_info().calibration, model.parent / RunDir.CONFIG
    if record is None and model_metadata and METADATA_KEY in model_metadata:
        text = model_metadata[METADATA_KEY]
        try:
            record, where = {"temperature": float(text)}, model
        except ValueError:
            raise ModelError(f"{model}: its metadata's temperature is {text!r}, not a number.") from None
    if record is None:
        return 1.0
    if check(record):
        raise ModelError(f"{where}: its calibration is {record!r}, {check(record)}.")
    return float(record["temperature"])
