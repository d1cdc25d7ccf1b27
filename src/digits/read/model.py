"""Predictions on ONNX Runtime. This module never imports TensorFlow or Keras.

>>> from digits import Recognizer
>>> Recognizer("runs/latest").predict(images)      # (N, 28, 28) -> (N,) digits
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from digits.calibration import apply as apply_temperature
from digits.calibration import stored_temperature
from digits.errors import ModelError, first_line
from digits.runs import RunDir
from digits.safe_open import read_regular
from digits.spec import SHAPE, class_count

# The largest model file read. The shipped one is under 2 MiB; without a cap,
# `--model /dev/zero` reads until the OOM killer, and a 300 GB sparse file
# fails with MemoryError.
MAX_MODEL_BYTES = 512 * 2**20
# The most images one ONNX Runtime call gets (about 50 KB of activations each for the shipped CNN).
_MOST_PER_CALL = 1024
# Up to this many images, one thread is quicker than several: handing so little work to the pool and
# waiting for it cost more than the work (the shipped CNN on 2 cores: one image 100 µs on one thread,
# 150 µs on two; even at 4). A reader that reads one picture at a time makes such calls.
_FEW = 4
# More threads than any machine has cores; ONNX Runtime answered 10**9 with std::bad_alloc.
_MOST_THREADS = 1024
# How far a row of probabilities may stray from summing to 1, or a probability past 1: float32 rounding, and
# int8 models' (the shipped one: 1.2e-7), never a model that answers scores.
_ROUNDING = 1e-3


def shipped_file(name: str) -> Path:
    """A file installed with the package in its `shipped/` folder (in a source checkout: src/digits/shipped/)."""
    from importlib.resources import files

    return Path(str(files("digits").joinpath(f"shipped/{name}")))


def onnx_session(path: Path, threads: int | None = None, model_bytes: bytes | None = None, fix: str = "") -> Any:
    """An ONNX Runtime session on the CPU of the model at `path` (or of `model_bytes`, read from it), with
    `threads` threads (None: every core) that sleep between calls. A file that is no ONNX model is one
    `ModelError` sentence naming `path`, with `fix` (e.g. "; reinstall digits") after the cause.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # A reader calls the model between stretches of its own work on the same cores. Threads
    # spinning while they wait for the next call took that work's CPU: 2-3× the time per
    # small picture on 2 busy cores. Waiting threads sleep instead; a big batch still uses them all.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            str(path) if model_bytes is None else model_bytes, options, providers=["CPUExecutionProvider"]
        )
    except Exception as err:  # onnxruntime raises its own exception types for every decode fault
        raise ModelError(f"{path}: not a valid ONNX model ({first_line(err)}){fix}.") from None


def shipped_model() -> Path:
    """The model installed with the package: the best preset for real pictures."""
    path = shipped_file("reader.onnx")
    if not path.is_file():
        raise ModelError(
            f"{path}: this installation ships no model; train one with `digits train` and pass --model RUN."
        )
    return path


def resolve_model(model: str | os.PathLike[str] | None) -> Path:
    """A run folder (or `runs/latest`), an `.onnx` file, or None for the shipped model -> the `.onnx` file."""
    if model is None:
        return shipped_model()
    if not isinstance(model, (str, os.PathLike)):  # os.fspath's own message would offer bytes, which Path refuses
        raise TypeError(
            f"model is a run folder or an .onnx file (a str or a pathlib.Path), not {type(model).__name__}."
        )
    if not os.fspath(model):  # Path("") is the current folder: a run folder there would load without a word
        raise ModelError("the model's name is empty; pass a run folder or an .onnx file (none: the shipped model).")
    path = Path(model)
    if path.is_dir():
        run = RunDir(path)
        path = run.onnx_path
        if not path.exists():  # one that is no regular file is refused by read_model
            raise ModelError(f"{model}: run folder has no model.onnx ({run.missing_model_advice()}).")
    elif path.is_symlink() and not path.exists():
        raise ModelError(f"{model}: a symbolic link that leads nowhere (its target is missing, or links loop).")
    elif not path.exists():
        raise ModelError(f"{model}: no such run folder or model file (train one with `digits train`).")
    elif path.suffix.lower() in (".keras", ".h5"):  # every prediction runs on ONNX, not on Keras
        raise ModelError(f"{model}: a Keras model; pass its run folder or the run's model.onnx instead.")
    elif path.suffix.lower() == ".tflite":  # `digits export --format tflite` makes it for other runtimes
        raise ModelError(f"{model}: a TensorFlow Lite model, for other runtimes; pass the run's model.onnx instead.")
    return path


def read_model(path: Path) -> bytes:
    """The bytes of a model file: a regular file of at most `MAX_MODEL_BYTES` (see `safe_open`), or a `ModelError`.

    Read here, so a file we may not read is not reported as an invalid model.
    """
    return read_regular(path, MAX_MODEL_BYTES, ModelError, "pass a run folder or an .onnx file")


class Recognizer:
    """A trained digit classifier, loaded once, used many times.

    `model` is a run folder, an `.onnx` file, or None for the model the
    package ships. It outputs 10 digit probabilities, or 11 where the last
    (`REJECT`) is "not a digit"; `num_classes` says which. Images are (N, 28, 28) or one
    (28, 28), either uint8 0-255 or float in [0, 1], white digit on black.
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, threads: int | None = None):
        if threads is not None and not (type(threads) is int and 1 <= threads <= _MOST_THREADS):
            wanted = f"threads is {threads!r}: a whole number from 1 to {_MOST_THREADS}, or None for every core."
            # As `threshold` and `digits.batch`'s counts: a wrong type is a TypeError, a wrong number a ValueError.
            raise TypeError(wanted) if type(threads) is not int else ValueError(wanted)
        self.path = resolve_model(model)
        model_bytes = read_model(self.path)
        # What was loaded, by content: a batch's rows name it, and a file replaced since cannot pass for it.
        self.sha256 = hashlib.sha256(model_bytes).hexdigest()
        self.session = onnx_session(self.path, threads, model_bytes)
        import onnxruntime as ort

        self._quiet = ort.RunOptions()
        self._quiet.log_severity_level = 3  # a model's failure is our ModelError, not also a line of its log
        # Same weights, same outputs bit for bit (the threads split the work, not the sums): for `_FEW` images.
        # Made at the first such call (the model's bytes are kept till then): big batches alone never load it twice.
        self._few_session = self.session if threads == 1 else None
        self._model_bytes = b"" if threads == 1 else model_bytes
        self._making_few = threading.Lock()
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or tuple(inputs[0].shape[1:]) != SHAPE or inputs[0].type != "tensor(float)":
            found = ", ".join(f"{i.name}{i.shape} {i.type}" for i in inputs)
            raise ModelError(f"{self.path}: expects input {found}, not a batch of 28x28 float images.")
        if isinstance(inputs[0].shape[0], int):  # a named or unknown first dimension takes any batch
            raise ModelError(
                f"{self.path}: takes batches of exactly {inputs[0].shape[0]} images; "
                "export it with a batch dimension of any size (digits export does)."
            )
        if (
            len(outputs) != 1
            or len(outputs[0].shape or ()) != 2
            or outputs[0].type != "tensor(float)"
            or outputs[0].shape[-1] not in (class_count(False), class_count(True))
        ):
            raise ModelError(f"{self.path}: does not output 10 digit probabilities (or 11, with 'not a digit').")
        self.input_name = inputs[0].name
        self.num_classes: int = outputs[0].shape[-1]
        # Fitted on the run's validation images when it was trained (`digits.calibration`); 1.0 when none was.
        self.temperature = stored_temperature(self.path, self.session.get_modelmeta().custom_metadata_map)

    def __reduce__(self) -> Any:  # pickle and deepcopy, of a Reader too, come here (a shallow copy shares it)
        raise TypeError(
            "a Recognizer (and a Reader) holds an ONNX Runtime session, which cannot be pickled or deep-copied: "
            "make one in each process (digits.batch does, one per worker)."
        )

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (N, 10), or (N, 11) with "not a digit" last, calibrated by the stored temperature."""
        batch = as_batch(images)
        if len(batch) <= _FEW:
            if self._few_session is None:
                with self._making_few:  # two threads of one Recognizer: one makes it, the other uses it
                    if self._few_session is None:
                        self._few_session, self._model_bytes = onnx_session(self.path, 1, self._model_bytes), b""
            return apply_temperature(self._answer(self._few_session, batch), self.temperature)
        # ONNX Runtime's arena keeps the memory of its largest call: slices bound it, whatever N is.
        slices = [batch[i : i + _MOST_PER_CALL] for i in range(0, len(batch), _MOST_PER_CALL)]
        answers = np.concatenate([self._answer(self.session, part) for part in slices])
        return apply_temperature(answers, self.temperature)

    def _answer(self, session: Any, batch: np.ndarray) -> np.ndarray:
        """One model call, checked: a model file can declare one thing and compute another."""
        try:
            found = session.run(None, {self.input_name: batch}, self._quiet)[0]
        except Exception as err:  # onnxruntime raises its own exception types
            raise ModelError(f"{self.path}: failed on {len(batch)} images ({first_line(err)}).") from None
        expected = (len(batch), self.num_classes)
        if not isinstance(found, np.ndarray) or found.shape != expected or found.dtype != np.float32:
            shape = getattr(found, "shape", type(found).__name__)
            raise ModelError(f"{self.path}: answered {shape} for {len(batch)} images, not {expected} probabilities.")
        if not np.isfinite(found).all():
            raise ModelError(f"{self.path}: answered NaN or infinite probabilities; it is not a usable model.")
        # A model exported without its softmax answers scores: each row must be probabilities that sum to 1.
        if len(found) and (
            found.min() < 0 or found.max() > 1 + _ROUNDING or np.abs(found.sum(axis=1) - 1).max() > _ROUNDING
        ):
            raise ModelError(
                f"{self.path}: answered scores, not probabilities (each row from 0 to 1, summing to 1); "
                "export the model with its softmax."
            )
        return found

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The most likely class for each image, shape (N,): a digit, or `REJECT` (10) for "not a digit"."""
        classes: np.ndarray = self.predict_proba(images).argmax(axis=1)
        return classes


def as_batch(images: np.ndarray) -> np.ndarray:
    """A (28, 28) or (N, 28, 28) image array -> contiguous float32 in [0, 1], white digit on black.

    Integers are pixels 0-255 (any integer type: MNIST's uint8, or int64 from arithmetic on it);
    floats are already in [0, 1]. Anything else is a ValueError, not a silent wrong answer: float
    pixels far outside [0, 1] (beyond 1.5, or below -0.5, are 0-255 pixels not yet divided by 255;
    the reader's own resampling overshoots [0, 1] by less), integers outside 0-255, NaN or infinity.
    """
    given = images
    images = np.asarray(images)
    if images.ndim == 0:  # None, a path, a generator: no array at all
        raise ValueError(
            f"expected an array of images of shape (N, 28, 28) or (28, 28), got {type(given).__name__}"
            " (a picture file or a photo goes to digits.Reader)"
        )
    if images.shape[-2:] != SHAPE or images.ndim not in (2, 3):
        raise ValueError(f"expected images of shape (N, 28, 28) or (28, 28), got {images.shape}")
    if images.ndim == 2:
        images = images[None]
    if np.issubdtype(images.dtype, np.integer):
        # uint8 holds 0-255 by its type; a wider integer is checked.
        if images.dtype != np.uint8 and images.size and (images.min() < 0 or images.max() > 255):
            raise ValueError(f"integer pixels must be 0-255; these run from {images.min()} to {images.max()}")
        return images.astype(np.float32) / np.float32(255)
    if not (np.issubdtype(images.dtype, np.floating) or images.dtype == np.bool_):
        raise ValueError(f"expected pixels as numbers, got an array of {images.dtype}")
    # Checked before the conversion, which would overflow 1e308 to infinity with a warning. NaN fails both
    # comparisons, and infinity one: no separate isfinite pass on the serving path.
    if images.size and not (images.min() >= -0.5 and images.max() <= 1.5):
        raise ValueError(
            "float pixels must be in [0, 1] (white digit on black); divide 0-255 pixels by 255, or pass them as integers"
        )
    return np.ascontiguousarray(images, dtype=np.float32)
