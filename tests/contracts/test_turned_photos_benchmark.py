"""The turned-photos benchmark's pictures (benchmarks/turned_photos.py): turned on a table, cut to the page,
or narrower at the top."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import turned_photos  # noqa: E402  (a script beside its neighbours, as when it runs)

CONDITIONS = dict(turned_photos.CONDITIONS)
PAGE = Image.new("RGB", (200, 100), (230, 230, 230))


def grey(condition: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(turned_photos.photographed(PAGE, CONDITIONS[condition]))).convert("L"))


def test_a_page_turned_on_a_table_grows_and_shows_the_table_in_its_corners():
    assert grey("as it is").shape == (100, 200)
    on_table = grey("turned 5° on a dark desk")
    assert on_table.shape[0] > 100 and on_table.shape[1] > 200
    assert abs(int(on_table[0, 0]) - 60) <= 6  # the table, JPEG's error aside


def test_a_page_cut_to_the_page_keeps_its_middle_and_the_corners_show_what_lay_beyond():
    cut = grey("turned −8°, cut to the page")
    assert abs(cut.shape[1] - turned_photos.KEPT * 200) <= 1 and abs(cut.shape[0] - turned_photos.KEPT * 100) <= 1
    assert min(cut[0, 0], cut[0, -1], cut[-1, 0], cut[-1, -1]) < 100 and cut[50, 85] > 200


def test_a_page_narrower_at_its_top_shows_the_desk_beside_its_top_only():
    slanted = grey("8 % narrower at its top, on a dark desk")
    assert slanted.shape == (100, 200)
    assert slanted[0, 0] < 100 and slanted[0, -1] < 100  # the desk beside the page's top corners
    assert slanted[-1, 2] > 200 and slanted[-1, -3] > 200 and slanted[50, 100] > 200
