"""The training loop: a Trainer, signals and the progress bar (its checkpoint: `digits.train.checkpoint`).

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

Determinism: batches come from a stateless shuffle keyed by (seed, epoch), and
Keras's dropout RNG state lives in the model's variables, which the checkpoint
saves. So a resumed run sees exactly the batches and the random numbers an
uninterrupted run would have seen, and its history matches epoch for epoch.

The checkpoint is read and written only through `runs.RunDir` (by `digits.train.checkpoint`);
`digits.train.run` owns the run's lifecycle around this loop.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from digits.config import TrainConfig
from digits.errors import Interrupted, stop_signals_call
from digits.runs import RunDir
from digits.train import models
from digits.train import tf as backend
from digits.train.checkpoint import save_checkpoint, variable_values
from digits.train.dataset import TENSOR_ALIGNMENT, Split
from digits.train.metrics import lower_is_better
from digits.train.timing import add as add_phase

if TYPE_CHECKING:  # mypy reads the modules; at run time they come through the one door, `backend.load()`
    import keras
    import tensorflow as tf
else:
    tf, keras = backend.load()

# Test-only: "SIGINT:2" makes a run send itself SIGINT right after epoch 2's
# checkpoint, so the signal tests interrupt at a known point instead of racing the clock.
TEST_SIGNAL_VARIABLE = "DIGITS_TEST_SIGNAL"


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
        self.config, self.steps_per_epoch = config, steps_per_epoch
        self.model = models.build(config)
        self.optimizer = models.optimizer(config, steps_per_epoch)
        self.optimizer.build(self.model.trainable_variables)
        self.variables = named_variables(self.model, self.optimizer)
        self.loss = keras.losses.SparseCategoricalCrossentropy()  # what validation reports
        self.train_loss = models.train_loss(config)
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

                max_shift, scale_range = (aug.REAL_MAX_SHIFT_PX, aug.REAL_SCALE_RANGE) if augment_real else (None, None)
                # `augment` is True (strength 1) or a strength, as tuning sets it.
                images = aug.deform_batch(
                    images, tf.stack([seed, global_step]), max_shift, scale_range, strength=float(augment)
                )
            if augment_real:
                from digits.train.augment import real_batch

                # Negative steps: a random stream no deform_batch call ever uses.
                images = real_batch(images, tf.stack([seed, -1 - global_step]))
            with tf.GradientTape() as tape:
                probabilities = model(images, training=True)
                loss = self.train_loss(labels, probabilities)
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
        self._handlers = stop_signals_call(self._handle)
        self._handlers.__enter__()
        return self

    def __exit__(self, exc_type, *exc):
        self._handlers.__exit__(None, None, None)
        if exc_type is None and self.received is not None:
            # Received after the loop's last look (during the last epoch's callback): not swallowed.
            raise Interrupted(self.received)

    def _handle(self, signum, frame):
        self.received = signum

    @staticmethod
    def test_signal_after(epoch: int) -> None:
        """Deliver the signal `DIGITS_TEST_SIGNAL` ("SIGINT:2") names, if it names this epoch."""
        name, _, after = os.environ.get(TEST_SIGNAL_VARIABLE, "").partition(":")
        if name and after == str(epoch):
            os.kill(os.getpid(), signal.Signals[name])


class ProgressBar:
    """One rich progress bar per epoch with ETA and live loss/accuracy; off a terminal, one line per epoch
    through `log` if given (a `cnn` run piped to a file said nothing for twelve minutes), else silent."""

    def __init__(self, enabled: bool, steps: int, epochs: int, log: Callable[[str], object] | None = None):
        self.enabled, self.steps, self.epochs, self.log = enabled, steps, epochs, log
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

    def epoch_done(self, epoch: int, logs: dict[str, float], seconds: float) -> None:
        if not self.enabled and self.log is not None:
            scores = "  ".join(f"{name} {value:.4f}" for name, value in logs.items())
            self.log(f"epoch {epoch + 1}/{self.epochs}: {scores} ({seconds:.1f} s)")


def as_tensor(array: np.ndarray) -> tf.Tensor:
    """`array` as a constant tensor, sharing its memory where TensorFlow can, else copied.

    TensorFlow shares memory that is in C order and starts on a `TENSOR_ALIGNMENT` boundary (it
    aborts the process on other memory), which `dataset.split_data` gives the training images. The
    loop never writes to its data, and the tensor holds the array alive.
    """
    if (
        array.size
        and array.flags.c_contiguous
        and array.flags.writeable  # NumPy exports no read-only array
        and array.ctypes.data % TENSOR_ALIGNMENT == 0
    ):
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    return tf.constant(array)


def _score(logs: dict, monitor: str) -> float:
    """The monitored quantity as lower-is-better; without validation data, the training loss."""
    if monitor not in logs:
        return logs["loss"]
    return lower_is_better(logs[monitor], monitor)


def fit(trainer: Trainer, split: Split, run: RunDir, state: dict, progress: bool, on_epoch=None, log=None) -> dict:
    """Train the trainer's config from where `state` stands to the last epoch; checkpoint after every epoch.

    Without the progress bar, `log`, if given, gets one line per epoch.
    `on_epoch(epoch, logs)`, if given, sees each finished epoch's metrics
    (tuning reports them to its trial, and may stop the run by raising).
    Raises `Interrupted` (after saving a checkpoint) on SIGINT or SIGTERM.
    """
    config = trainer.config
    x, y = as_tensor(split.x_train), as_tensor(split.y_train)
    x_val, y_val = as_tensor(split.x_val), as_tensor(split.y_val)
    batch_size, epochs, patience = config.batch_size, config.epochs, config.early_stopping
    steps = len(split.x_train) // batch_size
    chunk = chunk_size(steps, config.chunk_steps)
    history = state["history"]
    chunk_seconds: list[float] = []
    with SignalFlag() as stop, ProgressBar(progress, steps, epochs, log) as bar:
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
            seconds = time.perf_counter() - start
            state["train_seconds"] += seconds
            bar.epoch_done(epoch, logs, seconds)
            history.setdefault("epoch", []).append(epoch + 1)
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            score = _score(logs, config.monitor)
            if score < state["best_score"]:
                state.update(
                    best_score=score,
                    best_epoch=epoch + 1,
                    best_weights=variable_values(trainer.variables["model"]) if patience else None,
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
    if config.ema:  # the model saved is the average of the weights; validation above saw the raw ones
        trainer.optimizer.finalize_variable_values(trainer.model.trainable_variables)
    return state
