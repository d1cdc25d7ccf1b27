"""Grey levels shared by the ink finder and the sheet finder.

`MIN_CONTRAST` is how far ink must stand from the paper to count at all;
`otsu` is Otsu's split of a set of grey values, `ink_level` the level a
set of ink values reaches, `median` their middle (`label_medians` that of
each labelled region), `clean_paper` the paper's level of a clean picture;
`reduced` is a small copy of a picture for looking at the paper and the
sheet, not the ink. All work on grey values in [0, 1] (the working images
of `digits.read.load`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Ink must differ from the paper by at least this fraction of the full grey
# range; below it we are looking at paper texture, JPEG noise or shadows.
MIN_CONTRAST = 0.1
# A picture is clean when this share of its pixels lie within this many grey
# levels (of 255) of the commonest one: the paper of a drawing app or a scan.
CLEAN_SHARE = 0.6
CLEAN_LEVELS = 2


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


def label_medians(values: np.ndarray, labels: np.ndarray, index: np.ndarray) -> np.ndarray:
    """`scipy.ndimage.median(values, labels, index)` for float `values` without NaN and labels of 0 and up,
    sorting only the pixels of the labels in `index`: scipy sorts every pixel, paper included (90 ms on a page
    at 2048 px). As scipy does, an even count averages its middle two in `values`' type, and a label with no
    pixel gets the least value of the lowest label there is."""
    flat_labels, flat_values = labels.ravel(), values.ravel()
    chosen = np.isin(flat_labels, index)
    order = np.lexsort((flat_values[chosen], flat_labels[chosen]))
    ordered_labels, ordered_values = flat_labels[chosen][order], flat_values[chosen][order]
    first = np.searchsorted(ordered_labels, index, side="left")
    last = np.searchsorted(ordered_labels, index, side="right") - 1
    present = last >= first
    step = np.where(present, (last - first) // 2, 0)
    low, high = np.where(present, first + step, 0), np.where(present, last - step, 0)
    medians = (
        (ordered_values[low] + ordered_values[high]) / 2.0
        if ordered_values.size
        else np.zeros(len(index), values.dtype)
    )
    if not present.all():
        lowest = flat_labels.min()
        medians = np.where(present, medians, flat_values[flat_labels == lowest].min())
    return np.asarray(medians)


def reduced(grey: np.ndarray, longest: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The whole of `grey` box-averaged to its sides divided by the least whole factor that brings its longer
    side to `longest` or under (rounded down: a window may span a little more than the factor), and that size
    as Pillow's (width, height), for shrinking masks of the same picture alike."""
    height, width = grey.shape
    factor = max(1, int(np.ceil(max(height, width) / longest)))
    size = (max(1, width // factor), max(1, height // factor))
    small = np.asarray(Image.fromarray(grey.astype(np.float32, copy=False), "F").resize(size, Image.Resampling.BOX))
    return small, size


def clean_paper(grey: np.ndarray) -> float | None:
    """The paper's grey level when a picture is clean, else None.

    A drawing made on a screen (a canvas, a paint program, a tablet app), an
    MNIST image or a binarised scan has paper of one exact level: most of its
    pixels share it. Such a picture has no light, shadow or texture to undo,
    so it skips steps 2-3 and the adaptive threshold.
    """
    levels = np.bincount(np.rint(grey.ravel() * 255).astype(np.uint8), minlength=256)
    mode = int(levels.argmax())
    share = levels[max(0, mode - CLEAN_LEVELS) : mode + CLEAN_LEVELS + 1].sum() / grey.size
    return mode / 255 if share >= CLEAN_SHARE else None
