"""Metrics that describe a training run: per-class scores, the confusion matrix, overfitting.

Plain NumPy, no TensorFlow and no matplotlib, so a run's numbers can be rebuilt from its folder.
The best-epoch rule lives here (`best_epoch`), and training, tuning and the report all use it.
"""

from __future__ import annotations

import math

import numpy as np

# A validation loss this far above its minimum at the last epoch counts as
# having turned upwards, not as epoch-to-epoch noise.
LOSS_RISE_TOLERANCE = 0.10
# Training accuracy this far above validation accuracy (as a fraction) at the
# last epoch counts as memorising the training set.
ACCURACY_GAP_TOLERANCE = 0.01
# Training accuracy ending below this never learnt: ten classes guessed at random score 10 % (a learning
# rate of 10 ended at 11 %, and the verdict said "no sign of overfitting").
NOT_LEARNT = 0.2


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


def lower_is_better(value: float, monitor: str) -> float:
    """`monitor`'s value turned into a score where lower is better: an accuracy is negated."""
    return -value if "accuracy" in monitor else value


def best_epoch(history: dict[str, list[float]], monitor: str) -> int | None:
    """The best epoch (1-based) by `monitor`: lowest loss or highest accuracy, the first on ties.

    The one best-epoch rule: training keeps this epoch's weights under early stopping, tuning
    scores it, and the report marks it on the curves. None without the `monitor` curve.
    """
    values = history.get(monitor) or []
    if not values:
        return None
    scores = [lower_is_better(value, monitor) for value in values]
    return scores.index(min(scores)) + 1


def overfitting(history: dict[str, list[float]], monitor: str = "val_loss") -> dict:
    """Judge from the learning curves whether a run overfits.

    The best epoch (1-based) is the one where `monitor` is best: lowest for
    a loss, highest for an accuracy. The run overfits when the validation loss
    ends more than 10 % above its minimum after bottoming out before the last
    epoch, or when training accuracy ends more than one point above validation
    accuracy. A run whose training accuracy ends near a random guess did not
    learn, and the verdict says so. Without the `monitor` curve nothing can
    be judged and `best_epoch` is None.
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

    best_index = (best_epoch(history, monitor) or 1) - 1
    last_index = len(values) - 1

    loss_min_epoch, loss_rise = _loss_rise(history.get("val_loss") or [])
    gap_last = _gap(history, last_index)
    loss_turned_up = loss_rise > LOSS_RISE_TOLERANCE
    accuracy_split = gap_last["accuracy"] is not None and gap_last["accuracy"] > ACCURACY_GAP_TOLERANCE

    trained = history.get("accuracy") or []
    if trained and trained[-1] < NOT_LEARNT:
        verdict = (
            f"Did not learn: training accuracy ends at {trained[-1]:.1%}, near a random guess; the loss may have "
            "diverged (try a lower --learning-rate)."
        )
    elif loss_turned_up:
        assert loss_min_epoch is not None  # a loss that rose had a lowest epoch
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


def _overfit_by_loss(history: dict[str, list[float]], min_epoch: int, rise: float, accuracy_split: bool) -> str:
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
