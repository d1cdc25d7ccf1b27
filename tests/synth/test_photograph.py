"""Tests for digits.synth.photograph: the seeded realistic test set, and the pipeline on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digits.read import pipeline as preprocess
from digits.synth.photograph import make_lines, make_singles, write_set


def drawn_digits(n: int = 20):
    """Stand-in "test digits" (strokes in 28×28) so the generator is testable without MNIST."""
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for k in range(n):
        canvas = Image.new("L", (28, 28), 0)
        draw = ImageDraw.Draw(canvas)
        x = 8 + k % 6
        draw.line([(x, 4), (20, 4), (x + 2, 24)], fill=255, width=3)
        images[k] = np.asarray(canvas)
    return images, np.arange(n) % 10


def arrays(samples):
    return [np.asarray(image) for image, _ in samples]


def test_singles_are_deterministic_under_the_seed():
    x, y = drawn_digits()
    first, again, other = make_singles(x, y, 5, seed=7), make_singles(x, y, 5, seed=7), make_singles(x, y, 5, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(arrays(first), arrays(again), strict=False))
    assert [label for _, label in first] == [label for _, label in again]
    assert not all(
        a.shape == b.shape and np.array_equal(a, b) for a, b in zip(arrays(first), arrays(other), strict=False)
    )


def test_lines_are_deterministic_and_2_to_5_digits():
    x, y = drawn_digits()
    first, again = make_lines(x, y, 6, seed=3), make_lines(x, y, 6, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(arrays(first), arrays(again), strict=False))
    for image, text in first:
        assert text.isdigit() and 2 <= len(text) <= 5
        assert image.mode == "RGB"


def test_singles_look_like_photos():
    x, y = drawn_digits()
    for image, label in make_singles(x, y, 8, seed=1):
        assert isinstance(label, int) and 0 <= label <= 9
        assert image.mode == "RGB" and min(image.size) >= 40
        assert max(image.size) <= 800
        pixels = np.asarray(image, dtype=np.float32)
        assert pixels.std() > 5  # not a flat colour
        assert 0 <= image.info["mnist_index"] < len(x)


def test_rejects_arrays_that_are_not_mnist():
    with pytest.raises(ValueError):
        make_singles(np.zeros((3, 32, 32), np.uint8), np.zeros(3), 2, seed=0)


def test_write_set_files_match_the_images(tmp_path):
    x, y = drawn_digits()
    labels_path = write_set(tmp_path, x, y, 10, 3, seed=5)
    labels = json.loads(labels_path.read_text())
    assert labels["seed"] == 5 and len(labels["singles"]) == 10 and len(labels["lines"]) == 3
    suffixes = {entry["file"].rsplit(".", 1)[1] for entry in labels["singles"] + labels["lines"]}
    assert suffixes == {"png", "jpg"}  # some JPEG, for its artefacts
    singles = make_singles(x, y, 10, seed=5)
    for entry, (image, label) in zip(labels["singles"], singles, strict=False):
        assert entry["label"] == label
        loaded = preprocess.load_image(tmp_path / entry["file"])
        assert np.array_equal(np.asarray(loaded.convert("RGB")), np.asarray(image.convert("RGB")))


def test_generated_from_mnist_test_digits_is_reproducible(mnist):
    (_, _), (x_test, y_test) = mnist
    first = make_singles(x_test, y_test, 4, seed=11)
    again = make_singles(x_test, y_test, 4, seed=11)
    assert all(np.array_equal(a, b) for a, b in zip(arrays(first), arrays(again), strict=False))
    for image, label in first:
        assert label == int(y_test[image.info["mnist_index"]])


# --------------------------------------------------------------------------
# The pipeline on the realistic set, with the suite's shared trained model
# --------------------------------------------------------------------------


def test_pipeline_reads_the_realistic_set(mnist, fast_run):
    """Naive resizing fails on photo-like digits; the pipeline gets close to clean MNIST."""
    from digits.read.model import Recognizer

    (_, _), (x_test, y_test) = mnist
    model = Recognizer(fast_run)
    clean = (model.predict(x_test[:2000]) == y_test[:2000]).mean()

    singles = make_singles(x_test, y_test, 100, seed=2024)
    truth = np.array([label for _, label in singles])
    naive = model.predict(np.stack([preprocess.naive(image) for image, _ in singles]))
    ours = model.predict(np.stack([preprocess.prepare(image).image for image, _ in singles]))
    assert (naive == truth).mean() < 0.4  # the problem: naive resizing is near chance
    assert (ours == truth).mean() >= clean - 0.05  # the fix: close to clean MNIST

    lines = make_lines(x_test, y_test, 30, seed=2024)
    exact = 0
    for image, text in lines:
        segments = [piece for line in preprocess.segment_page(image).lines for piece in line]
        digits = model.predict(np.stack([s.image for s in segments])) if segments else []
        exact += "".join(str(d) for d in digits) == text
    assert exact / len(lines) >= 0.75


def test_realworld_benchmark_script_on_a_tiny_set(tmp_path, tiny_run, monkeypatch):
    """benchmarks/realworld.py scores every set and writes its table (tiny sets, a tiny model)."""
    import csv
    import importlib.util
    from pathlib import Path

    script = Path(__file__).parents[2] / "benchmarks" / "realworld.py"
    monkeypatch.syspath_prepend(str(script.parent))  # as when run: its sibling modules import
    spec = importlib.util.spec_from_file_location("realworld", script)
    realworld = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(realworld)

    # A stand-in for the real-digits folder, laid out the same way.
    real = tmp_path / "real"
    x, y = drawn_digits()
    labels = json.loads(write_set(real / "set", x, y, 3, 2, seed=0).read_text())
    for name, entries, column in (("single", labels["singles"], "label"), ("multi", labels["lines"], "text")):
        (real / name).mkdir()
        with open(real / name / "labels.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", column, "kind", "source_repo"])
            for entry in entries:
                (real / "set" / entry["file"]).rename(real / name / entry["file"])
                writer.writerow([entry["file"], entry["label"], "photo", "someone/elsewhere"])
    out = tmp_path / "out"
    args = [
        "--model",
        str(tiny_run),
        "--real",
        str(real),
        "--singles",
        "4",
        "--lines",
        "2",
        "--junk",
        "4",
        "--repeat",
        "1",
        "--out",
        str(out),
    ]
    assert realworld.main(args) == 0
    report = json.loads((out / "realworld.json").read_text())
    [scores] = report["models"].values()
    assert scores["singles"]["real"]["n"] == 3 and scores["singles"]["synthetic"]["n"] == 4
    assert scores["numbers"]["real"]["n"] == 2 and scores["junk"]["all"]["n"] == 4
    assert scores["time"]["pictures"] == 3
    text = (out / "realworld.md").read_text()
    assert "| one digit, real | 3 |" in text and "| generated junk accepted, all | 4 |" in text


def test_touching_numbers_are_the_same_numbers_with_one_pair_run_together(mnist):
    """`touching` joins two digits of each number and changes nothing else: the same digits on the same paper,
    so a benchmark's touching rows compare with its others."""
    _, (x, y) = mnist
    apart, joined = make_lines(x, y, 8, seed=5), make_lines(x, y, 8, seed=5, touching=True)
    assert [text for _, text in apart] == [text for _, text in joined]
    assert [picture.size for picture, _ in apart] == [picture.size for picture, _ in joined]
    assert all(not np.array_equal(np.asarray(a), np.asarray(b)) for (a, _), (b, _) in zip(apart, joined, strict=True))
