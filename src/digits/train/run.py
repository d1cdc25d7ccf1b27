"""Train a preset into a run folder that survives Ctrl-C, SIGTERM and SIGKILL.

Why a custom loop rather than `model.fit`:
  * Resume in the middle of an epoch, bit for bit. A signal stops the loop
    between two chunks of steps; the checkpoint records the step, and the
    batches come from a shuffle keyed by (seed, epoch), so `--resume` replays
    exactly the remaining batches. `fit` can only stop and restart at epoch
    boundaries, and its shuffle is not keyed by epoch.
  * Speed. Each chunk of up to 64 optimizer steps runs inside one compiled
    graph loop (XLA where the preset says so), with no per-batch Python. The
    speed benchmark (benchmarks/speed.py) times `model.fit` with
    `steps_per_execution` and `jit_compile` on the same preset against this
    loop, so the choice stays measured, not assumed.

The run folder's files (config.json, checkpoint.npz, history.csv, the model
files and the report) are read and written only through `runs.RunDir`.
A run trains one `TrainConfig`, checked before it gets here and never
changed; what the run records about itself (status, pid, epochs done,
parameters, calibration) is a `RunInfo`, replaced at each step and written
beside the config. `set_up` is the run setup `digits tune` shares.

Determinism: batches come from a stateless shuffle keyed by (seed, epoch), and
Keras's dropout RNG state lives in the model's variables, which the checkpoint
saves. So a resumed run sees exactly the batches and the random numbers an
uninterrupted run would have seen, and its history matches epoch for epoch.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from digits import atomic
from digits.config import DEFAULT_PRESET, TrainConfig
from digits.runs import EXIT_CODES, Interrupted, RunDir, RunInfo, TrainingError
from digits.train import models, provenance, reader_data
from digits.train import tf as backend
from digits.train.extra_data import load_dataset as load
from digits.train.metrics import lower_is_better
from digits.train.timing import add as add_phase
from digits.train.timing import phase

tf, keras = backend.load()

# Test-only: "SIGINT:2" makes a run send itself SIGINT right after epoch 2's
# checkpoint, so the signal tests interrupt at a known point instead of racing the clock.
TEST_SIGNAL_VARIABLE = "DIGITS_TEST_SIGNAL"


@dataclass
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def split_data(x: np.ndarray, y: np.ndarray, validation_split: float, limit: int | None = None) -> Split:
    """Pixels / 255 as float32 once, and the last `validation_split` held out (as Keras does)."""
    if limit:
        x, y = x[:limit], y[:limit]
    x = x.astype(np.float32) / np.float32(255)
    n_train = len(x) - int(round(len(x) * validation_split))
    return Split(x[:n_train], y[:n_train].astype(np.int32), x[n_train:], y[n_train:].astype(np.int32))


# Junk negatives for training and validation, and the photographed training
# digits, come from these seeds (plus the run's seed). The held-out junk that
# evaluation measures comes from `digits.synth.junk.make_junk`'s own stream, and
# the benchmarks photograph MNIST's test digits, never its training digits.
JUNK_TRAIN_SEED, JUNK_VAL_SEED, PHOTOGRAPHED_SEED = 1000, 2000, 3000


def add_reader_data(split: Split, config: TrainConfig, progress: bool = False, data_dir=None) -> Split:
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
    if not (variants or extra or reader_data.wanted(config)):
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
        from digits.spec import REJECT

        for xs, ys, count, base in (
            (x_train, y_train, config.junk_train, JUNK_TRAIN_SEED),
            (x_val, y_val, config.junk_val, JUNK_VAL_SEED),
        ):
            images = (
                reader_data.negatives(count, seed=base + config.seed, progress=progress)
                if count
                else np.zeros((0, 28, 28), np.float32)
            )
            xs.append(images)
            ys.append(np.full(len(images), REJECT, np.int32))
    return Split(
        np.concatenate(x_train),
        np.concatenate(y_train).astype(np.int32),
        np.concatenate(x_val),
        np.concatenate(y_val).astype(np.int32),
    )


def epoch_order(n: int, batch_size: int, seed: int, epoch: int) -> tf.Tensor:
    """The batches of one epoch as a (steps, batch_size) index matrix.

    The shuffle is keyed by (seed, epoch), not drawn from a running RNG, which
    is what lets `--resume` replay exactly the batches that were left. The
    ragged tail is dropped; each epoch drops different samples.
    """
    steps = n // batch_size
    order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=[seed, epoch])
    return tf.reshape(order[: steps * batch_size], (steps, batch_size))


def chunk_size(steps: int, target: int) -> int:
    """The largest divisor of `steps` up to `target`, so every compiled call has one shape."""
    return max(d for d in range(1, min(steps, target) + 1) if steps % d == 0)


class Trainer:
    """A Keras model, its optimizer and two compiled functions: train a chunk of steps, evaluate.

    A chunk runs many optimizer steps inside one XLA-compiled graph loop, so
    there is no per-batch Python work; between chunks the loop checks for
    signals and updates the progress bar.
    """

    def __init__(self, config: TrainConfig, steps_per_epoch: int):
        self.config = config
        self.model = models.build(config, models.num_classes(config))
        self.optimizer = models.optimizer(config, steps_per_epoch)
        self.optimizer.build(self.model.trainable_variables)
        self.variables = named_variables(self.model, self.optimizer)
        self.loss = keras.losses.SparseCategoricalCrossentropy()
        # autograph=False: the loop is an explicit tf.while_loop and every `if` is on the static config, so
        # there is nothing to convert, and tracing skips autograph's parse of the source (a few hundred ms).
        self.train_chunk = tf.function(self._train_chunk, jit_compile=config.jit_compile, autograph=False)
        # One forward pass per epoch: XLA's compile time (~0.7 s) would outweigh its gain.
        self.evaluate = tf.function(self._evaluate, jit_compile=False, autograph=False)

    def _train_chunk(self, x, y, order, first_step):
        model, variables = self.model, self.model.trainable_variables
        augment, augment_real = self.config.augment, self.config.augment_real
        seed = tf.constant(self.config.seed, tf.int64)

        def step(i, loss_sum, correct):
            images, labels = tf.gather(x, order[i]), tf.gather(y, order[i])
            global_step = first_step + tf.cast(i, tf.int64)
            if augment:
                from digits.train import augment as aug

                jitter = (aug.REAL_MAX_SHIFT_PX, aug.REAL_SCALE_RANGE) if augment_real else ()
                # `augment` is True (strength 1) or a strength, as tuning sets it.
                images = aug.deform_batch(images, tf.stack([seed, global_step]), *jitter, strength=float(augment))
            if augment_real:
                from digits.train.augment import real_batch

                # Negative steps: a random stream no deform_batch call ever uses.
                images = real_batch(images, tf.stack([seed, -1 - global_step]))
            with tf.GradientTape() as tape:
                probabilities = model(images, training=True)
                loss = self.loss(labels, probabilities)
                if model.losses:
                    loss += tf.add_n(model.losses)
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=False))
            hits = tf.reduce_sum(tf.cast(tf.argmax(probabilities, 1, output_type=tf.int32) == labels, tf.float32))
            return i + 1, loss_sum + loss, correct + hits

        _, loss_sum, correct = tf.while_loop(
            lambda i, *_: i < tf.shape(order)[0], step, (tf.constant(0), tf.constant(0.0), tf.constant(0.0))
        )
        return loss_sum, correct

    def _evaluate(self, x, y):
        probabilities = self.model(x, training=False)
        hits = tf.cast(tf.argmax(probabilities, 1, output_type=tf.int32) == y, tf.float32)
        return self.loss(y, probabilities), tf.reduce_mean(hits)


def named_variables(model, optimizer) -> dict[str, dict]:
    """The variables a checkpoint holds, by group and a name that is the same in every process.

    Model variables are "<layer>/<variable>" (models.build names each layer);
    optimizer variables are their path without the optimizer's own name,
    which Keras numbers per process ("adam", "adam_1", ...). Both dicts keep
    the variables' order, which the old positional checkpoints relied on.
    """
    layer_of = {id(v): layer.name for layer in model.layers for v in layer.variables}
    groups = {
        "model": {f"{layer_of[id(v)]}/{v.name}": v for v in model.variables},
        "optimizer": {v.path.split("/", 1)[-1]: v for v in optimizer.variables},
    }
    if len(groups["model"]) != len(model.variables) or len(groups["optimizer"]) != len(optimizer.variables):
        raise AssertionError("two variables share a checkpoint name; name the layers in models.build")
    return groups


class SignalFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks between chunks.

    The loop then saves a checkpoint of exactly where it stands and stops, so
    an interrupt loses nothing and never leaves a half-written file.
    """

    def __enter__(self):
        self.received: int | None = None
        self._previous = {s: signal.signal(s, self._handle) for s in EXIT_CODES}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        self.received = signum

    @staticmethod
    def test_signal_after(epoch: int) -> None:
        """Deliver the signal `DIGITS_TEST_SIGNAL` ("SIGINT:2") names, if it names this epoch."""
        name, _, after = os.environ.get(TEST_SIGNAL_VARIABLE, "").partition(":")
        if name and after == str(epoch):
            os.kill(os.getpid(), signal.Signals[name])


class ProgressBar:
    """One rich progress bar per epoch with ETA and live loss/accuracy; silent off a terminal."""

    def __init__(self, enabled: bool, steps: int, epochs: int):
        self.enabled, self.steps, self.epochs = enabled, steps, epochs
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[accuracy]:.4f}  {task.fields[val]}"),
            )

    def __enter__(self):
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.stop()

    def epoch(self, epoch: int, done: int) -> None:
        if self.enabled:
            self.task = self.progress.add_task(
                "", total=self.steps, completed=done, epoch=f"{epoch + 1}/{self.epochs}", loss=0.0, accuracy=0.0, val=""
            )

    def update(self, done: int, loss: float, accuracy: float, val: str = "") -> None:
        if self.enabled:
            self.progress.update(self.task, completed=done, loss=loss, accuracy=accuracy, val=val)


STATE_KEYS = ("epoch", "step", "loss_sum", "correct", "history", "best_epoch", "best_score", "train_seconds")


def new_state() -> dict:
    return {
        "epoch": 0,
        "step": 0,
        "loss_sum": 0.0,
        "correct": 0.0,
        "history": {},
        "best_epoch": 0,
        "best_score": math.inf,
        "best_weights": None,
        "train_seconds": 0.0,
    }


def _values(variables: dict) -> dict[str, np.ndarray]:
    return {name: np.array(v.numpy()) for name, v in variables.items()}


def save_checkpoint(run: RunDir, trainer: Trainer, state: dict) -> None:
    """Model, optimizer and RNG variables, the best weights, and where the loop stands."""
    groups = {group: _values(variables) for group, variables in trainer.variables.items()}
    groups["best"] = state["best_weights"] or {}
    run.save_checkpoint(groups, {k: state[k] for k in STATE_KEYS})


def load_checkpoint(run: RunDir, trainer: Trainer) -> dict:
    """Restore model and optimizer variables in place, matched by name and shape; return the loop state."""
    expected = {
        group: {name: tuple(v.shape) for name, v in variables.items()} for group, variables in trainer.variables.items()
    }
    arrays, meta = run.load_checkpoint(expected | {"best": expected["model"]})
    for group, variables in trainer.variables.items():
        for name, variable in variables.items():
            variable.assign(arrays[group][name])
    return {**meta, "best_weights": arrays["best"] or None}


def _score(logs: dict, monitor: str) -> float:
    """The monitored quantity as lower-is-better; without validation data, the training loss."""
    if monitor not in logs:
        return logs["loss"]
    return lower_is_better(logs[monitor], monitor)


def fit(
    trainer: Trainer, split: Split, config: TrainConfig, run: RunDir, state: dict, progress: bool, on_epoch=None
) -> dict:
    """Train from where `state` stands to the last epoch; checkpoint after every epoch.

    `on_epoch(epoch, logs)`, if given, sees each finished epoch's metrics
    (tuning reports them to its trial, and may stop the run by raising).
    Raises `Interrupted` (after saving a checkpoint) on SIGINT or SIGTERM.
    """
    x, y = tf.constant(split.x_train), tf.constant(split.y_train)
    x_val, y_val = tf.constant(split.x_val), tf.constant(split.y_val)
    batch_size, epochs, patience = config.batch_size, config.epochs, config.early_stopping
    steps = len(split.x_train) // batch_size
    chunk = chunk_size(steps, config.chunk_steps)
    history = state["history"]
    chunk_seconds: list[float] = []
    with SignalFlag() as stop, ProgressBar(progress, steps, epochs) as bar:
        while state["epoch"] < epochs:
            epoch = state["epoch"]
            order = epoch_order(len(split.x_train), batch_size, config.seed, epoch)
            bar.epoch(epoch, state["step"])
            start = time.perf_counter()
            while state["step"] < steps:
                first = state["step"]
                chunk_start = time.perf_counter()
                loss_sum, correct = trainer.train_chunk(
                    x, y, order[first : first + chunk], tf.constant(epoch * steps + first, tf.int64)
                )
                chunk_seconds.append(time.perf_counter() - chunk_start)
                state["loss_sum"] += float(loss_sum)
                state["correct"] += float(correct)
                state["step"] = first + chunk
                bar.update(
                    state["step"], state["loss_sum"] / state["step"], state["correct"] / (state["step"] * batch_size)
                )
                if stop.received is not None and state["step"] < steps:
                    state["train_seconds"] += time.perf_counter() - start
                    save_checkpoint(run, trainer, state)
                    raise Interrupted(stop.received)
            logs = {"loss": state["loss_sum"] / steps, "accuracy": state["correct"] / (steps * batch_size)}
            if len(split.x_val):
                val_loss, val_accuracy = trainer.evaluate(x_val, y_val)
                logs |= {"val_loss": float(val_loss), "val_accuracy": float(val_accuracy)}
                bar.update(
                    steps,
                    logs["loss"],
                    logs["accuracy"],
                    f"val_loss {logs['val_loss']:.4f}  val_acc {logs['val_accuracy']:.4f}",
                )
            state["train_seconds"] += time.perf_counter() - start
            history.setdefault("epoch", []).append(epoch + 1)
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            score = _score(logs, config.monitor)
            if score < state["best_score"]:
                state.update(
                    best_score=score,
                    best_epoch=epoch + 1,
                    best_weights=_values(trainer.variables["model"]) if patience else None,
                )
            state.update(epoch=epoch + 1, step=0, loss_sum=0.0, correct=0.0)
            if patience and epoch + 1 - state["best_epoch"] >= patience:
                state["epoch"] = epochs  # early stop: the run is complete
            save_checkpoint(run, trainer, state)
            stop.test_signal_after(state["epoch"])
            # Even after the last epoch: a signal is never swallowed (resuming then only finishes the run).
            if stop.received is not None:
                raise Interrupted(stop.received)
            if on_epoch:
                on_epoch(epoch + 1, logs)
    if len(chunk_seconds) > 1:  # the first call traces and compiles; the others show what a call costs
        add_phase("compile", chunk_seconds[0] - float(np.median(chunk_seconds[1:])))
    if patience and state["best_weights"] is not None:
        for name, variable in trainer.variables["model"].items():
            variable.assign(state["best_weights"][name])
    return state


def train(
    preset: str = DEFAULT_PRESET,
    *,
    runs_dir: str | os.PathLike = "runs",
    name: str | None = None,
    resume: str | os.PathLike | None = None,
    dataset: str = "mnist",
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    train_limit: int | None = None,
    overrides: dict | None = None,
    progress: bool | None = None,
    log=print,
    data=None,
    plotter=None,
) -> Path:
    """Train a preset (or resume a run); return its folder once model, ONNX and report are written.

    The config is `TrainConfig.from_preset(preset, overrides, dataset, seed, train_limit)`;
    `train_config` does the rest.
    """
    config = None if resume is not None else TrainConfig.from_preset(preset, overrides, dataset, seed, train_limit)
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
    runs_dir: str | os.PathLike = "runs",
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
    with plotter or contextlib.nullcontext():
        if resume is not None:
            run = RunDir(resume)
            config, info = run.read_run()
            if info.status == "finished":
                log(f"{run} already finished; nothing to do.")
                return run.path, run.read_metrics()
        else:
            with phase("provenance"):
                info = RunInfo(provenance=provenance.collect(config.dataset))
            run = RunDir.create(runs_dir, name, config)
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


def _train(
    run: RunDir, config: TrainConfig, info: RunInfo, *, resumed: bool, data_dir, progress, log, data, plotter
) -> dict:
    (x, y), test = data or load(config.dataset, data_dir)
    show_progress = sys.stderr.isatty() if progress is None else progress
    if reader_data.wanted(config):
        from digits.data import cache_dir

        log(
            f"Making the reader's training pictures (minutes the first time; then read from {cache_dir(reader_data.CACHE)})."
        )
    split = add_reader_data(
        split_data(x, y, config.validation_split, config.train_limit), config, show_progress, data_dir
    )
    trainer = set_up(config, split)
    state = new_state()
    if resumed and run.has_checkpoint():
        state = load_checkpoint(run, trainer)
    info = replace(info, parameters=trainer.model.count_params(), status="running", pid=os.getpid())
    run.write_config(config, info)
    try:
        with phase("training"):
            state = fit(trainer, split, config, run, state, show_progress)
    except Interrupted as stop:
        run.write_config(config, replace(info, status="interrupted", epochs_done=state["epoch"]))
        log(
            f"Interrupted by {stop}; epoch {state['epoch']} of {config.epochs} is saved. "
            f"Resume with: digits train --resume {run}"
        )
        raise
    except BaseException:
        with contextlib.suppress(atomic.WriteError):  # best effort: the disk may be what failed
            run.write_config(config, replace(info, status="failed", epochs_done=state["epoch"]))
        raise
    if config.calibrate and len(split.x_val):
        from digits import calibration

        with phase("calibration"):
            probabilities = trainer.model.predict(split.x_val, batch_size=1024, verbose=0)
            info = replace(
                info,
                calibration=calibration.calibrate(
                    probabilities, split.y_val, f"the run's {len(split.x_val)} validation images"
                ),
            )
        run.write_config(config, info)  # before the evaluation, whose Recognizer reads it
    return finish(trainer.model, run, config, info, state, test, plotter)


def finish(
    model: keras.Model, run: RunDir, config: TrainConfig, info: RunInfo, state: dict, test, plotter=None
) -> dict:
    """Save the trained model and its ONNX twin, write the evaluation report; return its metrics.

    The plots are drawn in a second process (`plotter`, else one started
    now) while this one saves, exports and evaluates the model.
    """
    from digits.train import evaluate, export, plots

    with plotter or plots.Plotter() as plotter:
        plotter.submit(*evaluate.curves_plot(run, config, state["history"], state["best_epoch"]))
        with phase("save Keras model"), atomic.atomic_path(run.keras_path, follow_symlinks=False) as tmp:
            model.save(tmp)
        with phase("ONNX export"):
            export.to_onnx(model, run.onnx_path)
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
