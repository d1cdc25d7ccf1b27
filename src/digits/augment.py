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
"""

from __future__ import annotations

import math

from digits import backend

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


def deform_batch(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random affine (shift, rotation, scale, slight shear) plus elastic distortion per image (the Simard 2003 / Cireşan 2010 recipe), deterministic for a given seed.

    images: float32 (B, H, W) in [0, 1], white digit on black.
    seed:   int32/int64 shape (2,), e.g. tf.stack([run_seed, global_step]).
    Returns float32 (B, H, W) in [0, 1]. Labels are untouched by construction.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    batch, height, width = tf.unstack(tf.shape(images))
    affine_seed, elastic_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2, alg="philox"))

    # 1. Affine parameters, one set per image, all drawn from one call.
    low = [-MAX_ROTATION_DEG * math.pi / 180.0, MIN_SCALE, -MAX_SHEAR, -MAX_SHIFT_PX, -MAX_SHIFT_PX]
    high = [MAX_ROTATION_DEG * math.pi / 180.0, MAX_SCALE, MAX_SHEAR, MAX_SHIFT_PX, MAX_SHIFT_PX]
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
    field = ELASTIC_ALPHA * tf.einsum("ij,bcjk,lk->bcil", blur_y, noise, blur_x)
    src_y += field[:, 0]
    src_x += field[:, 1]

    # 5. One bilinear resampling of the combined grid; interpolation cannot
    #    leave [0, 1] in exact arithmetic, the clip guards against rounding.
    return tf.clip_by_value(_bilinear_sample(images, src_y, src_x), 0.0, 1.0)
