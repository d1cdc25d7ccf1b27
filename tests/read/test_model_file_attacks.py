"""`--model` and `Recognizer` read only a regular file under a size cap: hostile paths give one sentence.

Before: `/dev/zero` read until the OOM killer, a FIFO hung `open`, a 300 GB
sparse file raised MemoryError (exit 1). Each is built here and refused
before a byte of it is read.
"""

from __future__ import annotations

import os

import pytest
from PIL import Image

from digits import safe_open
from digits.errors import ModelError
from digits.read import model as inference
from digits.read.model import MAX_MODEL_BYTES, Recognizer, read_model
from helpers import assert_one_line_error, run_cli


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_a_device_is_not_a_model():
    with pytest.raises(ModelError, match="not a regular file"):
        Recognizer("/dev/zero")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ModelError, match="not a regular file"):
        read_model(fifo)


def test_a_run_folder_whose_model_is_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "model.onnx")
    with pytest.raises(ModelError, match="not a regular file"):
        Recognizer(tmp_path)


def test_a_huge_sparse_file_is_refused_from_its_size(tmp_path):
    sparse = tmp_path / "huge.onnx"
    with open(sparse, "wb") as file:
        file.truncate(MAX_MODEL_BYTES + 1)  # takes no disk, reads as zeros
    with pytest.raises(ModelError, match="over the limit"):
        Recognizer(sparse)


def test_a_file_that_grows_while_read_is_cut_at_the_cap(tmp_path, monkeypatch):
    # fstat said small, the read finds more: the cap holds on what is read, not on what was stat'ed.
    monkeypatch.setattr(inference, "MAX_MODEL_BYTES", 16)
    model = tmp_path / "model.onnx"
    model.write_bytes(bytes(8))
    real_fstat = os.fstat

    def growing_fstat(fd):
        info = real_fstat(fd)
        model.write_bytes(bytes(64))
        return info

    monkeypatch.setattr(safe_open.os, "fstat", growing_fstat)
    with pytest.raises(ModelError, match="grew past"):
        read_model(model)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_model_dev_zero_on_the_command_line_is_one_sentence(tmp_path):
    Image.new("L", (28, 28), 255).save(tmp_path / "x.png")
    result = run_cli("predict", "x.png", "--model", "/dev/zero", cwd=tmp_path)
    assert_one_line_error(result, "/dev/zero", "not a regular file")


def test_a_folder_where_a_file_is_expected_is_named_and_its_descriptor_closed(tmp_path):
    folder = tmp_path / "history.csv"
    folder.mkdir()
    open_before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    with pytest.raises(ModelError, match=r"history\.csv: not a regular file"):
        safe_open.read_regular(folder, 1024, ModelError, "restore it")
    if open_before is not None:
        assert len(os.listdir("/proc/self/fd")) == open_before
