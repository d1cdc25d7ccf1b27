"""Box geometry: the boxes of labelled components, their pixels, their union, the gap between two, a typical height,
which sides of a picture a box reaches, a wedge at a picture's edge, a ring drawn round writing and what it holds, and
writing too dense to be one digit.

A box is `digits.spec.Box`: (x0, y0, x1, y1) in pixels, ends exclusive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from digits.spec import Box

# A wedge at the picture's edge (`wedge_at_edge`) runs along this share of the sides it lies on, and
# fills this share of its box (a right triangle: half); one down a single side is this many times as
# long as it is wide.
_WEDGE_CONTACT = 0.8
_WEDGE_FILL = (0.3, 0.7)
_SLIVER = 3
# ...and is solid: this share of the triangle at its corner, to this share of the way across, is ink.
_WEDGE_SOLID = 0.9
_WEDGE_REACH = 0.8
# A ring drawn round writing (`goes_round`) lies beyond it in this share of the directions from its middle
# (a loop left open by a tenth of a turn still does).
_ROUND = 0.85
_DIRECTIONS = 36
# ...and keeps to its rim (`keeps_to_rim`): at most this share of its ink lies within this share of the way
# from its box's middle to the ellipse in its box (a doodle's outline with strokes inside it does not).
_INWARD = 0.02
_RIM = 0.6
# ...and holds writing (`writing_held`) as long as this share of its longer side, and this share of its ink:
# a dotted 0's dot, or specks in a 0, are less.
_RING_HOLDS = 0.3
_RING_INK = 0.1
# A ring has ink this far out or further on this many of so many rays from its box's middle
# (`round_all_round`; a diamond's corners reach 0.71).
_RAY_REACH = 0.7
_RAYS = 8
_RAYS_HIT = 7
_RAY_SIN = np.sin(np.arange(_RAYS)[:, None] * (2 * np.pi / _RAYS))
_RAY_COS = np.cos(np.arange(_RAYS)[:, None] * (2 * np.pi / _RAYS))
# One digit's strokes cross a straight line through it a few times (an 8 four times down its middle, eight if
# traced twice over): a real digit at most six in the rows or columns that cross the most strokes (this share of
# them). A signature's zigzag, hatching, a scribble, a line of words cross nine times or more (`scribbled`).
_SCRIBBLE_CROSSINGS = 9
_CROSSINGS_SHARE = 0.1
# A ring that touches what it holds (`ring_band`): seen in so many directions, the piece's outermost ink lies
# at least this far out (1: its box's ellipse) in this share of them; that edge, smoothed over this many
# directions, is where the ring's band starts, and it runs this many pens in. Writing left in it that is one
# straight stroke (its spread across at most this share of its spread along) across this share of the
# ring's diameter may be a slashed 0.
_BAND_DIRECTIONS = 72
_BAND_REACH = 0.8
_TOUCHING_ROUND = 0.9
_BAND_SMOOTHING = 7
_BAND_PENS = 1.5
_STRAIGHT = 0.15
_ACROSS = 0.55


def component_boxes(labels: np.ndarray, count: int) -> list[Box | None]:
    """(x0, y0, x1, y1) per label 1..count, exclusive ends; None for unused labels."""
    from scipy import ndimage

    boxes: list[Box | None] = []
    for found in ndimage.find_objects(labels, max_label=count):
        if found is None:
            boxes.append(None)
        else:
            rows, cols = found
            boxes.append((cols.start, rows.start, cols.stop, rows.stop))
    return boxes


def pixels_of(labels: np.ndarray, chosen: list[int]) -> np.ndarray:
    """The mask of the pixels whose label is among `chosen`.

    Most pictures' digits are one piece: one comparison, where `np.isin`
    would sort and search (a tenth of a millisecond on a small picture).
    """
    if len(chosen) == 1:
        one: np.ndarray = labels == chosen[0]
        return one
    return np.isin(labels, chosen)


def ink_box(mask: np.ndarray) -> Box | None:
    """The box round a mask's pixels (x0, y0, x1, y1, in its own pixels); None when it has none."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return None
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


def union(a: Box, b: Box) -> Box:
    """The smallest box holding both."""
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def cut_sides(box: Box, edges: Box) -> tuple[bool, bool, bool, bool]:
    """Which sides of `edges` (a picture's edges, in the same pixels) `box` reaches: left, top, right, bottom."""
    left, top, right, bottom = edges
    return box[0] <= left, box[1] <= top, box[2] >= right, box[3] >= bottom


def touches(box: Box, edges: Box) -> bool:
    """Whether `box` reaches any side of `edges` (a picture's edges, in the same pixels)."""
    return any(cut_sides(box, edges))


def wedge_at_edge(region: np.ndarray, sides: tuple[bool, bool, bool, bool]) -> bool:
    """Whether a piece (its pixels in its box, which reaches `sides` of the picture, as `cut_sides`
    gives them) is a wedge of what lies beyond a photographed page: a solid right triangle
    (`_solid_corner`) that runs along `_WEDGE_CONTACT` of the picture's sides it lies on, in a corner
    (two adjacent sides) or down one side, never reaching the opposite one, `_SLIVER` times as long
    as it is wide.

    A photo turned a few degrees, or a skewed scan, shows the desk or the scanner's lid in its corners
    as dark triangles; a page photographed from below its middle, narrower at its top, shows it as
    slivers down its sides. Thin ones passed for 1s. A digit reaches a side only where a stroke ends;
    a bold 7 or L in a picture's corner runs along two sides too, but is no solid triangle.
    """
    left, top, right, bottom = sides
    height, width = region.shape
    down_a_side = left != right and (region[:, 0] if left else region[:, -1]).mean() >= _WEDGE_CONTACT
    along_top_or_bottom = top != bottom and (region[0] if top else region[-1]).mean() >= _WEDGE_CONTACT
    if down_a_side and along_top_or_bottom:
        corners = [(left, top)]
    elif down_a_side and height >= _SLIVER * width:
        corners = [(left, True), (left, False)]  # its wide end at the top or at the bottom
    elif along_top_or_bottom and width >= _SLIVER * height:
        corners = [(True, top), (False, top)]
    else:
        return False
    return any(_solid_corner(region, at_left, at_top) for at_left, at_top in corners)


def scribbled(mask: np.ndarray) -> bool:
    """Whether ink (any nonzero pixel) is too dense with strokes to be one digit: one in ten of the rows with ink,
    or of the columns, cross `_SCRIBBLE_CROSSINGS` strokes or more."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return False
    box = mask[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1].astype(bool, copy=False)  # the rest is paper
    for ink in (box, box.T):
        crossed = (ink[:, 1:] & ~ink[:, :-1]).sum(axis=1) + ink[:, 0]  # strokes begun along each row
        if np.count_nonzero(crossed >= _SCRIBBLE_CROSSINGS) >= _CROSSINGS_SHARE * np.count_nonzero(crossed):
            return True
    return False


def _solid_corner(region: np.ndarray, at_left: bool, at_top: bool) -> bool:
    """Whether a piece fills the right triangle at one corner of its box (`_WEDGE_SOLID` of it, to
    `_WEDGE_REACH` of the way to the opposite corner along each side) and about half its box."""
    height, width = region.shape
    down = np.arange(height)[:, None] / height
    across = np.arange(width)[None, :] / width
    triangle = (down if at_top else 1 - down) + (across if at_left else 1 - across) <= _WEDGE_REACH
    return bool(
        triangle.any() and region[triangle].mean() >= _WEDGE_SOLID and _WEDGE_FILL[0] <= region.mean() <= _WEDGE_FILL[1]
    )


class Pieces(NamedTuple):
    """Labelled pieces as arrays, to ask about many at once: their labels, boxes (one row each) and ink."""

    labels: np.ndarray
    boxes: np.ndarray
    inks: np.ndarray

    @classmethod
    def of(cls, boxes: dict[int, Box], areas: np.ndarray) -> Pieces:
        """From a labelling's boxes by label and its areas (indexed by label)."""
        labels = np.array(list(boxes), dtype=int)
        return cls(labels, np.array(list(boxes.values()), dtype=int).reshape(-1, 4), areas[labels])


def ring_to_cut(piece: np.ndarray, box: Box, labels: np.ndarray, pieces: Callable[[], Pieces]) -> np.ndarray | None:
    """What of a piece (its mask in `box`, in `labels` of that box) is a ring drawn round writing: all of
    it when it keeps to its rim, holds writing and goes round it; its band when it touches what it holds
    (`ring_band`); None when it is no such ring. `round_all_round` asks first, cheaply; `pieces` gives every
    kept piece of the labelling (asked only for a piece that keeps to its rim)."""
    if not round_all_round(piece):
        return None
    seen = from_middle(piece)
    held = writing_held(pieces(), box, int(piece.sum())) if keeps_to_rim(seen) else []
    if held and goes_round(piece, np.isin(labels, held)):
        return piece
    return ring_band(piece, seen)


def writing_held(pieces: Pieces, box: Box, ring_ink: int) -> list[int]:
    """The labels of the `pieces` lying inside `box`, off its edges, when they are writing that a ring of
    `ring_ink` pixels may be drawn round: as long together as `_RING_HOLDS` of the box's longer side, and
    `_RING_INK` as much ink as the ring. Specks in a 0, or the dot of a dotted 0, are not. Else none."""
    x0, y0, x1, y1 = box
    corners = pieces.boxes
    inside = (corners[:, 0] > x0) & (corners[:, 1] > y0) & (corners[:, 2] < x1) & (corners[:, 3] < y1)
    if not inside.any():
        return []
    held = corners[inside]
    extent = max(held[:, 2].max() - held[:, 0].min(), held[:, 3].max() - held[:, 1].min())
    if extent < _RING_HOLDS * max(x1 - x0, y1 - y0) or pieces.inks[inside].sum() < _RING_INK * ring_ink:
        return []
    return [int(label) for label in pieces.labels[inside]]


def round_all_round(piece: np.ndarray) -> bool:
    """A cheap first look for a ring (`keeps_to_rim`, `ring_band`): a piece (its mask in its box) has ink
    `_RAY_REACH` of the way out to its box's ellipse or further (a hand-drawn ring bulges beyond it towards
    the corners) on `_RAYS_HIT` of `_RAYS` rays from its box's middle. Most digits have none there in a
    corner or two."""
    height, width = piece.shape
    # A point every pixel or so along the ray's reach, and the pixel beside each: a ring of a 1 px pen is
    # not stepped over, even where a step goes diagonally across it.
    reach = np.linspace(_RAY_REACH, np.sqrt(2), int((np.sqrt(2) - _RAY_REACH) * max(height, width) / 2) + 2)
    rows = np.clip((height / 2 * (1 + _RAY_SIN * reach)).astype(int), 0, height - 1)
    cols = np.clip((width / 2 * (1 + _RAY_COS * reach)).astype(int), 0, width - 1)
    hit = piece[rows, cols] | piece[rows, np.minimum(cols + 1, width - 1)]
    return int(hit.any(axis=1).sum()) >= _RAYS_HIT


def from_middle(piece: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A piece's pixels (its mask in its box) seen from its box's middle, in its own proportions: their rows,
    columns, and offsets down and across, -1 to 1 at the box's edges (`keeps_to_rim`, `ring_band`)."""
    height, width = piece.shape
    rows, cols = np.nonzero(piece)
    return rows, cols, (rows + 0.5 - height / 2) / (height / 2), (cols + 0.5 - width / 2) / (width / 2)


def keeps_to_rim(seen: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> bool:
    """Whether a piece (`seen` from its middle, `from_middle`) keeps to its box's rim, as a ring does: at
    most `_INWARD` of its ink lies within `_RIM` of the way from the middle to the ellipse inscribed in its
    box. A digit's strokes cross its middle (but a 0's); a doodle's outline with strokes of its own inside
    it does not keep to its rim either."""
    _, _, down, across = seen
    return bool((down**2 + across**2 < _RIM**2).mean() <= _INWARD)


def goes_round(piece: np.ndarray, held: np.ndarray) -> bool:
    """Whether a piece goes round the ink `held` (both masks of the piece's box): seen from the middle of
    the held ink's box, it lies beyond all of that ink in `_ROUND` of the directions. A circle drawn round
    a digit or a number does; a 6's loop or a 3's bowl beside a stroke does not.
    Directions and distances are taken in the piece's own proportions (its box squared): an oval round a
    number, open by a tenth of its way round, is open by a tenth of the directions, as a circle would be."""
    height, width = piece.shape
    held_rows, held_cols = np.nonzero(held)
    centre = ((held_rows.min() + held_rows.max() + 1) / 2, (held_cols.min() + held_cols.max() + 1) / 2)

    def seen(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each pixel's direction (of `_DIRECTIONS`) and distance from the centre, in the piece's proportions."""
        down, across = (rows + 0.5 - centre[0]) / height, (cols + 0.5 - centre[1]) / width
        return _sector(down, across, _DIRECTIONS), np.hypot(down, across)

    ring_direction, ring_distance = seen(*np.nonzero(piece))
    held_direction, held_distance = seen(held_rows, held_cols)
    nearest_ring = np.full(_DIRECTIONS, np.inf)
    np.minimum.at(nearest_ring, ring_direction, ring_distance)
    farthest_held = np.zeros(_DIRECTIONS)
    np.maximum.at(farthest_held, held_direction, held_distance)
    return int(((nearest_ring < np.inf) & (nearest_ring > farthest_held)).sum()) >= _ROUND * _DIRECTIONS


def ring_band(piece: np.ndarray, seen: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray | None:
    """The pixels of a ring drawn round writing that touches it (both one piece: `piece`, its pixels in its
    box, `seen` from its middle by `from_middle`), or None when the piece is no such thing.

    Seen from its box's middle in `_BAND_DIRECTIONS` directions (in its own proportions, as `goes_round`),
    a ring round writing is the piece's outermost ink, at least `_BAND_REACH` of the way out to the box's
    ellipse in `_TOUCHING_ROUND` of them. Its edge, smoothed round (`_BAND_SMOOTHING` directions), must be
    the farthest ink within a pen everywhere: writing that crosses the ring leaves the two as they are. Its
    band runs in from that edge `_BAND_PENS` pens deep; what lies a pen further in is the writing, which
    must be writing (as `writing_held` asks: as long as `_RING_HOLDS` of the box's longer side, `_RING_INK`
    as much ink as the band) and not one straight stroke across (`_straight_across`: a slashed 0). A 0 has
    no ink further in; an 8, a 6 or a 4 have no outermost ink near their box's ellipse in many directions.
    """
    height, width = piece.shape
    rows, cols, down, across = seen
    reach = np.hypot(down, across)
    far = reach >= _BAND_REACH
    if (
        np.bincount(_sector(down[far], across[far], _BAND_DIRECTIONS), minlength=_BAND_DIRECTIONS).astype(bool).mean()
        < _TOUCHING_ROUND
    ):
        return None  # the usual digit, asked about its farthest pixels only
    direction = _sector(down, across, _BAND_DIRECTIONS)
    outermost = np.zeros(_BAND_DIRECTIONS)
    np.maximum.at(outermost, direction, reach)
    from scipy import ndimage

    from digits.read.normalize import stroke_width

    pen = stroke_width(np.pad(piece, 1))  # the ring's and the writing's, alike
    # A pen's width in this reach, along each direction.
    angle = (np.arange(_BAND_DIRECTIONS) + 0.5) * (2 * np.pi / _BAND_DIRECTIONS) - np.pi
    pen_reach = pen * np.hypot(np.cos(angle) / (width / 2), np.sin(angle) / (height / 2))
    # The ring's edge, smoothed round: where the farthest ink sticks out beyond it by a pen, writing
    # crosses the ring (a 7's bar drawn through it), and the two are left as they are.
    ring_edge = ndimage.median_filter(outermost, size=_BAND_SMOOTHING, mode="wrap")
    if (outermost - ring_edge > pen_reach).any():
        return None
    inner_edge = (ring_edge - _BAND_PENS * pen_reach)[direction]
    in_band = reach >= inner_edge
    within = reach < inner_edge - pen_reach[direction]  # a pen clear of the band: the writing
    if not within.any() or within.sum() < _RING_INK * in_band.sum():
        return None
    extent = max(np.ptp(rows[within]), np.ptp(cols[within])) + 1
    if extent < _RING_HOLDS * max(height, width) or _straight_across(down[within], across[within]):
        return None
    band = np.zeros_like(piece)
    band[rows[in_band], cols[in_band]] = True
    return band


def _straight_across(down: np.ndarray, across: np.ndarray) -> bool:
    """Whether the writing left in a ring (its offsets from the middle, in the ring's proportions) is one
    straight stroke across it, `_ACROSS` of its diameter long: a slashed or barred 0 (Ø, Φ) then, as likely as a
    1 in a tight ring, and read as a 1 without its ring. Left whole, it reads as it did."""
    points = np.stack([down, across])
    spread = np.sqrt(np.maximum(np.linalg.eigvalsh(np.cov(points)), 0)) if down.size > 2 else np.zeros(2)
    # A straight stroke of length L spreads L / sqrt(12) along itself.
    return bool(spread[1] * np.sqrt(12) >= _ACROSS * 2 and spread[0] <= _STRAIGHT * spread[1])


def _sector(down: np.ndarray, across: np.ndarray, sectors: int) -> np.ndarray:
    """Which of `sectors` equal sectors round the middle each offset lies in."""
    sector: np.ndarray = ((np.arctan2(down, across) + np.pi) * (sectors / (2 * np.pi))).astype(int)
    return sector % sectors


def height(box: Box) -> int:
    return box[3] - box[1]


def width(box: Box) -> int:
    return box[2] - box[0]


def x_overlap(a: Box, b: Box) -> int:
    """How far two boxes overlap across (negative: how far apart they are)."""
    return min(a[2], b[2]) - max(a[0], b[0])


def gap(a: Box, b: Box) -> float:
    """Distance between two boxes (0 when they touch or overlap)."""
    dx = max(0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[3], b[3]))
    return float(np.hypot(dx, dy))


def typical_height(boxes: dict[int, Box], areas: np.ndarray) -> float:
    """How tall the writing is: the median height of its components, weighted by ink.

    Weighting by ink lets whole digits outvote the fragments beside them; on
    a line that climbs or curves, each digit is still only one digit tall.
    """
    heights = np.array([height(b) for b in boxes.values()], dtype=float)
    weights = np.array([areas[i] for i in boxes], dtype=float)
    order = np.argsort(heights)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    return float(heights[order][np.searchsorted(cumulative, 0.5)])
