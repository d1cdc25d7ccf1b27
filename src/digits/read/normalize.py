"""Normalizing one digit: a mask of its ink -> MNIST's 28×28 format.

MNIST digits are white on black, scaled so the longer side fits 20 px, and
centred on their centre of mass in a 28×28 canvas; their strokes have the
width of the pens NIST's writers used. `to_mnist` rebuilds exactly that from
a binary mask of one digit, bringing hairline and marker strokes into
MNIST's range first. `naive` is the baseline the benchmark compares against.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from digits.read.geometry import ink_box
from digits.read.grey import grey_array
from digits.read.levels import median
from digits.spec import SIZE

_MNIST_BOX = 20
# MNIST's centre of mass, in array index coordinates (row, column); measured
# on the test set, it is (13.99, 14.00) with a spread of 0.3 px.
_MNIST_COM = (14.0, 14.0)

# MNIST's stroke width as a fraction of the digit's longer side, measured on
# the test set (upscaled, thresholded at half): 5th percentile 0.075, median
# 0.11, 95th percentile 0.19. Strokes outside this band are a pen the model
# has never seen; we bring them back to its edge, and leave the rest alone.
_STROKE_RANGE = (0.08, 0.17)
# A line of digits is levelled (each digit turned back) when at least this many digits' centres lie
# on one straight line, within this share of the digits' height, tilted at least this many degrees:
# MNIST's own digits lean 10 degrees or so either way.
_LEAST_FOR_TILT = 3
_TILT_FIT = 0.25
_LEAST_TILT = 12.0
# Steeper than this, the pieces are more a column than a line: they are left as they are.
_MOST_TILT = 45.0
# Turned, a thin piece (a 1 px hairline) can fade below half on every pixel; then it is left unturned.
_KEPT_TURNING = 0.7


def crop_to_ink(mask: np.ndarray) -> np.ndarray:
    """The mask cut to the bounding box of its pixels (`geometry.ink_box`; the whole mask when empty)."""
    box = ink_box(mask)
    if box is None:
        return mask
    x0, y0, x1, y1 = box
    return mask[y0:y1, x0:x1]


def stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width in pixels: twice the distance-to-edge on the medial ridge."""
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(mask)
    ridge = mask & (distance >= _largest_around(distance))
    return 2 * median(distance[ridge]) if ridge.any() else 0.0


def pieces_stroke_width(labels: np.ndarray) -> float:
    """`stroke_width(crop_to_ink(labels > 0))` for 8-connected pieces (`pieces.writing_pieces`' labels),
    with the distances found piece by piece in its box and a ring of one pixel: on a page at 2048 px the
    whole ink's box is millions of pixels, and its transform cost 0.3 s where the boxes of the pieces cost
    a few milliseconds. The same value: the first pixel off a piece along its row or column is paper (no
    other piece touches it), so no pixel of the piece has nearer paper beyond that ring; and a ridge pixel's
    neighbours are of its own piece or paper. (The boxes can overlap: their sum, not the ink's box, is the cost.)"""
    from scipy import ndimage

    box = ink_box(labels > 0)
    if box is None:
        return 0.0
    x0, y0, x1, y1 = box
    labels = labels[y0:y1, x0:x1]
    ridges = []
    for label, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None:
            continue
        rows, columns = found
        ring = (
            slice(max(rows.start - 1, 0), rows.stop + 1),
            slice(max(columns.start - 1, 0), columns.stop + 1),
        )
        near = labels[ring]
        distance = ndimage.distance_transform_edt(near > 0)
        ridges.append(distance[(near == label) & (distance >= _largest_around(distance))])
    values = np.concatenate(ridges) if ridges else np.zeros(0)
    return 2 * median(values) if values.size else 0.0


def _largest_around(values: np.ndarray) -> np.ndarray:
    """Each pixel's largest value in its 3×3 neighbourhood, the border repeated: `ndimage.maximum_filter(values, 3)`,
    whose general n-dimensional loop costs twice these four array maxima on a digit's crop."""
    padded = np.pad(values, 1, mode="edge")  # the filter's "reflect" mode, for a window of 3
    rows = np.maximum(np.maximum(padded[:-2], padded[1:-1]), padded[2:])
    largest: np.ndarray = np.maximum(np.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])
    return largest


def _normalise_stroke(mask: np.ndarray) -> np.ndarray:
    """Thicken hairlines and thin marker strokes into MNIST's range of pens."""
    from scipy import ndimage

    if not mask.any():
        return mask
    mask = crop_to_ink(mask)  # work on the digit only: speed
    size = max(mask.shape)
    width = stroke_width(mask)
    low, high = _STROKE_RANGE[0] * size, _STROKE_RANGE[1] * size
    if width < low:
        radius = (low - width) / 2
        pad = int(np.ceil(radius)) + 1
        padded = np.pad(mask, pad)
        thicker: np.ndarray = ndimage.distance_transform_edt(~padded) <= radius
        return thicker
    if width > high:
        radius = (width - high) / 2
        thinner = ndimage.distance_transform_edt(mask) > radius
        # Never erase the digit: keep the original if erosion would gut it.
        return thinner if thinner.sum() > 0.3 * mask.sum() else mask
    return mask


def level(mask: np.ndarray, tilt: float) -> np.ndarray:
    """A digit's mask cut to its ink and turned by `tilt` degrees (counter-clockwise as seen): its line's
    tilt undone (`line_tilt`). Unturned, or when turning lost most of a thin piece's ink, the mask itself."""
    if not tilt:
        return mask
    from scipy import ndimage

    # Padded: interpolated against the paper beyond the crop, ink at its edge would fade below half.
    ink = np.pad(crop_to_ink(mask), 2).astype(np.float32)
    turned: np.ndarray = ndimage.rotate(ink, tilt, reshape=True, order=1) > 0.5
    return turned if turned.sum() >= _KEPT_TURNING * ink.sum() else mask


def line_tilt(centres: list[tuple[float, float]], height: float) -> float:
    """The tilt, in degrees, that levels a line of digits whose centres (x, y) are given, or 0.

    Only a line of `_LEAST_FOR_TILT` digits or more, tilted `_LEAST_TILT`
    to `_MOST_TILT` degrees, whose centres lie within `_TILT_FIT` of the
    line's height of one straight line: two digits' centres differ as much
    by their shapes as by a tilt, and a number on an arc has no one tilt.
    Upright digits written along a climbing baseline are turned too: the
    model still reads digits leaning that much (MNIST's lean 10-15°).
    """
    if len(centres) < _LEAST_FOR_TILT:
        return 0.0
    x, y = np.array(centres, dtype=float).T
    if np.ptp(x) == 0:
        return 0.0  # a column of pieces, not a line
    slope, intercept = np.polyfit(x, y, 1)
    if np.abs(y - (slope * x + intercept)).max() > _TILT_FIT * height:
        return 0.0
    tilt = float(np.degrees(np.arctan(slope)))
    return tilt if _LEAST_TILT <= abs(tilt) <= _MOST_TILT else 0.0


def to_mnist(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop a digit mask, fit it in 20×20 and centre it by mass in 28×28.

    Returns (crop, image). The binary mask is downscaled with area averaging,
    which is how MNIST got its grey edges from NIST's binary scans.
    """
    image = np.zeros((SIZE, SIZE), dtype=np.float32)
    crop = crop_to_ink(_normalise_stroke(mask))  # the whole mask when it is empty: then the test below is too
    if not crop.any():
        return np.zeros((1, 1), dtype=np.float32), image
    crop = crop.astype(np.float32)
    height, width = crop.shape
    factor = _MNIST_BOX / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    method = Image.Resampling.BOX if factor < 1 else Image.Resampling.BILINEAR
    small = np.asarray(Image.fromarray(crop, "F").resize(size, method), dtype=np.float32)
    small = np.clip(small, 0, 1)
    h, w = small.shape
    # `ndimage.center_of_mass`'s own sums, without its label handling (a fifth of this function's time).
    total = small.sum()
    com_row = (small * np.arange(h, dtype=float)[:, None]).sum() / total
    com_col = (small * np.arange(w, dtype=float)[None, :]).sum() / total
    top = int(np.clip(round(_MNIST_COM[0] - com_row), 0, SIZE - h))
    left = int(np.clip(round(_MNIST_COM[1] - com_col), 0, SIZE - w))
    image[top : top + h, left : left + w] = small
    return crop, image


def naive(image: Image.Image) -> np.ndarray:
    """The baseline: grey, squash to 28×28, divide by 255. For the benchmark only."""
    grey = Image.fromarray(grey_array(image), "F").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(grey, dtype=np.float32), 0, 1)
