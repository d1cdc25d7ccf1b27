"""Turn any image of a handwritten digit into MNIST's own format.

A network trained on MNIST has only ever seen white digits on a black 28×28
canvas, scaled to fit a 20×20 box and centred on their centre of mass. A photo
of ink on paper, resized the naive way, looks nothing like that, and the model
answers almost at random. This module rebuilds MNIST's format from a real
image, in the order MNIST itself was made:

  1. convert to grey (alpha over white, 16-bit scaled, palette expanded);
  2. estimate the background (paper, its texture and uneven light) and
     subtract it; a table showing round the sheet is left out;
  3. detect polarity: dark ink on light paper, or light chalk on a dark board;
  4. threshold: Otsu's method (within safe bounds) finds the writing's size
     and stroke width, then an adaptive threshold at that scale keeps faint
     and bold strokes at their true width;
  5. drop specks and noise (connected components too small or too far);
  6. crop the digit's bounding box (hairline or marker strokes are brought
     into the range of pen widths MNIST has);
  7. scale the longer side to 20 px keeping the aspect ratio, anti-aliased;
  8. paste into 28×28 so that the centre of mass lands on the centre.

`prepare` does this for one digit, `segment` for a line of digits (the pieces
of one broken digit are merged), `load_image` opens files defensively and
`naive` is the baseline the benchmark compares against.

Only NumPy and Pillow are imported at module level so `digits predict` starts
fast; SciPy and Matplotlib are imported inside the functions that need them.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digits.errors import ImageError

__all__ = [
    "MAX_PIXELS",
    "ImageError",
    "Prepared",
    "Segment",
    "load_image",
    "naive",
    "prepare",
    "save_explanation",
    "segment",
]

# Our own limit on decoded pixels. Pillow's guard (Image.MAX_IMAGE_PIXELS,
# about 89 megapixels, a hard error at twice that) protects against real
# bombs; 40 megapixels is larger than any phone photo yet keeps the float
# copies we make below a few hundred megabytes.
MAX_PIXELS = 40_000_000
# Refuse to even read files larger than this: no sane digit photo is bigger.
MAX_FILE_BYTES = 256 * 1024 * 1024

# Ink must differ from the paper by at least this fraction of the full grey
# range; below it we are looking at paper texture, JPEG noise or shadows.
MIN_CONTRAST = 0.1

_MNIST_SIZE = 28
_MNIST_BOX = 20
# MNIST's centre of mass, in array index coordinates (row, column); measured
# on the test set, it is (13.99, 14.00) with a spread of 0.3 px.
_MNIST_COM = (14.0, 14.0)
# Analysis resolution. Huge photos are reduced first (speed, memory); tiny
# images are enlarged so that thresholding and morphology work on smooth
# edges and the final downscale produces MNIST-like anti-aliasing.
_WORK_MAX = 1024
_WORK_MIN = 256
# Coarse grid on which the background is estimated: lighting varies slowly,
# so a ~64 px version of the image is enough and makes the filters cheap.
_BG_GRID = 64


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def load_image(source: str | os.PathLike | bytes) -> Image.Image:
    """Open an image file (or its bytes) safely and return its first frame.

    The file is read once, checked with Pillow's `verify()`, decoded, limited
    to `MAX_PIXELS`, and turned upright according to its EXIF orientation.
    Animated GIF/WebP/TIFF give their first frame. Every failure becomes an
    `ImageError` whose message is one sentence naming the file and the fault.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = "the image data"
        data = bytes(source)
    else:
        name = os.fspath(source)
        data = _read_file(Path(name), name)
    if not data:
        raise ImageError(f"{name}: the file is empty (0 bytes), not an image.")
    return _decode(data, name)


def _read_file(path: Path, name: str) -> bytes:
    try:
        if not path.exists():
            raise ImageError(f"{name}: no such file.")
        if not path.is_file():
            raise ImageError(f"{name}: not a regular file.")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{name}: the file is {size / 2**20:.0f} MiB, too large for a digit image.")
        return path.read_bytes()
    except OSError as err:
        raise ImageError(f"{name}: cannot be read ({err.strerror or err}).") from err


def _check_pixels(size: tuple[int, int], name: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{name}: the image has no pixels ({width}×{height}).")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{name}: {width}×{height} pixels is over the limit of {MAX_PIXELS // 1_000_000} megapixels "
            "(possible decompression bomb)."
        )


def _decode(data: bytes, name: str) -> Image.Image:
    try:
        # Pillow warns between MAX_IMAGE_PIXELS and twice that, and raises
        # above. Turning the warning into an error means a bomb is refused
        # from its header, before a single pixel is decoded.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                _check_pixels(probe.size, name)
                probe.verify()  # checksums and structure, without decoding
            # verify() leaves the image unusable: open again to decode.
            image = Image.open(io.BytesIO(data))
            _check_pixels(image.size, name)
            image.seek(0)  # first frame of an animation or multi-page TIFF
            image.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (expected PNG, JPEG, BMP, GIF, WebP or TIFF).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        limit = Image.MAX_IMAGE_PIXELS or 0
        raise ImageError(
            f"{name}: refused as a possible decompression bomb "
            f"(over Pillow's limit of {limit // 1_000_000} megapixels)."
        ) from None
    except MemoryError:
        raise ImageError(f"{name}: not enough memory to decode this image.") from None
    except Exception as err:  # Pillow's decoders raise many types on damaged data
        fault = "truncated" if "truncated" in str(err).lower() else "damaged"
        raise ImageError(f"{name}: the image is {fault} and cannot be decoded ({err}).") from None
    try:
        # A copy detaches the frame from the file; EXIF turns phone photos upright.
        upright = ImageOps.exif_transpose(image)
    except Exception:
        # Broken EXIF must not cost us an otherwise good image.
        upright = image.copy()
    image.close()
    return upright


# --------------------------------------------------------------------------
# Step 1: grey
# --------------------------------------------------------------------------


def _convert(image: Image.Image, mode: str) -> Image.Image:
    """`image.convert(mode)`, through an intermediate mode where Pillow has no direct path."""
    for path in ([mode], ["RGBA", mode], ["RGB", mode], ["LA", mode]):
        try:
            converted = image
            for step in path:
                converted = converted.convert(step)
            return converted
        except ValueError:
            continue
    raise ImageError(f"the image mode {image.mode!r} cannot be converted to grey.")


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _grey(image: Image.Image) -> np.ndarray:
    """Any mode to a float32 grey array in [0, 1] (0 = black), native size.

    Transparency is composited over white: a transparent canvas is paper. If
    the colour channels carry nothing (white ink on a transparent canvas,
    or a shape drawn only in the alpha channel), the alpha itself is the ink.
    """
    if _has_alpha(image):
        rgba = _convert(image, "RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255
        grey = np.asarray(rgba.convert("RGB").convert("L"), dtype=np.float32) / 255
        if alpha.min() >= 1:
            return grey
        composite = grey * alpha + (1 - alpha)
        if composite.std() < 0.02 and alpha.std() > 0.05:
            return 1 - alpha
        return composite
    if image.mode.startswith("I") or image.mode == "F":
        # 16-bit and 32-bit grey: Pillow's own conversion to "L" clips at 255,
        # so scale by the range the values can have instead.
        wide = image.mode.startswith("I;16")
        values = np.asarray(image if image.mode == "F" else image.convert("I"), dtype=np.float32)
        high = float(values.max()) if values.size else 0.0
        low = float(values.min()) if values.size else 0.0
        if wide or 255 < high <= 65535 and low >= 0:
            full = 65535.0
        elif 0 <= low and high <= 1 and image.mode == "F":
            full = 1.0
        elif 0 <= low and high <= 255:
            full = 255.0
        else:  # arbitrary range: stretch it
            values = values - low
            full = max(high - low, 1e-12)
        return np.clip(values / full, 0, 1).astype(np.float32)
    return np.asarray(_convert(image, "L"), dtype=np.float32) / 255


def _working_grey(image: Image.Image) -> tuple[np.ndarray, tuple[float, float]]:
    """Grey image at analysis resolution, and working pixels per original pixel."""
    width, height = image.size
    longest = max(width, height)
    if longest > _WORK_MAX:
        # Reduce before going to float where we can: cheaper, and the box
        # filter averages areas, so thin strokes fade rather than vanish.
        scale = _WORK_MAX / longest
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
        if _has_alpha(image):
            grey = _grey(_convert(image, "RGBA").resize(target, Image.BOX))
        elif image.mode.startswith("I") or image.mode == "F":
            grey = _grey(image)  # 16/32-bit: scale values first, then reduce
            grey = np.asarray(Image.fromarray(grey, "F").resize(target, Image.BOX), dtype=np.float32)
        else:
            grey = np.asarray(_convert(image, "L").resize(target, Image.BOX), dtype=np.float32) / 255
        return np.clip(grey, 0, 1).astype(np.float32), (target[0] / width, target[1] / height)
    grey = _grey(image)
    if longest < _WORK_MIN:
        factor = _WORK_MIN / longest
        target = (max(1, round(width * factor)), max(1, round(height * factor)))
        grey = np.asarray(Image.fromarray(grey, "F").resize(target, Image.BICUBIC), dtype=np.float32)
        grey = np.clip(grey, 0, 1)
        return grey, (target[0] / width, target[1] / height)
    return grey, (1.0, 1.0)


# --------------------------------------------------------------------------
# Steps 2-5: background, polarity, threshold, clean
# --------------------------------------------------------------------------


@dataclass
class _Analysis:
    """Working-resolution results shared by `prepare` and `segment`."""

    grey: np.ndarray  # step 1
    background: np.ndarray  # step 2: estimated paper/board brightness
    ink: np.ndarray  # steps 2-3: flattened, ink positive, 1.0 = typical ink
    mask: np.ndarray  # step 4: thresholded ink
    labels: np.ndarray  # step 5: connected components kept (0 = none)
    areas: np.ndarray  # pixel count of each label (index 0 unused)
    scale: tuple[float, float]  # working pixels per original pixel (x, y)
    contrast: float  # typical ink-minus-paper difference, in grey units
    dark_ink: bool


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
    """Step 5: 8-connected components (strokes touch at corners), specks dropped."""
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    areas[0] = 0
    if count:
        min_area = max(areas.max() * 0.01, (min(mask.shape) / 300) ** 2 * 4)
        specks = areas < min_area
        specks[0] = False
        labels[specks[labels]] = 0
        areas[specks] = 0
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
    for start, end in zip(corners, np.roll(corners, -1, axis=0)):
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
        # is paper too, in the shadow of a hand or a phone.
        core = ndimage.binary_erosion(~filled, iterations=3)
        detail = np.abs(small - ndimage.median_filter(small, size=7))
        if not core.any() or (detail[core] > 0.1).mean() < 0.002:
            outside = np.asarray(Image.fromarray(np.uint8(~filled) * 255).resize((width, height), Image.NEAREST)) > 0
            return ndimage.binary_dilation(outside, iterations=max(2, round(0.01 * max(height, width))))
    return None


def _analyse(image: Image.Image) -> _Analysis:
    grey, scale = _working_grey(image)
    # A photo of a sheet on a table: the table is neither paper nor ink. If
    # nothing is written on what looked like a sheet, it was not one.
    sheet = _outside_sheet(grey)
    for outside in ([sheet, None] if sheet is not None else [None]):
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
        stroke = _stroke_width(_crop(labels > 0))
        sigma = float(np.clip(min(0.025 * (high - low + 1), 0.3 * stroke), 0.7, 12))
        ink, mask, contrast = _threshold(signal, sigma, stroke=max(stroke, 2.0))
        labels, areas = _components(mask)
    return _Analysis(
        grey=grey,
        background=background,
        ink=np.clip(ink, 0, 1).astype(np.float32),
        mask=mask,
        labels=labels,
        areas=areas,
        scale=scale,
        contrast=contrast,
        dark_ink=dark_ink,
    )


def _boxes(labels: np.ndarray, count: int) -> list[tuple[int, int, int, int] | None]:
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


def _union(a, b):
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _gap(a, b) -> float:
    """Distance between two boxes (0 when they touch or overlap)."""
    dx = max(0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[3], b[3]))
    return float(np.hypot(dx, dy))


def _pick_digit(analysis: _Analysis) -> np.ndarray:
    """Mask of the one digit: the largest piece plus substantial pieces near it."""
    labels, areas = analysis.labels, analysis.areas
    count = len(areas) - 1
    live = [i for i in range(1, count + 1) if areas[i] > 0]
    if not live:
        return np.zeros(labels.shape, dtype=bool)
    boxes = _boxes(labels, count)
    height, width = labels.shape

    def touches_border(i: int) -> bool:
        x0, y0, x1, y1 = boxes[i - 1]
        return x0 == 0 or y0 == 0 or x1 == width or y1 == height

    # Paper edges, table tops and frame lines touch the border; a digit
    # usually does not. Prefer inner pieces when there are substantial ones.
    inner = [i for i in live if not touches_border(i)]
    if inner and max(areas[i] for i in inner) >= 0.1 * max(areas[i] for i in live):
        live = inner
    live.sort(key=lambda i: -areas[i])
    chosen = [live[0]]
    box = boxes[live[0] - 1]
    changed = True
    while changed:
        changed = False
        for i in live:
            if i in chosen or areas[i] < 0.03 * areas[live[0]]:
                continue
            size = max(box[2] - box[0], box[3] - box[1])
            if _gap(box, boxes[i - 1]) <= 0.25 * size:
                chosen.append(i)
                box = _union(box, boxes[i - 1])
                changed = True
    return np.isin(labels, chosen)


# --------------------------------------------------------------------------
# Steps 6-8: crop, scale to 20 px, centre on the centre of mass
# --------------------------------------------------------------------------


# MNIST's stroke width as a fraction of the digit's longer side, measured on
# the test set (upscaled, thresholded at half): 5th percentile 0.075, median
# 0.11, 95th percentile 0.19. Strokes outside this band are a pen the model
# has never seen; we bring them back to its edge, and leave the rest alone.
_STROKE_RANGE = (0.08, 0.17)


def _crop(mask: np.ndarray) -> np.ndarray:
    """The mask cut to the bounding box of its pixels (whole mask when empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return mask
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width in pixels: twice the distance-to-edge on the medial ridge."""
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(mask)
    ridge = mask & (distance >= ndimage.maximum_filter(distance, 3))
    return 2 * float(np.median(distance[ridge])) if ridge.any() else 0.0


def _normalise_stroke(mask: np.ndarray) -> np.ndarray:
    """Thicken hairlines and thin marker strokes into MNIST's range of pens."""
    from scipy import ndimage

    if not mask.any():
        return mask
    mask = _crop(mask)  # work on the digit only: speed
    size = max(mask.shape)
    width = _stroke_width(mask)
    low, high = _STROKE_RANGE[0] * size, _STROKE_RANGE[1] * size
    if width < low:
        radius = (low - width) / 2
        pad = int(np.ceil(radius)) + 1
        padded = np.pad(mask, pad)
        return ndimage.distance_transform_edt(~padded) <= radius
    if width > high:
        radius = (width - high) / 2
        thinner = ndimage.distance_transform_edt(mask) > radius
        # Never erase the digit: keep the original if erosion would gut it.
        return thinner if thinner.sum() > 0.3 * mask.sum() else mask
    return mask


def _to_mnist(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop a digit mask, fit it in 20×20 and centre it by mass in 28×28.

    Returns (crop, image). The binary mask is downscaled with area averaging,
    which is how MNIST got its grey edges from NIST's binary scans.
    """
    from scipy import ndimage

    image = np.zeros((_MNIST_SIZE, _MNIST_SIZE), dtype=np.float32)
    mask = _normalise_stroke(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return np.zeros((1, 1), dtype=np.float32), image
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)
    height, width = crop.shape
    factor = _MNIST_BOX / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    method = Image.BOX if factor < 1 else Image.BILINEAR
    small = np.asarray(Image.fromarray(crop, "F").resize(size, method), dtype=np.float32)
    small = np.clip(small, 0, 1)
    com_row, com_col = ndimage.center_of_mass(small)
    h, w = small.shape
    top = int(np.clip(round(_MNIST_COM[0] - com_row), 0, _MNIST_SIZE - h))
    left = int(np.clip(round(_MNIST_COM[1] - com_col), 0, _MNIST_SIZE - w))
    image[top : top + h, left : left + w] = small
    return crop, image


# --------------------------------------------------------------------------
# Public pipeline
# --------------------------------------------------------------------------


@dataclass
class Prepared:
    """One image made MNIST-like, with the intermediate steps for --explain."""

    image: np.ndarray  # (28, 28) float32 in [0, 1], white digit on black
    has_ink: bool  # False when no digit-like ink was found
    steps: list[tuple[str, np.ndarray]] = field(default_factory=list)


def prepare(image: Image.Image) -> Prepared:
    """Run the eight-step pipeline on an image holding ONE digit."""
    analysis = _analyse(image)
    digit = _pick_digit(analysis)
    crop, final = _to_mnist(digit)
    has_ink = bool(digit.any())
    polarity = "dark ink on light" if analysis.dark_ink else "light ink on dark"
    steps = [
        ("1 grey", analysis.grey),
        ("2 background", analysis.background),
        (f"3 flattened ({polarity})", analysis.ink),
        ("4 threshold", analysis.mask.astype(np.float32)),
        ("5 cleaned", digit.astype(np.float32)),
        ("6 cropped", crop),
        ("7-8 model input 28×28", final),
    ]
    return Prepared(image=final, has_ink=has_ink, steps=steps)


def naive(image: Image.Image) -> np.ndarray:
    """The baseline: grey, squash to 28×28, divide by 255. For the benchmark only."""
    grey = Image.fromarray(_grey(image), "F").resize((_MNIST_SIZE, _MNIST_SIZE), Image.BILINEAR)
    return np.clip(np.asarray(grey, dtype=np.float32), 0, 1)


@dataclass
class Segment:
    """One digit of a line: where it is, and its MNIST-style image."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in original image pixels
    image: np.ndarray  # (28, 28) float32, ready for the model


def _group_line(analysis: _Analysis) -> list[list[int]]:
    """Group connected components into the digits of one line, left to right.

    Handwritten digits on one line are about equally tall, so the line's
    height H (the vertical extent of its ink) tells whole strokes from
    fragments. Tall pieces (at least 0.6 H) are digits, or halves of one when
    they overlap horizontally by half the narrower width (a 0 broken in two).
    Short pieces are fragments (a 5's detached bar, a 4 split at its
    crossbar, a speck above a stroke, chalk broken by grain) and join the
    nearest digit if close enough and the result is still digit-sized.
    Fragments left over become a digit only if together they are tall
    enough; otherwise they are noise. Two tall pieces side by side stay two
    digits, even under a 7's overhang.
    """
    labels, areas = analysis.labels, analysis.areas
    count = len(areas) - 1
    boxes = {i: b for i, b in zip(range(1, count + 1), _boxes(labels, count)) if b is not None and areas[i] > 0}
    if not boxes:
        return []
    # The line's height: where the ink rows are, ignoring 2 % at each end.
    rows = np.flatnonzero((labels > 0).any(axis=1))
    weights = (labels > 0).sum(axis=1)[rows]
    cumulative = np.cumsum(weights) / weights.sum()
    top, bottom = rows[np.searchsorted(cumulative, 0.02)], rows[np.searchsorted(cumulative, 0.98)]
    line = float(bottom - top + 1)
    # Pieces wholly outside the band of the line are not part of it.
    boxes = {i: b for i, b in boxes.items() if b[3] > top - 0.5 * line and b[1] < bottom + 0.5 * line}

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
                groups[groups.index((members, other))] = (members, _union(box, other))
                break
        else:
            groups.append(([i], box))

    # Fragments, biggest first, join the nearest digit when close.
    leftovers: list[tuple[list[int], tuple[int, int, int, int]]] = []
    for i in sorted((i for i, b in boxes.items() if height(b) < 0.6 * line), key=lambda i: -areas[i]):
        box = boxes[i]
        best = min(range(len(groups)), key=lambda g: _gap(box, groups[g][1]), default=None)
        if best is not None:
            members, other = groups[best]
            union = _union(box, other)
            if _gap(box, other) <= 0.3 * line and width(union) <= 1.2 * line:
                groups[best] = (members + [i], union)
                continue
        # Not near a digit: gather with other stray fragments above or below it.
        for k, (members, other) in enumerate(leftovers):
            if x_overlap(box, other) >= -0.05 * line and width(_union(box, other)) <= 1.2 * line:
                leftovers[k] = (members + [i], _union(box, other))
                break
        else:
            leftovers.append(([i], box))
    groups += [(members, box) for members, box in leftovers if height(box) >= 0.45 * line]
    return [members for members, box in sorted(groups, key=lambda g: g[1][0])]


def segment(image: Image.Image) -> list[Segment]:
    """Find the digits of one written line, left to right, each MNIST-style."""
    analysis = _analyse(image)
    segments = []
    for group in _group_line(analysis):
        digit = np.isin(analysis.labels, group)
        rows = np.flatnonzero(digit.any(axis=1))
        cols = np.flatnonzero(digit.any(axis=0))
        sx, sy = analysis.scale
        box = (
            int(np.floor(cols[0] / sx)),
            int(np.floor(rows[0] / sy)),
            int(np.ceil((cols[-1] + 1) / sx)),
            int(np.ceil((rows[-1] + 1) / sy)),
        )
        width, height = image.size
        box = (max(0, box[0]), max(0, box[1]), min(width, box[2]), min(height, box[3]))
        segments.append(Segment(box=box, image=_to_mnist(digit)[1]))
    return segments


def save_explanation(prepared: Prepared, path: str | os.PathLike) -> None:
    """Save the pipeline's steps side by side as one PNG (written atomically)."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, thread-safe

    from digits.atomic import atomic_path

    steps = prepared.steps or [("model input 28×28", prepared.image)]
    figure = Figure(figsize=(2.2 * len(steps), 2.6), dpi=100)
    for index, (title, array) in enumerate(steps, start=1):
        axes = figure.add_subplot(1, len(steps), index)
        axes.imshow(array, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes.set_title(title, fontsize=8)
        axes.set_xticks([])
        axes.set_yticks([])
    if not prepared.has_ink:
        figure.suptitle("no digit found", fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
