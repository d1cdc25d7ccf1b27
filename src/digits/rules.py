"""Rules that are not writing: ruled lines, table rules, scanner borders and sheet edges.

A page often carries long straight strokes beside its digits: the lines of
ruled paper, the rules of a table or a form, the dark edge of a scanned or
photographed sheet. They are thin like writing, so step 5 keeps them; they
then chain every line they cross into one, and digits that touch them
become one huge piece. `drop_rules` removes them from an `Analysis` before
its lines are found.

Contract: only pieces longer than `_RULE_DIGITS` times the writing's height
(measured on the other pieces) are touched; of those, only the pixels lying
on a straight run at least that long, within `_MAX_TILT` degrees of the
horizontal or vertical, are removed. A digit that touches or crosses a rule
keeps its own strokes (cut where the rule ran). Pieces touching the
picture's edge and thinner than a quarter of the writing's height, are what a
border left and go too. A picture whose pieces are
all long (one big digit) is returned unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from digits.normalize import stroke_width
from digits.writing import Analysis, _typical_height

# Writing's height is measured on the pieces shorter than half the picture's
# longer side: a rule running across the page would weigh most otherwise.
# Handwritten strokes are at most about one and a half digits long (a 1's
# stem, a 7's bar, a slanted 4); a straight run three digits long is a rule.
_RULE_DIGITS = 3.0
# Rules in a photographed page lean a little; runs are looked for in steps
# fine enough that a 2 px thick rule of the minimum length fits one of them.
_MAX_TILT = 10.0
# What is left of a border beside a rule: a piece lying within this share of the
# writing's height from the picture's edge is too thin to be a digit cut by it.
_BORDER_BAND = 0.25


def drop_rules(analysis: Analysis) -> Analysis:
    """The analysis without the pixels of long straight rules (see the module's contract)."""
    from scipy import ndimage

    boxes = analysis.boxes
    if not boxes:
        return analysis

    def extent(i: int) -> int:
        x0, y0, x1, y1 = boxes[i]
        return max(x1 - x0, y1 - y0)

    longest = max(analysis.labels.shape)
    short = {i: b for i, b in boxes.items() if extent(i) < 0.5 * longest}
    if not short:
        return analysis
    height = _typical_height(short, analysis.areas)
    length = max(3, round(_RULE_DIGITS * height)) | 1  # odd: the opening's two filters then share their centre
    rows, cols = analysis.labels.shape
    band = _BORDER_BAND * height
    slivers = [i for i, (x0, y0, x1, y1) in boxes.items()
               if (x0 == 0 and x1 <= band) or (y0 == 0 and y1 <= band)
               or (x1 == cols and x0 >= cols - band) or (y1 == rows and y0 >= rows - band)]
    long = [i for i in boxes if extent(i) >= length]
    if not long and not slivers:
        return analysis
    labels = analysis.labels.copy()
    areas = analysis.areas.copy()
    areas[slivers] = 0
    labels[np.isin(labels, slivers)] = 0
    for i in long:
        x0, y0, x1, y1 = boxes[i]
        piece = labels[y0:y1, x0:x1] == i
        if stroke_width(np.pad(piece, 1)) > 0.5 * height:  # padded: a rule filling its own box has edges too
            continue  # a stroke as thick as half a digit is tall: the digits measured were specks
        rule = _straight_runs(piece, length) | _straight_runs(piece.T, length).T
        if not rule.any():
            continue
        # One pixel round the run: a rule's anti-aliased edge is not writing either.
        rule = ndimage.binary_dilation(rule, structure=np.ones((3, 3), dtype=bool)) & piece
        rest, count = ndimage.label(piece & ~rule, structure=np.ones((3, 3), dtype=bool))
        window = labels[y0:y1, x0:x1]
        window[piece] = 0
        # What is left of a piece (digits that touched the rule) gets labels of its own.
        first = len(areas)
        window[rest > 0] = rest[rest > 0] + first - 1
        areas[i] = 0
        areas = np.concatenate([areas, np.bincount(rest.ravel(), minlength=count + 1)[1:]])
    return replace(analysis, labels=labels, areas=areas)


def _straight_runs(mask: np.ndarray, length: int) -> np.ndarray:
    """Pixels of `mask` on a horizontal run of `length` pixels, tilted up to `_MAX_TILT` degrees.

    The mask is sheared so that each tilt becomes horizontal, opened along
    the rows with a `length`-pixel segment (separable minimum and maximum
    filters: cost independent of the length), and sheared back.
    """
    from scipy import ndimage

    height, width = mask.shape
    if width < length:
        return np.zeros_like(mask)
    step = np.degrees(np.arctan(2.0 / length))
    found = np.zeros_like(mask)
    cols = np.arange(width)
    for tilt in np.arange(-_MAX_TILT, _MAX_TILT + step / 2, step):
        shifts = np.round(cols * np.tan(np.radians(tilt))).astype(int)
        shifts -= shifts.min()
        pad = int(shifts.max())
        rows = np.arange(height)[:, None] + (pad - shifts)[None, :]
        sheared = np.zeros((height + pad, width), dtype=np.uint8)
        sheared[rows, cols] = mask
        opened = ndimage.maximum_filter1d(ndimage.minimum_filter1d(sheared, length, axis=1), length, axis=1)
        found |= opened[rows, cols].astype(bool)
    return found
