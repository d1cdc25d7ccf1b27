"""What the reader answers: a `Digit`, the `Line`s of a page, the `Page`.

Each is frozen, and `to_dict` gives the JSON that `digits read --json`, the
HTTP server and the batch outputs write. A digit's `status` is one of
`digits.spec`'s: "ok", "unsure" or "no digit found"; a page's, "no digits
found" when it has no line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from digits.spec import NO_DIGIT, NO_DIGITS, OK, UNSURE, Box


@dataclass(frozen=True)
class Digit:
    """One digit found in a picture, or the fact that none was."""

    digit: int | None  # None when status is "no digit found"
    confidence: float  # of `digit`; for "no digit found", how sure the model is that it is not one (0 unasked)
    top3: tuple[tuple[int, float], ...]
    box: Box | None
    status: str  # "ok", "unsure" or "no digit found"

    def to_dict(self) -> dict[str, Any]:
        return {
            "digit": self.digit,
            "confidence": self.confidence,
            "top3": [{"digit": d, "confidence": c} for d, c in self.top3],
            "box": list(self.box) if self.box else None,
            "status": self.status,
        }

    @classmethod
    def unasked(cls, box: Box | None) -> Digit:
        """The answer "no digit found" without asking the model: no ink (`box` None), or ink too dense for one digit."""
        return cls(None, 0.0, (), box, NO_DIGIT)

    def placed_box(self) -> Box:
        """`box`, for a digit known to have one: every digit of a page does (and every one with ink)."""
        if self.box is None:
            raise ValueError(f"this digit ({self.status}) has no box: no ink was found for it")
        return self.box


@dataclass(frozen=True)
class Line:
    """The digits of one written line, left to right."""

    digits: tuple[Digit, ...]
    box: Box

    @property
    def text(self) -> str:
        return "".join(str(d.digit) for d in self.digits)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "box": list(self.box), "digits": [d.to_dict() for d in self.digits]}


@dataclass(frozen=True)
class Page:
    """Every line of digits in a picture, top to bottom."""

    lines: tuple[Line, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    @property
    def status(self) -> str:
        """ "no digits found" without a line; "unsure" when any digit is; else "ok"."""
        digits = [digit for line in self.lines for digit in line.digits]
        return NO_DIGITS if not digits else UNSURE if any(d.status == UNSURE for d in digits) else OK

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "status": self.status, "lines": [line.to_dict() for line in self.lines]}
