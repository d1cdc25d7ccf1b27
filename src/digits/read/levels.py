"""Grey levels shared by the ink finder and the sheet finder.

`MIN_CONTRAST` is how far ink must stand from the paper to count at all;
`otsu` is Otsu's split of a set of grey values. Both work on grey values in
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
