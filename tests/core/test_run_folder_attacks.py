"""A run folder someone else filled: its links are never written through, its checkpoint is bounded and checked.

Before: `train --resume` on a planted folder overwrote what its symlinked
model.onnx and history.csv pointed to; a 14 MB zip bomb inside
checkpoint.npz unpacked past 6 GB; NaN weights were loaded.
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from dataclasses import replace

import numpy as np
import pytest

from digits import run_table, runs
from digits.atomic import write_bytes
from digits.config import TrainConfig
from digits.errors import RunError
from digits.runs import RunDir, RunInfo
from helpers import assert_one_line_error, run_cli


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A private copy of the shared tiny run, free to damage."""
    copy = tmp_path / "runs" / "copy"
    shutil.copytree(tiny_run, copy)
    return RunDir(copy)


def plant_links(run: RunDir, outside, names) -> dict:
    """Replace `names` in the run folder by symlinks to files outside it; return those files' contents."""
    victims = {}
    for name in names:
        victim = outside / f"victim-{name}"
        victim.write_bytes(f"precious {name}".encode())
        (run.path / name).unlink(missing_ok=True)
        (run.path / name).symlink_to(victim)
        victims[victim] = victim.read_bytes()
    return victims


def test_a_symlink_is_replaced_not_followed_when_asked(tmp_path):
    (tmp_path / "real.txt").write_bytes(b"old")
    (tmp_path / "link.txt").symlink_to("real.txt")
    write_bytes(tmp_path / "link.txt", b"new", follow_symlinks=False)
    assert not (tmp_path / "link.txt").is_symlink() and (tmp_path / "link.txt").read_bytes() == b"new"
    assert (tmp_path / "real.txt").read_bytes() == b"old"


def test_run_folder_writes_replace_planted_links(tmp_path):
    outside = tmp_path / "home"
    outside.mkdir()
    run = RunDir(tmp_path / "planted")
    run.path.mkdir()
    victims = plant_links(run, outside, [RunDir.HISTORY, RunDir.METRICS, RunDir.CONFIG])
    run.write_history({"epoch": [1], "loss": [0.5]})
    run.write_metrics({"test_accuracy": 0.9})
    run.write_config(TrainConfig.from_preset("tiny"), RunInfo(status="finished"))
    assert all(victim.read_bytes() == content for victim, content in victims.items())
    assert not any(p.is_symlink() for p in run.path.iterdir())
    assert run.read_history()["loss"] == [0.5]


def test_resume_on_a_planted_run_folder_overwrites_no_link_target(run_copy, tmp_path):
    from digits.train.run import train

    # The tiny run, marked interrupted after its last epoch: resuming goes
    # straight to saving the model, exporting it and writing the report.
    config, info = run_copy.read_run()
    run_copy.write_config(config, replace(info, status="interrupted"))
    outside = tmp_path / "home"
    outside.mkdir()
    planted = [RunDir.ONNX, RunDir.HISTORY, RunDir.KERAS, RunDir.METRICS, RunDir.CURVES]
    victims = plant_links(run_copy, outside, planted)
    train(resume=run_copy.path, log=lambda *a: None, progress=False)
    assert all(victim.read_bytes() == content for victim, content in victims.items())
    assert not any((run_copy.path / name).is_symlink() for name in planted)
    assert run_copy.read_info().status == "finished"


def test_a_checkpoint_with_nan_weights_is_refused(run_copy):
    groups, meta = run_copy.read_checkpoint()
    name = next(iter(groups["model"]))
    groups["model"][name] = groups["model"][name].copy()
    groups["model"][name].flat[0] = np.nan
    run_copy.save_checkpoint(groups, meta)
    with pytest.raises(RunError, match=f"model variable '{name}' holds NaN or infinite values"):
        run_copy.load_checkpoint(expected_shapes(groups))


@pytest.mark.parametrize("dtype", ["<U1", "S3", "V4", [("a", "<f4")], "datetime64[s]"])
def test_a_checkpoint_variable_of_values_that_are_no_numbers_is_refused(run_copy, dtype):
    """A string array failed in TensorFlow's cast as an "unexpected ValueError"; records and dates were loaded."""
    groups, meta = run_copy.read_checkpoint()
    name = next(iter(groups["model"]))
    groups["model"][name] = np.zeros(groups["model"][name].shape, dtype=dtype)
    run_copy.save_checkpoint(groups, meta)
    with pytest.raises(RunError, match=f"model variable '{name}' holds .* values, not numbers"):
        run_copy.load_checkpoint(expected_shapes(groups))


def test_a_negative_optimizer_step_count_is_refused(run_copy):
    groups, meta = run_copy.read_checkpoint()
    groups["optimizer"]["iteration"] = np.array(-(10**15), dtype=groups["optimizer"]["iteration"].dtype)
    run_copy.save_checkpoint(groups, meta)
    with pytest.raises(RunError, match="the optimizer's step count is negative"):
        run_copy.load_checkpoint(expected_shapes(groups))


def test_a_pickled_checkpoint_is_refused_without_advice_to_load_it_unsafely(run_copy):
    with open(run_copy.path / RunDir.CHECKPOINT, "wb") as file:
        np.savez(file, meta=np.array([{"epoch": 1}], dtype=object))
    with pytest.raises(RunError, match=r"pickled Python objects, which digits never loads\); train again") as caught:
        run_copy.read_checkpoint()
    assert "allow_pickle" not in str(caught.value)


def test_a_checkpoint_of_text_is_no_archive_not_a_pickle(run_copy):
    """NumPy takes any file that is neither a zip nor an array for a pickle: text was said to be pickled objects."""
    (run_copy.path / RunDir.CHECKPOINT).write_text("not a checkpoint at all")
    with pytest.raises(RunError, match=r"checkpoint is unreadable \(not a NumPy archive\); train again"):
        run_copy.read_checkpoint()


@pytest.mark.parametrize(
    "change",
    [
        {"history": []},
        {"epoch": "1"},
        {"best_score": "x"},
        {"loss_sum": 10**400},
        {"step": -1},
        # Of the right type, but not where this run could stand: resumes took them and went on.
        {"step": 10**9},
        {"best_epoch": 3},
        {"history": {"epoch": [1, 2], "loss": [0.5]}},
    ],
    ids=[
        "history a list",
        "epoch a string",
        "best score a string",
        "loss no float holds",
        "step negative",
        "step past an epoch",
        "best epoch not trained",
        "history columns of unequal lengths",
    ],
)
def test_a_checkpoint_whose_loop_state_was_altered_is_one_sentence_and_the_run_failed(run_copy, tmp_path, change):
    """A resume read the state as it was: a KeyError or TypeError, and the run left "running" (shown as killed).
    Bad input changes nothing: the run stays as it was recorded (it became "failed" after 0 epochs, and then
    `evaluate` advised the resume that had just been refused)."""
    groups, meta = run_copy.read_checkpoint()
    run_copy.save_checkpoint(groups, meta | change)
    config, info = run_copy.read_run()
    run_copy.write_config(config, replace(info, status="interrupted"))
    key = next(iter(change))
    assert_one_line_error(
        run_cli("train", "--resume", str(run_copy.path), cwd=tmp_path),
        f"where the loop stood ('{key}')",
        "train again under another --name",
    )
    assert run_copy.read_info() == replace(info, status="interrupted")


def test_a_config_asking_for_fewer_epochs_than_done_is_named_not_the_checkpoint(run_copy, tmp_path):
    """Past the last epoch the config asks for, the checkpoint is as written: config.json is what changed."""
    groups, meta = run_copy.read_checkpoint()
    run_copy.save_checkpoint(groups, meta | {"epoch": 50})
    config, info = run_copy.read_run()
    run_copy.write_config(config, replace(info, status="interrupted"))
    assert_one_line_error(
        run_cli("train", "--resume", str(run_copy.path), cwd=tmp_path),
        f"config.json: asks for {config.epochs} epochs, and the checkpoint stands after epoch 50",
        "train again under another --name",
    )


def expected_shapes(groups) -> dict:
    """What a model with these arrays expects of its checkpoint, as train.load_checkpoint asks it."""
    shapes = {group: {name: array.shape for name, array in groups[group].items()} for group in ("model", "optimizer")}
    return shapes | {"best": shapes["model"]}


def test_a_zip_bomb_checkpoint_is_refused_before_it_unpacks(tmp_path, monkeypatch):
    # 4 MiB of zeros deflate to a few KiB; with the cap at 1 MiB the archive
    # stands for the 14 MB file that unpacked past 6 GB.
    monkeypatch.setattr(runs, "MAX_CHECKPOINT_BYTES", 2**20)
    run = RunDir(tmp_path)
    with zipfile.ZipFile(run.path / RunDir.CHECKPOINT, "w", zipfile.ZIP_DEFLATED) as archive:
        header = npy_header((2**20,), "<f4")
        archive.writestr("model/hidden_0/kernel.npy", header + bytes(4 * 2**20))
    assert (run.path / RunDir.CHECKPOINT).stat().st_size < 64 * 1024
    with pytest.raises(RunError, match="unpacks to 4 MiB, over the limit of 1 MiB"):
        run.read_checkpoint()


def npy_header(shape, dtype) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_a_checkpoint_over_the_cap_on_disk_is_refused_from_its_size(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "MAX_CHECKPOINT_BYTES", 2**20)
    run = RunDir(tmp_path)
    with open(run.path / RunDir.CHECKPOINT, "wb") as file:
        file.truncate(2**20 + 1)
    with pytest.raises(RunError, match="over the limit of 1 MiB"):
        run.read_checkpoint()


def test_a_fifo_checkpoint_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / RunDir.CHECKPOINT)
    with pytest.raises(RunError, match="not a regular file"):
        RunDir(tmp_path).checkpoint_meta()


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_a_planted_link_to_an_endless_file_is_refused_not_read(run_copy, tmp_path, target):
    # `digits runs` reads every finished run's metrics.json: a link to /dev/zero read until the OOM killer.
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")
        target = tmp_path / "fifo"
    elif not os.path.exists(target):
        pytest.skip("no /dev/zero here")
    for name in (RunDir.METRICS, RunDir.HISTORY):
        (run_copy.path / name).unlink()
        (run_copy.path / name).symlink_to(target)
    with pytest.raises(RunError, match="not a regular file"):
        run_copy.read_history()
    [row] = run_table.list_runs(run_copy.path.parent)
    assert row["status"] == "broken" and "not a regular file" in row["problem"]
