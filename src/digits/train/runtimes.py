"""Other runtimes for a run's model: int8 ONNX and TensorFlow Lite, each checked on its dataset's test set.

    digits export RUN --format onnx-int8   ->  RUN/model.int8.onnx   (ONNX Runtime, static int8 quantization)
    digits export RUN --format tflite      ->  RUN/model.tflite      (TensorFlow's converter, float32)

Contract: `export_format(run, fmt)` writes the file atomically next to the
run's `model.onnx` (int8, made from it) or `model.keras` (TFLite), runs it
on the whole test set of the run's dataset beside the float ONNX model, and returns an
`Export`: the file, its size and test accuracy, and the float model's. An
11-output model's "not a digit" counts as an error, as in the run's report.
The int8 file is an ONNX model like any other: `serve` and `read` take it
with `--model RUN/model.int8.onnx`. The TFLite file is for TensorFlow Lite
(phones, microcontrollers); `digits` itself predicts only with ONNX Runtime.

Static quantization (`quantize`) stores activations in 8 bits and weights
(per output channel) in 7, the activations' ranges measured once on a fixed
sample of the images the run learnt from (`calibration_images`). It is what
makes int8 pay on a CPU: with the shipped reader (then with 8-bit weights,
on a CPU with VNNI), 43 µs per image on one core against the float model's
113 µs, at batches of 512, where dynamic quantization (activations quantized
per call) took 506 µs; with 7-bit weights on a CPU with AVX2 alone, 82 ms
per 1,000 images against 118. The shipped model itself is this int8 model
(`export.ship`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits import atomic, calibration
from digits.config import TrainConfig
from digits.errors import ModelError, first_line
from digits.runs import RunDir
from digits.spec import SHAPE

# Activation ranges are measured on this many training images, drawn with a fixed seed...
CALIBRATION_IMAGES = 4000
_CALIBRATION_SEED = 0
# ...as the range holding all but this share of each activation's values: one stray value
# must not stretch the range the other values share (the shipped reader: MNIST 99.40 % as the
# float model, where the full range (min-max) gave 99.38 %).
CALIBRATION_PERCENTILE = 99.999


@dataclass(frozen=True)
class Export:
    path: Path
    size: int
    accuracy: float  # on the test set of the run's dataset
    float_size: int  # the float ONNX model's
    float_accuracy: float
    dataset: str = "mnist"

    def summary(self) -> str:
        return (
            f"{self.path}: {self.dataset} test accuracy {100 * self.accuracy:.2f} % (float ONNX "
            f"{100 * self.float_accuracy:.2f} %), {self.size / 1024:.0f} KiB ({self.size / self.float_size:.2f} "
            f"of the float model's {self.float_size / 1024:.0f} KiB)"
        )


def export_format(run_dir: str | os.PathLike, fmt: str, data_dir=None) -> Export:
    """Write the run's model in `fmt` ("onnx-int8" or "tflite") and measure it against the float ONNX model,
    on the test set of the dataset the run learnt from."""
    from digits.read.model import Recognizer
    from digits.train.extra_data import load_test_set

    run = RunDir(run_dir)
    float_model = Recognizer(run.path)  # the run's model.onnx, checked
    path = run.path / RunDir.EXPORTS[fmt]
    config, info = run.read_run()
    if fmt == "onnx-int8":
        # The temperature the float model is read with, wherever it was found (a run trained before models
        # held it in their metadata has it in its config.json only): the int8 file is read outside the run too.
        stamp = calibration.metadata({"temperature": float_model.temperature}) if float_model.temperature != 1 else {}
        quantize(float_model.path, path, calibration_images(config, data_dir), stamp)
        predict = Recognizer(path).predict_proba
    else:
        if info.ensemble:  # the converter takes a Keras model; an ensemble is only its ONNX
            raise ModelError(f"{run_dir}: an ensemble has no Keras model for TensorFlow Lite; export its members.")
        _to_tflite(run.keras_path, path)
        predict = _tflite_predictor(path)
    images, labels = load_test_set(config.dataset, data_dir)
    return Export(
        path,
        path.stat().st_size,
        _accuracy(predict, images, labels),
        float_model.path.stat().st_size,
        _accuracy(float_model.predict_proba, images, labels),
        config.dataset,
    )


def _accuracy(predict, images: np.ndarray, labels: np.ndarray, batch: int = 1000) -> float:
    hits = sum(
        int((predict(images[i : i + batch]).argmax(axis=1) == labels[i : i + batch]).sum())
        for i in range(0, len(images), batch)
    )
    return hits / len(images)


def calibration_images(config: TrainConfig, data_dir=None, count: int = CALIBRATION_IMAGES) -> np.ndarray:
    """A fixed sample of `count` images the run learnt from, float32 (N, 28, 28) in [0, 1].

    An equal share from each of its sources: its dataset's training images,
    and each set of other writers' digits and the real non-digits its config
    adds (`reader_mix.extra_training`). Drawn in proportion instead, MNIST's
    60,000 would fill most of the sample, and the ranges would be MNIST's.
    """
    from digits.train.extra_data import load_dataset
    from digits.train.reader_mix import extra_training

    (x_train, _), _ = load_dataset(config.dataset, data_dir)
    parts = [x_train]
    if config.extra_digits or config.real_negatives:
        parts += [images for images, _ in extra_training(config, data_dir)[0]]
    from digits.read.model import as_batch

    rng = np.random.default_rng(_CALIBRATION_SEED)
    share = -(-count // len(parts))
    return np.concatenate(
        [as_batch(part[np.sort(rng.choice(len(part), min(share, len(part)), replace=False))]) for part in parts]
    )


def quantize(source: Path, path: Path, images: np.ndarray, metadata: dict[str, str] | None = None) -> None:
    """Write `source` (a float ONNX model) to `path` with 8-bit activations and 7-bit weights (ONNX Runtime's
    static quantization, QDQ format, weights per channel), activation ranges measured on `images`; atomically.
    The source's metadata, and `metadata` over it, go with it."""
    import contextlib
    import io
    import logging
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from digits.train.export import with_metadata

    if len(images) == 0:
        raise ModelError(f"{source}: quantizing needs calibration images, and none were given.")
    input_name = onnx.load(source).graph.input[0].name

    class Batches(CalibrationDataReader):
        # Of one size (its calibrator stacks them), the last few images left out if they make a smaller one.
        def __init__(self, size: int = min(250, len(images))):
            self.batches = iter(range(0, len(images) - size + 1, size))
            self.size = size

        def get_next(self):
            start = next(self.batches, None)
            return None if start is None else {input_name: images[start : start + self.size]}

    # Its calibrator prints its progress on stdout, and its advice goes to the root logger (our stderr).
    with (
        atomic.atomic_path(
            path, follow_symlinks=False
        ) as tmp,  # a link planted in a run folder is replaced, not followed
        tempfile.TemporaryDirectory() as work,
        contextlib.redirect_stdout(io.StringIO()),
    ):
        logging.disable(logging.WARNING)
        try:
            prepared = Path(work) / "prepared.onnx"
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(tmp),
                Batches(),
                nodes_to_exclude=_probability_nodes(onnx.load(prepared).graph),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                # Weights in 7 bits: ONNX Runtime's x86 u8s8 kernel for CPUs without VNNI (AVX2 alone) adds
                # pairs of 8-bit products in 16 bits, which saturate with 8-bit weights (the shipped reader
                # read 98.42 % of MNIST's test set there, 99.38 % with VNNI); with 7 bits the sums fit, and
                # x86 CPUs with and without VNNI give the same answers.
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={"CalibPercentile": CALIBRATION_PERCENTILE},
            )
            # The quantizer drops the model's metadata: the temperature fitted for the run goes with it.
            if kept := {prop.key: prop.value for prop in onnx.load(str(source)).metadata_props} | (metadata or {}):
                with_metadata(tmp, kept)
        except Exception as err:  # noqa: BLE001 (onnxruntime raises its own types for a model it cannot quantize)
            raise ModelError(f"{source}: ONNX Runtime cannot quantize this model ({first_line(err)}).") from err
        finally:
            logging.disable(logging.NOTSET)


def _probability_nodes(graph) -> list[str]:
    """The softmax and the layer that feeds it, left in float: in 8 bits, probabilities come in steps of
    1/255 (most exactly 0), and two classes can tie for the top (12 of MNIST's test images did)."""
    producers = {output: node for node in graph.node for output in node.output}
    softmaxes = [node for node in graph.node if node.op_type == "Softmax"]
    feeding = [producers[node.input[0]] for node in softmaxes if node.input[0] in producers]
    return [node.name for node in softmaxes + feeding]


def _to_tflite(keras_path: Path, path: Path) -> None:
    import contextlib
    import io
    import tempfile

    from digits.train.export import load_keras
    from digits.train.tf import load, native_logs_filtered

    tf, keras = load()
    model = load_keras(keras_path)
    # The same signature as the ONNX export: (N, 28, 28) float32 in [0, 1].
    spec = [keras.InputSpec(shape=(None, *SHAPE), dtype="float32", name="image")]
    with tempfile.TemporaryDirectory() as saved, native_logs_filtered(), contextlib.redirect_stdout(io.StringIO()):
        model.export(saved, format="tf_saved_model", verbose=False, input_signature=spec)
        data = tf.lite.TFLiteConverter.from_saved_model(saved).convert()
    atomic.write_bytes(path, data, follow_symlinks=False)


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
        interpreter.resize_tensor_input(entry["index"], [len(images), *SHAPE])
        interpreter.allocate_tensors()
        interpreter.set_tensor(entry["index"], images.astype(np.float32) / np.float32(255))
        interpreter.invoke()
        return interpreter.get_tensor(exit_["index"])

    return predict
