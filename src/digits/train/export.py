"""Keras model -> ONNX, the format every prediction runs on; and shipping a run's model with the package.

`ship(run_dir)` writes a finished run's `model.onnx`, quantized to int8
(`quantize_shipped`), to `src/digits/shipped/reader.onnx` and `reader.json`
beside it (the run's config, the int8 model's metrics and the float model's),
which is how `make shipped-model` turns `digits train --preset reader` into
the model the package carries.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

from digits import atomic, calibration
from digits.runs import RunDir
from digits.spec import SHAPE, class_count


def to_onnx(
    model, path: Path, shape: tuple[int, ...] = SHAPE, name: str = "image", metadata: dict[str, str] | None = None
) -> Path:
    """Write `model` as ONNX with a dynamic batch axis: input `name`, (N, *shape) float32 (a digit: 28×28 in [0, 1]),
    and `metadata` in the model's own metadata (`with_metadata`).

    `path` is a run's model.onnx: a symbolic link there is replaced, never written through (runs.py).
    """
    from digits.train.tf import load, their_deprecations_quiet

    _, keras = load()
    spec = [keras.InputSpec(shape=(None, *shape), dtype="float32", name=name)]
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    # tf2onnx reports each conversion step on stdout; the CLI's output is ours.
    with (
        atomic.atomic_path(path, follow_symlinks=False) as tmp,
        contextlib.redirect_stdout(io.StringIO()),
        their_deprecations_quiet(),
    ):
        model.export(str(tmp), format="onnx", verbose=False, input_signature=spec)
        if metadata:
            with_metadata(tmp, metadata)
    return path


def with_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Add `metadata` to the ONNX model at `path` (its `metadata_props`, which ONNX Runtime reads back as the
    session's custom metadata), in place: `path` is a temporary file being written, never the run's own."""
    import onnx

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {prop.key: prop.value for prop in model.metadata_props} | metadata)
    onnx.save(model, str(path))


def export_run(run_dir: str | os.PathLike) -> Path:
    """`digits export RUN`: (re)write `model.onnx` from the run's `model.keras`."""
    from digits.errors import ModelError

    run = RunDir(run_dir)
    wanted = "`digits export` takes the folder of a run made by `digits train`"
    if not run.path.is_dir():
        raise ModelError(f"{run_dir}: {run.not_a_folder()}; {wanted}.")
    if not run.keras_path.exists():
        if not run.has(RunDir.CONFIG):
            raise ModelError(f"{run_dir}: not a run folder (no {RunDir.CONFIG}, no {RunDir.KERAS}); {wanted}.")
        if run.read_info().ensemble:
            raise ModelError(f"{run_dir}: an ensemble has no Keras model; its model.onnx is already its export.")
        raise ModelError(f"{run_dir}: the run has no model.keras to export ({run.missing_model_advice()}).")
    # Read before the model: a run folder's damaged config.json is named before Keras loads.
    stamp = calibration.metadata(run.read_info().calibration) if run.has(RunDir.CONFIG) else {}
    model = load_keras(run.keras_path)
    takes = tuple(model.input_shape[1:]) if isinstance(model.input_shape, tuple) else model.input_shape
    if takes != SHAPE:
        raise ModelError(
            f"{run.keras_path}: the model takes input of shape {takes}, not 28x28 images; "
            "digits exports only models of 28x28 pictures."
        )
    # Checked before the run's model.onnx is replaced: every command refuses a model of other outputs.
    gives = model.output_shape  # a tuple for one output, a list of them for several
    if not (isinstance(gives, tuple) and len(gives) == 2 and gives[-1] in (class_count(False), class_count(True))):
        raise ModelError(
            f"{run.keras_path}: the model outputs {gives}, not 10 digit probabilities (or 11, with 'not a digit'); "
            "digits exports only digit classifiers."
        )
    return to_onnx(model, run.onnx_path, metadata=stamp)


def load_keras(path: Path):
    """Load a `.keras` file with `safe_mode`, so a file from elsewhere cannot run code."""
    import zipfile

    from digits.errors import ModelError
    from digits.train.tf import load

    if not path.is_file():
        raise ModelError(f"{path}: no such model file.")
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as err:
        raise ModelError(f"{path}: cannot be read ({err.strerror or err}).") from None
    if not is_zip:
        # Keras would say "File not found" of a file that is there but damaged.
        raise ModelError(
            f"{path}: not a .keras model (a .keras file is a zip archive; this one is damaged or of another kind)."
        )
    _, keras = load()
    from digits.train import models  # noqa: F401  (registers the layers of ours a saved model names)

    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except (ValueError, OSError, zipfile.BadZipFile, KeyError, TypeError) as err:
        # Keras's messages run to several sentences; the first names the fault.
        reason = str(err).strip().splitlines()[0].split(". ")[0].rstrip(".")
        if "safe_mode" in str(err):
            reason += "; digits loads models in safe mode, which refuses code stored inside a model"
        raise ModelError(f"{path}: not a loadable Keras model ({reason}).") from err


# What reader.json keeps of a run's metrics.json: the figures that describe the shipped model.
SHIPPED_METRICS = (
    "test_accuracy",
    "test_loss",
    "macro_f1",
    "digits_refused",
    "junk_refused",
    "junk_refused_no_ink",
    "junk_pictures",
    "junk_seed",
    "parameters",
    "epochs_run",
    "train_seconds",
    "calibration",
)


def ship(run_dir: str | Path, out_dir: str | Path | None = None, data_dir=None) -> Path:
    """Ship a finished run's model with the package, as int8; return the `.onnx` path.

    `out_dir` defaults to the package's own `shipped/` folder (in a source
    checkout: `src/digits/shipped/`). `reader.json` records the run's
    config and metrics; MNIST test accuracy counts a refused digit as an error.
    The float model is then quantized in place (`quantize_shipped`).
    """
    from digits.errors import ModelError
    from digits.read.model import Recognizer, shipped_file
    from digits.train.extra_data import training_sets

    run = RunDir(run_dir)
    config, info = run.read_run()
    if info.status != "finished":
        raise ModelError(f"{run}: the run has not finished (status {info.status!r}); train it first.")
    model = Recognizer(run.path).path  # checks that it loads
    metrics = run.read_metrics()
    out = Path(out_dir) if out_dir is not None else shipped_file("reader.onnx").parent
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out / "reader.onnx", model.read_bytes())
    atomic.write_json(
        out / "reader.json",
        {
            "run": run.path.resolve().name,
            "config": config.to_dict() | {k: v for k, v in info.to_dict().items() if k not in ("status", "pid")},
            "metrics": {k: metrics[k] for k in SHIPPED_METRICS if k in metrics},
            "training_data": training_sets(config),
            "metrics_note": "test_accuracy is on the MNIST test set, argmax over all outputs: a refused digit counts as "
            "an error; digits_refused is that share; junk_refused is on make_junk(junk_pictures, "
            "junk_seed) through digits.read.pipeline.prepare, never trained on.",
        },
    )
    return quantize_shipped(out, data_dir)


def quantize_shipped(out_dir: str | Path | None = None, data_dir=None) -> Path:
    """Quantize a shipped float `reader.onnx` to int8 in place (`runtimes.quantize`), and measure it.

    Its card keeps the config; the metrics it holds become the int8 model's
    (`evaluate.model_metrics`, and the test set's calibration error; training
    time and the like stay the run's), and "float_model" keeps the float
    model's SHA-256 and metrics. The int8 model is made and measured beside,
    in `.quantizing/`; the card is written before the model replaces the
    float one, so a run killed in between is finished by running it again.
    A model that is int8 already is refused: quantizing twice would measure
    ranges on int8 rounding.
    """
    import hashlib
    import json
    import shutil

    import onnx

    from digits.calibration import expected_calibration_error
    from digits.config import TrainConfig
    from digits.errors import ModelError
    from digits.read.model import Recognizer, shipped_file
    from digits.train.evaluate import model_metrics
    from digits.train.extra_data import load_test_set
    from digits.train.runtimes import CALIBRATION_IMAGES, CALIBRATION_PERCENTILE, calibration_images, quantize

    out = Path(out_dir) if out_dir is not None else shipped_file("reader.onnx").parent
    model, card_path = out / "reader.onnx", out / "reader.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if any(node.op_type == "QuantizeLinear" for node in onnx.load(model).graph.node):
        raise ModelError(f"{model}: already int8; ship the run again to quantize its float model.")
    settings = {k: v for k, v in card["config"].items() if k in TrainConfig.names()}
    config = TrainConfig.from_dict(settings, str(card_path))
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    # A run killed after the card was written holds the float model's figures under float_model already.
    earlier = card.get("float_model", {})
    float_figures = earlier["metrics"] if earlier.get("sha256") == digest else card["metrics"]

    work = out / ".quantizing"
    work.mkdir(exist_ok=True)
    candidate = work / model.name
    atomic.write_json(work / card_path.name, card)  # beside it, its temperature applies to what is measured
    quantize(model, candidate, calibration_images(config, data_dir))
    test = load_test_set(config.dataset, data_dir)
    measured, probabilities, _ = model_metrics(Recognizer(candidate), config, test)
    if "calibration" in float_figures:
        measured["calibration"] = float_figures["calibration"] | {
            "test_ece": expected_calibration_error(probabilities, test[1])
        }
    measured = {k: v for k, v in measured.items() if k in float_figures}
    card["float_model"] = {"sha256": digest, "metrics": {k: float_figures[k] for k in measured}}
    card["metrics"] = card["metrics"] | measured
    card["int8"] = (
        "activations in 8 bits and weights (per output channel) in 7, so that ONNX Runtime's x86 kernels "
        "without VNNI do not saturate; the last layer and its softmax in float: ONNX Runtime's static "
        f"quantization, QDQ format; activation ranges at the {CALIBRATION_PERCENTILE}th percentile of "
        f"{CALIBRATION_IMAGES:,} of the run's training images (digits.train.runtimes.calibration_images)"
    )
    atomic.write_json(card_path, card)
    os.replace(candidate, model)
    shutil.rmtree(work)
    return model
