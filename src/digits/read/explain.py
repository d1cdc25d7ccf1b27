"""Explanations: pictures of what the reader saw, for `--explain`.

`save_steps` lays the preprocessing steps of one digit side by side;
`save_boxes` draws the digits a page reading found onto the picture, with
what each was read as. Both write a PNG atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from digits.atomic import atomic_path
from digits.read.answers import Page
from digits.read.grey import working_grey
from digits.read.load import turned_upright
from digits.read.pipeline import Prepared
from digits.spec import OK

_STEP_HEIGHT = 200  # px: a 28×28 step drawn about 7× larger, so its pixels are visible
# px: a step is drawn at most this wide (a 1×512 picture's step drawn 200 px high was 102,400 px wide).
_STEP_WIDEST = 4 * _STEP_HEIGHT
_TITLE_HEIGHT = 24  # px above each step for its title
_FRAME = 160  # grey: the frame round each step, neither paper (255) nor ink (0)
_BOXES_LONGEST = 2048  # px: the longer side of the picture `save_boxes` draws on, at most


def save_steps(prepared: Prepared, path: str | os.PathLike[str]) -> None:
    """Save the pipeline's steps side by side as one PNG (written atomically).

    Drawn with Pillow, so `--explain` works with the core install (no matplotlib).
    """
    _png_name(path)
    steps = prepared.steps or [("model input 28×28", prepared.image)]
    panels = []
    for _, array in steps:
        grey = Image.fromarray((np.clip(np.asarray(array, dtype=np.float32), 0, 1) * 255).astype(np.uint8))
        scale = min(_STEP_HEIGHT / max(1, grey.height), _STEP_WIDEST / max(1, grey.width))
        size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        panels.append(grey.resize(size, Image.Resampling.NEAREST))
    gap = 12
    footer = _TITLE_HEIGHT if not prepared.readable else 0
    sheet = Image.new(
        "L", (sum(p.width for p in panels) + gap * (len(panels) + 1), _STEP_HEIGHT + _TITLE_HEIGHT + footer + gap), 255
    )
    draw = ImageDraw.Draw(sheet)
    left = gap
    for (title, _), panel in zip(steps, panels, strict=True):
        draw.text((left, 4), title.replace("×", "x"), fill=0)  # Pillow's built-in font has no "×"
        sheet.paste(panel, (left, _TITLE_HEIGHT))
        # A frame round each panel: on the white sheet, a white step (the paper's light) looked empty, and
        # a stroke along a panel's edge (a 7's bar at the top of its crop) looked cut off.
        draw.rectangle((left - 1, _TITLE_HEIGHT - 1, left + panel.width, _TITLE_HEIGHT + panel.height), outline=_FRAME)
        left += panel.width + gap
    if not prepared.readable:
        why = "no digit found: too dense with strokes to be one digit" if prepared.scribbled else "no digit found"
        draw.text((gap, _TITLE_HEIGHT + _STEP_HEIGHT + 4), why, fill=0)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")


def save_boxes(picture: Image.Image, page: Page, path: str | os.PathLike[str]) -> None:
    """The picture with a box round every digit found: green when sure, orange when unsure."""
    # Grey through the reader's own conversion: transparency over white, 16-bit and
    # float pictures scaled; a picture longer than `_BOXES_LONGEST` reduced first (a
    # 12247² 1-bit PNG drawn at full size took 1.4 GB), any other drawn at its size. Boxes
    # are in the picture's true pixels; a big JPEG may have been decoded smaller.
    if not isinstance(picture, Image.Image):
        raise TypeError(
            "save_boxes draws on the PIL image that was read (digits.read.load.load_image(path)), "
            f"not on a {type(picture).__name__}."
        )
    _png_name(path)
    # Boxes are where the reader saw the digits: on the picture turned upright, as it read it.
    grey, (scale_x, scale_y) = working_grey(turned_upright(picture), longest_side=_BOXES_LONGEST, shortest_side=1)
    canvas = Image.fromarray(np.uint8(np.rint(grey * 255))).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 400))
    for line in page.lines:
        for digit in line.digits:
            x0, y0, x1, y1 = digit.placed_box()
            box = (x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y)
            colour = (0, 170, 0) if digit.status == OK else (230, 140, 0)
            draw.rectangle(box, outline=colour, width=width)
            draw.text((box[0], max(0, box[1] - 12 * width)), str(digit.digit), fill=colour, font_size=10 * width)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")


def _png_name(path: str | os.PathLike[str]) -> None:
    """A PNG is written: a name ending otherwise would hold bytes its suffix does not announce."""
    if Path(path).suffix.lower() != ".png":
        raise ValueError(f"{os.fspath(path)}: the picture saved is a PNG; give a file name ending in .png.")
