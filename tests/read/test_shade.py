"""Shade that passes for ink (`digits.read.shade`): soft-edged components beside crisp writing are light."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from digits.read.pieces import writing_pieces
from digits.read.reader import Reader
from digits.read.shade import soft_shade
from digits.synth.pages import encoded, make_whole_sheets


def _smoothed_and_labelled(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    smooth = ndimage.gaussian_filter(ink, 0.7)
    labels, count = ndimage.label(smooth > 0.5)
    return smooth, labels, np.bincount(labels.ravel(), minlength=count + 1)


def _band_and_strokes(strokes: int) -> np.ndarray:
    ink = np.zeros((200, 200), np.float32)
    ink[20:180, 140:] = np.clip(np.arange(60) / 40.0, 0, 1.2)[None, :]  # a band fading in over 40 px
    for k in range(strokes):  # strokes 4 px wide that stop at their edges
        ink[40:160, 20 + 25 * k : 24 + 25 * k] = 1.0
    return ink


def test_a_band_of_shade_beside_crisp_strokes_is_named_and_the_strokes_are_not():
    smooth, labels, areas = _smoothed_and_labelled(_band_and_strokes(3))
    before = labels.copy(), areas.copy()
    assert (areas[1:] > 0).sum() == 4
    assert soft_shade(smooth, labels, areas, 0.01, 2, ndimage.find_objects(labels)) == [labels[100, 190]]
    assert (labels == before[0]).all() and (areas == before[1]).all()  # the caller's arrays are left alone


def test_a_soft_shape_alone_is_kept():
    """Nothing crisp beside it: a soft shape may be a digit out of focus, so it stays."""
    smooth, labels, areas = _smoothed_and_labelled(_band_and_strokes(0))
    assert soft_shade(smooth, labels, areas, 0.01, 2, ndimage.find_objects(labels)) == []


def test_specks_beside_a_soft_shape_count_only_where_it_fades_as_shade_does():
    """Sixty crisp dots, each under 1 % of the soft shape's area and 7 % of it in all: specks beside it, which
    go with the other specks if it stays. Beside shade that fades over 40 px they count, and it goes; beside
    a shape that fades over 25 px, as soft as a digit out of focus, they do not vote it out."""
    for fade, is_shade in ((40, True), (25, False)):
        ink = np.zeros((200, 200), np.float32)
        ink[20:180, 140:] = np.clip(np.arange(60) / fade, 0, 1.2)[None, :]
        for row in range(30, 170, 12):
            for col in range(10, 120, 22):
                ink[row : row + 3, col : col + 3] = 1.0
        smooth, labels, areas = _smoothed_and_labelled(ink)
        soft, dots = labels[100, 190], areas[1:].copy()
        dots[soft - 1] = 0
        assert dots.max() < 0.01 * areas[soft] and dots.sum() > 0.05 * areas[soft]
        assert soft_shade(smooth, labels, areas, 0.01, 2, ndimage.find_objects(labels)) == ([soft] if is_shade else [])


def test_a_band_larger_than_the_writing_goes_before_the_writing_is_told_from_specks():
    """Writing in strokes of less than 1 % of the band's area: were specks told before the band went,
    every stroke would be one beside it, and the band all that stayed."""
    ink = np.zeros((400, 400), np.float32)
    fading = np.clip(np.minimum(np.arange(120), np.arange(120)[::-1]) / 40.0, 0, 1.0)  # in and out over 40 px
    for row in range(20, 380):  # a slanted band, thinner than a blob (a solid rectangle is one)
        ink[row, 250 + (row - 20) // 12 :][:120] = fading
    for k in range(12):  # slanted strokes 4 px wide (a solid rectangle would be a blob)
        for row in range(100, 140):
            ink[row, 20 + 18 * k + (row - 100) // 4 :][:4] = 1.0
    smooth = ndimage.gaussian_filter(ink, 0.7)
    mask = smooth > 0.5
    band = int(mask[:, 258:].sum())
    labels, areas = writing_pieces(mask, ink=smooth)
    assert not labels[:, 258:].any()  # the band went...
    assert all(labels[120, 26 + 18 * k] for k in range(12))  # ...and every stroke stayed
    assert areas[labels[120, 26]] < 0.01 * band  # each stroke a speck beside the band
    labels, _ = writing_pieces(mask)
    assert labels[:, 258:].any()  # without the ink to measure edges on, the band stays


def test_a_ruled_line_two_pixels_wide_is_crisp():
    """Along a thin line the ridge is part of its edge, where the gradient is nil: the step off it counts."""
    ink = _band_and_strokes(0)
    ink[9:11, :] = 1.0  # rules across the top and the bottom, two pixels wide, beside the band
    ink[189:191, 5:195] = 1.0
    smooth, labels, areas = _smoothed_and_labelled(ink)
    shade = soft_shade(smooth, labels, areas, 0.01, 2, ndimage.find_objects(labels))
    assert labels[10, 100] not in shade and labels[190, 100] not in shade  # the rules stay...
    assert shade == [labels[100, 190]]  # ...and beside them, crisper by far, the band goes


def test_a_sheet_with_a_band_of_shade_down_its_side_is_read(mnist):
    """A whole sheet whose right side lies in a shade band (generated, seed 5: the 18th at 1 cm): the band
    made three lines of its own in place of the numbers, and the page gave nothing."""
    _, (x_test, y_test) = mnist
    photo, text = make_whole_sheets(x_test, y_test, 18, 5, 1.0)[17]
    assert Reader().read_page(encoded(photo)).text == text == "18\n77223\n4888\n566"


def _out_of_focus(digit: np.ndarray, rng: np.random.Generator, dots: bool = False) -> bytes:
    """An MNIST digit, bold, alone in a 2000 px photo, out of focus (blurred by 40 px) on unevenly lit, grainy
    paper; with `dots`, sixty crisp dots of dust 16 px wide above it."""
    shape = Image.fromarray(np.uint8(digit > 100) * 255).resize((1400, 1400), Image.Resampling.NEAREST)
    inked = np.zeros((2000, 2000), np.float32)
    inked[300:1700, 300:1700] = np.asarray(shape.filter(ImageFilter.GaussianBlur(25))) > 127
    light = 0.75 + np.linspace(-0.08, 0.08, 2000, dtype=np.float32)[None, :]
    photo = Image.fromarray(np.uint8(np.clip(light - 0.55 * inked, 0, 1) * 255)).filter(ImageFilter.GaussianBlur(40))
    if dots:
        draw = ImageDraw.Draw(photo)
        for y in np.linspace(48, 252, 3):
            for x in np.linspace(80, 1920, 20):
                draw.ellipse((x - 8, y - 8, x + 8, y + 8), fill=25)
    grain = np.asarray(photo, np.float32) / 255 + rng.normal(0, 0.02, (2000, 2000))
    buffer = io.BytesIO()
    Image.fromarray(np.uint8(np.clip(grain, 0, 1) * 255)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def test_a_digit_out_of_focus_is_still_read(mnist):
    """Its edges measure as soft as shade's, and without crisper ink beside it, it stays."""
    _, (x_test, y_test) = mnist
    reader, rng = Reader(), np.random.default_rng(0)
    for index in range(4):
        assert reader.read_digit(_out_of_focus(x_test[index], rng)).digit == y_test[index]


def test_a_digit_out_of_focus_beside_dust_is_still_read(mnist):
    """Crisp dots of dust, together more than 5 % of the digit's area but each a speck beside it, do not make
    it shade (a review's case: the 1 was lost, and nothing was read)."""
    _, (x_test, y_test) = mnist
    assert y_test[2] == 1
    photo = _out_of_focus(x_test[2], np.random.default_rng(0), dots=True)
    assert Reader().read_digit(photo).digit == 1
