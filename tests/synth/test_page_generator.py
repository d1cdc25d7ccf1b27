"""The page generator: pages of numbers in the scenes real pages come in."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from digits.read.load import load_image
from digits.synth import pages


@pytest.fixture(scope="module")
def digits(mnist):
    _, (x_test, y_test) = mnist
    return x_test[:200], y_test[:200]


def test_same_seed_gives_the_same_pages_and_every_scene_comes_in_turn(digits):
    first, again = pages.make_pages(*digits, 7, seed=3), pages.make_pages(*digits, 7, seed=3)
    assert [p.tobytes() for p, _, _ in first] == [p.tobytes() for p, _, _ in again]
    assert [scene for _, _, scene in first] == list(pages.SCENES)
    for _, text, scene in first:
        numbers = text.split("\n")
        assert 2 <= len(numbers) <= 4 and all(2 <= len(n) <= 5 and n.isdigit() for n in numbers), scene


def test_the_exif_scene_is_stored_on_its_side_and_loads_upright(digits):
    ((picture, _, _),) = pages.make_pages(*digits, 1, seed=0, scenes=("exif rotation",))
    data = pages.encoded(picture)
    stored = Image.open(io.BytesIO(data))
    assert stored.getexif()[0x0112] in (6, 8)
    assert load_image(data).size == stored.size[::-1]


@pytest.mark.parametrize("orientation", [6, 8])
def test_each_stored_turn_is_the_one_its_exif_orientation_undoes(orientation):
    """A mark in the upright page's top-left corner is there again once the stored file is loaded."""
    upright = Image.new("RGB", (120, 80), "white")
    upright.paste((0, 0, 0), (0, 0, 30, 20))
    stored = upright.transpose(pages._STORED_TURN[orientation])
    stored.info["exif_orientation"] = orientation
    loaded = np.asarray(load_image(pages.encoded(stored)).convert("L"))
    assert loaded.shape == (80, 120)
    assert loaded[:20, :30].mean() < 40 and loaded[-20:, -30:].mean() > 200


def test_a_sheet_on_a_desk_shows_the_desk_round_it(digits):
    ((picture, _, _),) = pages.make_pages(*digits, 1, seed=0, scenes=("sheet on a desk",))
    grey = np.asarray(picture.convert("L"), dtype=np.float32)
    corners = [grey[:5, :5], grey[:5, -5:], grey[-5:, :5], grey[-5:, -5:]]
    middle = grey[grey.shape[0] // 3 : 2 * grey.shape[0] // 3, grey.shape[1] // 3 : 2 * grey.shape[1] // 3]
    assert all(np.median(corner) != pytest.approx(np.median(middle), abs=8) for corner in corners)


def test_unknown_scenes_are_refused(digits):
    with pytest.raises(ValueError, match="scenes must be among"):
        pages.make_pages(*digits, 1, seed=0, scenes=("moon",))


def test_sheets_come_with_where_the_sheet_is(digits):
    """Photos for the sheet finder: on a desk, part of the photo is not the sheet; otherwise all of it is."""
    sheets = pages.make_sheets(*digits, 8, seed=0)
    assert [saved for saved, _ in sheets] == [saved for saved, _ in pages.make_sheets(*digits, 8, seed=0)]
    for k, (saved, sheet) in enumerate(sheets):
        picture = Image.open(io.BytesIO(saved))
        assert sheet.shape == (picture.height, picture.width) and sheet.dtype == bool
        grey = np.asarray(picture.convert("L"), dtype=np.float32)
        if k % 2 == 0:  # a sheet or a sticky note on a desk: the sheet is brighter than the desk round it
            assert 0.1 < (~sheet).mean() < 0.8
            assert np.median(grey[sheet]) > np.median(grey[~sheet])
        else:  # all sheet, but for a scanner's border
            assert sheet.mean() > 0.85


def test_a_scanners_border_is_not_the_sheet(digits):
    picture, _, sheet = pages._page(*digits, np.random.default_rng(0), "table and border")
    grey = np.asarray(picture.convert("L"), dtype=np.float32)
    assert not sheet[0].any() and not sheet[-1].any() and not sheet[:, 0].any() and sheet.mean() > 0.8
    assert grey[~sheet].max() < 0.15 * 255


def test_a_whole_sheet_fills_a_phone_photo_the_same_for_the_same_seed(digits):
    x, y = digits
    first = pages.make_whole_sheets(x, y, 2, 3, digit_cm=1.0)
    again = pages.make_whole_sheets(x, y, 2, 3, digit_cm=1.0)
    for (photo, text), (same, same_text) in zip(first, again, strict=True):
        assert max(photo.size) == 4000 and abs(photo.height / photo.width - 29.7 / 21) < 0.02
        assert text == same_text and np.array_equal(np.asarray(photo), np.asarray(same))
        assert 2 <= len(text.split("\n")) <= 4 and all(line.isdigit() for line in text.split("\n"))
    with pytest.raises(ValueError, match="more than 0"):
        pages.make_whole_sheets(x, y, 1, 0, digit_cm=0)
