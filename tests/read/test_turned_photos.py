"""A page photographed turned a few degrees: its sheet's edges, its shaded rim and the picture's corners
are no writing, and a digit broken across stays on its line.

Built from MNIST's test digits on generated paper, as a phone or a skewed scan shows them.
"""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter
from test_reader import REAL, mnist_page, needs_real, real_rows

from digits.read.layout import find_lines
from digits.read.reader import Reader
from digits.read.refusal import scattered_strokes
from digits.spec import OK
from digits.synth.pages import encoded, make_pages

NUMBERS = ["123", "4567"]


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


def photographed(page: Image.Image, turn: float, table: int, rim: float = 0.0) -> bytes:
    """`page` as a photo: darker towards its rim by `rim` (a webcam's vignette), turned `turn` degrees on a
    table of grey level `table`, saved as a JPEG."""
    grey = np.asarray(page.convert("L"), np.float32)
    rows, cols = np.indices(grey.shape)
    distance = np.hypot((rows / grey.shape[0] - 0.5) * 2, (cols / grey.shape[1] - 0.5) * 2) / np.sqrt(2)
    shaded = Image.fromarray((grey * (1 - rim * distance**2)).clip(0, 255).astype(np.uint8))
    turned = shaded.rotate(turn, Image.Resampling.BICUBIC, expand=True, fillcolor=table)
    buffer = io.BytesIO()
    turned.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("turn", [5, -4])
def test_a_sheet_darker_at_its_rim_turned_on_a_dark_desk_is_read(reader, mnist, turn):
    """The paper's light is estimated up to the sheet's edge as up to the picture's: left out of the
    average there, the rim of a vignetted sheet was estimated as bright as its middle, and a band of
    "ink" round the sheet swallowed the numbers."""
    photo = photographed(mnist_page(mnist, NUMBERS), turn, table=50, rim=0.5)
    assert reader.read_page(photo).text == "\n".join(NUMBERS)


@needs_real
@pytest.mark.parametrize(("turn", "table"), [(5, 60), (-6, 200)])
def test_a_real_webcam_photo_turned_on_a_table_reads_as_upright(reader, turn, table):
    """A development photo whose corners are dark (a webcam's vignette), turned on a dark and on a light
    table. On the light one, what stays of the rim's shade lies along the sheet's edge, thicker than a
    ruled line: it is not writing (the 1 was read together with it, and the 3 beside it as an 8)."""
    name = "filippo__img-20201229-22648.png"
    [row] = [row for row in real_rows("multi") if row["file"] == name]
    picture = Image.open(REAL / "multi" / name).convert("RGB")
    turned = picture.rotate(turn, Image.Resampling.BICUBIC, expand=True, fillcolor=(table,) * 3)
    buffer = io.BytesIO()
    turned.save(buffer, "JPEG", quality=90)
    assert reader.read_page(buffer.getvalue()).text == row["text"] == "123"


def test_the_dark_corners_of_a_turned_photo_are_no_digits(reader, mnist):
    """A page turned 8 degrees and cut to its middle shows what lay beyond it in its corners as thin dark
    wedges: two of them were read as 1s, one before the first number and one after the last."""
    _, (x_test, y_test) = mnist
    page, text, scene = make_pages(x_test, y_test, 26, 0)[25]
    assert (text, scene) == ("557\n380\n50\n91516", "arc")
    picture = Image.open(io.BytesIO(encoded(page))).convert("RGB")
    turned = picture.rotate(-8, Image.Resampling.BICUBIC, expand=True)
    (width, height), (wide, high) = picture.size, turned.size
    cut = turned.crop(
        ((wide - 0.85 * width) / 2, (high - 0.85 * height) / 2, (wide + 0.85 * width) / 2, (high + 0.85 * height) / 2)
    )
    buffer = io.BytesIO()
    cut.save(buffer, "JPEG", quality=90)
    assert reader.read_page(buffer.getvalue()).text == text


def test_a_digit_broken_across_is_on_one_line_on_a_tilted_photo():
    """A 6 whose loop came off its stem, on a line climbing 8 degrees: the loop overlaps its neighbours'
    heights too little to join their line, and made a line of its own (a "0" under the number)."""
    boxes = {
        1: (101, 85, 132, 119),  # a line above: 58221
        2: (145, 77, 172, 111),
        3: (196, 71, 222, 105),
        4: (239, 66, 258, 99),
        5: (275, 59, 294, 90),
        6: (75, 152, 86, 170),  # the 6's stem
        7: (73, 171, 87, 185),  # ... and its loop
        8: (108, 147, 139, 173),  # 5634 beside it
        9: (160, 138, 177, 171),
        10: (187, 133, 212, 164),
        11: (222, 124, 252, 158),
    }
    areas = np.array([0] + [(b[2] - b[0]) * (b[3] - b[1]) // 3 for b in boxes.values()])
    lines = find_lines(SimpleNamespace(boxes=boxes, areas=areas))
    assert sorted(map(sorted, lines)) == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]


def test_two_lines_stay_apart_however_near_two_of_their_pieces_come():
    """Only a piece that made a line of its own joins the line of the rest of its digit (a review's case)."""
    boxes = {
        1: (0, 0, 20, 30),
        2: (30, 0, 50, 30),
        3: (60, 12, 78, 30),  # a short piece ending the first line...
        4: (0, 33, 20, 63),
        5: (30, 33, 50, 63),
        6: (60, 31, 78, 49),  # ...a pixel above a short piece of the second
    }
    areas = np.array([0] + [(b[2] - b[0]) * (b[3] - b[1]) // 3 for b in boxes.values()])
    assert sorted(map(sorted, find_lines(SimpleNamespace(boxes=boxes, areas=areas)))) == [[1, 2, 3], [4, 5, 6]]


def test_a_bold_seven_in_a_pictures_corner_is_no_wedge(reader):
    """A 7 whose bar and stem run along two sides of the picture is no solid triangle (a review's case)."""
    picture = Image.new("L", (200, 200), 255)
    draw = ImageDraw.Draw(picture)
    draw.rectangle([70, 0, 199, 26], fill=0)
    draw.rectangle([173, 0, 199, 160], fill=0)
    assert reader.read_digit(picture).digit == 7


@pytest.mark.parametrize("gap", [6, 10, 24])
def test_a_bold_digit_near_a_notes_edge_is_kept(reader, gap):
    """A bold 1 written `gap` px from the edge of a note on a dark desk, the photo turned 3 degrees: it lies
    along the note's rim, but no thicker than the writing, so it is no shade (a review's case)."""
    picture = Image.new("L", (640, 480), 60)
    draw = ImageDraw.Draw(picture)
    draw.rectangle([200, 120, 439, 359], fill=235)
    draw.rectangle([200 + gap, 180, 218 + gap, 300], fill=40)
    draw.ellipse([248 + gap, 180, 328 + gap, 300], outline=40, width=18)
    turned = picture.filter(ImageFilter.GaussianBlur(1)).rotate(3, Image.Resampling.BICUBIC, fillcolor=60)
    noisy = np.asarray(turned, np.float32) + np.random.default_rng(1).normal(0, 3, (480, 640))
    buffer = io.BytesIO()
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=92)
    assert reader.read_page(buffer.getvalue()).text == "10"


def test_numbers_made_almost_only_of_ones_on_many_lines_are_strokes(reader, mnist):
    def number(text: str) -> list:
        return [SimpleNamespace(digit=int(d), status=OK) for d in text]

    grain = [number(text) for text in ("1", "11", "1", "51", "111", "1")]
    assert scattered_strokes(grain)
    assert not scattered_strokes(grain[:4])  # a page of a few numbers may be all 1s
    assert not scattered_strokes([number(text) for text in ("1101", "2024", "17", "11", "1")])
    for page in (["11", "111", "1"], ["1", "17", "11"]):
        assert reader.read_page(mnist_page(mnist, page)).text == "\n".join(page)


def _turned_jpeg(picture: Image.Image, turn: float, fill: int) -> bytes:
    turned = picture.convert("RGB").rotate(turn, Image.Resampling.BICUBIC, expand=True, fillcolor=(fill,) * 3)
    buffer = io.BytesIO()
    turned.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@needs_real
@pytest.mark.parametrize("name", ["niraj__1.jpeg", "filippo__img-202114-215724.png"])
def test_a_grey_photo_turned_with_its_corners_filled_light_reads_as_upright(reader, name):
    """A photo of paper in dim light turned as an editor turns it, the corners it opens filled light
    grey: brighter than the paper, the corners were no table the sheet finders knew, and the picture
    gave nothing. Each corner is one flat level in a right triangle (`sheet._filled_corners`)."""
    [row] = [row for row in real_rows("multi") if row["file"] == name]
    photo = _turned_jpeg(Image.open(REAL / "multi" / name), -6, 200)
    assert reader.read_page(photo).text == row["text"]


def test_a_sheet_on_a_desk_turned_with_its_corners_filled_light_is_found(reader, mnist):
    """The filled corners take the level of the desk beside them before the sheet is looked for: a
    light fill round a dark desk split the picture's brightness between the corners and the rest."""
    _, (x_test, y_test) = mnist
    page, text, scene = make_pages(x_test, y_test, 9, 0)[8]
    assert scene == "sheet on a desk"
    photo = _turned_jpeg(Image.open(io.BytesIO(encoded(page))), -6, 200)
    assert reader.read_page(photo).text == text


def test_only_a_turns_flat_corners_are_filled_corners():
    """Four flat right triangles of one level, each ending in a step, are; a page unturned, a turn filled
    with the paper's own level (its corners run on into the paper, beyond any triangle) and a mild
    vignette (its corners flat, but the light rising gently past them: a review's case) are not."""
    from digits.read.sheet import _coarse, _filled_corners

    page = Image.new("L", (400, 300), 235)
    ImageDraw.Draw(page).text((150, 130), "1 2 3", fill=20)
    noise = np.random.default_rng(0).normal(0, 4, (300, 400))
    page = Image.fromarray((np.asarray(page, np.float32) + noise).clip(0, 255).astype(np.uint8))

    def corners(picture: Image.Image) -> np.ndarray | None:
        return _filled_corners(_coarse(np.asarray(picture, np.float32) / 255))

    assert corners(page) is None
    assert corners(page.rotate(-6, Image.Resampling.BICUBIC, expand=True, fillcolor=235)) is None
    rows, cols = np.indices((300, 400))
    radius = np.hypot((cols - 200) / 200, (rows - 150) / 150)
    vignetted = np.asarray(page, np.float32) - 40 * np.clip(radius - 0.4, 0, None) ** 2  # corners 40 levels darker
    assert corners(Image.fromarray(vignetted.clip(0, 255).astype(np.uint8))) is None
    found = corners(page.rotate(-6, Image.Resampling.BICUBIC, expand=True, fillcolor=200))
    assert found is not None
    assert all(corner.any() for corner in (found[:5, :5], found[:5, -5:], found[-5:, :5], found[-5:, -5:]))
    height, width = found.shape
    assert not found[height // 4 : -height // 4, width // 4 : -width // 4].any()
