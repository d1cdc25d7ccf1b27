"""A dotted or dashed line to write on: where its dots lie, under the digits written on it too.

A form's line to write on is often printed dotted or dashed ("Total ......").
Its dots are specks, or pieces of their own; but where the digits are
written on the line, the dots they touch are part of them, and a digit with
dots under it reads wrong or not at all (a 9 refused). `dots_of_lines`
finds such lines and gives the footprint of every dot, the ones the digits
hide included (a row of dots is evenly spaced, so where they lie under a
digit is known); `rules.drop_rules` cuts those pixels out of the digits,
bridging the strokes that cross them, before it looks for solid rules.

A dotted line, told from specks that happen to lie in a row:

  * `_LEAST_DOTS` or more small pieces of ink (kept at step 5 or dropped as
    specks), no larger than `_DOT_SIZE` px each way, whose areas lie within
    `_SIZE_RATIO` of their median (one printed dot or dash repeated);
  * their middles on one row, within `_ROW` px of their median;
  * evenly spaced: all but `_UNEVEN` of the gaps between neighbours within
    `_PITCH_SLACK` of a whole number of their median gap (where a digit took
    dots, a gap spans several).

Only level lines: a photographed form turned by more than `_ROW` px along its
line's length is not looked for, and a run of pieces is told by the band
round its middles' median, so on a page of small pieces at every height a
second dotted line may be missed. Small writing of one size set out evenly
(a printed serial number, 12 px digits) can pass for dots; the reader drops
writing that small beside larger writing anyway.
"""

from __future__ import annotations

import numpy as np

from digits.read.ink import Analysis

# A line to write on runs under a number and beyond it: eight dots or more (a row of periods is fewer).
_LEAST_DOTS = 8
# A printed dot or dash is a few pixels at analysis resolution; a digit is 20 px tall or more there.
_DOT_SIZE = 12
# One dot repeated: areas within this factor of their median (JPEG and rounding vary them by a pixel or two).
_SIZE_RATIO = 2.0
# Middles on one row within this many pixels: a level line.
_ROW = 1.5
# Evenly spaced: a gap within this share of a whole number of steps...
_PITCH_SLACK = 0.25
# ...but for this share of the gaps (noise or a speck beside the line).
_UNEVEN = 0.2


def dots_of_lines(analysis: Analysis) -> np.ndarray | None:
    """A mask of the dots of the picture's dotted and dashed lines, or None when there is no such line: each
    dot's own box, and at every step of a line from its first dot to its last (under the digits too) a box
    as big as its median dot and a pixel more all round."""
    from scipy import ndimage

    pieces, count = ndimage.label(analysis.mask, structure=np.ones((3, 3), dtype=bool))
    if count < _LEAST_DOTS:
        return None
    dots = [
        (slices[0].start, slices[0].stop, slices[1].start, slices[1].stop, area)
        for slices, area in zip(
            ndimage.find_objects(pieces), np.bincount(pieces.ravel(), minlength=count + 1)[1:], strict=True
        )
        if slices[0].stop - slices[0].start <= _DOT_SIZE and slices[1].stop - slices[1].start <= _DOT_SIZE
    ]
    rows = _dotted_rows(dots)
    if not rows:
        return None
    footprints = np.zeros(analysis.mask.shape, dtype=bool)
    for row in rows:
        top = round(float(np.median([d[0] for d in row])))
        bottom = max(top + 1, round(float(np.median([d[1] for d in row]))))
        wide = max(1, round(float(np.median([d[3] - d[2] for d in row]))))
        centres = np.array([(d[2] + d[3]) / 2 for d in row])
        steps = np.cumsum([0, *_steps(np.diff(centres))])
        slope, start = np.polyfit(steps, centres, 1)  # the line's own step and first dot, from all its dots
        for step in range(int(steps[-1]) + 1):  # a pixel to spare round each: dots differ by a pixel or two
            left = round(start + step * slope - wide / 2) - 1
            footprints[max(0, top - 1) : bottom + 1, max(0, left) : max(0, left + wide + 2)] = True
        for dot_top, dot_bottom, dot_left, dot_right, _ in row:
            footprints[dot_top:dot_bottom, dot_left:dot_right] = True
    return footprints


def _dotted_rows(dots: list[tuple[int, int, int, int, int]]) -> list[list[tuple[int, int, int, int, int]]]:
    """The dotted lines among `dots` (each: top, bottom, left, right, area), each its dots left to right."""
    middle = [(d[0] + d[1]) / 2 for d in dots]
    order = sorted(range(len(dots)), key=middle.__getitem__)
    rows, start = [], 0
    for stop in range(1, len(order) + 1):  # runs of middles no more than _ROW apart from one to the next
        if stop < len(order) and middle[order[stop]] - middle[order[stop - 1]] <= _ROW:
            continue
        row = sorted((dots[i] for i in order[start:stop]), key=lambda d: d[2])
        start = stop
        if len(row) < _LEAST_DOTS:
            continue
        centre = float(np.median([(d[0] + d[1]) / 2 for d in row]))
        size = float(np.median([d[4] for d in row]))
        row = [
            d
            for d in row
            if abs((d[0] + d[1]) / 2 - centre) <= _ROW and size / _SIZE_RATIO <= d[4] <= size * _SIZE_RATIO
        ]
        if len(row) >= _LEAST_DOTS and _evenly_spaced([(d[2] + d[3]) / 2 for d in row]):
            rows.append(row)
    return rows


def _steps(gaps: np.ndarray) -> np.ndarray:
    """How many of the line's steps (the median gap) each gap between neighbouring dots spans: one, or more
    where a digit took dots."""
    return np.maximum(np.round(gaps / float(np.median(gaps))), 1)


def _evenly_spaced(centres: list[float]) -> bool:
    """Whether all but `_UNEVEN` of the gaps between neighbouring dots lie within `_PITCH_SLACK` of a whole
    number of steps."""
    gaps = np.diff(centres)
    pitch = float(np.median(gaps))
    if pitch <= 0:
        return False
    return bool(np.mean(np.abs(gaps - _steps(gaps) * pitch) > _PITCH_SLACK * pitch) <= _UNEVEN)
