"""The `digits` command: a thin shell over the library.

Heavy modules (TensorFlow, matplotlib, SciPy) are imported inside the commands
that need them, so `digits predict` starts in a fraction of a second.
Every known fault ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Literal

import typer

from digits.cli.terminal import ensure_standard_streams, one_line, shown
from digits.config import DEFAULT_PRESET, PRESETS
from digits.data import DATASETS, DIGIT_SETS, class_names
from digits.errors import DigitsError, Interrupted

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Handwritten digit recognition: train on MNIST with Keras, predict with ONNX Runtime.",
)

RunArg = Annotated[Path, typer.Argument(help="Run folder (default: runs/latest).")]
ModelOpt = Annotated[
    Path | None, typer.Option("--model", "-m", help="Run folder or .onnx file (default: the model the package ships).")
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder with the dataset's files; for usps, semeion, cvl and dida also the data root holding their folders (else $DIGITS_DATA_DIR, cache, download).",
    ),
]
LATEST = Path("runs/latest")


def _fraction(value: float) -> float:
    if not 0 <= value <= 1:  # also refuses nan, for which every comparison is false
        raise typer.BadParameter(f"must be a number from 0 to 1, not {value}.")
    return value


ThresholdOpt = Annotated[
    float, typer.Option(callback=_fraction, help="Below this confidence the answer is 'unsure' (0 to 1).")
]
# Paths of pictures stay strings: Typer would turn "" into Path("."), the current folder.
ImagePaths = list[str]
# Choices Typer checks while parsing, before any command imports TensorFlow.
PresetName = Literal[tuple(PRESETS)]
DatasetName = Literal[tuple(DATASETS) + DIGIT_SETS]


def _out(text: str = "") -> None:
    print(text, flush=True)


@app.command()
def train(
    preset: Annotated[
        PresetName | None, typer.Option(help=f"Training preset (see digits/config.py; default {DEFAULT_PRESET}).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the preset's batch size.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Override the preset's learning rate.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same weights.")] = 0,
    seeds: Annotated[
        int, typer.Option(min=1, help="Train this many seeds (seed, seed+1, ...) and report mean ± std.")
    ] = 1,
    dataset: Annotated[DatasetName, typer.Option(help="Dataset to train on.")] = "mnist",
    data_dir: DataDirOpt = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("runs"),
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
    _require("train", "train", *(["tune"] if from_study else []))
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    from digits.config import TrainConfig
    from digits.train.extra_data import load_dataset as load
    from digits.train.plots import Plotter
    from digits.train.timing import phase, save

    overrides = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate}
    if from_study:
        if preset:
            raise typer.BadParameter("--preset and --from-study exclude each other: the study names its preset.")
        preset, dataset, train_limit, tuned = _tuned(from_study, storage, runs_dir, train_limit)
        overrides = tuned | {key: value for key, value in overrides.items() if value is not None}
    # The one check of the preset and its overrides: a bad value fails before TensorFlow loads.
    config = (
        None if resume else TrainConfig.from_preset(preset or DEFAULT_PRESET, overrides, dataset, seed, train_limit)
    )

    # Read and verify the data while TensorFlow imports: both take about a second. The first run's
    # plotting process starts now too: its Python and matplotlib load on the core the import leaves idle.
    def timed_load():
        with phase("data"):
            return load(dataset, data_dir)

    with Plotter() as plotter:
        with ThreadPoolExecutor(1) as pool:
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
                log=_out,
                data=data,
                plotter=plotter if s == seed else None,
            )
            results.append(metrics["test_accuracy"])
            _summarize(run_dir, metrics)
    if seeds > 1:
        import statistics

        spread = statistics.stdev(results)
        _out(
            f"{seeds} seeds: test accuracy mean {statistics.mean(results):.4f} ± {spread:.4f}, "
            f"median {statistics.median(results):.4f}"
        )
    save()


def _tuned(study: str, storage: str | None, runs_dir: Path, train_limit: int | None):
    """preset, dataset, train_limit and config overrides of a study's best trial."""
    tune = _import_tune()
    attrs, trial = tune.best_config(storage or tune.default_storage(runs_dir), study)
    overrides = tune.overrides_from_params(attrs["preset"], trial.params)
    overrides["tuned_from"] = {"study": study, "trial": trial.number, "val_accuracy": trial.value}
    _out(f"study {study}: best trial {trial.number} (val acc {trial.value:.4f}) on preset {attrs['preset']}")
    return (
        attrs["preset"],
        attrs["dataset"],
        train_limit if train_limit is not None else attrs["train_limit"],
        overrides,
    )


# What each extra brings, by the import name of a package it installs.
_EXTRAS = {
    "train": ("tensorflow", "keras", "tf2onnx", "onnx", "matplotlib"),
    "tune": ("optuna", "sqlalchemy"),
    "serve": ("fastapi", "uvicorn", "python_multipart", "httptools", "prometheus_client"),
}


def _require(command: str, *extras: str) -> None:
    """Refuse, in one line that says what to install, a command whose extra is not installed."""
    from importlib.util import find_spec

    missing = [extra for extra in extras if any(find_spec(name) is None for name in _EXTRAS[extra])]
    if missing:
        spec = ",".join(missing)
        raise _fail(
            f"digits {command} needs the {spec} extra{'s' if len(missing) > 1 else ''}: pip install 'digits[{spec}]'."
        )


def _import_tune():
    _require("tune", "tune", "train")
    from digits.train import tune

    return tune


@app.command()
def tune(
    preset: Annotated[PresetName, typer.Option(help="The preset whose open settings are searched.")] = "seed",
    trials: Annotated[
        int, typer.Option(min=0, help="Trials this worker runs; running again continues the study.")
    ] = 20,
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after this many seconds.")] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of the study database, e.g. postgresql://user:pw@host/db (default: sqlite file runs/tune.db)."
        ),
    ] = None,
    study: Annotated[str | None, typer.Option(help="Study name (default: <preset>-<dataset>).")] = None,
    show: Annotated[
        str | None, typer.Option(help="Print this study's best trials and save its plots; trains nothing.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for --show's PNGs (default: <runs-dir>/tune-<study>).")
    ] = None,
    max_epochs: Annotated[int, typer.Option(min=1, help="Most epochs one trial may train.")] = 30,
    dataset: Annotated[DatasetName, typer.Option(help="Dataset to tune on.")] = "mnist",
    data_dir: DataDirOpt = None,
    runs_dir: Annotated[Path, typer.Option(help="Where the default study database goes.")] = Path("runs"),
    train_limit: Annotated[int | None, typer.Option(help="Use only the first N training images.")] = None,
    seed: Annotated[int, typer.Option(help="The seed every trial trains with.")] = 0,
    heartbeat: Annotated[
        int, typer.Option(min=1, help="Seconds between a worker's heartbeats; silent for twice this = dead.")
    ] = 30,
) -> None:
    """Search the preset's hyper-parameters with Optuna, maximizing validation accuracy (one or many workers)."""
    tune = _import_tune()
    storage = storage or tune.default_storage(runs_dir)
    if show:
        found = tune.open_study(tune.open_storage(storage), show)
        _out(tune.describe(found))
        for path in tune.save_plots(found, out or runs_dir / f"tune-{show}"):
            _out(f"  plot: {path}")
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
        log=_out,
    )
    _out(tune.describe(found))


def _summarize(run_dir: Path, metrics: dict) -> None:
    seconds = metrics.get("train_seconds")
    _out(
        f"{run_dir}: test accuracy {metrics['test_accuracy']:.4f}, test loss {metrics['test_loss']:.4f}"
        + (f", trained in {seconds:.1f} s" if seconds is not None else "")
    )
    _out(f"  {metrics['overfitting']['verdict']}")
    _out(f"  report: {run_dir}/curves.png, confusion.png, mistakes.png, metrics.json")


@app.command()
def evaluate(run: RunArg = LATEST, data_dir: DataDirOpt = None) -> None:
    """Evaluate a run on the test set and rewrite its report (needs the `train` extra)."""
    _require("evaluate", "train")
    from digits.train.evaluate import evaluate_run

    _summarize(run, evaluate_run(run, data_dir))


@app.command()
def export(
    run: RunArg = LATEST,
    fmt: Annotated[
        Literal["onnx", "onnx-int8", "tflite"],
        typer.Option(
            "--format",
            help="onnx: model.onnx from model.keras; onnx-int8: model.int8.onnx, its weights in int8; "
            "tflite: model.tflite. The last two are checked on the MNIST test set.",
        ),
    ] = "onnx",
    data_dir: DataDirOpt = None,
) -> None:
    """Write a run's model for a runtime: ONNX (what digits runs), int8 ONNX, or TensorFlow Lite (needs `train`)."""
    _require("export", "train")
    if fmt == "onnx":
        from digits.train.export import export_run

        _out(str(export_run(run)))
        return
    from digits.train.runtimes import export_format

    _out(export_format(run, fmt, data_dir).summary())


# Many pictures at once (digits.cli.bulk): folders, globs, lists, an output file, workers, a Dask cluster.
RecursiveOpt = Annotated[
    bool, typer.Option("--recursive", "-r", help="Also read the pictures in sub-folders of folders given.")
]
OutOpt = Annotated[
    Path | None,
    typer.Option(help="Write one row per picture to this .csv, .jsonl or .parquet file; running again resumes."),
]
WorkersOpt = Annotated[
    int | None, typer.Option(min=1, help="Processes reading pictures (default: one per core; one for a few pictures).")
]
DaskOpt = Annotated[str | None, typer.Option(help="Read on this Dask cluster instead, e.g. tcp://scheduler:8786.")]
IMAGES_HELP = "Pictures: files, folders, globs ('scans/**/*.jpg'), @list.txt (one path a line), or - (paths on stdin)."


@app.command()
def predict(
    images: Annotated[ImagePaths, typer.Argument(help=IMAGES_HELP)],
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file.")] = False,
    explain: Annotated[
        Path | None, typer.Option(help="Save the preprocessing steps as a PNG (one image only).")
    ] = None,
    threshold: ThresholdOpt = 0.5,
    recursive: RecursiveOpt = False,
    out: OutOpt = None,
    workers: WorkersOpt = None,
    dask: DaskOpt = None,
) -> None:
    """Recognize one digit per image (exit code 2 if any picture could not be read)."""
    from digits.cli import bulk
    from digits.read.explain import save_steps

    if explain is None:
        return bulk.run("predict", images, model, as_json, threshold, recursive, out, workers, dask)
    for reader, path, image in _each_picture(images, model, threshold, explain):
        prepared = reader.prepare(image)
        bulk.show("predict", path, reader.answer(prepared).to_dict(), as_json)
        save_steps(prepared, explain)


def _each_picture(images: list[str], model: Path | None, threshold: float, explain: Path | None):
    """Check --explain, load the reader, then yield (reader, path, picture) for each picture that opens.

    A file that does not open is reported in one line and the rest are still
    read; the command then exits 2 at the end.
    """
    from digits.read.reader import Reader

    if explain and len(images) != 1:
        raise typer.BadParameter("--explain takes exactly one image.")
    if explain and explain.exists() and Path(images[0]).exists() and os.path.samefile(explain, images[0]):
        raise typer.BadParameter("--explain would overwrite the picture it explains; name another file.")
    if explain:
        from digits.atomic import writable_target

        writable_target(explain)  # a folder, device, FIFO or read-only file there fails now, before any work
    reader = Reader(model, threshold=threshold)
    failures: list[str] = []
    for path, image in _readable_images(images, failures):
        yield reader, path, image
    if failures:
        raise typer.Exit(2)


def _readable_images(paths: list[str], failures: list[str]):
    """Yield (path, image) for each file that opens as an image; report the others in one line each.

    The rest of the batch is still read; the command exits 2 at the end if `failures` is not empty.
    """
    from digits.read.load import ImageError, load_image

    for path in paths:
        try:
            image = load_image(path)
        except ImageError as err:
            _error(str(err))
            failures.append(path)
            continue
        yield path, image


@app.command()
def read(
    images: Annotated[ImagePaths, typer.Argument(help=IMAGES_HELP)],
    model: ModelOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per file: lines -> digits -> boxes.")
    ] = False,
    explain: Annotated[
        Path | None, typer.Option(help="Save the picture with the boxes found as a PNG (one image only).")
    ] = None,
    threshold: ThresholdOpt = 0.5,
    recursive: RecursiveOpt = False,
    out: OutOpt = None,
    workers: WorkersOpt = None,
    dask: DaskOpt = None,
) -> None:
    """Read the numbers in a picture: every line of digits, top to bottom, one number per line (exit code 2 if any picture could not be read)."""
    from digits.cli import bulk
    from digits.read.explain import save_boxes

    if explain is None:
        return bulk.run("read", images, model, as_json, threshold, recursive, out, workers, dask)
    for reader, path, image in _each_picture(images, model, threshold, explain):
        page = reader.read_page(image)
        bulk.show("read", path, page.to_dict(), as_json)
        save_boxes(image, page, explain)


@app.command()
def serve(
    model: ModelOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: one per CPU core).")] = None,
) -> None:
    """Serve the HTTP API, the Open Inference Protocol and a page to draw digits on (needs the `serve` extra)."""
    _require("serve", "serve")
    import tempfile

    from digits.read.model import Recognizer
    from digits.serve import server as http_server
    from digits.serve.app import MODEL_VARIABLE

    # Load the model once here: a bad one is a one-line error before anything listens.
    path = Recognizer(model).path
    workers = workers or os.cpu_count() or 1
    try:
        listener = http_server.bind(host, port)
    except http_server.BindError as err:
        raise _fail(str(err)) from None
    os.environ[MODEL_VARIABLE] = str(path)
    _out(f"digits: serving {path} on http://{host}:{port} with {workers} worker{'s' * (workers > 1)}")
    if workers == 1:  # counts stay in the process; uvicorn ends it by re-raising SIGTERM, past any cleanup
        http_server.run("digits.serve.app:app_from_environment", listener, workers)
        return
    with tempfile.TemporaryDirectory(prefix="digits-metrics-") as metrics:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics  # each worker writes its counts here; /metrics adds them up
        http_server.run("digits.serve.app:app_from_environment", listener, workers)


@app.command()
def show(
    index: Annotated[int, typer.Option(min=0, help="Index into the test set (the article's X_test[1] is 1).")] = 1,
    model: Annotated[Path, typer.Option("--model", "-m", help="Run folder or .onnx file of a trained run.")] = LATEST,
    out: Annotated[Path | None, typer.Option(help="PNG to write (default: show-<index>.png).")] = None,
    dataset: Annotated[DatasetName, typer.Option(help="Dataset the test image comes from.")] = "mnist",
    data_dir: DataDirOpt = None,
) -> None:
    """Draw test image N with its true and predicted label (needs the `train` extra, for matplotlib)."""
    _require("show", "train")
    from digits.read.model import Recognizer
    from digits.train import plots
    from digits.train.extra_data import load_test_set as load_test

    x_test, y_test = load_test(dataset, data_dir)
    if not 0 <= index < len(x_test):
        raise typer.BadParameter(f"must be between 0 and {len(x_test) - 1}.", param_hint="'--index'")
    probabilities = Recognizer(model).predict_proba(x_test[index])[0]
    names = class_names(dataset)
    predicted = int(probabilities.argmax())
    title = (
        f"X_test[{index}]: true {names[y_test[index]]}, predicted {names[predicted]} ({probabilities[predicted]:.1%})"
    )
    out = out or Path(f"show-{index}.png")
    plots.plot_digit(x_test[index], title, out)
    _out(f"{title} -> {out}")


@app.command()
def runs(runs_dir: Annotated[Path, typer.Argument(help="Folder of runs.")] = Path("runs")) -> None:
    """List run folders with their status and test accuracy; a broken one is marked, and the command exits 2."""
    from digits.runs import list_runs

    rows = list_runs(runs_dir)
    if not rows:
        _out(f"no runs in {runs_dir}")
        return
    _table(
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


@app.command()
def compare(run_dirs: Annotated[list[Path], typer.Argument(help="Run folders to compare.")]) -> None:
    """A table of runs side by side; a broken or unfinished run is marked, and the command exits 2."""
    from digits.runs import RunDir, run_row

    rows = [run_row(RunDir(run_dir)) for run_dir in run_dirs]
    _table(
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
        _error(
            f"{row['path']}: {row['status']}, so it has no test results to compare (finish it with "
            f"`digits train --resume {row['path']}`)."
        )
    if _report_broken(rows) or incomplete:
        raise typer.Exit(2)


def _report_broken(rows: list[dict]) -> bool:
    """One line on stderr per broken run under the table; whether there was any."""
    broken = [row for row in rows if "problem" in row]
    for row in broken:
        _error(row["problem"])
    return bool(broken)


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table()
    for _, header in columns:
        table.add_column(header)
    for row in rows:  # Text: a folder named "[red]" is a name, not markup
        table.add_row(*(Text(_cell(row.get(key))) for key, _ in columns))
    # Off a terminal (a pipe, a file) there is no width to fit: print whole values, never "fin…".
    Console(width=None if sys.stdout.isatty() else 10_000).print(table)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:.1f}"
    return shown(str(value))


def _error(message: str) -> None:
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)


def _fail(message: str) -> typer.Exit:
    _error(message)
    return typer.Exit(2)


def _usage_error(err) -> str:
    """Typer's usage error as one sentence (without the box, and without pydantic's "Value error, " prefix)."""
    message = err.format_message().replace("Value error, ", "")
    return message if message.endswith(".") else message + "."


def main() -> None:
    """Entry point: our errors and usage errors become one line and exit code 2, signals 130/143."""
    try:  # Typer 0.2x parses with its own copy of Click; older versions with Click itself.
        from typer._click.exceptions import NoArgsIsHelpError, UsageError
    except ImportError:
        from click.exceptions import NoArgsIsHelpError, UsageError

    warnings.filterwarnings("ignore", module=r"(keras|tensorflow|tf2onnx|onnx)")
    ensure_standard_streams()
    try:
        code = app(standalone_mode=False)
        code = code if isinstance(code, int) else 0
    except NoArgsIsHelpError as err:
        err.show()
        code = 2
    except UsageError as err:
        _error(_usage_error(err))
        code = 2
    except DigitsError as err:
        _error(str(err))
        code = 2
    except Interrupted as stop:
        code = stop.exit_code
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    except OSError as err:
        _error(f"{err.filename or ''}: {err.strerror or err}".lstrip(": "))
        code = 2
    except Exception as err:
        if os.environ.get("DIGITS_DEBUG"):
            raise
        _error(f"unexpected {type(err).__name__}: {err} (set DIGITS_DEBUG=1 for the traceback)")
        code = 1
    _exit(code)


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    if "tensorflow" in sys.modules:
        # TensorFlow's teardown at interpreter exit takes a second or more and
        # does nothing the command needs: every file is already written,
        # synced and renamed, and every child process waited for.
        import logging

        logging.shutdown()
        os._exit(code)
    sys.exit(code)
