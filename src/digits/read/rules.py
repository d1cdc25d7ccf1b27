"""Rules that are not writing: frames, rings, ruled lines, table rules, scanner borders and sheet edges.

A page often carries long straight strokes beside its digits: the lines of
ruled paper, the rules of a table or a form, the dark edge of a scanned or
photographed sheet. They are thin like writing, so step 5 keeps them; they
then chain every line they cross into one, and digits that touch them
become one huge piece. `drop_rules` removes them from an `Analysis` before
its lines are found, and before its one digit is picked (`pipeline.prepare`:
a digit written across a ruled line is one piece with it).

`cut_frames` comes first: a frame (a form's box round a digit, a row of
boxes for a number's digits, a table's grid, squared paper) loses its
straight runs along its box's four sides and across it, but not the
strokes those runs cross (`_lines_only`), nor a pen's stroke lying along
a line and darker than it (`_DARKER_THAN_LINE`). Unlike `drop_rules`, whose cut the
pipeline undoes when it leaves too little of the one digit it picked (a
lone straight stroke is no rule), a frame's cut is never undone: what it
leaves is the picture. A ring drawn round writing (a circled digit) goes whole, or its band where it touches.

`drop_rules`, in two passes, once the dots of a dotted or dashed line are cut
out of what was written on it (`dotted.dots_of_lines`). First, a piece
`_FLAT` times as wide as tall (no digit is that flat) loses the straight
horizontal run, twice its height long, that crosses it from end to end: a
ruled line, or the line that joined the digits written on it. Then, with
the writing's height measured on the pieces shorter than half the picture,
a piece longer than `RULE_DIGITS` times that height and thinner than `_RULE_WIDTH` of it
loses the straight runs of that length, within `MAX_TILT` degrees of the
horizontal or vertical, that cross it from end to end (`_END_TO_END`).
Only those pixels go: a digit that touches or crosses a rule keeps its own
strokes, bridged across the gap the rule leaves. Pieces touching the
picture's edge and thinner than `_BORDER_BAND` of the writing's height are
what a border left, and go too. A picture whose pieces are all long (one
big digit) is returned unchanged.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np

from digits.read.dotted import dots_of_lines
from digits.read.geometry import Pieces, cut_sides, ring_to_cut, typical_height
from digits.read.ink import Analysis
from digits.read.levels import median
from digits.read.normalize import stroke_width
from digits.read.paper import against_paper
from digits.spec import Box

# MNIST's widest digits are twice as wide as tall.
_FLAT = 3.0
# Handwritten strokes are at most about one and a half digits long (a 1's
# stem, a 7's bar, a slanted 4); a straight run three digits long is a rule.
RULE_DIGITS = 3.0
# A rule is thin: pens' strokes are 0.1-0.2 of the digits' height, a scanner's dark border reaches 0.3.
_RULE_WIDTH = 0.4
# A rule spans what it joined; a straight stretch of a doodle or a big digit does not.
_END_TO_END = 0.8
# Rules in a photographed page lean a little; runs are looked for in steps
# fine enough that a 2 px thick rule of the minimum length fits one of them.
MAX_TILT = 10.0
# A frame is inked across this share of its box in each band along the box's four sides, a band
# this share of the box's height (or width) deep: a cheap first test that most digits fail (a 7's
# bar or a 1's foot lines one side). A round 0 may pass it; its lack of straight runs stops it.
_FRAME_SPAN = 0.8
_FRAME_BAND = 0.2
# Where the picture's edge cut a frame (squared paper, a table photographed in part), its grid goes
# on beyond it: its nearest line may lie up to a cell inside, a third of a small crop or more.
_FRAME_BAND_CUT = 0.4
# A pen's stroke lying along a frame's line is as thin as the line, but a printed grid or form is often
# lighter than the pen: a pixel this many times the line's typical ink is the pen's, not the line's.
_DARKER_THAN_LINE = 1.5
# Too small to hold a digit at analysis resolution: no frame. A frame's lines are thin beside its
# box (a form's 3 px lines round a 100 px cell: 0.03); a bold 1 lines its box on four sides too.
_FRAME_LEAST = 12
_FRAME_LINE = 0.15
# Frames are looked for on a copy of about this many pixels: straight runs cost a pass over the box
# per tilt, and long runs need fine tilts (a 4000×3000 grid took 20 s at full size).
_FRAME_PIXELS = 160 * 160
# What is left of a border beside a rule: a piece lying within this share of the
# writing's height from the picture's edge is too thin to be a digit cut by it.
_BORDER_BAND = 0.25


def drop_rules(analysis: Analysis) -> Analysis:
    """The analysis without the pixels of long straight rules (see the module's contract)."""
    analysis = _cut_flat(_cut_dots(analysis))
    boxes, height = analysis.boxes, writing_height(analysis)
    if height is None:
        return analysis
    left, top, right, bottom = analysis.edges
    length = max(3, round(RULE_DIGITS * height)) | 1  # odd: the opening's two filters then share their centre
    band = _BORDER_BAND * height
    slivers = [
        i
        for i, (x0, y0, x1, y1) in boxes.items()
        if (x0 <= left and x1 <= left + band)
        or (y0 <= top and y1 <= top + band)
        or (x1 >= right and x0 >= right - band)
        or (y1 >= bottom and y0 >= bottom - band)
    ]
    labels, areas = analysis.labels.copy(), analysis.areas.copy()
    areas[slivers] = 0
    if slivers:
        labels[np.isin(labels, slivers)] = 0
    for i, (x0, y0, x1, y1) in boxes.items():
        if max(x1 - x0, y1 - y0) < length:
            continue
        piece = labels[y0:y1, x0:x1] == i
        if stroke_width(np.pad(piece, 1)) > _RULE_WIDTH * height:  # padded: a rule filling its box has edges too
            continue  # too thick for a rule: a big digit or a doodle beside specks that set the height
        at_left, at_top, at_right, at_bottom = cut_sides(boxes[i], analysis.edges)
        across = _end_to_end(piece, length, (at_left, at_right))
        down = _end_to_end(piece.T, length, (at_top, at_bottom)).T
        areas = cut_out(labels, areas, i, boxes[i], across | down)
    return replace(analysis, labels=labels, areas=areas)


def writing_height(analysis: Analysis) -> float | None:
    """How tall the writing is (`typical_height`), from the pieces shorter than half the picture; None without."""
    left, top, right, bottom = analysis.edges
    half = 0.5 * max(right - left, bottom - top)
    short = {i: b for i, b in analysis.boxes.items() if max(b[2] - b[0], b[3] - b[1]) < half}
    return typical_height(short, analysis.areas) if short else None


def _cut_dots(analysis: Analysis) -> Analysis:
    """The analysis without the dots of its dotted and dashed lines (`dotted.dots_of_lines`), cut out of the
    digits written on them."""
    dots = dots_of_lines(analysis)
    if dots is None:
        return analysis
    labels, areas = analysis.labels.copy(), analysis.areas.copy()
    for i, (x0, y0, x1, y1) in analysis.boxes.items():
        if (under := dots[y0:y1, x0:x1] & (labels[y0:y1, x0:x1] == i)).any():
            areas = cut_out(labels, areas, i, (x0, y0, x1, y1), under)
    return replace(analysis, labels=labels, areas=areas)


def _cut_flat(analysis: Analysis) -> Analysis:
    """First pass: long flat pieces lose their horizontal rules twice their height long.

    No digit is that flat (MNIST's widest are twice as wide as tall): such a
    piece, if it is also `RULE_DIGITS` times as wide as the other pieces are
    tall, is a rule, a segment of one, or a line of digits joined by the rule
    it crosses. (A shorter one is a dash, or the detached bar of a 5.) Cut
    out, those no longer hide the writing's height from the second pass, and
    the digits they joined come apart.
    """
    boxes = analysis.boxes
    flat = {i: b for i, b in boxes.items() if b[2] - b[0] >= _FLAT * (b[3] - b[1])}
    others = {i: b for i, b in boxes.items() if i not in flat}
    reach = RULE_DIGITS * typical_height(others, analysis.areas) if others else 0.0
    flat = {i: b for i, b in flat.items() if b[2] - b[0] >= reach}
    if not flat:
        return analysis
    labels, areas = analysis.labels.copy(), analysis.areas.copy()
    for i, (x0, y0, x1, y1) in flat.items():
        piece = labels[y0:y1, x0:x1] == i
        at_left, _, at_right, _ = cut_sides((x0, y0, x1, y1), analysis.edges)
        rule = _end_to_end(piece, (2 * (y1 - y0) + 1) | 1, (at_left, at_right))
        areas = cut_out(labels, areas, i, (x0, y0, x1, y1), rule)
    return replace(analysis, labels=labels, areas=areas)


def cut_frames(analysis: Analysis) -> Analysis:
    """The analysis whose frames lost their straight runs across and down (`_frame_runs`), and whose rings
    drawn round writing are gone.

    A frame is one piece whatever it holds: the box round a digit on a form,
    a row of boxes sharing their walls for a number's digits, a table's grid.
    Its box is then as big as the writing or bigger, so the writing's height
    cannot be told from it, and the digits it holds (or touches) are one
    piece with it. Once its lines are cut out (`cut_out`: strokes crossing them
    bridged), the digits it held are pieces of their own. A pixel of a line
    `_DARKER_THAN_LINE` times as dark as the line's median, against the
    paper, is a pen's stroke lying along it (a printed grid or form is often
    lighter than the pen), and stays.

    A ring drawn round writing (a circled digit or number), read with it a 0,
    goes whole, or its band where it touches what it holds
    (`geometry.ring_to_cut`): all of it, unbridged.
    """
    labels, areas = analysis.labels, analysis.areas
    pieces = functools.cache(lambda: Pieces.of(analysis.boxes, analysis.areas))  # made when first asked
    for i, (x0, y0, x1, y1) in analysis.boxes.items():
        if min(x1 - x0, y1 - y0) < _FRAME_LEAST:
            continue
        piece = analysis.labels[y0:y1, x0:x1] == i
        runs = _frame_runs(piece, cut_sides((x0, y0, x1, y1), analysis.edges))
        band = None if runs is not None else ring_to_cut(piece, (x0, y0, x1, y1), analysis.labels[y0:y1, x0:x1], pieces)
        if band is None and (runs is None or not runs.any()):
            continue
        if labels is analysis.labels:
            labels, areas = labels.copy(), areas.copy()
        if band is not None:  # a pen's ring, darker where it crosses itself: all of it goes, unbridged
            areas = cut_out(labels, areas, i, (x0, y0, x1, y1), band, bridge=False)
        elif runs is not None:
            # Unclipped (`Analysis.ink` stops at typical ink, which a grid's lines may set).
            window = np.s_[y0:y1, x0:x1]
            darkness = against_paper(analysis.grey[window], analysis.background[window], analysis.dark_ink)
            runs &= darkness < _DARKER_THAN_LINE * median(darkness[runs])
            areas = cut_out(labels, areas, i, (x0, y0, x1, y1), runs)
    return analysis if labels is analysis.labels else replace(analysis, labels=labels, areas=areas)


def _frame_runs(piece: np.ndarray, cut_off: tuple[bool, bool, bool, bool]) -> np.ndarray | None:
    """A frame's straight runs (a mask of `piece`, its box), or None when the piece is no frame.

    A frame: each band along its box's four sides (`_FRAME_BAND` deep, or
    `_FRAME_BAND_CUT` at a side where the picture's edge cut the piece:
    `cut_off`, left, top, right, bottom as in a box) is inked across `_FRAME_SPAN` of it; its strokes are thin beside the box
    (`_FRAME_LINE`); and straight runs `_END_TO_END` of the box long lie
    in all four bands, horizontal ones at top and bottom, vertical ones at
    left and right. Its runs are the line pixels of all those straight
    runs (`_lines_only`), inside too (a comb's walls, a table's rules, a
    grid's lines). A handwritten digit is not that
    straight; a 0 drawn as a rectangle is, and is taken for a frame.
    Looked for on a copy max-pooled to about `_FRAME_PIXELS` (thin lines
    stay whole), so the runs of a big frame are as coarse as the pooling.
    """
    height, width = piece.shape
    factor = max(1, int(np.ceil(np.sqrt(height * width / _FRAME_PIXELS))))
    small = piece
    if factor > 1:
        padded = np.pad(piece, ((0, -height % factor), (0, -width % factor)))
        small = np.asarray(padded.reshape(padded.shape[0] // factor, factor, -1, factor).any(axis=(1, 3)))
    rows, cols = small.shape
    left, top, right, bottom = (
        max(1, round((_FRAME_BAND_CUT if cut else _FRAME_BAND) * size))
        for cut, size in zip(cut_off, (cols, rows, cols, rows), strict=True)
    )
    sides = (
        small[:top].any(axis=0),
        small[-bottom:].any(axis=0),
        small[:, :left].any(axis=1),
        small[:, -right:].any(axis=1),
    )
    if min(side.mean() for side in sides) < _FRAME_SPAN:
        return None  # cheap and enough for nearly every piece
    if stroke_width(np.pad(small, 1)) > _FRAME_LINE * min(rows, cols):
        return None
    # Padded: a frame's sides lie on its box's edges, where a run leaning a little would leave the box.
    framed = np.pad(small, 1)
    across = _end_to_end(framed, round(_END_TO_END * cols) | 1)[1:-1, 1:-1]
    down = _end_to_end(framed.T, round(_END_TO_END * rows) | 1).T[1:-1, 1:-1]
    if not (across[:top].any() and across[-bottom:].any() and down[:, :left].any() and down[:, -right:].any()):
        return None
    runs = _lines_only(small, across, down)
    if factor > 1:
        runs = np.repeat(np.repeat(runs, factor, axis=0), factor, axis=1)[:height, :width] & piece
    return runs


def _lines_only(mask: np.ndarray, across: np.ndarray, down: np.ndarray) -> np.ndarray:
    """The pixels of `mask`'s straight runs `across` and `down` (grown a pixel beyond the ink) that are a line's own.

    A run also takes the pixels of a stroke it crosses, as far along the
    stroke as the run can lean: a digit on squared paper lost its strokes
    round every crossing, gaps too long to bridge. A line's own pixels are
    about as thin across it as the line (`_thin_as_its_line`); where two
    lines cross, each is that thin once the other's thin pixels are left
    out, while a stroke on a crossing is not.
    """
    across, down = across & mask, down & mask
    thickness_down, thickness_across = _ink_through(mask, 0), _ink_through(mask, 1)
    most_down, most_across = _thin_as_its_line(across, thickness_down), _thin_as_its_line(down, thickness_across)
    rows_of_lines, columns_of_lines = across & (thickness_down <= most_down), down & (thickness_across <= most_across)
    lines: np.ndarray = (across & (_ink_through(mask & ~columns_of_lines, 0) <= most_down)) | (
        down & (_ink_through(mask & ~rows_of_lines, 1) <= most_across)
    )
    return lines


def _thin_as_its_line(runs: np.ndarray, thickness: np.ndarray) -> np.ndarray:
    """For each pixel of `runs`, the most `thickness` a pixel of its line may have: twice its line's median and
    a pixel. Each line (8-connected run) has its own, so a bold border goes with a grid of hairlines."""
    from scipy import ndimage

    lines, count = ndimage.label(runs, structure=np.ones((3, 3), dtype=bool))
    most = np.zeros(runs.shape, dtype=np.float64)
    if count:
        medians = np.asarray(ndimage.median(thickness, lines, index=np.arange(1, count + 1)), dtype=np.float64)
        most[runs] = 2 * medians[lines[runs] - 1] + 1
    return most


def _ink_through(mask: np.ndarray, axis: int) -> np.ndarray:
    """Each pixel's count of consecutive ink pixels through it along `axis` (0 where there is no ink)."""
    ink = np.moveaxis(mask, axis, 0)
    steps = np.arange(1, ink.shape[0] + 1)[:, None] * np.ones((1, ink.shape[1]), dtype=int)
    last_paper_before = np.maximum.accumulate(np.where(ink, 0, steps), axis=0)
    first_paper_after = np.minimum.accumulate(np.where(ink, ink.shape[0] + 1, steps)[::-1], axis=0)[::-1]
    counts: np.ndarray = np.where(ink, first_paper_after - last_paper_before - 1, 0)
    return np.moveaxis(counts, 0, axis)


def cut_out(
    labels: np.ndarray, areas: np.ndarray, label: int, box: Box, rule: np.ndarray, bridge: bool = True
) -> np.ndarray:
    """Remove a rule's pixels (`rule`: a mask of the piece's box) from piece `label`; returns the new areas.

    `labels` is changed in place.

    What is left of the piece (digits that touched the rule) gets labels of its own; with `bridge`, the
    strokes that crossed the rule are joined across it (beyond a ring's band there is nothing to join).
    """
    from scipy import ndimage

    if not rule.any():
        return areas
    x0, y0, x1, y1 = box
    window = labels[y0:y1, x0:x1]
    piece = window == label
    # One pixel round the run: a rule's anti-aliased edge is not writing either.
    rule = ndimage.binary_dilation(rule, structure=np.ones((3, 3), dtype=bool)) & piece
    kept = piece & ~rule
    # Where a stroke crosses the rule, it goes on at the other side: give it back
    # its pixels across the rule, so that a digit cut in two is whole again.
    # The gap: the rule, the pixel `straight_runs` grew it by and the pixel added above, each side.
    if bridge:
        reach = int(stroke_width(np.pad(rule, 1))) + 7
        for across in (np.ones((reach, 1), dtype=bool), np.ones((1, reach), dtype=bool)):
            kept |= ndimage.binary_closing(kept, structure=across) & rule
    rest, count = ndimage.label(kept, structure=np.ones((3, 3), dtype=bool))
    window[piece] = 0
    window[rest > 0] = rest[rest > 0] + len(areas) - 1
    areas[label] = 0
    return np.concatenate([areas, np.bincount(rest.ravel(), minlength=count + 1)[1:]])


def _end_to_end(piece: np.ndarray, length: int, cut_off: tuple[bool, bool] = (False, False)) -> np.ndarray:
    """The piece's horizontal straight runs (`straight_runs`), if they span `_END_TO_END` of its width; else none.

    A rule runs from end to end of what it joined (digits, a frame's corner);
    a straight stretch of a doodle or of a big digit does not. `cut_off`
    (left, right): the piece reaches the picture's edge there, so its rows
    go on beyond it (`straight_runs`).
    """
    height, width = piece.shape
    if piece.any(axis=0).mean() < _END_TO_END:
        return np.zeros_like(piece)  # such a run would leave no column of its span empty
    # A straight run across most of the box leans at most this much.
    tilt = min(MAX_TILT, float(np.degrees(np.arctan(height / (_END_TO_END * width)))))
    rule = straight_runs(piece, length, tilt, cut_off)
    columns = np.flatnonzero(rule.any(axis=0))
    if columns.size and columns[-1] - columns[0] + 1 >= _END_TO_END * width:
        return rule
    return np.zeros_like(piece)


def straight_runs(
    mask: np.ndarray, length: int, max_tilt: float, cut_off: tuple[bool, bool] = (False, False)
) -> np.ndarray:
    """Pixels on a horizontal run of `length` pixels through `mask`, tilted up to `max_tilt` degrees.

    The mask is sheared so that each tilt becomes horizontal, opened along
    the rows with a `length`-pixel segment (separable minimum and maximum
    filters: cost independent of the length), and sheared back. Beyond the
    mask there is no ink, but at a side in `cut_off` (left, right) the
    picture's edge cut the mask: there its edge column goes on for half a
    run, as a rule goes on beyond a photo's edge, so a stretch of rule cut
    short by the picture is a run when half a run of it is in the picture
    (a stroke of a digit at the edge is shorter).
    """
    from scipy import ndimage

    height, width = mask.shape
    before, after = (length // 2 if side else 0 for side in cut_off)
    if width + before + after < length:
        return np.zeros_like(mask)
    # A 1-pixel rule steps a row now and then; grown a pixel up and down, it stays
    # straight within each tilt tried. (The caller keeps only the mask's own pixels.)
    mask = ndimage.binary_dilation(mask, structure=np.ones((3, 1), dtype=bool))
    step = np.degrees(np.arctan(2.0 / length))
    found = np.zeros_like(mask)
    cols = np.arange(width)
    for tilt in np.arange(-max_tilt, max_tilt + step / 2, step) if max_tilt > step else [0.0]:
        shifts = np.round(cols * np.tan(np.radians(tilt))).astype(int)
        shifts -= shifts.min()
        pad = int(shifts.max())
        rows = np.arange(height)[:, None] + (pad - shifts)[None, :]
        sheared = np.zeros((height + pad, width), dtype=np.uint8)
        sheared[rows, cols] = mask
        # Nothing beyond the mask is ink but where the picture cut it: mirrored at every edge ("reflect"),
        # a stroke ending on a frame's side read as a run twice as long.
        if before or after:
            sheared = np.pad(sheared, ((0, 0), (before, after)), mode="edge")
        shortest = ndimage.minimum_filter1d(sheared, length, axis=1, mode="constant", cval=0)
        opened = ndimage.maximum_filter1d(shortest, length, axis=1, mode="constant", cval=0)
        found |= opened[:, before : before + width][rows, cols].astype(bool)
    return found
