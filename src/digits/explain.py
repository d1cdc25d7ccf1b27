"""Explanations: pictures of what the reader saw, for `--explain`.

`save_steps` lays the preprocessing steps of one digit side by side;
`save_boxes` draws the digits a page reading found onto the picture, with
what each was read as. Both write a PNG atomically.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from digits.atomic import atomic_path
from digits.picture import grey_array, true_size
from digits.preprocess import Prepared
from digits.reader import OK, Page


def save_steps(prepared: Prepared, path: str | os.PathLike) -> None:
    """Save the pipeline's steps side by side as one PNG (written atomically)."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, thread-safe

    steps = prepared.steps or [("model input 28×28", prepared.image)]
    figure = Figure(figsize=(2.2 * len(steps), 2.6), dpi=100)
    for index, (title, array) in enumerate(steps, start=1):
        axes = figure.add_subplot(1, len(steps), index)
        axes.imshow(array, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes.set_title(title, fontsize=8)
        axes.set_xticks([])
        axes.set_yticks([])
    if not prepared.has_ink:
        figure.suptitle("no digit found", fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def save_boxes(picture: Image.Image, page: Page, path: str | os.PathLike) -> None:
    """The picture with a box round every digit found: green when sure, orange when unsure."""
    # Grey through the reader's own conversion: transparency over white, 16-bit and
    # float pictures scaled. Boxes are in the picture's true pixels; a big JPEG may
    # have been decoded smaller.
    canvas = Image.fromarray(np.uint8(np.rint(grey_array(picture) * 255))).convert("RGB")
    scale_x, scale_y = (shown / true for shown, true in zip(canvas.size, true_size(picture)))
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 400))
    for line in page.lines:
        for digit in line.digits:
            x0, y0, x1, y1 = digit.box
            box = (x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y)
            colour = (0, 170, 0) if digit.status == OK else (230, 140, 0)
            draw.rectangle(box, outline=colour, width=width)
            draw.text((box[0], max(0, box[1] - 12 * width)), str(digit.digit), fill=colour, font_size=10 * width)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
