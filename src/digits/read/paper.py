"""The paper under the ink: its light, its grain, which side of it the ink is, and a margin of it.

Steps 2-3 of the pipeline for photos (`digits.read.ink`):
`estimate_background` estimates the paper's brightness everywhere (uneven
light and shadows included), `noise_level` its grain, `ink_signal` flattens
a picture against it and tells dark ink from light chalk, and `with_margin`
gives a small crop cut at its ink a margin of its own paper. All work on
grey values in [0, 1].
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from digits.read.levels import MIN_CONTRAST, median, reduced
from digits.read.normalize import crop_to_ink
from digits.spec import Box

# A small photo crop is given a margin of paper this share of its longer side when ink (well off the
# paper's level) covers this share of each of at least this many of its sides.
_MARGIN = 0.15
_INK_AT_BORDER = 0.02
_SIDES_INKED = 3
# Coarse grid on which the background is estimated: lighting varies slowly,
# so a ~64 px version of the image is enough and makes the filters cheap.
_BG_GRID = 64


def estimate_background(grey: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Estimate the paper's brightness everywhere, ignoring the ink.

    On a coarse grid, a Gaussian-weighted average of the pixels that are not
    outliers (normalised convolution) is refined a few times: ink of either
    polarity is an outlier, so it drops out and the estimate follows only the
    slowly varying paper, uneven light and shadows included. Pixels in
    `exclude` (a table around the sheet) are not paper: they take the value
    of the nearest sheet, as the picture's border does, and the
    average spans a sixth of the sheet rather than of the photo: over a small
    sticky note, a photo-wide average carried the note's bright middle out to
    its dimmer edges, which then stood out as ink.
    """
    from scipy import ndimage

    height, width = grey.shape
    small, small_size = reduced(grey, _BG_GRID)
    small = small.astype(np.float64)
    keep = np.ones_like(small)
    nearest: tuple[np.ndarray, ...] | None = None
    if exclude is not None:
        coverage = Image.fromarray(exclude.astype(np.float32), "F").resize(small_size, Image.Resampling.BOX)
        keep = (np.asarray(coverage) < 0.5).astype(np.float64)
        if keep.any() and not keep.all():
            # The table takes the value of the nearest sheet: the sheet's edge is met as the picture's
            # border is (mode="nearest"). Left out of the average instead, a sheet darker at its rim
            # than within (a webcam's vignette, a curl) was estimated as bright as its middle, and
            # its rim stood out as ink all round the sheet.
            nearest = tuple(ndimage.distance_transform_edt(keep == 0, return_distances=False, return_indices=True))
    # Light varies over a good part of the paper's shorter side, ink over much less.
    sigma = max(1.5, min(crop_to_ink(keep > 0).shape) / 6)
    values = small if nearest is None else small[nearest]
    weight = keep.copy()
    estimate = small
    for _ in range(4):
        # Where ink covered a whole neighbourhood there is no paper left to
        # average: the small constant in the ratio falls back to the median
        # of the paper seen so far.
        paper = float(np.median(small[weight > 0])) if weight.any() else float(np.median(small))
        counted = weight if nearest is None else weight[nearest]
        num = ndimage.gaussian_filter(values * counted, sigma, mode="nearest", truncate=3)
        den = ndimage.gaussian_filter(counted, sigma, mode="nearest", truncate=3)
        estimate = (num + 0.05 * paper) / (den + 0.05)
        residual = small - estimate
        kept = residual[weight > 0] if weight.any() else residual
        noise = 1.4826 * float(np.median(np.abs(kept - np.median(kept))))
        weight = (np.abs(residual) <= max(3 * noise, 0.02)) * keep
    full = Image.fromarray(estimate.astype(np.float32), "F").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(full, dtype=np.float32)


def noise_level(values: np.ndarray, lag: int = 1) -> float:
    """Noise level (standard deviation) from differences between pixels `lag` apart.

    Unlike the spread of the values themselves, this ignores large flat
    areas of any level (a table around the sheet, a big blot of ink): within
    them, neighbours agree. `lag` steps past the correlation a blur brings.
    """
    lag = max(1, min(lag, values.shape[1] - 1))
    if values.shape[1] < 2:
        return 0.0
    steps = np.abs(values[:, lag:] - values[:, :-lag])
    return float(1.4826 * float(np.median(steps)) / np.sqrt(2))


def ink_signal(grey: np.ndarray, background: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """Step 3: flatten and detect polarity; returns (ink signal, dark_ink).

    Ink is the side with the stronger extreme deviations from the paper:
    the mean of the strongest 0.3 % on each side is compared. (Comparing
    their total instead would let a broad, mild residue of uneven light
    outweigh a small dark digit.)
    """
    diff = grey - background
    values = diff.ravel() if valid is None else diff[valid]
    if values.size == 0:
        return np.zeros_like(diff), True
    count = max(10, int(0.003 * values.size))
    if values.size <= count:
        dark_ink = float(-values.min()) >= float(values.max())
    else:
        ordered = np.partition(values, (count, values.size - count - 1))
        dark_ink = float(-ordered[:count].mean()) >= float(ordered[-count:].mean())
    return against_paper(grey, background, dark_ink), dark_ink


def against_paper(grey: np.ndarray, background: np.ndarray, dark_ink: bool) -> np.ndarray:
    """How far each pixel stands from the paper towards the ink's side, unclipped (ink positive)."""
    diff: np.ndarray = grey - background
    return -diff if dark_ink else diff


def with_margin(grey: np.ndarray, scale: tuple[float, float]) -> tuple[np.ndarray, tuple[float, float], Box | None]:
    """A small crop whose ink runs into its border, given a margin of its paper; where the margined
    array's pixel (0, 0) is, in the original picture's pixels (`scale`: working pixels per original
    pixel); and the crop's box in the margined array's pixels (None: no margin was added).

    Cut at the ink, a digit's strokes run into the border as a shadow does,
    and fill so much of the picture that the paper's light is hard to tell:
    with a margin it is a digit on paper, as MNIST's are.
    """
    sides = (grey[0], grey[-1], grey[:, 0], grey[:, -1])
    # Against the border's own level: a photo's corners may be darker all round (vignetting), ink is not.
    # (The picture's median was tried: a bold digit cut at its ink is over half ink, and lost its margin.)
    paper = median(np.concatenate(sides))
    inked = [float((np.abs(side - paper) > 2 * MIN_CONTRAST).mean()) for side in sides]
    # Cut at its ink, a digit meets three or four sides; a stroke across the picture meets two.
    if sum(share >= _INK_AT_BORDER for share in inked) < _SIDES_INKED:
        return grey, (0.0, 0.0), None
    margin = max(1, round(_MARGIN * max(grey.shape)))
    padded = np.pad(estimate_background(grey), margin, mode="edge")  # the paper's light goes on, with no edge
    padded[margin:-margin, margin:-margin] = grey
    height, width = grey.shape
    return padded, (-margin / scale[0], -margin / scale[1]), (margin, margin, margin + width, margin + height)


def join_grain(labels: np.ndarray, stroke: float) -> tuple[np.ndarray, np.ndarray]:
    """Chalk on a board breaks into grains: pieces closer than a stroke's width belong together.

    The pieces keep their own pixels; only their labels join, so the digit's
    image is unchanged while its fragments are grouped as one.
    """
    from scipy import ndimage

    joined, _ = ndimage.label(
        ndimage.binary_closing(labels > 0, iterations=max(1, round(stroke / 2))), structure=np.ones((3, 3), dtype=bool)
    )
    labels = np.where(labels > 0, joined, 0)
    areas = np.bincount(labels.ravel())
    areas[0] = 0
    return labels, areas
