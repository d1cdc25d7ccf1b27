"""Hyper-parameter search with Optuna: one study, one machine or many.

Contract:
- A study tunes one preset on one dataset (and training subset); those are
  stored in the study, and a worker asked to join it with anything else
  stops with a `TuneError` instead of mixing trials.
- The search covers what the preset leaves open (`search_space`): how the
  network is trained (learning rate and schedule, batch size, epochs,
  dropout, weight decay, augmentation strength) and, for a dense network
  other than the article's (`FIXED_ARCHITECTURE`), its depth and width; a
  convolutional preset keeps its layers.
- The objective is validation accuracy: the accuracy of the weights the run
  would keep (the last epoch's, or the best epoch's when the preset stops
  early). The test set is never used, so a preset that holds out no
  validation images (`sprint`, `record`) cannot be tuned.
- Each epoch's validation accuracy is reported to the trial; the median
  pruner stops trials that fall behind.
- The study lives in any SQLAlchemy database: by default a SQLite file beside
  the runs; a PostgreSQL URL lets workers on many machines share it. Workers
  send a heartbeat; a worker that dies (even by SIGKILL) leaves its trial
  RUNNING only until another worker sees the heartbeat stop, which marks it
  FAIL and queues the parameters it had drawn to be tried again.
- `--trials N` is how many trials this worker runs; running again on the same
  study continues it (the sampler learns from every earlier trial).
"""

from __future__ import annotations

import os
import re
import socket
import time
import warnings
from dataclasses import replace
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from digits.config import MAX_EPOCHS, TUNE_HEARTBEAT, TUNE_MAX_EPOCHS, TrainConfig
from digits.data import DEFAULT_DATASET
from digits.errors import DigitsError, Interrupted, first_line, install_hint
from digits.train.dataset import adds_pictures, training_count
from digits.train.study_report import TrialProgress


class TuneError(DigitsError):
    """A study cannot be opened, joined or read."""


# Dense presets whose network is what they are about: only their training is tuned.
# `seed` is the article's 784-128-32-10 network (104,938 parameters).
FIXED_ARCHITECTURE = {"seed"}

# A PostgreSQL server that accepts and never answers must not hang a worker
# silently: the driver gives up connecting after CONNECT_TIMEOUT seconds, and
# the server cancels a statement (a lock held by a stuck worker) after
# STATEMENT_TIMEOUT; Optuna's statements take milliseconds.
CONNECT_TIMEOUT = 10
STATEMENT_TIMEOUT = 60


# The batch sizes a trial draws from: large ones only, so that a trial takes seconds per epoch, not tens.
BATCH_SIZES = [128, 256, 512]


def search_space(trial: optuna.trial.BaseTrial, base: TrainConfig, max_epochs: int) -> dict:
    """Suggest one configuration: the config keys it overrides in `base`, the preset's config."""
    overrides = {
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True),
        "schedule": trial.suggest_categorical("schedule", ["constant", "cosine"]),
        "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
        "epochs": trial.suggest_int("epochs", max(1, max_epochs // 4), max_epochs),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        # 0 = no augmentation; 1 = the deformations of augment.py as set (mlp-aug's and cnn's).
        "augment": trial.suggest_float("augment", 0.0, 1.0),
    }
    if base.preset not in FIXED_ARCHITECTURE and base.arch == "dense":
        width = base.hidden[0]
        depth = trial.suggest_int("depth", 1, 3)
        units = trial.suggest_categorical("width", [max(8, width // 4), max(8, width // 2), width])
        overrides["hidden"] = [units] * depth
    return overrides


def overrides_from_params(preset: str, params: dict) -> dict:
    """A finished trial's parameters as config overrides (what `train --from-study` applies)."""
    fixed = optuna.trial.FixedTrial(params)
    try:
        return search_space(fixed, TrainConfig.from_preset(preset), max_epochs=params["epochs"])
    except (KeyError, ValueError) as err:  # FixedTrial's word for a parameter the trial does not hold
        raise TuneError(f"the trial's parameters are not those `digits tune` searches ({first_line(err)}).") from None


def kept_val_accuracy(history: dict, config: TrainConfig) -> float:
    """Validation accuracy of the weights a run keeps: the best epoch's with early stopping, else the last's."""
    from digits.train.metrics import best_epoch

    accuracies = history["val_accuracy"]
    if not config.early_stopping:
        return accuracies[-1]
    best = best_epoch(history, config.monitor)
    assert best is not None  # a history with validation accuracies has a best epoch
    return accuracies[best - 1]


def default_storage(runs_dir: Path) -> str:
    return f"sqlite:///{(runs_dir / 'tune.db').resolve()}"


def _shown(url: str) -> str:
    """The URL with its password hidden, for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # not a URL SQLAlchemy parses (a port that is no number)
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)  # still no password shown


def open_storage(url: str, heartbeat: int = TUNE_HEARTBEAT, existing: bool = False) -> RDBStorage:
    """Connect to (and if needed initialise) a study database; one clear TuneError on any fault.

    `existing`: only read studies, so an SQLite file that is not there is an error, not a new database.
    """
    from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError

    sqlite_file = _sqlite_file(url)
    if sqlite_file == "":
        # Each connection would get a database of its own: the heartbeat thread's has no tables, and the
        # study is gone when the command ends.
        raise TuneError(f"{url}: an in-memory database holds no study; give sqlite:///path.db or a PostgreSQL URL.")
    if sqlite_file:
        database = Path(sqlite_file)
        if existing and not database.is_file():
            raise TuneError(f"no study database at {database} (`digits tune` makes one; pass --storage with its URL).")
        try:
            database.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # a file on the way was said as "File exists"
            why = "a file is where a folder must be" if isinstance(err, FileExistsError) else err.strerror or err
            raise TuneError(f"{database.parent}: cannot hold the study database ({why}).") from None
    engine_kwargs: dict[str, object] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {
            "connect_timeout": CONNECT_TIMEOUT,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT * 1000}",
        }
    elif url.startswith("sqlite"):
        # Workers sharing one SQLite file wait for each other's writes instead of failing.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna's terms
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat,
                    grace_period=2 * heartbeat,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                )
        except (ArgumentError, NoSuchModuleError, ValueError) as err:  # ValueError: a port or option not parsed
            raise TuneError(
                f"{_shown(url)} is not a storage URL Optuna can use ({err}); "
                "give sqlite:///path.db or postgresql://user:password@host/database."
            ) from None
        except ImportError as err:  # Optuna's wrapper of the driver's ModuleNotFoundError
            missing = getattr(err.__cause__, "name", None) or "its database driver"
            raise TuneError(
                f"{_shown(url)} needs the Python package {missing!r}: {install_hint('tune')} "
                "for PostgreSQL, or that driver."
            ) from None
        except RuntimeError as err:  # Optuna's word for tables an older or newer Optuna set up
            raise TuneError(f"cannot use the study storage {_shown(url)}: {_reason(err)}") from None
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:
            # Workers started together race to create the tables and stamp their version: the loser retries.
            if attempt < 2 and (isinstance(err, IntegrityError) or "already exists" in str(err)):
                time.sleep(1)
                continue
            raise TuneError(f"cannot open the study storage {_shown(url)}: {_reason(err)}") from None
    raise AssertionError("unreachable")


def _ours(study: optuna.Study, new: bool = False) -> optuna.Study:
    """`study`, when it is one `digits tune` makes (one objective, maximized; labelled with its preset unless
    `new`); else a `TuneError`: a study made otherwise would be minimized, or fail in a way of its own."""
    if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise TuneError(
            f"study {study.study_name!r} was not made by `digits tune` (it does not maximize one value); "
            "choose another --study."
        )
    if not new and "preset" not in study.user_attrs:
        raise TuneError(f"study {study.study_name!r} was not made by `digits tune` (it names no preset).")
    return study


def _sqlite_file(url: str) -> str | None:
    """The file an SQLite URL names (its query left out: ?timeout=5); "" for an in-memory database (`sqlite://`,
    `sqlite+pysqlite:///:memory:`, mode=memory); None for any other URL, or one that does not parse."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None  # not a URL at all: said so by open_storage
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    in_memory = database == ":memory:" or "mode=memory" in database or parsed.query.get("mode") == "memory"
    return "" if in_memory else database


def _reason(err: BaseException) -> str:
    """The first line of what the database driver said."""
    return str(getattr(err, "orig", None) or err).strip().splitlines()[0]


def study_attrs(preset: str, dataset: str, train_limit: int | None) -> dict:
    return {"preset": preset, "dataset": dataset, "train_limit": train_limit}


def open_study(storage: RDBStorage, name: str, attrs: dict | None = None) -> optuna.Study:
    """Load a study (attrs None) or create/join one that tunes exactly `attrs`."""
    # Our own line per trial replaces Optuna's log; its warning on a failed trial carries a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    from sqlalchemy.exc import SQLAlchemyError

    try:
        if attrs is None:
            try:
                return _ours(optuna.load_study(study_name=name, storage=storage))
            except KeyError:
                names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
                known = ", ".join(repr(n[:60]) for n in names[:20]) + (
                    f" and {len(names) - 20} more" if len(names) > 20 else ""
                )
                raise TuneError(f"no study named {name!r} in this storage (studies: {known or 'none'}).") from None
        with warnings.catch_warnings():  # multivariate TPE is "experimental" in Optuna's terms
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                direction="maximize",
                load_if_exists=True,
                # Unseeded: workers must not all draw the same trials. Multivariate TPE
                # models how learning rate, batch size and epochs work together.
                sampler=optuna.samplers.TPESampler(n_startup_trials=8, multivariate=True),
                pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
            )
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:  # a read-only or damaged database
        raise TuneError(f"the study storage failed: {_reason(err.__cause__ or err)}") from None
    stored = _ours(study, new=True).user_attrs
    if any(key in stored and stored[key] != value for key, value in attrs.items()):
        theirs = ", ".join(f"{k} {stored.get(k)}" for k in attrs)
        raise TuneError(
            f"study {name!r} tunes {theirs}, not {', '.join(f'{k} {v}' for k, v in attrs.items())}; "
            "choose another --study."
        )
    # A new study (or one another worker is still labelling, one key at a time) gets what it lacks.
    for key, value in attrs.items():
        if key not in stored:
            study.set_user_attr(key, value)
    return study


def run_study(
    preset: str,
    trials: int,
    *,
    storage: str,
    study_name: str,
    timeout: float | None = None,
    max_epochs: int = TUNE_MAX_EPOCHS,
    dataset: str = DEFAULT_DATASET,
    data_dir=None,
    train_limit: int | None = None,
    seed: int = 0,
    heartbeat: int = TUNE_HEARTBEAT,
    progress: bool = False,
    log=print,
) -> optuna.Study:
    """Run `trials` trials of the study (creating it if new); return the study."""
    # The one check of the preset: a bad one fails here, before the storage is opened.
    base = TrainConfig.from_preset(preset, {}, dataset, seed, train_limit)
    if not base.validation_split:
        raise TuneError(
            f"preset {preset!r} holds out no validation images, and tuning scores validation accuracy "
            "(the test set is never used): tune another preset."
        )
    if trials < 0 or not 1 <= max_epochs <= MAX_EPOCHS:
        raise TuneError(f"--trials must be at least 0 and --max-epochs from 1 to {MAX_EPOCHS:,}.")
    # Checked here, not in the first trial: by then the study would exist, labelled with this limit, and hold a
    # failed trial, so that the same command with a good limit was refused as another study's.
    # (A preset that adds pictures of its own, as `reader` does, is checked by its trials: they may be enough.)
    count = training_count(train_limit or 0, base.validation_split)
    if train_limit and not adds_pictures(base) and count < max(BATCH_SIZES):
        raise TuneError(
            f"--train-limit {train_limit} leaves {count} training images, fewer than the largest batch a trial "
            f"may draw ({max(BATCH_SIZES)}); raise --train-limit."
        )
    study = open_study(open_storage(storage, heartbeat), study_name, study_attrs(preset, dataset, train_limit))
    if trials == 0:
        return study
    objective = Objective(base, data_dir, max_epochs)
    bar = TrialProgress(progress, trials, log)
    with bar.progress:
        try:
            study.optimize(objective, n_trials=trials, timeout=timeout, callbacks=[bar], gc_after_trial=True)
        except _TrialStopped as stopped:  # Optuna has recorded the trial as failed: the signal goes on
            raise stopped.signal from None
        except optuna.exceptions.StorageInternalError as err:  # the database went read-only, full, or away
            raise TuneError(f"the study storage failed: {_reason(err.__cause__ or err)}") from None
    return study


class _TrialStopped(Exception):
    """A signal stopped a trial. Optuna records a trial that raises an `Exception` as failed, but leaves
    one that raises another `BaseException` (our `Interrupted`) as running for ever: the signal travels
    through Optuna in this, and `tune` raises it again."""

    def __init__(self, signal: Interrupted):
        super().__init__(str(signal))
        self.signal = signal


class Objective:
    """Train one suggested configuration on the training split; return its validation accuracy."""

    def __init__(self, base: TrainConfig, data_dir, max_epochs: int, data=None):
        from digits.train.dataset import add_reader_data, split_data
        from digits.train.extra_data import load_dataset as load

        self.base, self.max_epochs = base, max_epochs
        (x, y), _test_is_never_used = data or load(base.dataset, data_dir)
        self.split = add_reader_data(split_data(x, y, base.validation_split, base.train_limit), base, data_dir=data_dir)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, trial: optuna.Trial) -> float:
        import tempfile

        from digits.runs import RunDir
        from digits.train.checkpoint import new_state
        from digits.train.loop import fit
        from digits.train.run import set_up

        config = replace(self.base, **search_space(trial, self.base, self.max_epochs))
        trial.set_user_attr("worker", self.worker)
        trainer = set_up(config, self.split)

        def report(epoch: int, logs: dict) -> None:
            trial.report(logs["val_accuracy"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        with tempfile.TemporaryDirectory(prefix="digits-trial-") as scratch:  # fit's per-epoch checkpoints
            try:
                state = fit(trainer, self.split, RunDir(scratch), new_state(), progress=False, on_epoch=report)
            except Interrupted as stop:
                raise _TrialStopped(stop) from None
        history = state["history"]
        trial.set_user_attr("train_seconds", round(state["train_seconds"], 1))
        trial.set_user_attr("train_accuracy", history["accuracy"][-1])
        trial.set_user_attr("val_accuracy_history", history["val_accuracy"])
        return kept_val_accuracy(history, config)


def best_config(storage: str, study_name: str) -> tuple[dict, optuna.trial.FrozenTrial]:
    """The study's attrs (preset, dataset, train_limit) and its best complete trial."""
    study = open_study(open_storage(storage, existing=True), study_name)
    try:
        trial = study.best_trial
    except ValueError:
        raise TuneError(f"study {study_name!r} has no complete trial yet.") from None
    return dict(study.user_attrs), trial
