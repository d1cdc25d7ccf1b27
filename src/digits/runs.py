"""Run folders: `RunDir` names every file inside one, and reads and writes them or hands out their paths.

A run folder `runs/<name>/` holds:

    config.json      the run's `TrainConfig` (the preset with its overrides, dataset,
                     seed) and its `RunInfo` (status, pid, epochs done, provenance, ...)
                     side by side in one object; checked key by key on every read
    checkpoint.npz   model, optimizer and best-epoch arrays keyed by variable name
                     ("model/hidden_0/kernel"), plus the loop's state as JSON ("meta");
                     on load every array is matched to its variable by name and shape
    history.csv      one row per epoch: epoch, loss, accuracy, val_loss, val_accuracy
    metrics.json     the test report (evaluate.py)
    model.keras, model.onnx, model.int8.onnx, model.tflite, curves/confusion/mistakes.png

The process that trains a run holds a lock on its folder (`digits.run_lock`).
Every write is atomic (atomic.py), and replaces a symbolic link in the
folder rather than follow it: a run folder may come from someone else, and
`train --resume` must not overwrite what its links point to. Every read that fails raises `RunError`
with one sentence naming the file and what is wrong with it. A checkpoint's arrays are matched
to the model's variables by `digits.checkpoint_arrays` (by position for the old layout).

This module never imports TensorFlow: the CLI lists runs and inference finds
a run's model without it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from digits import atomic, calibration, run_lock
from digits.checkpoint_arrays import Arrays, matched_arrays
from digits.config import (
    MAX_EPOCHS,
    Settings,
    TrainConfig,
    anything,
    int_at_least,
    is_number,
    one_of,
    optional,
    process_number,
    run_members,
    setting,
)
from digits.errors import TRAIN_AGAIN, RunError, TrainingError
from digits.safe_open import open_regular, read_regular

# The largest checkpoint read, on disk and once unpacked: it holds a model about four times (weights, two optimizer
# slots, the best epoch's), and the shipped float model was 1.5 MB. A 14 MB zip bomb inside one unpacked past 6 GB.
MAX_CHECKPOINT_BYTES = 512 * 2**20
_PICKLED = "it holds pickled Python objects, which digits never loads"
# The largest config.json, history.csv or metrics.json read: a planted link to /dev/zero must not fill the memory.
MAX_TEXT_BYTES = 64 * 2**20


# What a run records of itself; `RunDir.status` adds "killed" (recorded as running, its process gone).
STATUSES = ("running", "interrupted", "failed", "finished")
# The name `RunDir.create` points at the newest run; no run may take it.
LATEST = "latest"
# The folder of runs of `digits train`, unless --runs-dir names another.
RUNS = Path("runs")


@dataclass(frozen=True, kw_only=True)
class RunInfo(Settings):
    """What a run records about itself beside its config; training replaces it, never edits it."""

    status: str | None = setting(optional(one_of(*STATUSES)), None)
    # The training process: named when a resume is refused; tells a killed run from a running one without locks.
    pid: int | None = setting(optional(process_number), None)
    epochs_done: int | None = setting(optional(int_at_least(0)), None)
    parameters: int | None = setting(optional(int_at_least(0)), None)
    provenance: dict | None = setting(anything, None)  # versions, data digests, git commit, command, machine
    calibration: dict | None = setting(optional(calibration.check), None)  # the temperature fitted after training
    command: list | None = setting(anything, None)  # runs made before provenance existed kept their command line here
    # An ensemble's members (`digits.train.ensemble`): folder, preset, seed, test accuracy, temperature of each.
    ensemble: list | None = setting(optional(run_members), None)

    def to_dict(self) -> dict:
        """What is known; a key not yet recorded is left out of config.json, as before."""
        return {key: value for key, value in super().to_dict().items() if value is not None}


class RunDir:
    """One run folder. Construct it with the folder's path; nothing is read until asked."""

    CONFIG = "config.json"
    CHECKPOINT = "checkpoint.npz"
    HISTORY = "history.csv"
    METRICS = "metrics.json"
    KERAS = "model.keras"
    ONNX = "model.onnx"
    CURVES = "curves.png"
    CONFUSION = "confusion.png"
    MISTAKES = "mistakes.png"
    EXPORTS = {"onnx-int8": "model.int8.onnx", "tflite": "model.tflite"}  # by `digits export --format`

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    # ------------------------------------------------------------ files

    keras_path = property(lambda self: self.path / self.KERAS, doc="The trained Keras model.")
    onnx_path = property(lambda self: self.path / self.ONNX, doc="The model every prediction runs on.")
    curves_path = property(lambda self: self.path / self.CURVES, doc="Loss and accuracy per epoch.")
    confusion_path = property(lambda self: self.path / self.CONFUSION, doc="The test set's confusion matrix.")
    mistakes_path = property(lambda self: self.path / self.MISTAKES, doc="Test images the model got wrong.")

    def not_a_folder(self) -> str:
        """What the run's path is, for a sentence, when it is no folder."""
        return "a file, not a run folder" if self.path.exists() else "no such run folder"

    def has(self, filename: str) -> bool:
        return (self.path / filename).is_file()

    def missing_model_advice(self) -> str:
        """For a run folder without model.onnx: what gives it one (an export, the rest of its training, a new one)."""
        if self.keras_path.exists():
            return f"export it with `digits export {self}`"
        if not self.has(self.CONFIG):
            return "not a training run: pass a run folder made by `digits train`, or an .onnx file"
        try:
            info = self.read_info()
        except TrainingError:
            return "its config.json is damaged: train it again with `digits train`"
        if info.ensemble:
            return "an ensemble whose model file is gone: make it again with `digits ensemble`"
        if (status := self.status(info)) != "finished" and self.has_checkpoint():
            return self.unfinished_advice(status)
        return "its model files are gone: train it again with `digits train`"

    def unfinished_advice(self, status: str) -> str:
        """For a run with no results yet (its `status` is not finished): what gives it them."""
        if status == "running":
            return "wait for it to finish"
        if self.has_checkpoint():
            return f"its training did not finish: `digits train --resume {self}`"
        if status in ("interrupted", "killed") and self._no_epoch_done():  # a resume starts it afresh
            return f"it stopped before its first checkpoint: `digits train --resume {self}` trains it from the start"
        return "it has no checkpoint to resume from: train it again with `digits train`"

    def _no_epoch_done(self) -> bool:
        """Whether the run recorded no epoch done (one that did, whose checkpoint is gone, cannot be resumed)."""
        try:
            return not self.read_info().epochs_done
        except TrainingError:
            return False

    def _read_text(self, filename: str, fix: str) -> str:
        """The file's text; `fix` ends the sentence when it is missing or corrupt."""
        path = self.path / filename
        if not path.exists():
            raise RunError(f"{path}: no such file; {fix}.")
        try:
            return read_regular(path, MAX_TEXT_BYTES, RunError, fix).decode("utf-8")
        except UnicodeDecodeError:
            raise RunError(f"{path}: not text, the file is corrupt; {fix}.") from None

    def _read_json(self, filename: str, fix: str) -> dict:
        path = self.path / filename
        try:
            value = json.loads(self._read_text(filename, fix))
        except ValueError as err:
            raise RunError(f"{path}: not valid JSON ({err}); {fix}.") from None
        except RecursionError:
            raise RunError(f"{path}: its JSON is nested too deeply to be a run's; {fix}.") from None
        if not isinstance(value, dict):
            raise RunError(f"{path}: expected a JSON object, found {type(value).__name__}; {fix}.")
        return value

    # ------------------------------------------------------------ creation

    @classmethod
    def create(cls, runs_dir: str | os.PathLike, name: str | None, config: TrainConfig) -> RunDir:
        """A new, empty run folder under `runs_dir`, which `runs_dir/latest` then points to."""
        runs_dir = Path(runs_dir)
        if name and (not name.strip() or not name.isprintable()):  # "" is no --name: the default name
            raise TrainingError(f"{name!r} cannot name a run: give it letters, digits or marks that print on a line.")
        name = name or f"{config.preset}-{config.dataset}-s{config.seed}-{datetime.now():%Y%m%d-%H%M%S}"
        if name == LATEST or name.startswith(".") or Path(name).name != name or os.sep in name:
            raise TrainingError(
                f"{name!r} cannot name a run: use a plain folder name, not {LATEST!r}, not starting with a dot "
                "and without a slash (--runs-dir says where run folders go)."
            )
        run = cls(runs_dir / name)
        if runs_dir.exists() and not runs_dir.is_dir():
            raise TrainingError(f"--runs-dir {runs_dir} is a file, not a folder; name a folder for the runs.")
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
            run.path.mkdir()
        except FileExistsError:
            raise TrainingError(f"{run.path} already exists; choose another --name or --resume it.") from None
        except OSError as err:
            raise TrainingError(f"cannot create {run.path}: {err.strerror}.") from None
        try:
            _point_latest(runs_dir, run.path)
        except OSError as err:
            run.path.rmdir()  # still empty: the run was not made
            raise TrainingError(
                f"cannot point {runs_dir / LATEST} at {run.path}: {err.strerror}; "
                f"remove {runs_dir / LATEST} if it is not a link digits made."
            ) from None
        return run

    # ------------------------------------------------------------ config and status

    def read_run(self) -> tuple[TrainConfig, RunInfo]:
        """config.json as the run's config and its bookkeeping, each checked key by key."""
        if not self.path.is_dir():
            raise RunError(f"{self.path}: {self.not_a_folder()} (train one with `digits train`).")
        if not (self.path / self.CONFIG).exists():  # one that is there but no file: `_read_json` names it
            raise RunError(f"{self.path} is not a run folder (no {self.CONFIG}).")
        data = self._read_json(self.CONFIG, "the run cannot be used without it; train it again")
        where = str(self.path / self.CONFIG)
        recorded = RunInfo.names()
        config = TrainConfig.from_dict({k: v for k, v in data.items() if k not in recorded}, where)
        return config, RunInfo.from_dict({k: v for k, v in data.items() if k in recorded}, where)

    def read_config(self) -> TrainConfig:
        return self.read_run()[0]

    def read_info(self) -> RunInfo:
        return self.read_run()[1]

    def write_config(self, config: TrainConfig, info: RunInfo) -> None:
        """config.json: the config and the run's bookkeeping side by side (neither is changed)."""
        atomic.write_json(self.path / self.CONFIG, config.to_dict() | info.to_dict(), follow_symlinks=False)

    def status(self, info: RunInfo | None = None) -> str:
        """finished, interrupted, failed, running, killed (its process vanished mid-run), or unknown (none recorded)."""
        info = self.read_info() if info is None else info
        state = info.status or "unknown"
        return "killed" if state == "running" and not run_lock.training_now(self.path, info.pid) else state

    def training(self) -> contextlib.AbstractContextManager[None]:
        """The run's training lock, held for a `with` block; `RunError` when another process trains the run."""

        def recorded_trainer() -> int | None:  # the other live process the run's record names as training it
            try:
                info = self.read_info()
            except RunError:
                return None
            live = info.status == "running" and info.pid != os.getpid() and run_lock.alive(info.pid)
            return info.pid if live else None

        return run_lock.held(self.path, recorded_trainer)

    # ------------------------------------------------------------ history and metrics

    def write_history(self, history: dict[str, list[float]]) -> None:
        keys = ["epoch"] + [k for k in history if k != "epoch"]
        out = io.StringIO()
        csv.writer(out).writerows([keys, *zip(*(history[k] for k in keys), strict=False)])
        atomic.write_text(self.path / self.HISTORY, out.getvalue(), follow_symlinks=False)

    def read_history(self) -> dict[str, list[float]]:
        """Columns of history.csv as lists of floats, "epoch" first."""
        path = self.path / self.HISTORY
        text = self._read_text(self.HISTORY, "it is written when training finishes")
        if text.count("\n") > MAX_EPOCHS + 1:  # a row an epoch: more is no run's (5 million rows took 2 GB)
            raise RunError(f"{path}: more rows than a run has epochs (at most {MAX_EPOCHS:,}); retrain, or restore it.")
        try:
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
            history = {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else {})}
        except (ValueError, TypeError, csv.Error) as err:
            raise RunError(
                f"{path}: not a history table of numbers ({err}); retrain, or restore the file from a backup."
            ) from None
        if "loss" not in history:
            raise RunError(f"{path}: has no loss column (the file is corrupt or empty).")
        return history

    def read_metrics(self) -> dict:
        """metrics.json; `digits evaluate` rewrites it when it is missing or corrupt."""
        metrics = self._read_json(self.METRICS, f"rewrite it with `digits evaluate {self.path}`")
        if problem := _metrics_problem(metrics):
            raise RunError(f"{self.path / self.METRICS}: {problem}; rewrite it with `digits evaluate {self.path}`.")
        return metrics

    def write_metrics(self, metrics: dict) -> None:
        atomic.write_json(self.path / self.METRICS, metrics, follow_symlinks=False)

    # ------------------------------------------------------------ checkpoint

    def has_checkpoint(self) -> bool:
        return self.has(self.CHECKPOINT)

    def save_checkpoint(self, groups: dict[str, Arrays], meta: dict) -> None:
        """Arrays by group and variable name, and the loop's state (JSON-able) as "meta"."""
        arrays = {f"{group}/{name}": value for group, named in groups.items() for name, value in named.items()}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with atomic.atomic_path(self.path / self.CHECKPOINT, follow_symlinks=False) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub: a key might be allow_pickle

    def checkpoint_meta(self) -> dict:
        """Only the loop's state (epoch, step, history, ...), without the arrays."""
        return self._open_checkpoint(_meta)

    def read_checkpoint(self) -> tuple[dict[str, Arrays], dict]:
        """Every array by group and name, unchecked, and the meta; `load_checkpoint` is what resumes."""

        def read(npz):
            groups: dict[str, Arrays] = {}
            for key in npz.files:
                group, _, name = key.partition("/")
                if name:
                    groups.setdefault(group, {})[name] = npz[key]
            return groups, _meta(npz)

        return self._open_checkpoint(read)

    def load_checkpoint(self, expected: dict[str, dict[str, tuple]]) -> tuple[dict[str, Arrays], dict]:
        """The checkpoint's arrays matched to `expected` ({group: {name: shape}}: `checkpoint_arrays`), and its meta."""
        stored, meta = self.read_checkpoint()
        return matched_arrays(stored, expected, self.path / self.CHECKPOINT), meta

    def _open_checkpoint(self, read):
        """`read(npz)` on the checkpoint: a regular file, its arrays together at most `MAX_CHECKPOINT_BYTES` unpacked."""
        path = self.path / self.CHECKPOINT
        if not path.exists():
            raise RunError(f"{path}: no such file; the run has no checkpoint to resume from.")
        start = b""
        try:
            with open_regular(path, MAX_CHECKPOINT_BYTES, RunError, TRAIN_AGAIN) as file:
                start, _ = file.read(6), file.seek(0)
                npz = np.load(file, allow_pickle=False)
                if not isinstance(npz, np.lib.npyio.NpzFile):
                    raise RunError(f"{path}: a single array, not a checkpoint archive; {TRAIN_AGAIN}.")
                with npz:
                    # zipfile unpacks a member no further than its declared size, so the sum bounds the memory.
                    archive = npz.zip
                    assert archive is not None  # an NpzFile opened from a file always has its zip
                    unpacked = sum(member.file_size for member in archive.infolist())
                    if unpacked > MAX_CHECKPOINT_BYTES:
                        raise RunError(
                            f"{path}: the checkpoint unpacks to {unpacked / 2**20:.0f} MiB, over the "
                            f"limit of {MAX_CHECKPOINT_BYTES // 2**20} MiB; {TRAIN_AGAIN}."
                        )
                    return read(npz)
        except (OSError, ValueError, KeyError, EOFError, MemoryError, RecursionError, zipfile.BadZipFile) as err:
            # NumPy's word for pickled data invites loading it unsafely: not advice for a file of unknown origin. It
            # takes what is neither a zip nor an array for a pickle, which begins with its protocol (0x80).
            pickled = start.startswith((b"PK\x03\x04", b"\x93NUMPY", b"\x80"))
            reason = err if "pickle" not in str(err) else _PICKLED if pickled else "not a NumPy archive"
            raise RunError(f"{path}: checkpoint is unreadable ({reason}); {TRAIN_AGAIN}.") from None


def _meta(npz) -> dict:
    meta = json.loads(npz["meta"].tobytes())
    if not isinstance(meta, dict):
        raise ValueError("its meta is not a JSON object")
    return meta


def _point_latest(runs_dir: Path, run_dir: Path) -> None:
    """`runs/latest` -> the newest run, swapped atomically so it never dangles half-made."""
    tmp = runs_dir / f".latest.{os.getpid()}"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    try:
        os.replace(tmp, runs_dir / LATEST)
    except OSError:
        tmp.unlink()
        raise


def _metrics_problem(metrics: dict) -> str | None:
    """What is wrong with the figures of a metrics.json that the tables and summaries print, or None."""
    accuracy: Any = metrics.get("test_accuracy")
    if not (is_number(accuracy) and 0 <= accuracy <= 1):
        return "has no test_accuracy between 0 and 1"
    if bad := [k for k in ("test_loss", "train_seconds") if metrics.get(k) is not None and not is_number(metrics[k])]:
        return f"its {bad[0]} is not a number"
    curves = metrics.get("overfitting") or {}
    if not isinstance(curves, dict) or not isinstance(curves.get("train_val_gap") or {}, dict):
        return "its overfitting is not a record of the run's curves"
    return None
