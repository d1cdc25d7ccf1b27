"""The training lock (`digits.run_lock`): one trainer per run, and "killed" told by the lock, not by a process number."""

import os

import pytest

from digits.config import TrainConfig
from digits.errors import RunError
from digits.runs import RunDir, RunInfo


@pytest.fixture
def run(tmp_path) -> RunDir:
    config = TrainConfig.from_preset("tiny", {}, "mnist", 0, None)
    run = RunDir.create(tmp_path / "runs", "locked", config)
    run.write_config(config, RunInfo(status="running", pid=os.getpid(), epochs_done=1))
    return run


def test_a_run_is_running_while_its_lock_is_held_and_killed_after(run):
    with run.training():
        assert run.status() == "running"
        # flock locks belong to an open file: a second holder, even in this process, is another trainer.
        second = run.training()
        with pytest.raises(RunError, match=rf"locked: the run is training now \(process {os.getpid()}\); wait"):
            second.__enter__()
    # Its recorded process (this one) lives on, but no process trains the run.
    assert run.status() == "killed"
    with run.training():  # free again
        pass


def test_a_run_folder_from_before_the_lock_falls_back_to_its_process_number(run):
    assert not (run.path / RunDir.LOCK).exists()  # written by the first `training()` only
    assert run.status() == "running"  # this process, alive
    config, info = run.read_run()
    run.write_config(config, RunInfo(status="running", pid=2**31 - 1, epochs_done=1))
    assert run.status() == "killed"


@pytest.mark.parametrize("planted", ["link", "folder", "fifo"])
def test_a_lock_that_is_no_regular_file_is_refused_and_never_followed(run, tmp_path, planted):
    lock = run.path / RunDir.LOCK
    target = tmp_path / "elsewhere"
    target.write_text("a user's file")
    {"link": lambda: lock.symlink_to(target), "folder": lock.mkdir, "fifo": lambda: os.mkfifo(lock)}[planted]()
    with pytest.raises(RunError, match=r"training.lock: (cannot open the run's training lock|not a regular file)"):
        run.training().__enter__()
    assert target.read_text() == "a user's file"
    assert run.status() == "running"  # no lock to ask: the recorded process (this one) is alive
