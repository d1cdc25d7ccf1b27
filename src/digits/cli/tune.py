"""`digits tune`, and what `digits train --from-study` takes from a study: its best trial's configuration.

Optuna is imported inside the commands (after its extra is checked), so that this module loads without it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer

from digits.cli.options import RUNS, DataDirOpt, DatasetName, PresetName, require
from digits.cli.terminal import echo, shown
from digits.config import TUNE_HEARTBEAT, TUNE_MAX_EPOCHS
from digits.data import DEFAULT_DATASET


def tuned_config(study: str, storage: str | None, runs_dir: Path, train_limit: int | None):
    """preset, dataset, train_limit and config overrides of a study's best trial."""
    tune = _import_tune()
    attrs, trial = tune.best_config(storage or tune.default_storage(runs_dir), study)
    overrides = tune.overrides_from_params(attrs["preset"], trial.params)
    overrides["tuned_from"] = {"study": study, "trial": trial.number, "val_accuracy": trial.value}
    echo(f"study {study}: best trial {trial.number} (val acc {trial.value:.4f}) on preset {attrs['preset']}")
    return (
        attrs["preset"],
        attrs["dataset"],
        train_limit if train_limit is not None else attrs["train_limit"],
        overrides,
    )


# Optuna's column for a study's name holds 512 characters; a name also names --show's folder of plots.
_LONGEST_STUDY_NAME = 200


def check_study_name(option: str, name: str | None, names_a_folder: bool = True) -> None:
    """A study's name prints on one line and fits Optuna's column; one that names --show's folder of plots (or
    a new study's) has no slash and no leading dot. A study made before names were checked is still read."""
    if name is None:
        return
    folder = names_a_folder and ("/" in name or name.startswith("."))
    if not name.isprintable() or len(name) > _LONGEST_STUDY_NAME or folder:
        raise typer.BadParameter(
            f"{option} {shown(name[:60])}{'...' if len(name) > 60 else ''}: a study's name is at most "
            f"{_LONGEST_STUDY_NAME} printable characters, without a slash or a leading dot."
        )


def _import_tune():
    require("tune", "tune", "train")
    from digits.train import tune

    return tune


def tune(
    preset: Annotated[PresetName, typer.Option(help="The preset whose open settings are searched.")] = "seed",
    trials: Annotated[
        int, typer.Option(min=0, help="Trials this worker runs; running again continues the study.")
    ] = 20,
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after this many seconds.")] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of the study database, e.g. postgresql://user:pw@host/db (default: sqlite file tune.db in --runs-dir)."
        ),
    ] = None,
    study: Annotated[str | None, typer.Option(help="Study name (default: <preset>-<dataset>).")] = None,
    show: Annotated[
        str | None, typer.Option(help="Print this study's best trials and save its plots; trains nothing.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for --show's PNGs (default: <runs-dir>/tune-<study>).")
    ] = None,
    max_epochs: Annotated[int, typer.Option(min=1, help="Most epochs one trial may train.")] = TUNE_MAX_EPOCHS,
    dataset: Annotated[DatasetName, typer.Option(help="Dataset to tune on.")] = DEFAULT_DATASET,
    data_dir: DataDirOpt = None,
    runs_dir: Annotated[Path, typer.Option(help="Where the default study database goes.")] = RUNS,
    train_limit: Annotated[int | None, typer.Option(help="Use only the first N training images.")] = None,
    seed: Annotated[int, typer.Option(help="The seed every trial trains with.")] = 0,
    heartbeat: Annotated[
        int, typer.Option(min=1, help="Seconds between a worker's heartbeats; silent for twice this = dead.")
    ] = TUNE_HEARTBEAT,
) -> None:
    """Search the preset's hyper-parameters with Optuna, maximizing validation accuracy, on one or many workers (needs the `tune` and `train` extras)."""
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise typer.BadParameter(f"--timeout is a number of seconds above 0, not {timeout}.")
    if study == "":
        raise typer.BadParameter("a study's name cannot be empty; leave --study out for <preset>-<dataset>.")
    if show == "":
        raise typer.BadParameter("--show needs a study's name (`digits tune --show <preset>-<dataset>`).")
    for option, name in (("--study", study), ("--show", show)):
        check_study_name(option, name)
    if storage == "":
        raise typer.BadParameter("--storage is empty; leave it out for the SQLite file in --runs-dir.")
    tune = _import_tune()
    from digits.train.study_report import best_trials, describe

    storage = storage or tune.default_storage(runs_dir)
    if show:
        from digits.train import plots

        found = tune.open_study(tune.open_storage(storage, existing=True), show)
        echo(describe(found))
        if len(best_trials(found)) < plots.STUDY_PLOTS_FROM:  # a study just made, or still on its first trial
            echo(f"  no plots yet: they need {plots.STUDY_PLOTS_FROM} complete trials.")
            return
        for path in plots.save_study_plots(found, out or runs_dir / f"tune-{show}"):
            echo(f"  plot: {path}")
        return
    found = tune.run_study(
        preset,
        trials,
        storage=storage,
        study_name=study or f"{preset}-{dataset}",
        timeout=timeout,
        max_epochs=max_epochs,
        dataset=dataset,
        train_limit=train_limit,
        seed=seed,
        heartbeat=heartbeat,
        data_dir=data_dir,
        progress=sys.stderr.isatty(),
        log=echo,
    )
    echo(describe(found))
