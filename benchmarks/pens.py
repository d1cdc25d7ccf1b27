"""Benchmark: one digit per picture, written with the pens real pictures come in, by writers no model here saw.

Issue 19 lists what fails on real pictures from other sources: faint pencil
digits scanned from exam sheets (small and light grey) refused as "no digit"
or misread, a bold marker digit on grey paper refused. This photographs
single digits of CVL's evaluation writers (176 people no model here learnt
from) and of MNIST's test set with `digits.synth.photograph` in three pens:

  * any pen: the realistic set's own mix of papers, inks, chalk and light;
  * faint pencil: light grey pencil, grainy, on white paper with its texture,
    the digit 14-34 px tall in a crop a few times its size;
  * marker: a bold black marker on grey paper, 40-160 px tall.

Each picture is read with `Reader.read_digit` (what `digits predict` does): a
digit is right when it names the label, sure or unsure, and refused when the
reader says there is no digit. With `--peers`, RapidOCR reads the first
`--peer-pictures` of the same pictures, saved as PNG files. The reader's rule for specks beside a digit
(`digits.read.pick`) was chosen on seed 0; the default is another.

    python benchmarks/pens.py [--pictures 500] [--seed 2] [--peers]

Writes `pens.json` and `pens.md` to `--out` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from _common import RESULTS, described, how_run, results_table, write_results
from digits.data import load_test
from digits.read.reader import Reader
from digits.synth.photograph import INKS, PAPERS, any_pen, make_singles, paper_style
from digits.train.extra_data import load_parts


def faint_pencil(rng: np.random.Generator):
    """Grey pencil pressed lightly (a third to three quarters of its full tone), grainy, small, on white paper."""
    return dataclasses.replace(
        paper_style(rng, (14, 34)),
        chalk=False,
        paper=np.array(PAPERS["white"]) * rng.uniform(0.9, 1.0),
        ink=np.array(INKS["pencil"]),
        opacity=float(rng.uniform(0.3, 0.75)),
        grain=float(rng.uniform(0.15, 0.35)),
        level=0.6,
        extra=0.0,
    )


def marker(rng: np.random.Generator):
    """A bold black marker on grey paper."""
    style = paper_style(rng, (40, 160))
    return dataclasses.replace(
        style,
        chalk=False,
        paper=np.array(PAPERS["grey"]) * rng.uniform(0.8, 1.0),
        ink=np.array(INKS["black"]),
        level=0.3,
        extra=float(rng.uniform(0.05, 0.1) * style.height),
        opacity=1.0,
        grain=0.0,
    )


PENS = {"any pen": any_pen, "faint pencil": faint_pencil, "marker on grey paper": marker}


def answers(read, pictures: list[tuple]) -> dict[str, int]:
    """How many of the pictures `read` (picture -> digit or None) gets right, refuses, and reads wrong."""
    found = [read(picture) for picture, _ in pictures]
    right = sum(digit == label for digit, (_, label) in zip(found, pictures, strict=True))
    refused = sum(digit is None for digit in found)
    return {"n": len(found), "right": right, "refused": refused, "wrong": len(found) - right - refused}


def rapidocr_reader(folder: Path):
    from peers import read_rapidocr

    def read(picture) -> int | None:
        path = folder / "picture.png"
        picture.save(path)
        text = read_rapidocr(path, "single") or ""
        return int(text[0]) if text else None

    return read


def table(report: dict) -> str:
    rows = []
    for source, by_pen in report["counts"].items():
        for pen, by_reader in by_pen.items():
            row = {"set": source, "pen": pen}
            for name, found in by_reader.items():
                row[name] = f"{found['right']}/{found['n']} ({found['refused']} refused)"
            rows.append(row)
    names = list(next(iter(next(iter(report["counts"].values())).values())))
    columns = [("set", "writers"), ("pen", "pen")] + [(name, f"{name}: right (refused)") for name in names]
    note = (
        f"{report['pictures']} pictures of one digit per writers and pen (seed {report['seed']}), read as "
        "`digits predict` reads them; right: the label named, sure or unsure; refused: no digit given."
        + (
            f" RapidOCR, a second or so a picture, reads the first {report['peer_pictures']} of each."
            if report.get("peer_pictures")
            else ""
        )
    )
    return described(results_table(rows, columns), note, "pens.py", report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pictures", type=int, default=500, help="pictures per writers and pen")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument(
        "--peers", action="store_true", help="RapidOCR reads the same pictures (the first --peer-pictures)"
    )
    parser.add_argument("--peer-pictures", type=int, default=100, help="pictures per writers and pen RapidOCR reads")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: DIGITS_DATA_DIR or cache)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.pictures < 1 or args.peer_pictures < 1:
        parser.error("--pictures and --peer-pictures must be at least 1.")

    reader = Reader()
    readers = {"digits": lambda picture: reader.read_digit(picture).digit}
    with tempfile.TemporaryDirectory() as folder:
        if args.peers:
            from peers import rapidocr_version

            if rapidocr_version() is None:
                parser.error("--peers needs RapidOCR: pip install rapidocr")
            readers["RapidOCR"] = rapidocr_reader(Path(folder))
        sources = {
            "CVL's evaluation writers": load_parts("cvl", args.data_dir)["test"],
            "MNIST's test digits": load_test("mnist", args.data_dir),
        }
        counts: dict[str, dict[str, dict]] = {}
        for source, (x, y) in sources.items():
            counts[source] = {}
            for pen_name, pen in PENS.items():
                pictures = make_singles(x, y, args.pictures, args.seed, pen)
                counts[source][pen_name] = {
                    name: answers(read, pictures if name == "digits" else pictures[: args.peer_pictures])
                    for name, read in readers.items()
                }
                print(source, pen_name, counts[source][pen_name], flush=True)
    report = {
        "counts": counts,
        "pictures": args.pictures,
        "peer_pictures": min(args.peer_pictures, args.pictures) if args.peers else None,
        "seed": args.seed,
        **how_run(),
    }
    write_results(args.out, "pens", report, table(report))


if __name__ == "__main__":
    main()
