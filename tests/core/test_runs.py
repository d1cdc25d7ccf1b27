"""Run folders through RunDir: the checkpoint keyed by name, old layouts, validated configs, broken folders."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from digits.config import TrainConfig
from digits.errors import ConfigError, RunError, TrainingError
from digits.run_table import list_runs
from digits.runs import RunDir
from helpers import assert_one_line_error, run_cli


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A private copy of the shared tiny run, free to damage."""
    copy = tmp_path / "runs" / "copy"
    shutil.copytree(tiny_run, copy)
    return RunDir(copy)


def _expected(run: RunDir) -> dict:
    groups, _ = run.read_checkpoint()
    shapes = {group: {name: array.shape for name, array in groups[group].items()} for group in ("model", "optimizer")}
    return shapes | {"best": shapes["model"]}


def test_checkpoint_arrays_are_keyed_by_layer_and_variable_name(tiny_run):
    groups, meta = RunDir(tiny_run).read_checkpoint()
    assert list(groups["model"]) == ["hidden_0/kernel", "hidden_0/bias", "probabilities/kernel", "probabilities/bias"]
    assert "hidden_0_kernel_momentum" in groups["optimizer"] and "iteration" in groups["optimizer"]
    assert meta["epoch"] == 2


def test_checkpoint_of_another_shape_is_refused(run_copy):
    expected = _expected(run_copy)
    expected["model"]["hidden_0/kernel"] = (784, 64)
    with pytest.raises(RunError, match=r"'hidden_0/kernel' has shape \(784, 32\) in the checkpoint, \(784, 64\)"):
        run_copy.load_checkpoint(expected)


def test_checkpoint_of_another_model_is_refused_by_name(run_copy):
    expected = _expected(run_copy)
    expected["model"] = {name.replace("hidden_0", "hidden_9"): shape for name, shape in expected["model"].items()}
    with pytest.raises(RunError, match="the checkpoint's model lacks 'hidden_9/"):
        run_copy.load_checkpoint(expected)


def test_old_positional_checkpoint_is_still_read(run_copy):
    """Checkpoints written before names (keys model/0, model/1, ...) load by position, shapes checked."""
    expected = _expected(run_copy)
    groups, meta = run_copy.read_checkpoint()
    positional = {group: {str(i): array for i, array in enumerate(arrays.values())} for group, arrays in groups.items()}
    run_copy.save_checkpoint(positional, meta)
    loaded, _ = run_copy.load_checkpoint(expected)
    for group in ("model", "optimizer"):
        for name, array in groups[group].items():
            assert np.array_equal(loaded[group][name], array)
    expected["model"]["hidden_0/kernel"] = (784, 64)
    with pytest.raises(RunError, match="has shape"):
        run_copy.load_checkpoint(expected)


def _edit_config(run: RunDir, **changes) -> None:
    path = run.path / RunDir.CONFIG
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def test_config_with_an_unknown_key_is_refused(run_copy):
    _edit_config(run_copy, learnig_rate=0.1)
    with pytest.raises(ConfigError, match="config.json: unknown setting 'learnig_rate'"):
        run_copy.read_config()


def test_config_with_a_bad_value_is_refused(run_copy):
    _edit_config(run_copy, dropout=1.5)
    with pytest.raises(ConfigError, match=r"config.json: dropout is 1.5, expected a number in \[0, 1\)"):
        run_copy.read_config()


def test_a_number_of_more_digits_than_a_float_holds_marks_the_run_broken(run_copy):
    """JSON numbers have no size limit: 10**400 is an int no float holds (math.isfinite raised OverflowError)."""
    _edit_config(run_copy, learning_rate=10**400)
    with pytest.raises(ConfigError, match="learning_rate is 1000.*, expected a number"):
        run_copy.read_config()
    [row] = list_runs(run_copy.path.parent)
    assert row["status"] == "broken"


def test_run_bookkeeping_with_a_bad_value_is_refused(run_copy):
    _edit_config(run_copy, epochs_done=-1)
    with pytest.raises(ConfigError, match="config.json: epochs_done is -1, expected a whole number of at least 0"):
        run_copy.read_info()


@pytest.mark.parametrize("pid", ["123", -1, 0, 2**70, 1.5])
def test_a_recorded_pid_that_is_no_process_number_marks_the_run_broken(run_copy, pid):
    """`digits runs` probes the pid (os.kill(pid, 0)): -1 would probe every process, "123" raised TypeError."""
    _edit_config(run_copy, status="running", pid=pid)
    with pytest.raises(ConfigError, match=r"config.json: pid is .*, expected a process number \(a whole number from 1"):
        run_copy.read_info()
    rows = list_runs(run_copy.path.parent)
    assert [row["status"] for row in rows] == ["broken"]


def test_an_unknown_recorded_status_marks_the_run_broken(run_copy):
    _edit_config(run_copy, status="done")
    with pytest.raises(ConfigError, match="status is 'done', expected one of running, interrupted, failed, finished"):
        run_copy.read_info()


@pytest.mark.parametrize("name", ["latest", "../escaped", "a/b", ".hidden", ""])
def test_a_run_name_that_is_no_plain_folder_name_is_refused(tmp_path, name):
    config = TrainConfig.from_preset("tiny", {}, "mnist", 0, None)
    if name == "":  # an empty --name falls back to the default name, like no --name
        assert RunDir.create(tmp_path / "runs", name, config).path.parent == tmp_path / "runs"
        return
    with pytest.raises(TrainingError, match="cannot name a run: use a plain folder name"):
        RunDir.create(tmp_path / "runs", name, config)
    assert not (tmp_path / "escaped").exists()
    assert not list((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else True


@pytest.mark.parametrize("name", [" ", "a\nb", "x\x1b[2J"])
def test_a_run_name_that_does_not_print_on_a_line_is_refused(tmp_path, name):
    config = TrainConfig.from_preset("tiny", {}, "mnist", 0, None)
    with pytest.raises(TrainingError, match="print on a line"):
        RunDir.create(tmp_path / "runs", name, config)


def test_a_real_folder_named_latest_is_one_sentence_and_nothing_is_left_behind(tmp_path):
    runs = tmp_path / "runs"
    (runs / "latest").mkdir(parents=True)
    config = TrainConfig.from_preset("tiny", {}, "mnist", 0, None)
    with pytest.raises(TrainingError, match="cannot point .*latest at .*: .*remove .*latest if it is not a link"):
        RunDir.create(runs, "first", config)
    assert [p.name for p in runs.iterdir()] == ["latest"]  # neither the empty run nor a .latest.<pid> link is left


def test_config_and_run_info_round_trip_through_config_json(run_copy):
    """config.json is the config beside the run's bookkeeping; writing it back changes neither."""
    before = (run_copy.path / RunDir.CONFIG).read_text()
    config, info = run_copy.read_run()
    assert info.status == "finished" and info.epochs_done == 2 and info.parameters > 0
    assert "status" not in config.to_dict() and "epochs" not in info.to_dict()
    run_copy.write_config(config, info)
    assert run_copy.read_run() == (config, info)
    assert json.loads((run_copy.path / RunDir.CONFIG).read_text()) == json.loads(before)


def test_a_config_json_without_the_newer_keys_loads_with_their_defaults(run_copy):
    """Files written before a key existed (benchmarks/runs lack chunk_steps, jit_compile, ...) take its default."""
    path = run_copy.path / RunDir.CONFIG
    old = {
        k: v
        for k, v in json.loads(path.read_text()).items()
        if k not in ("chunk_steps", "junk_test", "jit_compile", "calibrate", "extra_digits", "tuned_from")
    }
    path.write_text(json.dumps(old))
    config = run_copy.read_config()
    assert (config.chunk_steps, config.junk_test, config.jit_compile, config.extra_digits) == (64, 500, True, ())


def test_listing_marks_a_broken_run_and_keeps_the_good_ones(run_copy, tiny_run):
    broken = RunDir(run_copy.path.parent / "broken")
    shutil.copytree(tiny_run, broken.path)
    (broken.path / RunDir.CONFIG).write_text("{not json")
    rows = {row["name"]: row for row in list_runs(run_copy.path.parent)}
    assert rows["copy"]["status"] == "finished" and rows["copy"]["test_accuracy"] > 0.5
    assert rows["broken"]["status"] == "broken" and "not valid JSON" in rows["broken"]["problem"]


def test_runs_and_compare_list_good_runs_beside_a_broken_one(run_copy, tmp_path):
    (run_copy.path.parent / "bad").mkdir()
    (run_copy.path.parent / "bad" / RunDir.CONFIG).write_text("[]")
    listing = run_cli("runs", cwd=tmp_path)
    assert "copy" in listing.stdout and "finished" in listing.stdout and "broken" in listing.stdout
    assert_one_line_error(listing, "runs/bad/config.json")
    compared = run_cli("compare", str(run_copy), "runs/bad", cwd=tmp_path)
    assert "copy" in compared.stdout and "broken" in compared.stdout
    assert_one_line_error(compared, "runs/bad/config.json")


def test_evaluate_of_an_unfinished_run_says_how_to_finish_it(run_copy, tmp_path):
    _edit_config(run_copy, status="interrupted")
    (run_copy.path / RunDir.HISTORY).unlink()
    assert_one_line_error(
        run_cli("evaluate", str(run_copy), cwd=tmp_path),
        "interrupted, so it has nothing to evaluate yet (its training did not finish: `digits train --resume",
    )


def test_evaluate_repairs_a_corrupt_metrics_file(run_copy, tmp_path):
    before = run_copy.read_metrics()
    (run_copy.path / RunDir.METRICS).write_text('{"test_accuracy": ')
    assert_one_line_error(
        run_cli("compare", str(run_copy), cwd=tmp_path), "metrics.json: not valid JSON", "digits evaluate"
    )
    evaluated = run_cli("evaluate", str(run_copy), cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert run_copy.read_metrics()["test_accuracy"] == before["test_accuracy"]
    # The training time and the loop's best epoch are known only while training: kept, from the checkpoint.
    assert run_copy.read_metrics()["train_seconds"] == before["train_seconds"] is not None
    assert run_copy.read_metrics()["overfitting"]["best_epoch"] == before["overfitting"]["best_epoch"] is not None


def test_evaluate_keeps_the_best_epoch_that_training_found(run_copy, tmp_path):
    """Without a validation split the loop's best epoch is by training loss, which the report's own rule
    cannot see: a re-evaluation keeps what training wrote rather than dropping it to None."""
    metrics = run_copy.read_metrics()
    metrics["overfitting"]["best_epoch"] = 1
    run_copy.write_metrics(metrics)
    assert run_cli("evaluate", str(run_copy), cwd=tmp_path).returncode == 0
    assert run_copy.read_metrics()["overfitting"]["best_epoch"] == 1
    metrics["overfitting"]["best_epoch"] = 500  # planted: the run has 2 epochs
    run_copy.write_metrics(metrics)
    assert run_cli("evaluate", str(run_copy), cwd=tmp_path).returncode == 0
    assert run_copy.read_metrics()["overfitting"]["best_epoch"] in (1, 2)


@pytest.mark.parametrize(
    "filename, content, fragment",
    [
        (RunDir.HISTORY, "epoch,loss\n1,abc\n", "history.csv: not a history table"),
        (RunDir.HISTORY, "epoch,loss\n" + "1,1\n" * 100_001, "history.csv: more rows than a run has epochs"),
        (RunDir.CONFIG, "{", "config.json: not valid JSON"),
        (RunDir.CONFIG, '{"preset": "tiny"}', "config.json: missing hidden, epochs, batch_size, learning_rate"),
    ],
)
def test_evaluate_of_a_corrupt_run_file_is_one_sentence(run_copy, tmp_path, filename, content, fragment):
    (run_copy.path / filename).write_text(content)
    assert_one_line_error(run_cli("evaluate", str(run_copy), cwd=tmp_path), fragment)


@pytest.mark.parametrize(
    "run",
    sorted(p for p in (Path(__file__).parents[2] / "benchmarks" / "runs").glob("*/*/s*")),
    ids=lambda p: "/".join(p.parts[-3:]),
)
def test_every_stored_run_folder_still_loads(run):
    """Run folders written by earlier versions (benchmarks/runs) pass today's checks."""
    config, metrics = RunDir(run).read_config(), RunDir(run).read_metrics()
    assert config.preset == run.parent.name and 0 < metrics["test_accuracy"] <= 1


@pytest.mark.parametrize(
    "edit, problem",
    [
        ({"overfitting": [1]}, "its overfitting is not a record of the run's curves"),
        ({"overfitting": {"train_val_gap": 5}}, "its overfitting is not a record"),
        ({"train_seconds": "fast"}, "its train_seconds is not a number"),
        ({"test_accuracy": float("nan")}, "has no test_accuracy between 0 and 1"),
        ({"test_accuracy": 10**400}, "has no test_accuracy between 0 and 1"),
    ],
)
def test_metrics_a_table_cannot_print_mark_the_run_broken(run_copy, edit, problem):
    """One run's odd metrics.json must not cost `digits runs` its whole table (it raised AttributeError)."""
    path = run_copy.path / RunDir.METRICS
    path.write_text(json.dumps(json.loads(path.read_text()) | edit))
    with pytest.raises(RunError, match=problem):
        run_copy.read_metrics()
    [row] = list_runs(run_copy.path.parent)
    assert row["status"] == "broken" and problem in row["problem"]


def test_a_runs_dir_that_is_a_file_is_called_a_file(tmp_path):
    """It was reported as an existing run ("... already exists; choose another --name")."""
    (tmp_path / "afile").write_text("")
    config = TrainConfig.from_preset("tiny")
    with pytest.raises(TrainingError, match="--runs-dir .*afile is a file, not a folder"):
        RunDir.create(tmp_path / "afile", "x", config)


def test_a_run_that_lost_its_config_is_listed_broken_and_other_folders_are_not_runs(run_copy):
    """A run folder without config.json was left out of `digits runs` without a word; a folder of plots is no run."""
    (run_copy.path / RunDir.CONFIG).unlink()
    (run_copy.path.parent / "tune-plots").mkdir()
    [row] = list_runs(run_copy.path.parent)
    assert (row["name"], row["status"]) == (run_copy.name, "broken")
    assert "config.json" in row["problem"]


def test_evaluate_refuses_a_read_only_report_file_before_rewriting_any(run_copy, tmp_path):
    """metrics.json and curves.png were rewritten before a read-only confusion.png stopped the command."""
    import os

    (run_copy.path / RunDir.CONFUSION).chmod(0o444)
    before = {name: (run_copy.path / name).read_bytes() for name in (RunDir.METRICS, RunDir.CURVES)}
    stamps = {name: os.stat(run_copy.path / name).st_mtime_ns for name in before}
    assert_one_line_error(run_cli("evaluate", str(run_copy), cwd=tmp_path), "confusion.png")
    assert {name: (run_copy.path / name).read_bytes() for name in before} == before
    assert {name: os.stat(run_copy.path / name).st_mtime_ns for name in before} == stamps


def test_a_run_stopped_before_its_first_checkpoint_is_advised_to_resume_unless_it_trained_epochs(run_copy):
    from dataclasses import replace

    config, info = run_copy.read_run()
    (run_copy.path / RunDir.CHECKPOINT).unlink(missing_ok=True)
    run_copy.write_config(config, replace(info, status="interrupted", epochs_done=0))
    assert "trains it from the start" in run_copy.unfinished_advice("interrupted")
    run_copy.write_config(config, replace(info, status="interrupted", epochs_done=2))  # its checkpoint is gone
    assert "train it again" in run_copy.unfinished_advice("interrupted")
