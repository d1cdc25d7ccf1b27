"""Benchmark: digits and numbers a teacher or a form marked: a ring drawn round them, or a line under them.

`shared/`'s pictures hold no circled or underlined digit. This draws a hand-drawn
ring (an ellipse, wobbling, its pen 5-12 % of the writing's height) round each
picture's writing, or a line under it, and reads it again:

  * a closed ring, its end drawn a little past its start;
  * a ring left open by a tenth of a turn;
  * a ring whose end curls inward, as a pen lifting off does;
  * a tight ring, close enough to touch the writing here and there;
  * one line under the writing, or two, a little below it and a tenth of
    its width past it on both sides (pen 5-10 % of its height).

Pictures: `--singles` MNIST *test* digits and `--numbers` numbers of 2-4 of
them, dark ink on white paper, sampled with `--seed`; and, where `--real`
exists, the single digits of the real pictures' development fold
(`real_sources.py`), the mark drawn at the box the reader finds in the
picture as it is (named apart: the rules were made looking at such pictures).
A digit counts when `Reader.read_digit` gives it; a number when
`Reader.read_page` gives its text exactly.

    python benchmarks/marked.py [--singles 200] [--numbers 100] [--seed 3] [--real DIR]

Writes `marked.json` and `marked.md` to `--out` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

import real_sources
from _common import count_by_condition, data_arguments, described, results_table, write_counts
from digits.data import load_test
from digits.read.reader import Reader
from digits.spec import Box

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real-digits"
PAPER, INK = 250, 30
# A ring's shorter radius is at least this share of its longer.
FLATTEST = 0.35


def ringed(
    picture: Image.Image, box: Box, rng: np.random.Generator, past: float, size: float, curl: float = 0.0
) -> Image.Image:
    """`picture` with a hand-drawn ring round `box`: an ellipse through points wobbling a few per cent,
    from a random start round `1 + past` of a turn, its last tenth curling in by `curl` of its radius."""
    drawn = picture.convert("L")
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) + rng.normal(0, 0.03, 2) * (width, height)
    # Through the box's corners at `size` 1, and never flatter than `FLATTEST`: the ring round a 1 is an oval.
    radii = size * np.array([width, height]) / np.sqrt(2) * rng.uniform(0.95, 1.1, 2)
    radii = np.maximum(radii, FLATTEST * radii.max())
    turn = np.linspace(0, 2 * np.pi * (1 + past), 200) + rng.uniform(0, 2 * np.pi)
    wobble = 1 + 0.03 * np.sin(3 * turn + rng.uniform(0, 2 * np.pi))
    wobble -= curl * np.clip((np.arange(turn.size) / turn.size - 0.9) / 0.1, 0, 1)
    points = np.stack([np.cos(turn), np.sin(turn)], axis=1) * radii * wobble[:, None] + centre
    pen = max(2, round(rng.uniform(0.05, 0.12) * height))
    ImageDraw.Draw(drawn).line([tuple(p) for p in points], fill=INK, width=pen, joint="curve")
    return drawn


def underlined(picture: Image.Image, box: Box, rng: np.random.Generator, lines: int) -> Image.Image:
    """`picture` with `lines` hand-drawn lines under `box`, 12 % of its height apart, the first that far below
    it, each reaching about a tenth of its width past it on both sides and rising or falling a little."""
    drawn = picture.convert("L")
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    pen = max(2, int(rng.uniform(0.05, 0.1) * height))
    for k in range(lines):
        y = y1 + (0.12 + 0.12 * k) * height + rng.normal(0, 2)
        start, end = x0 - 0.1 * width + rng.normal(0, 3), x1 + 0.1 * width + rng.normal(0, 3)
        ImageDraw.Draw(drawn).line([(start, y), (end, y + rng.normal(0, 0.03 * height))], fill=INK, width=pen)
    return drawn


# Each condition's mark, drawn round or under the writing's box with the picture's own random draws. A ring:
# how far past its start its pen goes (negative: the gap it leaves), as a share of a turn; its radii as a share
# of the half-diagonal of the writing's box (1: it passes its corners); how far in its end curls, as a share
# of its radius, over its last tenth.
CONDITIONS: dict[str, Callable[[Image.Image, Box, np.random.Generator], Image.Image] | None] = {
    "as written": None,
    "in a closed ring": partial(ringed, past=0.06, size=1.2),
    "in a ring open by a tenth of a turn": partial(ringed, past=-0.1, size=1.2),
    "in a ring whose end curls inward": partial(ringed, past=0.1, size=1.2, curl=0.2),
    "in a tight ring that may touch it": partial(ringed, past=0.06, size=0.8),
    "underlined": partial(underlined, lines=1),
    "underlined twice": partial(underlined, lines=2),
}


def on_paper(glyphs: list[np.ndarray], scale: int) -> tuple[Image.Image, Box]:
    """MNIST glyphs side by side as dark ink on white paper, `scale` times their size, with room for a ring
    round them; and the box of their ink."""
    row = 255 - np.hstack(glyphs)
    ink = Image.fromarray(row).resize((row.shape[1] * scale, row.shape[0] * scale), Image.Resampling.BICUBIC)
    # Room for the ring (`ringed`): a number's oval reaches furthest above and below it.
    margin_x, margin_y = round(0.45 * ink.width) + 20, round(0.9 * ink.height) + 20
    paper = Image.new("L", (ink.width + 2 * margin_x, ink.height + 2 * margin_y), PAPER)
    paper.paste(ink, (margin_x, margin_y), Image.fromarray((np.asarray(ink) < PAPER).astype(np.uint8) * 255))
    rows, cols = np.nonzero(np.asarray(paper) < (PAPER + INK) / 2)
    return paper, (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)


def pictures(singles: int, numbers: int, seed: int, real: Path, data_dir: str | None, reader: Reader) -> dict:
    """(picture, its writing's box, truth) per set: generated digits and numbers, and the development fold's digits."""
    x, y = load_test("mnist", data_dir)
    rng = np.random.default_rng(seed)
    digits = [(*on_paper([x[i]], 3), str(y[i])) for i in rng.choice(len(x), singles, replace=False)]
    rows = []
    for length in rng.integers(2, 5, numbers):
        chosen = rng.choice(len(x), length, replace=False)
        rows.append((*on_paper([x[i] for i in chosen], 3), "".join(str(y[i]) for i in chosen)))
    sets = {f"generated digits (seed {seed})": digits, f"generated numbers (seed {seed})": rows}
    if real.is_dir():
        found = []
        for row in real_sources.pictures(real):
            if row["fold"] == "dev" and row["set"] == "single":
                picture = ImageOps.exif_transpose(Image.open(row["path"])).convert("RGB")
                digit = reader.read_digit(picture)
                if digit.box is not None:
                    found.append((picture, digit.box, row["truth"]))
        sets["development fold: real single digits"] = found
    return sets


def table(report: dict) -> str:
    rows = [
        {
            "condition": condition,
            **{name: f"{right[condition]}/{report['sizes'][name]}" for name, right in report["right"].items()},
        }
        for condition in CONDITIONS
    ]
    columns = [("condition", "picture")] + [(name, name) for name in report["right"]]
    note = (
        "A digit is right when `Reader.read_digit` gives it; a number when `Reader.read_page` gives exactly its "
        "text. The mark is drawn in dark ink round or under the writing's box (a real digit's: the box the "
        "reader finds in the picture as it is; where the picture is too tight for it, its edge cuts the ring, "
        "which then goes round nothing, or the line). The rules that take a ring or a line under a digit away "
        "were made looking at generated digits of other seeds and at the development fold."
    )
    return described(results_table(rows, columns), note, "marked.py", report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--singles", type=int, default=200, help="generated single digits")
    parser.add_argument("--numbers", type=int, default=100, help="generated numbers of 2-4 digits")
    parser.add_argument("--seed", type=int, default=3)
    data_arguments(parser, REAL, "real-digits folder (its development fold is read)")
    args = parser.parse_args()
    if args.singles < 1 or args.numbers < 1:
        parser.error("--singles and --numbers must be at least 1.")

    reader = Reader()
    sets = pictures(args.singles, args.numbers, args.seed, args.real, args.data_dir, reader)

    def read_right(condition: str, name: str, index: int, item: tuple[Image.Image, Box, str]) -> bool:
        picture, box, truth = item
        mark = CONDITIONS[condition]
        # Each picture's own mark: the same in every run, and drawn from the same draws under each condition.
        shown = picture if mark is None else mark(picture, box, np.random.default_rng([args.seed, index]))
        if name.startswith("generated numbers"):
            return reader.read_page(shown).text == truth
        return str(reader.read_digit(shown).digit) == truth

    right = count_by_condition(CONDITIONS, sets, read_right)
    write_counts(args.out, "marked", ("right", right), sets, args.seed, table)


if __name__ == "__main__":
    main()
