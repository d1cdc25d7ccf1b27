"""A ring drawn round a digit or a number (a circled mark, a form's item) is no writing: what it holds is read.

Built from MNIST's test digits on white paper, the rings drawn by `benchmarks/marked.py`.
"""

from __future__ import annotations

import numpy as np
import pytest

from digits.read.geometry import Pieces, from_middle, goes_round, keeps_to_rim, ring_band, writing_held
from digits.read.ink import analyse
from digits.read.reader import Reader
from digits.spec import OK
from helpers import benchmark_module

marked = benchmark_module("marked")


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


def glyphs(mnist, text: str) -> list[np.ndarray]:
    _, (x_test, y_test) = mnist
    return [x_test[np.flatnonzero(y_test == int(d))[3]] for d in text]


@pytest.mark.parametrize(("text", "past"), [("3", 0.06), ("7", -0.1), ("0", 0.06), ("1", 0.06)])
def test_a_circled_digit_is_the_digit_it_holds(reader, mnist, text, past):
    """The ring round a digit was the biggest piece, a loop: it was read as a 0, sure, and the digit
    inside it was never read. A ring left open by a tenth of a turn goes round the digit too."""
    paper, box = marked.on_paper(glyphs(mnist, text), 3)
    assert str(reader.read_digit(paper).digit) == text
    digit = reader.read_digit(marked.ringed(paper, box, np.random.default_rng(0), past, 1.2))
    assert (str(digit.digit), digit.status) == (text, OK)


def test_a_circled_number_on_a_page_is_read(reader, mnist):
    paper, box = marked.on_paper(glyphs(mnist, "4096"), 3)
    assert reader.read_page(marked.ringed(paper, box, np.random.default_rng(1), 0.06, 1.2)).text == "4096"


def test_a_dotted_zero_keeps_its_ring():
    """What a ring holds must be writing: a 0 with a dot in it (a dotted zero) is a 0, not a dot; nor are specks
    far apart in a 0, the grain of a photo's paper, writing it holds."""
    rows, cols = np.indices((60, 30))
    zero = np.abs(np.hypot((rows - 30) / 28, (cols - 15) / 13) - 1) < 0.15  # a narrow 0
    dot = (np.abs(rows - 30) < 5) & (np.abs(cols - 15) < 4)
    assert keeps_to_rim(from_middle(zero)) and goes_round(zero, dot)  # it goes round the dot...
    ring_ink = int(zero.sum())
    dotted = Pieces(
        np.array([1, 2]), np.array([[0, 0, 30, 60], [11, 25, 19, 35]]), np.array([ring_ink, int(dot.sum())])
    )
    assert writing_held(dotted, (0, 0, 30, 60), ring_ink) == []  # ...but a dot is no writing it holds
    specks = Pieces(
        np.array([1, 2, 3]),
        np.array([[0, 0, 30, 60], [8, 10, 10, 12], [20, 45, 22, 47]]),
        np.array([ring_ink, 4, 4]),
    )
    assert writing_held(specks, (0, 0, 30, 60), ring_ink) == []
    one = Pieces(np.array([1, 2]), np.array([[0, 0, 30, 60], [13, 8, 17, 52]]), np.array([ring_ink, 150]))
    assert writing_held(one, (0, 0, 30, 60), ring_ink) == [2]


def test_a_digit_beside_a_loop_is_not_held():
    """A 6's or a 9's loop holds nothing: a piece only half inside its directions is not held."""
    rows, cols = np.indices((60, 60))
    arc = (np.abs(np.hypot(rows - 30, cols - 30) - 25) < 3) & (cols < 35)  # a loop open on its right
    stroke = (np.abs(cols - 30) < 2) & (np.abs(rows - 30) < 10)
    assert not goes_round(arc, stroke)


def test_a_ring_goes_round_a_slanted_one_close_beside_it():
    """A narrow oval round a slanted 1 passes close to the corners of the 1's box: it goes round the 1's ink,
    not its box (the 1 in such a ring was read as a 0)."""
    rows, cols = np.indices((100, 40))
    oval = np.abs(np.hypot((rows - 50) / 48, (cols - 20) / 18) - 1) < 0.08
    one = np.abs((cols - 20) + 0.3 * (rows - 50)) < 2
    one &= np.abs(rows - 50) < 40
    assert goes_round(oval, one & ~oval)


def test_an_outline_with_strokes_of_its_own_inside_is_no_ring():
    """An eye's outline with its iris's arc joined to it, a wheel with its spokes: a doodle whose outline
    has strokes of its own inside it does not keep to its rim, and is no ring (an eye was read as a 6)."""
    rows, cols = np.indices((80, 120))
    ring = np.abs(np.hypot((rows - 40) / 38, (cols - 60) / 58) - 1) < 0.06
    spoke = (np.abs(rows - 40) < 2) & (cols > 75) & (cols < 118)
    assert keeps_to_rim(from_middle(ring))
    assert not keeps_to_rim(from_middle(ring | spoke))


def test_a_ring_touching_what_it_holds_loses_its_band_only():
    """A tight ring touches its digit: both are one piece. The ring's band, the piece's outermost ink all
    round, goes; the strokes within stay (a 7 touching its tight ring was read as a 0)."""
    rows, cols = np.indices((80, 60))
    ring = np.abs(np.hypot((rows - 40) / 38, (cols - 30) / 28) - 1) < 0.07
    bar = (np.abs(rows - 20) < 2) & (cols > 14) & (cols < 44)
    stem = (np.abs(cols - (43 - (rows - 20) * 17 / 58)) < 2) & (rows >= 20)  # down to the ring, touching it
    seven = ring | ((bar | stem) & (np.hypot((rows - 40) / 38, (cols - 30) / 28) <= 1))
    band = ring_band(seven, from_middle(seven))
    assert band is not None
    assert band[ring].mean() > 0.95
    assert not band[bar & (np.abs(cols - 30) < 8)].any()


def test_a_slashed_0_keeps_its_slash_and_its_ring():
    """One straight stroke across a ring, touching it at both ends, is a slashed or barred 0 (Ø, Φ) as likely
    as a 1 in a tight ring: left whole, it is not read as a 1."""
    rows, cols = np.indices((80, 60))
    ring = np.abs(np.hypot((rows - 40) / 38, (cols - 30) / 28) - 1) < 0.07
    barred = ring | ((np.abs(cols - 30) < 3) & (np.abs(rows - 40) < 38))
    slashed = ring | (
        (np.abs((cols - 30) - 0.6 * (rows - 40)) < 3) & (np.hypot((rows - 40) / 38, (cols - 30) / 28) <= 1)
    )
    assert ring_band(barred, from_middle(barred)) is None
    assert ring_band(slashed, from_middle(slashed)) is None


def test_writing_that_crosses_its_ring_leaves_both_as_they_are():
    """A 7's bar drawn out through its ring: the farthest ink there is the bar's, beyond the ring's edge;
    cutting "the band" would cut the bar and leave a stretch of the ring."""
    rows, cols = np.indices((80, 70))
    ring = np.abs(np.hypot((rows - 40) / 38, (cols - 35) / 28) - 1) < 0.07
    bar = (np.abs(rows - 22) < 2) & (cols > 10) & (cols < 70)  # out beyond the ring on the right
    stem = (np.abs(cols - (60 - (rows - 22) * 20 / 50)) < 2) & (rows >= 22) & (rows < 72)
    crossed = ring | bar | stem
    assert ring_band(crossed, from_middle(crossed)) is None


def test_a_0_an_8_and_a_4_have_no_ring_to_lose():
    """A 0 holds no writing within its band; an 8's, a 6's or a 4's outermost ink is far from their box's
    ellipse in many directions."""
    rows, cols = np.indices((80, 60))
    zero = np.abs(np.hypot((rows - 40) / 38, (cols - 30) / 28) - 1) < 0.12
    eight = (np.abs(np.hypot((rows - 20) / 18, (cols - 30) / 20) - 1) < 0.15) | (
        np.abs(np.hypot((rows - 59) / 20, (cols - 30) / 28) - 1) < 0.15
    )
    four = (
        ((np.abs(cols - 40) < 3) & (rows > 2))
        | ((np.abs(rows - 50) < 3) & (cols > 2))
        | (np.abs((cols - 2) - (rows - 50) * -0.75) < 3) & (rows < 52)
    )
    assert ring_band(zero, from_middle(zero)) is None
    assert ring_band(eight, from_middle(eight)) is None
    assert ring_band(four, from_middle(four)) is None


@pytest.mark.parametrize("text", ["2", "3", "5", "7"])
def test_a_digit_in_a_ring_that_touches_it_is_read(reader, mnist, text):
    """The ring and the digit are one piece; read whole, they were a 0."""
    paper, box = marked.on_paper(glyphs(mnist, text), 3)
    picture = marked.ringed(paper, box, np.random.default_rng(0), 0.06, 0.85)
    assert len(analyse(picture).boxes) == 1  # the ring touches the digit
    digit = reader.read_digit(picture)
    assert (str(digit.digit), digit.status) == (text, OK)
