"""Tests for digits.train.plots: plots checked as PNG files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from digits.data import DATASETS
from digits.train.plots import plot_confusion, plot_curves, plot_digit, plot_mistakes
from helpers import healthy_history, overfitting_history

CLASS_NAMES = {name: list(spec.class_names) for name, spec in DATASETS.items()}

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


def test_importing_plots_is_cheap():
    # A fresh interpreter: this one may already hold matplotlib from other tests.
    code = (
        "import sys, digits.train.plots; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_plots_drawn_in_a_second_process_land_and_their_errors_come_back(tmp_path):
    from digits.errors import WriteError
    from digits.train.plots import Plotter, plot_curves, plot_digit

    with Plotter() as plotter:
        plotter.submit(plot_curves, {"loss": [1.0, 0.5], "val_loss": [1.0, 0.7]}, tmp_path / "curves.png", 2, "t")
        plotter.close()
    assert Image.open(tmp_path / "curves.png").size[0] > 100
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(WriteError, match="folder.png: it is a folder"), Plotter() as plotter:
        plotter.submit(plot_digit, np.zeros((28, 28)), "t", tmp_path / "folder.png")
        plotter.close()
