"""Shade that passes for ink: what has soft edges beside crisp writing is light (step 5, in `pieces.writing_pieces`).

Contract: `soft_shade(ink, labels, areas, speck, least, boxes)` names the large
components whose edges are soft while other ink in the picture, not specks,
is much crisper; `pieces.writing_pieces` drops them before it tells writing from
specks (a band larger than the page's writing would make its strokes look
like specks beside it). It only names components: it never adds ink or
moves a threshold.

Ink stops at an edge a few pixels wide; a band of shade across a sheet
fades over tens of them. Such a band, thin enough to pass the blob test of
`pieces.writing_pieces`, made lines of its own on whole-sheet photos in place of
the numbers beside it. Softness alone is not enough: a digit photographed
out of focus, alone in its picture, has soft edges too, so a soft component
goes only beside writing several times crisper. A component's steepness is
the median, along its edge, of its steepest step of `ink` (the signal in
units of the ink's contrast, lightly smoothed) to a pixel beside it: along
a line one or two pixels wide (a table's rule) the ridge is part of the
edge, and the step off it is steep.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Below this steepness an edge is soft. On the real pictures of the development fold, the large pieces of ink
# measured 0.148 or more, but for two shadows at a photo's border (0.013 and 0.026, no part of a digit); the
# shaded bands across generated whole sheets (`benchmarks/whole_sheets.py`'s generator, at another seed than its
# table's), 0.011 to 0.023.
SOFT_EDGE = 0.05
# ...and is shade only beside ink this many times crisper, of at least this share of its area in all: alone,
# or beside nothing as crisp, a soft component may be a digit photographed out of focus (a digit scaled up and
# blurred measured 0.035 to 0.07).
_CRISPER = 3
_COMPARED_AREA = 0.05
# Below this steepness, an edge fades as the shade measured above does, and as no digit out of focus did: beside
# such a component, crisp pieces count even if they are specks beside it (`soft_shade`).
FADING_EDGE = 0.03
# Smaller than this share of the picture's shorter side, a component is a stroke or a speck, whatever its edge or
# thickness: shade, a shadow or a desk lies across a good part of a picture (`pieces.writing_pieces` uses it too).
REGION_EXTENT = 0.1


def soft_shade(
    ink: np.ndarray,
    labels: np.ndarray,
    areas: np.ndarray,
    speck: float,
    least: float,
    boxes: Sequence[tuple[slice, slice] | None],
) -> list[int]:
    """The labels of the large components whose edges are soft beside crisper writing (the module's contract).

    `areas` is 0 for a label already dropped. A piece under `least` pixels, or under `speck` times a soft
    piece's area, is a speck beside it (the rule of `pieces.writing_pieces`, which drops specks once shade is gone).
    `boxes`: each label's, as `ndimage.find_objects` gives them (the caller has found them: a pass over every
    pixel, made once).
    """
    shortest = min(labels.shape)
    kept = {label: box for label, box in enumerate(boxes, start=1) if box and areas[label]}
    steepness = {
        label: edge_steepness(ink, labels, label, (rows, cols))
        for label, (rows, cols) in kept.items()
        if max(rows.stop - rows.start, cols.stop - cols.start) >= REGION_EXTENT * shortest
    }
    soft = [label for label, steep in steepness.items() if steep < SOFT_EDGE]
    if not soft:
        return []
    writing = {label: steep for label, steep in steepness.items() if label not in soft and areas[label] >= least}
    writing |= {
        label: edge_steepness(ink, labels, label, box)
        for label, box in kept.items()
        if label not in steepness and areas[label] >= least
    }

    def counts_beside(other: int, label: int) -> bool:
        # A piece crisper by `_CRISPER`; if it is a speck beside the soft one, only where that one fades as
        # shade does (`FADING_EDGE`). A speck beside a soft piece that stays is a speck beside the largest
        # piece too, and goes: it must not vote that piece out (a digit out of focus beside dust or a printed
        # caption was lost). Beside a band of shade larger than the page's writing, though, every stroke is one.
        if writing[other] < _CRISPER * steepness[label]:
            return False
        return areas[other] >= speck * areas[label] or steepness[label] < FADING_EDGE

    return [
        label
        for label in soft
        if sum(int(areas[other]) for other in writing if counts_beside(other, label)) >= _COMPARED_AREA * areas[label]
    ]


def edge_steepness(ink: np.ndarray, labels: np.ndarray, label: int, found: tuple[slice, slice]) -> float:
    """The median, over the component's edge pixels, of the largest step of `ink` to a pixel beside
    (above, below, left or right): a gradient, measured at the edge pixels alone (a single digit is a
    large component of its picture, and a gradient of the whole picture cost more than reading its crop)."""
    rows, cols = found
    region = labels[rows, cols] == label
    inner = np.zeros_like(region)  # a pixel whose four neighbours are in the component (the box's rim is not)
    inner[1:-1, 1:-1] = region[1:-1, 1:-1] & region[:-2, 1:-1] & region[2:, 1:-1] & region[1:-1, :-2] & region[1:-1, 2:]
    r, c = np.nonzero(region & ~inner)
    r, c = r + rows.start, c + cols.start
    height, width = ink.shape
    # Where the picture's border cuts it, the component has no edge: those pixels say nothing of it.
    within = (r > 0) & (r < height - 1) & (c > 0) & (c < width - 1)
    if within.any():
        r, c = r[within], c[within]
    here = ink[r, c]
    steps = [
        np.abs(ink[np.clip(r + dr, 0, height - 1), np.clip(c + dc, 0, width - 1)] - here)
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
    ]
    return float(np.median(np.max(steps, axis=0)))
