"""Keras model -> ONNX, the format every prediction runs on."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

from digits import atomic
from digits.runs import RunDir


def to_onnx(model, path: Path) -> Path:
    """Write `model` as ONNX with a dynamic batch axis: input (N, 28, 28) float32 in [0, 1]."""
    from digits.backend import load

    _, keras = load()
    spec = [keras.InputSpec(shape=(None, 28, 28), dtype="float32", name="image")]
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    # tf2onnx reports each conversion step on stdout; the CLI's output is ours.
    with atomic.atomic_path(path) as tmp, contextlib.redirect_stdout(io.StringIO()):
        model.export(str(tmp), format="onnx", verbose=False, input_signature=spec)
    return path


def export_run(run_dir: str | os.PathLike) -> Path:
    """`digits export RUN`: (re)write `model.onnx` from the run's `model.keras`."""
    run = RunDir(run_dir)
    return to_onnx(load_keras(run.keras_path), run.onnx_path)


def load_keras(path: Path):
    """Load a `.keras` file with `safe_mode`, so a file from elsewhere cannot run code."""
    import zipfile

    from digits.backend import load
    from digits.errors import ModelError

    if not path.is_file():
        raise ModelError(f"{path}: no such model file.")
    _, keras = load()
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except (ValueError, OSError, zipfile.BadZipFile, KeyError, TypeError) as err:
        raise ModelError(f"{path}: not a loadable Keras model ({str(err).splitlines()[0][:120]}).") from err
