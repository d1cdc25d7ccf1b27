"""Metrics, plots and tables that describe a training run.

Everything here is plain NumPy and matplotlib, so a report can be rebuilt
from a saved run folder without TensorFlow. matplotlib is imported inside the
plotting functions, which keeps `import digits.report` cheap for callers that
only need the numbers.

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

import numpy as np

from digits.atomic import atomic_path
from digits.extra_data import DIGIT_SETS

CLASS_NAMES: dict[str, list[str]] = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    **{name: [str(d) for d in range(10)] for name in DIGIT_SETS},
}

# A validation loss this far above its minimum at the last epoch counts as
# having turned upwards, not as epoch-to-epoch noise.
LOSS_RISE_TOLERANCE = 0.10
# Training accuracy this far above validation accuracy (as a fraction) at the
# last epoch counts as memorising the training set.
ACCURACY_GAP_TOLERANCE = 0.01

_DPI = 100


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise division that gives 0.0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true, predicted) label pairs: rows are true, columns predicted."""
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} holds labels outside 0..{num_classes - 1}")
    # One flat bincount over (true, pred) pairs is much faster than a loop.
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1, confusion matrix and macro F1.

    `y_true` and `y_pred` are integer class indices into `class_names`.
    A class that is never predicted has precision 0.0 and one that never
    occurs has recall 0.0, instead of a division-by-zero warning and NaN.
    Every class in `class_names` counts towards the macro F1, present or not.
    """
    num_classes = len(class_names)
    cm = confusion_matrix(y_true, y_pred, num_classes)

    true_positives = np.diag(cm)
    predicted = cm.sum(axis=0)  # column sums: how often each class was predicted
    support = cm.sum(axis=1)  # row sums: how often each class really occurs
    precision = _safe_divide(true_positives, predicted)
    recall = _safe_divide(true_positives, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)

    total = int(cm.sum())
    accuracy = float(true_positives.sum() / total) if total else 0.0
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "accuracy": accuracy,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "macro_f1": float(f1.mean()) if num_classes else 0.0,
    }


def _gap(history: dict[str, list[float]], epoch_index: int) -> dict[str, float | None]:
    """Train/validation gaps at one epoch, each oriented so that positive is worse.

    Loss gap is val_loss - loss; accuracy gap is accuracy - val_accuracy.
    A gap whose curves are missing from the history is None.
    """

    def diff(a: str, b: str) -> float | None:
        if len(history.get(a) or []) > epoch_index and len(history.get(b) or []) > epoch_index:
            return float(history[a][epoch_index] - history[b][epoch_index])
        return None

    return {"loss": diff("val_loss", "loss"), "accuracy": diff("accuracy", "val_accuracy")}


def overfitting(history: dict[str, list[float]], monitor: str = "val_loss") -> dict:
    """Judge from the learning curves whether a run overfits.

    The best epoch (1-based) is the one where `monitor` is best: lowest for
    a loss, highest for an accuracy. The run overfits when the validation loss
    ends more than 10 % above its minimum after bottoming out before the last
    epoch, or when training accuracy ends more than one point above validation
    accuracy. Without the `monitor` curve nothing can be judged and
    `best_epoch` is None.
    """
    values = list(history.get(monitor) or [])
    if not values:
        return {
            "best_epoch": None,
            "train_val_gap": {"loss": None, "accuracy": None},
            "gap_at_best": {"loss": None, "accuracy": None},
            "overfits": False,
            "verdict": f"Cannot judge overfitting: the history has no {monitor!r} curve "
            "(train with validation data to get one).",
        }

    maximise = "acc" in monitor
    best_index = int(np.argmax(values) if maximise else np.argmin(values))
    last_index = len(values) - 1

    loss_min_epoch, loss_rise = _loss_rise(history.get("val_loss") or [])
    gap_last = _gap(history, last_index)
    loss_turned_up = loss_rise > LOSS_RISE_TOLERANCE
    accuracy_split = gap_last["accuracy"] is not None and gap_last["accuracy"] > ACCURACY_GAP_TOLERANCE

    if loss_turned_up:
        verdict = _overfit_by_loss(history, loss_min_epoch, loss_rise, accuracy_split)
    elif accuracy_split:
        verdict = f"Overfits: {_accuracy_clause(history)}, a gap of more than one point."
    else:
        verdict = f"No sign of overfitting: the best epoch is {best_index + 1} of {last_index + 1}"
        if loss_rise >= 0.005:  # a rise within tolerance is still worth a mention
            verdict += f", validation loss ended {loss_rise:.0%} above its minimum"
        if _accuracy_clause(history):
            verdict += f" and {_accuracy_clause(history)}"
        verdict += "."

    return {
        "best_epoch": best_index + 1,
        "train_val_gap": gap_last,
        "gap_at_best": _gap(history, best_index),
        "overfits": bool(loss_turned_up or accuracy_split),
        "verdict": _percent_spacing(verdict),
    }


def _loss_rise(val_loss: list[float]) -> tuple[int | None, float]:
    """The epoch (1-based) of the lowest validation loss and how far, as a
    fraction of that minimum, the loss had climbed from it by the last epoch."""
    if not val_loss:
        return None, 0.0
    min_index = int(np.argmin(val_loss))
    lowest, final = val_loss[min_index], val_loss[-1]
    if final <= lowest:
        return min_index + 1, 0.0
    return min_index + 1, (final - lowest) / abs(lowest) if lowest else math.inf


def _accuracy_clause(history: dict[str, list[float]]) -> str:
    """'training accuracy ends at 99.5% against 98.1% on validation', or ''."""
    accuracy, val_accuracy = history.get("accuracy") or [], history.get("val_accuracy") or []
    if not (accuracy and val_accuracy):
        return ""
    return f"training accuracy ends at {accuracy[-1]:.1%} against {val_accuracy[-1]:.1%} on validation"


def _overfit_by_loss(
    history: dict[str, list[float]], min_epoch: int, rise: float, accuracy_split: bool
) -> str:
    """The verdict for a validation loss that bottomed out and climbed again."""
    last_epoch = len(history["val_loss"])
    loss = history.get("loss") or []
    rise_text = "sharply" if math.isinf(rise) else f"{rise:.0%}"
    verdict = f"Overfits: validation loss bottomed out at epoch {min_epoch} and rose {rise_text} by epoch {last_epoch}"
    # Only claim the training loss kept falling when it actually did.
    if len(loss) >= last_epoch and loss[last_epoch - 1] < loss[min_epoch - 1]:
        verdict += " while training loss kept falling"
    if accuracy_split:
        verdict += f"; {_accuracy_clause(history)}"
    return verdict + "."


def _percent_spacing(text: str) -> str:
    """Write percentages as '35 %' (with a space), the house style."""
    return text.replace("%", " %")


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

        package_root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen([sys.executable, "-c", "from digits.report import _plot_requests; _plot_requests()"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def submit(self, plot, *args) -> None:
        import pickle

        try:
            pickle.dump((plot.__name__, args), self.process.stdin)
            self.process.stdin.flush()
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


def _save(fig, path: str | os.PathLike) -> None:
    """Write `fig` as a PNG at `path`, atomically."""
    with atomic_path(path) as tmp:
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
    if images.ndim == 2 and images.shape[1] == 28 * 28:
        images = images.reshape(-1, 28, 28)
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
    for ax, metric in zip(panels, ("loss", "accuracy")):
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


def plot_confusion(
    confusion: list[list[int]] | np.ndarray, class_names: list[str], path: str | os.PathLike
) -> None:
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
    cell_h, cell_w = 28 + pad + label, 28 + pad
    long_names = max(len(name) for name in class_names) > 2
    if long_names:
        cell_w += 28  # room for "true Ankle boot / pred Sneaker"
    vmin, vmax = _image_range(images)
    mosaic = np.full((rows * cell_h, cols * cell_w), vmin, dtype=np.float32)
    fig = _new_figure(cols * cell_w / 22, rows * cell_h / 22)
    ax = fig.add_axes((0, 0, 1, 1))
    for k, i in enumerate(wrong):
        top, left = (k // cols) * cell_h + label, (k % cols) * cell_w + (cell_w - 28) // 2
        mosaic[top : top + 28, left : left + 28] = images[i]
        ax.text((k % cols + 0.5) * cell_w, top - 2, f"true {class_names[y_true[i]]} / pred {class_names[y_pred[i]]}",
                ha="center", va="bottom", color="white", fontsize=7 if long_names else 8)
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
    _save(fig, path)


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------


def _format_cell(value: object) -> str:
    """A table cell: floats rounded to what a reader can use, None blank."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        magnitude = abs(value)
        if value == 0:
            return "0"
        if magnitude >= 1000:  # no separators, to match how ints print
            return f"{value:.0f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        if magnitude >= 1e-3:
            return f"{value:.4f}"
        return f"{value:.2e}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value)}"
    # A pipe would end the cell early; a newline would end the row.
    return str(value).replace("|", "\\|").replace("\n", " ")


def _is_numeric(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def results_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A GitHub-flavoured markdown table of `rows`.

    `columns` lists (key, header) pairs in display order; a key missing from a
    row leaves its cell blank. Numeric columns are right-aligned.
    """
    headers = [_format_cell(header) for _, header in columns]
    cells = [[_format_cell(row.get(key)) for key, _ in columns] for row in rows]
    numeric = [
        any(row.get(key) is not None for row in rows)
        and all(_is_numeric(row.get(key)) for row in rows if row.get(key) is not None)
        for key, _ in columns
    ]
    # Pad columns so the raw markdown reads as a table too.
    widths = [max([len(headers[c]), 3] + [len(r[c]) for r in cells]) for c in range(len(columns))]

    def line(values: list[str]) -> str:
        padded = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join("-" * (w - 1) + ":" if num else "-" * w for w, num in zip(widths, numeric)) + " |"
    return "\n".join([line(headers), rule, *(line(r) for r in cells)]) + "\n"
