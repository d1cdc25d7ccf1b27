"""The paper under the ink: its light, its grain, which side of it the ink is, how far from it is ink, and a
margin of it.

Steps 2-4 of the pipeline for photos (`digits.read.ink`):
`estimate_background` estimates the paper's brightness everywhere (uneven
light and soft shadows included), `follow_hard_shadow` brings that estimate
to the paper on both sides of a hard shadow's edge, `noise_level` measures
the paper's grain, `ink_signal` flattens a picture against the estimate and
tells dark ink from light chalk, `threshold_ink` tells ink from paper in
what is left, and `with_margin` gives a small crop cut at its ink a margin
of its own paper. All work on grey values in [0, 1].
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from digits.read.levels import MIN_CONTRAST, ink_level, label_medians, median, otsu, reduced
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
# A hard shadow (a hand's, a phone's) is the one change of light that is not slow: its edge is a few pixels wide,
# and the smooth estimate, which cannot follow it, lands between the lit paper and the shaded. Where the paper
# (`follow_hard_shadow`'s closing) stands off that estimate by this much (grey units), either way, over a region
# wider than two of its windows that reaches the picture's border (a shadow is cast from outside the frame; a
# blot of ink within it is not), the estimate follows the paper. Below `MIN_CONTRAST`: the least ink.
_SHADOW_STEP = 0.08
# That window is the picture's shorter side over this at most (and 5 px at least): wider than writing's strokes
# (a digit filling its picture has strokes of about a tenth of its height), narrower than a shadow.
_SHADOW_WINDOW = 15
# A picture whose shorter side is under this (in working pixels) holds no shadow's region beside its writing: it
# is a crop of the writing, or a strip of print, where every dark region reaches the border (8 of 60 generated
# strips of printed words, with no shadow in them, were "followed"; a picture of such a strip is 20-80 px tall
# at analysis resolution).
_SHADOW_LEAST = 128
# Shaded paper is no darker than this share of the lit paper (the smooth estimate's 95th percentile): a shadow
# deeper still leaves nothing to read in it, and a black marker's stroke (ink is a fifth of the paper's light or
# less) wider than the window, which the closing keeps, is no shadow however it touches the border. A red or
# green felt-tip's is lighter (red: 0.41), and can be taken for one where it reaches the border.
_SHADOW_DARKEST = 0.35
# Lit paper is no lighter than this many times the paper most of the picture shows (the closing's 75th
# percentile). The closing keeps light strokes (chalk on a board, white ink) and joins them across gaps narrower
# than its window: without this, a bold chalk digit near the border was the "paper" it was written on.
_SHADOW_LIGHTEST = 1.1
# One mark standing out of faint shade (`_one_mark_level`): its largest piece holds this share of the pixels
# reaching the least ink, and this many of them (a 30 px digit in a 1600 px photo, reduced: 22 to 40).
_ONE_MARK = 0.8
_ONE_MARK_LEAST = 20


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


def follow_hard_shadow(
    grey: np.ndarray, background: np.ndarray, stroke: float, outside: np.ndarray | None = None
) -> np.ndarray:
    """`background` (`estimate_background`'s) brought to the paper on both sides of a hard shadow's edge, or
    `background` itself where the picture has none (`_SHADOW_STEP`). `stroke` is the writing's stroke width found
    against `background` (0: none found), `outside` what is not paper, as for `estimate_background`.

    The paper is a grey closing of the picture (the largest value within a window, then the smallest): it wipes
    out dark strokes narrower than the window and keeps a shadow's edge where it is, however it slants. The
    window is three strokes wide, within the bounds of `_SHADOW_WINDOW` (as wide as the upper bound where no
    writing was found): a finger's shadow, wider than writing, is not wiped out; a shadow's own pieces, taken for
    writing, cannot widen it past a shadow's size. A stroke wider than the window, which the closing keeps, is no
    region two windows wide, or is darker than shade (`_SHADOW_DARKEST`): it stays ink; light strokes the
    closing keeps are lighter than the paper (`_SHADOW_LIGHTEST`). Over the region the estimate is the closing,
    faded into `background` over a window at its edge.
    """
    from scipy import ndimage

    height, width = grey.shape
    if min(height, width) < _SHADOW_LEAST:
        return background
    widest = round(min(height, width) / _SHADOW_WINDOW) | 1
    window = min(widest, max(5, round(3 * stroke) | 1)) if stroke > 0 else widest
    # A quick look first, on a 64 px copy with the picture itself for the paper: on the dark side it finds what
    # the closing would (the picture is never lighter than its closing), on the light side less. Most pictures
    # show no such region, and the full-size filters below cost more than reading a small photo.
    small, small_size = reduced(grey, _BG_GRID)
    coarse = np.asarray(Image.fromarray(background, "F").resize(small_size, Image.Resampling.BOX))
    off_paper = None
    if outside is not None:
        shrunk = Image.fromarray(outside.astype(np.float32), "F").resize(small_size, Image.Resampling.BOX)
        off_paper = np.asarray(shrunk) > 0.5
    factor = height / small.shape[0]
    coarse_width = max(1, int((2 * window + 1) / factor) - 1)
    if not _shadow_region(small - coarse, (coarse_width, coarse_width), off_paper).any():
        return background
    closed = ndimage.grey_closing(grey, size=(window, window))
    paper = background if outside is None else background[~outside]
    darkest = _SHADOW_DARKEST * float(np.percentile(paper, 95))
    lightest = _SHADOW_LIGHTEST * float(np.percentile(closed if outside is None else closed[~outside], 75))
    lighter = 2 * max(window, round(3 * stroke) | 1) + 1
    region = _shadow_region(closed - background, (lighter, 2 * window + 1), outside, closed, (darkest, lightest))
    if not region.any():
        return background
    fade = ndimage.uniform_filter(region.astype(np.float32), size=window)
    followed: np.ndarray = (background + fade * (closed - background)).astype(np.float32)
    return followed


def _shadow_region(
    offset: np.ndarray,
    widths: tuple[int, int],
    outside: np.ndarray | None,
    paper: np.ndarray | None = None,
    levels: tuple[float, float] = (0.0, np.inf),
) -> np.ndarray:
    """Where `offset` (the paper minus the smooth estimate) passes `_SHADOW_STEP` either way, in regions of one
    sign (each side labelled apart: a digit below the estimate that touches a region above it does not borrow
    its reach) that hold a square `width` wide, within the paper (not `outside`), and reach its edge: the
    picture's border or `outside`. With `paper` (`follow_hard_shadow`'s closing), only where it lies within
    `levels` (darkest, lightest), and only regions of flat paper that end in a hard edge in it: along their
    boundary within the picture, `paper` changes by `_SHADOW_STEP` or more within a third of `width`, at the
    median, and within them by less than half that. Light that falls off slowly (a vignette) has no such edge;
    the smooth estimate follows it well enough, and a region of it would only move the residue to the region's
    rim. A scene's texture (wood grain, a photo of things) varies within as much as at its rim: paper does not."""
    from scipy import ndimage

    region = np.zeros(offset.shape, dtype=bool)
    for side, width in zip((offset > _SHADOW_STEP, offset < -_SHADOW_STEP), widths, strict=True):
        if outside is not None:
            side &= ~outside
        if paper is not None:
            side &= (paper >= levels[0]) & (paper <= levels[1])
        side &= ndimage.maximum_filter(ndimage.minimum_filter(side, size=width), size=width)
        if not side.any():
            continue
        labels, _ = ndimage.label(side)
        edge = [labels[0], labels[-1], labels[:, 0], labels[:, -1]]
        if outside is not None and outside.any():
            edge.append(labels[ndimage.binary_dilation(outside)])
        kept = np.unique(np.concatenate(edge))
        kept = kept[kept > 0]
        if paper is not None and kept.size:
            near = max(3, width // 3)
            change = ndimage.maximum_filter(paper, size=near) - ndimage.minimum_filter(paper, size=near)
            within = ndimage.binary_erosion(side, border_value=1)
            rim = side & ~within
            if outside is not None:
                rim &= ~ndimage.binary_dilation(outside)
            edges = label_medians(change, np.where(rim, labels, 0), kept)
            flat = label_medians(change, np.where(within, labels, 0), kept)
            kept = kept[
                (np.nan_to_num(edges, nan=0.0) >= _SHADOW_STEP) & (np.nan_to_num(flat, nan=1.0) < _SHADOW_STEP / 2)
            ]
        region |= np.isin(labels, kept)
    return region


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


def threshold_ink(signal: np.ndarray, sigma: float, stroke: float = 0.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Smooth the ink signal, then threshold it (step 4).

    Returns (ink, mask, contrast): ink scaled so 1.0 is the typical ink level,
    the thresholded mask, and that level in grey units (a high percentile of
    the clearly inked pixels).

    Without `stroke` the threshold is global: Otsu's split of the candidate
    pixels, kept between 35 % and 65 % of the ink level so that neither a
    tiny digit on a big page (Otsu falls into the noise) nor a bold one (Otsu
    drifts up) fools it. With the stroke width known it is adaptive: a pixel
    is ink when it reaches half the strongest ink within a few stroke widths,
    so a faint hairline next to a heavy blob keeps its true width, while a
    floor at a quarter of the global level (and above the noise) keeps paper
    texture out.

    Ink must reach `MIN_CONTRAST` in the first look (no `stroke`). The second
    look comes only after a first one found ink, and is not held to it again:
    smoothed at the stroke's scale, a faint pencil's hairline fell back under
    it (0.106 to 0.095) and the digit the first look had found was lost. The
    second look still thresholds the whole picture: where its level falls under
    the bar, paper texture at that level is kept too (two generated textures of
    3,800 then read as a 1).
    """
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(signal, sigma)
    noise = noise_level(smooth, int(np.ceil(2 * sigma)))
    candidates = smooth[smooth > max(4 * noise, MIN_CONTRAST / 2)]
    contrast = ink_level(candidates) if candidates.size else 0.0
    if contrast < MIN_CONTRAST:
        contrast = max(contrast, _one_mark_level(smooth))
    ink = smooth / max(contrast, 1e-6)
    if (contrast < MIN_CONTRAST and stroke <= 0) or candidates.size < 4:
        return ink, np.zeros(signal.shape, dtype=bool), contrast
    noise_floor = 4 * noise / contrast
    if stroke <= 0:
        split = otsu(ink[ink > max(noise_floor, 0.1)])
        return ink, ink > max(min(max(split, 0.35), 0.65), noise_floor), contrast
    window = max(3, int(round(3 * stroke)) | 1)
    local_peak = ndimage.maximum_filter(ink, size=window)
    floor = max(noise_floor, 0.25, MIN_CONTRAST / 2 / contrast)
    return ink, (ink > 0.5 * local_peak) & (ink > floor), contrast


def _one_mark_level(smooth: np.ndarray) -> float:
    """The ink level of the one mark that reaches `MIN_CONTRAST` where faint shade swamps it, else 0.

    A digit written small on a large, unevenly lit photo is a few hundred of a million pixels: the shade
    the smooth background leaves behind (faint, but far more of it) sets the global level under the least
    ink, and nothing at all was kept. Where the pixels that do reach the least ink make one mark (its
    largest piece `_ONE_MARK` of them, and `_ONE_MARK_LEAST` pixels or more), their level is the ink's.
    Scattered ones are specks or texture: counted alone, they were read as 1s and 7s (2 of 100 generated
    pictures of specks, 1 of 100 textures). Chosen on generated digits and junk (CVL's unseen writers 30 px
    tall on 1600×1200 paper: 7 to 11 of 12 read); no real picture's answer changed.
    """
    from scipy import ndimage

    labels, count = ndimage.label(smooth >= MIN_CONTRAST, structure=np.ones((3, 3), dtype=bool))
    if not count:
        return 0.0
    pieces = np.bincount(labels.ravel())[1:]
    if pieces.max() < max(_ONE_MARK_LEAST, _ONE_MARK * pieces.sum()):
        return 0.0
    return ink_level(smooth[labels > 0])


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
