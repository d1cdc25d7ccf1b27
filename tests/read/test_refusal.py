"""The steadiness test: its nudged copies are ndimage's transforms, and asking for fewer of them changes no outcome."""

import numpy as np
from scipy import ndimage

from digits.read.refusal import _keep_reading, _linear_nudges, nudged, steady


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
    """A stand-in model whose reading flips with the ink's amount gives every mix of agreeing copies."""
    _, (x_test, _) = mnist
    images = (x_test[:200] / np.float32(255)).astype(np.float32)
    asked = []

    def classify(batch):
        asked.append(len(batch))
        ink = batch.reshape(len(batch), -1).sum(axis=1)
        reading = (ink * 7).astype(int) % 2 * (ink > 95)  # a 1 for some copies of heavy images, else 0
        probabilities = np.full((len(batch), 11), 0.01, np.float32)
        probabilities[np.arange(len(batch)), reading] = 0.9
        return probabilities

    readings = [0] * len(images)
    every_copy = _keep_reading(classify, nudged(images), np.asarray(readings)).sum(axis=1) >= 8
    asked.clear()
    answers = steady(classify, images, readings)
    np.testing.assert_array_equal(answers, every_copy)
    assert 0 < every_copy.sum() < len(images), "the stand-in must give steady and unsteady images"
    assert sum(asked) < 10 * len(images) and asked[0] == 8 * len(images)
    assert len(asked) == 2, "some images were still open after eight copies"
