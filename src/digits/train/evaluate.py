"""Evaluate a run on its untouched test set and write its report.

Evaluation runs the exported ONNX model, the very file `predict` and `serve`
use. `test_accuracy` is the model's alone; `test_accuracy_as_read` is what
users get from `predict`, `read` and `serve`, which read each image as
`Reader.classify` does (turned ±10° where the model is unsure,
`digits.read.turns`). The report is metrics.json plus three plots, all
written through the run's `RunDir`.

A model with an 11th class ("not a digit") is scored by argmax over all 11
outputs: a real test digit it refuses counts as an error in `test_accuracy`,
and `digits_refused` says how often that happened. Its report adds
`junk_refused`, measured on junk pictures it never trained on.
"""

from __future__ import annotations

import os
from typing import TypeGuard

import numpy as np

from digits import atomic
from digits.calibration import nll
from digits.config import TrainConfig
from digits.data import class_names
from digits.errors import RunError
from digits.read.model import Recognizer
from digits.read.turns import averaged
from digits.runs import RunDir, RunInfo
from digits.spec import REJECT
from digits.synth.junk import HELD_OUT_SEED, make_junk
from digits.train import metrics as run_metrics
from digits.train import plots
from digits.train.extra_data import load_test_set as load_test
from digits.train.timing import phase

MISTAKES_SHOWN = 36


# Keras clips probabilities here in its cross-entropy: the test loss is then the validation loss's kin.
_KERAS_EPSILON = 1e-7


def report_run(
    run: RunDir,
    config: TrainConfig,
    info: RunInfo,
    history: dict,
    test: tuple[np.ndarray, np.ndarray],
    best_epoch: int | None = None,
    train_seconds: float | None = None,
    plotter=None,
    curves_sent: bool = False,
) -> dict:
    """Test metrics, overfitting verdict and the three plots, all written into the run folder.

    `plotter` (plots.Plotter) draws the plots in its own process; without one they are drawn here.
    `curves_sent`: the caller has already sent `curves_plot` to the plotter (it needs no test results).
    """
    with phase("evaluation"):
        metrics, recognizer, predicted = _test_metrics(run, config, info, history, test, best_epoch, train_seconds)
    with phase("plots (waited for)"):
        _plots(run, config, history, test, metrics, recognizer, predicted, plotter, curves_sent)
    return metrics


def _test_metrics(run: RunDir, config: TrainConfig, info: RunInfo, history: dict, test, best_epoch, train_seconds):
    recognizer = Recognizer(run.path)
    measured, probabilities, predicted = model_metrics(recognizer, config, test)
    metrics = {
        "dataset": config.dataset,
        "preset": config.preset,
        "seed": config.seed,
        **measured,
        "parameters": info.parameters,
        "epochs_run": len(history.get("loss", [])),
        "train_seconds": train_seconds,
        "overfitting": run_metrics.overfitting(history, monitor=config.monitor),
    }
    if best_epoch:
        metrics["overfitting"]["best_epoch"] = best_epoch
    if info.ensemble:
        metrics["overfitting"]["verdict"] = "An ensemble has no learning curves of its own: each member's run has them."
    if info.calibration is not None:
        from digits.calibration import expected_calibration_error

        # The test set's calibration error, with the temperature fitted on validation images applied.
        metrics["calibration"] = info.calibration | {"test_ece": expected_calibration_error(probabilities, test[1])}
    if train_seconds is None:
        metrics["train_seconds"] = _previous(run, "train_seconds")
    run.write_metrics(metrics)
    return metrics, recognizer, predicted


def model_metrics(recognizer: Recognizer, config: TrainConfig, test) -> tuple[dict, np.ndarray, np.ndarray]:
    """(metrics, probabilities, predicted classes) of a model on `test`: loss, accuracy, per-class figures and,
    with "not a digit", how often it refuses test digits and generated junk (`refusal`)."""
    x_test, y_test = test
    probabilities = recognizer.predict_proba(x_test)
    predicted = probabilities.argmax(axis=1)
    as_read = averaged(recognizer.predict_proba, x_test, alone=probabilities).argmax(axis=1)
    names = list(class_names(config.dataset, recognizer.num_classes))
    metrics = {
        "test_loss": nll(probabilities, y_test, floor=_KERAS_EPSILON),
        "test_accuracy": float((predicted == y_test).mean()),
        "test_accuracy_as_read": float((as_read == y_test).mean()),
        **run_metrics.classification_metrics(y_test, predicted, names),
    }
    if recognizer.num_classes > REJECT:
        # The test set holds no junk: the macro F1 is over the classes it has.
        metrics["macro_f1"] = float(np.mean([metrics["per_class"][name]["f1"] for name in names[:REJECT]]))
        metrics["digits_refused"] = float((predicted == REJECT).mean())
        metrics |= refusal(recognizer, config.junk_test, HELD_OUT_SEED)
    return metrics, probabilities, predicted


def curves_plot(run: RunDir, config: TrainConfig, history: dict, best_epoch: int | None = None) -> tuple:
    """The learning curves as (plot, *args): they need only the history, so they can be drawn first."""
    best = best_epoch or run_metrics.best_epoch(history, config.monitor)
    return plots.plot_curves, history, run.curves_path, best, f"{config.preset} on {config.dataset}"


def _plots(
    run: RunDir,
    config: TrainConfig,
    history: dict,
    test,
    metrics: dict,
    recognizer,
    predicted,
    plotter,
    curves_sent: bool,
) -> None:
    x_test, y_test = test
    names = list(class_names(config.dataset, recognizer.num_classes))
    wrong = np.flatnonzero(predicted != y_test)[:MISTAKES_SHOWN]
    # An ensemble was never trained (no history): it gets no curves, rather than an empty plot.
    drawn = curves_sent or not history
    requests = [] if drawn else [curves_plot(run, config, history, metrics["overfitting"]["best_epoch"])]
    requests += [
        (plots.plot_confusion, metrics["confusion_matrix"], names, run.confusion_path),
        (plots.plot_mistakes, x_test[wrong], y_test[wrong], predicted[wrong], names, run.mistakes_path),
    ]
    for plot, *args in requests:
        if plotter is None:
            plot(*args)
        else:
            plotter.submit(plot, *args)


def _previous(run: RunDir, key: str, most: float = 1e9) -> float | None:
    """`train_seconds` or `best_epoch` as training measured them: a re-evaluation keeps them from the old report.

    Both are known only while training (the best epoch by the loop's own score, which without a validation
    split is the training loss, unlike the report's rule). A missing, corrupt or planted value (not a number
    from 0 to `most`, exclusive of 0) is what `digits evaluate` repairs: it then comes from the checkpoint's
    loop state, or is None without one.
    """
    try:
        metrics = run.read_metrics()
        holder = metrics if key == "train_seconds" else metrics.get("overfitting")
        value = holder.get(key) if isinstance(holder, dict) else None
    except RunError:
        value = None
    if _measured(value, most):
        return float(value)
    try:  # a missing checkpoint is a RunError too; its loop state was checked when read
        value = run.checkpoint_meta()[key]
    except (RunError, KeyError):
        return None
    return float(value) if _measured(value, most) else None  # a best epoch of 0: none yet


def _measured(value: object, most: float) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= most


def evaluate_run(run_dir: str | os.PathLike, data_dir=None) -> dict:
    """`digits evaluate RUN`: re-evaluate a finished run from its files."""
    run = RunDir(run_dir)
    config, info = run.read_run()
    status = run.status(info)
    if status not in ("finished", "unknown"):  # unknown: a run from before runs recorded their status
        raise RunError(f"{run}: {status}, so it has nothing to evaluate yet ({run.unfinished_advice(status)}).")
    history = {} if info.ensemble else run.read_history()  # an ensemble was never trained: it has no history
    # Every file the report rewrites, checked before the first is: a read-only one refused half-way left the
    # report part new, part old.
    for path in (run.path / RunDir.METRICS, run.curves_path, run.confusion_path, run.mistakes_path):
        atomic.writable_target(path, follow_symlinks=False)
    # One of the run's own epochs: a planted 500 on a 2-epoch run would be drawn on its curves.
    found = None if info.ensemble else _previous(run, "best_epoch", most=len(history.get("loss", [])))
    best_epoch = int(found) if found is not None and found.is_integer() else None
    return report_run(run, config, info, history, load_test(config.dataset, data_dir), best_epoch=best_epoch)


def refusal(recognizer: Recognizer, n: int, seed: int = HELD_OUT_SEED) -> dict:
    """How much of `make_junk(n, seed)` a model refuses, read as the reader reads a digit.

    A picture is refused when the reader answers "no digit found": the
    preprocessing finds no ink in it, or the model's most likely class is
    "not a digit" (an 11-output model). The reader makes that decision
    (`Reader.answer_many`); this only counts.
    """
    from digits.read.reader import Reader
    from digits.spec import NO_DIGIT

    reader = Reader(recognizer.path)
    prepared = [reader.prepare(picture, explain=False) for picture, _ in make_junk(n, seed)]
    answers = reader.answer_many(prepared)
    no_ink = sum(not p.has_ink for p in prepared)
    refused = sum(answer.status == NO_DIGIT for answer in answers)
    return {
        "junk_pictures": n,
        "junk_seed": seed,
        "junk_refused": refused / n if n else 0.0,
        "junk_refused_no_ink": no_ink / n if n else 0.0,
    }
