"""The table of run folders that `digits runs` and `digits compare` print: one row per run, read through `RunDir`.

A run whose files cannot be read is a row too, with status "broken" and the sentence that says why, so one
damaged folder never hides the others.
"""

from __future__ import annotations

import os
from pathlib import Path

from digits.errors import RunError, TrainingError
from digits.runs import RunDir, RunInfo


def run_row(run: RunDir) -> dict:
    """What `digits runs` and `digits compare` show of one run; a broken run gets status "broken" and "problem"."""
    row = {"name": run.name, "path": run.path}
    try:
        config, info = run.read_run()
    except TrainingError as err:
        return row | {"status": "broken", "problem": str(err)}
    row |= {
        "preset": config.preset,
        "dataset": config.dataset,
        "seed": config.seed,
        "status": run.status(info),
        "epochs": f"{len(info.ensemble)} members" if info.ensemble else f"{_epochs_done(run, info)}/{config.epochs}",
        "parameters": info.parameters,
    }
    if row["status"] != "finished" and not run.has(RunDir.METRICS):
        return row
    try:
        metrics = run.read_metrics()
    except RunError as err:
        return row | {"status": "broken", "problem": str(err)}
    overfitting = metrics.get("overfitting") or {}
    return row | {
        "test_accuracy": metrics.get("test_accuracy"),
        "test_loss": metrics.get("test_loss"),
        "train_seconds": metrics.get("train_seconds"),
        "best_epoch": overfitting.get("best_epoch"),
        "gap": (overfitting.get("train_val_gap") or {}).get("accuracy"),
    }


def _epochs_done(run: RunDir, info: RunInfo) -> int:
    """Epochs done: recorded when the run stops or ends; for one training now, or killed, its checkpoint's."""
    if info.status == "running" and run.has_checkpoint():
        try:
            return int(run.checkpoint_meta()["epoch"])
        except (RunError, KeyError, TypeError, ValueError):
            pass  # what it recorded, then: a resume names what is wrong with the checkpoint
    return info.epochs_done or 0


# Files only a run folder holds: one that has any of them but lost its config.json is a broken run, not
# another folder (such as the plots `digits tune --show` writes beside the runs).
_RUN_FILES = (RunDir.CONFIG, RunDir.CHECKPOINT, RunDir.METRICS, RunDir.HISTORY, RunDir.KERAS, RunDir.ONNX)


def list_runs(runs_dir: str | os.PathLike) -> list[dict]:
    """One row per run folder (a folder holding any of a run's own files), by name; broken ones marked."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    folders = sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.is_symlink())
    return [run_row(RunDir(p)) for p in folders if any((p / name).exists() for name in _RUN_FILES)]
