"""Calibration: a temperature fitted on validation images, stored with the model, applied to every prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digits import calibration
from digits.config import TrainConfig
from digits.errors import ModelError
from digits.read.model import Recognizer
from digits.read.reader import Reader
from digits.runs import RunDir, RunInfo


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_fitted_temperature_undoes_overconfidence():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 10))
    labels = np.array([rng.choice(10, p=p) for p in softmax(logits)])  # labels drawn at temperature 1
    overconfident = softmax(3 * logits)
    record = calibration.calibrate(overconfident, labels, "a test")
    assert 2.6 < record["temperature"] < 3.4
    assert record["nll_after"] < record["nll_before"] and record["ece_after"] < record["ece_before"]
    calibrated = calibration.apply(overconfident, record["temperature"])
    assert (calibrated.argmax(1) == overconfident.argmax(1)).all()
    np.testing.assert_allclose(calibrated.sum(axis=1), 1, atol=1e-5)


def linear_onnx(path) -> None:
    """A small 11-output ONNX model: flatten, one fixed matrix, softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(1).normal(0, 0.2, (784, 11)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["image", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "weights"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "linear",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 11])],
        [numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(np.array([-1, 784], np.int64), "shape")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


@pytest.fixture
def images():
    return np.random.default_rng(2).uniform(0, 1, (6, 28, 28)).astype(np.float32)


def test_a_shipped_models_card_carries_its_temperature(tmp_path, images):
    linear_onnx(tmp_path / "reader.onnx")
    raw = Recognizer(tmp_path / "reader.onnx").predict_proba(images)  # no card: unchanged
    (tmp_path / "reader.json").write_text(json.dumps({"config": {"calibration": {"temperature": 2.5}}}))
    recognizer = Recognizer(tmp_path / "reader.onnx")
    assert recognizer.temperature == 2.5
    np.testing.assert_allclose(recognizer.predict_proba(images), calibration.apply(raw, 2.5), atol=1e-6)
    # The reader reports the calibrated confidence.
    digit = Reader(tmp_path / "reader.onnx", threshold=0).decide(recognizer.predict_proba(images)[0])
    calibrated = calibration.apply(raw, 2.5)[0]
    assert digit.confidence == pytest.approx(float(max(calibrated[:10].max(), calibrated[10])), abs=1e-4)


def test_a_runs_config_carries_its_temperature(tmp_path, images):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    linear_onnx(run.onnx_path)
    raw = Recognizer(run.path).predict_proba(images)  # a run that did not calibrate: unchanged
    run.write_config(TrainConfig.from_preset("tiny"), RunInfo(status="finished", calibration={"temperature": 0.5}))
    np.testing.assert_allclose(Recognizer(run.path).predict_proba(images), calibration.apply(raw, 0.5), atol=1e-6)


def test_a_damaged_card_is_one_sentence_not_silently_uncalibrated(tmp_path):
    linear_onnx(tmp_path / "reader.onnx")
    (tmp_path / "reader.json").write_text('{"config": {"calibration": {"temperature": -1}}}')
    with pytest.raises(ModelError, match="temperature is a number from 0.05 to 20"):
        Recognizer(tmp_path / "reader.onnx")
    for temperature in ("1e-320", "1" + "0" * 400, "NaN"):  # NaN confidences; no float; no number
        (tmp_path / "reader.json").write_text('{"config": {"calibration": {"temperature": ' + temperature + "}}}")
        with pytest.raises(ModelError, match="temperature is a number from 0.05 to 20"):
            Recognizer(tmp_path / "reader.onnx")
    (tmp_path / "reader.json").write_text("{not json")
    with pytest.raises(ModelError, match="card cannot be read"):
        Recognizer(tmp_path / "reader.onnx")
    (tmp_path / "reader.json").unlink()
    (tmp_path / "reader.json").symlink_to("/dev/zero")  # read whole, it would fill the memory
    with pytest.raises(ModelError, match="reader.json: not a regular file"):
        Recognizer(tmp_path / "reader.onnx")


def test_training_fits_the_temperature_on_validation_and_stores_it(tmp_path, mnist):
    from digits.train.export import ship
    from digits.train.run import train

    run = RunDir(
        train(
            "tiny",
            runs_dir=tmp_path,
            name="calibrated",
            train_limit=3000,
            overrides={"calibrate": True},
            progress=False,
            log=lambda *a: None,
        )
    )
    stored = run.read_info().calibration
    assert stored["fitted_on"] == "the run's 300 validation images"
    assert stored["nll_after"] <= stored["nll_before"]
    assert run.read_metrics()["calibration"]["temperature"] == stored["temperature"]
    assert Recognizer(run.path).temperature == stored["temperature"]
    # The model holds it too: a copy taken out of its run (as a user puts it in an app) keeps its confidences.
    moved = tmp_path / "elsewhere.onnx"
    moved.write_bytes(run.onnx_path.read_bytes())
    assert Recognizer(moved).temperature == stored["temperature"]
    shipped = ship(run.path, tmp_path / "shipped")
    card = json.loads((tmp_path / "shipped" / "reader.json").read_text())
    assert (
        card["config"]["calibration"] == stored
        and card["metrics"]["calibration"]["temperature"] == stored["temperature"]
    )
    assert Recognizer(shipped).temperature == stored["temperature"]
    assert card["training_data"] == [
        {"name": "mnist", "licence": "none stated in its source; cite LeCun, Cortes and Burges"}
    ]


def test_a_models_own_metadata_carries_its_temperature_and_a_bad_one_is_named(tmp_path, images):
    import onnx

    from digits.train.export import with_metadata

    path = tmp_path / "app-model.onnx"
    linear_onnx(path)
    raw = Recognizer(path).predict_proba(images)
    with_metadata(path, calibration.metadata({"temperature": 0.5}))
    assert Recognizer(path).temperature == 0.5
    np.testing.assert_allclose(Recognizer(path).predict_proba(images), calibration.apply(raw, 0.5), atol=1e-6)
    for text in ("warm", "nan", "1e-320"):
        model = onnx.load(path)
        onnx.helper.set_model_props(model, {calibration.METADATA_KEY: text})
        onnx.save(model, path)
        with pytest.raises(ModelError, match=f"{path.name}: its (metadata's temperature is 'warm'|calibration is)"):
            Recognizer(path)


def test_a_temperature_is_positive_and_fitted_on_one_label_a_row():
    probabilities = softmax(np.random.default_rng(0).normal(0, 1, (20, 10)))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="a temperature is a positive number"):
            calibration.apply(probabilities, bad)
    for labels in (np.zeros(5, int), np.zeros(0, int)):
        with pytest.raises(ValueError, match="one label each"):
            calibration.fit_temperature(probabilities[: len(labels) and 20], labels)


def test_another_json_file_beside_a_copied_model_is_no_card(tmp_path):
    """An app's own `<name>.json` beside a model copied into it hid the temperature in the model's metadata."""
    from digits.train.export import with_metadata

    path = tmp_path / "digits.onnx"
    linear_onnx(path)
    with_metadata(path, calibration.metadata({"temperature": 1.5}))
    for other in ('{"labels": [0, 1]}', "[1, 2]", '{"config": {"name": "an app"}}'):
        (tmp_path / "digits.json").write_text(other)
        assert Recognizer(path).temperature == 1.5, other
