"""The `digits` command end to end, as a user runs it, including every way it must fail cleanly."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from helpers import assert_one_line_error, run_cli


@pytest.fixture
def digit_png(tmp_path, mnist):
    """The article's X_test[1] (a 2), saved as a PNG."""
    path = tmp_path / "two.png"
    Image.fromarray(mnist[1][0][1]).save(path)
    return path


def test_train_then_predict_end_to_end(tmp_path, digit_png):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    environment = {**os.environ, "TMPDIR": str(temporary)}
    trained = run_cli(
        "train", "--preset", "tiny", "--train-limit", "5000", "--name", "cli", cwd=tmp_path, env=environment
    )
    assert trained.returncode == 0, trained.stderr
    assert "test accuracy" in trained.stdout
    # TensorFlow removes AutoGraph's generated sources at exit, which the command skips: it removes them itself.
    assert not list(temporary.glob("__autograph_generated_file*"))
    run = tmp_path / "runs" / "cli"
    assert (run / "model.onnx").is_file() and (tmp_path / "runs" / "latest").is_symlink()
    predicted = run_cli("predict", str(digit_png), "--model", "runs/latest", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith(f"{digit_png}: ")
    as_json = run_cli("predict", str(digit_png), "--json", "--model", "runs/latest", cwd=tmp_path)
    result = json.loads(as_json.stdout)
    assert result["digit"] in range(10) and len(result["top3"]) == 3
    listing = run_cli("runs", cwd=tmp_path)
    assert "cli" in listing.stdout and "finished" in listing.stdout


def test_version_is_printed_without_a_command(tmp_path):
    from digits import __version__

    result = run_cli("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"digits {__version__}\n", "")
    # Without it, a command is still required: one sentence, exit 2.
    assert_one_line_error(run_cli("--json", cwd=tmp_path), "--json")


def test_predict_missing_file_is_one_line_exit_2(tmp_path, tiny_run):
    result = run_cli("predict", "nope.png", "--model", str(tiny_run), cwd=tmp_path)
    assert_one_line_error(result, "nope.png")


def test_predict_non_image_is_one_line_exit_2(tmp_path, tiny_run):
    (tmp_path / "notes.png").write_text("this is not a picture")
    result = run_cli("predict", "notes.png", "--model", str(tiny_run), cwd=tmp_path)
    assert_one_line_error(result, "notes.png")


def test_show_draws_the_articles_demo(tmp_path, tiny_run):
    result = run_cli("show", "--index", "1", "--model", str(tiny_run), "--out", "one.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "X_test[1]: true 2" in result.stdout
    assert Image.open(tmp_path / "one.png").size[0] > 100


def test_show_names_the_not_a_digit_class_of_a_model_that_has_it(tmp_path):
    """The shipped model refuses MNIST's test digit 646 (a faint 2): `show` said IndexError, exit 1."""
    from digits.read.model import shipped_model

    result = run_cli("show", "--index", "646", "--model", str(shipped_model()), "--out", "646.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "X_test[646]: true 2, predicted not a digit (" in result.stdout


def test_evaluate_and_compare(tmp_path, tiny_run):
    evaluated = run_cli("evaluate", str(tiny_run), cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    compared = run_cli("compare", str(tiny_run), str(tiny_run), cwd=tmp_path)
    assert compared.returncode == 0 and compared.stdout.count("tiny") >= 2


def test_missing_run_folder(tmp_path):
    assert_one_line_error(run_cli("evaluate", "runs/none", cwd=tmp_path), "runs/none")
    assert_one_line_error(run_cli("predict", "x.png", "--model", "runs/none", cwd=tmp_path), "runs/none")


def test_unknown_preset(tmp_path):
    assert_one_line_error(run_cli("train", "--preset", "huge", cwd=tmp_path), "--preset", "'huge' is not one of")


def test_bad_data_dir(tmp_path):
    result = run_cli("train", "--preset", "tiny", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert_one_line_error(result, "no mnist data there")


def _copy_run(tiny_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(tiny_run, run)
    return run


def test_corrupt_onnx_model_is_refused(tmp_path, tiny_run, digit_png):
    run = _copy_run(tiny_run, tmp_path)
    data = (run / "model.onnx").read_bytes()
    (run / "model.onnx").write_bytes(data[: len(data) // 2])
    assert_one_line_error(run_cli("predict", str(digit_png), "--model", str(run), cwd=tmp_path), "model.onnx")
    assert_one_line_error(run_cli("evaluate", str(run), cwd=tmp_path), "model.onnx")


def test_onnx_of_the_wrong_shape_is_refused(tmp_path, digit_png):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "wrong",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 32, 32])],
    )
    onnx.save(helper.make_model(graph), tmp_path / "wrong.onnx")
    assert_one_line_error(run_cli("predict", str(digit_png), "--model", "wrong.onnx", cwd=tmp_path), "28x28")


def test_random_bytes_as_model_are_refused(tmp_path, digit_png):
    (tmp_path / "random.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    assert_one_line_error(run_cli("predict", str(digit_png), "--model", "random.onnx", cwd=tmp_path), "random.onnx")


def test_corrupt_keras_file_is_refused_on_export(tmp_path, tiny_run):
    run = _copy_run(tiny_run, tmp_path)
    (run / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    before = (run / "model.onnx").read_bytes()
    assert_one_line_error(run_cli("export", str(run), cwd=tmp_path), "model.keras")
    assert (run / "model.onnx").read_bytes() == before, "a failed export leaves the old model intact"


def test_runs_folder_that_cannot_be_created(tmp_path):
    (tmp_path / "a-file").write_text("")
    result = run_cli("train", "--preset", "tiny", "--runs-dir", "a-file/runs", cwd=tmp_path)
    assert_one_line_error(result, "cannot create a-file/runs")
