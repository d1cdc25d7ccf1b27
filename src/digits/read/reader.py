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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import reduce

import numpy as np
from PIL import Image

from digits.read.model import REJECT, Recognizer
from digits.read.load import load_image
from digits.read.pipeline import Prepared, Segment, prepare, segment_page
from digits.read.ink import union

OK = "ok"
UNSURE = "unsure"
NO_DIGIT = "no digit found"

# In a line, a refused piece at least this share of the accepted digits' height is read as an unsure digit.
_FULL_HEIGHT = 0.75

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in the picture's pixels, ends exclusive


@dataclass(frozen=True)
class Digit:
    """One digit found in a picture, or the fact that none was."""

    digit: int | None  # None when status is "no digit found"
    confidence: float  # of `digit`; for "no digit found", how sure the model is that it is not one (0 with no ink)
    top3: tuple[tuple[int, float], ...]
    box: Box | None
    status: str  # "ok", "unsure" or "no digit found"

    def to_dict(self) -> dict:
        return {
            "digit": self.digit,
            "confidence": self.confidence,
            "top3": [{"digit": d, "confidence": c} for d, c in self.top3],
            "box": list(self.box) if self.box else None,
            "status": self.status,
        }


@dataclass(frozen=True)
class Line:
    """The digits of one written line, left to right."""

    digits: tuple[Digit, ...]
    box: Box

    @property
    def text(self) -> str:
        return "".join(str(d.digit) for d in self.digits)

    def to_dict(self) -> dict:
        return {"text": self.text, "box": list(self.box), "digits": [d.to_dict() for d in self.digits]}


@dataclass(frozen=True)
class Page:
    """Every line of digits in a picture, top to bottom."""

    lines: tuple[Line, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def to_dict(self) -> dict:
        return {"text": self.text, "lines": [line.to_dict() for line in self.lines]}


PictureSource = Image.Image | bytes | str | os.PathLike


class Reader:
    """A model and the rules for turning its probabilities into answers.

    `model` is a run folder or an `.onnx` file; None means the model the
    package ships. `threshold` is the confidence below which a digit is
    "unsure" (0 to 1).
    """

    def __init__(self, model: str | os.PathLike | None = None, threshold: float = 0.5, threads: int | None = None):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, not {threshold}.")
        self.recognizer = Recognizer(model, threads=threads)
        self.threshold = threshold

    @property
    def model_path(self):
        return self.recognizer.path

    def prepare(self, picture: PictureSource) -> Prepared:
        """Step 1 for a picture of one digit."""
        return prepare(_as_image(picture))

    def classify(self, images: np.ndarray) -> np.ndarray:
        """Step 2: (N, 28, 28) -> (N, 10 or 11) probabilities."""
        return self.recognizer.predict_proba(images)

    def decide(self, probabilities: np.ndarray, box: Box | None = None) -> Digit:
        """Step 3: one row of probabilities -> a Digit with its status."""
        digit_probabilities = probabilities[:10]
        top = digit_probabilities.argsort()[::-1][:3]
        top3 = tuple((int(d), round(float(digit_probabilities[d]), 4)) for d in top)
        if len(probabilities) > REJECT and probabilities[REJECT] > digit_probabilities[top[0]]:
            return Digit(None, round(float(probabilities[REJECT]), 4), top3, box, NO_DIGIT)
        best, confidence = top3[0]
        sure = digit_probabilities[top[0]] >= self.threshold  # unrounded: 0.99996 is not 1
        return Digit(best, confidence, top3, box, OK if sure else UNSURE)

    def answer(self, prepared: Prepared) -> Digit:
        """Steps 2 and 3 for one prepared picture."""
        return self.answer_many([prepared])[0]

    def answer_many(self, prepared: Sequence[Prepared]) -> list[Digit]:
        """Steps 2 and 3 for many prepared pictures, in one model call."""
        inked = [p for p in prepared if p.has_ink]
        probabilities = iter(self.classify(np.stack([p.image for p in inked])) if inked else ())
        return [self.decide(next(probabilities), p.box) if p.has_ink else Digit(None, 0.0, (), None, NO_DIGIT)
                for p in prepared]

    def read_digit(self, picture: PictureSource) -> Digit:
        """The one digit a picture holds."""
        return self.answer(self.prepare(picture))

    def read_page(self, picture: PictureSource) -> Page:
        """Every line of digits, top to bottom.

        In a line, a piece as tall as the digits the model accepts there but
        refused itself is kept as "unsure" with its best digit: beside real
        digits, a digit is far likelier than junk. Smaller refused pieces (a
        dash, a speck, a stray mark) are left out, and so is a line without one
        digit the model is sure of.
        """
        return self.decide_pages([segment_page(_as_image(picture))])[0]

    def decide_pages(self, segmented: Sequence[list[list[Segment]]]) -> list[Page]:
        """Steps 2 and 3 of `read_page` for many pictures' lines (`segment_page`), in one model call."""
        pieces = [piece for lines in segmented for line in lines for piece in line]
        probabilities = iter(self.classify(np.stack([piece.image for piece in pieces])) if pieces else ())
        return [self._page(lines, probabilities) for lines in segmented]

    def _page(self, lines: list[list[Segment]], probabilities: Iterator[np.ndarray]) -> Page:
        """One picture's page, taking its pieces' rows of probabilities from `probabilities` in order."""
        found = []
        for line in lines:
            decided = [self.decide(next(probabilities), piece.box) for piece in line]
            accepted = [digit for digit in decided if digit.status != NO_DIGIT]
            if not any(digit.status == OK for digit in accepted):
                continue
            tall = _FULL_HEIGHT * float(np.median([d.box[3] - d.box[1] for d in accepted]))
            digits = tuple(
                replace(d, digit=d.top3[0][0], confidence=d.top3[0][1], status=UNSURE) if d.status == NO_DIGIT else d
                for d in decided
                if d.status != NO_DIGIT or d.box[3] - d.box[1] >= tall
            )
            found.append(Line(digits, reduce(union, [d.box for d in digits])))
        return Page(tuple(found))


def _as_image(picture: PictureSource) -> Image.Image:
    return picture if isinstance(picture, Image.Image) else load_image(picture)
