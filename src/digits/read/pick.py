"""The one digit of a single-digit picture: which pieces of ink make it (`pick_digit`).

Works on the components an `Analysis` kept (`digits.read.ink`), by their
boxes, as `digits.read.layout` does for a page's lines.
"""

from __future__ import annotations

from functools import reduce

import numpy as np

from digits.read.geometry import gap, height, pixels_of, touches, union, width
from digits.read.ink import Analysis
from digits.spec import Box

# A single digit spans at least this share of its picture's shorter side (the
# smallest among the real pictures measured spans 0.22).
_MIN_DIGIT_SHARE = 0.04
# A line under a digit (`_without_underlines`): this many times as wide as tall, below it by this share of its
# height, past it by this share of its width on both sides.
_FLAT_LINE, _UNDERLINE_GAP, _UNDERLINE_REACH = 5, 0.05, 0.1
# A piece joins the digit when it is at least `_LEAST_PIECE` of the largest piece's ink and within `_REACH` of the
# digit's size. Where the ink is faint (`Analysis.contrast` under `_FAINT_INK` of the grey scale off the paper),
# one under `_SMALL_PIECE` of it joins only within `_SMALL_REACH`: a faint pencil digit stands little above the
# grain of its paper, and grain's specks a few stroke widths away joined it one after another as the box grew;
# the digit shrank in its 28×28 image among dots and was refused. Its own small pieces (a stroke broken by the
# pencil's grain) lie closer. Chosen on generated faint pencil digits (drawn by a scratch script at seed 0, in
# `benchmarks/pens.py`'s faint pencil at half to three quarters of its tone): of 500 by CVL's unseen writers,
# 428 read right before and 438 after; of 500 MNIST test digits, 462 and 469. Applied to all ink, it cost: a
# drawn donut's sprinkles and a photographed rocket's specks had made them no digit (then read 0 and 1). With
# "small" at 15 %, a generated texture read 3 and a faint 5 whose flag lifted off read 6; at 8 % the 5 still
# does; at 5 %, half the gain went.
_LEAST_PIECE, _REACH = 0.03, 0.25
_FAINT_INK, _SMALL_PIECE, _SMALL_REACH = 0.25, 0.08, 0.08


def pick_digit(analysis: Analysis) -> np.ndarray:
    """Mask of the one digit: the largest piece plus substantial pieces near it, less a line drawn under it.

    Empty when what is left is too small to be a digit someone meant to be
    read (a few specks of dust, grain in a texture): under `_MIN_DIGIT_SHARE`
    of the picture's shorter side.
    """
    labels, areas, boxes = analysis.labels, analysis.areas, analysis.boxes
    live = list(boxes)
    if not live:
        return np.zeros(labels.shape, dtype=bool)
    edges = analysis.edges
    # Paper edges, table tops and frame lines touch the border; a digit
    # usually does not. Prefer inner pieces when there are substantial ones.
    inner = [i for i in live if not touches(boxes[i], edges)]
    if inner and max(areas[i] for i in inner) >= 0.1 * max(areas[i] for i in live):
        live = inner
    live.sort(key=lambda i: -areas[i])
    chosen = [live[0]]
    box = boxes[live[0]]
    faint = analysis.contrast < _FAINT_INK
    changed = True
    while changed:
        changed = False
        for i in live:
            if i in chosen or areas[i] < _LEAST_PIECE * areas[live[0]]:
                continue
            size = max(box[2] - box[0], box[3] - box[1])
            small = faint and areas[i] < _SMALL_PIECE * areas[live[0]]
            reach = _SMALL_REACH if small else _REACH
            if gap(box, boxes[i]) <= reach * size:
                chosen.append(i)
                box = union(box, boxes[i])
                changed = True
    chosen = _without_underlines(chosen, boxes)
    box = reduce(union, (boxes[i] for i in chosen))
    if max(box[2] - box[0], box[3] - box[1]) < _MIN_DIGIT_SHARE * min(width(edges), height(edges)):
        return np.zeros(labels.shape, dtype=bool)
    return pixels_of(labels, chosen)


def _without_underlines(chosen: list[int], boxes: dict[int, Box]) -> list[int]:
    """A digit's pieces less the pen lines drawn under it, clear of its other pieces and past them on both sides.
    A 5's bar is above its body; a 2's base drawn apart starts where its stroke ends, or is thicker and closer
    (two such 2s in DIDA's 10,000: 3.3 and 4.1 times as wide as tall, 2-4 % of its height below)."""
    flat = {i for i in chosen if width(boxes[i]) >= _FLAT_LINE * height(boxes[i])}
    if not flat or len(flat) == len(chosen):
        return chosen
    x0, top, x1, bottom = reduce(union, (boxes[i] for i in chosen if i not in flat))
    reach, below = _UNDERLINE_REACH * (x1 - x0), bottom + _UNDERLINE_GAP * (bottom - top)

    def underline(box: Box) -> bool:
        return box[1] >= below and box[0] <= x0 - reach and box[2] >= x1 + reach

    return [i for i in chosen if i not in flat or not underline(boxes[i])]
