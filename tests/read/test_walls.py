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


def test_ones_written_on_a_ruled_line_stay(reader, mnist):
    """Written 1s stand on the line as a comb's teeth do, but a hand does not repeat a stroke to the pixel."""
    _, (x_test, y_test) = mnist
    picture = Image.new("L", (420, 160), 250)
    ones = np.flatnonzero(y_test == 1)
    for k in range(4):
        glyph = Image.fromarray(255 - x_test[ones[10 + k]]).resize((84, 84), Image.BICUBIC)
        picture.paste(glyph, (30 + 90 * k, 30), mask=Image.fromarray(x_test[ones[10 + k]]).resize((84, 84)))
    ImageDraw.Draw(picture).line([(0, 110), (420, 110)], fill=60, width=2)
    assert reader.read_page(picture).text == "1111"
