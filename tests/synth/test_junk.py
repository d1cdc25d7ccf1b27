"""The junk generator: pictures with no digit."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from digits.synth import junk


def as_bytes(samples) -> list[bytes]:
    return [image.tobytes() for image, _ in samples]


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not():
    first, again, other = junk.make_junk(20, seed=5), junk.make_junk(20, seed=5), junk.make_junk(20, seed=6)
    assert as_bytes(first) == as_bytes(again)
    assert [kind for _, kind in first] == [kind for _, kind in again]
    assert sum(a != b for a, b in zip(as_bytes(first), as_bytes(other), strict=False)) >= 18


def test_every_kind_is_made_as_a_photo_like_picture():
    samples = junk.make_junk(len(junk.KINDS), seed=1)
    assert [kind for _, kind in samples] == list(junk.KINDS)
    for image, kind in samples:
        assert image.mode == "RGB" and max(image.size) <= 720, kind
        # A photo, not a flat synthetic canvas: light, texture and noise vary the paper.
        assert np.asarray(image, dtype=np.float32).std() > 1.0, kind


def test_pen_letters_draw_without_any_font():
    rng = np.random.default_rng(0)
    for _ in range(len(junk.LETTERS)):
        coverage = junk._pen_letter(rng, 64)
        assert coverage.shape == (64, 64) and 0.02 < coverage.mean() < 0.5


def test_written_set_reads_back_as_made(tmp_path):
    labels = json.loads(junk.write_junk(tmp_path, 12, seed=9).read_text())
    samples = junk.make_junk(12, seed=9)
    assert labels["seed"] == 9 and [e["kind"] for e in labels["junk"]] == [k for _, k in samples]
    for entry, (image, _) in zip(labels["junk"], samples, strict=False):
        with Image.open(tmp_path / entry["file"]) as saved:
            assert np.array_equal(np.asarray(saved.convert("RGB")), np.asarray(image))
