"""Ink too dense with strokes to be one digit (`geometry.scribbled`): a signature, hatching, a scribble.

Squeezed into 28×28, a signature's zigzag is a thick slanted blob that the
model reads as a 4 at 0.9 and more; at the picture's own resolution its
strokes cross a line through it ten times, where a digit's cross it at most
six. Real pictures come from ../shared/data/real-digits (skipped where it is
absent).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from test_reader import REAL, needs_real, real_rows

from digits.read.geometry import scribbled
from digits.read.reader import Reader
from digits.spec import NO_DIGIT


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


def signature(peaks: int = 8) -> Image.Image:
    """A pencil signature like the real ones: a long rising stroke, back down, then a tight zigzag rising
    to the right, on light grey paper (the reader at 9a921f6: a 4 at 0.98)."""
    picture = Image.new("L", (600, 520), 235)
    draw = ImageDraw.Draw(picture)
    zigzag = [(30, 500), (330, 20), (140, 270)]
    for k in range(peaks):
        x = 170 + 20 * k
        zigzag += [(x, 330 - 8 * k), (x + 10, 250 - 8 * k)]
    draw.line(zigzag + [(580, 90)], fill=110, width=5, joint="curve")
    return picture


def test_a_signature_is_no_digit(reader):
    picture = signature()
    assert scribbled(np.asarray(picture) < 160)
    digit = reader.read_digit(picture)
    assert (digit.digit, digit.status) == (None, NO_DIGIT)
    assert reader.read_page(picture).text == ""


def test_hatching_is_scribbled_and_few_strokes_are_not():
    hatching, strokes = Image.new("L", (300, 300), 0), Image.new("L", (300, 300), 0)
    for k in range(12):
        ImageDraw.Draw(hatching).line([(20 + 22 * k, 280), (40 + 22 * k, 20)], fill=255, width=6)
    for k in range(5):  # an 8's or a 3's most: a few strokes across any line
        ImageDraw.Draw(strokes).line([(20 + 60 * k, 280), (40 + 60 * k, 20)], fill=255, width=6)
    assert scribbled(np.asarray(hatching) > 0)
    assert not scribbled(np.asarray(strokes) > 0)
    assert not scribbled(np.zeros((10, 10), bool))


def test_no_mnist_digit_is_scribbled(mnist):
    _, (x_test, _) = mnist
    assert not [k for k, image in enumerate(x_test) if scribbled(image > 127)]


def test_a_thin_pen_digit_written_large_is_a_digit(reader, mnist):
    """A large 8 in a fine pen: its strokes are many pixels apart, and still cross a line four times."""
    _, (x_test, y_test) = mnist
    eight = Image.fromarray(255 - x_test[np.flatnonzero(y_test == 8)[0]]).resize((560, 560), Image.BILINEAR)
    assert reader.read_digit(eight).digit == 8


@needs_real
def test_the_real_signatures_and_letters_give_no_digit(reader):
    """Two of the development fold's signatures read as a 4 (0.96 and 0.87) before."""
    names = [row["file"] for row in real_rows("junk") if row["kind"] == "letters"]
    assert {"shivitg__test_data_genuine-01.png", "shivitg__train_data_genuine-05.png"} <= set(names)
    given = {name: reader.read_digit(REAL / "junk" / name).digit for name in names}
    assert {name: digit for name, digit in given.items() if digit is not None} == {}


@needs_real
def test_no_real_single_digit_is_scribbled(reader):
    rows = real_rows("single")
    assert [row["file"] for row in rows if reader.read_digit(REAL / "single" / row["file"]).digit is None] == []
