"""The reader's training pictures: junk negatives and photographed training digits, as the reader sees them."""

from __future__ import annotations

import numpy as np

from digits.read.reader import Reader
from digits.spec import REJECT
from digits.train import reader_data


def test_negatives_are_the_same_for_any_number_of_workers(monkeypatch):
    monkeypatch.setattr(reader_data, "_CHUNK", 30)
    one = reader_data.negatives(90, seed=4, workers=1, cache=False)
    two = reader_data.negatives(90, seed=4, workers=2, cache=False)
    assert np.array_equal(one, two)
    # Most junk keeps some ink through the pipeline, each image a 28x28 model input.
    assert one.dtype == np.float32 and one.shape[1:] == (28, 28) and 45 < len(one) <= 90
    assert one.max() <= 1.0 and (one.reshape(len(one), -1).max(axis=1) > 0).all()


def test_negatives_are_cached_and_served_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    made = reader_data.negatives(30, seed=2)
    files = list((tmp_path / "digits" / "reader-data").glob("negatives-30-2-*.npz"))
    assert len(files) == 1
    np.savez(files[0], images=made[:3], labels=np.full(3, REJECT))  # what a cache hit would return
    assert len(reader_data.negatives(30, seed=2)) == 3
    files[0].write_bytes(b"PK\x03\x04 cut short")  # a truncated file is made again, not a crash
    assert np.array_equal(reader_data.negatives(30, seed=2), made)


def test_a_straight_near_vertical_stroke_is_never_a_negative(mnist):
    _, (x_test, y_test) = mnist
    ones = [reader_data.looks_like_a_one(image / 255) for image in x_test[y_test == 1][:200]]
    others = [reader_data.looks_like_a_one(image / 255) for image in x_test[y_test != 1][:500]]
    assert np.mean(ones) > 0.9 and np.mean(others) < 0.03


def test_photographed_digits_keep_their_labels_and_do_not_depend_on_workers(mnist, monkeypatch):
    monkeypatch.setattr(reader_data, "_CHUNK", 20)
    (x_train, y_train), _ = mnist
    x, y = x_train[:500], y_train[:500]
    one = reader_data.photographed_digits(x, y, singles=40, lines=20, seed=3, workers=1, cache=False)
    two = reader_data.photographed_digits(x / 255, y, singles=40, lines=20, seed=3, workers=2, cache=False)
    assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=False))
    images, labels = one
    # Every single digit, and the digits of most numbers (2 to 5 each), come back as 28x28 model inputs.
    assert images.shape[1:] == (28, 28) and images.dtype == np.float32 and 40 + 2 * 15 <= len(images) <= 40 + 5 * 20
    assert set(labels.tolist()) <= set(range(10))
    # Each image is the digit its label says: the shipped model reads nearly all of them so.
    read = Reader().classify(images)[:, :10].argmax(axis=1)
    assert np.mean(read == labels) > 0.9


def test_no_photographed_digits_asked_makes_none(mnist):
    (x_train, y_train), _ = mnist
    images, labels = reader_data.photographed_digits(x_train[:10], y_train[:10], singles=0, lines=0, seed=0)
    assert images.shape == (0, 28, 28) and labels.shape == (0,)
