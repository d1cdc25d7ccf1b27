"""Test-time turns (`digits.read.turns`): only where the model is unsure, and each row its own image's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from digits.read.turns import SETTLED, TURNS, averaged, warped


def _turned_by_scipy(images: np.ndarray) -> np.ndarray:
    return np.stack(
        [ndimage.rotate(images.astype(np.float64), a, axes=(2, 1), reshape=False, order=1) for a in TURNS], axis=1
    )


def test_the_sparse_turns_are_scipys(mnist):
    images = mnist[1][0][:16].astype(np.float32) / 255
    np.testing.assert_allclose(warped(_scipy_warps, images), _turned_by_scipy(images), atol=1e-9)


def _scipy_warps(images: np.ndarray) -> list[np.ndarray]:
    return list(_turned_by_scipy(images).transpose(1, 0, 2, 3))


class CountingModel:
    """A stand-in model: its confidence is the image's mean brightness, so sure and unsure images are made to order."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(len(images))
        assert images.dtype == np.float32  # as the model takes them
        brightness = images.reshape(-1, 28 * 28).astype(np.float64).mean(axis=1)
        top = np.clip(brightness, 0, 1)
        rest = (1 - top) / 10
        rows = np.repeat(rest[:, None], 11, axis=1)
        rows[:, 3] = top
        return rows.astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_sure_images_cost_one_call_and_unsure_ones_are_averaged_with_their_turns(dtype):
    sure = np.full((2, 28, 28), 1.0)
    unsure = np.zeros((3, 28, 28))
    unsure[:, 10:18, 10:18] = 0.9
    images = np.concatenate([sure, unsure])
    images = (images * 255).astype(np.uint8) if dtype == np.uint8 else images.astype(np.float32)
    model = CountingModel()
    found = averaged(model, images)
    assert model.calls == [5, 3 * len(TURNS)]  # every image once, then the unsure ones' turns
    as_floats = images.astype(np.float32) / (255 if dtype == np.uint8 else 1)
    own = CountingModel()(as_floats)
    assert (own[:2].max(axis=1) >= SETTLED).all() and (own[2:].max(axis=1) < SETTLED).all()
    np.testing.assert_array_equal(found[:2], own[:2])
    turned = _turned_by_scipy(as_floats[2:]).astype(np.float32)
    expected = (own[2:] + sum(CountingModel()(turned[:, k]) for k in range(len(TURNS)))) / (1 + len(TURNS))
    np.testing.assert_allclose(found[2:], expected, rtol=1e-6)
    # Each row is its own image's, whatever else is in the batch.
    for i in range(len(images)):
        np.testing.assert_allclose(averaged(CountingModel(), images[i : i + 1])[0], found[i], rtol=1e-6)


def test_sure_images_alone_are_one_call_and_one_image_may_come_without_its_batch_axis():
    model = CountingModel()
    sure = np.ones((4, 28, 28), np.float32)
    np.testing.assert_array_equal(averaged(model, sure), CountingModel()(sure))
    assert model.calls == [4]
    np.testing.assert_array_equal(averaged(CountingModel(), sure[0]), CountingModel()(sure[:1]))


def test_an_empty_batch_is_one_empty_answer():
    assert averaged(CountingModel(), np.zeros((0, 28, 28), np.float32)).shape == (0, 11)


def test_with_the_shipped_model_each_row_is_its_own_images(mnist):
    from digits.read.reader import Reader

    reader = Reader(threads=1)
    images = mnist[1][0][:64]
    together = reader.classify(images)
    assert (reader.recognizer.predict_proba(images).max(axis=1) < SETTLED).any()  # both paths are taken
    alone = np.concatenate([reader.classify(images[i : i + 1]) for i in range(len(images))])
    np.testing.assert_allclose(alone, together, atol=1e-6)
