"""Explanations: pictures of what the reader saw, for `--explain`.

`save_steps` lays the preprocessing steps of one digit side by side;
`save_boxes` draws the digits a page reading found onto the picture, with
what each was read as. Both write a PNG atomically.
"""

from __future__ import annotations

import os

from PIL import Image, ImageDraw

from digits.atomic import atomic_path
from digits.picture import convert_mode
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
    canvas = convert_mode(picture, "RGB")
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 400))
    for line in page.lines:
        for digit in line.digits:
            colour = (0, 170, 0) if digit.status == OK else (230, 140, 0)
            draw.rectangle(digit.box, outline=colour, width=width)
            draw.text((digit.box[0], max(0, digit.box[1] - 12 * width)), str(digit.digit), fill=colour,
                      font_size=10 * width)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
