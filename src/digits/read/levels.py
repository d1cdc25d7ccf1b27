"""Grey levels shared by the ink finder and the sheet finder.

`MIN_CONTRAST` is how far ink must stand from the paper to count at all;
`otsu` is Otsu's split of a set of grey values, `ink_level` the level a
set of ink values reaches. Both work on grey values in
[0, 1] (the working images of `digits.read.load`).
"""

from __future__ import annotations

import numpy as np

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
    """The 90th percentile of non-empty `values`, exactly as `np.percentile(values, 90)` gives it.

    One partition and numpy's own interpolation (in the values' dtype): the
    general function's checks and copies cost seven times as much, and a small
    picture asks for this once or twice.
    """
    virtual = (values.size - 1) * 0.9
    below = int(virtual)
    above = min(below + 1, values.size - 1)
    ordered = np.partition(values, (below, above))
    low, high, weight = ordered[below], ordered[above], virtual - below
    # numpy interpolates from the nearer end: the same rounding, to the last bit.
    return float(high - (high - low) * (1 - weight)) if weight >= 0.5 else float(low + (high - low) * weight)
