"""Layout: the lines of a page, and the digits of a line.

`find_lines` finds the lines of a page, top to bottom, and `group_line` the
digits of one line, left to right (`digits.read.pick` chooses the one digit
of a single-digit picture). Both work on the components an `Analysis` kept
(`digits.read.ink`), by their boxes.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from functools import reduce

import numpy as np

from digits.read.geometry import gap, height, typical_height, union, width, x_overlap
from digits.read.ink import Analysis
from digits.spec import Box

# Lines of writing are chained from components whose vertical extents
# overlap by this fraction of the shorter one, no further apart than this
# many digit heights. Chaining neighbour to neighbour follows a slope or an arc.
_LINE_OVERLAP = 0.4
_LINE_GAP = 4.0
# A number on an arc (`_join_arcs`): a piece of it stands at most this many
# digit heights above or below the pieces beside it (lines of a page stand 1.3
# or more apart), at most this many digit heights right of the piece before
# (a thin 1 leaves a wide gap), overlapping it by at most this share of the
# narrower one's width.
_ARC_RISE = 0.9
_ARC_GAP = 1.5
_ARC_OVERLAP = 0.25
# A line whose tallest piece is under this fraction of the page's digit
# height is a scrap (a speck, a stray mark between lines), not writing.
_LINE_MIN_HEIGHT = 0.4
# A piece under this fraction of the page's digit height may be part of a digit broken across.
_PART_HEIGHT = 0.8
# A bar drawn apart above its digit (`find_lines`): this many times as wide as tall, at most this share of the
# digit's height above it, with no writing above it closer than this many of the page's digit heights (an upper
# number's underline, joined to the digit under it, read a 0 as 5: a review's 122 pictures of flat strokes).
_BAR_FLAT = 2.0
_BAR_GAP = 0.15
_BAR_CLEAR = 0.5
# ...and the piece under it starts under its right part, as a 7's stem does: a dash or a mark over the middle of
# a 0, a 3 or a 1 made a 0 read nothing, a 3 read 5 (the review's pictures).
_BAR_END = 0.6
# Where noise survives cleaning, only the largest pieces are considered.
_MAX_PIECES = 400


def find_lines(analysis: Analysis) -> list[list[int]]:
    """The components of each line of writing, lines top to bottom."""
    boxes = analysis.boxes
    if not boxes:
        return []
    if len(boxes) > _MAX_PIECES:
        keep = sorted(boxes, key=lambda i: -analysis.areas[i])[:_MAX_PIECES]
        boxes = {i: boxes[i] for i in keep}
    page_height = typical_height(boxes, analysis.areas)
    ids = sorted(boxes, key=lambda i: boxes[i][0])
    chained = {i: i for i in ids}
    for n, i in enumerate(ids):
        a = boxes[i]
        for j in ids[n + 1 :]:
            b = boxes[j]
            if b[0] - a[2] > _LINE_GAP * page_height:
                break  # sorted by left edge: every later piece is further still
            overlap = min(a[3], b[3]) - max(a[1], b[1])
            if overlap >= _LINE_OVERLAP * min(a[3] - a[1], b[3] - b[1]):
                chained[_root(chained, j)] = _root(chained, i)
    # A piece of a digit broken across (`_stacked`) that makes a line of its own joins the line of the
    # rest of its digit: on a tilted photo, the loop of a 6 broken off its stem hung below its line.
    # Two lines of several pieces each stay apart, however near two of their pieces come.
    parts = _stacked({i: b for i, b in boxes.items() if b[3] - b[1] < _PART_HEIGHT * page_height})
    sizes = Counter(_root(chained, i) for i in ids)
    for i in parts:
        mine, theirs = _root(chained, i), _root(chained, _root(parts, i))
        if mine != theirs and min(sizes[mine], sizes[theirs]) == 1:
            chained[mine] = theirs
            sizes[theirs] += sizes.pop(mine)
    # A flat piece, a line of its own, just above a piece of another line that starts under its right part,
    # is that piece's bar drawn apart (a 7's, a drawing app's second stroke): left alone it was dropped as a
    # scrap, and the 7 read 1. The line's digits take it as a fragment (`group_line`).
    x0, y0, x1, y1 = np.array([boxes[i] for i in ids], dtype=float).T
    for k, i in enumerate(ids):
        mine = _root(chained, i)
        if sizes[mine] != 1 or width(boxes[i]) < _BAR_FLAT * height(boxes[i]):
            continue
        across = (x0 < x1[k]) & (x1 > x0[k])
        rise = y0[k] - y1  # how far above the bar each piece ends
        if (across & (rise >= 0) & (rise <= _BAR_CLEAR * page_height)).any():
            continue  # writing just above it: the underline of the line above, or a fraction's bar
        drop = y0 - y1[k]  # how far below the bar each piece starts
        under = np.flatnonzero(across & (drop >= 0) & (drop <= _BAR_GAP * (y1 - y0)))
        if not under.size:
            continue
        stem = ids[under[np.argmin(drop[under])]]
        top = boxes[stem][1]
        top_ink = np.flatnonzero(analysis.labels[top, boxes[stem][0] : boxes[stem][2]] == stem) + boxes[stem][0]
        if top_ink.size and top_ink.mean() >= x0[k] + _BAR_END * (x1[k] - x0[k]):
            theirs = _root(chained, stem)
            chained[mine] = theirs
            sizes[theirs] += sizes.pop(mine)
    lines: dict[int, list[int]] = {}
    for i in ids:
        lines.setdefault(_root(chained, i), []).append(i)
    kept = [
        members
        for members in lines.values()
        if max(boxes[i][3] - boxes[i][1] for i in members) >= _LINE_MIN_HEIGHT * page_height
    ]
    return sorted(
        _join_arcs(kept, boxes, page_height),
        key=lambda members: np.median([(boxes[i][1] + boxes[i][3]) / 2 for i in members]),
    )


def _root(parent: dict[int, int], i: int) -> int:
    """The representative of `i`'s group in a union-find forest (`parent[i] == i` at a root), halving paths on the way.

    Hand-written because it is six lines: scipy's `DisjointSet` would cost every
    process about 65 ms to import `scipy.cluster`.
    """
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _join_arcs(lines: list[list[int]], boxes: dict[int, Box], page_height: float) -> list[list[int]]:
    """Lines that are parts of one number written on an arc, joined.

    On an arc, a number's middle digits ride up to most of a digit's height
    above (or below) its ends: too far to chain with them. Its ends, level
    with each other, may still chain across the middle; or the number comes
    out as pieces of lines, each starting where the one before ends. So a
    line joins another when it sits in the gap between two consecutive
    pieces of the other, or starts right of the other's last piece (within
    `_ARC_GAP` digit heights, over or under none of its pieces); and, either
    way, its pieces' middles are within `_ARC_RISE` digit heights of the
    pieces beside them. The lines of a page lie further apart than that, a
    line below another starts under it, and the digits of one number stand
    too close together for another line to fit between them: ordinary lines
    are never joined. Only pairs whose boxes are that close are tested, so a
    page of hundreds of pieces costs little more than a line of them.
    """

    def centre(i: int) -> float:
        return (boxes[i][1] + boxes[i][3]) / 2

    def near(i: int, j: int) -> bool:
        return abs(centre(i) - centre(j)) <= _ARC_RISE * page_height

    def slack(i: int, j: int) -> float:
        return _ARC_OVERLAP * min(boxes[i][2] - boxes[i][0], boxes[j][2] - boxes[j][0])

    def in_a_gap(middle: list[int], host: list[int]) -> bool:
        """Whether all of `middle` sits between two consecutive pieces of `host`, near their height."""
        for left, right in itertools.pairwise(host):
            if all(
                boxes[left][2] - slack(left, i) <= boxes[i][0]
                and boxes[i][2] <= boxes[right][0] + slack(i, right)
                and near(i, left)
                and near(i, right)
                for i in middle
            ):
                return True
        return False

    def goes_on(after: list[int], host: list[int]) -> bool:
        """Whether `after` starts just right of `host`'s last piece, near its height, beside none of `host`."""
        last, first = max(host, key=lambda i: boxes[i][2]), after[0]
        gap = boxes[first][0] - boxes[last][2]
        return (
            -slack(last, first) <= gap <= _ARC_GAP * page_height
            and near(first, last)
            and all(boxes[i][0] >= boxes[j][2] - slack(i, j) for i in after for j in host)
        )

    ordered = [sorted(line, key=lambda i: boxes[i][0]) for line in lines]
    if len(ordered) < 2:
        return ordered
    # Each line's box; a pair can join only if the second starts within the
    # first's span (or just past it) and their middles are within reach.
    spans = np.array([reduce(union, (boxes[i] for i in line)) for line in ordered], dtype=float)
    middles = (spans[:, 1] + spans[:, 3]) / 2
    reach = _ARC_RISE * page_height + (spans[:, 3] - spans[:, 1])
    starts = spans[:, 0][None, :]
    close = (
        (starts >= spans[:, 0][:, None] - page_height)
        & (starts <= spans[:, 2][:, None] + _ARC_GAP * page_height)
        & (np.abs(middles[None, :] - middles[:, None]) <= reach[:, None])
    )
    np.fill_diagonal(close, False)
    joins = {k: k for k in range(len(ordered))}
    for host, joining in np.argwhere(close).tolist():
        if _root(joins, host) != _root(joins, joining) and (
            in_a_gap(ordered[joining], ordered[host]) or goes_on(ordered[joining], ordered[host])
        ):
            joins[_root(joins, joining)] = _root(joins, host)
    joined: dict[int, list[int]] = {}
    for k, line in enumerate(ordered):
        joined.setdefault(_root(joins, k), []).extend(line)
    return [sorted(line, key=lambda i: boxes[i][0]) for line in joined.values()]


def _stacked(boxes: dict[int, Box]) -> dict[int, int]:
    """A union-find forest (`_root`) joining pieces that nearly touch one above the other.

    A digit broken in two across (a 9 whose tail came off its loop) is two pieces
    of about half its height, together half as tall again as the taller one, less
    than a tenth of the shorter one's height apart. Digits side by side never make
    a piece that much taller.
    """
    parent = {i: i for i in boxes}
    for i, j in _pairs_within(list(boxes), boxes, lambda a: a[2] + 0.1 * (a[3] - a[1])):
        a, b = boxes[i], boxes[j]
        shorter, taller = sorted((a[3] - a[1], b[3] - b[1]))
        both = union(a, b)
        if both[3] - both[1] >= 1.5 * taller and gap(a, b) <= 0.1 * shorter:
            parent[_root(parent, j)] = _root(parent, i)
    return parent


def _pairs_within(pieces: list[int], boxes: dict[int, Box], reach: Callable[[Box], float]) -> Iterator[tuple[int, int]]:
    """Each pair (i, j) of `pieces`, i left of j by left edge, whose j starts no further right than `reach(box of i)`.

    Sorted by left edge, the pieces after the first beyond reach are all beyond it: the
    sweep stops there, so a line of many specks costs far less than every pair.
    """
    ordered = sorted(pieces, key=lambda i: boxes[i][0])
    for k, i in enumerate(ordered):
        limit = reach(boxes[i])
        for j in ordered[k + 1 :]:
            if boxes[j][0] > limit:
                break
            yield i, j


def group_line(analysis: Analysis, members: list[int]) -> list[list[int]]:
    """Group the components of one line into its digits, left to right.

    Handwritten digits on one line are about equally tall, so the line's
    digit height H tells whole strokes from fragments. Tall pieces (at least
    0.6 H) are digits, or halves of one when they overlap horizontally by
    half the narrower width (a 0 broken in two). Short pieces are fragments
    (a 5's detached bar, a 4 split at its crossbar, a speck above a stroke,
    chalk broken by grain) and join the nearest digit if close enough and the
    result is still digit-sized. Fragments left over become a digit only if
    together they are tall enough; otherwise they are noise. Two tall pieces
    side by side stay two digits, even under a 7's overhang, except an open
    4's top-left, which stops well above the baseline, and its stem. Pieces
    that nearly touch one above the other (a 9 whose tail came off), and
    short pieces that make one thin stroke of digit height together (a 1 whose
    pen skipped), count as one piece first, the line's height included.
    """
    boxes = {i: analysis.boxes[i] for i in members}
    if not boxes:
        return []
    units, line = _pieces(analysis.areas, boxes)
    digits = _fragments_placed(units, _two_stroke_digits_joined(_tall_pieces(units, line), line), analysis.areas, line)
    return [components for components, _ in sorted(digits, key=lambda digit: digit[1][0])]


Unit = tuple[list[int], Box]  # components and the box round them


def _pieces(areas: np.ndarray, boxes: dict[int, Box]) -> tuple[list[Unit], float]:
    """The line's pieces (components that count as one: a digit broken in two across, a thin stroke broken
    in two) and the line's digit height."""
    # A digit broken in two across is one piece from the start: on a short line, its two
    # halves would otherwise outweigh the whole digits and set the line's height.
    strokes = _stacked(boxes)
    stroke_box: dict[int, Box] = {}  # at each root: the box of its whole piece
    stroke_ink = np.zeros(len(areas))
    for i, box in boxes.items():
        root = _root(strokes, i)
        stroke_box[root] = union(stroke_box[root], box) if root in stroke_box else box
        stroke_ink[root] += areas[i]
    line = typical_height(stroke_box, stroke_ink)

    # A thin stroke broken in two (a 1 whose pen skipped, or cut by a ruled line): two short pieces,
    # neither a speck, that nearly touch and together make a thin piece of a digit's height are one
    # piece. Apart, each would join the digit beside it as a fragment.
    short = [i for i, b in boxes.items() if height(b) < 0.6 * line]
    for i, j in _pairs_within(short, boxes, lambda a: a[0] + 0.35 * line):  # farther: wider than a thin stroke
        first, second = _root(strokes, i), _root(strokes, j)
        stroke = union(stroke_box[first], stroke_box[second])
        if (
            first != second
            and min(height(boxes[i]), height(boxes[j])) >= 0.2 * line
            and gap(boxes[i], boxes[j]) <= 0.15 * line
            and width(stroke) <= 0.35 * line
            and 0.6 * line <= height(stroke) <= 1.2 * line
        ):
            strokes[second] = first
            stroke_box[first] = stroke
    pieces: dict[int, list[int]] = {}
    for i in boxes:
        pieces.setdefault(_root(strokes, i), []).append(i)
    return [(members, stroke_box[root]) for root, members in pieces.items()], line


def _tall_pieces(units: list[Unit], line: float) -> list[Unit]:
    """Tall pieces, left to right: digits, merged when they overlap by half the narrower one."""
    groups: list[Unit] = []
    for unit, box in sorted((u for u in units if height(u[1]) >= 0.6 * line), key=lambda u: u[1][0]):
        for members, other in groups:
            if x_overlap(box, other) >= 0.5 * min(width(box), width(other)):
                members.extend(unit)
                groups[groups.index((members, other))] = (members, union(box, other))
                break
        else:
            groups.append((list(unit), box))
    return groups


def _two_stroke_digits_joined(groups: list[Unit], line: float) -> list[Unit]:
    """Two pieces side by side that are each short of the line's height but
    span it together are one digit drawn in two strokes (an open 4). So are a
    short piece, about as wide as it is tall, that stops well above the baseline,
    and a full-height stroke, no wider than a slanted stem, whose span it reaches
    into: an open 4's top-left and its stem. Digits stand on the baseline and sit
    side by side; a 1 written high is narrow."""
    merged: list[Unit] = []
    for members, box in groups:
        if merged:
            last_members, last = merged[-1]
            joined = union(last, box)
            halves = max(height(last), height(box)) < 0.85 * line and height(joined) >= 0.9 * line
            top_left_and_stem = (
                height(last) < 0.85 * line <= height(box)
                and width(last) >= 0.5 * height(last)
                and width(box) <= 0.7 * line
                and x_overlap(last, box) > 0
                and last[3] <= box[3] - 0.2 * line
                and last[1] >= box[1] - 0.15 * line
            )
            if box[0] - last[2] <= 0.15 * line and width(joined) <= line and (halves or top_left_and_stem):
                merged[-1] = (last_members + members, joined)
                continue
        merged.append((members, box))
    return merged


def _fragments_placed(units: list[Unit], digits: list[Unit], areas: np.ndarray, line: float) -> list[Unit]:
    """`digits` with the fragments placed: biggest first, each joins the nearest digit when close; stray
    fragments gathered above or below each other make one more digit when tall enough."""
    digits = list(digits)
    leftovers: list[Unit] = []
    fragments = [u for u in units if height(u[1]) < 0.6 * line]
    for unit, box in sorted(fragments, key=lambda u: -sum(areas[i] for i in u[0])):
        best = min(range(len(digits)), key=lambda g: gap(box, digits[g][1]), default=None)
        if best is not None:
            members, other = digits[best]
            joined = union(box, other)
            if gap(box, other) <= 0.3 * line and width(joined) <= 1.2 * line:
                digits[best] = (members + unit, joined)
                continue
        # Not near a digit: gather with other stray fragments above or below it.
        for k, (members, other) in enumerate(leftovers):
            if x_overlap(box, other) >= -0.05 * line and width(union(box, other)) <= 1.2 * line:
                leftovers[k] = (members + unit, union(box, other))
                break
        else:
            leftovers.append((list(unit), box))
    return digits + [(members, box) for members, box in leftovers if height(box) >= 0.45 * line]
