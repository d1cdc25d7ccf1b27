"""Turn any image of a handwritten digit into MNIST's own format.

A network trained on MNIST has only ever seen white digits on a black 28×28
canvas, scaled to fit a 20×20 box and centred on their centre of mass. A photo
of ink on paper, resized the naive way, looks nothing like that, and the model
answers almost at random. This module rebuilds MNIST's format from a real
image, in the order MNIST itself was made:

  1. convert to grey (alpha over white, 16-bit scaled, palette expanded);
  2-5. find the writing (`ink`): flatten the paper's light, detect the
     ink's polarity, threshold at the writing's own stroke width, and drop
     specks, shadows and whatever else is not a stroke;
  6. crop the digit's bounding box (hairline or marker strokes are brought
     into the range of pen widths MNIST has);
  7. scale the longer side to 20 px keeping the aspect ratio, anti-aliased;
  8. paste into 28×28 so that the centre of mass lands on the centre.

`prepare` does this for one digit and `segment_page` for every line of
digits on a page (the pieces of one broken digit are merged). The steps
live in their own modules: `load` (loading, step 1), `ink` (finding the
ink, steps 2-5, with `paper` for the paper's light and `rules` for frames
and ruled lines), `layout` (which pieces make a digit, a line) and
`normalize` (one digit to MNIST's format, steps 6-8).
A picture already in MNIST's format, white on black or black on white, is
returned as it is (inverted in the second case).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial, reduce

import numpy as np
from PIL import Image

from digits.errors import ImageError
from digits.read.faint_rules import drop_faint_rules
from digits.read.geometry import ink_box, pixels_of, scribbled, union
from digits.read.grey import grey_array, has_alpha, true_size
from digits.read.ink import Analysis, analyse
from digits.read.layout import find_lines, group_line
from digits.read.levels import median
from digits.read.load import load_image
from digits.read.normalize import crop_to_ink, level, line_tilt, naive, to_mnist
from digits.read.pick import pick_digit
from digits.read.rules import cut_frames, drop_rules
from digits.read.touching import wide
from digits.read.walls import drop_walls
from digits.spec import SIZE, Box

__all__ = [
    "ImageError",
    "Prepared",
    "Segment",
    "Segmented",
    "load_image",
    "naive",
    "prepare",
    "ready_for_model",
    "segment_page",
]


# An image already in MNIST's format: its ink's longer side spans this many pixels
# (MNIST fits digits in 20 px; anti-aliased edges add one or two), and its centre of
# mass lies within this many pixels of the middle.
_MNIST_EXTENT = (16, 22)
_MNIST_CENTRE_SLACK = 2.0
# ...on a background this close to black (its median grey level, 0 to 1).
_MNIST_PAPER = 0.05


# Of the ink picked as a picture's one digit, dropping the rules must leave this share (a digit on ruled
# paper kept a third or more; a lone stroke taken for a rule left 2-4 %).
_LEAST_LEFT = 0.25
# A page ruled for writing: so many lines dropped across it (a lone stroke is one).
_RULED_LINES = 3
# Each pixel's row and column, as a (2, 784) matrix: the centre of mass of a 28×28 image is one product.
_PIXEL_CENTRES = np.indices((SIZE, SIZE)).reshape(2, -1).astype(np.float64)


@dataclass
class Prepared:
    """One image made MNIST-like, with the intermediate steps for --explain."""

    image: np.ndarray  # (28, 28) float32 in [0, 1], white digit on black
    has_ink: bool  # False when no digit-like ink was found
    box: Box | None = None  # where the digit is, in the picture's pixels
    steps: list[tuple[str, np.ndarray]] = field(default_factory=list)
    # Ink too dense with strokes to be one digit (`geometry.scribbled`: a signature, hatching): the reader gives
    # no digit without asking the model, which read a signature squeezed into 28×28 as a 4. Training keeps it.
    scribbled: bool = False

    @property
    def readable(self) -> bool:
        """Whether the model is asked: there is ink, and it could be one digit."""
        return self.has_ink and not self.scribbled


def ready_for_model(image: Image.Image, explain: bool = False) -> Prepared | None:
    """The picture as the model takes it when it is already in MNIST's format (`prepare` gives it back
    as it is), its one step only with `explain`; else None. Costs a few checks on 784 pixels, never the analysis."""
    if not (ready := _already_mnist(image)):
        return None
    if not explain:
        ready[0].steps = []
    return ready[0]


def prepare(image: Image.Image, explain: bool = True) -> Prepared:
    """Run the eight-step pipeline on an image holding ONE digit; with `explain`, keep every step's image
    (full-size arrays, for --explain), else none."""
    if (ready := ready_for_model(image, explain)) is not None:
        return ready
    source, digit = _one_digit(*_without_rules(image, one_digit=True))
    return _prepare_from(image, source, digit, explain=explain)


def _without_rules(image: Image.Image, one_digit: bool = False) -> tuple[Analysis, Analysis]:
    """The picture's analysis (`ink.analyse`, told whether it holds `one_digit`) without its frames (`rules.cut_frames`),
    and that without its rules too (`rules.drop_rules`, then `faint_rules.drop_faint_rules`) and without the walls of
    cells they held up (`walls.drop_walls`)."""
    analysis = cut_frames(analyse(image, one_digit))
    return analysis, drop_walls(drop_faint_rules(drop_rules(analysis)))


def _one_digit(analysis: Analysis, ruled_out: Analysis) -> tuple[Analysis, np.ndarray]:
    """The analysis a picture's one digit is made from, and the digit: without the rules (a digit written
    across a ruled line is one piece with it), unless dropping them left crumbs of what was picked with them,
    less than `_LEAST_LEFT` of its ink: a lone straight stroke is no rule beside writing (a flat one lost
    its length, and the speck left read as a digit)."""
    digit = pick_digit(ruled_out)
    if np.array_equal(ruled_out.areas, analysis.areas):  # no rule was there: no pixel went
        return ruled_out, digit
    if _ruled_page(analysis.labels > 0, ruled_out.labels > 0):
        return ruled_out, digit
    whole = pick_digit(analysis)
    return (ruled_out, digit) if digit.sum() >= _LEAST_LEFT * whole.sum() else (analysis, whole)


def _ruled_page(before: np.ndarray, after: np.ndarray) -> bool:
    """Whether the rules dropped (ink `before` and not `after`) are a ruled page's: `_RULED_LINES` or more lines
    across half the picture or more, not a lone stroke. A ruled page's margin joins its lines into one piece,
    which was picked with the digit as its one digit; what dropping them left was less than `_LEAST_LEFT` of it,
    and the lines were put back: the page was refused as no digit (3 of 12 ruled singles read, 11 of 12 without
    the margin). Lines photographed aslant, none across half the picture in one row, are not counted."""
    from scipy import ndimage

    dropped = before & ~after
    # Each run of rows (or columns) dropped across half the picture is one line.
    return any(
        ndimage.label(along.sum(axis=1) >= 0.5 * along.shape[1])[1] >= _RULED_LINES for along in (dropped, dropped.T)
    )


def _prepare_from(image: Image.Image, analysis: Analysis, digit: np.ndarray, explain: bool) -> Prepared:
    """Steps 6-8 for an analysed picture's one digit (its mask); with `explain`, every step's image."""
    made = _whole_when_asked(digit, analysis, true_size(image))()
    if not explain:
        return made
    polarity = "dark ink on light" if analysis.dark_ink else "light ink on dark"
    steps = [
        ("1 grey", analysis.grey),
        ("2 background", analysis.background),
        (f"3 flattened ({polarity})", analysis.ink),
        ("4 threshold", analysis.mask.astype(np.float32)),
        ("5 cleaned", digit.astype(np.float32)),
        ("6 cropped", to_mnist(digit)[0]),  # normalized again for the picture of the steps only
        ("7-8 model input 28×28", made.image),
    ]
    return replace(made, steps=steps)


@dataclass
class Segment:
    """One piece of a line, a digit or what may be one: where it is, and its MNIST-style image."""

    box: Box  # x0, y0, x1, y1 in original image pixels
    image: np.ndarray  # (28, 28) float32, ready for the model
    level_size: tuple[float, float] | None = None  # width and height turned level, in original pixels; None: the box's
    scribbled: bool = False  # too dense with strokes to be one digit (`geometry.scribbled`): the model is not asked
    # The piece's ink in working pixels, spanning `box`, kept when it is as wide as two digits on a level line:
    # the reader may cut it (`touching`).
    mask: np.ndarray | None = None
    cuts: tuple[tuple[Segment, Segment], ...] = ()  # the ways to cut it that the reader tries (`touching.with_cuts`)


def _already_mnist(image: Image.Image) -> tuple[Prepared, Box] | None:
    """The picture itself and its digit's box, when it is already in MNIST's format; else None.

    That is 28×28, a white digit on black whose longer side spans about
    20 px and whose centre of mass is near the middle: an MNIST image, or a
    canvas that did the normalizing itself. The same in black on white (an
    MNIST image saved for print, a canvas exported without transparency) is
    taken inverted. The eight steps would give either back almost unchanged, at a
    hundred times the cost.
    """
    if image.size != (SIZE, SIZE) or has_alpha(image):
        return None
    grey = grey_array(image)
    paper = median(grey)
    if _MNIST_PAPER < paper <= 1 - _MNIST_PAPER:  # neither near black nor, inverted, near white
        return None
    inverted = paper > 1 - _MNIST_PAPER
    if inverted:
        grey = 1 - grey
    ink = grey > 0.5
    if not ink.any():
        return None
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not _MNIST_EXTENT[0] <= max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= _MNIST_EXTENT[1]:
        return None
    centre = _PIXEL_CENTRES @ grey.ravel() / grey.sum()
    if math.hypot(*(centre - (SIZE - 1) / 2)) > _MNIST_CENTRE_SLACK:
        return None
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    kind = "MNIST's format in black on white, inverted" if inverted else "already MNIST's format"
    return Prepared(image=grey, has_ink=True, box=box, steps=[(f"model input 28×28 ({kind})", grey)]), box


class Segmented:
    """A picture cut into lines of digits, and the same picture read as one digit.

    `whole` is what `prepare` gives, made from the same analysis as the lines
    and without --explain's steps (a picture already in MNIST's format is
    itself, as `prepare` returns it, and its one line is that digit): a page
    whose only number is one digit is checked against it. Only a photo's bold
    writing differs: `prepare` looks at it in half the pixels, a page does not
    (`ink.analyse`'s `one_digit`). It is made the first time it is asked for,
    from a function of no arguments given in its place: most pages never need
    it, and a texture's largest piece, normalized whole, cost a second
    (`normalize.to_mnist` at 2048 px). Two threads asking at once may both
    make it; they get equal results. A `Segmented` pickles, made or not.
    """

    def __init__(self, lines: list[list[Segment]], whole: Prepared | Callable[[], Prepared]) -> None:
        self.lines = lines  # top to bottom, each left to right
        self._whole = whole

    @property
    def whole(self) -> Prepared:
        """The picture read as one digit, made now if it was not yet."""
        if not isinstance(self._whole, Prepared):
            self._whole = self._whole()
        return self._whole

    @property
    def whole_made(self) -> bool:
        """Whether `whole` was made (by `segment_page`, where one of the pieces is it, or when asked for)."""
        return isinstance(self._whole, Prepared)

    def __repr__(self) -> str:
        return f"Segmented(lines={self.lines!r}, whole={self._whole!r})"


def segment_page(image: Image.Image) -> Segmented:
    """Find every line of digits, top to bottom, each a list of MNIST-style digits left to right, and the picture read whole.

    Ruled lines, table rules and the borders of a sheet are taken out first (`digits.read.rules`). A piece too
    dense with strokes to be one digit (a signature on a form) is marked so (`Segment.scribbled`).
    A picture already in MNIST's format whose ink is one piece is one digit, itself
    (two digits squeezed into 28×28 pass for MNIST's format, and are analysed).
    """
    if not isinstance(image, Image.Image):  # documented for batches of pictures: say what it takes
        raise TypeError(
            f"segment_page takes a Pillow image, as digits.read.load.load_image(picture) gives it, "
            f"not {type(image).__name__}."
        )
    ready = _already_mnist(image)
    if ready and _one_piece(ready[0].image):
        itself, box = ready
        return Segmented([[Segment(box, itself.image)]], itself)
    analysis, ruled_out = _without_rules(image)
    source, one_digit = _one_digit(analysis, ruled_out)
    size = true_size(image)
    # The picture read whole is made when a piece is it, or when the reader asks for it.
    segmented = Segmented([], _whole_when_asked(one_digit, source, size))
    sx, sy = ruled_out.scale
    one_digit_ink = int(one_digit.sum())
    for members in find_lines(ruled_out):
        groups = group_line(ruled_out, members)
        around = [reduce(union, (ruled_out.boxes[i] for i in group)) for group in groups]
        tilt = _tilt_of(around)
        line = []
        for group, (x0, y0, x1, y1) in zip(groups, around, strict=True):
            # Within the box round its pieces (their boxes are tight): a page of many pieces made each of them
            # a pass over every pixel, several times (a texture's 200 pieces: a fifth of its second).
            digit = pixels_of(ruled_out.labels[y0:y1, x0:x1], group)
            box = _in_original((x0, y0, x1, y1), ruled_out, size)
            if tilt:
                levelled = crop_to_ink(level(digit, tilt))
                height, width = levelled.shape
                segment = Segment(box, to_mnist(levelled)[1], (width / sx, height / sy), scribbled(digit))
            elif one_digit_ink and one_digit_ink == digit.sum() and np.array_equal(digit, one_digit[y0:y1, x0:x1]):
                # A picture of one digit (most small crops): its one piece is the digit made MNIST-like whole.
                segment = Segment(box, segmented.whole.image, scribbled=segmented.whole.scribbled)
            else:
                segment = Segment(box, to_mnist(digit)[1], scribbled=scribbled(digit))
            # A level line's piece only: its mask then spans its box, where the halves cut from it lie (`touching`).
            line.append(replace(segment, mask=digit) if not (tilt or segment.scribbled) and wide(digit) else segment)
        segmented.lines.append(line)
    # Read whole, a picture in MNIST's format is itself, as `prepare` gives it, even in pieces.
    return Segmented(segmented.lines, ready[0]) if ready else segmented


def _whole_when_asked(digit: np.ndarray, analysis: Analysis, size: tuple[int, int]) -> Callable[[], Prepared]:
    """What makes the picture read whole from its one digit (steps 6-8, as `prepare` makes it), when called. It
    holds the digit's ink cut to its box, a bit a pixel, not the analysis nor the picture: a batch's pages wait to
    be decided together (`Reader.decide_pages`), and a page's analysis at 2048 px is some 70 MB."""
    box = ink_box(digit)
    if box is None:
        return partial(Prepared, np.zeros((SIZE, SIZE), np.float32), False)
    x0, y0, x1, y1 = box
    ink = digit[y0:y1, x0:x1]
    return partial(_made_whole, np.packbits(ink), ink.shape, _in_original(box, analysis, size))


def _made_whole(packed: np.ndarray, shape: tuple[int, int], box: Box) -> Prepared:
    """The picture read whole from its digit's ink (`_whole_when_asked`)."""
    ink = np.unpackbits(packed, count=shape[0] * shape[1]).reshape(shape).astype(bool)
    return Prepared(image=to_mnist(ink)[1], has_ink=True, box=box, scribbled=scribbled(ink))


def _tilt_of(around: list[Box]) -> float:
    """How far to turn a line's digits (`normalize.line_tilt`), from the boxes round each digit's pieces."""
    centres = [((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in around]
    return line_tilt(centres, float(np.median([y1 - y0 for _, y0, _, y1 in around]))) if around else 0.0


def _one_piece(image: np.ndarray) -> bool:
    """Whether the ink (over half-white) of a 28×28 image is one 8-connected piece."""
    from scipy import ndimage

    return int(ndimage.label(image > 0.5, structure=np.ones((3, 3), dtype=bool))[1]) == 1


def _in_original(box: Box, analysis: Analysis, size: tuple[int, int]) -> Box:
    """A box of working pixels in the original picture's pixels (`size`)."""
    (sx, sy), (ox, oy) = analysis.scale, analysis.origin
    width, height = size
    return (
        max(0, int(np.floor(ox + box[0] / sx))),
        max(0, int(np.floor(oy + box[1] / sy))),
        min(width, int(np.ceil(ox + box[2] / sx))),
        min(height, int(np.ceil(oy + box[3] / sy))),
    )
