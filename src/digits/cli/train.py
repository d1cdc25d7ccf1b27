"""The commands of training and its runs: train, evaluate, ensemble, export, show, runs, compare (tune: `cli.tune`).

Every command that needs TensorFlow, matplotlib or Optuna checks its extra first (one line and exit 2 when
it is missing) and imports them inside the command, so that this module loads without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from digits.cli.options import LATEST, RUNS, DataDirOpt, DatasetName, PresetName, RunArg, png_name, require
from digits.cli.tables import print_table
from digits.cli.terminal import echo, error, fail, percent, shown, waiting
from digits.cli.tune import check_study_name, tuned_config
from digits.data import DEFAULT_DATASET, class_names
from digits.presets import DEFAULT_PRESET


def train(
    ctx: typer.Context,
    preset: Annotated[
        PresetName | None, typer.Option(help=f"Training preset (see digits/presets.py; default {DEFAULT_PRESET}).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the preset's batch size.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Override the preset's learning rate.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same weights.")] = 0,
    seeds: Annotated[
        int, typer.Option(min=1, help="Train this many seeds (seed, seed+1, ...) and report mean ± std.")
    ] = 1,
    dataset: Annotated[DatasetName, typer.Option(help="Dataset to train on.")] = DEFAULT_DATASET,
    data_dir: DataDirOpt = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run folders go.")] = RUNS,
    name: Annotated[str | None, typer.Option(help="Run folder name (default: preset-dataset-seed-time).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted run folder.")] = None,
    train_limit: Annotated[int | None, typer.Option(help="Use only the first N training images.")] = None,
    from_study: Annotated[
        str | None, typer.Option(help="Train the best configuration of this `digits tune` study.")
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="The study's database URL (default: sqlite in --runs-dir).")
    ] = None,
) -> None:
    """Train a preset; writes runs/<name>/ with model, ONNX, history, plots and metrics (needs the `train` extra)."""
    require("train", "train", *(["tune"] if from_study else []))
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    from digits.config import MAX_SEED, TrainConfig
    from digits.train.extra_data import load_dataset as load
    from digits.train.plots import Plotter
    from digits.train.timing import phase, save

    overrides = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate}
    if resume:
        # A resumed run goes on with the settings in its config.json: any other option the user gave (even one
        # equal to its default) would be ignored, so it is refused. Only the data's folder still counts.
        clashing = [
            "--" + name.replace("_", "-")
            for name in ctx.params
            if name not in ("resume", "data_dir") and _given(ctx, name)
        ]
        if clashing:
            raise fail(f"--resume goes on with the run's own settings (its config.json); drop {', '.join(clashing)}.")
    if from_study:
        check_study_name("--from-study", from_study, names_a_folder=False)
        if preset:
            raise typer.BadParameter("--preset and --from-study exclude each other: the study names its preset.")
        asked = dataset
        preset, dataset, train_limit, tuned = tuned_config(from_study, storage, runs_dir, train_limit)
        if _given(ctx, "dataset") and asked != dataset:
            raise typer.BadParameter(
                f"--dataset {asked} and --from-study exclude each other: study {from_study!r} tuned on {dataset}."
            )
        overrides = tuned | {key: value for key, value in overrides.items() if value is not None}
    # The one check of the preset and its overrides: a bad value fails before TensorFlow loads.
    config = (
        None if resume else TrainConfig.from_preset(preset or DEFAULT_PRESET, overrides, dataset, seed, train_limit)
    )
    if seed + seeds - 1 > MAX_SEED:  # the last seed, checked now rather than after the others have trained
        raise typer.BadParameter(f"--seed {seed} with --seeds {seeds} goes past the largest seed, {MAX_SEED:,}.")

    # Read and verify the data while TensorFlow imports: both take about a second. The first run's
    # plotting process starts now too: its Python and matplotlib load on the core the import leaves idle.
    def timed_load():
        with phase("data"):
            return load(dataset, data_dir)

    with Plotter() as plotter:
        with ThreadPoolExecutor(1) as pool, waiting("Loading TensorFlow and the data..."):
            loading = None if resume else pool.submit(timed_load)
            with phase("import TensorFlow"):
                from digits.train.run import train_config

            data = loading.result() if loading else None
        results = []
        for s in range(seed, seed + seeds):
            run_dir, metrics = train_config(
                config if config is None or s == seed else replace(config, seed=s),
                runs_dir=runs_dir,
                name=f"{name}-s{s}" if name and seeds > 1 else name,
                resume=resume,
                data_dir=data_dir,
                log=echo,
                data=data,
                plotter=plotter if s == seed else None,
            )
            results.append(metrics["test_accuracy"])
            _summarize(run_dir, metrics)
    if seeds > 1:
        import statistics

        spread = statistics.stdev(results)
        echo(
            f"{seeds} seeds: test accuracy mean {statistics.mean(results):.4f} ± {spread:.4f}, "
            f"median {statistics.median(results):.4f}"
        )
    save()


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave option `name` (typed, or from the environment) rather than took its default.
    By name: Typer vendors its own copy of Click, whose ParameterSource is not click's."""
    return getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")


def _summarize(run_dir: Path, metrics: dict) -> None:
    seconds = metrics.get("train_seconds")
    echo(
        f"{shown(run_dir)}: test accuracy {metrics['test_accuracy']:.4f}"
        + (f" ({read:.4f} as the reader reads)" if (read := metrics.get("test_accuracy_as_read")) is not None else "")
        + f", test loss {metrics['test_loss']:.4f}"
        + (f", trained in {seconds:.1f} s" if seconds is not None else "")
    )
    echo(f"  {metrics['overfitting']['verdict']}")
    from digits.runs import RunDir

    curves = "curves.png, " if RunDir(run_dir).curves_path.exists() else ""
    echo(f"  report: {shown(run_dir)}/{curves}confusion.png, mistakes.png, metrics.json")


def evaluate(run: RunArg = LATEST, data_dir: DataDirOpt = None) -> None:
    """Evaluate a run on the test set and rewrite its report (needs the `train` extra)."""
    require("evaluate", "train")
    from digits.train.evaluate import evaluate_run

    _summarize(run, evaluate_run(run, data_dir))


def ensemble(
    run_dirs: Annotated[list[Path], typer.Argument(help="Finished run folders to average (two or more).")],
    out: Annotated[Path, typer.Option(help="The new run folder the ensemble is written to.")],
    data_dir: DataDirOpt = None,
) -> None:
    """Average runs' probabilities into one ONNX model in a new run folder, and evaluate it (needs `train`)."""
    require("ensemble", "train")
    from digits.train.ensemble import build

    _summarize(*build(run_dirs, out, data_dir))


def export(
    run: RunArg = LATEST,
    fmt: Annotated[
        Literal["onnx", "onnx-int8", "tflite"],
        typer.Option(
            "--format",
            help="onnx: model.onnx from model.keras; onnx-int8: model.int8.onnx, 8-bit activations and 7-bit weights; "
            "tflite: model.tflite. The last two are checked on the test set of the run's dataset.",
        ),
    ] = "onnx",
    data_dir: DataDirOpt = None,
) -> None:
    """Write a run's model for a runtime: ONNX (what digits runs), int8 ONNX, or TensorFlow Lite (needs `train`)."""
    require("export", "train")
    if fmt == "onnx":
        from digits.train.export import export_run

        echo(shown(export_run(run)))
        return
    from digits.train.runtimes import export_format

    echo(export_format(run, fmt, data_dir).summary())


def show(
    index: Annotated[
        int, typer.Option(min=0, help="Index into the test set (default 1: the article's X_test[1], a 2).")
    ] = 1,
    model: Annotated[Path, typer.Option("--model", "-m", help="Run folder or .onnx file of a trained run.")] = LATEST,
    out: Annotated[Path | None, typer.Option(help="PNG to write (default: show-<index>.png).")] = None,
    dataset: Annotated[
        DatasetName | None,
        typer.Option(help="Dataset the test image comes from (default: the run's own, or mnist for an .onnx file)."),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Draw test image N with its true and predicted label (needs the `train` extra, for matplotlib)."""
    require("show", "train")
    out = out or Path(f"show-{index}.png")
    png_name(out, "--out")
    from digits.runs import RunDir

    run = RunDir(model if model.is_dir() else model.parent)  # a run folder, or a model.onnx inside one
    trained_on = run.read_config().dataset if (run.path / RunDir.CONFIG).is_file() else None
    if dataset is not None and trained_on is not None and class_names(dataset) != class_names(trained_on):
        # Its outputs would be named after classes it never learnt (a digit model's 2 called a pullover).
        raise fail(
            f"{run.path} was trained on {trained_on}, whose classes are not {dataset}'s; "
            f"drop --dataset, or show a run trained on {dataset}."
        )
    dataset = dataset or trained_on or DEFAULT_DATASET
    from digits.read.model import Recognizer
    from digits.train import plots
    from digits.train.extra_data import load_test_set as load_test

    x_test, y_test = load_test(dataset, data_dir)
    if not 0 <= index < len(x_test):
        raise typer.BadParameter(f"must be between 0 and {len(x_test) - 1}.", param_hint="'--index'")
    recognizer = Recognizer(model)
    probabilities = recognizer.predict_proba(x_test[index])[0]
    names = class_names(dataset, recognizer.num_classes)
    predicted = int(probabilities.argmax())
    confidence = percent(float(probabilities[predicted]))
    title = f"X_test[{index}]: true {names[y_test[index]]}, predicted {names[predicted]} ({confidence})"
    plots.plot_digit(x_test[index], title, out)
    echo(f"{title} -> {shown(out)}")


def runs(runs_dir: Annotated[Path, typer.Argument(help="Folder of runs.")] = RUNS) -> None:
    """List run folders with their status and test accuracy; a broken one is marked, and the command exits 2."""
    from digits.run_table import list_runs

    if runs_dir.exists() and not runs_dir.is_dir():
        raise fail(f"{runs_dir} is a file, not a folder of runs; pass the folder that `digits train` wrote runs in.")
    if not runs_dir.exists() and runs_dir != RUNS:  # the default folder is missing before the first training
        raise fail(f"{runs_dir}: no such folder of runs (`digits train` writes them in ./runs).")
    rows = list_runs(runs_dir)
    if not rows:
        echo(f"no runs in {runs_dir}")
        return
    print_table(
        rows,
        [
            ("name", "run"),
            ("preset", "preset"),
            ("dataset", "dataset"),
            ("seed", "seed"),
            ("status", "status"),
            ("epochs", "epochs"),
            ("test_accuracy", "test acc"),
            ("train_seconds", "train s"),
        ],
    )
    if _report_broken(rows):
        raise typer.Exit(2)


def compare(run_dirs: Annotated[list[Path], typer.Argument(help="Run folders to compare.")]) -> None:
    """A table of runs side by side; a broken or unfinished run is marked, and the command exits 2."""
    from digits.run_table import run_row
    from digits.runs import RunDir

    rows = [run_row(RunDir(run_dir)) for run_dir in run_dirs]
    print_table(
        rows,
        [
            ("name", "run"),
            ("status", "status"),
            ("preset", "preset"),
            ("dataset", "dataset"),
            ("seed", "seed"),
            ("test_accuracy", "test acc"),
            ("test_loss", "test loss"),
            ("parameters", "params"),
            ("train_seconds", "train s"),
            ("best_epoch", "best epoch"),
            ("gap", "train-val acc gap"),
        ],
    )
    incomplete = [row for row in rows if row.get("test_accuracy") is None and "problem" not in row]
    for row in incomplete:
        advice = RunDir(row["path"]).unfinished_advice(row["status"])
        error(f"{row['path']}: {row['status']}, so it has no test results to compare ({advice}).")
    if _report_broken(rows) or incomplete:
        raise typer.Exit(2)


def _report_broken(rows: list[dict]) -> bool:
    """One line on stderr per broken run under the table; whether there was any."""
    broken = [row for row in rows if "problem" in row]
    for row in broken:
        error(row["problem"])
    return bool(broken)
