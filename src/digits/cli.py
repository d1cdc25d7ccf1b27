"""The `digits` command: a thin shell over the library.

Heavy modules (TensorFlow, matplotlib, SciPy) are imported inside the commands
that need them, so `digits predict` starts in a fraction of a second.
Every known fault ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Handwritten digit recognition: train on MNIST with Keras, predict with ONNX Runtime.",
)

RunArg = Annotated[Path, typer.Argument(help="Run folder (default: runs/latest).")]
ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="Run folder or .onnx file.")]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Folder with the IDX files (else $DIGITS_DATA_DIR, cache, download).")]
LATEST = Path("runs/latest")


def _out(text: str = "") -> None:
    print(text, flush=True)


@app.command()
def train(
    preset: Annotated[Optional[str], typer.Option(help="seed, fast, mlp, mlp-aug, cnn or tiny (default: fast).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override the preset's epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Override the preset's batch size.")] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Override the preset's learning rate.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same weights.")] = 0,
    seeds: Annotated[int, typer.Option(help="Train this many seeds (seed, seed+1, ...) and report mean ± std.")] = 1,
    dataset: Annotated[str, typer.Option(help="mnist or fashion-mnist.")] = "mnist",
    data_dir: DataDirOpt = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("runs"),
    name: Annotated[Optional[str], typer.Option(help="Run folder name (default: preset-dataset-seed-time).")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue an interrupted run folder.")] = None,
    train_limit: Annotated[Optional[int], typer.Option(help="Use only the first N training images.")] = None,
    from_study: Annotated[Optional[str], typer.Option(help="Train the best configuration of this `digits tune` study.")] = None,
    storage: Annotated[Optional[str], typer.Option(help="The study's database URL (default: sqlite in --runs-dir).")] = None,
) -> None:
    """Train a preset; writes runs/<name>/ with model, ONNX, history, plots and metrics."""
    from concurrent.futures import ThreadPoolExecutor

    from digits.data import load

    if seeds < 1:
        raise typer.BadParameter("--seeds must be at least 1.")
    overrides = {}
    if from_study:
        if preset:
            raise typer.BadParameter("--preset and --from-study exclude each other: the study names its preset.")
        preset, dataset, train_limit, overrides = _tuned(from_study, storage, runs_dir, train_limit)
    # Read and verify the data while TensorFlow imports: both take about a second.
    with ThreadPoolExecutor(1) as pool:
        loading = None if resume else pool.submit(load, dataset, data_dir)
        from digits.presets import DEFAULT_PRESET
        from digits.train import train as train_run

        data = loading.result() if loading else None
    flags = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate}
    overrides |= {key: value for key, value in flags.items() if value is not None}
    results = []
    for s in range(seed, seed + seeds):
        run_dir = train_run(
            preset or DEFAULT_PRESET, runs_dir=runs_dir, name=f"{name}-s{s}" if name and seeds > 1 else name, resume=resume,
            dataset=dataset, data_dir=data_dir, seed=s, train_limit=train_limit, overrides=overrides, log=_out,
            data=data,
        )
        metrics = json.loads((run_dir / "metrics.json").read_text())
        results.append(metrics["test_accuracy"])
        _summarize(run_dir, metrics)
    if seeds > 1:
        spread = statistics.stdev(results)
        _out(f"{seeds} seeds: test accuracy mean {statistics.mean(results):.4f} ± {spread:.4f}, "
             f"median {statistics.median(results):.4f}")


def _tuned(study: str, storage: str | None, runs_dir: Path, train_limit: int | None):
    """preset, dataset, train_limit and config overrides of a study's best trial."""
    tune = _import_tune()
    try:
        attrs, trial = tune.best_config(storage or tune.default_storage(runs_dir), study)
    except tune.TuneError as err:
        raise _fail(str(err))
    overrides = tune.overrides_from_params(attrs["preset"], trial.params)
    overrides["tuned_from"] = {"study": study, "trial": trial.number, "val_accuracy": trial.value}
    _out(f"study {study}: best trial {trial.number} (val acc {trial.value:.4f}) on preset {attrs['preset']}")
    return attrs["preset"], attrs["dataset"], train_limit if train_limit is not None else attrs["train_limit"], overrides


def _import_tune():
    try:
        from digits import tune
    except ImportError as err:
        raise _fail(f"tuning needs Optuna ({err.name} is missing): pip install 'digits[tune]'.")
    return tune


@app.command()
def tune(
    preset: Annotated[str, typer.Option(help="The preset whose open settings are searched.")] = "seed",
    trials: Annotated[int, typer.Option(help="Trials this worker runs; running again continues the study.")] = 20,
    timeout: Annotated[Optional[float], typer.Option(help="Stop starting trials after this many seconds.")] = None,
    storage: Annotated[Optional[str], typer.Option(help="SQLAlchemy URL of the study database, e.g. postgresql://user:pw@host/db (default: sqlite file runs/tune.db).")] = None,
    study: Annotated[Optional[str], typer.Option(help="Study name (default: <preset>-<dataset>).")] = None,
    show: Annotated[Optional[str], typer.Option(help="Print this study's best trials and save its plots; trains nothing.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for --show's PNGs (default: <runs-dir>/tune-<study>).")] = None,
    max_epochs: Annotated[int, typer.Option(help="Most epochs one trial may train.")] = 30,
    dataset: Annotated[str, typer.Option(help="mnist or fashion-mnist.")] = "mnist",
    data_dir: DataDirOpt = None,
    runs_dir: Annotated[Path, typer.Option(help="Where the default study database goes.")] = Path("runs"),
    train_limit: Annotated[Optional[int], typer.Option(help="Use only the first N training images.")] = None,
    seed: Annotated[int, typer.Option(help="The seed every trial trains with.")] = 0,
    heartbeat: Annotated[int, typer.Option(min=1, help="Seconds between a worker's heartbeats; silent for twice this = dead.")] = 30,
) -> None:
    """Search the preset's hyper-parameters with Optuna, maximizing validation accuracy (one or many workers)."""
    tune = _import_tune()
    storage = storage or tune.default_storage(runs_dir)
    try:
        if show:
            found = tune.open_study(tune.open_storage(storage), show)
            _out(tune.describe(found))
            for path in tune.save_plots(found, out or runs_dir / f"tune-{show}"):
                _out(f"  plot: {path}")
            return
        found = tune.run_study(
            preset, trials, storage=storage, study_name=study or f"{preset}-{dataset}", timeout=timeout,
            max_epochs=max_epochs, dataset=dataset, train_limit=train_limit, seed=seed, heartbeat=heartbeat,
            data_dir=data_dir, progress=sys.stderr.isatty(), log=_out,
        )
    except tune.TuneError as err:
        raise _fail(str(err))
    _out(tune.describe(found))


def _summarize(run_dir: Path, metrics: dict) -> None:
    seconds = metrics.get("train_seconds")
    _out(f"{run_dir}: test accuracy {metrics['test_accuracy']:.4f}, test loss {metrics['test_loss']:.4f}"
         + (f", trained in {seconds:.1f} s" if seconds is not None else ""))
    _out(f"  {metrics['overfitting']['verdict']}")
    _out(f"  report: {run_dir}/curves.png, confusion.png, mistakes.png, metrics.json")


@app.command()
def evaluate(run: RunArg = LATEST, data_dir: DataDirOpt = None) -> None:
    """Evaluate a run on the test set and rewrite its report."""
    from digits.evaluate import evaluate_run

    _summarize(run, evaluate_run(run, data_dir))


@app.command()
def export(run: RunArg = LATEST) -> None:
    """Write model.onnx next to a run's model.keras."""
    from digits.export import export_run

    _out(str(export_run(run)))


@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Image files: photos, scans, drawings.")],
    model: ModelOpt = LATEST,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file.")] = False,
    explain: Annotated[Optional[Path], typer.Option(help="Save the preprocessing steps as a PNG (one image only).")] = None,
    threshold: Annotated[float, typer.Option(help="Below this confidence the answer is 'unsure'.")] = 0.5,
) -> None:
    """Recognize one digit per image."""
    from digits.inference import Recognizer
    from digits.preprocess import prepare, save_explanation

    if explain and len(images) != 1:
        raise typer.BadParameter("--explain takes exactly one image.")
    recognizer = Recognizer(model)
    failures: list[Path] = []
    for path, image in _readable_images(images, failures):
        prepared = prepare(image)
        if explain:
            save_explanation(prepared, explain)
        result = {"file": str(path), "digit": None, "confidence": 0.0, "top3": [], "status": "no digit found"}
        if prepared.has_ink:
            probabilities = recognizer.predict_proba(prepared.image)[0]
            top = probabilities.argsort()[::-1][:3]
            result |= {
                "digit": int(top[0]),
                "confidence": round(float(probabilities[top[0]]), 4),
                "top3": [{"digit": int(d), "confidence": round(float(probabilities[d]), 4)} for d in top],
                "status": "ok" if probabilities[top[0]] >= threshold else "unsure",
            }
        _out(json.dumps(result) if as_json else _describe(result))
    if failures:
        raise typer.Exit(2)


def _readable_images(paths: list[Path], failures: list[Path]):
    """Yield (path, image) for each file that opens as an image; report the others in one line each.

    The rest of the batch is still read; the command exits 2 at the end if `failures` is not empty.
    """
    from digits.preprocess import ImageError, load_image

    for path in paths:
        try:
            image = load_image(path)
        except ImageError as err:
            _error(str(err))
            failures.append(path)
            continue
        yield path, image


def _describe(result: dict) -> str:
    if result["digit"] is None:
        return f"{result['file']}: no digit found"
    text = f"{result['file']}: {result['digit']} ({result['confidence']:.1%})"
    if result["status"] == "unsure":
        others = ", ".join(f"{t['digit']} {t['confidence']:.0%}" for t in result["top3"])
        text = f"{result['file']}: unsure ({others})"
    return text


@app.command()
def read(
    images: Annotated[list[Path], typer.Argument(help="Images of a number written on one line.")],
    model: ModelOpt = LATEST,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file.")] = False,
) -> None:
    """Read a whole number (digits on one line, left to right)."""
    from digits.inference import Recognizer

    recognizer = Recognizer(model)
    failures: list[Path] = []
    for path, image in _readable_images(images, failures):
        digits_found = recognizer.read_line(image)
        text = "".join(str(d["digit"]) for d in digits_found)
        if as_json:
            _out(json.dumps({"file": str(path), "text": text, "digits": digits_found}))
        elif not digits_found:
            _out(f"{path}: no digits found")
        else:
            confidences = " ".join(f"{d['digit']}:{d['confidence']:.0%}" for d in digits_found)
            _out(f"{path}: {text}  ({confidences})")
    if failures:
        raise typer.Exit(2)


@app.command()
def serve(
    model: ModelOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Worker processes (default: one per CPU core).")] = None,
) -> None:
    """Serve the HTTP API, the Open Inference Protocol and a page to draw digits on (needs the `serve` extra)."""
    from importlib.util import find_spec

    if any(find_spec(name) is None for name in ("fastapi", "uvicorn", "python_multipart", "httptools", "prometheus_client")):
        raise _fail("digits serve needs FastAPI, Uvicorn, httptools, python-multipart and prometheus_client: "
                    "pip install 'digits[serve]'.")
    import tempfile

    from digits import http_server
    from digits.inference import Recognizer
    from digits.serve import MODEL_VARIABLE

    # Load the model once here: a bad one is a one-line error before anything listens.
    path = Recognizer(model).path
    workers = workers or os.cpu_count() or 1
    try:
        listener = http_server.bind(host, port)
    except http_server.BindError as err:
        raise _fail(str(err))
    os.environ[MODEL_VARIABLE] = str(path)
    with tempfile.TemporaryDirectory(prefix="digits-metrics-") as metrics:
        if workers > 1:  # each worker writes its counts here; /metrics adds them up
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics
        _out(f"digits: serving {path} on http://{host}:{port} with {workers} worker{'s' * (workers > 1)}")
        http_server.run("digits.serve:app_from_environment", listener, workers)


@app.command()
def show(
    index: Annotated[int, typer.Option(help="Index into the test set (the article's X_test[1] is 1).")] = 1,
    model: ModelOpt = LATEST,
    out: Annotated[Optional[Path], typer.Option(help="PNG to write (default: show-<index>.png).")] = None,
    dataset: Annotated[str, typer.Option(help="mnist or fashion-mnist.")] = "mnist",
    data_dir: DataDirOpt = None,
) -> None:
    """Draw test image N with its true and predicted label."""
    from digits import report
    from digits.data import load_test
    from digits.inference import Recognizer

    x_test, y_test = load_test(dataset, data_dir)
    if not 0 <= index < len(x_test):
        raise typer.BadParameter(f"--index must be between 0 and {len(x_test) - 1}.")
    probabilities = Recognizer(model).predict_proba(x_test[index])[0]
    names = report.CLASS_NAMES[dataset]
    predicted = int(probabilities.argmax())
    title = f"X_test[{index}]: true {names[y_test[index]]}, predicted {names[predicted]} ({probabilities[predicted]:.1%})"
    out = out or Path(f"show-{index}.png")
    report.plot_digit(x_test[index], title, out)
    _out(f"{title} -> {out}")


@app.command()
def runs(runs_dir: Annotated[Path, typer.Argument(help="Folder of runs.")] = Path("runs")) -> None:
    """List run folders with their status and test accuracy."""
    from digits.runs import list_runs

    rows = list_runs(runs_dir)
    if not rows:
        _out(f"no runs in {runs_dir}")
        return
    _table(rows, [("name", "run"), ("preset", "preset"), ("dataset", "dataset"), ("seed", "seed"),
                  ("status", "status"), ("epochs", "epochs"), ("test_accuracy", "test acc"), ("train_seconds", "train s")])


@app.command()
def compare(run_dirs: Annotated[list[Path], typer.Argument(help="Run folders to compare.")]) -> None:
    """A table of runs side by side."""
    from digits.runs import read_config

    rows = []
    for run_dir in run_dirs:
        config = read_config(run_dir)
        try:
            metrics = json.loads((run_dir / "metrics.json").read_text())
        except (OSError, ValueError):
            raise _fail(f"{run_dir} has no readable metrics.json (has it finished?).")
        rows.append({
            "name": run_dir.name, "preset": config["preset"], "dataset": config["dataset"], "seed": config["seed"],
            "test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"],
            "parameters": metrics.get("parameters"), "train_seconds": metrics.get("train_seconds"),
            "best_epoch": metrics["overfitting"].get("best_epoch"),
            "gap": metrics["overfitting"].get("train_val_gap", {}).get("accuracy"),
        })
    _table(rows, [("name", "run"), ("preset", "preset"), ("dataset", "dataset"), ("seed", "seed"),
                  ("test_accuracy", "test acc"), ("test_loss", "test loss"), ("parameters", "params"),
                  ("train_seconds", "train s"), ("best_epoch", "best epoch"), ("gap", "train-val acc gap")])


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for _, header in columns:
        table.add_column(header)
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for key, _ in columns))
    Console().print(table)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:.1f}"
    return str(value)


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def _fail(message: str) -> typer.Exit:
    _error(message)
    return typer.Exit(2)


def main() -> None:
    """Entry point: our errors become one line and exit code 2, signals 130/143."""
    from digits.atomic import WriteError
    from digits.data import DataError
    from digits.inference import ModelError
    from digits.runs import Interrupted, TrainingError

    warnings.filterwarnings("ignore", module=r"(keras|tensorflow|tf2onnx|onnx)")
    known: tuple[type[BaseException], ...] = (DataError, ModelError, TrainingError, WriteError)
    try:
        from digits.preprocess import ImageError

        known += (ImageError,)
    except ImportError:
        pass
    try:
        app()
    except known as err:
        _error(str(err))
        sys.exit(2)
    except Interrupted as stop:
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as err:
        _error(f"{err.filename or ''}: {err.strerror or err}".lstrip(": "))
        sys.exit(2)
    except Exception as err:
        if os.environ.get("DIGITS_DEBUG"):
            raise
        _error(f"unexpected {type(err).__name__}: {err} (set DIGITS_DEBUG=1 for the traceback)")
        sys.exit(1)
