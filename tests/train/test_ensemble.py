"""`digits ensemble`: runs averaged into one ONNX model that loads like any run, and its refusals."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digits.config import TrainConfig
from digits.read.model import Recognizer
from digits.runs import RunDir, RunInfo
from helpers import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def members(tmp_path_factory, mnist) -> list[Path]:
    """Two tiny runs of different seeds."""
    from digits.train.run import train

    runs = tmp_path_factory.mktemp("members")
    return [
        train(
            "tiny",
            runs_dir=runs,
            name=f"s{seed}",
            seed=seed,
            train_limit=3000,
            overrides={"epochs": 1},
            progress=False,
            log=lambda *a: None,
        )
        for seed in (1, 2)
    ]


@pytest.fixture(scope="module")
def ensemble(members, tmp_path_factory) -> Path:
    from digits.train.ensemble import build

    path, _ = build(members, tmp_path_factory.mktemp("ensembles") / "two")
    return path


def test_outputs_are_the_mean_of_the_members(ensemble, members, mnist):
    _, (x_test, _) = mnist
    images = x_test[:256]
    expected = np.mean([Recognizer(m).predict_proba(images) for m in members], axis=0)
    np.testing.assert_allclose(Recognizer(ensemble).predict_proba(images), expected, atol=1e-6)


def test_a_member_temperature_is_applied_before_the_mean(members, tmp_path, mnist):
    """A calibrated member contributes what its own Recognizer returns: its temperature moves into the graph."""
    from digits.train.ensemble import build

    hot = tmp_path / "hot"
    shutil.copytree(members[1], hot)
    config, info = RunDir(hot).read_run()
    RunDir(hot).write_config(config, RunInfo(**{**info.__dict__, "calibration": {"temperature": 2.0}}))
    path, _ = build([members[0], hot], tmp_path / "ens")
    _, (x_test, _) = mnist
    images = x_test[:64]
    expected = (Recognizer(members[0]).predict_proba(images) + Recognizer(hot).predict_proba(images)) / 2
    assert Recognizer(hot).temperature == 2.0 and Recognizer(path).temperature == 1.0
    np.testing.assert_allclose(Recognizer(path).predict_proba(images), expected, atol=1e-6)


def test_it_is_a_finished_run_with_a_report(ensemble, members):
    config, info = RunDir(ensemble).read_run()
    assert config.preset == "ensemble" and info.status == "finished"
    assert [m["run"] for m in info.ensemble] == [str(m.resolve()) for m in members]
    metrics = RunDir(ensemble).read_metrics()
    assert np.array(metrics["confusion_matrix"]).sum() == 10000
    for name in ("confusion.png", "mistakes.png"):
        assert (ensemble / name).is_file(), name
    assert not (ensemble / "curves.png").exists(), "an ensemble was never trained: it has no learning curves"


def test_evaluate_and_the_reader_load_it(ensemble, mnist, tmp_path):
    from digits.read.reader import Reader

    evaluated = run_cli("evaluate", str(ensemble), cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "test accuracy" in evaluated.stdout
    _, (x_test, _) = mnist
    digit = Reader(ensemble).read_digit(_png(255 - x_test[0]))
    assert digit.status != "no digit found" and len(digit.top3) == 3 and 0 < digit.confidence <= 1


def test_tflite_export_of_an_ensemble_says_it_has_no_keras_model(ensemble, tmp_path):
    result = run_cli("export", str(ensemble), "--format", "tflite", cwd=tmp_path)
    assert_one_line_error(result, "an ensemble has no Keras model for TensorFlow Lite; export its members")
    assert not (ensemble / "model.tflite").exists()


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_server_loads_it(ensemble, mnist):
    from fastapi.testclient import TestClient

    from digits.serve.app import create_app

    _, (x_test, _) = mnist
    with TestClient(create_app(ensemble)) as client:
        response = client.post("/predict", files={"image": ("d.png", _png(x_test[0]), "image/png")})
    assert response.status_code == 200, response.text
    assert 0 <= response.json()["digit"] <= 9


def _eleven_class_run(folder: Path) -> Path:
    """A finished run folder whose model outputs 11 classes (a linear softmax built with onnx.helper)."""
    import onnx
    from onnx import helper, numpy_helper

    folder.mkdir()
    weights = numpy_helper.from_array(np.zeros((784, 11), np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 784], np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["image", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "eleven",
        [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["n", 28, 28])],
        [helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["n", 11])],
        [weights, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    config = TrainConfig.from_preset("tiny", {"reject_class": True})
    RunDir(folder).write_config(config, RunInfo(status="finished"))
    return folder


def test_bad_inputs_are_one_sentence_and_exit_2(members, tmp_path):
    one, two = (str(m) for m in members)
    out = str(tmp_path / "out")
    assert_one_line_error(run_cli("ensemble", one, str(tmp_path / "missing"), "--out", out, cwd=tmp_path), "missing")
    assert_one_line_error(run_cli("ensemble", one, "--out", out, cwd=tmp_path), "at least two runs")
    eleven = str(_eleven_class_run(tmp_path / "eleven"))
    assert_one_line_error(run_cli("ensemble", one, eleven, "--out", out, cwd=tmp_path), "same classes")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    taken = str(tmp_path / "taken")
    assert_one_line_error(run_cli("ensemble", one, two, "--out", taken, cwd=tmp_path), "not a run folder", "--out")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine" and not Path(out).exists()
    assert_one_line_error(run_cli("ensemble", one, one, "--out", out, cwd=tmp_path), "is named twice")
    inside = str(Path(one) / "sub")
    assert_one_line_error(run_cli("ensemble", one, two, "--out", inside, cwd=tmp_path), "is inside the member")
    assert not Path(out).exists() and not Path(inside).exists()


def test_an_ensemble_never_resumes_as_a_training_run(ensemble, tmp_path):
    """Its config.json is its first member's: resuming it would train that member's settings over the ensemble."""
    import json
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(ensemble, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(config | {"status": "interrupted"}))
    assert_one_line_error(run_cli("train", "--resume", str(copy), cwd=tmp_path), "an ensemble is never trained")


def test_out_may_not_take_the_name_of_the_latest_link_or_a_hidden_one(members, tmp_path):
    """A real folder named `latest` made every later `digits train` in that folder of runs fail."""
    one, two = (str(m) for m in members)
    for name in ("latest", ".hidden"):
        result = run_cli("ensemble", one, two, "--out", str(tmp_path / name), cwd=tmp_path)
        assert_one_line_error(result, f"{name!r} cannot name a run")
        assert not (tmp_path / name).exists()


def test_sigterm_while_it_is_built_leaves_no_run_folder(members, tmp_path, monkeypatch):
    """SIGTERM's default ended the process with a folder already marked finished and no report."""
    import os
    import signal

    from digits.errors import Interrupted
    from digits.train import evaluate
    from digits.train.ensemble import build

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered before the report is written: a known point

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(evaluate, "report_run", terminated)
    with pytest.raises(Interrupted):
        build(members, tmp_path / "ens")
    assert not (tmp_path / "ens").exists()
    assert signal.getsignal(signal.SIGTERM) is before  # the command's own handler is back
