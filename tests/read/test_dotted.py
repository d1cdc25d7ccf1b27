"""A dotted or dashed line to write on: the dots the digits touch are not part of them (`digits.read.dotted`).

Written on a form's dotted line, a number whose digits touched the dots read
nothing or a wrong digit (a 9 with dots under it refused), where on a solid
line the rules cut the line out.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digits.read.dotted import _evenly_spaced
from digits.read.reader import Reader

_SIDE = 84  # MNIST's 28 px three times: its ink ends about 12 px above the box's bottom


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


def _on_a_line(mnist, number: str, line: str, width: int = 700) -> Image.Image:
    """`number` in MNIST test digits on a `line` ("dots" or "dashes") that runs through their lowest strokes."""
    _, (x_test, y_test) = mnist
    picture = Image.new("L", (width, 160), 250)
    draw = ImageDraw.Draw(picture)
    y = 30 + _SIDE - 14
    for x in range(20, width - 20, 7):
        if line == "dots":
            draw.ellipse([x, y, x + 4, y + 4], fill=40)
        else:
            draw.line([(x, y), (x + 4, y)], fill=40, width=2)
    for k, digit in enumerate(number):
        glyph = 255 - x_test[np.flatnonzero(y_test == int(digit))[11]]
        ink = np.asarray(Image.fromarray(glyph).resize((_SIDE, _SIDE), Image.Resampling.BICUBIC))
        at = (120 + 70 * k, 30)
        region = np.asarray(picture.crop((*at, at[0] + _SIDE, at[1] + _SIDE)))
        picture.paste(Image.fromarray(np.minimum(region, ink)), at)
    return picture


@pytest.mark.parametrize("line", ["dots", "dashes"])
def test_a_number_written_on_a_dotted_line_reads(reader, mnist, line):
    for number in ("40815", "2973", "1111"):  # 1s standing on the dots are no walls (`digits.read.walls`)
        assert reader.read_page(_on_a_line(mnist, number, line)).text == number


def test_one_digit_on_a_dotted_line_reads(reader, mnist):
    for digit in "0123456789":
        assert reader.read_digit(_on_a_line(mnist, digit, "dots", width=260)).digit == int(digit)


def test_a_dotted_line_alone_reads_nothing(reader, mnist):
    assert reader.read_page(_on_a_line(mnist, "", "dots")).text == ""


def test_a_row_is_dotted_only_when_evenly_spaced():
    """Dots a digit covered leave a gap of several steps; specks strewn along a row are no line."""
    assert _evenly_spaced([0, 9, 18, 27, 54, 63, 72, 81, 90])
    assert not _evenly_spaced([0, 9, 14, 30, 37, 51, 60, 71, 90])
