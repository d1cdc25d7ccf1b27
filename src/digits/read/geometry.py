"""Box geometry: the boxes of labelled components, their pixels, their union, the gap between two, a typical height,
which sides of a picture a box reaches, and a wedge in a picture's corner.

A box is `digits.spec.Box`: (x0, y0, x1, y1) in pixels, ends exclusive.
"""

from __future__ import annotations

import numpy as np

from digits.spec import Box

# A wedge in a picture's corner (`wedge_in_corner`) runs along this share of both sides it reaches,
# and fills this share of its box (a right triangle: half).
_WEDGE_CONTACT = 0.8
_WEDGE_FILL = (0.3, 0.7)


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


def wedge_in_corner(region: np.ndarray, sides: tuple[bool, bool, bool, bool]) -> bool:
    """Whether a piece (its pixels in its box, which reaches `sides` of the picture, as `cut_sides`
    gives them) is a wedge filling a corner of the picture: it reaches two adjacent sides and no other,
    runs along `_WEDGE_CONTACT` of each, and fills about half its box.

    A photo turned a few degrees, or a skewed scan, shows the desk or the scanner's lid in its corners
    as dark triangles; the thin ones passed for 1s. A digit reaches a side only where a stroke ends,
    and a tight crop of a bold 1 reaches all four and fills its box.
    """
    left, top, right, bottom = sides
    if left == right or top == bottom:
        return False
    along_side = region[:, 0] if left else region[:, -1]
    along_top_or_bottom = region[0] if top else region[-1]
    return bool(
        min(along_side.mean(), along_top_or_bottom.mean()) >= _WEDGE_CONTACT
        and _WEDGE_FILL[0] <= region.mean() <= _WEDGE_FILL[1]
    )


def reach_of(pixels: np.ndarray) -> int:
    """How far some pixels run: the longer side of their bounding box (0 for none)."""
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    return int(max(rows[-1] - rows[0], cols[-1] - cols[0])) + 1 if rows.size else 0


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
