"""The one digit of a picture takes in the pieces near it, but where its ink is faint, a small piece only close by
(`pick.pick_digit`): a light pencil digit on textured paper drew the paper's grain into its box, speck by speck."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from digits.read.ink import Analysis
from digits.read.pick import pick_digit


def _digit_and_speck(contrast: float) -> Analysis:
    """A ring 61 px tall (a 0) and a 5×5 speck 9 px to its right: 0.15 of the digit's size away, 4 % of its ink."""
    mask = np.zeros((160, 160), dtype=bool)
    rows, cols = np.ogrid[:160, :160]
    ring = ((rows - 80) / 30.0) ** 2 + ((cols - 70) / 20.0) ** 2
    mask |= (ring <= 1) & (ring >= 0.7)
    mask[78:83, 100:105] = True
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    areas[0] = 0
    grey = np.where(mask, 1 - contrast, 1.0).astype(np.float32)
    return Analysis(
        grey=grey,
        background=np.ones_like(grey),
        ink=mask.astype(np.float32),
        mask=mask,
        labels=labels,
        areas=areas,
        scale=(1.0, 1.0),
        origin=(0.0, 0.0),
        contrast=contrast,
        dark_ink=True,
    )


@pytest.mark.parametrize(("contrast", "speck_taken"), [(0.6, True), (0.2, False)])
def test_a_small_piece_beside_faint_ink_is_grain(contrast, speck_taken):
    digit = pick_digit(_digit_and_speck(contrast))
    assert digit[:, 60:90].any()  # the ring, always
    assert bool(digit[78:83, 100:105].all()) is speck_taken
