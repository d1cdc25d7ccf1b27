"""Rules fainter than the writing, broken into pieces by the threshold, are not writing (`read.faint_rules`)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_reader import mnist_page

from digits.read.reader import Reader
from digits.synth import photograph
from digits.synth.pages import _paint_rules


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


def _on_ruled_paper_with_a_margin(mnist, seed: int) -> tuple[Image.Image, str]:
    """A photographed number of 2 to 5 MNIST test digits standing on a notebook's pale blue line, its red
    margin down the left: the probe that found "6210" read "16210" (a margin 30 to 90 px tall digits)."""
    _, (x_test, y_test) = mnist
    rng = np.random.default_rng(seed)
    count = int(rng.integers(2, 6))
    chosen = rng.integers(len(x_test), size=count)
    style = photograph.paper_style(rng, (30, 90))
    while style.chalk:
        style = photograph.paper_style(rng, (30, 90))
    glyphs = [photograph.digit_coverage(x_test[i], style, rng, max_angle=6) for i in chosen]
    spacing = style.height * rng.uniform(1.15, 1.6)
    gaps = rng.uniform(0.15, 0.6, size=count) * style.height
    start = int(rng.uniform(0.8, 2.0) * style.height)
    base = int(spacing * rng.uniform(1.1, 1.6))
    offsets, left = [], start
    for glyph, gap in zip(glyphs, gaps, strict=True):
        bottom = base + int(rng.uniform(-0.05, 0.0) * style.height)
        offsets.append((max(0, bottom - glyph.shape[0]), left))
        left += glyph.shape[1] + int(gap) + 2
    shape = (base + int(spacing * rng.uniform(0.6, 1.4)), left + int(rng.uniform(0.5, 1.5) * style.height))
    picture = photograph.render(glyphs, offsets, shape, style, rng)
    rows = [int(base + k * spacing) for k in range(-4, 4) if 0 <= base + k * spacing < shape[0]]
    margin = int(start * rng.uniform(0.3, 0.7))
    return _paint_rules(picture, rows, margin, rng), "".join(str(int(y_test[i])) for i in chosen)


@pytest.mark.parametrize("seed", [4, 18, 19, 28])
def test_a_faint_margin_in_pieces_is_no_1(reader, mnist, seed):
    """Light red, the margin crossed the threshold in pieces, each too short for a rule, and the longest read
    as a 1 beside the number or on a line of its own (these seeds, of the first 30); their ink, a third of the
    writing's, and their straightness tell them."""
    picture, number = _on_ruled_paper_with_a_margin(mnist, seed)
    assert reader.read_page(picture).text == number


def test_a_digit_at_half_the_ink_of_its_neighbours_is_writing(reader, mnist):
    """A 7 written lighter than the 1 and 4 beside it, at half their contrast: its straight strokes stay.
    (Fainter than that, step 4 of the pipeline does not find it at all.)"""
    page = np.asarray(mnist_page(mnist, ["714"]).convert("L")).astype(int)
    seven = slice(14 * 3, 42 * 3)  # `mnist_page` writes its first digit there
    page[:, seven] = 255 - (255 - page[:, seven]) // 2
    assert reader.read_page(Image.fromarray(page.astype(np.uint8))).text == "714"
