"""Finding the writing: which pixels of a picture are ink, and how they group into digits.

Steps 2-5 of the pipeline, at analysis resolution:

  2. estimate the background (paper, its texture and uneven light) and
     subtract it; a table showing round the sheet is left out;
  3. detect polarity: dark ink on light paper, or light chalk on a dark board;
  4. threshold: Otsu's method (within safe bounds) finds the writing's size
     and stroke width, then an adaptive threshold at that scale keeps faint
     and bold strokes at their true width;
  5. drop what is not writing: specks, and dark regions that are not
     strokes (a hard shadow, a desk or shirt beyond the paper, a blot).

It looks first at a reduced copy and again, closer, where the writing is
small (`analyse`). Clean pictures (drawing apps, MNIST images, binarised
scans) skip steps 2-3. `analyse` returns the labelled ink; `pick_digit`
chooses the one digit of a single-digit picture, `find_lines` the lines of
a page, top to bottom, and `group_line` the digits of one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

from digits.read.load import grey_array, true_size, working_grey
from digits.read.normalize import crop_to_ink, stroke_width

# Ink must differ from the paper by at least this fraction of the full grey
# range; below it we are looking at paper texture, JPEG noise or shadows.
MIN_CONTRAST = 0.1
# The first look at a picture is at this many pixels on its longer side; writing
# smaller than half of `_DIGIT_PIXELS` there gets a second look, cut out and scaled
# so that its digits are that tall (at most `_FINE_MAX` pixels on the longer side).
_COARSE = 512
_DIGIT_PIXELS = 40
_FINE_MAX = 2048
# A picture is clean when this share of its pixels lie within this many grey
# levels (of 255) of the commonest one: the paper of a drawing app or a scan.
_CLEAN_SHARE = 0.6
_CLEAN_LEVELS = 2
# Coarse grid on which the background is estimated: lighting varies slowly,
# so a ~64 px version of the image is enough and makes the filters cheap.
_BG_GRID = 64
# A component whose thickest point spans this fraction of its length is a blob, not a
# stroke: a disc spans 1.0. MNIST's strokes are 0.08-0.17 of the digit's size; marker
# strokes reach 0.3, twice that where strokes cross, and a bold 8 whose loops closed
# up is two discs stacked (about 0.6).
_BLOB_THICKNESS = 0.75
# ...and so is a region that runs into the picture's border (a shadow, a desk, a
# shirt: they go on beyond it) thicker than this fraction of the picture's shorter
# side: the boldest real strokes measured (a 28x28 paint-program digit) reach 0.17.
_BLOB_SIZE = 0.22
# A single digit spans at least this share of its picture's shorter side (the
# smallest among the real pictures measured spans 0.22).
_MIN_DIGIT_SHARE = 0.04


@dataclass
class Analysis:
    """Working-resolution results shared by `prepare` and `segment_page`."""

    grey: np.ndarray  # step 1
    background: np.ndarray  # step 2: estimated paper/board brightness
    ink: np.ndarray  # steps 2-3: flattened, ink positive, 1.0 = typical ink
    mask: np.ndarray  # step 4: thresholded ink
    labels: np.ndarray  # step 5: connected components kept (0 = none)
    areas: np.ndarray  # pixel count of each label (index 0 unused)
    scale: tuple[float, float]  # working pixels per original pixel (x, y)
    origin: tuple[float, float]  # where working pixel (0, 0) is, in original pixels (x, y)
    contrast: float  # typical ink-minus-paper difference, in grey units
    dark_ink: bool

    @cached_property
    def boxes(self) -> dict[int, tuple[int, int, int, int]]:
        """Box of every component still kept, by label (found once, used by every line)."""
        count = len(self.areas) - 1
        return {
            i: b
            for i, b in zip(range(1, count + 1), component_boxes(self.labels, count), strict=False)
            if b is not None and self.areas[i] > 0
        }


def _background(grey: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Estimate the paper's brightness everywhere, ignoring the ink.

    On a coarse grid, a Gaussian-weighted average of the pixels that are not
    outliers (normalised convolution) is refined a few times: ink of either
    polarity is an outlier, so it drops out and the estimate follows only the
    slowly varying paper, uneven light and shadows included. Pixels in
    `exclude` (a table around the sheet) never count as paper.
    """
    from scipy import ndimage

    height, width = grey.shape
    factor = max(1, int(np.ceil(max(height, width) / _BG_GRID)))
    small_size = (max(1, width // factor), max(1, height // factor))
    small = np.asarray(Image.fromarray(grey, "F").resize(small_size, Image.BOX), dtype=np.float64)
    # Light varies over a good part of the shorter side, ink over much less.
    sigma = max(1.5, min(small.shape) / 6)
    keep = np.ones_like(small)
    if exclude is not None:
        coverage = Image.fromarray(exclude.astype(np.float32), "F").resize(small_size, Image.BOX)
        keep = (np.asarray(coverage) < 0.5).astype(np.float64)
    weight = keep.copy()
    estimate = small
    for _ in range(4):
        # Where ink covered a whole neighbourhood there is no paper left to
        # average: the small constant in the ratio falls back to the median
        # of the paper seen so far.
        paper = float(np.median(small[weight > 0])) if weight.any() else float(np.median(small))
        num = ndimage.gaussian_filter(small * weight, sigma, mode="nearest", truncate=3)
        den = ndimage.gaussian_filter(weight, sigma, mode="nearest", truncate=3)
        estimate = (num + 0.05 * paper) / (den + 0.05)
        residual = small - estimate
        kept = residual[weight > 0] if weight.any() else residual
        noise = 1.4826 * float(np.median(np.abs(kept - np.median(kept))))
        weight = (np.abs(residual) <= max(3 * noise, 0.02)) * keep
    full = Image.fromarray(estimate.astype(np.float32), "F").resize((width, height), Image.BILINEAR)
    return np.asarray(full, dtype=np.float32)


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the split that maximises between-class variance."""
    hist, edges = np.histogram(values, bins=bins)
    hist = hist.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def _noise(values: np.ndarray, lag: int = 1) -> float:
    """Noise level (standard deviation) from differences between pixels `lag` apart.

    Unlike the spread of the values themselves, this ignores large flat
    areas of any level (a table around the sheet, a big blot of ink): within
    them, neighbours agree. `lag` steps past the correlation a blur brings.
    """
    lag = max(1, min(lag, values.shape[1] - 1))
    if values.shape[1] < 2:
        return 0.0
    steps = np.abs(values[:, lag:] - values[:, :-lag])
    return 1.4826 * float(np.median(steps)) / np.sqrt(2)


def _threshold(signal: np.ndarray, sigma: float, stroke: float = 0.0) -> tuple[np.ndarray, np.ndarray, float]:
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
    """
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(signal, sigma)
    noise = _noise(smooth, int(np.ceil(2 * sigma)))
    candidates = smooth[smooth > max(4 * noise, MIN_CONTRAST / 2)]
    contrast = float(np.percentile(candidates, 90)) if candidates.size else 0.0
    ink = smooth / max(contrast, 1e-6)
    if contrast < MIN_CONTRAST or candidates.size < 4:
        return ink, np.zeros(signal.shape, dtype=bool), contrast
    noise_floor = 4 * noise / contrast
    if stroke <= 0:
        split = _otsu(ink[ink > max(noise_floor, 0.1)])
        return ink, ink > max(min(max(split, 0.35), 0.65), noise_floor), contrast
    window = max(3, int(round(3 * stroke)) | 1)
    local_peak = ndimage.maximum_filter(ink, size=window)
    floor = max(noise_floor, 0.25, MIN_CONTRAST / 2 / contrast)
    return ink, (ink > 0.5 * local_peak) & (ink > floor), contrast


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 5: 8-connected components (strokes touch at corners); blobs and specks dropped.

    Writing is made of strokes: thin compared with the shape they draw. A
    region as thick as it is long is not writing but something dark lying
    across the picture: a shadow, a desk or a shirt beyond the paper's edge,
    a blot. Those go first, so that they neither count as ink nor make the
    real strokes look like specks beside them.
    """
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    areas[0] = 0
    if not count:
        return labels, areas
    dropped = np.zeros(count + 1, dtype=bool)
    frames = np.zeros(count + 1, dtype=bool)
    shortest = min(mask.shape)
    for label, (rows, cols) in enumerate(ndimage.find_objects(labels, max_label=count), start=1):
        extent = max(rows.stop - rows.start, cols.stop - cols.start)
        if extent < 0.1 * shortest:
            continue  # too small to be a shadow or a desk; specks are dealt with below
        at_border = rows.start == 0 or cols.start == 0 or rows.stop == mask.shape[0] or cols.stop == mask.shape[1]
        limit = min(_BLOB_THICKNESS * extent, _BLOB_SIZE * shortest if at_border else np.inf)
        # Unpadded on purpose: a region cut by the picture's border goes on beyond
        # it (a desk, a shadow), and is measured as if the border were its middle.
        region = labels[rows, cols] == label
        # The taxicab distance is never below the Euclidean one and costs a tenth of it: a
        # stroke thin even by that measure is kept without the exact transform.
        if region.all() or 2 * float(ndimage.distance_transform_cdt(region, "taxicab").max()) >= limit:
            dropped[label] = 2 * float(ndimage.distance_transform_edt(region).max()) >= limit
        frames[label] = at_border and extent >= 0.5 * max(mask.shape)
    kept = areas[~dropped]
    if kept.any():
        # A speck is small beside the writing; a frame or scanner border running into the
        # picture's edge is not writing, and beside it a thin 1 would pass for a speck.
        reference = areas[~dropped & ~frames]
        min_area = max((reference if reference.any() else kept).max() * 0.01, (min(mask.shape) / 300) ** 2 * 4)
        dropped |= areas < min_area
    dropped[0] = False
    if dropped.any():  # the usual clean crop drops nothing: no pass over every pixel
        labels[dropped[labels]] = 0
    areas[dropped] = 0
    return labels, areas


def _join_grain(labels: np.ndarray, stroke: float) -> tuple[np.ndarray, np.ndarray]:
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


def _signal(grey: np.ndarray, background: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, bool]:
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
    return (-diff if dark_ink else diff), dark_ink


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


def _outside_sheet(grey: np.ndarray) -> np.ndarray | None:
    """Where the picture is not the sheet (or board) the digit is written on.

    A photo of a sheet lying on a table shows two surfaces: the table, and
    the sheet that holds the ink. The sheet is found on a coarse copy as the
    largest region of one side of Otsu's brightness split that, once its
    holes are filled, is big, nearly fills its smallest enclosing rectangle
    (a sheet is a quadrilateral; a digit is not), has a few holes (the ink)
    but is mostly solid, leaves part of the border to the table, ends in a
    sharp step of brightness and has no writing outside it. Returns the
    mask of everything else, or None when the sheet fills the picture (the
    usual case).
    """
    from scipy import ndimage

    height, width = grey.shape
    factor = max(1, int(np.ceil(max(height, width) / 256)))
    size = (max(1, width // factor), max(1, height // factor))
    small = ndimage.gaussian_filter(np.asarray(Image.fromarray(grey, "F").resize(size, Image.BOX)), 1.0)
    if small.size < 64 or np.ptp(small) < MIN_CONTRAST:
        return None
    bright = small > _otsu(small.ravel())
    for side in (bright, ~bright):
        labels, count = ndimage.label(side)
        if count == 0:
            continue
        region = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
        filled = ndimage.binary_fill_holes(region)
        area, holes = int(filled.sum()), int(filled.sum() - region.sum())
        if not (0.1 * small.size <= area <= 0.9 * small.size and 0.001 * area <= holes <= 0.2 * area):
            continue
        if area < 0.85 * _rectangle_area(filled):
            continue  # not a quadrilateral: a bold 0 or 6 is round, a sheet is not
        border = np.concatenate([filled[0], filled[-1], filled[:, 0], filled[:, -1]])
        if (~border).mean() < 0.2:
            continue
        # A sheet's edge is a sharp step; uneven light also splits a page
        # into a brighter and a darker part, but with no step between them.
        # Compare a band a few pixels inside with one a few pixels outside:
        # right at the boundary, both sides differ by construction (noise).
        inner = ndimage.binary_erosion(filled, iterations=2) & ~ndimage.binary_erosion(filled, iterations=5)
        outer = ndimage.binary_dilation(filled, iterations=5) & ~ndimage.binary_dilation(filled, iterations=2)
        if not (inner.any() and outer.any()) or abs(np.median(small[inner]) - np.median(small[outer])) < 0.15:
            continue
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
        if not core.any() or (detail[core] > 0.1).mean() < 0.002:
            outside = np.asarray(Image.fromarray(np.uint8(~filled) * 255).resize((width, height), Image.NEAREST)) > 0
            return ndimage.binary_dilation(outside, iterations=max(2, round(0.01 * max(height, width))))
    return None


def analyse(image: Image.Image) -> Analysis:
    """Steps 2-5 at the resolution the writing needs.

    A first look at a reduced copy (`_COARSE` pixels on the longer side)
    finds the writing and how tall it is. Most pictures hold digits large
    enough to read there. Small writing on a big page (a phone number on a
    sheet) is looked at again, cut out of the picture at a scale where its
    digits are `_DIGIT_PIXELS` tall.
    """
    grey, scale = working_grey(image, _COARSE)
    paper = _clean_paper(grey)
    if paper is not None:
        return _analyse_clean(grey, scale, paper)
    coarse = _analyse_grey(grey, scale, origin=(0.0, 0.0))
    boxes = coarse.boxes
    if not boxes:
        return coarse
    height = _typical_height(boxes, coarse.areas)
    if height >= _DIGIT_PIXELS / 2:
        return coarse
    zoom = _DIGIT_PIXELS / height  # how much finer the second look is
    x0 = min(b[0] for b in boxes.values()) - height
    y0 = min(b[1] for b in boxes.values()) - height
    x1 = max(b[2] for b in boxes.values()) + height
    y1 = max(b[3] for b in boxes.values()) + height
    sx, sy = coarse.scale
    true_width, true_height = true_size(image)
    region = (max(0.0, x0 / sx), max(0.0, y0 / sy), min(true_width, x1 / sx), min(true_height, y1 / sy))
    size = (round((region[2] - region[0]) * sx * zoom), round((region[3] - region[1]) * sy * zoom))
    if max(size) > _FINE_MAX:
        size = tuple(max(1, round(v * _FINE_MAX / max(size))) for v in size)
    # The decoded picture may be smaller than the true one (JPEG draft): cut in its pixels.
    fx, fy = image.size[0] / true_width, image.size[1] / true_height
    cut = image.crop((round(region[0] * fx), round(region[1] * fy), round(region[2] * fx), round(region[3] * fy)))
    grey = np.clip(grey_array(cut.resize(size, Image.BICUBIC)), 0, 1).astype(np.float32)
    scale = (size[0] / (region[2] - region[0]), size[1] / (region[3] - region[1]))
    fine = _analyse_grey(grey, scale, origin=(region[0], region[1]))
    return fine if fine.areas.any() else coarse


def _clean_paper(grey: np.ndarray) -> float | None:
    """The paper's grey level when a picture is clean, else None.

    A drawing made on a screen (a canvas, a paint program, a tablet app), an
    MNIST image or a binarised scan has paper of one exact level: most of its
    pixels share it. Such a picture has no light, shadow or texture to undo,
    so it skips steps 2-3 and the adaptive threshold.
    """
    levels = np.bincount(np.rint(grey.ravel() * 255).astype(np.uint8), minlength=256)
    mode = int(levels.argmax())
    share = levels[max(0, mode - _CLEAN_LEVELS) : mode + _CLEAN_LEVELS + 1].sum() / grey.size
    return mode / 255 if share >= _CLEAN_SHARE else None


def _analyse_clean(grey: np.ndarray, scale: tuple[float, float], paper: float) -> Analysis:
    """Steps 4-5 on a clean picture: ink is whatever differs from the paper by half the ink's contrast."""
    dark_ink = paper >= 0.5
    signal = (paper - grey) if dark_ink else (grey - paper)
    inked = signal[signal > MIN_CONTRAST / 2]
    contrast = float(np.percentile(inked, 90)) if inked.size else 0.0
    mask = signal > 0.5 * contrast if contrast >= MIN_CONTRAST else np.zeros(grey.shape, dtype=bool)
    labels, areas = _components(mask)
    return Analysis(
        grey=grey,
        background=np.full_like(grey, paper),
        ink=np.clip(signal / max(contrast, 1e-6), 0, 1).astype(np.float32),
        mask=mask,
        labels=labels,
        areas=areas,
        scale=scale,
        origin=(0.0, 0.0),
        contrast=contrast,
        dark_ink=dark_ink,
    )


def _analyse_grey(grey: np.ndarray, scale: tuple[float, float], origin: tuple[float, float]) -> Analysis:
    # A photo of a sheet on a table: the table is neither paper nor ink. If
    # nothing is written on what looked like a sheet, it was not one.
    sheet = _outside_sheet(grey)
    for outside in [sheet, None] if sheet is not None else [None]:
        background = _background(grey, exclude=outside)
        signal, dark_ink = _signal(grey, background, None if outside is None else ~outside)
        if outside is not None:
            signal[outside] = 0
        # A first pass with light smoothing and a global threshold.
        ink, mask, contrast = _threshold(signal, 0.7)
        labels, areas = _components(mask)
        if areas.any():
            break

    # The first pass tells how tall the writing is and how wide its strokes
    # are. The second smooths in proportion (joining chalk grain, pencil
    # texture and JPEG blocks without eating thin strokes) and thresholds
    # adaptively at that stroke scale.
    rows = np.flatnonzero((labels > 0).any(axis=1))
    if rows.size:
        weights = (labels > 0).sum(axis=1)[rows]
        cumulative = np.cumsum(weights) / weights.sum()
        low, high = rows[np.searchsorted(cumulative, 0.02)], rows[np.searchsorted(cumulative, 0.98)]
        stroke = stroke_width(crop_to_ink(labels > 0))
        sigma = float(np.clip(min(0.025 * (high - low + 1), 0.3 * stroke), 0.7, 12))
        ink, mask, contrast = _threshold(signal, sigma, stroke=max(stroke, 2.0))
        labels, areas = _components(mask)
        if not dark_ink:
            labels, areas = _join_grain(labels, stroke)
    return Analysis(
        grey=grey,
        background=background,
        ink=np.clip(ink, 0, 1).astype(np.float32),
        mask=mask,
        labels=labels,
        areas=areas,
        scale=scale,
        origin=origin,
        contrast=contrast,
        dark_ink=dark_ink,
    )


def component_boxes(labels: np.ndarray, count: int) -> list[tuple[int, int, int, int] | None]:
    """(x0, y0, x1, y1) per label 1..count, exclusive ends; None for unused labels."""
    from scipy import ndimage

    boxes = []
    for found in ndimage.find_objects(labels, max_label=count):
        if found is None:
            boxes.append(None)
        else:
            rows, cols = found
            boxes.append((cols.start, rows.start, cols.stop, rows.stop))
    return boxes


def union(a, b):
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def gap(a, b) -> float:
    """Distance between two boxes (0 when they touch or overlap)."""
    dx = max(0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[3], b[3]))
    return float(np.hypot(dx, dy))


def pick_digit(analysis: Analysis) -> np.ndarray:
    """Mask of the one digit: the largest piece plus substantial pieces near it.

    Empty when what is left is too small to be a digit someone meant to be
    read (a few specks of dust, grain in a texture): under `_MIN_DIGIT_SHARE`
    of the picture's shorter side.
    """
    labels, areas, boxes = analysis.labels, analysis.areas, analysis.boxes
    live = list(boxes)
    if not live:
        return np.zeros(labels.shape, dtype=bool)
    height, width = labels.shape

    def touches_border(i: int) -> bool:
        x0, y0, x1, y1 = boxes[i]
        return x0 == 0 or y0 == 0 or x1 == width or y1 == height

    # Paper edges, table tops and frame lines touch the border; a digit
    # usually does not. Prefer inner pieces when there are substantial ones.
    inner = [i for i in live if not touches_border(i)]
    if inner and max(areas[i] for i in inner) >= 0.1 * max(areas[i] for i in live):
        live = inner
    live.sort(key=lambda i: -areas[i])
    chosen = [live[0]]
    box = boxes[live[0]]
    changed = True
    while changed:
        changed = False
        for i in live:
            if i in chosen or areas[i] < 0.03 * areas[live[0]]:
                continue
            size = max(box[2] - box[0], box[3] - box[1])
            if gap(box, boxes[i]) <= 0.25 * size:
                chosen.append(i)
                box = union(box, boxes[i])
                changed = True
    if max(box[2] - box[0], box[3] - box[1]) < _MIN_DIGIT_SHARE * min(height, width):
        return np.zeros(labels.shape, dtype=bool)
    return np.isin(labels, chosen)


def _typical_height(boxes: dict[int, tuple[int, int, int, int]], areas: np.ndarray) -> float:
    """How tall the writing is: the median height of its components, weighted by ink.

    Weighting by ink lets whole digits outvote the fragments beside them; on
    a line that climbs or curves, each digit is still only one digit tall.
    """
    heights = np.array([b[3] - b[1] for b in boxes.values()], dtype=float)
    weights = np.array([areas[i] for i in boxes], dtype=float)
    order = np.argsort(heights)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    return float(heights[order][np.searchsorted(cumulative, 0.5)])


# Lines of writing are chained from components whose vertical extents
# overlap by this fraction of the shorter one, no further apart than this
# many digit heights. Chaining neighbour to neighbour follows a slope or an arc.
_LINE_OVERLAP = 0.4
_LINE_GAP = 4.0
# A line whose tallest piece is under this fraction of the page's digit
# height is a scrap (a speck, a stray mark between lines), not writing.
_LINE_MIN_HEIGHT = 0.4
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
    page_height = _typical_height(boxes, analysis.areas)
    ids = sorted(boxes, key=lambda i: boxes[i][0])
    parent = {i: i for i in ids}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for n, i in enumerate(ids):
        a = boxes[i]
        for j in ids[n + 1 :]:
            b = boxes[j]
            if b[0] - a[2] > _LINE_GAP * page_height:
                break  # sorted by left edge: every later piece is further still
            overlap = min(a[3], b[3]) - max(a[1], b[1])
            if overlap >= _LINE_OVERLAP * min(a[3] - a[1], b[3] - b[1]):
                parent[root(j)] = root(i)
    lines: dict[int, list[int]] = {}
    for i in ids:
        lines.setdefault(root(i), []).append(i)
    kept = [
        members
        for members in lines.values()
        if max(boxes[i][3] - boxes[i][1] for i in members) >= _LINE_MIN_HEIGHT * page_height
    ]
    return sorted(kept, key=lambda members: np.median([(boxes[i][1] + boxes[i][3]) / 2 for i in members]))


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
    side by side stay two digits, even under a 7's overhang.
    """
    areas = analysis.areas
    boxes = {i: analysis.boxes[i] for i in members}
    if not boxes:
        return []
    line = _typical_height(boxes, areas)

    def height(box):
        return box[3] - box[1]

    def width(box):
        return box[2] - box[0]

    def x_overlap(a, b):
        return min(a[2], b[2]) - max(a[0], b[0])

    # Tall pieces: digits, merged when they overlap by half the narrower one.
    groups: list[tuple[list[int], tuple[int, int, int, int]]] = []
    for i in sorted((i for i, b in boxes.items() if height(b) >= 0.6 * line), key=lambda i: boxes[i][0]):
        box = boxes[i]
        for members, other in groups:
            if x_overlap(box, other) >= 0.5 * min(width(box), width(other)):
                members.append(i)
                groups[groups.index((members, other))] = (members, union(box, other))
                break
        else:
            groups.append(([i], box))

    # Two pieces side by side that are each short of the line's height but
    # span it together are one digit drawn in two strokes (an open 4).
    merged: list[tuple[list[int], tuple[int, int, int, int]]] = []
    for members, box in groups:
        if merged:
            last_members, last = merged[-1]
            joined = union(last, box)
            if (
                box[0] - last[2] <= 0.15 * line
                and max(height(last), height(box)) < 0.85 * line
                and height(joined) >= 0.9 * line
                and width(joined) <= line
            ):
                merged[-1] = (last_members + members, joined)
                continue
        merged.append((members, box))
    groups = merged

    # Fragments, biggest first, join the nearest digit when close.
    leftovers: list[tuple[list[int], tuple[int, int, int, int]]] = []
    for i in sorted((i for i, b in boxes.items() if height(b) < 0.6 * line), key=lambda i: -areas[i]):
        box = boxes[i]
        best = min(range(len(groups)), key=lambda g: gap(box, groups[g][1]), default=None)
        if best is not None:
            members, other = groups[best]
            joined = union(box, other)
            if gap(box, other) <= 0.3 * line and width(joined) <= 1.2 * line:
                groups[best] = (members + [i], joined)
                continue
        # Not near a digit: gather with other stray fragments above or below it.
        for k, (members, other) in enumerate(leftovers):
            if x_overlap(box, other) >= -0.05 * line and width(union(box, other)) <= 1.2 * line:
                leftovers[k] = (members + [i], union(box, other))
                break
        else:
            leftovers.append(([i], box))
    groups += [(members, box) for members, box in leftovers if height(box) >= 0.45 * line]
    return [members for members, box in sorted(groups, key=lambda g: g[1][0])]
