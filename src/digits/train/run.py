"""Train a preset into a run folder that survives Ctrl-C, SIGTERM and SIGKILL.

The run's lifecycle: `train_config` creates the run folder (or reopens one to resume), loads the data
(`digits.train.dataset`), `set_up` seeds everything and builds the Trainer, the loop
(`digits.train.loop`) trains with a checkpoint after every epoch, and `finish` saves the model, its
ONNX twin and the report.

The run folder's files (config.json, checkpoint.npz, history.csv, the model
files and the report) are read and written only through `runs.RunDir`.
A run trains one `TrainConfig`, checked before it gets here and never
changed; what the run records about itself (status, pid, epochs done,
parameters, calibration) is a `RunInfo`, replaced at each step and written
beside the config. `set_up` is the run setup `digits tune` shares.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from digits import atomic
from digits.config import TrainConfig
from digits.data import DEFAULT_DATASET
from digits.errors import ConfigError, Interrupted, RunError, TrainingError, stop_signals_call
from digits.presets import DEFAULT_PRESET
from digits.runs import RUNS, RunDir, RunInfo
from digits.train import chunks, provenance, reader_data
from digits.train import tf as backend
from digits.train.checkpoint import load_checkpoint, new_state
from digits.train.dataset import Split, add_reader_data, adds_pictures, split_data, training_count
from digits.train.extra_data import load_dataset as load
from digits.train.loop import Trainer, fit
from digits.train.timing import phase

if TYPE_CHECKING:  # mypy reads the modules; at run time they come through the one door, `backend.load()`
    import keras
    import tensorflow as tf
else:
    tf, keras = backend.load()


def train(
    preset: str | None = None,
    *,
    runs_dir: str | os.PathLike = RUNS,
    name: str | None = None,
    resume: str | os.PathLike | None = None,
    dataset: str | None = None,
    data_dir: str | os.PathLike | None = None,
    seed: int | None = None,
    train_limit: int | None = None,
    overrides: dict | None = None,
    progress: bool | None = None,
    log=print,
    data=None,
    plotter=None,
) -> Path:
    """Train a preset (or resume a run); return its folder once model, ONNX and report are written.

    The config is `TrainConfig.from_preset(preset, overrides, dataset, seed, train_limit)` (by default the
    `fast` preset on MNIST, seed 0); `train_config` does the rest. A resumed run goes on with its own
    config, so giving any of those with `resume` is a `ConfigError`, as the CLI's `--resume` refuses them.
    """
    given = {"preset": preset, "overrides": overrides, "dataset": dataset, "seed": seed, "train_limit": train_limit}
    if resume is not None:
        if named := [key for key, value in given.items() if value is not None]:
            raise ConfigError(f"resume goes on with the run's own settings; drop {', '.join(named)}.")
        config = None
    else:
        config = TrainConfig.from_preset(
            preset or DEFAULT_PRESET, overrides, dataset or DEFAULT_DATASET, seed or 0, train_limit
        )
    path, _ = train_config(
        config,
        runs_dir=runs_dir,
        name=name,
        resume=resume,
        data_dir=data_dir,
        progress=progress,
        log=log,
        data=data,
        plotter=plotter,
    )
    return path


def train_config(
    config: TrainConfig | None,
    *,
    runs_dir: str | os.PathLike = RUNS,
    name: str | None = None,
    resume: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    log=print,
    data=None,
    plotter=None,
) -> tuple[Path, dict]:
    """Train `config` into a new run folder, or resume the run `resume` (config None); return its folder and metrics.

    `data` may hold the dataset already loaded (as `digits.data.load` returns it), and
    `plotter` a `plots.Plotter` already started; the run closes it either way.
    A finished run is not trained again: its metrics are those it recorded.
    """
    if (config is None) == (resume is None):
        raise ValueError("train_config needs a config or a run folder to resume: exactly one of them")
    with plotter or contextlib.nullcontext(), contextlib.ExitStack() as locked:
        if resume is not None:
            run = RunDir(resume)
            config, info = run.read_run()  # a path that is no run folder is named as such, not as one that cannot lock
            if info.status != "finished":
                locked.enter_context(run.training())
                config, info = run.read_run()  # as it stands now that no other process can change it
            if info.status == "finished":
                log(f"{run} already finished; nothing to do.")
                return run.path, run.read_metrics()
            if info.ensemble:
                raise RunError(
                    f"{run}: an ensemble is never trained, so it cannot resume; make it with `digits ensemble`."
                )
            if (info.epochs_done or 0) > 0 and not run.has_checkpoint():
                # Starting again from epoch 0 would be a new run under the old one's name, without a word.
                raise RunError(
                    f"{run.path / RunDir.CHECKPOINT}: missing or not a regular file, so epoch {info.epochs_done} "
                    "cannot be resumed; restore it, or train again under another --name."
                )
        else:
            assert config is not None  # exactly one of config and resume, checked above
            data = _data_of_a_batch_at_least(config, data, data_dir)
            with phase("provenance"):
                info = RunInfo(provenance=provenance.collect(config.dataset))
            run = RunDir.create(runs_dir, name, config)
            locked.enter_context(run.training())
        return run.path, _train(
            run,
            config,
            info,
            resumed=resume is not None,
            data_dir=data_dir,
            progress=progress,
            log=log,
            data=data,
            plotter=plotter,
        )


def set_up(config: TrainConfig, split: Split) -> Trainer:
    """The run setup `train` and `tune` share: check the batch count, seed everything, build the Trainer.

    Each run starts from a cleared Keras state and the config's seed, with
    deterministic ops, so the same config gives bit-identical weights whether
    it is the process's first run or a later seed or trial.
    """
    steps = len(split.x_train) // config.batch_size
    if steps < 1:
        raise TrainingError(f"{len(split.x_train)} training images are fewer than one batch of {config.batch_size}.")
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    with phase("build model"):
        return Trainer(config, steps)


def _data_of_a_batch_at_least(config: TrainConfig, data, data_dir):
    """The dataset, loaded before the run folder exists when it is all the run trains on: a run that could
    never train (data that cannot be read, fewer training images than one batch) leaves no folder behind
    that could not be resumed. What a reader preset adds comes later, and `set_up` checks the count then."""
    if adds_pictures(config):
        return data
    data = data or load(config.dataset, data_dir)
    (x, _), _ = data
    count = training_count(min(len(x), config.train_limit or len(x)), config.validation_split)
    if count < config.batch_size:
        what = f"--train-limit {config.train_limit} leaves" if config.train_limit else f"{config.dataset} holds"
        fix = "raise --train-limit or lower --batch-size" if config.train_limit else "lower --batch-size"
        images = "training image" if count == 1 else "training images"
        raise TrainingError(f"{what} {count} {images}, fewer than one batch of {config.batch_size}; {fix}.")
    return data


def _train(
    run: RunDir, config: TrainConfig, info: RunInfo, *, resumed: bool, data_dir, progress, log, data, plotter
) -> dict:
    state: dict | None = None
    stop = _Stop()
    recorded, bad_checkpoint = info, False
    try:
        # SIGINT and SIGTERM raise `Interrupted` wherever the run stands, so that it is recorded as interrupted
        # (not left "running", which `digits runs` shows as killed). While it trains, the loop turns them into
        # a flag of its own instead (`loop.SignalFlag`: it stops at the next chunk, after a checkpoint).
        with stop_signals_call(stop):
            # Running from now (and this process's): data and model take minutes for the reader preset.
            info = replace(info, status="running", pid=os.getpid())
            run.write_config(config, info)
            (x, y), test = data or load(config.dataset, data_dir)
            show_progress = sys.stderr.isatty() if progress is None else progress
            if reader_data.wanted(config):
                from digits.data import cache_dir

                log(
                    "Making the reader's training pictures (minutes the first time; then read from "
                    f"{cache_dir(chunks.CACHE)})."
                )
            split = add_reader_data(
                split_data(x, y, config.validation_split, config.train_limit), config, show_progress, data_dir
            )
            trainer = set_up(config, split)
            try:
                state = load_checkpoint(run, trainer) if resumed and run.has_checkpoint() else new_state()
            except RunError:
                bad_checkpoint = True
                raise
            info = replace(info, parameters=trainer.model.count_params())
            run.write_config(config, info)
            with phase("training"):
                state = fit(trainer, split, run, state, show_progress, log=log)
            if config.calibrate and len(split.x_val):
                info = _calibrated(trainer, split, info)
                run.write_config(config, info)  # before the evaluation, whose Recognizer reads it
            return finish(trainer.model, run, config, info, state, test, plotter)
    except BaseException as err:
        done = state["epoch"] if state is not None else info.epochs_done or 0
        if isinstance(err, Interrupted):
            interrupted = err
        elif stop.received is not None:
            interrupted = Interrupted(stop.received)
        elif bad_checkpoint:
            # Bad input, not a failed run: its record stays as it was, to resume once its checkpoint is back.
            run.write_config(config, recorded)
            raise
        else:
            with contextlib.suppress(atomic.WriteError):  # best effort: the disk may be what failed
                run.write_config(config, replace(info, status="failed", epochs_done=done))
            raise
        run.write_config(config, replace(info, status="interrupted", epochs_done=done))
        if done >= config.epochs:  # all trained (or stopped early): what was left is the model's files
            saved = "training is complete; resuming saves, exports and evaluates the model"
        elif run.has_checkpoint():
            saved = f"the checkpoint holds {done} of {config.epochs} epochs, and any steps of the next"
        else:  # stopped while the data loaded or the model was built
            saved = "no step was trained yet"
        log(f"Interrupted by {interrupted}; {saved}. Resume with: digits train --resume {run}")
        if interrupted is err:
            raise
        raise interrupted from err


class _Stop:
    """A run's handler of SIGINT and SIGTERM: it raises `Interrupted`, and remembers the signal, because a library
    it interrupts may turn the exception into one of its own (in onnxruntime's import it becomes an ImportError)."""

    def __init__(self) -> None:
        self.received: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        raise Interrupted(signum)


def _calibrated(trainer: Trainer, split: Split, info: RunInfo) -> RunInfo:
    """The run's record with the temperature fitted on its validation images (`digits.calibration`)."""
    from digits import calibration

    with phase("calibration"):
        probabilities = trainer.model.predict(split.x_val, batch_size=1024, verbose=0)
        fitted = calibration.calibrate(probabilities, split.y_val, f"the run's {len(split.x_val)} validation images")
    return replace(info, calibration=fitted)


def finish(
    model: keras.Model, run: RunDir, config: TrainConfig, info: RunInfo, state: dict, test, plotter=None
) -> dict:
    """Save the trained model and its ONNX twin, write the evaluation report; return its metrics.

    The plots are drawn in a second process (`plotter`, else one started
    now) while this one saves, exports and evaluates the model.
    """
    from digits import calibration
    from digits.train import evaluate, export, plots

    with plotter or plots.Plotter() as plotter:
        plotter.submit(*evaluate.curves_plot(run, config, state["history"], state["best_epoch"]))
        with phase("save Keras model"), atomic.atomic_path(run.keras_path, follow_symlinks=False) as tmp:
            model.save(tmp)
        with phase("ONNX export"):
            export.to_onnx(model, run.onnx_path, metadata=calibration.metadata(info.calibration))
        run.write_history(state["history"])
        metrics = evaluate.report_run(
            run,
            config,
            info,
            state["history"],
            test,
            best_epoch=state["best_epoch"],
            train_seconds=state["train_seconds"],
            plotter=plotter,
            curves_sent=True,
        )
        with phase("plots (waited for)"):
            plotter.close()
    run.write_config(config, replace(info, status="finished", epochs_done=state["epoch"]))
    return metrics
