"""Benchmark: `digits read` on phone photos of a whole A4 sheet, its numbers a small part of the picture.

`synth_pages.py`'s pages are cut close round their numbers. A page of homework
or a form is photographed whole: a 12-megapixel photo of an A4 sheet, 2 to 4
numbers on it with digits 0.6 to 1.5 cm tall, the rest paper under uneven
light (`digits.synth.pages.make_whole_sheets`, MNIST's *test* digits). Each
photo is saved as a JPEG file and read with `Reader.read_page`. Per digit
height: the pages read exactly, the lines read exactly anywhere on their page,
and the pages that gave nothing at all (a whole page lost, not a digit
misread). No rule of the reader was made looking at these pages.

    python benchmarks/whole_sheets.py [--pages 20] [--seed 2]

Writes `whole_sheets.json` and `whole_sheets.md` to `--out` (default benchmarks/results).
"""

from __future__ import annotations

import argparse

from _common import described, generated_arguments, how_run, results_table, write_results
from digits.data import load_test
from digits.read.reader import Reader
from digits.synth.pages import encoded, make_whole_sheets

HEIGHTS_CM = (1.5, 1.0, 0.6)


def table(report: dict) -> str:
    rows = [
        {
            "digits": f"{cm:g} cm tall",
            "pages": f"{counts['pages']}/{report['sheets']}",
            "lines": f"{counts['lines']}/{counts['of_lines']}",
            "nothing": f"{counts['nothing']}/{report['sheets']}",
        }
        for cm, counts in zip(HEIGHTS_CM, report["by_height"], strict=True)
    ]
    columns = [
        ("digits", "digits on the sheet"),
        ("pages", "pages read exactly"),
        ("lines", "lines read exactly"),
        ("nothing", "pages that gave nothing"),
    ]
    note = (
        f"Phone photos (4000 px on the long side) of a whole A4 sheet with 2 to 4 numbers of MNIST's test digits, "
        f"seed {report['seed']}, saved as JPEG files and read with `Reader.read_page`. A page counts when all its "
        "numbers are read exactly and in order; a line, when it is read exactly anywhere on its page."
    )
    return described(results_table(rows, columns), note, "whole_sheets.py", report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args = generated_arguments(parser, "pages", 20, "photos per digit height")

    x, y = load_test("mnist", args.data_dir)
    reader = Reader()
    by_height = []
    for cm in HEIGHTS_CM:
        counts = {"pages": 0, "lines": 0, "of_lines": 0, "nothing": 0}
        for photo, text in make_whole_sheets(x, y, args.pages, args.seed, cm):
            got = reader.read_page(encoded(photo)).text
            wanted, found = text.split("\n"), got.split("\n") if got else []
            counts["pages"] += got == text
            counts["lines"] += sum(line in found for line in wanted)
            counts["of_lines"] += len(wanted)
            counts["nothing"] += not got
        print(f"digits {cm:g} cm: {counts}", flush=True)
        by_height.append(counts)
    report = {"by_height": by_height, "sheets": args.pages, "seed": args.seed, **how_run()}
    write_results(args.out, "whole_sheets", report, table(report))


if __name__ == "__main__":
    main()
