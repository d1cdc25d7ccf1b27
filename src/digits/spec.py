"""The model contract, in one place: what a digit image is, and what a model answers.

A digit image is `SHAPE` (28×28), float32 in [0, 1] (or uint8 0-255), a white digit on black,
centred by mass like MNIST. A model answers `DIGITS` probabilities, or `DIGITS + 1` when it has
the "not a digit" class, whose index is `REJECT`. Every module that builds, checks or reads these
imports them from here, so the contract is written once.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DIGITS",
    "DIGIT_NAMES",
    "NO_DIGIT",
    "NO_DIGITS",
    "OK",
    "REJECT",
    "REJECT_NAME",
    "SHAPE",
    "SIZE",
    "UNSURE",
    "Box",
    "class_count",
    "refused",
]

SIZE = 28  # px: MNIST's side, and the side of every image a model takes
SHAPE = (SIZE, SIZE)
DIGITS = 10  # the classes 0-9
REJECT = DIGITS  # index of the "not a digit" class, in models that have it
REJECT_NAME = "not a digit"
DIGIT_NAMES = tuple(str(digit) for digit in range(DIGITS))

# The status of a reader's answer for one digit: sure, below the threshold, or refused.
OK = "ok"
UNSURE = "unsure"
NO_DIGIT = "no digit found"
NO_DIGITS = "no digits found"  # a page's: `read` found no number in it

# x0, y0, x1, y1 in a picture's pixels, ends exclusive.
Box = tuple[int, int, int, int]


def class_count(reject_class: bool) -> int:
    """How many outputs a model has: the ten digits, plus "not a digit" when it refuses."""
    return DIGITS + 1 if reject_class else DIGITS


def refused(probabilities: np.ndarray) -> np.ndarray:
    """Where "not a digit" outweighs every digit, for probabilities along the last axis (never, without that class).

    A tie goes to the digit: the reader's answer and its steadiness test decide alike.
    """
    if probabilities.shape[-1] <= REJECT:
        return np.zeros(probabilities.shape[:-1], dtype=bool)
    return np.asarray(probabilities[..., REJECT] > probabilities[..., :DIGITS].max(axis=-1))
