"""The walls of a form's cells, left standing once its lines are cut: a comb's teeth, the sides of boxes.

A form gives each digit of a number a cell of its own: a comb (a line under
the digits with short strokes rising from it between them) or a row of boxes
sharing their walls. `rules.drop_rules` cuts the long lines; the walls are
too short to be rules, and each read as a 1 between the digits. Where the
print is light or blurred by JPEG, a box's walls come apart from its lines
before anything is cut, and stand alone the same way.

`drop_walls` takes away, once the frames and rules are cut (`rules.cut_frames`,
`rules.drop_rules`), the sticks that are walls. A written 1 standing on a
ruled line is a stick too, so walls are told by what a row of cells has and
a number's 1s have not, all at once:

  * each is a stick: ink on every row of its box, its rows' middles within
    `_STRAIGHT` px of a straight line leaning `_MAX_LEAN` degrees at most, no
    wider on average than the line it stands on is thick, and a pixel;
  * it stands on a line that was cut: at its top or its bottom, within
    `_TOUCH` px (or `_REACH` of its length beyond it), lies ink that frames
    or rules took, or a line step 5 dropped whole (a thin straight line
    fills its box, a blob), at least `_LINE_LONG` times as long as it is
    thick; or it keeps a stretch of that line there (rows inked `_ACROSS`
    its box, which the cut line goes on from: JPEG broke the line
    elsewhere). Specks and dots are no line;
  * `_LEAST_WALLS` sticks or more stand on the same cut line, at the same
    side (pieces of a line that JPEG broke apart are one line where a stick
    stands on two of them), as long as one another (within `_SAME_LENGTH`
    of their median, or `_TOUCH` px);
  * evenly spaced, as cells are (each gap within `_EVEN` of their median),
    with writing between at least half of the pairs of neighbours;
  * standing as cells' walls do beside that writing: a comb's teeth end
    short of its far side by `_SHORTER` of its height or more; a box's
    walls, most of them, stand on lines at both ends and reach beyond it
    there by `_BEYOND`. A number's 1s end where its other digits do, at the
    far side from the line at least, even where they stand at even steps
    with digits between them ("10101", a table's column of numbers ending
    in 1).

Not handled: a comb of one or two cells (too few walls), a comb whose teeth
are about as tall as the digits, a comb photographed in perspective (its
walls' steps and lengths differ), and walls whose lines left no ink at all
(light print in a picture reduced for analysis), which stand on nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from digits.read.ink import Analysis
from digits.spec import Box

# A wall's rows' middles lie this close to a straight line (px), which leans this much at most (a photographed form).
_STRAIGHT = 1.0
_MAX_LEAN = 10.0
# A wall is at most this share of its length wide, and this long at least (px): shorter, it is a speck.
_THIN = 0.25
_LEAST_LENGTH = 6
# Cut ink this close to a stick's end (px), or this share of its length beyond it, is the line it stood on
# (a JPEG'd wall's end may crumble where its line was cut).
_TOUCH = 4
_REACH = 0.1
# A cut line is this many times as long as it is thick, or more (a dot or a dash is not).
_LINE_LONG = 6
# A row of a wall's end inked across this share of its box is a stretch of the line it stood on.
_ACROSS = 0.8
# This many walls on one line, or more...
_LEAST_WALLS = 3
# ...as long as their median within this share...
_SAME_LENGTH = 0.1
# ...as far apart as their median gap within this share...
_EVEN = 0.08
# ...and a comb's teeth end short of the writing's far side by this share of its height, or a box's walls
# reach beyond it at both ends by this share (a number's 1s end where its other digits do).
_SHORTER = 0.3
_BEYOND = 0.1


@dataclass(frozen=True)
class _Stick:
    label: int
    box: Box
    middle: float  # the column of its stem (a stretch of line it kept reaches beyond)
    stands_on: frozenset[tuple[str, int]]  # ("top" or "bottom", the cut line's label)

    @property
    def length(self) -> int:
        return self.box[3] - self.box[1]


def drop_walls(after: Analysis) -> Analysis:
    """An analysis whose frames and rules were cut, without the walls its cut lines held up (its mask still
    holds the ink the cuts took: they change only the labels)."""
    lines, thickness = _cut_lines(after)
    if not thickness:
        return after
    sticks = [
        stick
        for label, box in after.boxes.items()
        if (stick := _stick(after.labels, lines, thickness, label, box)) is not None
    ]
    walls: set[int] = set()
    for side, standing in _by_line(sticks):
        walls |= _walls_of_one_line(standing, side, after)
    if not walls:
        return after
    labels, areas = after.labels.copy(), after.areas.copy()
    labels[np.isin(labels, sorted(walls))] = 0
    areas[sorted(walls)] = 0
    return replace(after, labels=labels, areas=areas)


def _by_line(sticks: list[_Stick]) -> list[tuple[str, list[_Stick]]]:
    """The sticks grouped by the cut line they stand on, at one side: pieces of a line that JPEG broke apart
    are one line where a stick stands on two of them. A stick standing on lines at its top and its bottom
    is in both groups."""
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def root(stand: tuple[str, int]) -> tuple[str, int]:
        while (up := parent.setdefault(stand, stand)) != stand:
            parent[stand] = parent.setdefault(up, up)
            stand = up
        return stand

    for stick in sticks:
        for side in ("top", "bottom"):
            stands = [stand for stand in stick.stands_on if stand[0] == side]
            for other in stands[1:]:
                parent[root(other)] = root(stands[0])
    groups: dict[tuple[str, int], list[_Stick]] = {}
    for stick in sticks:
        for line in {root(stand) for stand in stick.stands_on}:
            groups.setdefault(line, []).append(stick)
    return [(side, standing) for (side, _), standing in groups.items()]


def _cut_lines(after: Analysis) -> tuple[np.ndarray, dict[int, float]]:
    """The ink of the mask that no piece keeps (cut, or dropped at step 5), labelled, and the thickness of each
    of its pieces that is a line (`_LINE_LONG` times as long as thick); the others are specks, dots, blobs."""
    from scipy import ndimage

    lines, count = ndimage.label(after.mask & (after.labels == 0), structure=np.ones((3, 3), dtype=bool))
    if not count:
        return lines, {}
    areas = np.bincount(lines.ravel(), minlength=count + 1)
    thickness = {}
    for label, (rows, cols) in enumerate(ndimage.find_objects(lines), start=1):
        longest = max(rows.stop - rows.start, cols.stop - cols.start)
        thick = areas[label] / longest
        if longest >= _LINE_LONG * thick:
            thickness[label] = thick
    return lines, thickness


def _stick(labels: np.ndarray, lines: np.ndarray, thickness: dict[int, float], label: int, box: Box) -> _Stick | None:
    """The piece as a `_Stick` if it is a straight thin upright stroke standing on a cut line, else None.

    A wall may keep a stretch of the line it stood on (JPEG broke the line elsewhere): rows at its top or
    bottom inked across its box, which a cut line goes on from at the box's left or right. Those rows are
    its end on that line; the rest must be a stick.
    """
    x0, y0, x1, y1 = box
    length, wide = y1 - y0, x1 - x0
    if length < _LEAST_LENGTH:
        return None
    reach = max(_TOUCH, round(_REACH * length))
    ends = {"top": (max(0, y0 - reach), y0 + _TOUCH), "bottom": (max(0, y1 - _TOUCH), y1 + reach)}
    near = {
        side: _lines_in(lines, thickness, (x0 - _TOUCH, top, x1 + _TOUCH, bottom))
        for side, (top, bottom) in ends.items()
    }
    if not (near["top"] or near["bottom"]):
        return None  # most pieces: nothing cut near their ends
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
        # The stretch of line it kept must go on as a cut line, beside it.
        for side, start, stop in (("top", 0, top), ("bottom", bottom, length)):
            if stop > start:
                beside = _lines_in(lines, thickness, (x0 - _TOUCH, y0 + start - 1, x0, y0 + stop + 1))
                near[side] = beside | _lines_in(lines, thickness, (x1, y0 + start - 1, x1 + _TOUCH, y0 + stop + 1))
                if not near[side]:
                    return None
    stem = piece[top:bottom]
    columns = np.flatnonzero(stem.any(axis=0))
    if len(stem) < _LEAST_LENGTH or not columns.size or columns[-1] - columns[0] + 1 > _THIN * length:
        return None
    counts = stem.sum(axis=1)
    if (
        not counts.all()
        or counts.mean() > max(thickness[line] for lines_near in near.values() for line in lines_near) + 1
    ):
        return None
    if not _straight((stem * np.arange(stem.shape[1])).sum(axis=1) / counts):
        return None
    middle = x0 + (columns[0] + columns[-1]) / 2
    return _Stick(label, box, middle, frozenset((side, line) for side, found in near.items() for line in found))


def _lines_in(lines: np.ndarray, thickness: dict[int, float], box: Box) -> set[int]:
    """The cut lines (labels in `thickness`) with ink in `box` (clipped to the picture)."""
    x0, y0, x1, y1 = box
    window = lines[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
    if not window.any():  # most pieces of a busy page: nothing was cut near them
        return set()
    return {int(label) for label in np.unique(window) if label in thickness}


def _straight(middles: np.ndarray) -> bool:
    """Whether a stick's rows' middles lie within `_STRAIGHT` px of a line leaning `_MAX_LEAN` degrees at most
    (least squares, in closed form: a polynomial fit per piece was half the cost on a page of thousands)."""
    rows = np.arange(len(middles)) - (len(middles) - 1) / 2
    slope = float(rows @ (middles - middles.mean()) / (rows @ rows))
    line = middles.mean() + slope * rows
    return abs(slope) <= np.tan(np.radians(_MAX_LEAN)) and float(np.abs(middles - line).max()) <= _STRAIGHT


def _walls_of_one_line(sticks: list[_Stick], side: str, analysis: Analysis) -> set[int]:
    """The labels of the sticks standing on one cut line (at their `side`) that are its walls: `_LEAST_WALLS` or
    more, about as long, evenly spaced, with writing between at least half of the neighbours, and standing as
    cells' walls do beside it (`_unlike_writing`)."""
    if len(sticks) < _LEAST_WALLS:
        return set()
    median = float(np.median([s.length for s in sticks]))
    alike = sorted(
        (s for s in sticks if abs(s.length - median) <= max(_TOUCH, _SAME_LENGTH * median)), key=lambda s: s.middle
    )
    if len(alike) < _LEAST_WALLS:
        return set()
    middles = np.array([s.middle for s in alike])
    gaps = np.diff(middles)
    if np.abs(gaps - np.median(gaps)).max() > _EVEN * np.median(gaps):
        return set()
    top, bottom = min(s.box[1] for s in alike), max(s.box[3] for s in alike)
    chosen = {s.label for s in alike}
    writing = [
        box
        for label, box in analysis.boxes.items()
        if label not in chosen and box[1] < bottom and box[3] > top and middles[0] < (box[0] + box[2]) / 2 < middles[-1]
    ]
    held = sum(
        any(left < (x0 + x1) / 2 < right for x0, _, x1, _ in writing)
        for left, right in zip(middles, middles[1:], strict=False)
    )
    if 2 * held < len(gaps) or not _unlike_writing(alike, side, writing):
        return set()
    return chosen


def _unlike_writing(walls: list[_Stick], side: str, writing: list[Box]) -> bool:
    """Whether sticks stand beside `writing` as cells' walls do: a comb's teeth end well short of it
    (`_SHORTER` of its height beyond its far side, on the line's side), a box's walls (most of them) stand on lines
    at both ends and reach beyond it there (by `_BEYOND`). A number's 1s end about where its other digits do, at the far side at least."""
    tall = float(np.median([y1 - y0 for _, y0, _, y1 in writing]))
    writing_top, writing_bottom = (float(np.median([box[k] for box in writing])) for k in (1, 3))
    walls_top, walls_bottom = (float(np.median([wall.box[k] for wall in walls])) for k in (1, 3))
    teeth = walls_top - writing_top if side == "bottom" else writing_bottom - walls_bottom
    # Most of them: JPEG may leave a wall's end apart from its line.
    on_both_lines = sum({end for end, _ in wall.stands_on} == {"top", "bottom"} for wall in walls)
    boxed = (
        2 * on_both_lines >= len(walls)
        and min(writing_top - walls_top, walls_bottom - writing_bottom) >= _BEYOND * tall
    )
    return teeth >= _SHORTER * tall or boxed
