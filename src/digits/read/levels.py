"""Grey levels shared by the ink finder and the sheet finder.

`MIN_CONTRAST` is how far ink must stand from the paper to count at all;
`otsu` is Otsu's split of a set of grey values, `ink_level` the level a
set of ink values reaches, `median` their middle; `reduced` is a small copy
of a picture for looking at the paper and the sheet, not the ink. All work on
grey values in [0, 1] (the working images of `digits.read.load`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Ink must differ from the paper by at least this fraction of the full grey
# range; below it we are looking at paper texture, JPEG noise or shadows.
MIN_CONTRAST = 0.1


def otsu(values: np.ndarray, bins: int = 256) -> float:
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


def ink_level(values: np.ndarray) -> float:
    """The 90th percentile of non-empty `values`, linearly interpolated (`np.percentile(values, 90)`).

    One partition instead of the general function's checks and copies (seven times the work on a
    small picture), and the interpolation in float64 whatever numpy's version: numpy's own has
    computed it in the values' dtype in some releases and in float64 in others.
    """
    virtual = (values.size - 1) * 0.9
    below = int(virtual)
    above = min(below + 1, values.size - 1)
    ordered = np.partition(values, (below, above))
    low, high, weight = float(ordered[below]), float(ordered[above]), virtual - below
    return high - (high - low) * (1 - weight) if weight >= 0.5 else low + (high - low) * weight


def median(values: np.ndarray) -> float:
    """`np.median` of non-empty `values` without NaN, by one partition: a third of its cost on the few
    thousand values of one digit, where its checks and copies outweigh the work. The two middle values
    of an even count are averaged in float64 (numpy averages float32 values in float32)."""
    flat = values.ravel()
    middle = flat.size // 2
    if flat.size % 2:
        return float(np.partition(flat, middle)[middle])
    low, high = np.partition(flat, (middle - 1, middle))[middle - 1 : middle + 1]
    return (float(low) + float(high)) / 2


def reduced(grey: np.ndarray, longest: int) -> tuple[np.ndarray, tuple[int, int]]:
    """`grey` box-averaged by the least whole factor that brings its longer side to `longest` or under,
    and that size as Pillow's (width, height), for shrinking masks of the same picture alike."""
    height, width = grey.shape
    factor = max(1, int(np.ceil(max(height, width) / longest)))
    size = (max(1, width // factor), max(1, height // factor))
    small = np.asarray(Image.fromarray(grey.astype(np.float32, copy=False), "F").resize(size, Image.Resampling.BOX))
    return small, size
