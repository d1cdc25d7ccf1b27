"""Two digits written touching: one piece as wide as two, read as the two it is.

Handwriting often joins neighbouring digits: a stroke runs on into the next
one, or two digits written close overlap. Their ink is then one piece, about
as wide as two digits, and the model, which learnt to refuse what is not one
digit, refuses it; a refused piece of full height stops its line, and the
number gives nothing (of 40 generated numbers of MNIST's test digits whose
one pair overlapped by 4 to 12 % of their height, 19 gave nothing and 15
were read exactly).

`cuts` cuts a piece at least `_WIDE` times as wide as tall in two where
its ink is thinnest, in up to `_CUTS` ways: the columns with the least ink
in the middle of its width (`_MIDDLE`), nearest the centre among equals,
`_APART` of the width apart. Each half is made MNIST-like as any digit is
(`normalize.to_mnist`). The pipeline keeps the mask of a piece that wide
(`pipeline.Segment.mask`); the reader cuts it (`with_cuts`) only when the
model refused it or was unsure of it (`cut_doubted`), asks about every half
in one more call, and `split_touching` takes the two halves of a cut in place of
the piece when the model is sure of each (`_SURE` or more): of several such
cuts, the one whose less sure half is surest. A half as wide as two digits
is cut in turn where the piece was cut through its least ink (`_DEPTH`: up
to four digits in one piece). A piece alone in
its line, no sure digit beside it, or one the model read as a digit, is
taken as two digits or more only when at most one of them is a 1 or a 7
(`_STROKES`): those are what the straight strokes of a letter, a grid or a
wide 1 cut apart pass for. A piece much smaller than
the sure digits beside it (`_AS_TALL`: a printed label's letters touching
in a word) is not cut. A wide piece that the model reads as one digit under
`_ONE_DIGIT` is cut too (two digits joined may pass for one), and read as
two when the model is surer of each than of the one. The line then meets the
same tests as any other (`refusal`: its mean confidence, each digit steady
when nudged). A piece too dense with strokes to be one digit (a signature)
is not cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from digits.read.answers import Digit
from digits.read.geometry import height, ink_box, width
from digits.read.normalize import to_mnist
from digits.spec import OK, Box

if TYPE_CHECKING:  # the pipeline imports this module: its Segment is only named here
    from digits.read.pipeline import Segment

# A digit is rarely wider than tall (MNIST's 0s and 2s: 0.6 to 0.9); two side by side are 1.2 to 2.
_WIDE = 1.0
# Where two digits meet: within the middle half of their width (a 1 beside a 0 meets at a third).
_MIDDLE = (0.25, 0.75)
# Where the ink is thinnest is not always where the digits meet (a stroke of one crosses the other): the
# columns of least ink this far apart (a share of the width) are tried, this many, and the surest kept.
_APART = 0.1
_CUTS = 3
# The digits a straight stroke passes for. A letter, a grid or a doodle alone, cut, gave "111", "77" and "177"
# (15 of 2,000 generated pictures with no digit), and a slanted 1 with a long flag, read as a 1, gave "11": a
# piece with no sure digit beside it in its line, or read as a digit, is read as two or more only when at most
# one of them is a 1 or a 7.
_STROKES = (1, 7)
# A piece is cut in two, and its halves in turn: up to four digits written touching.
_DEPTH = 2
# Two digits joined may pass for one (a 2 run into a 0 read as a 0 at 0.96): a wide piece read as a digit
# under this is cut too, and read as two when the model is surer of each than of the one.
_ONE_DIGIT = 0.99
# Digits written touching are as tall as the digits beside them; a printed label's letters, touching in
# a word ("To" of "Total:", read 7 and 0 beside a number on a form), are much smaller: a piece is cut only
# when at least this share of the height of the sure digits in its line.
_AS_TALL = 0.7
# A page of a few numbers holds a few pairs of digits touching; a picture with more wide pieces in doubt is
# the strokes of a texture (grass: 141 of them; cutting them all made it a fifth slower to read).
_MOST_CUT = 8
# The model must be this sure of each half.
_SURE = 0.9


def wide(mask: np.ndarray) -> bool:
    """Whether a piece's ink (its mask) is as wide as two digits: at least `_WIDE` times as wide as tall."""
    return _wide_box(ink_box(mask))


def _wide_box(box: Box | None) -> bool:
    return box is not None and width(box) >= _WIDE * height(box)


def cuts(mask: np.ndarray) -> list[tuple[tuple[np.ndarray, Box], tuple[np.ndarray, Box]]]:
    """For a piece's mask as wide as two digits, its `_CUTS` cuts, each two halves: a half's ink, cut to its
    own box, and where that box lies in `mask` (x0, y0, x1, y1); none for a narrower piece."""
    box = ink_box(mask)
    if box is None or not _wide_box(box):
        return []
    left, top, right, bottom = box
    ink = mask[top:bottom, left:right]
    span = right - left
    lo, hi = max(1, round(_MIDDLE[0] * span)), min(span - 1, round(_MIDDLE[1] * span))  # ink on both sides
    candidates = np.arange(lo, hi)
    cost = ink[:, lo:hi].sum(axis=0) + np.abs(candidates - span / 2) / span  # the least ink; then the centre
    chosen: list[int] = []
    for column in candidates[np.argsort(cost, kind="stable")]:
        if all(abs(column - cut) >= _APART * span for cut in chosen):
            chosen.append(int(column))
        if len(chosen) == _CUTS:
            break
    return [(_part(ink, 0, cut, (left, top)), _part(ink, cut, span, (left, top))) for cut in chosen]


def _part(ink: np.ndarray, start: int, stop: int, origin: tuple[int, int]) -> tuple[np.ndarray, Box]:
    """Columns `start` to `stop` of `ink` cut to their own ink, and where that lies (`origin`: `ink`'s corner).
    Both sides of a cut hold ink (`cuts` keeps a column from each edge)."""
    part = ink[:, start:stop]
    x0, y0, x1, y1 = ink_box(part) or (0, 0, *part.shape[::-1])
    dx, dy = origin[0] + start, origin[1]
    return part[y0:y1, x0:x1], (x0 + dx, y0 + dy, x1 + dx, y1 + dy)


def with_cuts(piece: Segment, depth: int = _DEPTH) -> Segment:
    """The piece with the ways to cut it in two (`Segment.cuts`) when it was kept with its mask (`Segment.mask`:
    as wide as two digits, spanning its box), each half made MNIST-like with its own box; the halves of its
    first cut (through the least ink) are cut in turn, `depth` times in all."""
    if piece.mask is None or not depth:
        return piece
    x0, y0, x1, y1 = piece.box
    across, down = (x1 - x0) / piece.mask.shape[1], (y1 - y0) / piece.mask.shape[0]

    def placed(at: Box) -> Box:
        left, top = x0 + round(at[0] * across), y0 + round(at[1] * down)
        return left, top, max(left + 1, x0 + round(at[2] * across)), max(top + 1, y0 + round(at[3] * down))

    found = []
    for rank, cut in enumerate(cuts(piece.mask)):
        left, right = (
            with_cuts(
                replace(piece, box=placed(at), image=to_mnist(part)[1], level_size=None, mask=part, cuts=()),
                depth - 1 if rank == 0 else 0,
            )
            for part, at in cut
        )
        found.append((left, right))
    return replace(piece, cuts=tuple(found))


def halves_of(piece: Segment) -> Iterator[Segment]:
    """Every half of every cut of the piece, and of their cuts in turn: what the model is asked about."""
    for cut in piece.cuts:
        for half in cut:
            yield half
            yield from halves_of(half)


def cut_doubted(lines: Sequence[Sequence[Segment]], decided: Sequence[Sequence[Digit]]) -> list[list[Segment]]:
    """A page's lines of pieces, with their cuts (`with_cuts`) those the reader may read as two digits or more:
    kept with their mask (as wide as two digits), doubted by the model (refused, unsure, or read under
    `_ONE_DIGIT`), and at least `_AS_TALL` as tall as the sure digits beside them in their line; none on a
    page with more than `_MOST_CUT` such pieces."""
    chosen = [_doubted_pieces(line, answers) for line, answers in zip(lines, decided, strict=True)]
    if sum(len(ks) for ks in chosen) > _MOST_CUT:
        return [list(line) for line in lines]
    return [
        [with_cuts(p) if k in ks else p for k, p in enumerate(line)] for line, ks in zip(lines, chosen, strict=True)
    ]


def _doubted_pieces(line: Sequence[Segment], decided: Sequence[Digit]) -> list[int]:
    """Which pieces of a line `cut_doubted` cuts, but for the page's count."""
    sure = [_sure(digit) for digit in decided]
    return [
        k
        for k, (piece, digit) in enumerate(zip(line, decided, strict=True))
        if piece.mask is not None and (digit.status != OK or digit.confidence < _ONE_DIGIT) and _as_tall(line, sure, k)
    ]


def split_touching(
    line: Sequence[Segment], decided: Sequence[Digit], read: Callable[[Segment], Digit]
) -> tuple[list[Segment], list[Digit]]:
    """The line's pieces and the reader's answers for them (`decided`), each piece with cuts (`cut_doubted`)
    replaced by its parts when the model is sure of each (`read` gives its answer for one), but a piece alone
    read as strokes (`_STROKES`) or as one digit more surely than as two."""
    pieces: list[Segment] = []
    digits: list[Digit] = []
    sure = [_sure(digit) for digit in decided]
    for k, (piece, digit) in enumerate(zip(line, decided, strict=True)):
        found = _read_cut(piece, read) if piece.cuts else None
        alone = not any(sure[:k] + sure[k + 1 :])
        if found and (alone or digit.status == OK) and sum(d.digit in _STROKES for _, d in found) > 1:
            found = None
        if found and digit.status == OK and min(d.confidence for _, d in found) <= digit.confidence:
            found = None  # read as one digit more surely than as two
        for part, answer in found or [(piece, digit)]:
            pieces.append(part)
            digits.append(answer)
    return pieces, digits


def _as_tall(line: Sequence[Segment], sure: Sequence[bool], k: int) -> bool:
    """Whether piece `k` of the line is at least `_AS_TALL` as tall as the sure digits beside it (if any)."""
    beside = [height(other.box) for j, other in enumerate(line) if sure[j] and j != k]
    return not beside or height(line[k].box) >= _AS_TALL * float(np.median(beside))


def _read_cut(piece: Segment, read: Callable[[Segment], Digit]) -> list[tuple[Segment, Digit]] | None:
    """The surest way to read the piece as two digits or more, cut by its cuts (the one whose least sure digit is
    surest), each part a sure digit or cut in turn; None when there is none."""
    best: tuple[float, list[tuple[Segment, Digit]]] | None = None
    for cut in piece.cuts:
        parts: list[tuple[Segment, Digit]] = []
        for half in cut:
            answer = read(half)
            inner = [(half, answer)] if _sure(answer) else _read_cut(half, read)
            if inner is None:
                break
            parts.extend(inner)
        else:
            least = min(answer.confidence for _, answer in parts)
            if best is None or least > best[0]:
                best = (least, parts)
    return best[1] if best else None


def _sure(digit: Digit) -> bool:
    return digit.digit is not None and digit.status == OK and digit.confidence >= _SURE
