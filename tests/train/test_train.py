"""Training: the article's network, real short runs, determinism, checkpoints and resume."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from digits.config import TrainConfig
from digits.presets import PRESETS
from digits.run_table import run_row
from digits.runs import RunDir, RunInfo, TrainingError
from digits.train import models
from digits.train.loop import TEST_SIGNAL_VARIABLE
from digits.train.run import train, train_config
from helpers import DIGITS, assert_one_line_error, run_cli


def test_seed_model_has_the_articles_parameter_count():
    assert models.build(TrainConfig.from_preset("seed")).count_params() == 104_938


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_builds_for_28x28_input(preset):
    config = TrainConfig.from_preset(preset)
    model = models.build(config)
    assert model.input_shape == (None, 28, 28) and model.output_shape == (None, 11 if config.reject_class else 10)


@pytest.mark.slow
def test_one_short_epoch_beats_85_percent(tmp_path, mnist):
    run = train(
        "seed",
        runs_dir=tmp_path,
        name="short",
        train_limit=10000,
        overrides={"epochs": 1},
        progress=False,
        log=lambda *a: None,
    )
    metrics = RunDir(run).read_metrics()
    assert metrics["test_accuracy"] > 0.85
    assert metrics["parameters"] == 104_938


def test_run_folder_holds_everything(tiny_run):
    for name in (
        "model.keras",
        "model.onnx",
        "config.json",
        "history.csv",
        "curves.png",
        "metrics.json",
        "confusion.png",
        "mistakes.png",
        "checkpoint.npz",
    ):
        assert (tiny_run / name).is_file(), name
    assert (tiny_run.parent / "latest").resolve() == tiny_run.resolve()
    config, info = RunDir(tiny_run).read_run()
    assert config == TrainConfig.from_preset("tiny", train_limit=6000)
    assert info.status == "finished" and info.epochs_done == 2 and info.parameters == 25_450
    assert set(info.provenance) >= {"versions", "data_sha256", "git_commit", "git_dirty", "command", "machine"}
    assert info.provenance["versions"]["keras"].startswith("3.")
    metrics = RunDir(tiny_run).read_metrics()
    assert {"test_loss", "test_accuracy", "per_class", "confusion_matrix", "parameters", "train_seconds"} <= set(
        metrics
    )
    assert np.array(metrics["confusion_matrix"]).sum() == 10000
    assert not list(tiny_run.glob(".*.tmp*")), "no temporary files are left behind"


def test_the_report_gives_the_models_accuracy_and_the_readers(tiny_run, mnist):
    """`test_accuracy` is the model's alone; `test_accuracy_as_read` is what `predict` answers for the same
    images (`Reader.classify`, which turns the images the model is unsure of)."""
    from digits.read.reader import Reader

    _, (x_test, y_test) = mnist
    metrics = RunDir(tiny_run).read_metrics()
    reader = Reader(tiny_run)
    assert metrics["test_accuracy"] == float((reader.recognizer.predict(x_test) == y_test).mean())
    assert metrics["test_accuracy_as_read"] == float((reader.classify(x_test).argmax(axis=1) == y_test).mean())


def test_train_config_trains_the_given_config_and_returns_its_metrics(tmp_path, mnist):
    """The config is trained as given and written back unchanged; the metrics come back without a re-read."""
    config = TrainConfig.from_preset("tiny", {"epochs": 1}, train_limit=2000)
    run, metrics = train_config(config, runs_dir=tmp_path, name="given", progress=False, log=lambda *a: None)
    stored, info = RunDir(run).read_run()
    assert stored == config and metrics == RunDir(run).read_metrics()
    assert (info.status, info.epochs_done, info.parameters) == ("finished", 1, metrics["parameters"])
    assert train_config(None, resume=run, log=lambda *a: None) == (run, metrics)  # finished: nothing to do
    with pytest.raises(ValueError, match="exactly one"):
        train_config(config, resume=run)


def _weights(run):
    return list(RunDir(run).read_checkpoint()[0]["model"].values())


@pytest.mark.slow
def test_same_seed_gives_bit_identical_weights(tmp_path, mnist):
    runs = [
        train("tiny", runs_dir=tmp_path, name=f"r{i}", seed=7, train_limit=4000, progress=False, log=lambda *a: None)
        for i in range(2)
    ]
    first, second = (_weights(r) for r in runs)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=False))
    other = train(
        "tiny", runs_dir=tmp_path, name="other", seed=8, train_limit=4000, progress=False, log=lambda *a: None
    )
    assert not all(np.array_equal(a, b) for a, b in zip(first, _weights(other), strict=False))


def test_early_stopping_restores_best_weights(tmp_path, mnist, monkeypatch):
    """Validation losses of 1.0, 0.5, 0.9 and 0.95 with a patience of 2: the run stops after epoch 4 and keeps
    epoch 2's weights. The losses are given, not trained for: a diverging run's best epoch is the CPU's to say."""
    from digits.train.checkpoint import new_state
    from digits.train.dataset import split_data
    from digits.train.loop import fit
    from digits.train.run import set_up

    config = TrainConfig.from_preset("tiny", {"epochs": 6, "early_stopping": 2}, train_limit=2000)
    (x, y), _ = mnist
    split = split_data(x, y, config.validation_split, config.train_limit)
    trainer = set_up(config, split)
    losses = iter([1.0, 0.5, 0.9, 0.95])
    monkeypatch.setattr(trainer, "evaluate", lambda x, y: (next(losses), 0.5))
    weights = trainer.model.weights
    seen: list[list[np.ndarray]] = []
    run = RunDir.create(tmp_path, "es", config)
    state = fit(trainer, split, run, new_state(), False, on_epoch=lambda *_: seen.append([w.numpy() for w in weights]))
    assert (state["best_epoch"], len(seen), state["history"]["epoch"]) == (2, 4, [1, 2, 3, 4])
    for restored, best in zip(weights, seen[1], strict=True):
        np.testing.assert_array_equal(restored.numpy(), best)
    assert not all(np.array_equal(w.numpy(), last) for w, last in zip(weights, seen[-1], strict=True))
    # Its checkpoint (epoch 6 of 6, four epochs of history) is one a resume after the report stage takes.
    from digits.train.checkpoint import load_checkpoint

    assert load_checkpoint(run, trainer)["epoch"] == 6


def _history(run):
    return RunDir(run).read_history()


def test_resuming_a_finished_run_does_nothing(tiny_run, capsys):
    before = (tiny_run / "model.onnx").stat().st_mtime_ns
    messages = []
    train(resume=tiny_run, log=messages.append)
    assert "already finished" in messages[0]
    assert (tiny_run / "model.onnx").stat().st_mtime_ns == before


RESUMABLE = ("--preset", "tiny", "--epochs", "6", "--train-limit", "6000", "--seed", "3")


def _train_until_signal(tmp_path, name, signal_name, epoch):
    """`digits train` that sends itself `signal_name` right after epoch `epoch`'s checkpoint (a test-only hook)."""
    env = {**os.environ, TEST_SIGNAL_VARIABLE: f"{signal_name}:{epoch}"}
    return run_cli("train", *RESUMABLE, "--name", name, cwd=tmp_path, env=env)


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, mnist):
    reference = run_cli("train", *RESUMABLE, "--name", "whole", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    killed = _train_until_signal(tmp_path, "killed", "SIGKILL", 2)
    assert killed.returncode == -signal.SIGKILL
    run = tmp_path / "runs" / "killed"
    assert RunDir(run).checkpoint_meta()["epoch"] == 2
    listing = run_cli("runs", cwd=tmp_path)
    assert "killed" in listing.stdout
    assert run_row(RunDir(run))["epochs"].startswith("2/")  # its checkpoint's, not the 0 recorded at its start
    resumed = run_cli("train", "--resume", str(run), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    whole, again = _history(tmp_path / "runs" / "whole"), _history(run)
    assert whole.keys() == again.keys()
    for key in whole:
        np.testing.assert_allclose(again[key], whole[key], rtol=1e-6, atol=1e-7, err_msg=key)


@pytest.mark.slow
def test_sigint_saves_a_resumable_checkpoint_and_exits_130(tmp_path, mnist):
    stopped = _train_until_signal(tmp_path, "stopped", "SIGINT", 1)
    assert stopped.returncode == 130, stopped.stderr
    assert "digits train --resume" in stopped.stdout
    assert stopped.stderr == ""
    assert "epoch 1/6: loss " in stopped.stdout  # off a terminal, a line per epoch stands for the progress bar
    run = tmp_path / "runs" / "stopped"
    assert RunDir(run).read_info().status == "interrupted"
    assert RunDir(run).checkpoint_meta()["epoch"] == 1
    resumed = run_cli("train", "--resume", str(run), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch 1/6" not in resumed.stdout and "epoch 6/6: loss " in resumed.stdout
    assert RunDir(run).read_info().status == "finished"
    assert len(_history(run)["loss"]) == 6


def test_sigterm_exits_143(tmp_path, mnist):
    terminated = _train_until_signal(tmp_path, "terminated", "SIGTERM", 1)
    assert terminated.returncode == 143, terminated.stderr
    assert RunDir(tmp_path / "runs" / "terminated").read_info().status == "interrupted"


@pytest.mark.parametrize(
    "where", ["digits.train.run.finish", "digits.train.run.set_up", "digits.read.model.Recognizer.predict_proba"]
)
def test_a_signal_outside_the_training_loop_leaves_the_run_interrupted(tmp_path, monkeypatch, mnist, where):
    """SIGTERM while the report is written (or the model built, or the test set read through the model, inside
    a model call's own `except Exception`) is recorded as such, never left as "running" or taken for a failure."""
    import pydoc

    from digits.errors import Interrupted

    real = pydoc.locate(where)

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(where, signalled)
    config = TrainConfig.from_preset("tiny", {"epochs": 1}, train_limit=2000)
    with pytest.raises(Interrupted, match="SIGTERM"):
        train_config(config, runs_dir=tmp_path, name="stopped", progress=False, log=lambda *a: None)
    info = RunDir(tmp_path / "stopped").read_info()
    done = 0 if where.endswith("set_up") else 1
    assert (info.status, info.epochs_done) == ("interrupted", done)
    monkeypatch.undo()
    run, metrics = train_config(None, resume=tmp_path / "stopped", progress=False, log=lambda *a: None)
    assert RunDir(run).read_info().status == "finished" and metrics["epochs_run"] == 1


def test_a_signal_that_a_library_turns_into_its_own_error_still_interrupts(tmp_path, monkeypatch, mnist):
    """SIGTERM during `import onnxruntime` (in the report) comes out of pybind11 as an ImportError: the run is
    still interrupted (exit 143, resumable), not failed with exit 1."""
    from digits.errors import Interrupted
    from digits.train import run as run_module

    real = run_module.finish

    def finish_in_a_library(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except Interrupted:
            raise ImportError("initialization failed") from None
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "finish", finish_in_a_library)
    config = TrainConfig.from_preset("tiny", {"epochs": 1}, train_limit=2000)
    with pytest.raises(Interrupted, match="SIGTERM"):
        train_config(config, runs_dir=tmp_path, name="caught", progress=False, log=lambda *a: None)
    assert RunDir(tmp_path / "caught").read_info().status == "interrupted"


def test_a_resume_refused_for_its_checkpoint_leaves_the_runs_record_as_it_was(tmp_path, monkeypatch, mnist):
    """A checkpoint cut short is bad input: the resume is refused, and the run stays interrupted after its epoch
    (it was recorded as failed after none, and `digits evaluate` then advised the resume that had just failed)."""
    from digits.errors import Interrupted, RunError
    from digits.train import run as run_module

    real = run_module.finish

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "finish", signalled)
    config = TrainConfig.from_preset("tiny", {"epochs": 1}, train_limit=2000)
    with pytest.raises(Interrupted):
        train_config(config, runs_dir=tmp_path, name="cut", progress=False, log=lambda *a: None)
    monkeypatch.undo()
    run = RunDir(tmp_path / "cut")
    before = run.read_info()
    checkpoint = run.path / RunDir.CHECKPOINT
    whole = checkpoint.read_bytes()
    checkpoint.write_bytes(whole[:4000])
    with pytest.raises(RunError, match="checkpoint"):
        train_config(None, resume=run.path, progress=False, log=lambda *a: None)
    assert run.read_info() == before and (before.status, before.epochs_done) == ("interrupted", 1)
    checkpoint.write_bytes(whole)  # put back, it resumes
    train_config(None, resume=run.path, progress=False, log=lambda *a: None)
    assert run.read_info().status == "finished"


def test_resume_refuses_a_run_training_now_and_one_whose_checkpoint_is_gone(tmp_path, mnist):
    config = TrainConfig.from_preset("tiny", {"epochs": 2}, train_limit=2000)
    run = RunDir.create(tmp_path, "halfway", config)
    # Another process holds the run's training lock: it is training the run.
    other = _holding_the_lock(run)
    try:
        run.write_config(config, RunInfo(status="running", pid=other.pid, epochs_done=1))
        assert run.status() == "running"
        with pytest.raises(TrainingError, match=rf"the run is training now \(process {other.pid}\)"):
            train_config(None, resume=run.path, progress=False, log=lambda *a: None)
    finally:
        other.kill()
        other.wait()
    # The lock went with the process. A live process of the recorded number (here this one, as PID 1 in a
    # restarted container would be) is not taken for the run's training; then the checkpoint that an epoch
    # done needs is missing.
    for status, pid in (("running", os.getpid()), ("interrupted", None)):
        run.write_config(config, RunInfo(status=status, pid=pid, epochs_done=1))
        assert run.status() == ("killed" if status == "running" else status)
        with pytest.raises(TrainingError, match="checkpoint.npz: missing or not a regular file, so epoch 1 cannot"):
            train_config(None, resume=run.path, progress=False, log=lambda *a: None)


def _holding_the_lock(run: RunDir) -> subprocess.Popen:
    """A process that holds `run`'s training lock (on its folder) until it is killed."""
    hold = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    other = subprocess.Popen([sys.executable, "-c", hold, str(run.path)], stdout=subprocess.PIPE, text=True)
    assert other.stdout is not None and other.stdout.readline() == "held\n"
    return other


def test_a_signal_during_the_last_epochs_callback_is_not_swallowed(tmp_path, mnist):
    """The loop looks for a signal after each epoch's checkpoint; one that comes later, in the callback, stops the
    run on the way out of the loop instead of being dropped (the run is then whole, and resuming only finishes it)."""
    from digits.errors import Interrupted
    from digits.train.checkpoint import new_state
    from digits.train.dataset import split_data
    from digits.train.loop import fit
    from digits.train.run import set_up

    config = TrainConfig.from_preset("tiny", {"epochs": 1}, train_limit=2000)
    (x, y), _ = mnist
    split = split_data(x, y, config.validation_split, config.train_limit)
    run = RunDir.create(tmp_path, "late", config)
    with pytest.raises(Interrupted, match="SIGTERM"):
        fit(
            set_up(config, split),
            split,
            run,
            new_state(),
            False,
            on_epoch=lambda *_: os.kill(os.getpid(), signal.SIGTERM),
        )
    assert run.checkpoint_meta()["epoch"] == 1


def test_a_command_started_with_sigint_ignored_keeps_it_ignored(tmp_path, mnist):
    """A background job (`digits train &` in a shell without job control) ignores Ctrl-C; training must not
    install a handler over that: the run's own SIGINT after epoch 1 is ignored and the run finishes."""
    env = {**os.environ, TEST_SIGNAL_VARIABLE: "SIGINT:1"}
    ignoring = subprocess.run(
        [DIGITS, "train", *RESUMABLE, "--epochs", "2", "--name", "background"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert ignoring.returncode == 0, ignoring.stderr
    assert RunDir(tmp_path / "runs" / "background").read_info().status == "finished"


def test_existing_run_name_is_refused(tiny_run):
    with pytest.raises(TrainingError, match="already exists"):
        train("tiny", runs_dir=tiny_run.parent, name=tiny_run.name, log=lambda *a: None)


def test_unwritable_output_folder_is_one_clear_error(tmp_path, monkeypatch):
    """Root ignores permission bits, so the refusal is simulated where the folder is made."""

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr("pathlib.Path.mkdir", refuse)
    with pytest.raises(TrainingError, match="cannot create .*Permission denied"):
        train("tiny", runs_dir=tmp_path / "runs", log=lambda *a: None)


def test_disk_full_fails_cleanly_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, mnist):
    """The second checkpoint write hits ENOSPC half-way; the first survives intact, nothing half-written."""
    import errno

    from digits import atomic
    from digits.train.checkpoint import save_checkpoint as real_save

    calls = []

    def save_until_full(run, trainer, state):
        calls.append(state["epoch"])
        if len(calls) == 2:
            with atomic.atomic_path(run.path / RunDir.CHECKPOINT) as tmp:
                tmp.write_bytes(b"half")
                raise OSError(errno.ENOSPC, "No space left on device")
        real_save(run, trainer, state)

    monkeypatch.setattr("digits.train.loop.save_checkpoint", save_until_full)
    with pytest.raises(atomic.WriteError, match="cannot write .*checkpoint.npz: No space left on device"):
        train(
            "tiny",
            runs_dir=tmp_path,
            name="full",
            train_limit=3000,
            overrides={"epochs": 4},
            progress=False,
            log=lambda *a: None,
        )
    run = tmp_path / "full"
    assert RunDir(run).checkpoint_meta()["epoch"] == 1
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.npz", "config.json"]
    assert RunDir(run).read_info().status == "failed"


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["fast", "mlp", "mlp-aug", "cnn"])
def test_each_preset_trains_and_beats_chance_by_far(tmp_path, mnist, preset):
    """Two short epochs on a subset: far from the preset's real figure, far above chance (10 %).

    The test accuracy is measured on the exported model.onnx, so this also
    proves each preset exports and runs on ONNX Runtime.
    """
    run = train(
        preset,
        runs_dir=tmp_path,
        name=preset,
        train_limit=4000,
        overrides={"epochs": 2},
        progress=False,
        log=lambda *a: None,
    )
    metrics = RunDir(run).read_metrics()
    assert metrics["test_accuracy"] > 0.6, metrics["test_accuracy"]


def test_training_images_reach_tensorflow_without_a_copy():
    """split_data's images start where TensorFlow can share them; other arrays are copied, never refused."""
    from digits.train.dataset import TENSOR_ALIGNMENT, aligned_empty, split_data
    from digits.train.loop import as_tensor

    split = split_data(np.arange(10 * 28 * 28, dtype=np.uint8).reshape(10, 28, 28), np.arange(10), 0.2)
    assert split.x_train.ctypes.data % TENSOR_ALIGNMENT == 0 and split.x_val.ctypes.data % TENSOR_ALIGNMENT == 0
    shared = as_tensor(split.x_train)
    split.x_train[0, 0, 0] = 7.0  # the tensor sees it: one buffer, not two
    assert float(shared[0, 0, 0]) == 7.0

    unaligned = aligned_empty((4 + 4 * 784,), np.uint8)[4:].view(np.float32).reshape(1, 28, 28)
    unaligned[:] = 0.5
    for array in (np.zeros((3, 28, 28), np.float32)[:, ::2], unaligned):
        copied = as_tensor(array)
        array[0, 0, 0] = 9.0
        assert float(copied[0, 0, 0]) != 9.0
    read_only = np.zeros((2, 28, 28), np.float32)
    read_only.flags.writeable = False
    np.testing.assert_array_equal(np.asarray(as_tensor(read_only)), read_only)


def test_a_batch_larger_than_the_dataset_leaves_no_run_folder(tmp_path):
    """Refused before the folder exists: one that could never train could never be resumed either."""
    with pytest.raises(TrainingError, match="mnist holds 54000 training images, fewer than one batch of 100000"):
        train("tiny", runs_dir=tmp_path, name="big", overrides={"batch_size": 100_000}, progress=False)
    assert not (tmp_path / "big").exists()


def test_a_train_limit_of_one_image_says_image(tmp_path):
    result = run_cli("train", "--preset", "tiny", "--train-limit", "1", cwd=tmp_path)
    assert_one_line_error(result, "--train-limit 1 leaves 1 training image, fewer than one batch of 256")
    assert not (tmp_path / "runs").exists()


def test_resume_with_settings_of_its_own_is_refused(tiny_run):
    from digits.errors import ConfigError

    with pytest.raises(ConfigError, match="drop preset, seed"):
        train("seed", resume=tiny_run, seed=3)
