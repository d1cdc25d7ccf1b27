"""Two digits written touching are one piece as wide as two: read as the two they are (`read.touching`)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from digits.read.answers import Digit
from digits.read.pipeline import Segment, segment_page
from digits.read.reader import Reader
from digits.read.touching import cut_doubted, cuts
from digits.spec import NO_DIGIT
from helpers import benchmark_module


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


@pytest.mark.parametrize(("number", "overlap"), [("053", 2), ("123", 3)])
def test_two_digits_joined_that_pass_for_one_doubtful_digit_are_cut(reader, mnist, number, overlap):
    """The model read a joined pair as one digit, under 0.99 ("53" as a 5: "053" read "05"); cut, it is surer
    of each half than of the one."""
    assert reader.read_page(_touching(mnist, number, overlap)).text == number


def test_a_printed_labels_letters_touching_in_a_word_are_not_cut(reader, mnist):
    """On a form, a label's "To" of "Total:" is one small piece beside the number: cut, it read 7 and 0, and
    "2638" came back "701412". Letters much smaller than the digits beside them are not cut."""
    forms = benchmark_module("forms")
    picture, text = forms.form(*mnist[1], "label beside", 2, 5)
    assert reader.read_page(picture).text == text


def test_a_page_with_many_wide_pieces_in_doubt_is_not_cut():
    """A texture's strokes, not a few numbers' touching pairs: past eight such pieces on a page, none is cut
    (cutting grass's 141 made reading it a fifth slower, and no number came of it)."""
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:35, 2:25] = mask[5:35, 33:58] = mask[20, 25:33] = True
    refused = Digit(None, 0.99, (), (0, 0, 60, 40), NO_DIGIT)

    def line(count: int) -> list[Segment]:
        return [Segment((70 * k, 0, 70 * k + 60, 40), np.zeros((28, 28), np.float32), mask=mask) for k in range(count)]

    few = cut_doubted([line(4), line(4)], [[refused] * 4] * 2)
    assert all(piece.cuts for pieces in few for piece in pieces)
    many = cut_doubted([line(5), line(4)], [[refused] * 5, [refused] * 4])
    assert not any(piece.cuts for pieces in many for piece in pieces)
