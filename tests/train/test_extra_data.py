"""The extra sets' loaders, each against a small fixture the test writes in that set's own file format.

The fixtures are made here (never copies of the data); the pinned digests
are swapped for the fixtures' own, except where the digest check itself is tested.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digits import data, extra_sets
from digits.errors import DataError
from digits.train import extra_data


def ring(size: int, ink: float = 1.0, paper: float = 0.0) -> np.ndarray:
    """A thick oval ring (a 0) that fills most of a `size`×`size` frame, as float pixels."""
    rows, cols = np.indices((size, size)) + 0.5
    r = np.hypot((rows - size / 2) / (0.45 * size), (cols - size / 2) / (0.3 * size))
    return np.where((r > 0.6) & (r < 1.0), ink, paper)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DIGITS_DATA_DIR", raising=False)


def pin(monkeypatch, name: str, folder: Path) -> None:
    """Pin the fixture files' own digests in place of the real set's."""
    spec = extra_sets.SETS[name]
    digests = {file: hashlib.sha256((folder / file).read_bytes()).hexdigest() for file in spec.sha256}
    monkeypatch.setitem(extra_sets.SETS, name, dataclasses.replace(spec, sha256=digests))


def assert_mnist_like(images: np.ndarray) -> None:
    """uint8 28×28, white ink on black, longer side about 20 px, centred by mass."""
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
    for image in images:
        rows, cols = np.nonzero(image > 0)
        assert 18 <= max(np.ptp(rows), np.ptp(cols)) + 1 <= 21
        assert image[0].max() == 0 and image[:, 0].max() == 0  # the margin is black
        centre = np.indices(image.shape).reshape(2, -1) @ (image.ravel() / image.sum())
        assert np.abs(centre - 14).max() < 1.5


def write_usps(folder: Path, train: int, test: int) -> None:
    folder.mkdir(parents=True)
    values = ring(16) * 2 - 1  # -1 paper, +1 ink
    for file, n in (("zip.train.gz", train), ("zip.test.gz", test)):
        lines = [f"{i % 10}.0000 " + " ".join(f"{v:.3f}" for v in values.ravel()) for i in range(n)]
        (folder / file).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


def test_usps(tmp_path, monkeypatch):
    write_usps(tmp_path / "usps", train=6, test=3)
    pin(monkeypatch, "usps", tmp_path / "usps")
    (x_train, y_train), (x_test, y_test) = extra_data.load_dataset("usps", tmp_path)  # a data root holding usps/
    assert len(x_train) == 6 and len(x_test) == 3
    assert sorted(y_train) == list(range(6)) and list(y_test) == [0, 1, 2]
    assert_mnist_like(np.concatenate([x_train, x_test]))


def test_semeion(tmp_path, monkeypatch):
    folder = tmp_path / "semeion"
    folder.mkdir()
    pixels = " ".join("1.0000" if v else "0.0000" for v in ring(16).ravel() > 0.5)
    rows = [
        pixels + " " + " ".join("1" if j == d else "0" for j in range(10)) + " " for d in range(10) for _ in range(5)
    ]
    (folder / "semeion.data").write_bytes(("\r\n".join(rows) + "\r\n").encode())
    pin(monkeypatch, "semeion", folder)
    parts = extra_data.load_parts("semeion", folder)
    # The last fifth of each class's rows is the test part.
    assert np.bincount(parts["test"][1]).tolist() == [1] * 10
    assert np.bincount(parts["train"][1]).tolist() == [4] * 10
    assert_mnist_like(parts["train"][0])


def test_cvl_keeps_its_writer_disjoint_splits(tmp_path, monkeypatch):
    folder = tmp_path / "cvl-digits"
    folder.mkdir()
    split = np.array([0, 0, 1, 2, 2, 2], np.uint8)
    x = np.stack([ring(28, ink=40, paper=240)] * len(split)).astype(np.uint8)  # dark ink on grey paper
    np.savez(
        folder / "cvl_single_digits_28x28.npz",
        x=x,
        y=np.arange(6, dtype=np.uint8),
        split=split,
        writer=np.arange(6, dtype=np.uint16),
        filename=np.array([f"f{i}.png" for i in range(6)]),
        split_note=np.array("fixture"),
    )
    pin(monkeypatch, "cvl", folder)
    parts = extra_data.load_parts("cvl", folder)
    assert sorted(parts["train"][1]) == [0, 1] and list(parts["val"][1]) == [2] and list(parts["test"][1]) == [3, 4, 5]
    (x_train, y_train), (x_test, _) = extra_data.load("cvl", folder)
    assert list(y_train[-1:]) == [2]  # validation writers last: split_data validates on them
    assert_mnist_like(np.concatenate([x_train, x_test]))


def test_dida_crops_go_through_the_readers_preprocessing(tmp_path, monkeypatch):
    folder = tmp_path / "dida-10k"
    folder.mkdir()
    paper = np.array([225, 205, 150], np.float64)  # yellowed paper
    crop = (paper * (1 - ring(48)[..., None] * 0.8)).astype(np.uint8)
    blank = np.full((40, 30, 3), paper, np.uint8)
    rows = []
    with zipfile.ZipFile(folder / "dida_10k_original_jpg.zip", "w", zipfile.ZIP_STORED) as archive:
        for digit, n, pixels in ((0, 1, crop), (3, 2, crop), (5, 900, crop), (7, 3, blank)):
            name = f"10000/{digit}/{digit}_{n}.jpg"
            buffer = io.BytesIO()
            Image.fromarray(pixels[:, : 40 if n == 2 else 48]).save(buffer, "JPEG", quality=95)
            archive.writestr(name, buffer.getvalue())
            rows.append({"file": name, "label": digit, "git_blob": "0" * 40})
    with open(folder / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["file", "label", "git_blob"])
        writer.writeheader()
        writer.writerows(rows)
    pin(monkeypatch, "dida", folder)
    parts = extra_data.load_parts("dida", folder)
    # Crops numbered above 800 are the test part; the blank crop has no ink and is left out.
    assert sorted(parts["train"][1]) == [0, 3] and list(parts["test"][1]) == [5]
    assert_mnist_like(np.concatenate([parts["train"][0], parts["test"][0]]))


def test_negatives_drop_digit_look_alikes_and_the_doodles_the_junk_shows(tmp_path, monkeypatch):
    root = tmp_path / "data"
    big = (ring(105) * 255).astype(np.uint8)
    (root / "negatives" / "omniglot").mkdir(parents=True)
    np.savez_compressed(
        root / "negatives" / "omniglot" / "omniglot_105x105.npz",
        x=np.stack([big] * 3),
        label=np.array(["Latin/683", "Korean/1", "Greek/2"]),
        digit_like_level=np.array([1, 2, 0], np.uint8),
    )
    (root / "negatives" / "quickdraw").mkdir()
    small = (ring(28) * 255).astype(np.uint8)
    np.savez_compressed(
        root / "negatives" / "quickdraw" / "quickdraw_28x28.npz",
        x=np.stack([small] * 4),
        label=np.array(["fish", "apple", "rainbow", "diamond"]),
    )
    (root / "negatives" / "comnist-early").mkdir()
    np.savez_compressed(
        root / "negatives" / "comnist-early" / "comnist_early_278x278.npz",
        x=np.stack([(ring(278) * 255).astype(np.uint8)] * 3),
        label=np.array(["A", "З", "S"]),
        digit_like_level=np.array([0, 2, 1], np.uint8),
    )
    for name in extra_data.NEGATIVE_SETS:
        pin(monkeypatch, name, root / extra_sets.SETS[name].folder)
    assert "apple" in extra_sets.QUICKDRAW_SEEN_IN_JUNK and "diamond" in extra_sets.QUICKDRAW_DIGIT_LIKE
    counts = {name: len(extra_data.load_negatives((name,), root)) for name in extra_data.NEGATIVE_SETS}
    assert counts == {"omniglot": 1, "quickdraw": 2, "comnist": 1}
    assert_mnist_like(extra_data.load_negatives(data_dir=root))


def test_the_variable_that_points_at_mnist_finds_the_sets_beside_it(tmp_path, monkeypatch):
    write_usps(tmp_path / "usps", train=2, test=1)
    pin(monkeypatch, "usps", tmp_path / "usps")
    (tmp_path / "mnist").mkdir()
    monkeypatch.setenv("DIGITS_DATA_DIR", str(tmp_path / "mnist"))
    assert extra_sets.locate("usps") == tmp_path / "usps"


def test_a_file_that_is_not_the_set_is_one_sentence(tmp_path):
    write_usps(tmp_path / "usps", train=2, test=1)  # the real digests stay pinned
    with pytest.raises(DataError) as caught:
        extra_data.load_dataset("usps", tmp_path / "usps")
    message = str(caught.value)
    assert "zip.train.gz: SHA-256 mismatch" in message and "\n" not in message


def test_a_missing_set_says_where_to_point(tmp_path):
    with pytest.raises(DataError, match="point --data-dir or DIGITS_DATA_DIR"):
        extra_data.load_test_set("cvl", tmp_path)


def test_the_sets_are_registered_for_training():
    for name in extra_data.DIGIT_SETS:
        assert data.class_names(name) == tuple(str(d) for d in range(10))
        assert extra_data.dataset_digests(name) == extra_sets.SETS[name].sha256


def test_the_reader_mixes_training_writers_and_real_negatives_but_never_held_out_writers(tmp_path, monkeypatch):
    from digits.spec import REJECT
    from digits.train.reader_mix import extra_training

    write_usps(tmp_path / "usps", train=4, test=2)
    (tmp_path / "cvl-digits").mkdir()
    x = np.stack([ring(28, ink=40, paper=240)] * 5).astype(np.uint8)
    np.savez(
        tmp_path / "cvl-digits" / "cvl_single_digits_28x28.npz",
        x=x,
        y=np.arange(5, dtype=np.uint8),
        split=np.array([0, 1, 1, 2, 2], np.uint8),
    )
    (tmp_path / "negatives" / "omniglot").mkdir(parents=True)
    bar = np.zeros((105, 105), np.uint8)
    bar[10:95, 50:56] = 255  # one straight upright stroke reads as a 1: never a negative
    glyphs = np.stack([(ring(105) * 255).astype(np.uint8)] * 40 + [bar])
    np.savez(
        tmp_path / "negatives" / "omniglot" / "omniglot_105x105.npz",
        x=glyphs,
        label=np.array(["Latin/1"] * 41),
        digit_like_level=np.zeros(41, np.uint8),
    )
    for name in ("usps", "cvl", "omniglot"):
        pin(monkeypatch, name, tmp_path / extra_sets.SETS[name].folder)
    from digits.config import TrainConfig

    mix = {"extra_digits": ["usps", "cvl"], "real_negatives": ["omniglot"], "reject_class": True}
    config = TrainConfig.from_preset("tiny", mix, "mnist", 0, None)
    train, val = extra_training(config, tmp_path)
    train_labels = np.concatenate([labels for _, labels in train])
    val_labels = np.concatenate([labels for _, labels in val])
    # USPS train (4) and CVL train (1); CVL validation (2) validates; CVL evaluation (3, 4) is nowhere.
    assert sorted(train_labels[train_labels != REJECT]) == [0, 0, 1, 2, 3]
    assert sorted(val_labels[val_labels != REJECT]) == [1, 2]
    assert (train_labels == REJECT).sum() + (val_labels == REJECT).sum() == 40 and (val_labels == REJECT).sum() == 2
    images = np.concatenate([images for images, _ in train + val])
    assert images.dtype == np.float32 and images.max() <= 1.0
    # extra_repeat shows the training digits that many times; validation and the negatives stay as they were.
    repeated = TrainConfig.from_preset("tiny", {**mix, "extra_repeat": 3}, "mnist", 0, None)
    repeated_train, repeated_val = extra_training(repeated, tmp_path)
    repeated_labels = np.concatenate([labels for _, labels in repeated_train])
    assert sorted(repeated_labels[repeated_labels != REJECT]) == sorted([0, 0, 1, 2, 3] * 3)
    for (once, once_labels), (thrice, thrice_labels) in zip(train[:2], repeated_train[:2], strict=True):
        assert np.array_equal(thrice, np.concatenate([once] * 3)) and np.array_equal(
            thrice_labels, np.tile(once_labels, 3)
        )
    assert (repeated_labels == REJECT).sum() == (train_labels == REJECT).sum()
    assert sum(len(labels) for _, labels in repeated_val) == len(val_labels)
    # A limit draws that many of the real negatives, and the same ones for the same seed.
    limited = TrainConfig.from_preset("tiny", {**mix, "real_negatives_limit": 20}, "mnist", 0, None)
    _, limited_val = extra_training(limited, tmp_path)
    assert sum((labels == REJECT).sum() for _, labels in extra_training(limited, tmp_path)[0] + limited_val) == 20
