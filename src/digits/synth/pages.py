"""Photo-like pages of 2 to 4 handwritten numbers, in the scenes real pages come in.

Two real pages cannot say which kinds of page `digits read` gets wrong, and
the real ones must not be tuned on. This module renders pages from MNIST
digits (the benchmarks use the *test* digits) in the scenes issue 19 names,
so each can be measured apart and a change to the reader's rules can be
judged on pictures that are not the real ones (`benchmarks/synth_pages.py`):

  * `sheet`: a whole photo of paper with the numbers on it;
  * `sheet on a desk`: a smaller sheet, turned a little, on a dark, wooden
    or grey desk that fills the rest of the photo;
  * `sticky note`: a small yellow note on a desk, its numbers close together;
  * `ruled paper`: blue lines under the numbers (each number sits on one) and
    a red margin;
  * `arc`: each number written along a gentle curve, its middle digits up to
    0.8 of a digit's height above (or below) its ends;
  * `table and border`: the numbers in the cells of a ruled table, with the
    black border a scanner leaves along a page's top, bottom and left edges;
  * `exif rotation`: a sheet stored on its side with the EXIF orientation
    that turns it upright, as phones save photos.

`make_whole_sheets` writes the numbers small on a whole A4 sheet that fills a
phone's photo (`benchmarks/whole_sheets.py`).

`make_sheets` draws photos of the same scenes from wider ranges of desks,
each with the mask of its sheet: what `digits.train.sheet_finder` learns
from, with MNIST's *training* digits.

Each page's text is its numbers top to bottom, joined with "\\n", as
`Page.text` gives them. A number's digits never touch, as in
`digits.synth.photograph.make_lines`. Everything is drawn from one
`numpy.random.Generator` seeded by the caller: the same seed gives the same pages.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import ExifTags, Image

from digits.synth import photograph

__all__ = ["SCENES", "encoded", "make_pages", "make_sheets", "make_whole_sheets"]

SCENES = ("sheet", "sheet on a desk", "sticky note", "ruled paper", "arc", "table and border", "exif rotation")

_DESKS = {"dark desk": (0.16, 0.14, 0.13), "wood": (0.52, 0.36, 0.22), "grey desk": (0.42, 0.43, 0.45)}
_RULE_BLUE = np.array((0.45, 0.62, 0.85))
_MARGIN_RED = np.array((0.85, 0.35, 0.35))
# A sheet of A4 paper, its width and height in centimetres, and the long side of a 12-megapixel phone photo.
_A4 = (21.0, 29.7)
_PHOTO_SIDE = 4000
# EXIF orientation -> the turn that the stored picture got (Image.transpose), which the tag undoes.
_STORED_TURN = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def _number(x, y, rng, style, arc: bool) -> tuple[list[np.ndarray], list[tuple[int, int]], str, int, int]:
    """One number: glyphs, their offsets from the line's top left, its text, its width and how far its arc rises."""
    count = int(rng.integers(2, 6))
    indices = rng.choice(len(x), size=count)
    glyphs = [photograph.digit_coverage(x[i], style, rng, max_angle=8) for i in indices]
    gaps = rng.uniform(0.2, 0.6, size=count - 1) * style.height
    # On an arc the digits climb (or fall) along a parabola; otherwise they wobble a little.
    bend = rng.uniform(0.4, 0.8) * style.height * rng.choice([-1, 1]) if arc else 0.0
    offsets, left = [], 0
    for k, glyph in enumerate(glyphs):
        along = k / max(count - 1, 1) * 2 - 1  # -1 .. 1 over the number
        rise = bend * (1 - along**2) + rng.uniform(-0.06, 0.06) * style.height
        offsets.append((int(round(style.height * 0.6 - glyph.shape[0] / 2 - rise)), left))
        left += glyph.shape[1] + (int(gaps[k]) + 2 if k < count - 1 else 0)
    return glyphs, offsets, "".join(str(int(y[i])) for i in indices), left, int(abs(bend))


def _lines(x, y, rng, style, scene: str) -> tuple[list, list, list[str], int, int, list[int]]:
    """2 to 4 numbers stacked: glyphs, offsets, texts, the block's height and width, and each line's baseline."""
    glyphs, offsets, texts, baselines = [], [], [], []
    spacing = style.height * (rng.uniform(1.5, 1.9) if scene != "sticky note" else rng.uniform(1.35, 1.6))
    top, width = int(style.height * 0.3), 0
    for _ in range(int(rng.integers(2, 5))):
        line_glyphs, line_offsets, text, line_width, rise = _number(x, y, rng, style, scene == "arc")
        # A number that rises on an arc takes that much more room, above or below: lines never interleave.
        top += rise
        indent = int(rng.uniform(0, 1.5) * style.height)
        glyphs += line_glyphs
        offsets += [(top + t, indent + left) for t, left in line_offsets]
        texts.append(text)
        baselines.append(int(top + style.height * 1.15))
        width = max(width, indent + line_width)
        top += int(spacing) + rise
    return glyphs, offsets, texts, top, width, baselines


def _paint_rules(image: Image.Image, rows: list[int], margin: int, rng) -> Image.Image:
    """Thin coloured rules across the paper: ruled-paper lines under the numbers, and a margin down column `margin`."""
    pixels = np.asarray(image, dtype=np.float32) / 255
    width = max(1, pixels.shape[0] // 400)
    strength = rng.uniform(0.5, 0.85)
    bands = [(pixels[max(0, row) : row + width], _RULE_BLUE) for row in rows]
    bands.append((pixels[:, margin : margin + width], _MARGIN_RED))
    for band, colour in bands:
        band[:] = band * (1 - strength) + colour * band.mean() * strength * 1.1
    return photograph.to_image(pixels)


def _table(image: Image.Image, baselines: list[int], column: int, height: float, rng) -> tuple[Image.Image, np.ndarray]:
    """Dark table rules between the lines and down `column` beside the numbers, and a scanner's black border.

    Returns the picture and where the sheet is (everything inside the border).
    """
    pixels = np.asarray(image, dtype=np.float32) / 255
    rows, cols = pixels.shape[:2]
    rule = max(1, round(height / 25))
    ink = rng.uniform(0.1, 0.3)
    for row in [baselines[0] - int(height * 1.35)] + [b + int(height * 0.2) for b in baselines]:
        pixels[max(0, row) : max(0, row) + rule, :] *= ink
    pixels[:, column : column + rule] *= ink
    border = max(3, int(rng.uniform(0.01, 0.04) * max(rows, cols)))
    dark = rng.uniform(0.02, 0.12)
    left = int(border * rng.uniform(0.5, 1.5))
    sheet = np.zeros((rows, cols), dtype=bool)
    sheet[border : rows - border, left:] = True
    pixels[~sheet] = dark
    return photograph.to_image(pixels), sheet


def _on_a_desk(sheet: Image.Image, rng, scale: float, varied: bool = False) -> tuple[Image.Image, np.ndarray]:
    """The sheet, turned up to 6°, on a desk `scale` times its size, lit and noisy like a photo.

    Returns the photo and where the sheet is in it. `varied` draws from wider
    ranges (any dark to mid colour, rougher grain, up to 8°, anywhere in the
    photo): what the sheet finder learns from (`digits.train.sheet_finder`),
    so that the benchmark's desks lie inside what it saw rather than being it.
    """
    if varied and rng.random() < 0.5:
        desk_colour = np.clip(rng.uniform(0.05, 0.6) + rng.uniform(-0.12, 0.12, 3), 0.02, 0.8)
    else:
        desk_colour = photograph.pick(rng, _DESKS)
    angle = float(rng.uniform(-8, 8) if varied else rng.uniform(-6, 6))
    turned = sheet.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0))
    mask = Image.new("L", sheet.size, 255).rotate(angle, Image.Resampling.BICUBIC, expand=True)
    width, height = (int(side * scale) for side in turned.size)
    grain, blotch = (rng.uniform(0.02, 0.15), rng.uniform(10, 60)) if varied else (0.06, 30)
    texture = 1 + grain * photograph.smooth_noise(rng, (height, width), max(width, height) / blotch)[..., None]
    desk = photograph.to_image(desk_colour * texture)
    place = (0.05, 0.95) if varied else (0.2, 0.8)
    left = int(rng.uniform(*place) * (width - turned.width))
    top = int(rng.uniform(*place) * (height - turned.height))
    desk.paste(turned, (left, top), mask)
    on_sheet = Image.new("L", (width, height), 0)
    on_sheet.paste(mask, (left, top), mask)
    pixels = np.asarray(desk, dtype=np.float32) / 255
    pixels *= photograph.lighting(rng, (height, width)).astype(np.float32)[..., None]
    pixels += 0.02 * rng.standard_normal(size=pixels.shape, dtype=np.float32)
    return photograph.to_image(pixels), np.asarray(on_sheet) > 127


def _style(rng, scene: str):
    """A page's paper and pen (`photograph.paper_style`): paper, or a sticky note's yellow, and a pen dark
    enough to read; not compressed, as the finished photo is."""
    height_range = (22, 40) if scene == "sticky note" else (28, 70)
    style = photograph.paper_style(rng, height_range)
    style.chalk = False  # pages are paper
    style.paper = np.array((0.98, 0.93, 0.55)) if scene == "sticky note" else np.clip(style.paper, 0.75, 1)
    if np.ptp(style.ink) < 0.05 or style.ink.max() > 0.6:  # a page's ink: a pen, dark enough to read
        style.ink = np.array((0.08, 0.08, 0.10))
    style.jpeg = 0
    return style


def _page(x, y, rng, scene: str, varied: bool = False) -> tuple[Image.Image, str, np.ndarray]:
    """A page of `scene`: (picture, text, where the sheet is in the picture as it is stored)."""
    style = _style(rng, scene)
    glyphs, offsets, texts, block_height, block_width, baselines = _lines(x, y, rng, style, scene)
    margin = rng.uniform(0.8, 2.0, size=4) * style.height
    if scene == "table and border":
        margin = np.maximum(margin, 1.6 * style.height)
    top, left = int(margin[0]), int(margin[2])
    shape = (top + block_height + int(margin[1]), left + block_width + int(margin[3]))
    image = photograph.render(glyphs, [(t + top, c + left) for t, c in offsets], shape, style, rng)
    baselines = [b + top for b in baselines]
    sheet = np.ones(shape, dtype=bool)
    if scene == "ruled paper":
        step = int(np.median(np.diff(baselines)))  # a page has 2 to 4 lines
        rows = list(range(baselines[0] % step, shape[0], step))
        image = _paint_rules(image, rows, left - int(style.height * 0.4), rng)
    elif scene == "table and border":
        image, sheet = _table(image, baselines, left - int(style.height * 0.5), style.height, rng)
    if scene in ("sheet on a desk", "sticky note"):
        # As people photograph them: the sheet fills a good part of the photo, a sticky note less.
        scale = rng.uniform(1.15, 1.6) if scene == "sheet on a desk" else rng.uniform(1.3, 2.0)
        image, sheet = _on_a_desk(image, rng, scale, varied)
    if scene == "exif rotation":
        orientation = int(rng.choice(sorted(_STORED_TURN)))
        image = image.transpose(_STORED_TURN[orientation])
        image.info["exif_orientation"] = orientation
        sheet = np.ones((image.height, image.width), dtype=bool)
    return image, "\n".join(texts), sheet


def make_pages(x, y, n: int, seed: photograph.Seed, scenes=SCENES) -> list[tuple[Image.Image, str, str]]:
    """`n` pages of numbers written with the MNIST digits (x, y): (picture, text, scene), scenes in turn.

    A picture of the `exif rotation` scene is stored on its side; `encoded`
    saves it as a JPEG whose EXIF orientation turns it upright.
    """
    x, y = np.asarray(x), np.asarray(y)
    photograph.check_digits(x, y)
    unknown = set(scenes) - set(SCENES)
    if unknown or not scenes:
        raise ValueError(f"scenes must be among {', '.join(SCENES)}; not {', '.join(sorted(unknown)) or 'none'}.")
    rng = photograph.random_stream(seed, 4)
    pages = []
    for k in range(n):
        scene = scenes[k % len(scenes)]
        picture, text, _ = _page(x, y, rng, scene)
        pages.append((picture, text, scene))
    return pages


def make_whole_sheets(x, y, n: int, seed: photograph.Seed, digit_cm: float) -> list[tuple[Image.Image, str]]:
    """`n` phone photos of a whole A4 sheet, 2 to 4 numbers written on it with digits `digit_cm` tall, as a
    page of homework or a form is photographed: (picture, text).

    The numbers stand anywhere across the sheet and on its upper two thirds; the sheet, lit as the scenes'
    paper is, fills a 12-megapixel frame (`_PHOTO_SIDE` on its long side), so the writing is a small part
    of a big picture. Each photo has its own stream, apart from `make_pages`'s: the photos of one seed at two
    heights hold the same numbers in the same places on the sheet.
    """
    x, y = np.asarray(x), np.asarray(y)
    photograph.check_digits(x, y)
    if not digit_cm > 0:
        raise ValueError(f"digit_cm is a height in centimetres, more than 0; not {digit_cm}.")
    photos = []
    for k in range(n):
        # A stream per photo: the same numbers, pen, paper and light on the sheet whatever `digit_cm` is.
        rng = photograph.random_stream((*np.atleast_1d(seed).tolist(), k), 6)
        style = _style(rng, "sheet")
        glyphs, offsets, texts, block_height, block_width, _ = _lines(x, y, rng, style, "sheet")
        per_cm = style.height / digit_cm
        width = max(int(_A4[0] * per_cm), block_width + 2 * int(style.height))
        height = max(int(_A4[1] * per_cm), block_height + 2 * int(style.height))
        top, left = (
            int(rng.uniform(0.05, 0.65) * (height - block_height)),
            int(rng.uniform(0.05, 0.95) * (width - block_width)),
        )
        sheet = photograph.render(glyphs, [(t + top, c + left) for t, c in offsets], (height, width), style, rng)
        zoom = _PHOTO_SIDE / max(sheet.size)
        photo = sheet.resize((round(sheet.width * zoom), round(sheet.height * zoom)), Image.Resampling.BICUBIC)
        photos.append((photo, "\n".join(texts)))
    return photos


def make_sheets(x, y, n: int, seed: photograph.Seed) -> list[tuple[bytes, np.ndarray]]:
    """`n` photos as saved files with where the sheet is in each: what the sheet finder learns from.

    Half are a sheet or a sticky note on a desk drawn from `varied` desks; the
    other half are photos that are all sheet (a page of any other scene, or one
    digit from `photograph.make_singles`), so that the finder also learns when
    to find nothing. A scanner's border is not the sheet.
    """
    x, y = np.asarray(x), np.asarray(y)
    photograph.check_digits(x, y)
    rng = photograph.random_stream(seed, 5)
    on_desks, whole = ("sheet on a desk", "sticky note"), ("sheet", "ruled paper", "arc", "table and border", "single")
    sheets = []
    for k in range(n):
        scenes = on_desks if k % 2 == 0 else whole
        scene = scenes[rng.integers(len(scenes))]
        if scene == "single":
            picture, _ = photograph.make_singles(x, y, 1, int(rng.integers(2**31)))[0]
            saved, _ = photograph.encoded(picture)
            sheets.append((saved, np.ones((picture.height, picture.width), dtype=bool)))
        else:
            picture, _, sheet = _page(x, y, rng, scene, varied=True)
            sheets.append((encoded(picture), sheet))
    return sheets


def encoded(picture: Image.Image) -> bytes:
    """A page as the JPEG file a phone would save: quality 90, with its EXIF orientation when it has one."""
    exif = Image.Exif()
    if "exif_orientation" in picture.info:
        exif[ExifTags.Base.Orientation] = picture.info["exif_orientation"]
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90, exif=exif)
    return buffer.getvalue()
