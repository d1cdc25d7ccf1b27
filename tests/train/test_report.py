"""Tests for digits.train.report: metrics checked by hand, plots checked as PNG files."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from digits.train.report import (
    CLASS_NAMES,
    classification_metrics,
    overfitting,
    plot_confusion,
    plot_curves,
    plot_digit,
    plot_mistakes,
    results_table,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_size=(100, 100)):
    """`path` is a PNG that PIL can decode, and is the only file in its folder."""
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert width >= min_size[0] and height >= min_size[1]
    assert width <= 3000 and height <= 3000
    # atomic_path must not leave its .tmp.png behind.
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    return width, height


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


def overfitting_history(epochs=25, best=6):
    """Training loss keeps falling; validation loss bottoms out at `best` then rises."""
    loss = np.linspace(0.5, 0.01, epochs)
    val_loss = np.concatenate([np.linspace(0.5, 0.1, best), np.linspace(0.1, 0.135, epochs - best + 1)[1:]])
    return {
        "loss": loss.tolist(),
        "val_loss": val_loss.tolist(),
        "accuracy": np.linspace(0.85, 0.999, epochs).tolist(),
        "val_accuracy": np.linspace(0.85, 0.975, epochs).tolist(),
    }


def healthy_history(epochs=10):
    """Both losses fall together and the accuracies stay within a fraction of a point."""
    return {
        "loss": np.linspace(0.5, 0.05, epochs).tolist(),
        "val_loss": np.linspace(0.45, 0.06, epochs).tolist(),
        "accuracy": np.linspace(0.85, 0.985, epochs).tolist(),
        "val_accuracy": np.linspace(0.86, 0.982, epochs).tolist(),
    }


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


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------


def test_plot_curves_writes_png(tmp_path):
    path = tmp_path / "curves.png"
    plot_curves(overfitting_history(), path, best_epoch=6, title="MNIST, 25 epochs")
    width, height = assert_png(path)
    assert (width, height) == (1000, 400)  # 10x4 in at 100 dpi


def test_plot_curves_without_validation_or_best_epoch(tmp_path):
    history = {"loss": [0.5, 0.3], "accuracy": [0.8, 0.9]}
    plot_curves(history, tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")


def test_plot_curves_overwrites_existing_file(tmp_path):
    path = tmp_path / "curves.png"
    path.write_bytes(b"old")
    plot_curves(healthy_history(), str(path), best_epoch=10)
    assert_png(path)


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_plot_confusion_writes_png(tmp_path, dataset):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 50, size=(10, 10)) + np.diag(rng.integers(800, 1000, size=10))
    path = tmp_path / "confusion.png"
    plot_confusion(cm.tolist(), CLASS_NAMES[dataset], path)
    assert_png(path, min_size=(400, 400))


def test_plot_mistakes_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    y_true = rng.integers(0, 10, size=50)
    y_pred = np.where(np.arange(50) % 3 == 0, (y_true + 1) % 10, y_true)  # 17 mistakes
    path = tmp_path / "mistakes.png"
    plot_mistakes(images, y_true, y_pred, CLASS_NAMES["fashion-mnist"], path, limit=12)
    assert_png(path)


def test_plot_mistakes_accepts_float_images_with_channel_axis(tmp_path):
    images = np.random.default_rng(1).random((3, 28, 28, 1), dtype=np.float32)
    plot_mistakes(images, [1, 2, 3], [1, 0, 3], CLASS_NAMES["mnist"], tmp_path / "m.png")
    assert_png(tmp_path / "m.png")


def test_plot_mistakes_with_no_mistakes(tmp_path):
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3])
    path = tmp_path / "mistakes.png"
    plot_mistakes(images, labels, labels, CLASS_NAMES["mnist"], path)
    assert_png(path)


def test_plot_digit_writes_png(tmp_path):
    image = np.zeros((28, 28), dtype=np.uint8)
    image[4:24, 13:16] = 255  # a "1"
    path = tmp_path / "digit.png"
    plot_digit(image, "X_test[2]: true 1, predicted 1 (99.9 %)", path)
    assert_png(path)


def test_failed_plot_leaves_no_temp_file(tmp_path, monkeypatch):
    def broken_savefig(*args, **kwargs):
        raise OSError("disk full")

    from matplotlib.figure import Figure

    from digits.atomic import WriteError

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(WriteError, match="digit.png: disk full"):
        plot_digit(np.zeros((28, 28)), "x", tmp_path / "digit.png")
    assert list(tmp_path.iterdir()) == []


def test_importing_report_is_cheap():
    # A fresh interpreter: this one may already hold matplotlib from other tests.
    code = (
        "import sys, digits.train.report; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# results_table
# ---------------------------------------------------------------------------


def test_results_table_markdown():
    rows = [
        {"model": "mlp", "accuracy": 0.98123, "params": 101770, "seconds": 12.3456},
        {"model": "cnn|small", "accuracy": 0.99, "params": 34826, "seconds": 1234.5},
        {"model": "linear", "accuracy": 0.925},  # missing keys leave blank cells
    ]
    columns = [("model", "Model"), ("accuracy", "Test accuracy"), ("params", "Params"), ("seconds", "Time (s)")]
    table = results_table(rows, columns)
    lines = table.strip().split("\n")
    assert len(lines) == 5
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["Model", "Test accuracy", "Params", "Time (s)"]
    # Text left-aligned, numbers right-aligned.
    rule = [c.strip() for c in lines[1].strip("|").split("|")]
    assert not rule[0].endswith(":") and all(c.endswith(":") for c in rule[1:])
    assert "0.9812" in lines[2] and "12.35" in lines[2] and "101770" in lines[2]
    assert "1234" in lines[3]
    assert "cnn\\|small" in lines[3]
    # Every row has the same number of cells (escaped pipes don't count).
    assert {line.replace("\\|", "").count("|") for line in lines} == {5}


def test_results_table_empty_rows():
    table = results_table([], [("a", "A")])
    assert table.strip().split("\n")[0].strip() == "| A   |"


def test_plots_drawn_in_a_second_process_land_and_their_errors_come_back(tmp_path):
    from digits.errors import WriteError
    from digits.train.report import Plotter, plot_curves, plot_digit

    with Plotter() as plotter:
        plotter.submit(plot_curves, {"loss": [1.0, 0.5], "val_loss": [1.0, 0.7]}, tmp_path / "curves.png", 2, "t")
        plotter.close()
    assert Image.open(tmp_path / "curves.png").size[0] > 100
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(WriteError, match="folder.png: it is a folder"), Plotter() as plotter:
        plotter.submit(plot_digit, np.zeros((28, 28)), "t", tmp_path / "folder.png")
        plotter.close()
