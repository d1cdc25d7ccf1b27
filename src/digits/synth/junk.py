"""Pictures with no digit in them, photographed like the realistic set, seeded and reproducible.

A reader must say "no digit found" for a photo of blank paper, a grid, a
letter or a scribble instead of naming a digit. This module makes such
pictures, for two uses:

  * training negatives: `digits.train.reader_data.negatives` runs junk pictures
    through the very preprocessing a photo goes through and keeps the 28×28
    images the model would see, to be learnt as the "not a digit" class (label 10);
  * a junk test set for benchmarks and tests: `make_junk` and `write_junk`.

Kinds of junk (`KINDS`): blank paper, specks, a straight stroke (horizontal
or steeply diagonal, never near vertical: a vertical stroke *is* a 1), a grid,
letters that look like no digit (from a font and drawn as pen strokes, so
nothing depends on fonts being installed), hatching, a smudge, a texture of
short marks, and a crossed-out scribble. Each is painted as ink coverage and
then photographed by `digits.synth.photograph` (paper and ink colours, uneven light,
blur, sensor noise, JPEG), the same camera the realistic digits go through.

Everything is drawn from one `numpy.random.Generator` seeded by the caller,
in a fixed order, so on one machine the same seed gives byte-identical
pictures. Font glyphs come from Debian's DejaVu when it is installed and from
Pillow's built-in font otherwise, so letters drawn from fonts can differ
between machines with different fonts; the stroke letters never do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digits.synth import photograph

__all__ = ["HELD_OUT_SEED", "KINDS", "LETTERS", "draw_strokes", "make_junk", "write_junk"]

# The junk set evaluations measure: `make_junk(n, HELD_OUT_SEED)`. Training
# negatives come from another random stream, so none of these is ever trained on.
HELD_OUT_SEED = 123

KINDS = ("blank", "specks", "stroke", "grid", "font letter", "pen letter", "hatching", "smudge", "texture", "scribble")

# Letters whose shapes no digit shares. Left out on purpose: O o D Q (0),
# l I i | (1), Z z (2), S s (5), b G (6), T (7), B (8), g q a (9), and
# anything else a careless hand turns into a digit.
LETTERS = "KWXMAHNVYREFkwxmh&"

# Each letter as pen strokes: polylines in a unit box, x to the right and y
# down, the way a hand draws it. Letters missing here are drawn from a font only.
_PEN_LETTERS: dict[str, list[list[tuple[float, float]]]] = {
    "K": [[(0.15, 0), (0.15, 1)], [(0.85, 0), (0.15, 0.55)], [(0.35, 0.4), (0.9, 1)]],
    "W": [[(0, 0), (0.22, 1), (0.5, 0.3), (0.78, 1), (1, 0)]],
    "X": [[(0.05, 0), (0.95, 1)], [(0.95, 0), (0.05, 1)]],
    "M": [[(0.05, 1), (0.1, 0), (0.5, 0.65), (0.9, 0), (0.95, 1)]],
    "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.22, 0.6), (0.78, 0.6)]],
    "H": [[(0.1, 0), (0.1, 1)], [(0.9, 0), (0.9, 1)], [(0.1, 0.5), (0.9, 0.5)]],
    "N": [[(0.1, 1), (0.1, 0), (0.9, 1), (0.9, 0)]],
    "V": [[(0, 0), (0.5, 1), (1, 0)]],
    "R": [
        [(0.15, 1), (0.15, 0), (0.7, 0.02), (0.85, 0.15), (0.85, 0.35), (0.7, 0.48), (0.15, 0.5)],
        [(0.45, 0.5), (0.9, 1)],
    ],
    "E": [[(0.85, 0), (0.15, 0), (0.15, 1), (0.85, 1)], [(0.15, 0.5), (0.7, 0.5)]],
    "F": [[(0.85, 0), (0.15, 0), (0.15, 1)], [(0.15, 0.48), (0.7, 0.48)]],
    "k": [[(0.2, 0), (0.2, 1)], [(0.8, 0.4), (0.2, 0.75)], [(0.4, 0.65), (0.85, 1)]],
    "w": [[(0, 0.4), (0.22, 1), (0.5, 0.55), (0.78, 1), (1, 0.4)]],
    "x": [[(0.1, 0.4), (0.9, 1)], [(0.9, 0.4), (0.1, 1)]],
    "m": [
        [(0.05, 1), (0.05, 0.4)],
        [(0.05, 0.55), (0.25, 0.4), (0.45, 0.5), (0.5, 1)],
        [(0.5, 0.55), (0.7, 0.4), (0.9, 0.5), (0.95, 1)],
    ],
    "h": [[(0.2, 0), (0.2, 1)], [(0.2, 0.6), (0.45, 0.42), (0.75, 0.45), (0.8, 0.6), (0.8, 1)]],
}

_DEJAVU = "/usr/share/fonts/truetype/dejavu"
_FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSans-Oblique.ttf")
_SUPERSAMPLE = 4  # strokes are drawn this much larger, then area-averaged: anti-aliased edges


def _fonts() -> list[str | None]:
    """Font files to draw letters with; None stands for Pillow's built-in font."""
    found: list[str | None] = [str(Path(_DEJAVU, name)) for name in _FONT_FILES if Path(_DEJAVU, name).is_file()]
    return found or [None]


def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def draw_strokes(shape: tuple[int, int], polylines, width: float) -> np.ndarray:
    """Ink coverage in [0, 1] of pen strokes: polylines in pixel coordinates (x, y), round tips."""
    height, width_px = shape
    canvas = Image.new("L", (width_px * _SUPERSAMPLE, height * _SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    pen = max(1, round(width * _SUPERSAMPLE))
    for line in polylines:
        points = [(x * _SUPERSAMPLE, y * _SUPERSAMPLE) for x, y in line]
        draw.line(points, fill=255, width=pen, joint="curve")
        for x, y in (points[0], points[-1]):  # round pen tips
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=255)
    small = canvas.resize((width_px, height), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255


def _pen_width(rng: np.random.Generator, size: float) -> float:
    """From a fine pen to a marker, relative to the drawing's size, at least one pixel."""
    return max(1.0, float(rng.uniform(0.03, 0.14)) * size)


def _jitter(rng: np.random.Generator, polyline, amount: float):
    """A hand's wobble: every point moved a little."""
    return [(x + rng.normal(0, amount), y + rng.normal(0, amount)) for x, y in polyline]


def _blank(rng, size: int) -> np.ndarray:
    return np.zeros((size, size))


def _specks(rng, size: int) -> np.ndarray:
    count = int(rng.integers(1, 12))
    centres = rng.uniform(0, size, size=(count, 2))
    radii = rng.uniform(0.3, 1.2, size=count) * max(1.0, size / 60)
    return draw_strokes((size, size), [[(x, y), (x + 0.01, y)] for x, y in centres], float(np.mean(radii)) * 2)


def _stroke(rng, size: int) -> np.ndarray:
    # Angles from horizontal: flat, or a steep-ish diagonal; never within
    # 40 degrees of vertical, where a stroke is a perfectly good 1.
    angle = np.radians(rng.uniform(-20, 20) if rng.random() < 0.6 else rng.choice([-1, 1]) * rng.uniform(25, 50))
    length = rng.uniform(0.6, 0.95) * size
    cx, cy = size / 2 + rng.normal(0, size * 0.05, size=2)
    dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    line = [(cx - dx + t * 2 * dx, cy - dy + t * 2 * dy) for t in np.linspace(0, 1, 6)]
    return draw_strokes((size, size), [_jitter(rng, line, size * 0.005)], _pen_width(rng, size * 0.5))


def _grid(rng, size: int) -> np.ndarray:
    rows, cols = int(rng.integers(2, 7)), int(rng.integers(2, 7))
    lines = [[(0, y), (size, y)] for y in np.linspace(0, size, rows + 2)[1:-1]]
    lines += [[(x, 0), (x, size)] for x in np.linspace(0, size, cols + 2)[1:-1]]
    return draw_strokes(
        (size, size), [_jitter(rng, line, size * 0.004) for line in lines], _pen_width(rng, size * 0.25)
    )


def _font_letter(rng, size: int) -> np.ndarray:
    letter = LETTERS[int(rng.integers(len(LETTERS)))]
    fonts = _fonts()
    font = _font(fonts[int(rng.integers(len(fonts)))], max(8, int(size * 0.7)))
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), letter, font=font)
    draw.text(((size - (right - left)) / 2 - left, (size - (bottom - top)) / 2 - top), letter, fill=255, font=font)
    return np.asarray(canvas, dtype=np.float64) / 255


def _pen_letter(rng, size: int) -> np.ndarray:
    letter = sorted(_PEN_LETTERS)[int(rng.integers(len(_PEN_LETTERS)))]
    box_w, box_h = size * rng.uniform(0.5, 0.8), size * rng.uniform(0.6, 0.85)
    left, top = (size - box_w) / 2, (size - box_h) / 2
    slant = rng.uniform(-0.2, 0.2)
    lines = [
        _jitter(rng, [(left + (x + slant * (1 - y)) * box_w, top + y * box_h) for x, y in line], size * 0.01)
        for line in _PEN_LETTERS[letter]
    ]
    return draw_strokes((size, size), lines, _pen_width(rng, box_h * 0.6))


def _hatching(rng, size: int) -> np.ndarray:
    angle = rng.uniform(0, np.pi)
    spacing = rng.uniform(0.06, 0.18) * size
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    centre = np.array([size / 2, size / 2])
    half = rng.uniform(0.3, 0.48) * size
    lines = []
    for offset in np.arange(-half, half, spacing):
        start, end = centre + offset * normal - half * direction, centre + offset * normal + half * direction
        lines.append(_jitter(rng, [tuple(start), tuple(end)], size * 0.005))
    return draw_strokes((size, size), lines, _pen_width(rng, size * 0.2))


def _smudge(rng, size: int) -> np.ndarray:
    from scipy import ndimage

    blob = np.zeros((size, size))
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0.3, 0.7, size=2) * size
        ry, rx = rng.uniform(0.08, 0.3, size=2) * size
        yy, xx = np.mgrid[0:size, 0:size]
        blob = np.maximum(blob, (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1).astype(np.float64))
    soft = ndimage.gaussian_filter(blob, rng.uniform(0.03, 0.1) * size)
    return soft / max(float(soft.max()), 1e-9) * rng.uniform(0.25, 0.7)


def _texture(rng, size: int) -> np.ndarray:
    count = int(rng.integers(15, 60))
    starts = rng.uniform(0, size, size=(count, 2))
    angles = rng.uniform(0, 2 * np.pi, size=count)
    lengths = rng.uniform(0.02, 0.08, size=count) * size
    lines = [
        [(x, y), (x + np.cos(a) * n, y + np.sin(a) * n)] for (x, y), a, n in zip(starts, angles, lengths, strict=False)
    ]
    return draw_strokes((size, size), lines, _pen_width(rng, size * 0.15))


def _scribble(rng, size: int) -> np.ndarray:
    # Crossing something out: a dense zig-zag, back and forth across an area.
    turns = int(rng.integers(6, 16))
    angle = rng.uniform(-0.4, 0.4)
    width, height = rng.uniform(0.5, 0.9) * size, rng.uniform(0.25, 0.7) * size
    xs = np.where(np.arange(turns) % 2 == 0, -0.5, 0.5) * width + rng.normal(0, 0.05 * width, turns)
    ys = np.linspace(-0.5, 0.5, turns) * height
    cos, sin = np.cos(angle), np.sin(angle)
    line = [(size / 2 + cos * x - sin * y, size / 2 + sin * x + cos * y) for x, y in zip(xs, ys, strict=False)]
    return draw_strokes((size, size), [line], _pen_width(rng, size * 0.25))


_MAKERS = {
    "blank": _blank,
    "specks": _specks,
    "stroke": _stroke,
    "grid": _grid,
    "font letter": _font_letter,
    "pen letter": _pen_letter,
    "hatching": _hatching,
    "smudge": _smudge,
    "texture": _texture,
    "scribble": _scribble,
}
assert tuple(_MAKERS) == KINDS


def _picture(rng: np.random.Generator, kind: str) -> Image.Image:
    """One junk picture of `kind`: its ink drawn at a digit's size, then photographed."""
    style = photograph.paper_style(rng, (28, 180))
    size = max(8, int(round(style.height * rng.uniform(0.9, 1.3))))
    coverage = _MAKERS[kind](rng, size).astype(np.float32)
    margin = rng.uniform(0.25, 1.5, size=4) * style.height
    top, bottom, left, right = (int(m) + 2 for m in margin)
    shape = (min(photograph.MAX_CANVAS, size + top + bottom), min(photograph.MAX_CANVAS, size + left + right))
    return photograph.render([coverage], [(top, left)], shape, style, rng)


def make_junk(n: int, seed: photograph.Seed) -> list[tuple[Image.Image, str]]:
    """`n` photo-like pictures without a digit, each with its kind, the kinds in turn."""
    rng = photograph.random_stream(seed, 3)
    return [(_picture(rng, KINDS[i % len(KINDS)]), KINDS[i % len(KINDS)]) for i in range(n)]


def write_junk(out_dir, n: int, seed: int) -> Path:
    """Write a junk set as image files plus `labels.json` (file and kind); return its path.

    JPEG-compressed pictures are saved as the very `.jpg` bytes they were
    made with, the others as `.png`, so the files read back as `make_junk` made them.
    """
    from digits.atomic import write_bytes, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for number, (image, kind) in enumerate(make_junk(n, seed)):
        data, suffix = photograph.encoded(image)
        name = f"junk-{number:05d}.{suffix}"
        write_bytes(out / name, data)
        entries.append({"file": name, "kind": kind})
    labels = out / "labels.json"
    write_json(labels, {"seed": seed, "junk": entries})
    return labels
