"""Random handwriting-like deformations of MNIST digits, for training only.

`deform_batch` applies, per image, a random affine map (shift, rotation,
scale, slight shear) plus an elastic distortion: the recipe of Simard et al.
2003 ("Best practices for CNNs applied to visual document analysis") and
Cireşan et al. 2010. Both are folded into one sampling grid so each image is
resampled once (bilinear), which keeps the digit sharp and the cost low.

It runs inside the XLA-compiled training loop (`Trainer._train_chunk`), so it
uses only stateless random ops keyed by the seed it is given: the same seed
always gives bit-identical output, and a resumed run replays the same
augmentation. `ImageProjectiveTransformV3` is not used because XLA has no CPU
kernel for it; the sampler below is plain gathers and arithmetic.

For a model that reads real pictures, two more steps:

  * `real_batch` (on the fly, stateless like `deform_batch`): the pens and
    cameras MNIST lacks. Strokes from a thin pen to a marker (a grey-level
    erosion or dilation, blended in by a random amount), blur, and contrast
    and gamma changes of the ink.
  * `european_variants` (once, before training, seeded NumPy): the European
    1 (a long flag, sometimes a base) and the crossed 7, drawn onto MNIST 1s
    and 7s and added as extra training images with the same labels, so a
    flagged 1 is not read as a 7. MNIST, written by Americans, has few of either.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from digits.read.normalize import stroke_width
from digits.spec import Box
from digits.train import tf as backend

if TYPE_CHECKING:  # mypy reads the module; at run time it comes through the one door, `backend.load()`
    import tensorflow as tf
else:
    tf, _ = backend.load()

# --- Tunable parameters ----------------------------------------------------
# Milder than Simard's alpha=34/sigma=4: digits stay legible at 28x28.

# Largest rotation either way, in degrees.
MAX_ROTATION_DEG = 12.0
# Isotropic scale factor range (1.0 = unchanged; >1 enlarges the digit).
MIN_SCALE, MAX_SCALE = 0.9, 1.1
# Largest horizontal shear (slant) either way, as a fraction of the height.
MAX_SHEAR = 0.15
# Largest shift either way along each axis, in pixels.
MAX_SHIFT_PX = 2.0
# Elastic distortion: uniform(-1, 1) noise per pixel, smoothed by a Gaussian
# of ELASTIC_SIGMA px, then multiplied by ELASTIC_ALPHA. Larger sigma gives
# smoother, more global bends; larger alpha gives stronger ones. With these
# values the elastic displacement is ~0.9 px on average, 99th percentile ~2.2 px.
ELASTIC_ALPHA = 30.0
ELASTIC_SIGMA = 6.0


def _gaussian_blur_matrix(size: tf.Tensor, sigma: float) -> tf.Tensor:
    """(size, size) matrix G with G @ v = v convolved with a Gaussian (zero padding).

    A separable blur of a (size, size) field F is then G @ F @ G^T: two small
    matmuls. XLA on CPU runs these in ~1.5 ms for 256 two-channel fields,
    while the same blur as two `depthwise_conv2d` passes took ~400 ms.
    """
    positions = tf.range(size, dtype=tf.float32)
    distance = positions[:, None] - positions[None, :]
    weights = tf.exp(-0.5 * tf.square(distance / sigma))
    # Normalise as a full (untruncated) kernel would be, so the field is not
    # amplified near the borders where part of the kernel falls outside.
    return weights / (sigma * math.sqrt(2.0 * math.pi))


def _uniform(shape, seed: tf.Tensor, low, high) -> tf.Tensor:
    """Stateless uniform floats in [low, high), identical eagerly and under XLA.

    `tf.random.stateless_uniform` draws the same Philox bits in both modes but
    turns them into floats differently under XLA, so the eager and compiled
    augmentations would disagree. Converting the raw bits here (top 24 bits,
    exactly representable in float32) keeps them the same.
    """
    bits = tf.random.stateless_uniform(shape, seed, dtype=tf.uint32, minval=None, maxval=None, alg="philox")
    unit = tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) * (1.0 / (1 << 24))
    return low + unit * (high - low)


def _bilinear_sample(images: tf.Tensor, src_y: tf.Tensor, src_x: tf.Tensor) -> tf.Tensor:
    """Sample images (B, H, W) at float pixel coordinates (B, H, W); black outside."""
    batch, height, width = tf.unstack(tf.shape(images))
    # A one-pixel black border lets every out-of-range coordinate be clamped
    # onto it, so no bounds masks are needed.
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1]])
    flat = tf.reshape(padded, [-1])
    src_y = tf.clip_by_value(src_y, -1.0, tf.cast(height, tf.float32))
    src_x = tf.clip_by_value(src_x, -1.0, tf.cast(width, tf.float32))

    y0, x0 = tf.floor(src_y), tf.floor(src_x)
    wy, wx = src_y - y0, src_x - x0  # weights of the lower/right neighbours

    # Indices into the padded image: coordinate c lives at c + 1; the clamp
    # keeps y0 + 1 / x0 + 1 on the border when the coordinate is on it.
    y0i = tf.cast(y0, tf.int32) + 1
    x0i = tf.cast(x0, tf.int32) + 1
    y1i = tf.minimum(y0i + 1, height + 1)
    x1i = tf.minimum(x0i + 1, width + 1)
    row = width + 2
    base = tf.reshape(tf.range(batch) * (height + 2) * row, [-1, 1, 1])

    def at(yi, xi):
        return tf.gather(flat, base + yi * row + xi)

    top = at(y0i, x0i) * (1.0 - wx) + at(y0i, x1i) * wx
    bottom = at(y1i, x0i) * (1.0 - wx) + at(y1i, x1i) * wx
    return top * (1.0 - wy) + bottom * wy


def deform_batch(
    images: tf.Tensor,
    seed: tf.Tensor,
    max_shift: float | None = None,
    scale_range: tuple[float, float] | None = None,
    strength: float = 1.0,
) -> tf.Tensor:
    """Random affine (shift, rotation, scale, slight shear) plus elastic distortion per image (the Simard 2003 / Cireşan 2010 recipe), deterministic for a given seed.

    images: float32 (B, H, W) in [0, 1], white digit on black.
    seed:   int32/int64 shape (2,), e.g. tf.stack([run_seed, global_step]).
    max_shift, scale_range: the position and size jitter (None: the module's constants, read at each call).
    strength: multiplies every range (1.0: as set; 0.5: half the rotation,
              shear, shift, scale change and elastic bend), as tuning sets it.
    Returns float32 (B, H, W) in [0, 1]. Labels are untouched by construction.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    batch, height, width = tf.unstack(tf.shape(images))
    affine_seed, elastic_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2, alg="philox"))

    # 1. Affine parameters, one set per image, all drawn from one call.
    # Read at call time, not bound as defaults: the module's constants are the settings.
    max_shift = MAX_SHIFT_PX if max_shift is None else max_shift
    scale_range = (MIN_SCALE, MAX_SCALE) if scale_range is None else scale_range
    rotation, shear, shift = strength * MAX_ROTATION_DEG * math.pi / 180.0, strength * MAX_SHEAR, strength * max_shift
    low = [-rotation, 1.0 + strength * (scale_range[0] - 1.0), -shear, -shift, -shift]
    high = [rotation, 1.0 + strength * (scale_range[1] - 1.0), shear, shift, shift]
    params = _uniform([batch, 5], affine_seed, tf.constant(low), tf.constant(high))
    angle, scale, shear, shift_y, shift_x = tf.unstack(params, axis=1)

    # 2. Output pixel coordinates relative to the image centre (13.5 for 28
    #    px), so rotation and scale leave the digit in place.
    cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
    cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
    ys = tf.range(height, dtype=tf.float32)[None, :, None] - cy  # (1, H, 1)
    xs = tf.range(width, dtype=tf.float32)[None, None, :] - cx  # (1, 1, W)

    # 3. Inverse map, output -> source: rotate, shear, then divide by the
    #    scale (the source is sampled 1/scale as far out, so the digit grows
    #    by `scale`), then shift. Built directly as the inverse because
    #    sampling needs, for every output pixel, where to read from.
    cos, sin = tf.cos(angle)[:, None, None], tf.sin(angle)[:, None, None]
    shear, inv_scale = shear[:, None, None], 1.0 / scale[:, None, None]
    rot_x = cos * xs - sin * ys
    rot_y = sin * xs + cos * ys
    src_x = (rot_x + shear * rot_y) * inv_scale + cx - shift_x[:, None, None]
    src_y = rot_y * inv_scale + cy - shift_y[:, None, None]

    # 4. Elastic field: per-pixel uniform noise made smooth by a Gaussian blur
    #    (G @ F @ G^T per channel), then scaled to a few pixels at most.
    noise = _uniform([batch, 2, height, width], elastic_seed, -1.0, 1.0)
    blur_y = _gaussian_blur_matrix(height, ELASTIC_SIGMA)
    blur_x = _gaussian_blur_matrix(width, ELASTIC_SIGMA)
    field = strength * ELASTIC_ALPHA * tf.einsum("ij,bcjk,lk->bcil", blur_y, noise, blur_x)
    src_y += field[:, 0]
    src_x += field[:, 1]

    # 5. One bilinear resampling of the combined grid; interpolation cannot
    #    leave [0, 1] in exact arithmetic, the clip guards against rounding.
    return tf.clip_by_value(_bilinear_sample(images, src_y, src_x), 0.0, 1.0)


# --- Real pens and cameras ---------------------------------------------------

# The position and size jitter of a reader model: wider than MNIST's own,
# because a digit cut out of a photo is centred and scaled less precisely.
REAL_MAX_SHIFT_PX = 3.0
REAL_SCALE_RANGE = (0.8, 1.15)
# Stroke width: a blend towards a 3x3 erosion (thin pen, up to -1) or a 3x3
# dilation (marker, up to +1). MNIST strokes are 2-3 px wide at 28x28.
STROKE_RANGE = (-0.8, 1.0)
# Blur: a blend of up to this much towards a Gaussian blur of sigma 1 px.
MAX_BLUR = 0.6
# Ink contrast (peak brightness) and gamma of the ink ramp.
CONTRAST_RANGE = (0.75, 1.0)
GAMMA_RANGE = (0.7, 1.4)


def _blur3(images: tf.Tensor) -> tf.Tensor:
    """A separable 3x3 Gaussian blur (sigma 1 px) of (B, H, W) images, zero outside."""
    weights = tf.constant([0.27406862, 0.45186276, 0.27406862])
    x = images[..., None]
    x = tf.nn.conv2d(x, tf.reshape(weights, [3, 1, 1, 1]), 1, "SAME")
    x = tf.nn.conv2d(x, tf.reshape(weights, [1, 3, 1, 1]), 1, "SAME")
    return x[..., 0]


def real_batch(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random stroke width, blur, contrast and gamma per image, deterministic for a given seed.

    images: float32 (B, H, W) in [0, 1], white digit on black; returns the same shape, in [0, 1].
    """
    images = tf.convert_to_tensor(images, tf.float32)
    batch = tf.shape(images)[0]
    low = [STROKE_RANGE[0], 0.0, CONTRAST_RANGE[0], math.log(GAMMA_RANGE[0])]
    high = [STROKE_RANGE[1], MAX_BLUR, CONTRAST_RANGE[1], math.log(GAMMA_RANGE[1])]
    params = _uniform([batch, 4], seed, tf.constant(low), tf.constant(high))
    stroke, blur, contrast, log_gamma = (p[:, None, None] for p in tf.unstack(params, axis=1))

    x = images[..., None]
    dilated = tf.nn.max_pool2d(x, 3, 1, "SAME")[..., 0]
    eroded = -tf.nn.max_pool2d(-x, 3, 1, "SAME")[..., 0]
    # Grey-level morphology: a positive blend widens every stroke, a negative one narrows it.
    out = tf.where(stroke > 0, images + stroke * (dilated - images), images - stroke * (eroded - images))
    out = out + blur * (_blur3(out) - out)
    out = tf.pow(tf.clip_by_value(out, 0.0, 1.0) + 1e-6, tf.exp(log_gamma)) * contrast
    return tf.clip_by_value(out, 0.0, 1.0)


# --- European 1 and 7 ---------------------------------------------------------


def _ink_box(image: np.ndarray) -> Box | None:
    rows = np.flatnonzero((image > 0.5).any(axis=1))
    cols = np.flatnonzero((image > 0.5).any(axis=0))
    return None if rows.size == 0 else (rows[0], rows[-1], cols[0], cols[-1])


def _stroke_width(image: np.ndarray) -> float:
    """The typical width of a digit's strokes, measured as the reader measures it (2 px if no ink)."""
    return stroke_width(image > 0.5) or 2.0


def _add_strokes(image: np.ndarray, lines: list[list[tuple[float, float]]], width: float) -> np.ndarray:
    """`image` with pen strokes drawn on it; points (x, y) are pixel centres."""
    from digits.synth.junk import draw_strokes

    centred = [[(x + 0.5, y + 0.5) for x, y in line] for line in lines]
    return np.maximum(image, draw_strokes(image.shape, centred, width).astype(np.float32))


def european_one(image: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A MNIST 1 given a long flag down to the left from its top, and sometimes a base."""
    box = _ink_box(image)
    if box is None:
        return None
    top, bottom, _, _ = box
    height = bottom - top + 1
    cols = np.flatnonzero(image[top] > 0.5)
    top_x = float(cols.mean())
    angle = np.radians(rng.uniform(30, 60))  # below the horizontal: flatter and it is a 7
    length = rng.uniform(0.25, 0.5) * height
    flag_end = (top_x - np.cos(angle) * length, top + np.sin(angle) * length)
    lines = [[flag_end, (top_x, float(top))]]
    if rng.random() < 0.35:
        bottom_x = float(np.flatnonzero(image[bottom] > 0.5).mean())
        half = rng.uniform(0.2, 0.35) * height
        lines.append([(bottom_x - half, float(bottom)), (bottom_x + half, float(bottom))])
    return _add_strokes(image, lines, _stroke_width(image) * rng.uniform(0.7, 1.0))


def crossed_seven(image: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A MNIST 7 with a short bar across its stem, a little above half height."""
    box = _ink_box(image)
    if box is None:
        return None
    top, bottom, _, _ = box
    height = bottom - top + 1
    row = int(round(top + rng.uniform(0.45, 0.6) * height))
    cols = np.flatnonzero(image[row] > 0.5)
    if cols.size == 0:
        return None
    centre = float(cols.mean()) + rng.normal(0, 0.5)
    half = rng.uniform(0.18, 0.32) * height
    tilt = np.tan(np.radians(rng.uniform(-8, 8))) * half
    line = [(centre - half, row + tilt), (centre + half, row - tilt)]
    return _add_strokes(image, [line], _stroke_width(image) * rng.uniform(0.7, 1.0))


def european_variants(x: np.ndarray, y: np.ndarray, ones: int, sevens: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`ones` European 1s and `sevens` crossed 7s made from the 1s and 7s of (x, y).

    x: (N, 28, 28) float32 in [0, 1]; returns new images (float32) and their
    labels (1 and 7). Digits whose stroke cannot be found are skipped.
    """
    rng = np.random.default_rng([seed, 17])
    images, labels = [], []
    for label, count, make in ((1, ones, european_one), (7, sevens, crossed_seven)):
        pool = np.flatnonzero(y == label)
        if pool.size == 0 or count == 0:
            continue
        for index in rng.choice(pool, size=count, replace=count > pool.size):
            made = make(x[index], rng)
            if made is not None:
                images.append(made)
                labels.append(label)
    return np.asarray(images, np.float32).reshape(-1, *x.shape[1:]), np.asarray(labels, y.dtype)
