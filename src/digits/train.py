"""Train a preset into a run folder that survives Ctrl-C, SIGTERM and SIGKILL.

A run folder `runs/<name>/` holds `config.json` (everything that reproduces
the run, and its status), `checkpoint.npz` (model, optimizer and RNG state
plus history, written after every epoch and wherever a signal stopped the
loop) and, once training ends, `model.keras`, `model.onnx`, `history.csv`
and the evaluation report.

Determinism: batches come from a stateless shuffle keyed by (seed, epoch), and
Keras's dropout RNG state lives in the model's variables, which the checkpoint
saves. So a resumed run sees exactly the batches and the random numbers an
uninterrupted run would have seen, and its history matches epoch for epoch.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits import atomic, backend, models, provenance
from digits.data import load
from digits.presets import DEFAULT_PRESET, make_config
from digits.runs import EXIT_CODES, Interrupted, TrainingError, create_run_dir, read_config, write_config

tf, keras = backend.load()

CHECKPOINT = "checkpoint.npz"


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


# Junk negatives for training and validation come from these seeds (plus the
# run's seed); the held-out junk that evaluation measures comes from
# `digits.junk.make_junk`, a different random stream.
JUNK_TRAIN_SEED, JUNK_VAL_SEED = 1000, 2000


def add_reader_data(split: Split, config: dict) -> Split:
    """The extra training images a reader preset asks for.

    European 1s and crossed 7s drawn onto training 1s and 7s, and junk
    negatives (label 10, "not a digit") for both training and validation.
    """
    from digits.inference import REJECT

    x_train, y_train, x_val, y_val = [split.x_train], [split.y_train], [split.x_val], [split.y_val]
    if config.get("european_ones") or config.get("crossed_sevens"):
        from digits.augment import european_variants

        images, labels = european_variants(split.x_train, split.y_train, config.get("european_ones", 0),
                                           config.get("crossed_sevens", 0), config["seed"])
        x_train.append(images)
        y_train.append(labels)
    if config.get("reject_class"):
        from digits.junk import negatives

        for xs, ys, count, base in ((x_train, y_train, config["junk_train"], JUNK_TRAIN_SEED),
                                    (x_val, y_val, config["junk_val"], JUNK_VAL_SEED)):
            images = negatives(count, seed=base + config["seed"]) if count else np.zeros((0, 28, 28), np.float32)
            xs.append(images)
            ys.append(np.full(len(images), REJECT, np.int32))
    return Split(np.concatenate(x_train), np.concatenate(y_train).astype(np.int32),
                 np.concatenate(x_val), np.concatenate(y_val).astype(np.int32))


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

    def __init__(self, config: dict, steps_per_epoch: int):
        self.config = config
        self.model = models.build(config, models.num_classes(config))
        self.optimizer = models.optimizer(config, steps_per_epoch)
        self.optimizer.build(self.model.trainable_variables)
        self.loss = keras.losses.SparseCategoricalCrossentropy()
        self.train_chunk = tf.function(self._train_chunk, jit_compile=config["jit_compile"])
        # One forward pass per epoch: XLA's compile time (~0.7 s) would outweigh its gain.
        self.evaluate = tf.function(self._evaluate, jit_compile=False)

    def _train_chunk(self, x, y, order, first_step):
        model, variables = self.model, self.model.trainable_variables
        augment, augment_real = self.config["augment"], self.config.get("augment_real", False)
        seed = tf.constant(self.config["seed"], tf.int64)

        def step(i, loss_sum, correct):
            images, labels = tf.gather(x, order[i]), tf.gather(y, order[i])
            global_step = first_step + tf.cast(i, tf.int64)
            if augment:
                from digits import augment as aug

                jitter = (aug.REAL_MAX_SHIFT_PX, aug.REAL_SCALE_RANGE) if augment_real else ()
                # `augment` is True (strength 1) or a strength, as tuning sets it.
                images = aug.deform_batch(images, tf.stack([seed, global_step]), *jitter, strength=float(augment))
            if augment_real:
                from digits.augment import real_batch

                # Negative steps: a random stream no deform_batch call ever uses.
                images = real_batch(images, tf.stack([seed, -1 - global_step]))
            with tf.GradientTape() as tape:
                probabilities = model(images, training=True)
                loss = self.loss(labels, probabilities)
                if model.losses:
                    loss += tf.add_n(model.losses)
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
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


class ProgressBar:
    """One rich progress bar per epoch with ETA and live loss/accuracy; silent off a terminal."""

    def __init__(self, enabled: bool, steps: int, epochs: int):
        self.enabled, self.steps, self.epochs = enabled, steps, epochs
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
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
            self.task = self.progress.add_task("", total=self.steps, completed=done, epoch=f"{epoch + 1}/{self.epochs}",
                                               loss=0.0, accuracy=0.0, val="")

    def update(self, done: int, loss: float, accuracy: float, val: str = "") -> None:
        if self.enabled:
            self.progress.update(self.task, completed=done, loss=loss, accuracy=accuracy, val=val)


def _values(variables) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in variables]


STATE_KEYS = ("epoch", "step", "loss_sum", "correct", "history", "best_epoch", "best_score", "train_seconds")


def new_state() -> dict:
    return {"epoch": 0, "step": 0, "loss_sum": 0.0, "correct": 0.0, "history": {}, "best_epoch": 0,
            "best_score": math.inf, "best_weights": None, "train_seconds": 0.0}


def save_checkpoint(path: Path, trainer: Trainer, state: dict) -> None:
    """Model, optimizer and RNG variables, the best weights, and where the loop stands."""
    arrays = {f"model/{i}": v for i, v in enumerate(_values(trainer.model.variables))}
    arrays |= {f"optimizer/{i}": v for i, v in enumerate(_values(trainer.optimizer.variables))}
    arrays |= {f"best/{i}": v for i, v in enumerate(state["best_weights"] or [])}
    arrays["meta"] = np.frombuffer(json.dumps({k: state[k] for k in STATE_KEYS}).encode(), dtype=np.uint8)
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_checkpoint(path: Path, trainer: Trainer) -> dict:
    """Restore model and optimizer variables in place; return the saved loop state."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(npz["meta"].tobytes())
            groups = {g: [npz[k] for k in sorted((k for k in npz.files if k.startswith(g + "/")),
                                                 key=lambda k: int(k.split("/")[1]))] for g in ("model", "optimizer", "best")}
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise TrainingError(f"{path}: checkpoint is unreadable ({err}).") from err
    for group, variables in (("model", trainer.model.variables), ("optimizer", trainer.optimizer.variables)):
        if len(groups[group]) != len(variables):
            raise TrainingError(f"{path}: checkpoint does not match this run's {group}.")
        for variable, value in zip(variables, groups[group]):
            variable.assign(value)
    return {**meta, "best_weights": groups["best"] or None}


def _score(logs: dict, monitor: str) -> float:
    """The monitored quantity as lower-is-better; without validation data, the training loss."""
    if monitor not in logs:
        return logs["loss"]
    return -logs[monitor] if "accuracy" in monitor else logs[monitor]


def fit(trainer: Trainer, split: Split, config: dict, run_dir: Path, state: dict, progress: bool,
        on_epoch=None) -> dict:
    """Train from where `state` stands to the last epoch; checkpoint after every epoch.

    `on_epoch(epoch, logs)`, if given, sees each finished epoch's metrics
    (tuning reports them to its trial, and may stop the run by raising).
    Raises `Interrupted` (after saving a checkpoint) on SIGINT or SIGTERM.
    """
    x, y = tf.constant(split.x_train), tf.constant(split.y_train)
    x_val, y_val = tf.constant(split.x_val), tf.constant(split.y_val)
    batch_size, epochs, patience = config["batch_size"], config["epochs"], config["early_stopping"]
    steps = len(split.x_train) // batch_size
    chunk = chunk_size(steps, config.get("chunk_steps", 64))
    history = state["history"]
    checkpoint = run_dir / CHECKPOINT
    with SignalFlag() as stop, ProgressBar(progress, steps, epochs) as bar:
        while state["epoch"] < epochs:
            epoch = state["epoch"]
            order = epoch_order(len(split.x_train), batch_size, config["seed"], epoch)
            bar.epoch(epoch, state["step"])
            start = time.perf_counter()
            while state["step"] < steps:
                first = state["step"]
                loss_sum, correct = trainer.train_chunk(x, y, order[first : first + chunk], tf.constant(epoch * steps + first, tf.int64))
                state["loss_sum"] += float(loss_sum)
                state["correct"] += float(correct)
                state["step"] = first + chunk
                bar.update(state["step"], state["loss_sum"] / state["step"], state["correct"] / (state["step"] * batch_size))
                if stop.received is not None and state["step"] < steps:
                    state["train_seconds"] += time.perf_counter() - start
                    save_checkpoint(checkpoint, trainer, state)
                    raise Interrupted(stop.received)
            logs = {"loss": state["loss_sum"] / steps, "accuracy": state["correct"] / (steps * batch_size)}
            if len(split.x_val):
                val_loss, val_accuracy = trainer.evaluate(x_val, y_val)
                logs |= {"val_loss": float(val_loss), "val_accuracy": float(val_accuracy)}
                bar.update(steps, logs["loss"], logs["accuracy"], f"val_loss {logs['val_loss']:.4f}  val_acc {logs['val_accuracy']:.4f}")
            state["train_seconds"] += time.perf_counter() - start
            history.setdefault("epoch", []).append(epoch + 1)
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            score = _score(logs, config.get("monitor", "val_loss"))
            if score < state["best_score"]:
                state.update(best_score=score, best_epoch=epoch + 1, best_weights=_values(trainer.model.variables) if patience else None)
            state.update(epoch=epoch + 1, step=0, loss_sum=0.0, correct=0.0)
            if patience and epoch + 1 - state["best_epoch"] >= patience:
                state["epoch"] = epochs  # early stop: the run is complete
            save_checkpoint(checkpoint, trainer, state)
            if on_epoch:
                on_epoch(epoch + 1, logs)
            if stop.received is not None and state["epoch"] < epochs:
                raise Interrupted(stop.received)
    if patience and state["best_weights"] is not None:
        for variable, value in zip(trainer.model.variables, state["best_weights"]):
            variable.assign(value)
    return state


def write_history(run_dir: Path, history: dict) -> None:
    keys = ["epoch"] + [k for k in history if k != "epoch"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(keys)
    writer.writerows(zip(*(history[k] for k in keys)))
    atomic.write_text(run_dir / "history.csv", out.getvalue())


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
) -> Path:
    """Train (or resume) a run; return its folder once model, ONNX and report are written.

    `data` may hold the dataset already loaded (as `digits.data.load` returns it).
    """
    if resume is not None:
        run_dir = Path(resume)
        config = read_config(run_dir)
        if config.get("status") == "finished":
            log(f"{run_dir} already finished; nothing to do.")
            return run_dir
    else:
        config = make_config(preset, overrides or {}, dataset, seed, train_limit)
        config["provenance"] = provenance.collect(config["dataset"])
        run_dir = create_run_dir(Path(runs_dir), name, config)
    keras.utils.set_random_seed(config["seed"])
    tf.config.experimental.enable_op_determinism()

    (x, y), test = data or load(config["dataset"], data_dir)
    split = add_reader_data(split_data(x, y, config["validation_split"], config["train_limit"]), config)
    steps = len(split.x_train) // config["batch_size"]
    if steps < 1:
        raise TrainingError(f"{len(split.x_train)} training images are fewer than one batch of {config['batch_size']}.")
    trainer = Trainer(config, steps)
    config["parameters"] = trainer.model.count_params()
    state = new_state()
    if resume is not None and (run_dir / CHECKPOINT).exists():
        state = load_checkpoint(run_dir / CHECKPOINT, trainer)
    write_config(run_dir, config, status="running", pid=os.getpid())
    try:
        state = fit(trainer, split, config, run_dir, state, sys.stderr.isatty() if progress is None else progress)
    except Interrupted as stop:
        write_config(run_dir, config, status="interrupted", epochs_done=state["epoch"])
        log(f"Interrupted by {stop}; epoch {state['epoch']} of {config['epochs']} is saved. Resume with: digits train --resume {run_dir}")
        raise
    except BaseException:
        with contextlib.suppress(atomic.WriteError):  # best effort: the disk may be what failed
            write_config(run_dir, config, status="failed", epochs_done=state["epoch"])
        raise
    finish(trainer.model, run_dir, config, state, test)
    return run_dir


def finish(model: keras.Model, run_dir: Path, config: dict, state: dict, test) -> None:
    """Save the trained model and its ONNX twin, then write the evaluation report."""
    from digits import evaluate, export

    with atomic.atomic_path(run_dir / "model.keras") as tmp:
        model.save(tmp)
    export.to_onnx(model, run_dir / "model.onnx")
    write_history(run_dir, state["history"])
    evaluate.report_run(run_dir, config, state["history"], test, best_epoch=state["best_epoch"],
                        train_seconds=state["train_seconds"])
    write_config(run_dir, config, status="finished", epochs_done=state["epoch"])
