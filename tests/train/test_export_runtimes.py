"""`digits export --format onnx-int8 | tflite`: files for other runtimes, each checked on the test set of the run's dataset."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from PIL import Image

from helpers import run_cli, weights_beyond_7_bits


@pytest.fixture
def run(tiny_run, tmp_path):
    """A copy of the shared tiny run: exporting writes into the run folder."""
    return shutil.copytree(tiny_run, tmp_path / "run", symlinks=True)


def figures(line: str) -> tuple[float, float, float]:
    """(accuracy %, float accuracy %, size as a share of the float model's) from the command's line."""
    found = re.search(r"accuracy ([\d.]+) % \(float ONNX ([\d.]+) %\), \d+ KiB \(([\d.]+) of", line)
    assert found, line
    return tuple(float(group) for group in found.groups())


def test_int8_is_as_accurate_a_third_of_the_size_and_served_by_read(run, tmp_path, mnist):
    result = run_cli("export", str(run), "--format", "onnx-int8", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    accuracy, float_accuracy, share = figures(result.stdout)
    # This tiny run's near-ties move with the CPU and the versions: 0.06 points measured, room for 0.3.
    assert abs(accuracy - float_accuracy) <= 0.3 and share <= 1 / 3
    assert not weights_beyond_7_bits(run / "model.int8.onnx")
    # An ONNX model like any other: `read` (and `serve`) take it with --model.
    _, (x_test, y_test) = mnist
    picture = tmp_path / "seven.png"
    index = int(np.flatnonzero(y_test == 7)[0])
    Image.fromarray(255 - x_test[index]).resize((112, 112)).save(picture)
    read = run_cli("read", str(picture), "--model", str(run / "model.int8.onnx"), cwd=tmp_path)
    assert read.returncode == 0 and read.stdout.strip().endswith(": 7"), (read.stdout, read.stderr)


def test_tflite_is_as_accurate(run, tmp_path):
    pytest.importorskip("tensorflow", reason="needs TensorFlow (the train extra)")
    result = run_cli("export", str(run), "--format", "tflite", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    accuracy, float_accuracy, _ = figures(result.stdout)
    assert abs(accuracy - float_accuracy) <= 0.1 and (run / "model.tflite").stat().st_size > 0


def test_a_link_planted_where_the_int8_model_goes_is_replaced_not_followed(run, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (run / "model.int8.onnx").symlink_to(victim)
    result = run_cli("export", str(run), "--format", "onnx-int8", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "keep me"
    assert not (run / "model.int8.onnx").is_symlink() and (run / "model.int8.onnx").stat().st_size > 1000


def test_an_unknown_format_is_a_usage_error(run, tmp_path):
    result = run_cli("export", str(run), "--format", "coreml", cwd=tmp_path)
    assert result.returncode == 2 and "--format" in result.stderr and "Traceback" not in result.stderr


def test_keras_own_deprecation_notices_do_not_reach_a_python_user(run):
    """Keras's `np.object` FutureWarning (at import and in its ONNX export) is theirs, not the user's to read."""
    import subprocess
    import sys

    script = f"from digits.train.export import export_run; export_run({str(run)!r})"
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", script], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "FutureWarning" not in result.stderr and "DeprecationWarning" not in result.stderr, result.stderr


def test_the_check_is_on_the_test_set_of_the_runs_own_dataset(run, monkeypatch):
    """A run trained on another dataset was checked on MNIST's test set (4 % for a Fashion-MNIST model)."""
    pytest.importorskip("tensorflow", reason="needs TensorFlow (the train extra)")
    from dataclasses import replace

    from digits.runs import RunDir
    from digits.train import extra_data, runtimes

    folder = RunDir(run)
    config, info = folder.read_run()
    folder.write_config(replace(config, dataset="usps"), info)
    asked, real = [], extra_data.load_test_set
    monkeypatch.setattr(extra_data, "load_test_set", lambda name, data_dir=None: asked.append(name) or real("mnist"))
    export = runtimes.export_format(run, "tflite")
    assert asked == ["usps"] and ": usps test accuracy" in export.summary()


def test_the_int8_model_keeps_the_temperature_of_its_float_model(run, tmp_path):
    """Quantizing drops a model's metadata; a calibrated run's int8 model must keep the temperature fitted for it
    (outside a run's model.onnx, the model's metadata is where it is found)."""
    from digits import calibration
    from digits.read.model import Recognizer
    from digits.train import runtimes
    from digits.train.export import with_metadata

    with_metadata(run / "model.onnx", calibration.metadata({"temperature": 1.5}))
    images = np.random.default_rng(0).uniform(0, 1, (8, 28, 28)).astype(np.float32)
    runtimes.quantize(run / "model.onnx", run / "model.int8.onnx", images)
    assert Recognizer(run / "model.int8.onnx").temperature == 1.5
