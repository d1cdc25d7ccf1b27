"""Training the sheet finder: a short run makes a model the reader can load, and its card."""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import pytest

from digits.errors import WriteError
from digits.train import sheet_finder


def test_a_short_run_writes_a_model_and_its_card(tmp_path, mnist):
    card = sheet_finder.train(tmp_path, os.environ["DIGITS_DATA_DIR"], epochs=1, samples=200, validation=200)
    session = ort.InferenceSession(str(tmp_path / "sheet.onnx"))
    out = session.run(None, {session.get_inputs()[0].name: np.zeros((2, 64, 64, 1), np.float32)})[0]
    assert out.shape == (2, 64, 64, 1) and ((out >= 0) & (out <= 1)).all()
    assert json.loads((tmp_path / "sheet.json").read_text()) == card
    assert card["training_data"][0]["name"].startswith("mnist") and 0 <= card["validation"]["pixel_accuracy"] <= 1


def test_the_same_photos_for_any_number_of_workers(mnist):
    data_dir = os.environ["DIGITS_DATA_DIR"]
    one, two = sheet_finder.photos(400, 5, data_dir, workers=1), sheet_finder.photos(400, 5, data_dir, workers=2)
    assert one["images"].shape == (400, 64, 64) and one["labels"].dtype == bool
    assert all(np.array_equal(one[key], two[key]) for key in one)


def test_a_missing_folder_is_refused_before_any_work(tmp_path):
    with pytest.raises(WriteError, match="does not exist"):
        sheet_finder.train(tmp_path / "nowhere", None)


def test_the_command_says_what_is_wrong_in_one_sentence(tmp_path):
    import typer
    from typer.testing import CliRunner

    command = typer.Typer()
    command.command()(sheet_finder.main)
    result = CliRunner().invoke(command, ["--out", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "does not exist; create it first." in result.output and "Traceback" not in result.output
