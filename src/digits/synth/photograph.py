"""Photo-like pictures of MNIST digits, seeded and reproducible.

MNIST's own test set says nothing about photos of paper. Real photos are
hard to ship and to label, so this module renders MNIST digits the way a
camera would see them on paper or on a board. The benchmarks' realistic set
renders MNIST **test** digits (the model must not have seen the
handwriting); a reader model trains on rendered **training** digits
(`digits.train.reader_data`). A picture has:

  * paper-like backgrounds (white, cream, grey, sticky-note yellow, kraft,
    bluish) with texture and grain, or a dark board with chalk (light on dark);
  * ink colours (black, blue, red, green, pencil grey) and white-balance tints;
  * uneven light (gradients, vignettes, a soft shadow edge);
  * the digit at many sizes and positions on a larger canvas, rotated ±12°;
  * thin, normal and thick strokes;
  * blur, sensor noise and JPEG artefacts.

`make_singles` gives one digit per image, `make_lines` lines of 2 to 5
digits (whole numbers, read by `digits read`). Everything is drawn from one
`numpy.random.Generator` seeded by the caller, in a fixed order, so the same
seed gives byte-identical images. `write_set` saves a set as files with a
`labels.json` next to them.

Digits in a line never touch (there is always a gap between their inks):
separating touching digits is out of scope for `digits read`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from digits.spec import SHAPE

__all__ = [
    "INKS",
    "PAPERS",
    "any_pen",
    "digit_coverage",
    "lighting",
    "make_lines",
    "make_singles",
    "paper_style",
    "pick",
    "random_stream",
    "render",
    "smooth_noise",
    "write_set",
]

# Colours as RGB in [0, 1], by name (a benchmark draws in one of them: `benchmarks/pens.py`).
PAPERS = {
    "white": (0.96, 0.96, 0.94),
    "cream": (0.95, 0.91, 0.80),
    "grey": (0.84, 0.84, 0.83),
    "sticky": (0.98, 0.93, 0.58),
    "kraft": (0.80, 0.68, 0.52),
    "bluish": (0.88, 0.92, 0.96),
}
INKS = {
    "black": (0.08, 0.08, 0.10),
    "blue": (0.10, 0.16, 0.58),
    "navy": (0.05, 0.08, 0.32),
    "red": (0.66, 0.08, 0.08),
    "green": (0.08, 0.40, 0.16),
    "pencil": (0.36, 0.36, 0.38),
}
_BOARDS = {
    "green board": (0.12, 0.24, 0.18),
    "black board": (0.10, 0.10, 0.12),
    "slate": (0.16, 0.20, 0.24),
}
_CHALKS = {
    "white chalk": (0.92, 0.92, 0.90),
    "yellow chalk": (0.94, 0.90, 0.55),
    "blue chalk": (0.75, 0.86, 0.94),
}

MAX_CANVAS = 720  # px, longest side of a single-digit canvas (and of a junk picture's)
_MNIST_DIGIT = 20.0  # a MNIST digit's longer side in its 28×28 image


@dataclass
class _Style:
    """Everything shared by the digits of one image."""

    height: float  # digit height in px
    level: float  # threshold on the upscaled MNIST grey: higher = thinner
    extra: float  # extra stroke radius in px (thick pens)
    chalk: bool  # light on dark
    paper: np.ndarray
    ink: np.ndarray
    opacity: float
    grain: float  # chalk or pencil: how much the stroke is broken up
    blur: float
    noise: float
    jpeg: int  # JPEG quality, 0 = no JPEG


def pick(rng: np.random.Generator, table: dict) -> np.ndarray:
    keys = sorted(table)
    return np.array(table[keys[int(rng.integers(len(keys)))]], dtype=np.float64)


def paper_style(rng: np.random.Generator, height_range: tuple[float, float]) -> _Style:
    height = float(rng.uniform(*height_range))
    stroke = rng.choice(["thin", "normal", "normal", "thick"])
    level = {"thin": 0.75, "normal": 0.45, "thick": 0.3}[str(stroke)]
    extra = float(rng.uniform(0.01, 0.035) * height) if stroke == "thick" else 0.0
    chalk = bool(rng.random() < 0.2)
    if chalk:
        paper, ink = pick(rng, _BOARDS), pick(rng, _CHALKS)
        grain = float(rng.uniform(0.1, 0.45))
    else:
        paper, ink = pick(rng, PAPERS), pick(rng, INKS)
        pencil = np.ptp(ink) < 0.05 and ink[0] > 0.2  # grey, not black
        grain = float(rng.uniform(0.1, 0.3)) if pencil else 0.0
    # A white-balance tint shifts paper and ink alike, as a camera would.
    tint = 1 + rng.uniform(-0.08, 0.08, size=3)
    paper = np.clip(paper * tint + rng.uniform(-0.03, 0.03, size=3), 0, 1)
    ink = np.clip(ink * tint, 0, 1)
    return _Style(
        height=height,
        level=level,
        extra=extra,
        chalk=chalk,
        paper=paper,
        ink=ink,
        opacity=float(rng.uniform(0.8, 1.0)),
        grain=grain,
        blur=float(rng.uniform(0, 0.015) * height),
        noise=float(rng.uniform(0, 0.05)),
        jpeg=int(rng.integers(25, 90)) if rng.random() < 0.4 else 0,
    )


def digit_coverage(digit: np.ndarray, style: _Style, rng: np.random.Generator, max_angle: float) -> np.ndarray:
    """Ink coverage in [0, 1] of one MNIST digit, scaled, re-stroked and rotated."""
    from scipy import ndimage

    height = style.height * rng.uniform(0.92, 1.08)
    factor = height / _MNIST_DIGIT
    size = max(28, round(28 * factor))
    upscaled = Image.fromarray(digit.astype(np.float32) / 255, "F").resize((size, size), Image.Resampling.BICUBIC)
    grey = np.asarray(upscaled, dtype=np.float64)
    # A pen stroke has a crisp edge: threshold the smooth upscale and give
    # the edge one pixel of anti-aliasing with a distance transform. Dividing
    # by the local maximum first makes every stroke peak at 1, so a high
    # threshold thins all strokes alike instead of erasing MNIST's fainter
    # ones (which would change the digit). `extra` widens thick pens further.
    local_peak = ndimage.maximum_filter(grey, size=max(3, round(3 * factor)))
    relative = grey / np.maximum(local_peak, 0.15)
    inside = relative > style.level
    if not inside.any():
        inside = grey >= grey.max() * 0.9
    outside_distance = ndimage.distance_transform_edt(~inside)
    inside_distance = ndimage.distance_transform_edt(inside)
    signed = np.where(inside, inside_distance - 0.5, 0.5 - outside_distance) + style.extra
    pad = int(np.ceil(style.extra)) + 2
    coverage = np.clip(np.pad(signed, pad, constant_values=-pad) + 0.5, 0, 1)
    angle = float(rng.uniform(-max_angle, max_angle))
    rotated = Image.fromarray(coverage.astype(np.float32), "F").rotate(angle, Image.Resampling.BICUBIC, expand=True)
    coverage = np.clip(np.asarray(rotated, dtype=np.float64), 0, 1)
    rows = np.flatnonzero((coverage > 0.02).any(axis=1))
    cols = np.flatnonzero((coverage > 0.02).any(axis=0))
    return coverage[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Low-frequency noise with unit standard deviation (paper texture, chalk).

    Wide noise is drawn on a coarser grid and enlarged: the same look for a
    fraction of the filtering cost.
    """
    from scipy import ndimage

    step = max(1, int(sigma // 3))
    coarse = (max(2, -(-shape[0] // step)), max(2, -(-shape[1] // step)))
    field = ndimage.gaussian_filter(rng.normal(size=coarse).astype(np.float32), sigma / step, truncate=3)
    if step > 1:
        enlarged = Image.fromarray(field, "F").resize((coarse[1] * step, coarse[0] * step), Image.Resampling.BICUBIC)
        field = np.asarray(enlarged, dtype=np.float32)[: shape[0], : shape[1]]
    return field / max(float(field.std()), 1e-9)


def lighting(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A multiplicative light field: gradient, vignette and maybe a shadow edge."""
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    yy, xx = yy / max(height - 1, 1) - 0.5, xx / max(width - 1, 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    along = np.cos(angle) * xx + np.sin(angle) * yy  # in about [-0.7, 0.7]
    light = 1 - rng.uniform(0, 0.45) * (along + 0.7) / 1.4
    cy, cx = rng.uniform(-0.5, 0.5, size=2)
    light *= 1 - rng.uniform(0, 0.3) * np.clip(((yy - cy) ** 2 + (xx - cx) ** 2) / 0.5, 0, 1)
    if rng.random() < 0.25:
        # A soft shadow (a hand, a phone) across part of the page.
        shadow_angle = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(-0.3, 0.3)
        across = np.cos(shadow_angle) * xx + np.sin(shadow_angle) * yy - offset
        softness = rng.uniform(0.03, 0.15)
        light *= 1 - rng.uniform(0.15, 0.35) / (1 + np.exp(-across / softness))
    return light


def render(
    glyphs: list[np.ndarray], offsets: list[tuple[int, int]], shape: tuple[int, int], style: _Style, rng
) -> Image.Image:
    """Paint glyph coverages at offsets on paper, light it, blur, add noise, maybe JPEG."""
    from scipy import ndimage

    height, width = shape
    coverage = np.zeros(shape, dtype=np.float32)
    for glyph, (top, left) in zip(glyphs, offsets, strict=False):
        gh, gw = glyph.shape
        region = coverage[top : top + gh, left : left + gw]
        np.maximum(region, glyph, out=region)
    if style.grain:
        # Chalk and pencil leave the paper showing through the stroke.
        breakup = smooth_noise(rng, shape, max(0.8, style.height / 60))
        coverage *= np.clip(1 - style.grain * (0.6 + 0.6 * breakup), 0, 1)
    coverage *= style.opacity
    texture = 0.025 * smooth_noise(rng, shape, max(height, width) / 25)
    texture += 0.012 * rng.standard_normal(size=shape, dtype=np.float32)
    paper = style.paper.astype(np.float32)[None, None, :] * (1 + texture[..., None])
    picture = paper * (1 - coverage[..., None]) + style.ink.astype(np.float32)[None, None, :] * coverage[..., None]
    picture *= lighting(rng, shape).astype(np.float32)[..., None]
    if style.blur > 0.3:
        picture = ndimage.gaussian_filter(picture, (style.blur, style.blur, 0), truncate=3)
    picture += style.noise * rng.standard_normal(size=picture.shape, dtype=np.float32)
    image = to_image(picture)
    if style.jpeg:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=style.jpeg)
        data = buffer.getvalue()
        image = Image.open(io.BytesIO(data))
        image.load()
        # The exact bytes, so write_set saves what the caller saw.
        image.info["digits_jpeg"] = data
    return image


def to_image(pixels: np.ndarray) -> Image.Image:
    """An RGB picture from (H, W, 3) floats, clipped to [0, 1]."""
    return Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8), "RGB")


def check_digits(x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim != 3 or x.shape[1:] != SHAPE or len(x) != len(y) or len(x) == 0:
        raise ValueError("x must be (N, 28, 28) MNIST images with N labels in y.")


# A seed: one number, or several (a run's seed and a chunk's number) for independent streams.
Seed = int | tuple[int, ...]


def random_stream(seed: Seed, purpose: int) -> np.random.Generator:
    """The random stream for one purpose (singles, lines, junk...) of a seed."""
    return np.random.default_rng([*np.atleast_1d(seed).tolist(), purpose])


def _indices(rng: np.random.Generator, total: int, n: int) -> np.ndarray:
    return rng.choice(total, size=n, replace=n > total)


def any_pen(rng: np.random.Generator) -> _Style:
    """The realistic set's mix of papers, inks, chalk and light, for a digit 28-180 px tall."""
    return paper_style(rng, (28, 180))


def make_singles(
    x, y, n: int, seed: Seed, pen: Callable[[np.random.Generator], _Style] = any_pen
) -> list[tuple[Image.Image, int]]:
    """`n` photo-like images of one MNIST digit of (x, y) each, with their labels; each drawn in a style `pen` draws."""
    x, y = np.asarray(x), np.asarray(y)
    check_digits(x, y)
    rng = random_stream(seed, 1)
    samples = []
    for index in _indices(rng, len(x), n):
        style = pen(rng)
        glyph = digit_coverage(x[index], style, rng, max_angle=12)
        gh, gw = glyph.shape
        # A canvas between about 1.5× and 4× the digit, never huge.
        margin = rng.uniform(0.25, 1.5, size=4) * style.height
        top, bottom, left, right = (int(m) + 2 for m in margin)
        shape = (gh + top + bottom, gw + left + right)
        if max(shape) > MAX_CANVAS:
            shrink = (MAX_CANVAS - max(gh, gw)) / (max(shape) - max(gh, gw))
            top, bottom, left, right = (max(2, int(m * shrink)) for m in (top, bottom, left, right))
            shape = (gh + top + bottom, gw + left + right)
        image = render([glyph], [(top, left)], shape, style, rng)
        image.info["mnist_index"] = int(index)  # provenance, recorded by write_set
        samples.append((image, int(y[index])))
    return samples


def make_lines(x, y, n: int, seed: Seed, touching: bool = False) -> list[tuple[Image.Image, str]]:
    """`n` images of a written number of 2 to 5 MNIST digits of (x, y), with its text. With `touching`, two
    neighbouring digits of each number run into each other, by 4 to 12 % of the digits' height, as joined
    handwriting does: the same numbers, papers and pens as without."""
    x, y = np.asarray(x), np.asarray(y)
    check_digits(x, y)
    rng, joins = random_stream(seed, 2), random_stream(seed, 7)
    samples = []
    for _ in range(n):
        count = int(rng.integers(2, 6))
        indices = _indices(rng, len(x), count)
        style = paper_style(rng, (28, 110))
        glyphs = [digit_coverage(x[i], style, rng, max_angle=8) for i in indices]
        gaps = rng.uniform(0.15, 0.6, size=count - 1) * style.height
        # The join is drawn from a stream of its own, and the paper keeps its size (the number ends sooner on it):
        # the same numbers, papers and pens as without.
        paper_gaps = gaps.copy()
        if touching:
            gaps[joins.integers(count - 1)] = joins.uniform(-0.12, -0.04) * style.height - 2  # less 2 px added below
        jitter = rng.uniform(-0.08, 0.08, size=count) * style.height
        margin = rng.uniform(0.3, 1.2, size=4) * style.height
        line_height = max(g.shape[0] for g in glyphs)
        top0 = int(margin[0] + 0.1 * style.height) + 2
        offsets, left = [], int(margin[2]) + 2
        for k, glyph in enumerate(glyphs):
            # Centre each digit on the line, jittered up or down a little.
            top = top0 + int(round((line_height - glyph.shape[0]) / 2 + jitter[k]))
            offsets.append((max(0, top), left))
            left += glyph.shape[1] + (int(gaps[k]) + 2 if k < count - 1 else 0)
        shape = (
            max(t + g.shape[0] for (t, _), g in zip(offsets, glyphs, strict=False))
            + int(margin[1] + 0.1 * style.height)
            + 2,
            left
            + sum(int(apart) - int(joined) for apart, joined in zip(paper_gaps, gaps, strict=True))
            + int(margin[3])
            + 2,
        )
        text = "".join(str(int(y[i])) for i in indices)
        image = render(glyphs, offsets, shape, style, rng)
        image.info["mnist_index"] = [int(i) for i in indices]
        samples.append((image, text))
    return samples


def encoded(image: Image.Image) -> tuple[bytes, str]:
    """A rendered picture's file bytes and suffix: its very JPEG bytes when it was JPEG-compressed, else PNG."""
    data = image.info.get("digits_jpeg")
    if data is not None:
        return data, "jpg"
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), "png"


def write_set(out_dir, x_test, y_test, n_singles: int, n_lines: int, seed: int) -> Path:
    """Write a realistic set as image files plus `labels.json`; return its path.

    JPEG-compressed samples are saved as the very `.jpg` bytes they were
    made with, the others as `.png`, so reading the files back gives exactly
    the images `make_singles` and `make_lines` return.
    """
    from digits.atomic import write_bytes, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, list] = {"singles": [], "lines": []}
    batches = (
        ("singles", make_singles(x_test, y_test, n_singles, seed)),
        ("lines", make_lines(x_test, y_test, n_lines, seed)),
    )
    for kind, samples in batches:
        for number, (image, label) in enumerate(samples):
            data, suffix = encoded(image)
            name = f"{kind[:-1]}-{number:05d}.{suffix}"
            write_bytes(out / name, data)
            provenance = image.info["mnist_index"]
            entries[kind].append({"file": name, "label": label, "mnist_index": provenance})
    labels = out / "labels.json"
    write_json(labels, {"seed": seed, "source": "MNIST test set", **entries})
    return labels
