"""A form's cells for a number's digits: their walls are no 1s (`digits.read.walls`).

A comb (a line under the digits, short strokes rising from it between them)
read nothing or its teeth as 1s between the digits ("40815" read "1410181115"
or nothing), and so did a row of boxes in light print saved as JPEG, whose
walls came apart from their lines.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digits.read.reader import Reader

_CELL = 80


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


def _field(mnist, number: str, walls: str, colour=(0, 0, 0), ink_at: int = 8) -> Image.Image:
    """`number` written one MNIST test digit per cell: `walls` "comb" (a line with teeth) or "boxes"; the digit's
    foot `ink_at` px above the cell's bottom line (negative: over it)."""
    _, (x_test, y_test) = mnist
    margin, tall = 40, int(1.25 * _CELL)
    picture = Image.new("RGB", (2 * margin + _CELL * len(number), 2 * margin + tall), (250, 250, 248))
    draw = ImageDraw.Draw(picture)
    top, bottom = margin, margin + tall
    for k in range(len(number) + 1):
        x = margin + k * _CELL
        draw.line([(x, top if walls == "boxes" else bottom - _CELL // 3), (x, bottom)], fill=colour, width=1)
    draw.line([(margin, bottom), (margin + _CELL * len(number), bottom)], fill=colour, width=1)
    if walls == "boxes":
        draw.line([(margin, top), (margin + _CELL * len(number), top)], fill=colour, width=1)
    for k, digit in enumerate(number):
        glyph = Image.fromarray(255 - x_test[np.flatnonzero(y_test == int(digit))[7]]).resize((70, 70), Image.BICUBIC)
        x, y = margin + k * _CELL + 5, bottom - ink_at - 66  # MNIST's digits end about 4 px above their box's bottom
        region = np.asarray(picture.convert("L").crop((x, y, x + 70, y + 70)))
        picture.paste(Image.fromarray(np.minimum(region, np.asarray(glyph))).convert("RGB"), (x, y))
    return picture


def _as_jpeg(picture: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=70)
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("ink_at", [8, -6])
def test_a_number_in_a_comb_reads_without_its_teeth(reader, mnist, ink_at):
    assert reader.read_page(_field(mnist, "40815", "comb", ink_at=ink_at)).text == "40815"


def test_a_number_in_light_boxes_saved_as_jpeg_reads_without_their_walls(reader, mnist):
    """JPEG left a light row between each wall and its lines: the walls stood alone, and the lines went as blobs."""
    picture = _as_jpeg(_field(mnist, "2736", "boxes", colour=(90, 120, 200)))
    assert reader.read_page(picture).text == "2736"


@pytest.mark.parametrize("number", ["1111", "1011", "7111", "4111", "10101", "14141"])
def test_ones_standing_on_a_line_stay(reader, mnist, number):
    """Written 1s standing on an underline are sticks on a cut line, as a comb's teeth are (1s drawn with a line
    tool are as straight and as thin as print), even evenly spaced with digits between them ("10101"); but
    they are as tall as those digits, where a comb's teeth are shorter and a box's walls taller."""
    _, (x_test, y_test) = mnist
    picture = Image.new("L", (90 * len(number) + 60, 160), 250)
    draw = ImageDraw.Draw(picture)
    for k, digit in enumerate(number):
        x = 40 + 90 * k
        if digit == "1":
            draw.line([(x + 30, 40), (x + 30, 110)], fill=20, width=3)
        else:
            glyph = Image.fromarray(255 - x_test[np.flatnonzero(y_test == int(digit))[5]]).resize((84, 84))
            picture.paste(Image.fromarray(np.minimum(np.asarray(picture.crop((x, 38, x + 84, 122))), glyph)), (x, 38))
    draw.line([(20, 110), (picture.width - 20, 110)], fill=20, width=3)
    assert reader.read_page(picture).text == number
