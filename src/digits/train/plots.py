"""Plots that describe a training run (curves, confusion matrix, mistakes, one digit) and a tuning study.

Everything here is plain NumPy and matplotlib, so a report can be rebuilt
from a saved run folder without TensorFlow. matplotlib is imported inside the
plotting functions, which keeps `import digits.train.plots` cheap.

Plots are drawn on a `Figure` attached to the Agg canvas directly rather
than through `pyplot`: that needs no display, holds no global figure list to
leak from, and leaves the backend of an interactive session (a notebook that
imports this module) untouched. Every file is written through `atomic_path`,
so a reader never sees half a PNG.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digits.atomic import atomic_path, writable_target
from digits.spec import SHAPE, SIZE

_DPI = 100

# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------


class Plotter:
    """A second Python process that imports matplotlib at once and draws the plots sent to it later.

    `digits train` draws its report there, beside the ONNX export and the
    evaluation, instead of after them: the command ends sooner on any
    machine with a second core. It is a plain `python -c` child fed pickled
    calls on its stdin, so it inherits no TensorFlow threads and never
    re-imports the caller's script (as multiprocessing's spawn would). It
    ignores Ctrl-C, which the command handles; `close()` waits for it and
    raises the first plot's error, if any, as a `WriteError`.
    """

    def __init__(self):
        import subprocess
        import sys

        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from digits.train.plots import _plot_requests; _plot_requests()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

    def submit(self, plot, *args) -> None:
        import pickle

        stdin = self.process.stdin
        assert stdin is not None  # opened with PIPE
        try:
            pickle.dump((plot.__name__, args), stdin)
            stdin.flush()
        except BrokenPipeError:
            pass  # the child has stopped; close() says why

    def close(self) -> None:
        from digits.errors import WriteError

        if self.process.returncode is not None:
            return
        error, stderr = (out.decode(errors="replace").strip() for out in self.process.communicate())
        if self.process.returncode != 0:
            raise WriteError(error or f"drawing the plots failed ({(stderr.splitlines() or ['no message'])[-1]}).")

    def __enter__(self) -> Plotter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        elif self.process.poll() is None:  # the command failed: its plots are not wanted
            self.process.kill()
            self.process.wait()


def _plot_requests() -> None:
    """The Plotter's child: draw each (plot name, args) read from stdin; a DigitsError ends it with exit 2."""
    import pickle
    import signal
    import sys

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    from matplotlib.backends import backend_agg  # noqa: F401  (imported while the parent is still busy)

    from digits.errors import DigitsError

    plots = {f.__name__: f for f in (plot_curves, plot_confusion, plot_mistakes, plot_digit)}
    try:
        while True:
            try:
                name, args = pickle.load(sys.stdin.buffer)
            except EOFError:
                return
            plots[name](*args)
    except DigitsError as err:
        print(err, flush=True)
        sys.exit(2)


def _new_figure(width: float, height: float):
    """A figure drawn by the Agg canvas: no display, no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike, follow_symlinks: bool = False) -> None:
    """Write `fig` as a PNG at `path`, atomically; a symlink there is replaced unless `follow_symlinks` (runs.py)."""
    with atomic_path(path, follow_symlinks) as tmp:
        # The temporary name ends in .tmp.png; say the format outright anyway.
        fig.savefig(tmp, format="png", dpi=_DPI)


def _image_range(images: np.ndarray) -> tuple[float, float]:
    """Display range for grey images: 0..255 for bytes, 0..1 for scaled floats."""
    if images.dtype == np.uint8 or (images.size and float(np.max(images)) > 1.0):
        return 0.0, 255.0
    return 0.0, 1.0


def _as_images(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) from (N, 28, 28), (N, 28, 28, 1) or (N, 784)."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim == 2 and images.shape[1] == SIZE * SIZE:
        images = images.reshape(-1, *SHAPE)
    return images


def plot_curves(
    history: dict[str, list[float]],
    path: str | os.PathLike,
    best_epoch: int | None = None,
    title: str = "",
) -> None:
    """Loss and accuracy learning curves, training and validation, side by side.

    Epochs are numbered from 1, as Keras prints them. `best_epoch`, when
    given, is marked with a dashed vertical line in both panels.
    """
    fig = _new_figure(10, 4)
    panels = fig.subplots(1, 2)
    for ax, metric in zip(panels, ("loss", "accuracy"), strict=False):
        for key, label, style in ((metric, "training", "-o"), (f"val_{metric}", "validation", "-s")):
            values = history.get(key) or []
            if values:
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, values, style, markersize=3, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="tab:red", linestyle="--", linewidth=1, label=f"best epoch ({best_epoch})")
        ax.set_title(metric.capitalize())
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        # Epochs are whole numbers; don't let the axis print 2.5.
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no {metric} recorded", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(confusion: list[list[int]] | np.ndarray, class_names: list[str], path: str | os.PathLike) -> None:
    """Confusion matrix as a heatmap, every cell annotated with its count."""
    cm = np.asarray(confusion, dtype=np.int64)
    n = len(class_names)
    # Grow the figure with the number of classes so counts stay legible.
    size = max(5.0, 0.6 * n + 2.5)
    fig = _new_figure(size + 1, size)
    ax = fig.subplots()
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)

    ax.set_xticks(range(n), labels=class_names)
    ax.set_yticks(range(n), labels=class_names)
    if max((len(name) for name in class_names), default=0) > 2:
        # Long names (Fashion-MNIST) would overlap on the x axis.
        for label in ax.get_xticklabels():
            label.set(rotation=45, ha="right", rotation_mode="anchor")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")

    # White text on dark cells, black on light ones.
    threshold = cm.max() / 2 if cm.size else 0
    fontsize = 9 if n <= 10 else 7
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            colour = "white" if cm[i, j] > threshold else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=colour, fontsize=fontsize)
    fig.tight_layout()
    _save(fig, path)


def plot_mistakes(
    images: np.ndarray,
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    class_names: list[str],
    path: str | os.PathLike,
    limit: int = 36,
) -> None:
    """A grid of up to `limit` misclassified images, each titled 'true X / pred Y'.

    `images`, `y_true` and `y_pred` are aligned; the first `limit` mistakes in
    that order are shown. With no mistakes, a single panel says so.
    """
    images = _as_images(images)
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    wrong = np.flatnonzero(y_true != y_pred)[: max(limit, 0)]

    if wrong.size == 0:
        fig = _new_figure(3, 3)
        ax = fig.subplots()
        ax.text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=14)
        ax.set_axis_off()
        _save(fig, path)
        return

    # One mosaic image and one axes: 36 separate subplots with tight_layout
    # cost seconds, and this plot is drawn at the end of every run.
    cols = min(6, wrong.size)
    rows = math.ceil(wrong.size / cols)
    pad, label = 4, 12  # pixels around each digit, and above it for its caption
    cell_h, cell_w = SIZE + pad + label, SIZE + pad
    long_names = max(len(name) for name in class_names) > 2
    if long_names:
        cell_w += SIZE  # room for "true Ankle boot / pred Sneaker"
    vmin, vmax = _image_range(images)
    mosaic = np.full((rows * cell_h, cols * cell_w), vmin, dtype=np.float32)
    fig = _new_figure(cols * cell_w / 22, rows * cell_h / 22)
    ax = fig.add_axes((0, 0, 1, 1))
    for k, i in enumerate(wrong):
        top, left = (k // cols) * cell_h + label, (k % cols) * cell_w + (cell_w - SIZE) // 2
        mosaic[top : top + SIZE, left : left + SIZE] = images[i]
        ax.text(
            (k % cols + 0.5) * cell_w,
            top - 2,
            f"true {class_names[y_true[i]]} / pred {class_names[y_pred[i]]}",
            ha="center",
            va="bottom",
            color="white",
            fontsize=7 if long_names else 8,
        )
    ax.imshow(mosaic, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    _save(fig, path)


def plot_digit(image: np.ndarray, title: str, path: str | os.PathLike) -> None:
    """One 28x28 image in grey with a title, e.g. for `digits show --index N`."""
    image = np.asarray(image)
    image = image.reshape(28, 28) if image.size == 28 * 28 else np.squeeze(image)
    fig = _new_figure(4, 4.3)
    ax = fig.subplots()
    vmin, vmax = _image_range(image)
    ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax)
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()
    fig.tight_layout()
    _save(fig, path, follow_symlinks=True)  # `--out` names the user's own file


# An optimisation history and parameter importances need two finished trials to compare.
STUDY_PLOTS_FROM = 2


def save_study_plots(study: Any, out_dir: Path, best: int = 20) -> list[Path]:
    """Optuna's optimization history, parameter importances and the best trials' parallel coordinates, as PNG."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as vis

    from digits.train.study_report import best_trials
    from digits.train.tune import TuneError

    complete = best_trials(study)
    if len(complete) < STUDY_PLOTS_FROM:
        raise TuneError(
            f"study {study.study_name!r} has {len(complete)} complete trial(s); plots need at least {STUDY_PLOTS_FROM}."
        )
    top = optuna.create_study(direction="maximize")  # in memory: the parallel coordinates of the best only
    top.add_trials(complete[:best])
    plots = {
        "optimization-history.png": lambda: vis.plot_optimization_history(study),
        "param-importances.png": lambda: vis.plot_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
        ),
        "parallel-coordinates.png": lambda: vis.plot_parallel_coordinate(top),
    }
    if out_dir.exists() and not out_dir.is_dir():
        raise TuneError(f"{out_dir} is a file; --out names the folder the plots go to.")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in plots:  # each checked before the first is replaced: a set of plots is never half new
        writable_target(out_dir / name)
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A parameter that took one value among the best trials is a flat axis: matplotlib says so, and nothing more.
        warnings.filterwarnings("ignore", "Attempting to set identical low and high ylims", UserWarning)
        for name, plot in plots.items():
            axes: Any = plot()  # one Axes, or an array of them
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(10, 6)
            figure.tight_layout()
            with atomic_path(out_dir / name) as tmp:
                figure.savefig(tmp, format="png", dpi=100)
            plt.close(figure)
            written.append(out_dir / name)
    return written
