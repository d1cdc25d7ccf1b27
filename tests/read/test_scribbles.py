"""Ink too dense with strokes to be one digit (`geometry.scribbled`): a signature, hatching, a scribble.

Squeezed into 28×28, a signature's zigzag is a thick slanted blob that the
model reads as a 4 at 0.9 and more; at the picture's own resolution its
strokes cross a line through it ten times, where a digit's cross it at most
six (`Prepared.scribbled`: the reader asks the model nothing). Real pictures
come from ../shared/data/real-digits (skipped where it is absent).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from test_reader import REAL, needs_real, real_rows

from digits.read.geometry import scribbled
from digits.read.load import load_image
from digits.read.pipeline import prepare
from digits.read.reader import Reader
from digits.spec import NO_DIGIT
from helpers import benchmark_module, signature

marked = benchmark_module("marked")


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


def test_a_signature_is_no_digit(reader):
    picture = signature()
    prepared = prepare(picture, explain=False)
    assert prepared.has_ink and prepared.scribbled  # ink found (the reject class trains on it), but no digit
    digit = reader.read_digit(picture)
    assert (digit.digit, digit.status, digit.confidence) == (None, NO_DIGIT, 0.0)
    assert digit.box == prepared.box is not None
    assert reader.read_page(picture).text == ""


def strokes(count: int, gap: int = 22) -> np.ndarray:
    """`count` parallel slanted pen strokes, `gap` pixels apart, as a uint8 mask (0 or 255)."""
    canvas = Image.new("L", (40 + gap * count, 300), 0)
    for k in range(count):
        ImageDraw.Draw(canvas).line([(20 + gap * k, 280), (40 + gap * k, 20)], fill=255, width=6)
    return np.asarray(canvas)


def test_nine_strokes_across_are_scribbled_eight_are_not():
    """Eight: an 8 traced twice over, down its middle. Any nonzero pixel is ink; rows or columns alike."""
    assert scribbled(strokes(9)) and scribbled(strokes(9).T)
    assert not scribbled(strokes(8)) and not scribbled(strokes(8).T)
    assert not scribbled(np.zeros((10, 10), bool)) and not scribbled(np.zeros((5, 0), bool))


def test_no_mnist_digit_is_scribbled(mnist):
    _, (x_test, _) = mnist
    assert not [k for k, image in enumerate(x_test) if scribbled(image > 127)]


def eight(pen: int, traced_twice: bool = False) -> Image.Image:
    """A large 8 in a fine pen (two loops, 560 px tall), and traced over a second time 10 px off."""
    picture = Image.new("L", (600, 640), 245)
    draw = ImageDraw.Draw(picture)
    for dx in (0, 10) if traced_twice else (0,):
        draw.ellipse([(200 + dx, 40), (400 + dx, 300)], outline=40, width=pen)
        draw.ellipse([(170 + dx, 300), (430 + dx, 600)], outline=40, width=pen)
    return picture


@pytest.mark.parametrize("traced_twice", [False, True])
def test_a_large_thin_pen_eight_is_a_digit(reader, traced_twice):
    """Its strokes are hundreds of pixels apart and cross a line four times, eight when traced twice over."""
    picture = eight(3, traced_twice)
    assert not prepare(picture, explain=False).scribbled
    assert reader.read_digit(picture).digit == 8


@pytest.mark.parametrize(("number", "shift"), [("2026", 0), ("58490", 30)])
def test_a_signature_under_a_number_is_no_line_of_it(reader, mnist, number, shift):
    """A form: a number, and a signature under it, half the size of `signature`'s. At 9a921f6 the signature
    was a second line, "4". At a page's working resolution the zigzag may merge and cross fewer strokes:
    of 9 such forms (3 numbers, 3 places), 3 read exactly, none before."""
    _, (x_test, y_test) = mnist
    paper, _ = marked.on_paper([x_test[np.flatnonzero(y_test == int(d))[0]] for d in number], 3)
    form = Image.new("L", (max(paper.width, 300) + 40, paper.height + 300), 250)
    form.paste(paper, (20, 0))
    form.paste(signature().resize((300, 260)), (20 + shift, paper.height))
    assert reader.read_page(form).text == number


@needs_real
def test_the_real_signatures_and_letters_give_no_digit(reader):
    """Two of the development fold's signatures read as a 4 (0.96 and 0.87) before."""
    names = [row["file"] for row in real_rows("junk") if row["kind"] == "letters"]
    assert {"shivitg__test_data_genuine-01.png", "shivitg__train_data_genuine-05.png"} <= set(names)
    given = {name: reader.read_digit(REAL / "junk" / name).digit for name in names}
    assert {name: digit for name, digit in given.items() if digit is not None} == {}


@needs_real
def test_no_real_single_digit_is_scribbled():
    rows = real_rows("single")
    assert [row["file"] for row in rows if prepare(load_image(REAL / "single" / row["file"])).scribbled] == []
