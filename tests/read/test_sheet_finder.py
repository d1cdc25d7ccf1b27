"""The learned sheet finder (shipped/sheet.onnx) inside `outside_sheet`, on photos it never learnt from."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from digits.read.grey import working_grey
from digits.read.load import load_image
from digits.read.sheet import FINDER_SIDE, finder_input, finder_session, outside_sheet
from digits.synth import pages


@pytest.fixture(scope="module")
def photos(mnist):
    """Photos drawn from MNIST's *test* digits with a seed the finder was not trained on."""
    _, (x_test, y_test) = mnist
    return pages.make_sheets(x_test[:300], y_test[:300], 12, seed=7)


def test_the_shipped_finder_takes_and_gives_a_square_picture():
    session = finder_session()
    (given,), (returned,) = session.get_inputs(), session.get_outputs()
    assert tuple(given.shape[1:]) == (FINDER_SIDE, FINDER_SIDE, 1) == tuple(returned.shape[1:])


def test_what_the_finder_sees_is_centred_and_scaled():
    grey = np.random.default_rng(0).uniform(0.2, 0.4, size=(300, 500)).astype(np.float32)
    seen = finder_input(grey)
    assert seen.shape == (FINDER_SIDE, FINDER_SIDE) and seen.dtype == np.float32
    assert abs(float(np.median(seen))) < 1e-3


def test_the_desk_round_a_sheet_is_left_out_and_a_whole_sheet_is_kept(photos):
    from scipy import ndimage

    for k, (saved, sheet) in enumerate(photos):
        grey, _ = working_grey(load_image(saved))
        outside = outside_sheet(grey)
        desk = np.asarray(Image.fromarray(np.uint8(~sheet) * 255).resize(grey.shape[::-1])) > 127
        if k % 2 == 0:  # on a desk: most of the desk is found, and the sheet's inside is left to the reader
            assert outside is not None, k
            assert (outside & desk).sum() > 0.8 * desk.sum(), k
            # Within 3 % of the photo's size from its edge, the sheet may be taken for desk; the finder sees 64×64.
            inside = ~ndimage.binary_dilation(desk, iterations=round(0.03 * max(grey.shape)))
            assert (outside & inside).sum() < 0.02 * inside.sum(), k
        else:  # all sheet, or a sheet in a scanner's thin border
            assert outside is None or outside.mean() < 0.2, k


def test_a_plain_picture_has_no_sheet_to_find():
    flat = np.full((200, 300), 0.8, dtype=np.float32)
    assert outside_sheet(flat) is None
    saved = io.BytesIO()
    Image.new("L", (300, 200), 200).save(saved, format="PNG")
    assert outside_sheet(working_grey(load_image(saved.getvalue()))[0]) is None
