"""Benchmark: `digits read` on numbers written on printed forms, their labels beside or above them.

A form prints its labels ("Total:", "Student ID:") and a hand fills in the
numbers. Printed letters are smaller than handwriting, and some read as
digits. This draws `--forms` forms per layout from MNIST's *test* digits
(three times their size, about 60 px tall) and labels in Pillow's own font at
26 to 40 px, saves each as a JPEG and reads it with `Reader.read_page`; a
form counts when its numbers are read exactly, in order. Layouts:

  * label beside: "Total: 527", one number to a line;
  * label above: each label on a line of its own over its number;
  * a title above: one printed line over the numbers, no labels;
  * labels in a column: a title, then the labels at the left and the numbers
    in a column of their own, far enough to the right that each label is a
    line of writing apart from its number (a stock list, a meter log);
  * a comb, boxes: the label beside, each digit in a cell of its own, under
    a comb (a line with teeth between the cells) or in a row of boxes sharing
    their walls, printed 1 or 2 px wide in a grey from black to light.

The reader's rules for printed labels (`digits.read.refusal`) were chosen
on forms like these drawn in other fonts (DejaVu Sans, Liberation Serif);
this benchmark's seed and font were not looked at. Its rule for cells' walls
(`digits.read.walls`) was chosen on combs and boxes drawn with CVL's
writers; these two layouts were added after it, and not tuned on.

    python benchmarks/forms.py [--forms 40] [--seed 2]

Writes `forms.json` and `forms.md` to `--out` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from _common import count_by_condition, described, generated_arguments, results_table, write_counts
from digits.data import load_test
from digits.read.reader import Reader

LABELS = ("Name:", "Amount:", "Date:", "Total:", "Invoice no.", "Phone:", "Student ID:", "Score:", "Room:", "Age:")
LAYOUTS = ("label beside", "label above", "a title above", "labels in a column", "a comb", "boxes")
CELLS = ("a comb", "boxes")
CELL = 100  # a cell's width, for one digit
DIGIT_SIDE = 84  # MNIST's 28 px, three times
COLUMN = 440  # where the numbers start in a form whose labels are a column of their own


def form(x: np.ndarray, y: np.ndarray, layout: str, seed: int, index: int) -> tuple[bytes, str]:
    """One form as a JPEG, and its numbers' text; the same for the same arguments."""
    rng = np.random.default_rng([seed, LAYOUTS.index(layout), index])
    font = ImageFont.load_default(size=int(rng.integers(26, 41)))
    page = Image.new("L", (900, 760), 250)
    draw = ImageDraw.Draw(page)
    numbers, top = [], 40
    if layout in ("a title above", "labels in a column"):
        draw.text((40, top), "Monthly report - form B", font=font, fill=20)
        top += 110
    for _ in range(int(rng.integers(2, 4))):
        picks = rng.integers(0, len(x), int(rng.integers(2, 6)))
        numbers.append("".join(str(y[i]) for i in picks))
        ink = 255 - np.hstack([x[i] for i in picks])
        written = Image.fromarray(ink).resize((ink.shape[1] * 3, DIGIT_SIDE), Image.Resampling.BICUBIC)
        label = LABELS[int(rng.integers(len(LABELS)))]
        left = 60
        if layout in CELLS:
            draw.text((40, top + 30), label, font=font, fill=20)
            left += int(draw.textlength(label, font=font)) + 20
            _cells(draw, (left, top), len(picks), layout == "boxes", rng)
            for k, i in enumerate(picks):
                digit = Image.fromarray(255 - x[i]).resize((DIGIT_SIDE, DIGIT_SIDE), Image.Resampling.BICUBIC)
                x0 = left + k * CELL + (CELL - DIGIT_SIDE) // 2
                box = (x0, top, x0 + DIGIT_SIDE, top + DIGIT_SIDE)
                page.paste(Image.fromarray(np.minimum(np.asarray(page.crop(box)), np.asarray(digit))), box[:2])
            top += DIGIT_SIDE + 36
            continue
        if layout in ("label beside", "labels in a column"):
            draw.text((40, top + 30), label, font=font, fill=20)
            left = COLUMN if layout == "labels in a column" else left + int(draw.textlength(label, font=font))
        elif layout == "label above":
            draw.text((40, top), label.rstrip(":"), font=font, fill=20)
            top += 60
        box = (left, top, left + written.width, top + DIGIT_SIDE)
        page.paste(Image.fromarray(np.minimum(np.asarray(page.crop(box)), np.asarray(written))), box[:2])
        top += DIGIT_SIDE + 36
    buffer = io.BytesIO()
    page.crop((0, 0, 900, min(760, top + 20))).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue(), "\n".join(numbers)


def _cells(draw: ImageDraw.ImageDraw, at: tuple[int, int], count: int, boxes: bool, rng: np.random.Generator) -> None:
    """`count` cells of `CELL` px from `at` (the top of the digits' boxes): boxes sharing their walls, or a comb
    whose teeth rise a third of the way; a digit's ink ends about 12 px above the bottom line."""
    left, top = at
    shade, width = int(rng.integers(0, 170)), int(rng.integers(1, 3))
    bottom, high = top + DIGIT_SIDE + 2, top - 8
    right = left + count * CELL
    draw.line([(left, bottom), (right, bottom)], fill=shade, width=width)
    if boxes:
        draw.line([(left, high), (right, high)], fill=shade, width=width)
    for k in range(count + 1):
        x = left + k * CELL
        draw.line([(x, high if boxes else bottom - (bottom - high) // 3), (x, bottom)], fill=shade, width=width)


def table(report: dict) -> str:
    [(name, exact)] = report["exact"].items()
    size = report["sizes"][name]
    rows = [{"layout": layout, "read": f"{exact[layout]}/{size}"} for layout in LAYOUTS]
    what = (
        "Forms of 2 or 3 numbers of MNIST's test digits (about 60 px tall), labels in Pillow's own font at "
        f"26 to 40 px, seed {report['seed']}, saved as JPEG files and read with `Reader.read_page`; a form "
        "counts when every number is read exactly, in order."
    )
    return described(
        results_table(rows, [("layout", "form"), ("read", f"{name}: read exactly")]), what, "forms.py", report
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args = generated_arguments(parser, "forms", 40, "forms per layout")

    x, y = load_test("mnist", args.data_dir)
    reader = Reader()
    name = f"generated forms (seed {args.seed})"
    sets = {name: list(range(args.forms))}

    def right(layout: str, _: str, index: int, __: int) -> bool:
        picture, text = form(x, y, layout, args.seed, index)
        return reader.read_page(picture).text == text

    exact = count_by_condition(LAYOUTS, sets, right)
    write_counts(args.out, "forms", ("exact", exact), sets, args.seed, table)


if __name__ == "__main__":
    main()
