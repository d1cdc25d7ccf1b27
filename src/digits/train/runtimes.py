"""Other runtimes for a run's model: int8 ONNX and TensorFlow Lite, each checked on the MNIST test set.

    digits export RUN --format onnx-int8   ->  RUN/model.int8.onnx   (ONNX Runtime, dynamic quantization)
    digits export RUN --format tflite      ->  RUN/model.tflite      (TensorFlow's converter, float32)

Contract: `export_format(run, fmt)` writes the file atomically next to the
run's `model.onnx` (int8, made from it) or `model.keras` (TFLite), runs it
on the whole MNIST test set beside the float ONNX model, and returns an
`Export`: the file, its size and test accuracy, and the float model's. An
11-output model's "not a digit" counts as an error, as in the run's report.
The int8 file is an ONNX model like any other: `serve` and `read` take it
with `--model RUN/model.int8.onnx`. The TFLite file is for TensorFlow Lite
(phones, microcontrollers); `digits` itself predicts only with ONNX Runtime.

Dynamic quantization stores the weights of MatMul and Conv as int8 and
quantizes activations per batch at run time: no calibration data, and the
predictions stay those of the float model to within a few test images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits import atomic
from digits.errors import ModelError
from digits.runs import RunDir

FILES = {"onnx-int8": "model.int8.onnx", "tflite": "model.tflite"}


@dataclass(frozen=True)
class Export:
    path: Path
    size: int
    accuracy: float  # on the MNIST test set
    float_size: int  # the float ONNX model's
    float_accuracy: float

    def summary(self) -> str:
        return (
            f"{self.path}: MNIST test accuracy {100 * self.accuracy:.2f} % (float ONNX "
            f"{100 * self.float_accuracy:.2f} %), {self.size / 1024:.0f} KiB ({self.size / self.float_size:.2f} "
            f"of the float model's {self.float_size / 1024:.0f} KiB)"
        )


def export_format(run_dir: str | os.PathLike, fmt: str, data_dir=None) -> Export:
    """Write the run's model in `fmt` ("onnx-int8" or "tflite") and measure it against the float ONNX model."""
    from digits.data import load_mnist
    from digits.read.model import Recognizer

    run = RunDir(run_dir)
    float_model = Recognizer(run.path)  # the run's model.onnx, checked
    path = run.path / FILES[fmt]
    if fmt == "onnx-int8":
        _quantize(float_model.path, path)
        predict = Recognizer(path).predict_proba
    else:
        _to_tflite(run.keras_path, path)
        predict = _tflite_predictor(path)
    _, (images, labels) = load_mnist(data_dir)
    return Export(
        path,
        path.stat().st_size,
        _accuracy(predict, images, labels),
        float_model.path.stat().st_size,
        _accuracy(float_model.predict_proba, images, labels),
    )


def _accuracy(predict, images: np.ndarray, labels: np.ndarray, batch: int = 1000) -> float:
    hits = sum(
        int((predict(images[i : i + batch]).argmax(axis=1) == labels[i : i + batch]).sum())
        for i in range(0, len(images), batch)
    )
    return hits / len(images)


def _quantize(source: Path, path: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic.atomic_path(path) as tmp:
        logging.disable(logging.WARNING)  # its advice to pre-process goes to the root logger, i.e. our stderr
        try:
            quantize_dynamic(source, tmp, weight_type=QuantType.QInt8)
        except Exception as err:  # noqa: BLE001 (onnxruntime raises its own types for a model it cannot quantize)
            raise ModelError(
                f"{source}: ONNX Runtime cannot quantize this model ({str(err).splitlines()[0][:160]})."
            ) from err
        finally:
            logging.disable(logging.NOTSET)


def _to_tflite(keras_path: Path, path: Path) -> None:
    import contextlib
    import io
    import tempfile

    from digits.train.export import load_keras
    from digits.train.tf import load, native_logs_filtered

    tf, keras = load()
    model = load_keras(keras_path)
    # The same signature as the ONNX export: (N, 28, 28) float32 in [0, 1].
    spec = [keras.InputSpec(shape=(None, 28, 28), dtype="float32", name="image")]
    with tempfile.TemporaryDirectory() as saved, native_logs_filtered(), contextlib.redirect_stdout(io.StringIO()):
        model.export(saved, format="tf_saved_model", verbose=False, input_signature=spec)
        data = tf.lite.TFLiteConverter.from_saved_model(saved).convert()
    atomic.write_bytes(path, data)


def _tflite_predictor(path: Path):
    """(N, 28, 28) uint8 images -> probabilities, with TensorFlow Lite's interpreter."""
    from digits.train.tf import load

    tf, _ = load()
    # Without the XNNPACK delegate, which announces itself on stderr; the results are the same.
    interpreter = tf.lite.Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=(tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
    )
    [entry], [exit_] = interpreter.get_input_details(), interpreter.get_output_details()

    def predict(images: np.ndarray) -> np.ndarray:
        interpreter.resize_tensor_input(entry["index"], [len(images), 28, 28])
        interpreter.allocate_tensors()
        interpreter.set_tensor(entry["index"], images.astype(np.float32) / np.float32(255))
        interpreter.invoke()
        return interpreter.get_tensor(exit_["index"])

    return predict
