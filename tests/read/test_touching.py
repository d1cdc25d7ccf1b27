"""Two digits written touching are one piece as wide as two: read as the two they are (`read.touching`)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from digits.read.pipeline import segment_page
from digits.read.reader import Reader
from digits.read.touching import cuts


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


def _touching(mnist, number: str, overlap: int) -> Image.Image:
    """MNIST test digits written black on white, each digit's box `overlap` px into the one before, ×3."""
    _, (x_test, y_test) = mnist
    glyphs = [x_test[np.flatnonzero(y_test == int(d))[3]].astype(int) for d in number]
    glyphs = [g[:, g.any(axis=0)] for g in glyphs]  # cut to the ink, across
    width = sum(g.shape[1] for g in glyphs) - overlap * (len(glyphs) - 1) + 28
    canvas = np.zeros((56, width), dtype=int)
    left = 14
    for glyph in glyphs:
        window = canvas[14:42, left : left + glyph.shape[1]]
        np.maximum(window, glyph, out=window)
        left += glyph.shape[1] - overlap
    page = Image.fromarray((255 - canvas).astype(np.uint8))
    return page.resize((page.width * 3, page.height * 3), Image.Resampling.BICUBIC)


@pytest.mark.parametrize(("number", "overlap"), [("305", 2), ("4826", 2), ("90", 2), ("8890", 2), ("305", 3)])
def test_digits_written_into_each_other_are_read(reader, mnist, number, overlap):
    """Each digit's box runs 2 or 3 px (of 28) into the next one's: pieces join, the model refused a piece as
    wide as two digits or three, and the number gave nothing ("4826": "484"). Cut where the ink is thinnest,
    and its halves cut in turn, each part is a sure digit."""
    picture = _touching(mnist, number, overlap)
    [line] = segment_page(picture).lines
    assert len(line) < len(number)  # the digits are one piece or more: they touch
    assert reader.read_page(picture).text == number


def test_a_piece_is_cut_where_its_ink_is_thinnest():
    """Two blobs joined by a one-pixel bridge: the first cut tried is through the bridge; a piece narrower than
    tall is not cut at all."""
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:35, 2:25] = True
    mask[5:35, 33:58] = True
    mask[20, 25:33] = True  # the bridge
    share, left, right = cuts(mask)[0]
    assert 23 / 56 <= share <= 31 / 56
    assert left.shape[1] + right.shape[1] == 56 and left[5:35, :23].all() and right[5:35, -25:].all()
    assert cuts(mask[:, :30]) == []
