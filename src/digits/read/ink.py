"""Finding the writing: which pixels of a picture are ink.

Steps 2-5 of the pipeline, at analysis resolution:

  2. estimate the background (paper, its texture and uneven light, a hard
     shadow's edge once a first look has found the writing's strokes) and
     subtract it (`digits.read.paper`); a table showing round the sheet is
     left out, and a small crop cut at its ink gets a margin of its paper;
  3. detect polarity: dark ink on light paper, or light chalk on a dark board;
  4. threshold (`paper.threshold_ink`): Otsu's method (within safe bounds)
     finds the writing's size and stroke width, then an adaptive threshold at
     that scale keeps faint and bold strokes at their true width;
  5. drop what is not writing (`digits.read.pieces`): specks, and dark regions
     that are not strokes (a hard shadow, a desk or shirt beyond the paper, a blot).

It looks first at a reduced copy, at half its resolution where the writing
is bold (a photo only when read as one digit), and again, closer, where the
writing is small (`analyse`). Clean pictures (drawing apps, MNIST images, binarised
scans) skip steps 2-3. `analyse` returns the labelled ink as an `Analysis`;
`digits.read.layout` groups it into digits and lines, `digits.read.sheet`
finds the table round a sheet.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
from PIL import Image

from digits.read.geometry import component_boxes, typical_height
from digits.read.grey import WORK_MIN, grey_array, true_size, working_grey
from digits.read.levels import MIN_CONTRAST, clean_paper, ink_level, reduced
from digits.read.normalize import crop_to_ink, pieces_stroke_width, stroke_width
from digits.read.paper import (
    estimate_background,
    follow_hard_shadow,
    ink_signal,
    join_grain,
    threshold_ink,
    with_margin,
)
from digits.read.pieces import writing_pieces
from digits.read.sheet import Table, find_table, sheet_rim
from digits.spec import Box

# The first look at a picture is at this many pixels on its longer side; writing
# smaller than half of `_DIGIT_PIXELS` there gets a second look, cut out and scaled
# so that its digits are that tall (at most `_FINE_MAX` pixels on the longer side).
_COARSE = 512
_DIGIT_PIXELS = 40
_FINE_MAX = 2048
# ...and at most this many times the pixels of the picture itself: enlarging further adds no
# detail. Without it a 32×32 pattern of one-pixel rings was looked at in 2048×2048 (2 s, 300 MiB).
_FINE_MOST_ENLARGEMENT = 8
# A clean picture has no paper to flatten and no texture to smooth, so it needs
# less resolution than a photo (`WORK_MIN`): a small one is enlarged only until
# its shorter side has this many pixels. A 28×28 crop's digit is then about 4×
# the 20 px it ends at: enough for MNIST's anti-aliased edges and the pen-width
# check, at a quarter of the pixels. Measured against 256 px on 2,208 small
# crops (CVL's evaluation writers, USPS, Semeion, MNIST at 28 and 100 px): at
# 96 px 62 answers changed and 10 fewer were right; at 128, 43 changed and 4
# more were right; at 160, 33 and 1. No real picture of shared/ changed.
_CLEAN_LEAST = 128
# A reduced clean picture is looked at again at its own size (at most `_FINE_MAX`) when its strokes are this thin.
_THIN_STROKE = 2.0
# A picture the first look sees in `_COARSE` px is read at half that, in `WORK_MIN` (the least a photo
# needs), at a quarter of the pixels, where its writing is bold enough to lose nothing there: strokes
# over this many pixels wide (a marker digit 30 px thick in a 600 px crop), and on a clean picture ink
# that is no flat ground (`_on_flat_ground`). A photo's strokes are measured wider than its pen (blur,
# and the smoothing its threshold applies), so its bar is twice a clean picture's, and its digits must
# be `_BOLD_PHOTO_HEIGHT` px tall there (80 px at `_COARSE`, where 20 need no closer look). With the photo's bar
# at 4 px a photo of a rocket and a generated scribble read as 1s; at 8 px no real picture's answer
# changed, and one of 800 generated CVL singles more was read right (time: docs/benchmarks.md). A clean
# picture gets this look whether it holds one digit or a page; a photo only from `analyse(one_digit=True)`
# (`pipeline.prepare`): on 850 generated phone photos of one digit read as pages, the look read 4 right that
# were not and lost 8 (bold digits the model doubted at either size, which a page's steadiness test refused).
_BOLD_STROKE = 4.0
_BOLD_PHOTO_STROKE = 8.0
_BOLD_PHOTO_HEIGHT = 40
# A photo's whole look at half size is time lost where its writing is not bold: it is taken only when its
# first pass there finds strokes over this many px wide and writing at least this many px tall. Every photo
# the whole look took (11 real singles, 89 of 99 generated phone photos, 9 of 26 photographed CVL digits, one
# real junk picture) showed strokes of 7.2 px and more in the first pass, 61 px tall and more.
_MAY_BE_BOLD_STROKE = 6.0
_MAY_BE_BOLD_HEIGHT = 30
# On a clean picture ink is strokes. When most of what differs from its one level is solid (dropped as blobs,
# or filling this share of a box this share of the picture's shorter side both ways, as no stroke is), the level
# was an even ground round the paper: a note on a flat desk. A broad brush's 1 fills its box too (11 % of a pad).
_SOLID_FILL = 0.9
_SOLID_EXTENT = 0.25


@dataclass
class Analysis:
    """Working-resolution results shared by `prepare` and `segment_page`."""

    grey: np.ndarray  # step 1
    background: np.ndarray  # step 2: estimated paper/board brightness
    ink: np.ndarray  # steps 2-3: flattened, ink positive, 1.0 = typical ink
    mask: np.ndarray  # step 4: thresholded ink
    labels: np.ndarray  # step 5: connected components kept (0 = none)
    areas: np.ndarray  # pixel count of each label (index 0 unused)
    scale: tuple[float, float]  # working pixels per original pixel (x, y)
    origin: tuple[float, float]  # where working pixel (0, 0) is, in original pixels (x, y)
    contrast: float  # typical ink-minus-paper difference, in grey units
    dark_ink: bool
    picture: Box | None = None  # where the picture lies in working pixels, when a margin was added round it

    @property
    def edges(self) -> Box:
        """The picture's edges in working pixels: the whole array, or within the margin added round it."""
        return self.picture or (0, 0, self.labels.shape[1], self.labels.shape[0])

    @cached_property
    def boxes(self) -> dict[int, Box]:
        """Box of every component still kept, by label (found once, used by every line)."""
        return _kept_boxes(self.labels, self.areas)


def _kept_boxes(labels: np.ndarray, areas: np.ndarray) -> dict[int, Box]:
    count = len(areas) - 1
    return {
        i: b
        for i, b in zip(range(1, count + 1), component_boxes(labels, count), strict=False)
        if b is not None and areas[i] > 0
    }


def analyse(image: Image.Image, one_digit: bool = False) -> Analysis:
    """Steps 2-5 at the resolution the writing needs.

    A first look at a reduced copy (`_COARSE` pixels on the longer side) finds the writing and how tall
    it is. Most pictures hold digits large enough to read there; bold ones are read in half as many
    pixels on a side (`_bold_look`), where they lose nothing: in a photo only when it holds `one_digit`
    (a page's lines are held to more tests, which a bold digit the model doubts passed less often there).
    Small writing on a big page (a phone number on a sheet) is looked at again, cut out of the picture
    at a scale where its digits are `_DIGIT_PIXELS` tall. How much a small picture is enlarged depends on what it needs: a clean one
    little (`_CLEAN_LEAST`), a photo crop up to `WORK_MIN`. A big clean one whose strokes come out
    `_THIN_STROKE` px or thinner is looked at again at its own size; one whose ink is mostly solid
    (`_on_flat_ground`: a note on an even desk) is a photo.
    """
    grey, scale = working_grey(image, _COARSE, shortest_side=_CLEAN_LEAST)
    paper = clean_paper(grey)
    if paper is not None and (bold := _bold_look(grey, scale, table=None)) is not None:
        return bold
    if paper is not None and not _on_flat_ground(clean := _analyse_clean(grey, scale, paper)):
        if min(scale) < 1 and clean.mask.any() and _stroke_of(clean.mask) <= _THIN_STROKE:
            # A thin pen on a big canvas, reduced, breaks into pieces (a 3 px 7 on 800 px read as three 1s).
            grey, scale = working_grey(image, _FINE_MAX, shortest_side=_CLEAN_LEAST)
            if (paper := clean_paper(grey)) is not None:
                return _analyse_clean(grey, scale, paper)
        return clean
    origin, picture = (0.0, 0.0), None
    small_crop = max(image.size) < WORK_MIN
    if small_crop:  # not clean after all: the photo path's filters and thresholds need WORK_MIN
        grey, scale = working_grey(image, _COARSE)
        grey, origin, picture = with_margin(grey, scale)
    table = find_table(grey)  # the same as on the half-size look's copy (`sheet.Table`): found once for both
    if one_digit and not small_crop and (bold := _bold_look(grey, scale, table)) is not None:
        return bold
    coarse = _analyse_grey(grey, scale, origin, picture, _first_pass(grey, picture, table))
    boxes = coarse.boxes
    if not boxes:
        return coarse
    height = typical_height(boxes, coarse.areas)
    if height >= _DIGIT_PIXELS / 2:
        return coarse
    zoom = _DIGIT_PIXELS / height  # how much finer the second look is
    x0 = min(b[0] for b in boxes.values()) - height
    y0 = min(b[1] for b in boxes.values()) - height
    x1 = max(b[2] for b in boxes.values()) + height
    y1 = max(b[3] for b in boxes.values()) + height
    (sx, sy), (ox, oy) = coarse.scale, coarse.origin
    true_width, true_height = true_size(image)
    region = (
        max(0.0, ox + x0 / sx),
        max(0.0, oy + y0 / sy),
        min(true_width, ox + x1 / sx),
        min(true_height, oy + y1 / sy),
    )
    if region[2] - region[0] < 1 or region[3] - region[1] < 1:  # only in the margin round a small crop
        return coarse
    size = (round((region[2] - region[0]) * sx * zoom), round((region[3] - region[1]) * sy * zoom))
    largest = min(_FINE_MAX, _FINE_MOST_ENLARGEMENT * max(region[2] - region[0], region[3] - region[1]))
    if max(size) > largest:
        longest = max(size)
        size = (max(1, round(size[0] * largest / longest)), max(1, round(size[1] * largest / longest)))
    # The decoded picture may be smaller than the true one (JPEG draft): cut in its pixels.
    fx, fy = image.size[0] / true_width, image.size[1] / true_height
    cut = image.crop((round(region[0] * fx), round(region[1] * fy), round(region[2] * fx), round(region[3] * fy)))
    grey = np.clip(grey_array(cut.resize(size, Image.Resampling.BICUBIC)), 0, 1).astype(np.float32)
    scale = (size[0] / (region[2] - region[0]), size[1] / (region[3] - region[1]))
    fine = _analyse_grey(grey, scale, origin=(region[0], region[1]))
    return fine if fine.areas.any() else coarse


def _bold_look(grey: np.ndarray, scale: tuple[float, float], table: Table | None) -> Analysis | None:
    """The picture looked at in `WORK_MIN` px where the first look's copy has `_COARSE` and its writing is
    bold there (`_BOLD_STROKE`), else None: the first look goes on as before. `table` is a photo's sheet
    (`find_table`), None for a clean picture; a photo is looked at whole there only when its first pass there
    shows bold writing (`_MAY_BE_BOLD_STROKE`)."""
    if max(grey.shape) < _COARSE:
        return None
    small, size = reduced(grey, WORK_MIN)
    small_scale = (scale[0] * size[0] / grey.shape[1], scale[1] * size[1] / grey.shape[0])
    if table is None:
        paper = clean_paper(small)
        if paper is None or _on_flat_ground(half := _analyse_clean(small, small_scale, paper)):
            return None
    else:
        start = _first_pass(small, None, table)
        if start.stroke <= _MAY_BE_BOLD_STROKE or _typical_height(start.look) < _MAY_BE_BOLD_HEIGHT:
            return None
        half = _analyse_grey(small, small_scale, (0.0, 0.0), None, start)
        if not half.boxes or typical_height(half.boxes, half.areas) < _BOLD_PHOTO_HEIGHT:
            return None
    bold_above = _BOLD_STROKE if table is None else _BOLD_PHOTO_STROKE
    return half if half.areas.any() and _stroke_of(half.labels > 0) > bold_above else None


def _stroke_of(mask: np.ndarray) -> float:
    """The stroke width of a mask's ink, measured on its box with a ring of paper: the same distances as the
    whole mask's, at a fraction of the cost."""
    return stroke_width(np.pad(crop_to_ink(mask), 1))


def _on_flat_ground(clean: Analysis) -> bool:
    """Whether a clean picture's one level is a ground round the paper, not paper (`_SOLID_FILL`): it takes the photo path."""
    inked = int(clean.mask.sum())
    solid = inked - int(clean.areas.sum())  # what `pieces.writing_pieces` dropped
    least = _SOLID_EXTENT * min(clean.mask.shape)
    for label, (x0, y0, x1, y1) in clean.boxes.items():
        if min(x1 - x0, y1 - y0) >= least and clean.areas[label] >= _SOLID_FILL * (x1 - x0) * (y1 - y0):
            solid += int(clean.areas[label])
    return 2 * solid > inked


def _analyse_clean(grey: np.ndarray, scale: tuple[float, float], paper: float) -> Analysis:
    """Steps 4-5 on a clean picture: ink is whatever differs from the paper by half the ink's contrast."""
    dark_ink = paper >= 0.5
    signal = (paper - grey) if dark_ink else (grey - paper)
    inked = signal[signal > MIN_CONTRAST / 2]
    contrast = ink_level(inked) if inked.size else 0.0
    if contrast < MIN_CONTRAST and (strong := inked[inked >= 2 * MIN_CONTRAST]).size:
        # A pale note round the writing set the ink's level under what ink can be: ink stands out beyond it.
        contrast = ink_level(strong)
    mask = signal > 0.5 * contrast if contrast >= MIN_CONTRAST else np.zeros(grey.shape, dtype=bool)
    labels, areas = writing_pieces(mask, drawn=True)
    return Analysis(
        grey=grey,
        background=np.full_like(grey, paper),
        ink=np.clip(signal / max(contrast, 1e-6), 0, 1).astype(np.float32),
        mask=mask,
        labels=labels,
        areas=areas,
        scale=scale,
        origin=(0.0, 0.0),
        contrast=contrast,
        dark_ink=dark_ink,
    )


class _Look(NamedTuple):
    """The first pass over a photo against one background (`_first_look`)."""

    signal: np.ndarray
    dark_ink: bool
    ink: np.ndarray
    mask: np.ndarray
    contrast: float
    labels: np.ndarray
    areas: np.ndarray


def _first_look(
    grey: np.ndarray, background: np.ndarray, outside: np.ndarray | None, picture: Box | None, rim: np.ndarray | None
) -> _Look:
    """Steps 3-5 against `background`, with light smoothing and a global threshold: enough to tell how tall the
    writing is and how wide its strokes are."""
    signal, dark_ink = ink_signal(grey, background, None if outside is None else ~outside)
    if outside is not None:
        signal[outside] = 0
    if picture is not None:  # the margin added round a small crop is paper, whatever its light looks like
        left, top, right, bottom = picture
        signal[:top], signal[bottom:], signal[:, :left], signal[:, right:] = 0, 0, 0, 0
    ink, mask, contrast = threshold_ink(signal, 0.7)
    return _Look(signal, dark_ink, ink, mask, contrast, *writing_pieces(mask, picture, rim, ink=ink))


class _Start(NamedTuple):
    """A photo's first pass (`_first_pass`): its paper, its first look, and the strokes' width in it."""

    background: np.ndarray
    look: _Look
    stroke: float
    outside: np.ndarray | None  # the table round the sheet, if any
    rim: np.ndarray | None  # the sheet's rim along it


def _first_pass(grey: np.ndarray, picture: Box | None, table: Table) -> _Start:
    # A photo of a sheet on a table: the table is neither paper nor ink. If
    # nothing is written on what looked like a sheet, it was not one.
    sheet = table.at(grey.shape)
    for outside in [sheet, None] if sheet is not None else [None]:
        background = estimate_background(grey, exclude=outside)
        # What lies along the sheet's edge, thicker than writing, is the rim's shade (`pieces.writing_pieces`):
        # here before the writing's strokes are known, so that it counts in neither their width nor
        # their height.
        rim = None if outside is None else sheet_rim(outside)
        look = _first_look(grey, background, outside, picture, rim)
        if look.areas.any():
            break
    return _Start(background, look, pieces_stroke_width(look.labels), outside, rim)


def _typical_height(look: _Look) -> float:
    """How tall a first look's writing typically is (0 where it found none)."""
    boxes = _kept_boxes(look.labels, look.areas)
    return typical_height(boxes, look.areas) if boxes else 0.0


def _analyse_grey(
    grey: np.ndarray,
    scale: tuple[float, float],
    origin: tuple[float, float],
    picture: Box | None = None,
    start: _Start | None = None,
) -> Analysis:
    """Steps 2-5 on a photo's `grey`, from its first pass (`start`, found here when not given: it must be
    `_first_pass(grey, picture, ...)`)."""
    if start is None:
        start = _first_pass(grey, picture, find_table(grey))
    background, look, stroke, outside, rim = start
    # A hard shadow's edge, which the smooth background cannot follow, leaves shaded paper looking like ink:
    # where there is one, look again with the background brought to the paper on both its sides. Not in a
    # small crop: the paper round it is a margin `with_margin` added, no border a shadow was cast from.
    followed = background if picture is not None else follow_hard_shadow(grey, background, stroke, outside)
    if followed is not background:
        background, look = followed, _first_look(grey, followed, outside, picture, rim)
        stroke = pieces_stroke_width(look.labels)
    signal, dark_ink, ink, mask, contrast, labels, areas = look

    # The first pass tells how tall the writing is and how wide its strokes
    # are. The second smooths in proportion (joining chalk grain, pencil
    # texture and JPEG blocks without eating thin strokes) and thresholds
    # adaptively at that stroke scale.
    rows = np.flatnonzero((labels > 0).any(axis=1))
    if rows.size:
        weights = (labels > 0).sum(axis=1)[rows]
        cumulative = np.cumsum(weights) / weights.sum()
        low, high = rows[np.searchsorted(cumulative, 0.02)], rows[np.searchsorted(cumulative, 0.98)]
        sigma = float(np.clip(min(0.025 * (high - low + 1), 0.3 * stroke), 0.7, 12))
        lightly_smoothed = ink  # edges are measured on it: the second pass's smoothing softens them
        ink, mask, contrast = threshold_ink(signal, sigma, stroke=max(stroke, 2.0))
        labels, areas = writing_pieces(mask, picture, rim, max(stroke, 2.0), lightly_smoothed)
        if not dark_ink:
            labels, areas = join_grain(labels, stroke)
    return Analysis(
        grey=grey,
        background=background,
        ink=np.clip(ink, 0, 1).astype(np.float32),
        mask=mask,
        labels=labels,
        areas=areas,
        scale=scale,
        origin=origin,
        contrast=contrast,
        dark_ink=dark_ink,
        picture=picture,
    )
