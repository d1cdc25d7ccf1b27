"""Sheet-on-a-table detection: which part of a photo is the sheet the writing is on.

A photo of a sheet lying on a table shows two surfaces, and only the sheet
is paper. `outside_sheet` returns the mask of the table (everything that is
not the sheet), or None when the sheet fills the picture; `digits.read.ink`
then leaves the table out of the paper's estimate and of the ink.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from digits.read.levels import MIN_CONTRAST, otsu

# Where Otsu's split cuts a sheet whose edge it saw, the levels tried next:
# these shares of the way down from Otsu's level to the median of what lies below it.
_LOWER_LEVELS = (0.25, 0.5, 0.75)
# A sheet's edge is a step of at least this much brightness (of 1) over a few
# pixels; uneven light makes none. Chosen on generated pages of seeds 0 and 1:
# 0.15 missed sheets on a grey or wooden desk under dim light; 0.12 and 0.09
# found the same sheets (0.12 kept, the nearer to what held before), and no real
# picture or generated junk read otherwise.
_SHARP_STEP = 0.12
# A sheet covers at most this share of the photo: a scan's dark border can be thin.
# Chosen on generated pages of seeds 0 and 1: with 0.9, scans in a thin border
# were not found; 0.95 read one more page exactly than 0.97. No real picture or
# generated junk read otherwise.
_MAX_AREA = 0.95


def _rectangle_area(region: np.ndarray) -> float:
    """Area of the smallest rotated rectangle around a region (rotating calipers on its hull)."""
    from scipy import spatial

    points = np.argwhere(region).astype(float)
    try:
        corners = points[spatial.ConvexHull(points).vertices]
    except Exception:  # a line or a point: no area
        return float("inf")
    best = float("inf")
    for start, end in zip(corners, np.roll(corners, -1, axis=0), strict=False):
        edge = end - start
        length = float(np.hypot(*edge))
        if length == 0:
            continue
        along = corners @ (edge / length)
        across = corners @ (np.array([-edge[1], edge[0]]) / length)
        # +1: pixel centres to pixel edges.
        best = min(best, (np.ptp(along) + 1) * (np.ptp(across) + 1))
    return best


def outside_sheet(grey: np.ndarray) -> np.ndarray | None:
    """Where the picture is not the sheet (or board) the digit is written on.

    A photo of a sheet lying on a table shows two surfaces: the table, and
    the sheet that holds the ink. The sheet is found on a coarse copy as the
    largest region of one side of Otsu's brightness split that passes
    `_sheet`'s tests. Uneven light can leave part of a bright sheet below
    Otsu's level: when the bright side ends in a sheet's sharp edge yet fails,
    lower levels are tried too. Returns the mask of everything else, or None
    when the sheet fills the picture (the usual case).
    """
    from scipy import ndimage

    height, width = grey.shape
    factor = max(1, int(np.ceil(max(height, width) / 256)))
    size = (max(1, width // factor), max(1, height // factor))
    small = ndimage.gaussian_filter(np.asarray(Image.fromarray(grey, "F").resize(size, Image.Resampling.BOX)), 1.0)
    if small.size < 64 or np.ptp(small) < MIN_CONTRAST:
        return None
    level = otsu(small.ravel())
    bright = small > level
    for side in (bright, ~bright):
        sheet, sharp_edge = _sheet(small, side)
        if sheet is None and sharp_edge and side is bright:
            # Its edge was seen, but the split cut the sheet where the light
            # fell off (and found writing beyond its bright part): look again
            # above lower levels, towards the median of what lies below.
            below = float(np.median(small[~bright]))
            for step in _LOWER_LEVELS:
                sheet, _ = _sheet(small, small > level - step * (level - below))
                if sheet is not None:
                    break
        if sheet is not None:
            outside = (
                np.asarray(Image.fromarray(np.uint8(~sheet) * 255).resize((width, height), Image.Resampling.NEAREST))
                > 0
            )
            table_mask: np.ndarray = ndimage.binary_dilation(
                outside, iterations=max(2, round(0.01 * max(height, width)))
            )
            return table_mask
    return None


def _sheet(small: np.ndarray, side: np.ndarray) -> tuple[np.ndarray | None, bool]:
    """(the sheet's mask or None, whether it ends in a sharp edge) for the largest region of `side`.

    A sheet, once its holes are filled, is big, has a few holes (the ink) but
    is mostly solid, ends in a sharp step of brightness, nearly fills its
    smallest enclosing rectangle (a sheet is a quadrilateral; a digit is
    not), leaves part of the border to the table and has no writing outside it.
    """
    from scipy import ndimage

    labels, count = ndimage.label(side)
    if count == 0:
        return None, False
    region = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    filled = ndimage.binary_fill_holes(region)
    area, holes = int(filled.sum()), int(filled.sum() - region.sum())
    if not (0.1 * small.size <= area <= _MAX_AREA * small.size and 0.001 * area <= holes <= 0.2 * area):
        return None, False
    # A sheet's edge is a sharp step; uneven light also splits a page
    # into a brighter and a darker part, but with no step between them.
    # Compare a band a few pixels inside with one a few pixels outside:
    # right at the boundary, both sides differ by construction (noise).
    inner = ndimage.binary_erosion(filled, iterations=2) & ~ndimage.binary_erosion(filled, iterations=5)
    outer = ndimage.binary_dilation(filled, iterations=5) & ~ndimage.binary_dilation(filled, iterations=2)
    sharp_edge = (
        bool(inner.any() and outer.any()) and abs(np.median(small[inner]) - np.median(small[outer])) >= _SHARP_STEP
    )
    if not sharp_edge:
        return None, False
    if area < 0.85 * _rectangle_area(filled):
        return None, True  # not a quadrilateral: a bold 0 or 6 is round, a sheet is not
    border = np.concatenate([filled[0], filled[-1], filled[:, 0], filled[:, -1]])
    if (~border).mean() < 0.2:
        return None, True
    # A table is bare; writing outside the "sheet" means the darker part
    # is paper too, in the shadow of a hand or a phone. Writing is
    # whatever stands out from its surroundings, dark or light, and is
    # narrower than a good part of the picture: a marker digit's thick
    # stroke as well as a pen's thin one (top-hats, not a small median).
    # The sheet is painted over with the table's own level first, so a
    # thin strip or wedge of table beside it does not stand out.
    core = ndimage.binary_erosion(~filled, iterations=3)
    grown = ndimage.binary_dilation(filled, iterations=3)
    table = np.where(grown, np.median(small[~grown]), small) if (~grown).any() else small
    reach = max(7, round(0.12 * min(small.shape)))
    # Closing and opening from separable maximum and minimum filters: fast at any reach.
    closed = ndimage.minimum_filter(ndimage.maximum_filter(table, reach), reach)
    opened = ndimage.maximum_filter(ndimage.minimum_filter(table, reach), reach)
    detail = np.maximum(closed - table, table - opened)
    if core.any() and (detail[core] > 0.1).mean() >= 0.002:
        return None, True
    return filled, True
