"""Tests for digits.train.metrics: metrics and the overfitting verdict, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from digits.data import DATASETS
from digits.train.metrics import classification_metrics, overfitting
from helpers import healthy_history, overfitting_history

CLASS_NAMES = {name: list(spec.class_names) for name, spec in DATASETS.items()}


# ---------------------------------------------------------------------------
# classification_metrics
# ---------------------------------------------------------------------------

# Three classes, eight samples. By hand:
#   confusion (rows true, cols pred):  a: [2, 1, 0]  b: [0, 2, 1]  c: [1, 0, 1]
#   a: precision 2/3, recall 2/3, f1 2/3,  support 3
#   b: precision 2/3, recall 2/3, f1 2/3,  support 3
#   c: precision 1/2, recall 1/2, f1 1/2,  support 2
#   accuracy 5/8, macro F1 (2/3 + 2/3 + 1/2) / 3 = 11/18
Y_TRUE = np.array([0, 0, 0, 1, 1, 1, 2, 2])
Y_PRED = np.array([0, 0, 1, 1, 1, 2, 2, 0])


def test_metrics_match_hand_computed_example():
    m = classification_metrics(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["macro_f1"] == pytest.approx(11 / 18)
    expected = {"a": (2 / 3, 2 / 3, 3), "b": (2 / 3, 2 / 3, 3), "c": (1 / 2, 1 / 2, 2)}
    for name, (precision, recall, support) in expected.items():
        got = m["per_class"][name]
        assert got["precision"] == pytest.approx(precision)
        assert got["recall"] == pytest.approx(recall)
        assert got["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
        assert got["support"] == support
    # Plain Python types, so the result can go straight into json.dump.
    assert type(m["accuracy"]) is float and type(m["confusion_matrix"][0][0]) is int
    assert type(m["per_class"]["a"]["support"]) is int


def test_metrics_asymmetric_precision_recall():
    # Class 0 predicted 4 times, right twice: precision 1/2; occurs 2 times: recall 1.
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 0])
    m = classification_metrics(y_true, y_pred, ["x", "y"])
    assert m["per_class"]["x"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["x"]["recall"] == pytest.approx(1.0)
    assert m["per_class"]["x"]["f1"] == pytest.approx(2 / 3)


def test_metrics_zero_division_is_zero_not_nan(recwarn):
    # Class 2 is never predicted and never occurs; class 1 is never predicted.
    y_true = np.array([0, 1, 1])
    y_pred = np.array([0, 0, 0])
    m = classification_metrics(y_true, y_pred, ["0", "1", "2"])
    for name in ("1", "2"):
        assert m["per_class"][name]["precision"] == 0.0
        assert m["per_class"][name]["f1"] == 0.0
    assert m["per_class"]["1"]["recall"] == 0.0
    assert m["per_class"]["2"]["recall"] == 0.0
    assert m["per_class"]["2"]["support"] == 0
    assert not any(math.isnan(v) for c in m["per_class"].values() for v in c.values())
    # Class 0: precision 1/3, recall 1, f1 1/2; macro over all 3 classes.
    assert m["macro_f1"] == pytest.approx(0.5 / 3)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_metrics_perfect_and_empty():
    m = classification_metrics(np.arange(10), np.arange(10), CLASS_NAMES["mnist"])
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0
    assert np.array_equal(np.array(m["confusion_matrix"]), np.eye(10, dtype=int))
    empty = classification_metrics(np.array([], int), np.array([], int), ["a", "b"])
    assert empty["accuracy"] == 0.0 and empty["confusion_matrix"] == [[0, 0], [0, 0]]


def test_metrics_reject_bad_labels():
    with pytest.raises(ValueError):
        classification_metrics(np.array([0, 3]), np.array([0, 1]), ["a", "b"])
    with pytest.raises(ValueError):
        classification_metrics(np.array([0, 1]), np.array([0]), ["a", "b"])


def test_class_names():
    assert CLASS_NAMES["mnist"] == [str(d) for d in range(10)]
    assert len(CLASS_NAMES["fashion-mnist"]) == 10
    assert CLASS_NAMES["fashion-mnist"][0] == "T-shirt/top"
    assert CLASS_NAMES["fashion-mnist"][9] == "Ankle boot"


# ---------------------------------------------------------------------------
# overfitting
# ---------------------------------------------------------------------------


def test_overfitting_detected():
    result = overfitting(overfitting_history())
    assert result["overfits"] is True
    assert result["best_epoch"] == 6
    assert result["train_val_gap"]["loss"] == pytest.approx(0.135 - 0.01)
    assert result["train_val_gap"]["accuracy"] == pytest.approx(0.999 - 0.975)
    assert set(result["gap_at_best"]) == {"loss", "accuracy"}
    verdict = result["verdict"]
    assert verdict.startswith("Overfits: validation loss bottomed out at epoch 6 and rose 35 % by epoch 25")
    assert "training loss kept falling" in verdict


def test_overfitting_by_accuracy_gap_alone():
    history = healthy_history()
    history["accuracy"][-1] = 0.999  # 1.7 points above validation
    result = overfitting(history)
    assert result["overfits"] is True
    assert result["verdict"].startswith("Overfits: training accuracy ends at 99.9 %")


def test_healthy_run_does_not_overfit():
    result = overfitting(healthy_history())
    assert result["overfits"] is False
    assert result["best_epoch"] == 10
    assert result["gap_at_best"] == result["train_val_gap"]
    assert result["verdict"].startswith("No sign of overfitting")


def test_a_run_that_never_learnt_is_said_so():
    """A learning rate of 10: every curve flat at a random guess, which is no sign of overfitting either."""
    flat = {"loss": [2.31] * 5, "accuracy": [0.1135] * 5, "val_loss": [2.30] * 5, "val_accuracy": [0.1135] * 5}
    result = overfitting(flat)
    assert result["overfits"] is False
    assert result["verdict"].startswith("Did not learn: training accuracy ends at 11.3 %, near a random guess")


def test_small_wobble_is_not_overfitting():
    # Validation loss 5 % above its minimum at the end: within tolerance.
    history = healthy_history()
    history["val_loss"][-1] = history["val_loss"][-2] * 1.05
    result = overfitting(history)
    assert result["overfits"] is False
    assert result["best_epoch"] == 9
    assert "5 % above its minimum" in result["verdict"]


def test_overfitting_without_validation():
    history = {k: v for k, v in healthy_history().items() if not k.startswith("val_")}
    result = overfitting(history)
    assert result["best_epoch"] is None
    assert result["overfits"] is False
    assert "val_loss" in result["verdict"]


def test_overfitting_monitor_accuracy_picks_the_maximum():
    history = healthy_history()
    history["val_accuracy"][4] = 0.99
    assert overfitting(history, monitor="val_accuracy")["best_epoch"] == 5
