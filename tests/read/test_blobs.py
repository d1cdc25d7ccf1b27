"""Dark regions that are not strokes (`pieces.writing_pieces`): a blob is thick for its length, a stroke thin.

In a photo, a piece that fills its box is solid (a table's rule goes so); in a drawn picture, an upright one
inside it is measured with paper round its box: a line tool draws a 1 so.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digits.read.pieces import writing_pieces
from digits.read.reader import Reader


def _kept(mask: np.ndarray, drawn: bool) -> bool:
    return bool(writing_pieces(mask, drawn=drawn)[1].any())


def test_a_stroke_that_fills_its_box_is_a_stroke_in_a_drawn_picture():
    """An upright bar 13 px wide: unpadded, it had no edge inside its box to measure to, and went as a blob.
    In a photo it still goes: there it is a table's rule far more often (generated pages read it as a 1)."""
    mask = np.zeros((280, 280), bool)
    mask[56:225, 134:147] = True
    assert _kept(mask, drawn=True)
    assert not _kept(mask, drawn=False)
    assert not _kept(mask.T, drawn=True)  # flat, it stays solid: an underline, which the underline rule may miss


def test_a_solid_square_and_a_region_cut_by_the_border_are_blobs_even_drawn():
    square = np.zeros((300, 300), bool)
    square[100:200, 100:200] = True  # a black box: as thick as it is long
    desk = np.zeros((300, 300), bool)
    desk[:, :80] = True  # what lies beyond a page's edge, cut by the picture's border: it goes on beyond it
    for mask in (square, desk):
        assert not _kept(mask, drawn=True) and not _kept(mask, drawn=False)


def test_an_upright_1_drawn_with_a_line_tool_is_read():
    """A line tool, a pixel font or generated data draws a 1 as a solid rectangle (an API user's case)."""
    reader = Reader()
    one = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(one).line([(140, 56), (140, 224)], fill=0, width=12)
    assert reader.read_digit(one).digit == 1
    number = Image.new("L", (600, 240), 255)
    draw = ImageDraw.Draw(number)
    draw.line([(120, 60), (120, 180)], fill=0, width=10)
    draw.ellipse([220, 60, 320, 180], outline=0, width=10)
    draw.line([(420, 60), (420, 180)], fill=0, width=10)
    assert reader.read_page(number).text == "101"


@pytest.mark.parametrize(("size", "brush", "paper"), [(280, 31, 0), (280, 31, 255), (500, 70, 0), (64, 8, 255)])
def test_a_1_drawn_with_a_broad_brush_is_read(size, brush, paper):
    """A web digit pad's broad round brush: the 1 fills its box, wide enough to pass for a note lying on an
    even desk (`ink._on_flat_ground`), and went to the photo path, which drops it as a blob (a review's case)."""
    one = Image.new("L", (size, size), paper)
    ImageDraw.Draw(one).line([(size // 2, size // 5), (size // 2, size * 4 // 5)], fill=255 - paper, width=brush)
    reader = Reader()
    assert reader.read_digit(one).digit == 1
    assert reader.read_page(one).text == "1"
