"""The reader: the one path from a picture to an answer.

`digits predict`, `digits read`, the HTTP server and the Python API all call
this module; they only format what it returns. It never imports TensorFlow.

    >>> from digits.read.reader import Reader
    >>> reader = Reader()                     # the model the package ships
    >>> reader.read_digit("photo.jpg")        # Digit(digit=7, confidence=0.99, ..., status='ok')
    >>> reader.read_page("page.png").text     # one number per line, top to bottom

A picture goes through three steps, which servers may call one by one to
batch the middle one across requests:

  1. `prepare`: load it and find its writing (`digits.read.pipeline`), giving
     MNIST-style 28×28 images and where each digit is;
  2. `classify`: the model's probabilities for many 28×28 images at once;
  3. `decide`: probabilities -> a `Digit` with a status. A model with an
     11th output ("not a digit", trained on generated junk) refuses junk
     with "no digit found"; below `threshold` the answer is "unsure".
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import reduce
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from digits.errors import ImageError, first_line
from digits.read.answers import Digit, Line, Page
from digits.read.geometry import height, union, width
from digits.read.load import as_read, decoded_opened_heif, load_image, turned_upright, within_budget
from digits.read.model import Recognizer
from digits.read.pipeline import Prepared, Segment, Segmented, prepare, segment_page
from digits.read.refusal import (
    BEYOND_DOUBT,
    line_digits,
    one_doubt_at_most,
    picture_refused,
    scattered_strokes,
    steady,
    written_smaller,
)
from digits.read.sheet import finder_session
from digits.read.touching import cut_doubted, halves_of, split_touching
from digits.read.turns import averaged
from digits.spec import DIGITS, NO_DIGIT, OK, REJECT, UNSURE, Box, refused

__all__ = ["Digit", "Line", "Page", "PictureSource", "Reader"]

PictureSource = Image.Image | np.ndarray | bytes | str | os.PathLike[str]
# Held while a PIL image the caller opened is loaded (its first load decodes it in place).
_LOADING = threading.Lock()


class _Verdict(NamedTuple):
    """A line of a page that can make a number, and how it fared (`refusal`)."""

    line: Line
    passed: bool  # every test: `line_digits` on its own (not beside numbers), and `one_doubt_at_most`
    alone: bool  # `line_digits` on its own (every digit sure but one doubt, confident on average, none too wide)
    beside: bool  # `line_digits` beside numbers that passed every test


class Reader:
    """A model and the rules for turning its probabilities into answers.

    `model` is a run folder or an `.onnx` file; None means the model the
    package ships. `threshold` is the confidence below which a digit is
    "unsure" (0 to 1). `threads`: ONNX Runtime's threads per model call
    (None: every core).

    A picture is a path, the file's bytes, a Pillow image or a uint8 array
    (H×W, H×W×3 or ×4). A picture that cannot be read raises `ImageError`
    (one sentence naming it), a wrong type `TypeError`; a bad model,
    `ModelError`. One Reader may be shared by threads; it cannot be pickled.
    The manual: docs/python-api.md.
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, threshold: float = 0.5, threads: int | None = None):
        self.threshold = threshold  # checked first: a wrong threshold costs no model load
        self.recognizer = Recognizer(model, threads=threads)
        finder_session()  # the sheet finder too: a broken install fails here, not at the first photo of a desk

    @property
    def threshold(self) -> float:
        return self._threshold

    @threshold.setter
    def threshold(self, threshold: float) -> None:
        # Checked whenever it is set: a threshold changed later (`reader.threshold = 5`) would otherwise
        # call every digit unsure, with no sentence to say why.
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
            raise TypeError(f"threshold is a number from 0 to 1, not {type(threshold).__name__} {threshold!r}.")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, not {threshold}.")
        self._threshold = float(threshold)

    @property
    def model_path(self) -> Path:
        return self.recognizer.path

    def prepare(self, picture: PictureSource, explain: bool = True) -> Prepared:
        """Step 1 for a picture of one digit; with `explain`, every step's image in `steps` (for --explain)."""
        return prepare(_as_image(picture), explain)

    def classify(self, images: np.ndarray) -> np.ndarray:
        """Step 2: (N, 28, 28) -> (N, 10 or 11) probabilities: the model's, and for the images it is unsure of,
        the mean of its answers for them and for them turned ±10° (`digits.read.turns`). One model call for
        all the images, and one more for the turns of the unsure ones, if any."""
        return averaged(self.recognizer.predict_proba, images)

    def decide(self, probabilities: np.ndarray, box: Box | None = None) -> Digit:
        """Step 3: one row of probabilities -> a Digit with its status."""
        probabilities = np.asarray(probabilities)
        if probabilities.ndim != 1 or len(probabilities) not in (DIGITS, DIGITS + 1):
            raise ValueError(
                f"decide takes one row of {DIGITS} or {DIGITS + 1} probabilities, not shape {probabilities.shape}"
            )
        # With room for rounding: another execution provider may sum a softmax to a hair over 1.
        if probabilities.dtype.kind not in "fiu" or not (
            probabilities.min() >= -1e-6 and probabilities.max() <= 1 + 1e-6
        ):
            raise ValueError("decide takes probabilities: numbers from 0 to 1 (NaN is none).")
        digit_probabilities = probabilities[:DIGITS]
        top = digit_probabilities.argsort()[::-1][:3]
        top3 = tuple((int(d), round(float(digit_probabilities[d]), 4)) for d in top)
        if refused(probabilities):
            return Digit(None, round(float(probabilities[REJECT]), 4), top3, box, NO_DIGIT)
        best, confidence = top3[0]
        sure = digit_probabilities[top[0]] >= self.threshold  # unrounded: 0.99996 is not 1
        return Digit(best, confidence, top3, box, OK if sure else UNSURE)

    def answer(self, prepared: Prepared) -> Digit:
        """Steps 2 and 3 for one prepared picture."""
        return self.answer_many([prepared])[0]

    def answer_many(self, prepared: Sequence[Prepared]) -> list[Digit]:
        """Steps 2 and 3 for many prepared pictures, in one `classify` (one model call, two with turns)."""
        asked = [p for p in prepared if p.readable]
        probabilities = iter(self.classify(np.stack([p.image for p in asked])) if asked else ())
        return [self.decide(next(probabilities), p.box) if p.readable else Digit.unasked(p.box) for p in prepared]

    def read_digit(self, picture: PictureSource) -> Digit:
        """The one digit a picture holds."""
        return self.answer(self.prepare(picture, explain=False))

    def read_page(self, picture: PictureSource) -> Page:
        """Every line of digits, top to bottom.

        A line is a number only when its pieces make one (`digits.read.refusal`):
        none unsure, none of full height refused, none too wide, confident
        on average, and each digit steady when nudged; in a line of three or
        more, one digit alone may be in doubt (unsure, refused without the model
        being sure, or flipping when nudged): it is marked unsure. Smaller
        refused pieces (a dash, a speck, a stray mark) are left out, and so are
        digits at a line's ends much smaller than the rest and set apart (a
        form's printed label). A picture where most lines of writing are not
        numbers gives none (a number's printed label, level with it and less
        than half as tall, is not counted); one whose only number is a single
        digit gives it only when the picture read whole, from the page's own
        analysis, reads the same (as `read_digit` reads it, but for a bold
        photo, which `read_digit` looks at in half the pixels).
        Once a picture gives numbers, its other lines of two digits or more
        need not be sure or steady (unless written less than half as tall as
        those numbers: print): their digits that are unsure, or that
        flipped when nudged, have the status "unsure".
        """
        return self.decide_pages([segment_page(_as_image(picture))])[0]

    def decide_pages(self, segmented: Sequence[Segmented]) -> list[Page]:
        """Steps 2 and 3 of `read_page` for many pictures (`segment_page`).

        At most eight model calls, whatever the number of pictures: one `classify`
        for every piece and every picture read whole that was made with its pieces
        (once when they are the same image; a second call for the turns of those
        the model is unsure of), one `classify` (two with turns) for the pictures
        read whole only now, those whose only number is one digit (`Segmented.whole`), one
        `classify` (two with turns) for the halves of the pieces as wide as two
        digits that it refused or doubted (`touching`; none when there is no such
        piece), then the nudged copies that test whether the digits of every line that can make
        a number on its own (`refusal.line_digits`) are steady (`refusal.steady`: one call for
        the first eight copies of each digit under `refusal.BEYOND_DOUBT`, one more
        only for the digits they leave open).
        """
        images: list[np.ndarray] = []
        rows: dict[int, int] = {}

        def row(image: np.ndarray) -> int:
            """Its row in the model call: one per distinct image (a one-digit picture's piece is the picture read whole)."""
            if id(image) not in rows:
                rows[id(image)] = len(images)
                images.append(image)
            return rows[id(image)]

        piece_rows = [
            [[None if piece.scribbled else row(piece.image) for piece in line] for line in page.lines]
            for page in segmented
        ]
        whole_rows = [row(page.whole.image) if page.whole_made and page.whole.readable else None for page in segmented]
        probabilities = self.classify(np.stack(images)) if images else np.zeros((0, DIGITS), np.float32)
        decided_lines = [
            [
                [
                    Digit.unasked(piece.box) if r is None else self.decide(probabilities[r], piece.box)
                    for piece, r in zip(line, line_rows, strict=True)
                ]
                for line, line_rows in zip(page.lines, page_rows, strict=True)
            ]
            for page, page_rows in zip(segmented, piece_rows, strict=True)
        ]
        # Pieces as wide as two digits that the model refused or doubted are cut in two (`touching`).
        cut_lines = [
            cut_doubted(page.lines, page_decided) for page, page_decided in zip(segmented, decided_lines, strict=True)
        ]
        read_half = self._halves_reader(
            [half for page in cut_lines for line in page for p in line for half in halves_of(p)]
        )
        # Per page, per line of writing that can make a number: its digits and images, whether
        # it makes one on its own (only those lines are tested for steadiness), and whether it
        # can make one beside numbers that passed every test.
        candidates: list[list[tuple[list[Digit], list[np.ndarray], bool, bool]]] = []
        for page_lines, page_decided in zip(cut_lines, decided_lines, strict=True):
            here = []
            for pieces, decided in zip(page_lines, page_decided, strict=True):
                line, decided = split_touching(pieces, decided, read_half)
                sizes = [piece.level_size or (width(piece.box), height(piece.box)) for piece in line]
                sure = line_digits(decided, sizes=sizes)
                beside = line_digits(decided, beside_numbers=True, sizes=sizes)
                digits = sure or beside
                if digits is not None:
                    here.append((digits, _images_of(digits, decided, line), sure is not None, beside is not None))
            candidates.append(here)
        steadiness = iter(self._steady_digits([(d, k) for here in candidates for d, k, sure, _ in here if sure]))
        verdicts = []
        for page, here in zip(segmented, candidates, strict=True):
            lines: list[_Verdict] = []
            for digits, _, alone, can_be_beside in here:
                steady_ones = next(steadiness) if alone else None
                # One digit in doubt at most, whether the model was unsure of it or it flipped when nudged.
                trusted = [d.status == OK for d in digits]
                passed = steady_ones is not None and one_doubt_at_most(steady_ones & np.array(trusted, dtype=bool))
                if steady_ones is not None and not steady_ones.all():
                    # A digit that flipped when nudged is not one to trust.
                    digits = [d if ok else replace(d, status=UNSURE) for d, ok in zip(digits, steady_ones, strict=True)]
                number = Line(tuple(digits), reduce(union, [d.placed_box() for d in digits]))
                lines.append(_Verdict(number, passed, alone, can_be_beside))
            writing = [
                (float(np.median([height(p.box) for p in line])), reduce(union, [p.box for p in line]))
                for line in page.lines
                if line
            ]
            verdicts.append((lines, writing))
        wholes = self._wholes_read(segmented, [None if r is None else probabilities[r] for r in whole_rows], verdicts)
        return [self._page(lines, writing, whole) for (lines, writing), whole in zip(verdicts, wholes, strict=True)]

    def _wholes_read(
        self,
        segmented: Sequence[Segmented],
        asked: Sequence[np.ndarray | None],
        verdicts: Sequence[tuple[Sequence[_Verdict], Sequence[tuple[float, Box]]]],
    ) -> list[Digit | None]:
        """Each picture read whole: from its probabilities where it was `asked` with its pieces, else, when
        its lines' verdicts give one number of one digit (the only case `_page` looks), made and asked now,
        all such pictures in one `classify`; None where it is not needed or not readable."""
        late = [
            i
            for i, (page, (lines, _)) in enumerate(zip(segmented, verdicts, strict=True))
            if asked[i] is None and _lone_digit(lines) is not None and page.whole.readable
        ]
        read = dict(enumerate(asked))
        if late:
            read.update(zip(late, self.classify(np.stack([segmented[i].whole.image for i in late])), strict=True))
        return [None if (p := read[i]) is None else self.decide(p, page.whole.box) for i, page in enumerate(segmented)]

    def _halves_reader(self, halves: list[Segment]) -> Callable[[Segment], Digit]:
        """What the model reads in each of the halves (`touching.halves_of`), asked in one call when there are any."""
        probabilities = (
            self.classify(np.stack([half.image for half in halves])) if halves else np.zeros((0, DIGITS), np.float32)
        )
        rows = {id(half): k for k, half in enumerate(halves)}

        def read(half: Segment) -> Digit:
            row = rows[id(half)]
            if halves[row] is not half:  # held here, the halves keep their ids: this is a half never asked about
                raise KeyError("this half was not among those the model was asked about")
            return self.decide(probabilities[row], half.box)

        return read

    def _steady_digits(self, lines: list[tuple[list[Digit], list[np.ndarray]]]) -> list[np.ndarray]:
        """For each line (its digits and their images): which digits are steady when nudged (those read at
        `refusal.BEYOND_DOUBT` or more are, unasked). One or two model calls, none when no digit is in doubt."""
        if not lines:
            return []
        if any(len(line) != len(line_images) for line, line_images in lines):
            raise ValueError("each digit of a line tested for steadiness needs its own image")
        digits = [d for line, _ in lines for d in line]
        images = [image for _, line_images in lines for image in line_images]
        flags = np.ones(len(digits), dtype=bool)
        doubted = [i for i, d in enumerate(digits) if d.confidence < BEYOND_DOUBT]
        if doubted:
            # The model alone, not `classify`'s mean over turns: the same lines passed on the development
            # pictures and generated pages (seeds 0 and 1), for a third of the cost. `line_digits` keeps
            # only the digits that were read: none is None here.
            flags[doubted] = steady(
                self.recognizer.predict_proba,
                np.stack([images[i] for i in doubted]),
                [digit for i in doubted if (digit := digits[i].digit) is not None],
            )
        ends = np.cumsum([len(line) for line, _ in lines])
        return np.split(flags, ends[:-1])

    @staticmethod
    def _page(lines: Sequence[_Verdict], writing: Sequence[tuple[float, Box]], whole: Digit | None) -> Page:
        """A picture's page from its lines that can make numbers, with their verdicts, the height of
        each of its lines of writing (its pieces' median) and its box, and the picture read whole.

        The numbers that passed every test decide whether the picture holds numbers
        at all (not when they are strokes strewn over a texture, `refusal.scattered_strokes`),
        and those that pass `line_digits` on its own, steady or not, whether they are
        enough of its lines (`refusal.picture_refused`); if so, the lines that can
        make a number beside them come too, but for those written much smaller than
        the numbers (`refusal.written_smaller`: print), unless with them the page is
        strokes strewn over a texture after all.
        """
        found = [verdict.line for verdict in lines if verdict.passed]
        if (
            not found
            or picture_refused(sum(verdict.alone for verdict in lines), writing, [line.digits for line in found])
            or scattered_strokes([line.digits for line in found])
        ):
            return Page()
        lone = _lone_digit(lines)
        if lone is not None and (whole is None or whole.status != OK or whole.digit != lone):
            return Page()
        numbers = [line.digits for line in found]
        kept = tuple(
            verdict.line
            for verdict in lines
            if verdict.passed or (verdict.beside and not written_smaller(verdict.line.digits, numbers))
        )
        # With the lines beside them, too: strokes strewn over a texture, some of them level with the numbers
        # (as a label is), made two numbers and three more lines of 1s.
        return Page() if scattered_strokes([line.digits for line in kept]) else Page(kept)


def _lone_digit(lines: Sequence[_Verdict]) -> int | None:
    """The digit read when the lines that passed every test are one number of one digit, else None."""
    found = [verdict.line for verdict in lines if verdict.passed]
    return found[0].digits[0].digit if len(found) == 1 and len(found[0].digits) == 1 else None


def _images_of(digits: Sequence[Digit], decided: Sequence[Digit], line: Sequence[Segment]) -> list[np.ndarray]:
    """The images of the `digits` that `line_digits` kept of `decided`, in order, some read anew, by their boxes."""
    pieces = iter(zip(decided, line, strict=True))
    return [next(piece.image for d, piece in pieces if d.box == digit.box) for digit in digits]


def _as_image(picture: PictureSource) -> Image.Image:
    if isinstance(picture, np.ndarray):  # a photo as an array: (H, W) grey, or (H, W, 3 or 4) RGB(A), uint8
        if picture.dtype != np.uint8 or not (picture.ndim == 2 or (picture.ndim == 3 and picture.shape[2] in (3, 4))):
            raise TypeError(
                f"a picture as an array is uint8 (H, W), (H, W, 3) or (H, W, 4), not {picture.dtype} {picture.shape}"
                " (from floats in 0-1: np.round(a * 255).astype(np.uint8); Recognizer takes 28x28 digits as MNIST has them)"
            )
        picture = Image.fromarray(picture)
    if isinstance(picture, Image.Image):
        if (decoded := decoded_opened_heif(picture, "the picture")) is not None:
            return decoded
        try:
            with _LOADING:  # threads sharing a Reader may share an image, and Pillow's first load is not thread-safe
                full_size = within_budget(picture, "the picture")
                picture.load()
        except ImageError:  # over the budget, said as for a file
            raise
        except ValueError as err:
            if "closed" in str(err):  # Pillow's "Operation on closed image"
                raise TypeError("the PIL image was closed before it was read; read it before closing it.") from None
            raise ImageError(f"the PIL image cannot be decoded ({first_line(err)}).") from None
        except OSError as err:  # a truncated or damaged file the caller opened
            raise ImageError(f"the PIL image cannot be decoded ({first_line(err)}).") from None
        # As `load_image` turns a file's (a phone photo opened by the caller), and keeps its size if reduced.
        return as_read(turned_upright(picture), picture.size, full_size)
    if not isinstance(picture, (bytes, bytearray, memoryview, str, os.PathLike)):
        raise TypeError(
            "a picture is a file path, its bytes, a PIL image or a uint8 array, not " + type(picture).__name__
        )
    return load_image(picture)
