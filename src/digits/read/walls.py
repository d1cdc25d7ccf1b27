"""The walls of a form's cells, left standing once its rules are cut: a comb's teeth, the sides of boxes.

A form gives each digit of a number a cell of its own: a comb (a line under
the digits with short strokes rising from it between them) or a row of boxes
sharing their walls. `rules.drop_rules` cuts the long lines; the walls are
too short to be rules, and each read as a 1 between the digits. Where the
print is light or blurred by JPEG, a box's walls come apart from its lines
before anything is cut, and stand alone the same way.

`drop_walls` takes away, once the frames and rules are cut (`rules.cut_frames`,
`rules.drop_rules`, or step 5 for a line alone), every stick that is a wall
by all of these at once; a written 1 meets some of them, not all:

  * a stick: ink on every row of its box, its rows' middles within
    `_STRAIGHT` px of a straight line leaning `_MAX_LEAN` degrees at most,
    and at most `_THIN` of its length wide;
  * it ends on a rule that was cut: cut pixels lie within `_TOUCH` px of its
    top or its bottom, or it keeps a stretch of that rule there (rows inked
    `_ACROSS` its box, which cut pixels go on from: JPEG broke the line
    elsewhere);
  * `_LEAST_WALLS` sticks or more end on cut pixels at the same row (within
    `_TOUCH`), at the same side, and are as long as one another (within
    `_SAME_LENGTH` of their median, or `_TOUCH` px): print repeats a wall
    exactly, a hand does not repeat a 1 so.

Not handled: a comb of one cell (two walls are no repeat; the line and its teeth are one piece as small
as the digit, too short to be cut as a rule), and walls whose lines left no ink at all (light print in
a picture reduced for analysis), which stand on nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from digits.read.ink import Analysis

# A wall's rows' middles lie this close to a straight line (px), which leans this much at most (a photographed form).
_STRAIGHT = 1.0
_MAX_LEAN = 10.0
# A wall is at most this share of its length wide, and this long at least (px): shorter, it is a speck.
_THIN = 0.25
_LEAST_LENGTH = 6
# Cut pixels this close to a stick's end (px) are the rule it stood on; walls standing on one rule end
# this close to the same row.
_TOUCH = 3
# A row of a wall's end inked across this share of its box is a stretch of the line it stood on.
_ACROSS = 0.8
# This many walls of one rule, or more...
_LEAST_WALLS = 3
# ...as long as their median within this share.
_SAME_LENGTH = 0.1


@dataclass(frozen=True)
class _Stick:
    label: int
    top: int
    bottom: int
    stands_on_top: bool  # on a cut rule at its top
    stands_on_bottom: bool  # ...at its bottom

    @property
    def length(self) -> int:
        return self.bottom - self.top


def drop_walls(before: Analysis, after: Analysis) -> Analysis:
    """`after` (the analysis `before` once its frames and rules were cut) without the walls they held up.

    What was cut is what `before`'s mask held and `after` keeps no more: the frames and rules cut, and a
    ruled line that step 5 dropped whole (`ink._components`: a thin straight line fills its box, a blob).
    """
    cut = before.mask & (after.labels == 0)
    if not cut.any():
        return after
    sticks = [stick for label, box in after.boxes.items() if (stick := _stick(after.labels, cut, label, box))]
    walls = _repeated(sticks, lambda s: s.stands_on_top, lambda s: s.top) | _repeated(
        sticks, lambda s: s.stands_on_bottom, lambda s: s.bottom
    )
    if not walls:
        return after
    labels, areas = after.labels.copy(), after.areas.copy()
    labels[np.isin(labels, sorted(walls))] = 0
    areas[sorted(walls)] = 0
    return replace(after, labels=labels, areas=areas)


def _stick(labels: np.ndarray, cut: np.ndarray, label: int, box: tuple[int, int, int, int]) -> _Stick | None:
    """The piece as a `_Stick` if it is a straight thin upright stroke with an end on cut pixels, else None.

    A wall may keep a stretch of the line it stood on (JPEG broke the line elsewhere): rows at its top or
    bottom inked across its box, which cut pixels go on from at the box's left or right. Those rows are
    its end on a cut rule; the rest must be a stick.
    """
    x0, y0, x1, y1 = box
    length, wide = y1 - y0, x1 - x0
    if length < _LEAST_LENGTH:
        return None
    piece = labels[y0:y1, x0:x1] == label
    top, bottom = 0, length
    if wide > _THIN * length:
        across = piece.mean(axis=1) >= _ACROSS
        while top < _TOUCH and across[top]:
            top += 1
        while bottom > length - _TOUCH and across[bottom - 1]:
            bottom -= 1
        if top == 0 and bottom == length:
            return None
        for start, stop in ((0, top), (bottom, length)):
            if stop > start and not _line_goes_on(cut, (x0, y0 + start, x1, y0 + stop)):
                return None
    stem = piece[top:bottom]
    columns = np.flatnonzero(stem.any(axis=0))
    if len(stem) < _LEAST_LENGTH or columns[-1] - columns[0] + 1 > _THIN * length:
        return None
    stem = stem[:, columns[0] : columns[-1] + 1]
    counts = stem.sum(axis=1)
    if not counts.all():
        return None
    middles = (stem * np.arange(stem.shape[1])).sum(axis=1) / counts
    rows = np.arange(len(stem))
    slope, offset = np.polyfit(rows, middles, 1)
    if abs(slope) > np.tan(np.radians(_MAX_LEAN)) or np.abs(middles - (slope * rows + offset)).max() > _STRAIGHT:
        return None
    left, right = max(0, x0 - _TOUCH), x1 + _TOUCH
    # Near its end, not only beyond it: the wall at a box's end keeps the corners of its lines.
    on_top = top > 0 or bool(cut[max(0, y0 - _TOUCH) : y0 + _TOUCH, left:right].any())
    on_bottom = bottom < length or bool(cut[max(0, y1 - _TOUCH) : y1 + _TOUCH, left:right].any())
    if not (on_top or on_bottom):
        return None
    return _Stick(label, y0, y1, on_top, on_bottom)


def _line_goes_on(cut: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether cut pixels lie within `_TOUCH` px left or right of `box` (a row beyond it up and down too)."""
    x0, y0, x1, y1 = box
    rows = slice(max(0, y0 - 1), y1 + 1)
    return bool(cut[rows, max(0, x0 - _TOUCH) : x0].any() or cut[rows, x1 : x1 + _TOUCH].any())


def _repeated(sticks: list[_Stick], stands: Callable[[_Stick], bool], end: Callable[[_Stick], int]) -> set[int]:
    """The labels of sticks that stand (`stands`) on a rule with `_LEAST_WALLS` - 1 others or more at the same
    row (`end`), all about as long."""
    standing = sorted((s for s in sticks if stands(s)), key=end)
    walls: set[int] = set()
    start = 0
    for stop in range(1, len(standing) + 1):  # runs of ends no more than _TOUCH apart from one to the next
        if stop < len(standing) and end(standing[stop]) - end(standing[stop - 1]) <= _TOUCH:
            continue
        group = standing[start:stop]
        start = stop
        median = float(np.median([s.length for s in group]))
        alike = [s for s in group if abs(s.length - median) <= max(_TOUCH, _SAME_LENGTH * median)]
        if len(alike) >= _LEAST_WALLS:
            walls.update(s.label for s in alike)
    return walls
