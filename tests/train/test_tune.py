"""Tuning: a tiny study end to end, workers sharing a study (SQLite and PostgreSQL), a killed worker, bad storage.

The PostgreSQL tests need a server: set DIGITS_TEST_POSTGRES_URL to a database
they may create tables in (`.ci/run` starts one on loopback). Without it they
skip, except under CI, where they fail.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest

optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState  # noqa: E402

from digits.config import TrainConfig  # noqa: E402
from digits.train import tune  # noqa: E402
from digits.train.loop import TEST_SIGNAL_VARIABLE  # noqa: E402
from helpers import DIGITS, assert_one_line_error, run_cli  # noqa: E402

# A few seconds per trial: 3000 images, at most 2 epochs.
SMALL = ["--preset", "tiny", "--train-limit", "3000", "--max-epochs", "2"]


def _tune(tmp_path, *args, **kwargs) -> subprocess.CompletedProcess:
    return run_cli("tune", *SMALL, "--runs-dir", str(tmp_path), *args, cwd=tmp_path, **kwargs)


def _study(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path) -> str:
    """A study database URL: a SQLite file in tmp_path, or the PostgreSQL test server."""
    if request.param == "sqlite":
        return tune.default_storage(tmp_path)
    url = os.environ.get("DIGITS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set DIGITS_TEST_POSTGRES_URL to run the PostgreSQL tests")
    return url


@pytest.mark.slow
def test_tiny_study_end_to_end(tmp_path):
    result = _tune(tmp_path, "--trials", "3")
    assert result.returncode == 0, result.stderr
    assert "study tiny-mnist" in result.stdout
    assert "\x1b[" not in result.stdout + result.stderr, "no progress bar off a terminal"
    assert [line.split(":")[0] for line in result.stdout.splitlines()[:3]] == ["trial 0", "trial 1", "trial 2"]

    study = _study(tune.default_storage(tmp_path), "tiny-mnist")
    assert study.user_attrs == {"preset": "tiny", "dataset": "mnist", "train_limit": 3000}
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 3
    for trial in trials:
        # Every epoch's validation accuracy reached the trial, and the objective is one of them.
        assert list(trial.intermediate_values) == list(range(1, trial.params["epochs"] + 1))
        assert (
            trial.value
            == trial.user_attrs["val_accuracy_history"][-1]
            == trial.intermediate_values[trial.params["epochs"]]
        )

    shown = run_cli("tune", "--show", "tiny-mnist", "--runs-dir", str(tmp_path), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"trial {study.best_trial.number}: val acc {study.best_value:.4f}" in shown.stdout
    for name in ("optimization-history.png", "param-importances.png", "parallel-coordinates.png"):
        assert (tmp_path / "tune-tiny-mnist" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    (tmp_path / "plots.png").write_bytes(b"")
    into_a_file = run_cli(
        "tune", "--show", "tiny-mnist", "--runs-dir", str(tmp_path), "--out", "plots.png", cwd=tmp_path
    )
    assert_one_line_error(into_a_file, "plots.png is a file; --out names the folder")

    other_data = ("train", "--from-study", "tiny-mnist", "--dataset", "fashion-mnist", "--runs-dir", str(tmp_path))
    assert_one_line_error(
        run_cli(*other_data, cwd=tmp_path), "--dataset fashion-mnist and --from-study exclude each other"
    )
    trained = run_cli(
        "train", "--from-study", "tiny-mnist", "--dataset", "mnist", "--runs-dir", str(tmp_path), cwd=tmp_path
    )
    assert trained.returncode == 0, trained.stderr
    run_dir = (tmp_path / "latest").resolve()
    config = json.loads((run_dir / "config.json").read_text())
    best = study.best_trial
    assert config["tuned_from"] == {"study": "tiny-mnist", "trial": best.number, "val_accuracy": best.value}
    assert config["train_limit"] == 3000 and config["status"] == "finished"
    assert config["hidden"] == [best.params["width"]] * best.params["depth"]
    assert {k: config[k] for k in ("learning_rate", "batch_size", "epochs", "dropout", "augment")} == {
        k: best.params[k] for k in ("learning_rate", "batch_size", "epochs", "dropout", "augment")
    }
    assert "test_accuracy" in json.loads((run_dir / "metrics.json").read_text())


# One epoch of a one-layer network: a trial's parameters, fixed (with a batch size of the test's own).
ONE_SMALL_TRIAL = {
    "learning_rate": 3e-3,
    "schedule": "constant",
    "epochs": 1,
    "dropout": 0.0,
    "weight_decay": 1e-5,
    "augment": 0.0,
    "depth": 1,
    "width": 32,
}


def test_the_objective_never_touches_the_test_set(mnist):
    (x, y), _ = mnist
    base = TrainConfig.from_preset("tiny", {}, "mnist", 0, 2000)
    objective = tune.Objective(base, None, 1, data=((x, y), None))
    value = objective(optuna.trial.FixedTrial({**ONE_SMALL_TRIAL, "batch_size": 256}))
    assert 0.1 < value <= 1.0


def test_a_trial_shares_trainings_check_of_the_batch_count(mnist):
    from digits.runs import TrainingError

    (x, y), _ = mnist
    objective = tune.Objective(TrainConfig.from_preset("tiny", {}, "mnist", 0, 300), None, 1, data=((x, y), None))
    with pytest.raises(TrainingError, match="270 training images are fewer than one batch of 512"):
        objective(optuna.trial.FixedTrial({**ONE_SMALL_TRIAL, "batch_size": 512}))


def test_seed_keeps_the_articles_network():
    from digits.train import models

    overrides = tune.overrides_from_params(
        "seed",
        {
            "learning_rate": 1e-3,
            "schedule": "cosine",
            "batch_size": 256,
            "epochs": 20,
            "dropout": 0.1,
            "weight_decay": 1e-4,
            "augment": 0.5,
        },
    )
    assert "hidden" not in overrides
    assert models.build(TrainConfig.from_preset("seed", overrides)).count_params() == 104_938


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path, storage):
    name = f"shared-{uuid.uuid4().hex[:8]}"
    args = [DIGITS, "tune", *SMALL, "--trials", "2", "--runs-dir", str(tmp_path), "--storage", storage, "--study", name]
    workers = [
        subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr

    trials = _study(storage, name).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    by_worker = {}
    for trial in trials:
        by_worker.setdefault(trial.user_attrs["worker"], []).append(trial.number)
    assert sorted(len(numbers) for numbers in by_worker.values()) == [2, 2], by_worker
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4, "every trial is distinct"


def _running_trial(storage: str, name: str):
    from sqlalchemy.exc import OperationalError

    try:
        trials = _study(storage, name).get_trials(states=(TrialState.RUNNING,))
    # The study is not created yet, or the frozen worker holds the lock (Optuna wraps the
    # "database is locked" of a write, such as the one opening a storage makes, in its own error).
    except (KeyError, OperationalError, optuna.exceptions.StorageInternalError):
        return None
    return trials[0] if trials else None


def _has_beaten(storage: str, trial_id: int) -> bool:
    """Whether the trial's heartbeat is in the study: without one, no later worker can tell its worker died."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(storage.removeprefix("sqlite:///"), timeout=0.1)) as db:
            beat = db.execute("SELECT 1 FROM trial_heartbeats WHERE trial_id = ?", (trial_id,)).fetchone()
    except sqlite3.OperationalError:  # the frozen worker holds the lock, or the table is not made yet
        return False
    return beat is not None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_killed_worker_leaves_a_study_that_resumes(tmp_path):
    storage, name = tune.default_storage(tmp_path), "killed"
    args = ["--study", name, "--heartbeat", "1"]
    # Many trials, so the worker is always in one; it is frozen before we look, so what we see is what we kill.
    worker = subprocess.Popen(
        [DIGITS, "tune", *SMALL, "--runs-dir", str(tmp_path), "--trials", "1000", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        killed = None
        for _ in range(600):
            worker.send_signal(signal.SIGSTOP)
            killed = _running_trial(storage, name)
            # A second trial whose heartbeat is written: without a beat no later worker could tell
            # its worker died (a loaded machine can start a trial well before its first beat).
            if killed is not None and killed.number >= 1 and _has_beaten(storage, killed._trial_id):
                break
            killed = None
            worker.send_signal(signal.SIGCONT)
            time.sleep(0.2)
        assert killed is not None, "the worker never started a second trial with a heartbeat"
    finally:
        worker.kill()
        worker.wait()
    # The study is usable at once, and the killed trial is not complete.
    assert _study(storage, name).trials[killed.number].state == TrialState.RUNNING
    time.sleep(2.5)  # twice the heartbeat: the next worker will see this one is dead

    resumed = _tune(tmp_path, "--trials", "1", *args)
    assert resumed.returncode == 0, resumed.stderr
    trials = _study(storage, name).trials
    assert trials[killed.number].state == TrialState.FAIL
    retry = trials[-1]
    assert retry.number > killed.number and retry.state == TrialState.COMPLETE
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == killed.number
    # The retry keeps every value the killed trial had drawn. The worker may have been
    # frozen while it was still drawing them: the rest are drawn afresh by the retry.
    assert killed.params.items() <= retry.params.items()


def test_ctrl_c_fails_the_trial_without_a_traceback(tmp_path):
    # The training loop's test hook sends SIGINT right after epoch 1, the last epoch of a 1-epoch trial or not.
    env = {**os.environ, TEST_SIGNAL_VARIABLE: "SIGINT:1"}
    stopped = _tune(tmp_path, "--trials", "3", "--study", "stopped", env=env)
    assert stopped.returncode == 130
    assert stopped.stderr == "", stopped.stderr
    (trial,) = _study(tune.default_storage(tmp_path), "stopped").trials
    assert trial.state == TrialState.FAIL


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("nonsense", "not a storage URL"),
        ("postgresql://digits:secret@127.0.0.1:1/none", "cannot open the study storage"),
        ("sqlite://", "an in-memory database holds no study"),  # traceback lines from the heartbeat thread, exit 0
        ("sqlite:///:memory:", "an in-memory database holds no study"),
        ("sqlite+pysqlite:///:memory:", "an in-memory database holds no study"),
        ("postgresql://digits:secret@[::1/db", "not a storage URL"),  # a ValueError of SQLAlchemy's: exit 1
        ("sqlite:///q.db?timeout=abc", "not a storage URL"),
        ("sqlite:///tune.log/x.db", "tune.log: cannot hold the study database (a file is where a folder must be)"),
    ],
)
def test_bad_storage_is_one_line(tmp_path, url, fragment):
    (tmp_path / "tune.log").write_text("a file, not a folder")
    result = _tune(tmp_path, "--trials", "1", "--storage", url)
    assert_one_line_error(result, fragment)
    assert "secret" not in result.stderr


def test_a_study_with_no_trials_is_shown_whole_without_plots(tmp_path):
    """Made with --trials 0 (as tuning.md shows), it printed half a sentence, and --show failed for want of plots."""
    made = _tune(tmp_path, "--trials", "0", "--study", "empty")
    assert made.returncode == 0, made.stderr
    assert "study empty: preset tiny, no trials yet" in made.stdout
    shown = run_cli("tune", "--show", "empty", "--runs-dir", str(tmp_path), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "no trials yet" in shown.stdout and "no plots yet: they need 2 complete trials" in shown.stdout
    assert not (tmp_path / "tune-empty").exists()


def test_a_study_of_another_preset_is_refused(tmp_path):
    assert _tune(tmp_path, "--trials", "0", "--study", "mine").returncode == 0
    result = run_cli(
        "tune", "--preset", "seed", "--trials", "1", "--study", "mine", "--runs-dir", str(tmp_path), cwd=tmp_path
    )
    assert_one_line_error(result, "study 'mine' tunes preset tiny", "--study")
    missing = run_cli("tune", "--show", "other", "--runs-dir", str(tmp_path), cwd=tmp_path)
    assert_one_line_error(missing, "no study named 'other'", "mine")
    untrained = run_cli("train", "--from-study", "mine", "--runs-dir", str(tmp_path), cwd=tmp_path)
    assert_one_line_error(untrained, "no complete trial")


@pytest.mark.parametrize("preset", ["sprint", "record"])
def test_a_preset_without_validation_images_is_refused_before_anything_runs(tmp_path, preset):
    """Tuning scores validation accuracy, and these presets hold out none: one sentence, no study, no epoch."""
    result = run_cli("tune", "--preset", preset, "--trials", "1", "--runs-dir", str(tmp_path), cwd=tmp_path)
    assert_one_line_error(result, f"preset '{preset}' holds out no validation images")
    assert not (tmp_path / "tune.db").exists()


@pytest.mark.parametrize(
    "options, fragment",
    [
        (
            ["--train-limit", "100"],
            "--train-limit 100 leaves 90 training images, fewer than the largest batch a trial may draw (512)",
        ),
        (["--max-epochs", "100000000"], "--max-epochs from 1 to 100,000"),
    ],
)
def test_limits_no_trial_could_train_with_are_refused_before_the_study_is_made(tmp_path, options, fragment):
    """They were refused by the first trial, once the study existed, labelled with the bad limit, holding a
    failed trial: the same command with a good limit was then refused as another study's."""
    result = run_cli("tune", "--preset", "tiny", "--trials", "1", *options, "--runs-dir", str(tmp_path), cwd=tmp_path)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "tune.db").exists()


def test_a_database_of_another_optuna_version_is_one_line_and_exit_2(tmp_path):
    """Optuna raises a RuntimeError for tables it cannot use: that was "unexpected", exit 1."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(tmp_path / "old.db")) as database:
        database.execute(
            "create table version_info(version_info_id integer primary key, schema_version integer, "
            "library_version text)"
        )
        database.execute("insert into version_info values (1, 1, '0.1')")
        database.commit()
    result = _tune(tmp_path, "--trials", "0", "--storage", f"sqlite:///{tmp_path / 'old.db'}")
    assert_one_line_error(result, "cannot use the study storage", "optuna storage upgrade")


def test_kept_val_accuracy_follows_the_presets_early_stopping():
    history = {"val_accuracy": [0.90, 0.95, 0.93], "val_loss": [0.3, 0.2, 0.25]}

    def kept(**overrides) -> float:
        return tune.kept_val_accuracy(history, TrainConfig.from_preset("tiny", overrides))

    assert kept(early_stopping=0) == 0.93
    assert kept(early_stopping=5, monitor="val_accuracy") == 0.95
    assert kept(early_stopping=5, monitor="val_loss") == 0.95


def test_a_server_that_accepts_and_never_answers_fails_in_one_sentence(monkeypatch):
    from sqlalchemy.engine import make_url

    pytest.importorskip(make_url("postgresql://").get_dialect().driver)  # psycopg or psycopg2, as SQLAlchemy picks
    # A listening socket that nobody reads: the kernel completes every TCP
    # handshake, and the client then waits for a greeting that never comes.
    monkeypatch.setattr(tune, "CONNECT_TIMEOUT", 2)  # libpq's smallest
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    try:
        with pytest.raises(tune.TuneError, match="cannot open the study storage .*timeout") as excinfo:
            tune.open_storage(f"postgresql://digits:secret@127.0.0.1:{port}/none")
    finally:
        silent.close()
    assert "secret" not in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_a_study_not_made_by_digits_tune_is_refused(tmp_path):
    """A study made with Optuna itself: "unexpected KeyError: 'preset'", a NotImplementedError for two
    objectives, and a minimizing study was joined and would have minimized the accuracy."""
    storage = tune.default_storage(tmp_path)
    optuna.create_study(study_name="foreign", storage=storage, direction="maximize")
    optuna.create_study(study_name="down", storage=storage, direction="minimize")
    optuna.create_study(study_name="two", storage=storage, directions=["maximize", "maximize"])
    assert_one_line_error(
        run_cli("train", "--from-study", "foreign", "--runs-dir", str(tmp_path), cwd=tmp_path), "names no preset"
    )
    for name in ("down", "two"):
        assert_one_line_error(_tune(tmp_path, "--trials", "1", "--study", name), "does not maximize one value")
    labelled = optuna.create_study(study_name="labelled", storage=storage, direction="maximize")
    labelled.set_user_attr("preset", "tiny")
    labelled.add_trial(
        optuna.trial.create_trial(
            params={"x": 1.0}, distributions={"x": optuna.distributions.FloatDistribution(0, 2)}, value=0.5
        )
    )
    result = run_cli("train", "--from-study", "labelled", "--runs-dir", str(tmp_path), cwd=tmp_path)
    assert_one_line_error(result, "the trial's parameters are not those `digits tune` searches")


def test_a_damaged_study_database_is_one_line_and_exit_2(tmp_path):
    """A page of the SQLite file overwritten: Optuna's StorageInternalError was "unexpected", exit 1."""
    assert _tune(tmp_path, "--trials", "0", "--study", "mine").returncode == 0
    database = tmp_path / "tune.db"
    data = bytearray(database.read_bytes())
    data[8192:12288] = b"\xab" * 4096
    database.write_bytes(bytes(data))
    result = run_cli("tune", "--show", "mine", "--runs-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("name", ["a\nb", "x" * 201, "../x", ".hidden"])
def test_a_study_name_that_cannot_name_a_folder_on_one_line_is_refused(tmp_path, name):
    assert_one_line_error(_tune(tmp_path, "--trials", "0", "--study", name), "a study's name is at most 200 printable")
    assert not (tmp_path / "tune.db").exists()


def test_show_checks_every_plot_it_replaces_before_the_first(tmp_path):
    """A folder where the second plot goes stopped --show after the first was already replaced."""
    from digits.atomic import WriteError
    from digits.train import plots

    study = optuna.create_study(direction="maximize")
    x = optuna.distributions.FloatDistribution(0, 1)
    for value in (0.1, 0.5, 0.9):
        study.add_trial(optuna.trial.create_trial(params={"x": value}, distributions={"x": x}, value=value))
    out = tmp_path / "plots"
    out.mkdir()
    (out / "optimization-history.png").write_bytes(b"old")
    (out / "param-importances.png").mkdir()
    with pytest.raises(WriteError):
        plots.save_study_plots(study, out)
    assert (out / "optimization-history.png").read_bytes() == b"old"
