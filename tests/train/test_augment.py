"""Tests for digits.train.augment.deform_batch: contract, determinism, and that digits stay digits."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from digits.train import augment
from digits.train.augment import deform_batch

# One compiled function for the whole module: tracing and XLA compilation
# happen once per input shape, and every test below uses the same shape.
deform_xla = tf.function(deform_batch, jit_compile=True)

BATCH = 256
int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def seed(a: int, b: int) -> tf.Tensor:
    return tf.constant([a, b], tf.int64)


@pytest.fixture(scope="module")
def digits(mnist) -> tf.Tensor:
    """The first 256 training digits as the training loop sees them: float32 in [0, 1]."""
    (x_train, _), _ = mnist
    return tf.constant(x_train[:BATCH].astype(np.float32) / 255.0)


def centre_of_mass(images: np.ndarray) -> np.ndarray:
    """(B, 2) ink-weighted (row, column) centre of each image."""
    grid = np.arange(images.shape[1])
    mass = images.sum(axis=(1, 2))
    return np.stack([(images.sum(axis=2) @ grid) / mass, (images.sum(axis=1) @ grid) / mass], axis=1)


def test_shape_dtype_and_range_are_preserved(digits):
    out = deform_xla(digits, seed(0, 1))
    assert out.shape == digits.shape and out.dtype == tf.float32
    assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0


def test_same_seed_is_bit_identical_eager_and_compiled(digits):
    eager = [deform_batch(digits, seed(7, 123)).numpy() for _ in range(2)]
    compiled = [deform_xla(digits, seed(7, 123)).numpy() for _ in range(2)]
    np.testing.assert_array_equal(eager[0], eager[1])
    np.testing.assert_array_equal(compiled[0], compiled[1])
    # Same random draws in both modes (only float rounding differs), so a run
    # with jit_compile off augments exactly like one with it on.
    np.testing.assert_allclose(eager[0], compiled[0], atol=1e-4)


def test_different_seeds_give_different_images(digits):
    base = deform_xla(digits, seed(0, 0)).numpy()
    for other in (seed(0, 1), seed(1, 0)):  # next step; another run seed
        assert np.abs(deform_xla(digits, other).numpy() - base).mean() > 0.01


def test_each_image_gets_its_own_deformation(digits):
    same_digit = tf.repeat(digits[:1], BATCH, axis=0)
    out = deform_xla(same_digit, seed(3, 4)).numpy()
    diffs = np.abs(out[1:] - out[:1]).mean(axis=(1, 2))
    assert diffs.min() > 1e-3


def test_no_deformation_is_the_identity(digits, monkeypatch):
    """With every range collapsed to "no change" the sampler must return the input: no half-pixel drift."""
    for name, value in dict(MAX_ROTATION_DEG=0.0, MAX_SHEAR=0.0, MAX_SHIFT_PX=0.0, ELASTIC_ALPHA=0.0).items():
        monkeypatch.setattr(augment, name, value)
    monkeypatch.setattr(augment, "MIN_SCALE", 1.0)
    monkeypatch.setattr(augment, "MAX_SCALE", 1.0)
    np.testing.assert_allclose(deform_batch(digits[:16], seed(5, 6)).numpy(), digits[:16].numpy(), atol=1e-6)


def test_digits_change_but_stay_recognisable(digits):
    before = digits.numpy()
    after = deform_xla(digits, seed(11, 0)).numpy()

    # Every digit is actually altered.
    assert np.abs(after - before).mean(axis=(1, 2)).min() > 0.005

    # Ink is neither lost nor smeared: scaling by up to 10 % changes the area
    # by up to ~21 % and elastic stretch adds a little, so nearly all digits
    # stay within ±35 % and none is halved or doubled.
    ratio = after.sum(axis=(1, 2)) / before.sum(axis=(1, 2))
    assert np.mean(np.abs(ratio - 1.0) <= 0.35) >= 0.97
    assert ratio.min() > 0.5 and ratio.max() < 2.0
    assert 0.9 < np.median(ratio) < 1.1

    # The digit stays where it was, give or take the random shift (≤ 2 px per axis).
    moved = np.linalg.norm(centre_of_mass(after) - centre_of_mass(before), axis=1)
    assert moved.max() < 5.0
    assert np.median(moved) < 2.5


@settings(max_examples=25, deadline=None)
@given(a=int64s, b=int64s)
def test_any_seed_keeps_shape_and_range(digits, a, b):
    out = deform_xla(digits, seed(a, b)).numpy()
    assert out.shape == (BATCH, 28, 28) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


# --- Real pens and cameras, European 1 and 7 ---------------------------------------

real_xla = tf.function(augment.real_batch, jit_compile=True)


def test_real_batch_is_deterministic_in_range_and_changes_strokes(digits):
    eager = [augment.real_batch(digits, seed(3, 4)).numpy() for _ in range(2)]
    np.testing.assert_array_equal(eager[0], eager[1])
    np.testing.assert_allclose(eager[0], real_xla(digits, seed(3, 4)).numpy(), atol=1e-4)
    assert eager[0].min() >= 0 and eager[0].max() <= 1 and eager[0].shape == digits.shape
    # Some strokes got thicker and some thinner: ink per image varies both ways.
    ratio = eager[0].sum(axis=(1, 2)) / digits.numpy().sum(axis=(1, 2))
    assert ratio.min() < 0.8 and ratio.max() > 1.3


def test_european_variants_add_a_stroke_to_ones_and_sevens(mnist):
    (x_train, y_train), _ = mnist
    x, y = x_train[:3000].astype(np.float32) / 255, y_train[:3000]
    images, labels = augment.european_variants(x, y, 30, 20, seed=1)
    again, _ = augment.european_variants(x, y, 30, 20, seed=1)
    np.testing.assert_array_equal(images, again)
    assert images.shape == (50, 28, 28) and list(labels) == [1] * 30 + [7] * 20
    assert images.min() >= 0 and images.max() <= 1
    # A flag, a base or a bar: more ink than any 1 or 7 of the same size had on average.
    assert images[:30].sum(axis=(1, 2)).mean() > x[y == 1].sum(axis=(1, 2)).mean() * 1.2
    assert images[30:].sum(axis=(1, 2)).mean() > x[y == 7].sum(axis=(1, 2)).mean() * 1.1
