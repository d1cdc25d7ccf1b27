"""Rules printed fainter than the writing, in pieces: a ruled page's red margin, a pale blue ruled line.

A rule much lighter than the pen crosses the ink threshold only in places,
so it comes apart into pieces. Each is too short for `rules.drop_rules` (a
rule is three digits long), and the longest reads as a 1 beside the number
it stands next to (a margin's pieces made "3026" read "13026"). What tells
them from writing is their ink: a pen's strokes vary in darkness along a
line of digits, by a factor of two at most (0.55 to 1 of the writing's
typical ink, as `ink` scales it, on 18 generated photographs of numbers on
ruled paper), while a margin's pieces there lie at a third (0.26 to 0.33).

`drop_faint_rules`, once the whole rules are gone, looks at the pieces at
least half as long as a straight run `_RUN` of the writing's height
(`rules.writing_height`): one whose median ink is under `_FAINT` of theirs
all together (the digits' mostly) loses the faint pixels (under `_FAINT`
too) of its straight runs that long (`rules.straight_runs`, within
`rules.MAX_TILT` degrees of either axis; a piece cut by the picture's edge
needs half a run inside it). Only those pixels go (`rules.cut_out`): a digit joined to the
margin keeps its strokes. A digit written at half the contrast of its
neighbours is no faint piece, and keeps its straight strokes; under about
that, `ink` (step 4) does not find a digit at all, so the faint pieces left
are a rule's, or a lone stroke as light.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from digits.read.geometry import cut_sides
from digits.read.ink import Analysis
from digits.read.levels import median
from digits.read.rules import MAX_TILT, cut_out, straight_runs, writing_height

# Pieces of a faint rule lie at about a third of the writing's ink; a pen's lightest digits at a half or more.
_FAINT = 0.45
# A rule's piece worth taking is one a reader would take for a 1: half a digit tall or more.
_RUN = 0.5


def drop_faint_rules(analysis: Analysis) -> Analysis:
    """The analysis without the straight runs of its faint pieces (see the module's contract)."""
    boxes = analysis.boxes
    if len(boxes) < 2:
        return analysis
    height = writing_height(analysis)
    if height is None:
        return analysis
    length = max(3, round(_RUN * height)) | 1
    # Only pieces that can hold such a run are looked at (a page of specks has hundreds that cannot), each by
    # the pixels in its box: a large photo's closer look is 2048 px square, and a pass over it costs more
    # than the rest. Their median ink is the writing's: the digits are such pieces.
    inks = {i: _ink_of(analysis, i) for i, (x0, y0, x1, y1) in boxes.items() if 2 * max(x1 - x0, y1 - y0) >= length}
    if len(inks) < 2:
        return analysis
    writing = median(np.concatenate(list(inks.values())))
    faint = [i for i, ink in inks.items() if median(ink) < _FAINT * writing]
    if not faint:
        return analysis
    labels, areas = analysis.labels.copy(), analysis.areas.copy()
    for i in faint:
        x0, y0, x1, y1 = boxes[i]
        piece = labels[y0:y1, x0:x1] == i
        left, top, right, bottom = cut_sides((x0, y0, x1, y1), analysis.edges)
        across = straight_runs(piece, length, MAX_TILT, (left, right))
        down = straight_runs(piece.T, length, MAX_TILT, (top, bottom)).T
        # Only the faint pixels of a run: a digit's stem joined to the margin, along it, is as straight and darker.
        faint_ink = analysis.ink[y0:y1, x0:x1] < _FAINT * writing
        areas = cut_out(labels, areas, i, (x0, y0, x1, y1), (across | down) & faint_ink)
    return replace(analysis, labels=labels, areas=areas)


def _ink_of(analysis: Analysis, label: int) -> np.ndarray:
    """The ink of one piece's pixels."""
    x0, y0, x1, y1 = analysis.boxes[label]
    ink: np.ndarray = analysis.ink[y0:y1, x0:x1][analysis.labels[y0:y1, x0:x1] == label]
    return ink
