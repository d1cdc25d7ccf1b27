"""The turned-photos benchmark's pictures (benchmarks/turned_photos.py): turned on a table, or cut to the page."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import turned_photos  # noqa: E402  (a script beside its neighbours, as when it runs)


def test_a_page_turned_on_a_table_grows_and_shows_the_table_in_its_corners():
    page = Image.new("RGB", (200, 100), (230, 230, 230))
    as_it_is = Image.open(io.BytesIO(turned_photos.turned(page, 0.0, None)))
    on_table = Image.open(io.BytesIO(turned_photos.turned(page, 6.0, 60)))
    assert as_it_is.size == (200, 100)
    assert on_table.width > 200 and on_table.height > 100
    assert abs(int(np.asarray(on_table.convert("L"))[0, 0]) - 60) <= 6  # the table, JPEG's error aside


def test_a_page_cut_to_the_page_keeps_its_middle_and_the_corners_show_what_lay_beyond():
    page = Image.new("RGB", (200, 100), (230, 230, 230))
    cut = Image.open(io.BytesIO(turned_photos.turned(page, -8.0, None)))
    assert abs(cut.width - turned_photos.KEPT * 200) <= 1 and abs(cut.height - turned_photos.KEPT * 100) <= 1
    grey = np.asarray(cut.convert("L"))
    corners = [grey[0, 0], grey[0, -1], grey[-1, 0], grey[-1, -1]]
    assert min(corners) < 100 and grey[grey.shape[0] // 2, grey.shape[1] // 2] > 200
