"""The training lock (`digits.run_lock`): one trainer per run, and "killed" told by the lock, not by a process number."""

import errno
import fcntl
import os
import subprocess
import sys

import pytest

from digits import run_lock
from digits.config import TrainConfig
from digits.errors import RunError
from digits.runs import LATEST, RunDir, RunInfo


@pytest.fixture
def other_process():
    """The number of another live process, for a run's record to name as its trainer."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield process.pid
    process.kill()
    process.wait()


@pytest.fixture
def run(tmp_path) -> RunDir:
    config = TrainConfig.from_preset("tiny", {}, "mnist", 0, None)
    run = RunDir.create(tmp_path / "runs", "locked", config)
    run.write_config(config, RunInfo(status="running", pid=os.getpid(), epochs_done=1))
    return run


def test_a_run_is_running_while_its_lock_is_held_and_killed_after(run, other_process):
    with run.training():
        config, _ = run.read_run()
        run.write_config(config, RunInfo(status="running", pid=other_process, epochs_done=1))  # as if it trained
        assert run.status() == "running"
        # flock locks belong to an open file: a second holder, even in this process, is another trainer.
        second = RunDir(run.path.parent / LATEST).training()  # the same folder through runs/latest
        with pytest.raises(RunError, match=rf"latest: the run is training now \(process {other_process}\); wait"):
            second.__enter__()
        run.write_config(config, RunInfo(status="running", pid=os.getpid(), epochs_done=1))
    # Its recorded process (this one) lives on, but no process trains the run.
    assert run.status() == "killed"
    with run.training():  # free again
        pass
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json"]  # the folder is locked, not a file in it


def test_a_lock_held_by_a_process_that_is_not_the_recorded_trainer_is_named_as_such(run):
    config, _ = run.read_run()
    run.write_config(config, RunInfo(status="interrupted", epochs_done=1))
    with run.training(), pytest.raises(RunError, match="locked: another process holds the run folder's lock; wait"):
        run.training().__enter__()


def test_a_glance_from_digits_runs_does_not_refuse_a_trainer(run, monkeypatch):
    """`digits runs` takes a shared lock for an instant to ask; a resume that meets it waits for it to go."""
    glance = os.open(run.path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(glance, fcntl.LOCK_SH)
    waited = []

    def glance_ends(seconds):
        waited.append(seconds)
        os.close(glance)

    monkeypatch.setattr(run_lock, "_sleep", glance_ends)
    with run.training():
        assert run.status() == "running"
    assert len(waited) == 1


def test_where_the_file_system_has_no_locks_the_process_number_decides(run, monkeypatch, other_process):
    def no_locks(descriptor, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(run_lock.fcntl, "flock", no_locks)
    with run.training():  # recorded as trained by this process: the resume goes on
        assert run.status() == "running"  # this process, alive
    config, _ = run.read_run()
    run.write_config(config, RunInfo(status="running", pid=other_process, epochs_done=1))
    with pytest.raises(RunError, match=rf"the run is training now \(process {other_process}\)"):
        run.training().__enter__()
    run.write_config(config, RunInfo(status="running", pid=2**31 - 1, epochs_done=1))
    assert run.status() == "killed"


def test_a_run_path_that_is_no_folder_is_one_sentence(tmp_path):
    (tmp_path / "file").write_text("not a run")
    with pytest.raises(RunError, match=r"file: cannot open the run folder to lock it \(Not a directory\)"):
        RunDir(tmp_path / "file").training().__enter__()
