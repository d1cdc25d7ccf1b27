"""Benchmark: `digits read` on generated pages, scene by scene, beside RapidOCR.

Six real pages say little about which kinds of page fail, and they must not
be tuned on. This renders `--pages` pages of 2 to 4 numbers from MNIST's
*test* digits (`digits.synth.pages`: a sheet, a sheet on a desk, a sticky
note, ruled paper, numbers on an arc, a table inside a scanner's border, a
photo stored on its side with an EXIF rotation), saves each as the JPEG a
phone would, and reads the file with `Reader.read_page`, the path of
`digits read`. A page counts when its text is exact, every line in order; a
line counts when it is read exactly somewhere on its page.

With `--peers`, RapidOCR (PP-OCR in ONNX Runtime, from its wheel) reads the
same files in the same run, its digits kept line by line (`peers.py`).

    python benchmarks/synth_pages.py [--pages 140] [--seed 2] [--model RUN] [--peers]

Writes `synth_pages.json` and `synth_pages.md` to `--out` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from _common import RESULTS, results_table, write_results
from digits.data import load_test
from digits.read.reader import Reader
from digits.synth.pages import SCENES, encoded, make_pages


def score(texts: list[str], expected: list[str]) -> dict:
    """Exact pages and lines found, over pictures of one scene."""
    pages = sum(got == want for got, want in zip(texts, expected, strict=True))
    # A number written twice on a page counts twice: multisets, not sets.
    lines = sum(
        (Counter(want.split("\n")) & Counter(got.split("\n"))).total()
        for got, want in zip(texts, expected, strict=True)
    )
    return {
        "pages": len(expected),
        "exact": pages,
        "lines": sum(len(w.split("\n")) for w in expected),
        "lines_read": lines,
    }


def read_all(files: list[Path], readers: dict) -> dict[str, list[str]]:
    """Each contender's text for every file, the contenders taking turns file by file."""
    texts: dict[str, list[str]] = defaultdict(list)
    for file in files:
        for name, read in readers.items():
            texts[name].append(read(file))
    return texts


def table(report: dict) -> str:
    rows = []
    for scene in [*SCENES, "all"]:
        row = {"scene": scene}
        for name, by_scene in report["results"].items():
            s = by_scene[scene]
            row[name] = f"{s['exact']}/{s['pages']} ({s['lines_read']}/{s['lines']} lines)"
        rows.append(row)
    columns = [("scene", "scene")] + [(name, f"`{name}`: pages exact (lines)") for name in report["results"]]
    return "\n".join(
        [
            results_table(rows, columns),
            "",
            f"Generated pages of 2 to 4 numbers written with MNIST's test digits, {report['pages']} in all "
            f"(seed {report['seed']}), saved as JPEG files and read from the file. "
            "A page counts when all its numbers are read exactly and in order; a line, when it is read exactly anywhere on its page.",
            "",
            f"`python benchmarks/synth_pages.py {report['arguments']}` on {report['machine']}, Python {report['python']}.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=140, help="pages in all, the scenes taking turns")
    # The reader's rules for arcs, sheets, the paper's light and lines beside numbers
    # were changed looking at seeds 0 and 1: report another.
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--model", default=None, help="run folder or .onnx file (default: the shipped model)")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: DIGITS_DATA_DIR or cache)")
    parser.add_argument("--peers", action="store_true", help="RapidOCR reads the same files")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.pages < 1:
        parser.error("--pages must be at least 1.")

    x, y = load_test("mnist", args.data_dir)
    reader = Reader(args.model)
    if args.model is None:
        name = "digits"
    else:
        model = Path(args.model)
        name = model.stem if model.suffix == ".onnx" else model.name
    readers = {name: lambda file: reader.read_page(file).text}
    if args.peers:
        from peers import rapidocr_version, read_rapidocr

        if rapidocr_version() is None:
            parser.error("--peers needs RapidOCR: pip install rapidocr")
        readers["RapidOCR"] = lambda file: read_rapidocr(file, "page") or ""
    pages = make_pages(x, y, args.pages, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for k, (picture, _, _) in enumerate(pages):
            files.append(Path(folder) / f"page-{k:04d}.jpg")
            files[-1].write_bytes(encoded(picture))
        texts = read_all(files, readers)
    expected = [text for _, text, _ in pages]
    scenes = [scene for _, _, scene in pages]
    results = {}
    for contender, got in texts.items():
        by_scene = {
            scene: score(
                [g for g, s in zip(got, scenes, strict=True) if s == scene],
                [e for e, s in zip(expected, scenes, strict=True) if s == scene],
            )
            for scene in SCENES
        }
        by_scene["all"] = score(got, expected)
        results[contender] = by_scene
    argv = " ".join(sys.argv[1:])
    report = {
        "arguments": argv,
        "pages": args.pages,
        "seed": args.seed,
        "results": results,
        "wrong": {
            c: [(e, g, s) for g, e, s in zip(got, expected, scenes, strict=True) if g != e] for c, got in texts.items()
        },
        "machine": platform.platform(),
        "python": platform.python_version(),
    }
    write_results(args.out, "synth_pages", report, table(report))


if __name__ == "__main__":
    main()
