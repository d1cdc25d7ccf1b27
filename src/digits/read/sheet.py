"""Sheet-on-a-table detection: which part of a photo is the sheet the writing is on.

A photo of a sheet lying on a table shows two surfaces, and only the sheet
is paper. `outside_sheet` returns the mask of the table (everything that is
not the sheet, and the corners a turn filled), or None when the sheet fills
the picture and no corner is filled; `digits.read.ink`
then leaves the table out of the paper's estimate and of the ink, and what
lies along the sheet's edge (`sheet_rim`) out of the writing.

Two finders, on a coarse copy of the photo:

  * rules (`_rules_sheet`): the largest region of one side of Otsu's brightness
    split that ends in a sharp edge, is a quadrilateral and leaves a bare
    table round it;
  * where they find none, a small segmenter (`shipped/sheet.onnx`, 100k
    weights, trained by `digits.train.sheet_finder` on photos generated from
    MNIST's training digits) marks the sheet on a 64×64 copy, kept where
    its edge is a step.

Corners that a turn filled with one flat level (`_filled_corners`: an
editor's or a scanner's) take the level beside them before either finder
looks, and count as table after.

The rules alone missed sheets whose edge is soft under dim light, or whose
desk has grain, and then read the desk as writing; the segmenter never saw a
chalkboard on a wall, and its 64×64 edge is rough. Chosen on generated pages
of seeds 0 and 1 and generated junk; docs/reading.md gives the figures.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from digits.errors import ModelError
from digits.read.grey import WORK_MIN
from digits.read.levels import MIN_CONTRAST, otsu, reduced

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
# The sheet's rim (`sheet_rim`) is this share of the picture's shorter side wide.
_RIM_WIDTH = 0.02
# A corner filled by a turn is one level to within this much (of 1) on the coarse copy: a JPEG's noise,
# smoothed, stays well within it. It differs from the right triangle its legs span by at most this share
# of the triangle (the blur along its long side, on short legs), its legs are at least this many pixels
# of the coarse copy (a turn of about 1 degree), and what lies just beyond its long side differs from it
# by this much at least: a review measured a vignette's corners at 0.008-0.019 and fills at 0.033 and
# more (a fill nearer the paper's level than that shows no edge to leave out).
_FILL_FLAT = 0.02
_FILL_TRIANGLE = 0.25
_FILL_LEAST_LEG = 3
_FILL_STEP = 0.03
# The side of the square the segmenter sees, and the probability above which a pixel is sheet.
FINDER_SIDE = 64
FINDER_LEVEL = 0.5
# A "sheet" smaller than this share of the photo is a bright patch, not paper to write on.
_FINDER_LEAST_SHEET = 0.05
# Where the segmenter leaves less than this share of the photo to the table, the sheet
# fills it. Chosen on generated pages of seeds 0 and 1: 0.02 (a scanner's thin border
# counts) read one page more than 0.08.
_FINDER_LEAST_TABLE = 0.02
# The segmenter's sheet is kept where the step across its edge is at least this many
# times the brightness's variation beside the edge. Chosen on generated pages of seeds
# 0 and 1 and generated junk: without the test, 6 more of 600 junk pictures gave a
# digit; 1.0 lost 5 pages; 0.3 gave one more junk picture a digit.
_FINDER_EDGE = 0.5


def _rectangle_area(region: np.ndarray) -> float:
    """Area of the smallest rotated rectangle around a region (rotating calipers on its hull).

    The hull is that of each row's first and last pixel: every other pixel lies between them, so the hull is
    the same as all the pixels' (whose Qhull cost 26 ms on a sheet's tens of thousands)."""
    from scipy import spatial

    rows = np.flatnonzero(region.any(axis=1))
    first = region[rows].argmax(axis=1)
    last = region.shape[1] - 1 - region[rows, ::-1].argmax(axis=1)
    points = np.unique(np.concatenate([np.stack([rows, first], 1), np.stack([rows, last], 1)]), axis=0).astype(float)
    try:
        corners = points[spatial.ConvexHull(points).vertices]
    except spatial.QhullError:  # a line or a point: no area
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
    the sheet that holds the ink. `_rules_sheet` looks for the sheet on a
    coarse copy, and `_learned_sheet` where the rules find none; corners a
    turn filled (`_filled_corners`) are table too. Returns the mask of
    everything else, grown a little past the sheet's edge, or None when the
    sheet fills the picture and no corner is filled (the usual case).
    """
    return find_table(grey).at(grey.shape)


class Table(NamedTuple):
    """The table round the sheet on a picture's coarse copy (`find_table`), the same for a 512 px copy and its
    half: the reader's two looks at a photo share it. `Table(None)`: none there (a caller's None: not looked for)."""

    coarse: np.ndarray | None  # the table on the coarse copy; None: the sheet fills the picture

    def at(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """`outside_sheet`'s mask for a picture of `shape` (rows, columns) whose coarse copy this was found on."""
        from scipy import ndimage

        if self.coarse is None:
            return None
        height, width = shape
        table_mask: np.ndarray = ndimage.binary_dilation(
            _resized(self.coarse, shape), iterations=max(2, round(0.01 * max(height, width)))
        )
        return table_mask


def find_table(grey: np.ndarray) -> Table:
    """`outside_sheet`'s table on `grey`'s coarse copy, to be brought to a size by `Table.at`."""
    from scipy import ndimage

    small = _coarse(grey)
    if small.size < 64 or np.ptp(small) < MIN_CONTRAST:
        return Table(None)
    # Corners a turn filled (an editor's, a scanner's) are no table the finders know: each takes the
    # level of what lies beside it first (the median of a band just past the blur along its edge), so
    # that a sheet on a desk is found as it would be unturned, and a light fill round grey paper is not
    # taken for a sheet; they are left out after.
    filled = _filled_corners(small)
    if filled is not None:
        beside = ndimage.binary_dilation(filled, iterations=4) & ~ndimage.binary_dilation(filled, iterations=1)
        small = np.where(filled, np.median(small[beside]), small)
    sheet = _rules_sheet(small)
    if sheet is None:
        sheet = _learned_sheet(small)
    if sheet is None and filled is None:
        return Table(None)
    around = ~sheet if sheet is not None else np.zeros(small.shape, bool)
    if filled is not None:
        around |= filled
    return Table(around)


def _filled_corners(small: np.ndarray) -> np.ndarray | None:
    """The mask of the corners that a turn filled with one flat level, as an editor, a scanner or a
    phone's straightening fills them, or None where fewer than two corners are so filled.

    Such a corner is a right triangle along two of the picture's edges, one level throughout, that
    ends in a step of brightness along its long side: a mild vignette's corner is as flat on the
    coarse copy, but its light rises gently past it. (A hard one, dark corners rounded off by a lens
    hood, can pass for a fill.) Two corners or more hold the same fill;
    the level most corners share is tried first, then the others. A flat corner of paper or desk
    runs on beyond any triangle, and is none.
    """
    from scipy import ndimage

    height, width = small.shape
    corners = [(0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1)]
    values = np.array([small[corner] for corner in corners])
    tried: list[float] = []
    for level in sorted(values.tolist(), key=lambda value: -int((np.abs(values - value) < _FILL_FLAT).sum())):
        if any(abs(level - other) < _FILL_FLAT for other in tried):
            continue
        tried.append(level)
        labels, _ = ndimage.label(np.abs(small - level) < _FILL_FLAT)
        found = [mask for corner in corners if (mask := _fill_triangle(small, labels, corner, level)) is not None]
        if len(found) >= 2:
            filled: np.ndarray = np.logical_or.reduce(found)
            return filled
    return None


def _fill_triangle(small: np.ndarray, labels: np.ndarray, corner: tuple[int, int], level: float) -> np.ndarray | None:
    """The region of `labels` at `corner`, where it is a filled corner (`_filled_corners`); else None."""
    from scipy import ndimage

    row, column = corner
    if labels[corner] == 0:  # this corner is not at the level tried
        return None
    flip = (1 if row == 0 else -1, 1 if column == 0 else -1)
    region = (labels == labels[corner])[:: flip[0], :: flip[1]]  # this corner at (0, 0)
    across, down = int(np.argmin(region[0])), int(np.argmin(region[:, 0]))  # its legs (0: the whole edge)
    if across < _FILL_LEAST_LEG or down < _FILL_LEAST_LEG:
        return None
    rows, columns = np.ogrid[: region.shape[0], : region.shape[1]]
    triangle = rows * across + columns * down < across * down
    if (region ^ triangle).sum() > _FILL_TRIANGLE * triangle.sum():
        return None
    region = region[:: flip[0], :: flip[1]]
    beyond = ndimage.binary_dilation(region, iterations=3) & ~ndimage.binary_dilation(region, iterations=1)
    return region if abs(float(np.median(small[beyond])) - level) >= _FILL_STEP else None


def sheet_rim(outside: np.ndarray) -> np.ndarray:
    """The band of sheet within `_RIM_WIDTH` of the table (`outside_sheet`'s mask), measured from the
    table's bulk: where the finder took a thin strip of the sheet for table (along a table's rules,
    say), no band follows it."""
    from scipy import ndimage

    reach = max(2, round(_RIM_WIDTH * min(outside.shape)))
    bulk = ndimage.binary_opening(outside, iterations=reach)
    band: np.ndarray = ndimage.binary_dilation(bulk, iterations=reach) & ~outside
    return band


def _resized(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A mask brought to `shape` (rows, columns), its edge where it crosses half way."""
    smooth = Image.fromarray(np.uint8(mask) * 255).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(smooth) > 127


def _coarse(grey: np.ndarray) -> np.ndarray:
    """A copy of at most `WORK_MIN` pixels a side, smoothed: the sheet is big, the grain and the ink are not."""
    from scipy import ndimage

    small: np.ndarray = ndimage.gaussian_filter(reduced(grey, WORK_MIN)[0], 1.0)
    return small


def finder_input(grey: np.ndarray) -> np.ndarray:
    """What the segmenter sees of a working grey picture: FINDER_SIDE² pixels around its median, in its spread."""
    return _finder_input(_coarse(grey))


def _finder_input(small: np.ndarray) -> np.ndarray:
    square = np.asarray(
        Image.fromarray(small.astype(np.float32), "F").resize((FINDER_SIDE, FINDER_SIDE), Image.Resampling.BILINEAR)
    )
    # Centred and scaled, so a dim photo and a bright one look alike.
    centred: np.ndarray = ((square - np.median(square)) / (square.std() + 0.02)).astype(np.float32)
    return centred


@functools.cache
def finder_session() -> Any:
    """The shipped segmenter, loaded once per process (a `Reader` loads it, so a broken install fails early)."""
    from digits.read.model import onnx_session, shipped_file

    path = shipped_file("sheet.onnx")
    if not path.is_file():
        raise ModelError(f"{path}: this installation lacks the sheet finder; reinstall digits.")
    # 64×64 pixels: more threads would only wait for each other.
    session = onnx_session(path, threads=1, fix="; reinstall digits")
    inputs = session.get_inputs()
    if len(inputs) != 1 or tuple(inputs[0].shape[1:]) != (FINDER_SIDE, FINDER_SIDE, 1):
        raise ModelError(
            f"{path}: not the sheet finder (it takes no {FINDER_SIDE}×{FINDER_SIDE} picture); reinstall digits."
        )
    return session


def _learned_sheet(small: np.ndarray) -> np.ndarray | None:
    """The segmenter's sheet as a mask of `small`: its largest region, holes filled.

    None when it leaves too little to a table, when it is too small to be a
    sheet, or when no step of brightness runs along its edge.
    """
    from scipy import ndimage

    session = finder_session()
    square = _finder_input(small)[None, ..., None]
    probability = session.run(None, {session.get_inputs()[0].name: square})[0][0, ..., 0]
    labels, count = ndimage.label(probability > FINDER_LEVEL)
    if count == 0:
        return None
    sheet = ndimage.binary_fill_holes(labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    if (~sheet).mean() < _FINDER_LEAST_TABLE or sheet.mean() < _FINDER_LEAST_SHEET:
        return None
    # On a picture with no sheet in it, lit unevenly, the segmenter can see one in the light. A real
    # sheet's edge is a step, if a small one under dim light: larger than the brightness varies beside it.
    on_small = _resized(sheet, small.shape)
    step, spread = _edge(small, on_small)
    return on_small if step > 0 and step >= _FINDER_EDGE * spread else None


def _sharp_edge(small: np.ndarray, sheet: np.ndarray) -> bool:
    """Whether `sheet` (a mask of `small`) ends in a sharp step of brightness, as a sheet's edge does.

    Uneven light also splits a page into a brighter and a darker part, but
    with no step between them.
    """
    step, _ = _edge(small, sheet)
    return step >= _SHARP_STEP


def _edge(small: np.ndarray, sheet: np.ndarray) -> tuple[float, float]:
    """The step of brightness across `sheet`'s edge, and how much brightness varies along either side of it.

    A band a few pixels inside is compared with one a few pixels outside:
    right at the boundary, both sides differ by construction (noise). The
    variation is the sum of the two bands' median absolute deviations.
    """
    from scipy import ndimage

    inner = ndimage.binary_erosion(sheet, iterations=2) & ~ndimage.binary_erosion(sheet, iterations=5)
    outer = ndimage.binary_dilation(sheet, iterations=5) & ~ndimage.binary_dilation(sheet, iterations=2)
    if not (inner.any() and outer.any()):  # no edge to measure: no step
        return 0.0, 0.0
    inside, outside = small[inner], small[outer]
    middle_in, middle_out = np.median(inside), np.median(outside)
    spread = np.median(np.abs(inside - middle_in)) + np.median(np.abs(outside - middle_out))
    return float(abs(middle_in - middle_out)), float(spread)


def _rules_sheet(small: np.ndarray) -> np.ndarray | None:
    """The sheet found by rules on the coarse copy, or None.

    The largest region of one side of Otsu's brightness split that passes
    `_sheet`'s tests. Uneven light can leave part of a bright sheet below
    Otsu's level: when the bright side ends in a sheet's sharp edge yet fails,
    lower levels are tried too.
    """
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
            return sheet
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
    if not _sharp_edge(small, filled):
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
