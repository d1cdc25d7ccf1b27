"""The steadiness test: its nudged copies are ndimage's transforms, and asking for fewer of them changes no outcome."""

import numpy as np
from scipy import ndimage

from digits.read.refusal import _linear_nudges, nudged, steady


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


def test_steady_asks_for_fewer_copies_and_answers_as_all_ten_would(mnist):
    """A stand-in model whose answer depends on each copy's ink gives digits settled by eight copies and open ones."""
    _, (x_test, _) = mnist
    images = (x_test[:300] / np.float32(255)).astype(np.float32)
    readings = np.arange(len(images)) % 3  # the reading each image's copies must keep
    asked = []

    def answer(batch):
        """Per copy: 0, 1 or 2 by its ink, and for some copies "not a digit" (column 10) above it."""
        ink = batch.reshape(len(batch), -1).sum(axis=1)
        return (ink * 5).astype(int) % 3 * (ink > 100), (ink * 13).astype(int) % 7 == 0

    def classify(batch):
        asked.append(len(batch))
        best, refused = answer(batch)
        probabilities = np.full((len(batch), 11), 0.01, np.float32)
        probabilities[np.arange(len(batch)), best] = 0.8
        probabilities[refused, 10] = 0.9
        return probabilities

    copies = nudged(images)
    best, refused = answer(copies.reshape(-1, 28, 28))
    kept = ((best == np.repeat(readings, 10)) & ~refused).reshape(len(images), 10)
    first_eight = kept[:, :8].sum(axis=1)
    still_open = (first_eight >= 6) & (first_eight < 8)
    assert still_open.any() and (first_eight == 8).any() and (first_eight < 6).any()
    assert refused.any() and (kept.sum(axis=1) >= 8).any()

    answers = steady(classify, images, list(readings))
    np.testing.assert_array_equal(answers, kept.sum(axis=1) >= 8)
    assert asked == [8 * len(images), 2 * still_open.sum()], "the last two copies only for the digits left open"
