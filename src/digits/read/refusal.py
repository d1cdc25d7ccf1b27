"""When pieces of writing make a number, and when they do not.

`digits read` splits a picture into pieces and asks the model about each one.
A doodle, a signature, a line of print or a photo also splits into pieces,
and some of those look like digits on their own: a loop reads as 0, a stick
as 1. The reader (`Reader.read_page`) therefore accepts a line as a number
only when every test below holds, and refuses it otherwise:

  * `line_digits`: pieces at either end of the line less than half as tall
    as the digits beside them, and set apart from them, are not part of it
    (a printed label before a number written on a form, a speck); then no
    piece is unsure, no piece of full height is refused
    ("not a digit"), but for one doubt in a line of three digits or more (below);
    no piece is much wider than the line's digits are tall (a digit
    is taller than wide: 99.3 % of MNIST's test digits are less than 1.5
    times as wide as tall); a number of two digits or more has a mean
    confidence of at least `_MIN_MEAN_CONFIDENCE` (its one digit in doubt, if any,
    left out); three 1s or more, and
    nothing else, are not packed closer than digits are written (tally
    marks, hatching).
  * `steady`: each digit keeps its reading when its 28×28 image is nudged
    (shifted two pixels, turned 15°, scaled by a fifth, its stroke
    thickened or thinned). A real digit does; a piece of a doodle that only
    happens to look like one flips. Test-time perturbation, batched: one
    model call for the first eight copies of every digit, and one more for
    the last two of the digits those eight leave open. A digit read at
    `BEYOND_DOUBT` or more is not nudged.
  * `one_doubt_at_most`: in a line of three digits or more, one digit alone
    may be in doubt: read unsure, refused without the model being sure
    (`_SURE_NOT_A_DIGIT`; read as its likeliest digit, unsure), or flipping
    when nudged (marked unsure). A doodle's pieces that look like digits
    flip by several, and a real number of writers the model never saw was
    lost whole for one doubtful digit.

And a whole picture (`picture_refused`): when fewer than half of its lines
of writing pass `line_digits` on their own (steady or not), the rest
is not digits and the few numbers are parts of it (grass, a star field, a
photo); the picture gives none. A line level with a number that passed
every test, written less than half as tall, is not counted: a form's label
printed apart from its number, a line of its own, which outvoted the
numbers (on generated forms of four numbers with their labels and a title); nor does one whose numbers, on five lines or
more, are almost all 1s (`scattered_strokes`: a texture's grain, grass). A line that passes `line_digits` but not
`steady` counts toward the half: on generated pages, a page of three
numbers was lost whole for one digit that flipped when nudged in two of
them (seed 5: 2 of 140 pages; seeds 0 and 1 and the junk unchanged).

Once a picture holds numbers that pass every test (one doubtful digit in a
line of three or more included), it is a page of numbers,
and its other lines of two digits or more, unless they are written less than
half as tall as those numbers (`written_smaller`: a form's printed labels), need less: they pass `line_digits`
with unsure digits allowed (a mean confidence of 0.6 with every digit counted in; alone, 0.8 with its
one doubt left out), and need not be steady; their digits that flipped when nudged are marked unsure. A
piece of full height that the model refuses, but is not sure about
(`_SURE_NOT_A_DIGIT`), is read there as its likeliest digit, marked unsure.
On generated pages, a page's lines were dropped for one doubtful piece far
more often than a stray mark passed for a number (seeds 0 and 1: 22 more of
280 pages read exactly with unsure digits allowed, 19 more with the doubtful
refusals and the lower mean confidence). These lines count as lines of
writing, not as numbers, in `picture_refused`, so junk pictures are
unaffected: they are refused, or not, before these lines are added.

The constants were chosen on the real pictures in ../shared/data/real-digits
(numbers, pages and junk), kept round and general: no rule names a file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from digits.read.answers import Digit
from digits.read.geometry import height, width
from digits.read.turns import warped
from digits.spec import DIGITS, OK, UNSURE, Box, refused

# A line's digits must average this confidence (real numbers measured: 0.95 and up)...
_MIN_MEAN_CONFIDENCE = 0.8
# ...and this much beside numbers that passed every test (seeds 0 and 1: 0.5 and 0.6 read as many pages, 0.7 one less).
_MIN_MEAN_BESIDE = 0.6
# Beside numbers, a refused piece of full height is a digit the model doubts unless it is this sure it is none
# (seeds 0 and 1: 0.9 and 1 read as many pages, 0.7 four less).
_SURE_NOT_A_DIGIT = 0.9
# A piece wider than this many times the line's digit height is not one digit.
_MAX_WIDTH = 1.5
# A digit at a line's end less than this share as tall as the line's other digits is not written with them
# (a printed label's letter, a speck). Real numbers of the development fold: 0.63 and more; generated
# pages (seeds 0 and 1) and lines: 0.55 and more; a label printed beside a number: 0.3-0.5.
_SMALL_END = 0.5
# ...and set this many times the number's typical gap between digits apart from it. 1.5 cut the first
# digit off a generated number in 1,000 (seed 0: a flat 5 whose detached bar widened its gap, 1.65 times;
# seed 11: one more); 2 cut none, and one generated form of 60 fewer read its label away.
_APART = 2.0
# A refused piece ("no digit found") at least this share of the line's digit height stops the line.
_FULL_HEIGHT = 0.75
# A digit must keep its reading in this many of its ten nudged copies (real digits measured: 8 or more).
_MIN_KEPT = 8
# In a line of this many digits or more, one digit alone that flips when nudged leaves the line a number, that
# digit marked unsure. Of 300 generated photographed numbers (`synth.photograph.make_lines`, seed 7), 9 that
# read nothing for one doubtful digit read 4 right and 5 with that digit wrong; of 310 numbers written with
# CVL's evaluation writers, whom no model here trained on, 45: 21 right and 24 wrong. Of 2,000 generated
# junk pictures (`synth.junk.make_junk`, seeds 0 and 2026) and the real junk, none gives a number. From two
# digits, 2 more right and 1 more wrong on the CVL numbers: a line of two with one in doubt is half doubt.
# The one doubt may also be a digit read unsure or a doubtful refusal: of 400 numbers of CVL's evaluation
# writers (`make_lines` seed 7), 63 read nothing, 39 with those; 16 more read right and 8 more wrong, each
# with a digit marked unsure (MNIST's test writers, 300: 3 more right, 1 more wrong). Generated junk (1,000
# each of seeds 777 and 0, `read`) and every real picture as it is read as before. The digit in doubt is
# left out of `_MIN_MEAN_CONFIDENCE`'s mean (its doubt counted once): of those 400, 9 more read, 4 right.
# On 400 more (seed 8, not looked at while choosing), both: 49 read nothing, now 25; 13 more right, 11 more
# wrong. `benchmarks/unseen_numbers.py` measures them on seed 2.
_ONE_DOUBT_FROM = 3
# A digit read at this confidence or more is taken as steady without its nudged copies: of the digits read
# so surely, 1 of MNIST's 9,356 test digits flips, and 13 of CVL's 14,543 from unseen writers. Only for
# speed: on the development pictures, generated pages (seeds 0 and 1) and generated junk, no answer changes.
BEYOND_DOUBT = 0.99
# Digits are written about their width apart, and a 1 is given a digit's room: 1s closer than this share of
# their height are strokes (generated hatching: 0.21-0.23; MNIST's 1s written in a line: 0.7 and more).
_TALLY_PITCH = 0.3
_TALLY_ONES = 3
# At least this share of a picture's lines of writing must pass `line_digits` on their own.
_MIN_NUMBER_LINES = 0.5
# Numbers on this many lines or more, this share of whose digits or more are 1s, are a texture's strokes
# (generated grain: 5 of the 23 of 2,000 generated junk pictures that gave numbers, on 6 to 12 lines,
# each stroke a 1 on a line of its own; no generated page or development picture reads otherwise). A
# page of a few numbers may be all 1s ("11", "111", "1").
_STROKE_LINES = 5
_STROKE_ONES = 0.8


def line_digits(
    decided: Sequence[Digit], *, beside_numbers: bool = False, sizes: Sequence[tuple[float, float]] | None = None
) -> list[Digit] | None:
    """The digits of one line if they can make a number, else None.

    `decided` holds the line's `answers.Digit`s left to right. Digits at its
    ends much smaller than the rest and set apart from them (`_without_small_ends`:
    a printed label's letters) are left out, and so are refused pieces
    smaller than `_FULL_HEIGHT` of the line's digits (a dash, a speck). On its
    own, a line of `_ONE_DOUBT_FROM` digits or more may hold one in doubt
    (`one_doubt_at_most`): unsure, or a doubtful refusal read as its likeliest
    digit. The digits returned are `decided`'s own objects but where a doubtful
    refusal is read, each with its piece's box. `beside_numbers`: the line is on a picture that holds numbers
    which passed every test, so digits the model is unsure of count too, and
    so do refused pieces of full height it is not sure about (as their
    likeliest digit, unsure); but a lone digit does not (a mark at the
    picture's edge, a corner of the desk). `sizes`: each piece's width and
    height in the picture's pixels, turned level where its line was
    (`pipeline.Segment.level_size`); by default, its box's.
    """
    sizes = list(sizes) if sizes is not None else [(_width(d), _height(d)) for d in decided]
    decided, sizes = _without_small_ends(decided, sizes)
    accepted = [d for d in decided if d.digit is not None]
    if not beside_numbers:
        if len(accepted) >= _ONE_DOUBT_FROM - 1:  # the one doubt a line may hold can be a doubtful refusal
            decided = _doubtful_refusals_read(decided, sizes)
            accepted = [d for d in decided if d.digit is not None]
        if not accepted or not one_doubt_at_most([d.status == OK for d in accepted]):
            return None
    else:
        if len(accepted) < 2:  # counted before the doubtful refusals: a digit beside a smudge is no number
            return None
        decided = _doubtful_refusals_read(decided, sizes)
        accepted = [d for d in decided if d.digit is not None]
    height = _digit_height(decided, sizes)
    if any(d.digit is None and tall >= _FULL_HEIGHT * height for d, (_, tall) in zip(decided, sizes, strict=True)):
        return None
    if any(wide > _MAX_WIDTH * height for wide, _ in sizes):
        return None
    if _tally_marks(accepted, height):
        return None
    least = _MIN_MEAN_BESIDE if beside_numbers else _MIN_MEAN_CONFIDENCE
    # Alone, the one digit a line may hold in doubt is not averaged in: its doubt was counted once.
    counted = accepted if beside_numbers else [d for d in accepted if d.status == OK]
    if len(accepted) > 1 and np.mean([d.confidence for d in counted]) < least:
        return None
    return accepted


def _without_small_ends(
    decided: Sequence[Digit], sizes: Sequence[tuple[float, float]]
) -> tuple[Sequence[Digit], Sequence[tuple[float, float]]]:
    """The line without the pieces at either end that are less than `_SMALL_END` as tall as the digits
    beside them and set apart from them: a printed label's letters before a number written on a form
    ("Sum: 527", its "m" read as a 5), a speck after it. A line's own digits are written alike, and as
    near one another: a digit is left out only where its gap to the next is `_APART` times the
    number's typical gap or more (a label ends in a colon and a space), or where refused letters about
    as tall stand among what is cut off with it (a word: print mixes letters with what reads as digits;
    a 5's detached bar is no letter of its size). The left end is trimmed first,
    then the right, while two digits or more stay. What is cut off with a digit must be no digit of
    the line's size either: a refused piece of full height there, or one too wide, keeps the line whole
    (it fails, as it would have)."""
    digits = [i for i, d in enumerate(decided) if d.digit is not None]
    boxes = [decided[i].placed_box() for i in digits]
    gaps = [float(following[0] - preceding[2]) for preceding, following in zip(boxes, boxes[1:], strict=False)]

    def small(end: int, others: range) -> bool:
        return sizes[digits[end]][1] < _SMALL_END * float(np.median([sizes[digits[k]][1] for k in others]))

    def apart(gap: float, inner: list[float]) -> bool:  # the small ones' gap to the number, against its own
        return gap >= _APART * max(float(np.median(inner)), 1.0)

    def worded(cut: range, dropped: range) -> bool:  # letters the model refuses among them, as tall: a word
        tall = float(np.median([sizes[digits[k]][1] for k in dropped]))
        return any(decided[i].digit is None and 0.5 * tall <= sizes[i][1] <= 2 * tall for i in cut)

    first, last = 0, len(digits) - 1
    while last - first >= 2 and small(first, range(first + 1, last + 1)):
        first += 1
    if first and not (apart(gaps[first - 1], gaps[first:last]) or worded(range(digits[first]), range(first))):
        first = 0
    right = last
    while right - first >= 2 and small(right, range(first, right)):
        right -= 1
    if right < last and (
        apart(gaps[right], gaps[first:right])
        or worded(range(digits[right] + 1, len(decided)), range(right + 1, last + 1))
    ):
        last = right
    if first == 0 and last == len(digits) - 1:
        return decided, sizes
    start = digits[first] if first > 0 else 0
    stop = digits[last] + 1 if last < len(digits) - 1 else len(decided)
    height = float(np.median([sizes[digits[k]][1] for k in range(first, last + 1)]))
    cut = [k for k in range(len(decided)) if not start <= k < stop]
    if any(
        sizes[k][1] >= _FULL_HEIGHT * height or sizes[k][0] > _MAX_WIDTH * height
        for k in cut
        if decided[k].digit is None
    ):
        return decided, sizes
    return decided[start:stop], sizes[start:stop]


def written_smaller(line: Sequence[Digit], numbers: Sequence[Sequence[Digit]]) -> bool:
    """Whether a line that can make a number only beside a picture's `numbers` (those that passed every
    test) is written less than `_SMALL_END` as tall as they are: print, not the same hand (a form's
    label over each handwritten number, its letters read as unsure digits)."""
    return float(np.median([_height(d) for d in line])) < _print_height(numbers)


def _print_height(numbers: Sequence[Sequence[Digit]]) -> float:
    """Writing less tall than this, `_SMALL_END` of a picture's `numbers`' median digit, is print beside them."""
    return _SMALL_END * float(np.median([_height(d) for number in numbers for d in number]))


def _tally_marks(accepted: Sequence[Digit], height: float) -> bool:
    """Whether a line's digits are strokes closer together than digits are written: `_TALLY_ONES` or more 1s,
    and nothing else, whose centres lie under `_TALLY_PITCH` of the line's height apart (tally marks, hatching)."""
    if len(accepted) < _TALLY_ONES or any(d.digit != 1 for d in accepted):
        return False
    # Apart along the line, not across the picture: a tilted line's 1s are as far apart as a level one's.
    centres = np.array(sorted(((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in (d.placed_box() for d in accepted)))
    return bool(np.median(np.hypot(*np.diff(centres, axis=0).T)) < _TALLY_PITCH * height)


def _digit_height(decided: Sequence[Digit], sizes: Sequence[tuple[float, float]]) -> float:
    """The median height of a line's pieces read as digits."""
    return float(np.median([tall for d, (_, tall) in zip(decided, sizes, strict=True) if d.digit is not None]))


def _doubtful_refusals_read(decided: Sequence[Digit], sizes: Sequence[tuple[float, float]]) -> list[Digit]:
    """`decided`, with each refused piece of full height that the model is not sure is no digit read as its
    likeliest digit (its confidence, that digit's probability), marked unsure."""
    height = _digit_height(decided, sizes)
    return [
        replace(d, digit=d.top3[0][0], confidence=d.top3[0][1], status=UNSURE)
        if d.digit is None and d.top3 and d.confidence < _SURE_NOT_A_DIGIT and tall >= _FULL_HEIGHT * height
        else d
        for d, (_, tall) in zip(decided, sizes, strict=True)
    ]


def _height(digit: Digit) -> int:
    return height(digit.placed_box())


def _width(digit: Digit) -> int:
    return width(digit.placed_box())


def _linear_nudges(images: np.ndarray) -> list[np.ndarray]:
    """The nudges that are linear in the pixels: shifts, turns and zooms (bilinear, zero outside)."""
    from scipy import ndimage

    centre = (np.array(images.shape[1:]) - 1) / 2
    copies = [ndimage.shift(images, (0, dy, dx), order=1) for dy, dx in ((2, 0), (-2, 0), (0, 2), (0, -2))]
    copies += [ndimage.rotate(images, angle, axes=(2, 1), reshape=False, order=1) for angle in (-15, 15)]
    for zoom in (0.8, 1.2):
        # Output pixel p samples input centre + (p - centre) / zoom: a zoom about the middle.
        matrix = np.diag([1.0, 1 / zoom, 1 / zoom])
        offset = np.concatenate([[0.0], centre - centre / zoom])
        copies.append(ndimage.affine_transform(images, matrix, offset=offset, order=1))
    return copies


def nudged(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N, 10, 28, 28): ten nudged copies of each image.

    In this order: four shifts, two turns, thicker, thinner, two zooms. `steady`
    asks about the first `_MIN_KEPT` first, so the order decides which copies a
    settled digit never needs (the zooms).
    """
    from scipy import ndimage

    # The linear nudges in one sparse product (`turns.warped`): all ten nudges of 64 images took 2 ms instead of 16.
    copies = list(warped(_linear_nudges, images).transpose(1, 0, 2, 3))
    copies[6:6] = [ndimage.grey_dilation(images, size=(1, 2, 2)), ndimage.grey_erosion(images, size=(1, 2, 2))]
    return np.stack(copies, axis=1).astype(np.float32)


def steady(classify: Callable[[np.ndarray], np.ndarray], images: np.ndarray, digits: list[int]) -> np.ndarray:
    """For each (28, 28) image read as `digits[i]`: does it keep that reading when nudged?

    `classify` maps (M, 28, 28) to (M, 10 or 11) probabilities. A copy keeps
    the reading when its best digit is the same and, with an 11th output, it
    is not refused. A digit is steady when `_MIN_KEPT` of its ten copies keep
    the reading. The model is asked about the first `_MIN_KEPT` copies of every
    digit, which settles those whose copies all keep it (most real digits) and
    those that can no longer reach `_MIN_KEPT`; then, only if any is left open,
    about the last copies of those. The outcome is the one all ten copies give,
    up to the model's rounding, which can differ between batch sizes in the last bit.
    """
    if len(images) == 0:
        return np.zeros(0, dtype=bool)
    copies = nudged(images)
    count, per = copies.shape[:2]
    readings = np.asarray(digits)
    kept = np.zeros((count, per), dtype=bool)
    kept[:, :_MIN_KEPT] = _keep_reading(classify, copies[:, :_MIN_KEPT], readings)
    so_far = kept.sum(axis=1)
    still_open = (so_far < _MIN_KEPT) & (so_far + per - _MIN_KEPT >= _MIN_KEPT)
    if still_open.any():
        kept[still_open, _MIN_KEPT:] = _keep_reading(classify, copies[still_open, _MIN_KEPT:], readings[still_open])
    steady_ones: np.ndarray = kept.sum(axis=1) >= _MIN_KEPT
    return steady_ones


def one_doubt_at_most(trusted: Sequence[bool] | np.ndarray) -> bool:
    """Whether a line's digits, each trusted or not (read surely, and steady when nudged), make a number: all
    trusted, or all but one in a line of `_ONE_DOUBT_FROM` digits or more."""
    doubts = len(trusted) - int(np.count_nonzero(trusted))
    return doubts == 0 or (len(trusted) >= _ONE_DOUBT_FROM and doubts == 1)


def _keep_reading(classify: Callable[[np.ndarray], np.ndarray], copies: np.ndarray, readings: np.ndarray) -> np.ndarray:
    """(N, K, 28, 28) nudged copies of images read as `readings` -> (N, K): does each copy keep its image's reading?"""
    count, per = copies.shape[:2]
    probabilities = classify(copies.reshape(count * per, *copies.shape[2:])).reshape(count, per, -1)
    kept: np.ndarray = (probabilities[..., :DIGITS].argmax(axis=2) == readings[:, None]) & ~refused(probabilities)
    return kept


def picture_refused(numbers: int, writing: Sequence[tuple[float, Box]], found: Sequence[Sequence[Digit]]) -> bool:
    """True when a picture's `numbers` lines that pass `line_digits` on their own are too few among its lines of
    `writing` (each its pieces' median height and its box), less the labels of the numbers `found` (that passed
    every test): lines level with one of them, written less than `_SMALL_END` as tall (print beside handwriting)."""
    if not found:
        return False
    tall = _print_height(found)
    rows = [(min(d.placed_box()[1] for d in number), max(d.placed_box()[3] for d in number)) for number in found]

    def label(line_height: float, box: Box) -> bool:
        middle = (box[1] + box[3]) / 2
        return line_height < tall and any(top <= middle <= bottom for top, bottom in rows)

    return numbers > 0 and numbers < _MIN_NUMBER_LINES * sum(not label(*line) for line in writing)


def scattered_strokes(numbers: Sequence[Sequence[Digit]]) -> bool:
    """True when a picture's numbers are `_STROKE_LINES` lines or more of almost nothing but 1s
    (`_STROKE_ONES`): short strokes strewn over a texture, not a page of numbers."""
    digits = [d.digit for number in numbers for d in number]
    return len(numbers) >= _STROKE_LINES and digits.count(1) >= _STROKE_ONES * len(digits)
