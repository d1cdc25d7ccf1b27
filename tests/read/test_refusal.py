"""The steadiness test's nudged copies: the sparse product gives what ndimage's transforms give."""

import numpy as np
from scipy import ndimage

from digits.read.refusal import _linear_nudges, nudged


def test_nudged_copies_are_ndimages_transforms(mnist):
    _, (x_test, _) = mnist
    images = (x_test[:16] / np.float32(255)).astype(np.float32)
    copies = nudged(images)
    assert copies.shape == (16, 10, 28, 28) and copies.dtype == np.float32
    linear = np.stack(_linear_nudges(images), axis=1)  # shifts, turns, zooms, straight from ndimage
    np.testing.assert_allclose(copies[:, [0, 1, 2, 3, 4, 5, 8, 9]], linear, atol=1e-6)
    np.testing.assert_array_equal(copies[:, 6], ndimage.grey_dilation(images, size=(1, 2, 2)))
    np.testing.assert_array_equal(copies[:, 7], ndimage.grey_erosion(images, size=(1, 2, 2)))
    # A shift by two pixels moves the ink and nothing else.
    np.testing.assert_allclose(copies[:, 0, 2:], images[:, :-2], atol=1e-6)
