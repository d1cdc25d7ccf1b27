"""Two digits written touching are one piece as wide as two: read as the two they are (`read.touching`)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from digits.read.answers import Digit
from digits.read.pipeline import Segment, segment_page
from digits.read.reader import Reader
from digits.read.touching import cut_doubted, cuts, split_touching
from digits.spec import NO_DIGIT, OK
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
    (left, left_box), (right, right_box) = cuts(mask)[0]
    assert 25 <= left_box[2] == right_box[0] <= 33  # through the bridge
    assert left_box[:2] == (2, 5) and right_box[2:] == (58, 35)  # each half's box round its own ink
    assert left.shape == (left_box[3] - left_box[1], left_box[2] - left_box[0]) and left[:, :23].all()
    assert right.shape == (right_box[3] - right_box[1], right_box[2] - right_box[0]) and right[:, -25:].all()
    assert cuts(mask[:, :30]) == []
    assert cuts(np.ones((1, 2), dtype=bool)) == [] and cuts(np.ones((2, 3), dtype=bool))  # too small to cut; not


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


def _piece_with_a_cut(left: int) -> Segment:
    """A piece at `left` cut once into two halves (a fake model answers for each by its left edge)."""
    image = np.zeros((28, 28), np.float32)
    halves = (Segment((left, 0, left + 30, 40), image), Segment((left + 30, 0, left + 60, 40), image))
    return Segment((left, 0, left + 60, 40), image, cuts=(halves,))


def _sure(digit: int, confidence: float = 0.97) -> Digit:
    return Digit(digit, confidence, ((digit, confidence),), None, OK)


def test_a_cut_is_taken_only_when_each_part_is_surer_and_not_strokes_alone():
    """A lone piece cut into a 1 and a 7 is strokes (a letter's, a grid's); beside a sure digit it is a number.
    A piece read as one digit more surely than its parts stays one."""

    def read(answers: dict[int, Digit]):
        return lambda half: answers[half.box[0]]

    refused = Digit(None, 0.99, (), (0, 0, 60, 40), NO_DIGIT)
    strokes = {0: _sure(1), 30: _sure(7)}
    alone, _ = split_touching([_piece_with_a_cut(0)], [refused], read(strokes))
    assert len(alone) == 1
    beside = [_piece_with_a_cut(0), Segment((80, 0, 110, 40), np.zeros((28, 28), np.float32))]
    pieces, digits = split_touching(beside, [refused, _sure(5, 1.0)], read(strokes))
    assert [d.digit for d in digits] == [1, 7, 5] and len(pieces) == 3
    pair = {0: _sure(2, 0.95), 30: _sure(0, 0.95)}
    one = [_piece_with_a_cut(0)]
    assert [d.digit for d in split_touching(one, [_sure(0, 0.96)], read(pair))[1]] == [0]
    assert [d.digit for d in split_touching(one, [_sure(0, 0.93)], read(pair))[1]] == [2, 0]
