"""Predictions on ONNX Runtime. This module never imports TensorFlow or Keras.

    >>> from digits import Recognizer
    >>> Recognizer("runs/latest").predict(images)      # (N, 28, 28) -> (N,) digits
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from digits.errors import ModelError
from digits.runs import RunDir


def resolve_model(source: str | os.PathLike) -> Path:
    """A run folder (or `runs/latest`) or an `.onnx` file -> the `.onnx` file to load."""
    path = Path(source)
    if path.is_dir():
        path = RunDir(path).onnx_path
        if not path.is_file():
            raise ModelError(f"{source}: run folder has no model.onnx (export it with `digits export {source}`).")
    elif not path.exists():
        raise ModelError(f"{source}: no such run folder or model file (train one with `digits train`).")
    return path


class Recognizer:
    """A trained digit classifier, loaded once, used many times.

    `source` is a run folder or an `.onnx` file. Images are (N, 28, 28) or one
    (28, 28), either uint8 0-255 or float in [0, 1], white digit on black.
    """

    def __init__(self, source: str | os.PathLike = "runs/latest", threads: int | None = None):
        import onnxruntime as ort

        self.path = resolve_model(source)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for every decode fault
            raise ModelError(f"{self.path}: not a valid ONNX model ({str(err).splitlines()[0][:160]}).") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [28, 28] or inputs[0].type != "tensor(float)":
            found = ", ".join(f"{i.name}{i.shape} {i.type}" for i in inputs)
            raise ModelError(f"{self.path}: expects input {found}, not a batch of 28x28 float images.")
        if len(outputs) != 1 or outputs[0].shape[-1] != 10:
            raise ModelError(f"{self.path}: does not output 10 class probabilities.")
        self.input_name = inputs[0].name

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (N, 10)."""
        batch = as_batch(images)
        return self.session.run(None, {self.input_name: batch})[0]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The most likely digit for each image, shape (N,)."""
        return self.predict_proba(images).argmax(axis=1)

    def read_line(self, image) -> list[dict]:
        """The digits written on one line of a picture (a PIL image), left to right.

        Each is {"digit", "confidence", "box"}, box = [x0, y0, x1, y1] in the
        picture's pixels; no ink gives []. This is `digits read`.
        """
        from digits.preprocess import segment

        pieces = segment(image)
        if not pieces:
            return []
        probabilities = self.predict_proba(np.stack([piece.image for piece in pieces]))
        return [
            {"digit": int(p.argmax()), "confidence": round(float(p.max()), 4), "box": [int(v) for v in piece.box]}
            for piece, p in zip(pieces, probabilities)
        ]


def as_batch(images: np.ndarray) -> np.ndarray:
    """Any (28, 28) or (N, 28, 28) image array -> contiguous float32 in [0, 1]."""
    images = np.asarray(images)
    if images.shape[-2:] != (28, 28) or images.ndim not in (2, 3):
        raise ValueError(f"expected images of shape (N, 28, 28) or (28, 28), got {images.shape}")
    if images.ndim == 2:
        images = images[None]
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255)
    return np.ascontiguousarray(images, dtype=np.float32)
