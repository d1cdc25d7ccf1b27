"""Models with a "not a digit" class: training them, loading them, and the model the package ships."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digits.read.model import ModelError, Recognizer, shipped_model
from digits.runs import RunDir
from digits.spec import REJECT
from helpers import assert_one_line_error, run_cli, weights_beyond_7_bits


def linear_onnx(path: Path, outputs: int, batch: int | str = "N", times: float | None = None) -> Path:
    """A tiny softmax-regression ONNX model with the given number of outputs (no TensorFlow needed); `batch` fixes
    its first dimension, and `times` multiplies its probabilities (a model that declares one thing, computes another)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.random.default_rng(0).normal(size=(784, outputs)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["softmax" if times is not None else "probabilities"], axis=1),
    ]
    constants = [weights]
    if times is not None:
        constants.append(numpy_helper.from_array(np.array(times, np.float32), "times"))
        nodes.append(helper.make_node("Mul", ["softmax", "times"], ["probabilities"]))
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, outputs])],
        constants,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_a_model_of_a_fixed_batch_is_refused_as_it_loads(tmp_path):
    with pytest.raises(ModelError, match="takes batches of exactly 1 images; export it with a batch dimension"):
        Recognizer(linear_onnx(tmp_path / "m.onnx", 11, batch=1))


@pytest.mark.parametrize("times", [float("nan"), float("inf")])
def test_a_model_that_answers_nan_or_infinity_is_one_sentence(tmp_path, times):
    recognizer = Recognizer(linear_onnx(tmp_path / "m.onnx", 11, times=times))
    for count in (1, 40):  # the one-thread session and the pooled one
        with pytest.raises(ModelError, match="answered NaN or infinite probabilities"):
            recognizer.predict_proba(np.zeros((count, 28, 28), np.uint8))


@pytest.mark.parametrize("times", [2.0, -1.0, 1.01])
def test_a_model_that_answers_scores_not_probabilities_is_one_sentence(tmp_path, times):
    """A model exported without its softmax (or scaled after it) answers rows that are not probabilities:
    `decide` refused them with an unexpected ValueError (exit 1), and `show` printed 6099.3 %."""
    model = linear_onnx(tmp_path / "m.onnx", 11, times=times)
    recognizer = Recognizer(model)
    for count in (1, 40):  # the one-thread session and the pooled one
        with pytest.raises(ModelError, match="answered scores, not probabilities"):
            recognizer.predict_proba(np.zeros((count, 28, 28), np.uint8))
    picture = tmp_path / "one.png"
    ink = np.full((28, 28), 255, np.uint8)
    ink[4:24, 12:16] = 0  # a stroke: a picture without ink is answered before the model is asked
    Image.fromarray(ink).save(picture)
    for command in (("predict", str(picture)), ("read", str(picture)), ("show",)):
        assert_one_line_error(run_cli(*command, "--model", str(model), cwd=tmp_path), "answered scores")


@pytest.mark.parametrize("outputs", [10, 11])
def test_recognizer_loads_models_with_10_or_11_outputs(tmp_path, outputs):
    recognizer = Recognizer(linear_onnx(tmp_path / "m.onnx", outputs))
    assert recognizer.num_classes == outputs
    probabilities = recognizer.predict_proba(np.zeros((3, 28, 28), np.uint8) + 50)
    assert probabilities.shape == (3, outputs) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert recognizer.predict(np.zeros((28, 28), np.float32)).shape == (1,)


def test_a_model_with_12_outputs_is_refused_with_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="10 digit probabilities"):
        Recognizer(linear_onnx(tmp_path / "m.onnx", 12))


@pytest.mark.slow
def test_an_11_class_run_trains_exports_and_reports_refusals(tmp_path, monkeypatch, mnist):
    from digits.train.run import train

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    overrides = {
        "reject_class": True,
        "junk_train": 100,
        "junk_val": 30,
        "junk_test": 20,
        "augment": True,
        "augment_real": True,
        "european_ones": 50,
        "crossed_sevens": 50,
        "photo_singles": 40,
        "photo_lines": 20,
        "epochs": 2,
    }
    run = train(
        "tiny",
        runs_dir=tmp_path,
        name="reject",
        train_limit=4000,
        overrides=overrides,
        progress=False,
        log=lambda *a: None,
    )
    assert Recognizer(run).num_classes == 11
    metrics = RunDir(run).read_metrics()
    assert len(metrics["confusion_matrix"]) == 11 and "not a digit" in metrics["per_class"]
    assert 0 <= metrics["digits_refused"] < 0.2 and metrics["junk_pictures"] == 20
    assert 0 <= metrics["junk_refused"] <= 1 and metrics["test_accuracy"] > 0.5
    assert (run / "confusion.png").stat().st_size > 0

    from digits.train.export import quantize_shipped, ship

    shipped = ship(run, tmp_path / "shipped")
    card = json.loads((tmp_path / "shipped" / "reader.json").read_text())
    # Shipped as int8, measured again; the card keeps the float model's digest and figures beside.
    assert card["float_model"]["sha256"] == hashlib.sha256((run / "model.onnx").read_bytes()).hexdigest()
    assert card["float_model"]["metrics"]["digits_refused"] == metrics["digits_refused"] and "int8" in card
    assert shipped.stat().st_size < (run / "model.onnx").stat().st_size / 2
    assert not weights_beyond_7_bits(shipped)
    assert card["config"]["reject_class"] and abs(card["metrics"]["test_accuracy"] - metrics["test_accuracy"]) < 0.02
    assert Recognizer(shipped).num_classes == 11 and card["metrics"]["junk_pictures"] == 20
    with pytest.raises(ModelError, match="already int8"):
        quantize_shipped(tmp_path / "shipped")
    # As a kill between writing the card and moving the model in leaves it: an int8 card beside the float
    # model. Running again finishes, and the float model's figures stay those measured on it.
    shutil.copy(run / "model.onnx", shipped)
    quantize_shipped(tmp_path / "shipped")
    again = json.loads((tmp_path / "shipped" / "reader.json").read_text())
    assert again["float_model"] == card["float_model"] and again["metrics"] == card["metrics"]
    assert not (tmp_path / "shipped" / ".quantizing").exists()


def test_an_unfinished_run_is_not_shipped(tmp_path):
    from digits.config import TrainConfig
    from digits.runs import RunDir, RunInfo
    from digits.train.export import ship

    (tmp_path / "run").mkdir()
    RunDir(tmp_path / "run").write_config(TrainConfig.from_preset("reader"), RunInfo(status="interrupted"))
    with pytest.raises(ModelError, match="has not finished"):
        ship(tmp_path / "run", tmp_path / "shipped")
    assert not (tmp_path / "shipped").exists()


# --- The shipped model -----------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Recognizer:
    return Recognizer(shipped_model())


def test_the_shipped_model_loads_from_the_package_with_its_metrics(shipped):
    from importlib.resources import files

    assert shipped.path == Path(str(files("digits") / "shipped" / "reader.onnx"))
    assert shipped.num_classes == 11
    assert shipped.path.stat().st_size < 5 * 1024 * 1024  # the package stays small
    card = json.loads(shipped.path.with_suffix(".json").read_text())
    assert card["config"]["preset"] == "reader" and card["config"]["reject_class"] is True
    assert card["metrics"]["test_accuracy"] >= 0.99 and card["metrics"]["junk_refused"] >= 0.95
    # Int8, and as accurate as the float model it was made from (its card keeps that model's figures).
    assert (
        "int8" in card and card["metrics"]["test_accuracy"] >= card["float_model"]["metrics"]["test_accuracy"] - 0.001
    )


def test_the_shipped_model_reads_mnist_as_its_card_says_on_this_cpu(shipped, mnist):
    """Its card's accuracy on this machine's CPU too: with 8-bit weights it read 98.42 % on a CPU with AVX2
    alone (ONNX Runtime's kernel there saturates) against the 99.38 % its card gave."""
    _, (x_test, y_test) = mnist
    card = json.loads(shipped.path.with_suffix(".json").read_text())
    right = int((shipped.predict_proba(x_test).argmax(axis=1) == y_test).sum())
    assert abs(right - round(card["metrics"]["test_accuracy"] * len(y_test))) <= 5
    assert not weights_beyond_7_bits(shipped.path)


def test_the_shipped_model_refuses_junk_it_never_saw(shipped):
    from digits.train.evaluate import refusal

    assert refusal(shipped, 60, seed=77)["junk_refused"] >= 0.9


def test_the_shipped_model_reads_mnist_and_refuses_few_digits(shipped, mnist):
    _, (x_test, y_test) = mnist
    predicted = shipped.predict(x_test[:2000])
    assert (predicted == y_test[:2000]).mean() >= 0.985
    assert (predicted == REJECT).mean() <= 0.01


def test_the_shipped_model_reads_european_ones_and_crossed_sevens(shipped, mnist):
    from digits.train.augment import european_variants

    _, (x_test, y_test) = mnist  # test digits: the model trained on variants of training digits only
    images, labels = european_variants(x_test.astype(np.float32) / 255, y_test, 200, 200, seed=5)
    assert (shipped.predict(images) == labels).mean() >= 0.95
