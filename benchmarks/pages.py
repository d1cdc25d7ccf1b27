"""Benchmark: what `digits read` gives on real pages, numbers and junk, picture by picture.

For every picture of `pages/`, `multi/` and `junk/` in a real-digits folder
(`--real`, default ../shared/data/real-digits) it prints the file, what was
expected and what `Reader.read_page` (the path of `digits read`) gave, lines
joined with `\\n` as in `pages/labels.csv`; junk expects nothing. Then one
summary line per set: exact pages and numbers, junk that gave a number, and
single digits read right by `read_digit` and by `read_page`. With `--time`, each page's time
next to Pillow's own decode of the same file (median of `--repeat` rounds,
alternating).

`--detector ppocr` measures the other way to find lines: PP-OCR's text
detector (the det model inside the `rapidocr` wheel, run here with ONNX
Runtime; nothing is downloaded) finds text-line boxes, and the reader reads
inside each box. Boxes are found as PP-OCR's DB post-processing does:
probability map over 0.3, regions of mean score 0.5 or more, each grown by
area × 1.6 / perimeter.

    python benchmarks/pages.py [--model RUN] [--real DIR] [--only pages,multi,junk,single] [--time]
    python benchmarks/pages.py --detector ppocr [--side 640]

Nothing is written: the output is for reading, and for the report.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from PIL import Image

from digits.read.load import load_image
from digits.read.reader import Reader

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "real-digits"
SETS = ("pages", "multi", "junk", "single")


def expected(folder: Path, name: str) -> list[tuple[Path, str]]:
    """(picture, expected answer) for one set; `\\n` in the labels is the line break."""
    column = {"pages": "text", "multi": "text", "junk": None, "single": "label"}[name]
    with open(folder / name / "labels.csv", newline="") as f:
        return [
            (folder / name / row["file"], row[column].replace("\\n", "\n") if column else "")
            for row in csv.DictReader(f)
        ]


class PPOCRLines:
    """`read_page` through PP-OCR's text detector: one reading per text-line box, top to bottom."""

    def __init__(self, reader: Reader, side: int):
        import importlib.resources

        import onnxruntime as ort

        model = importlib.resources.files("rapidocr") / "models" / "PP-OCRv6_det_small.onnx"
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        self.reader, self.side = reader, side

    def boxes(self, image: Image.Image) -> list[tuple[float, float, float, float]]:
        import numpy as np
        from scipy import ndimage

        rgb = image.convert("RGB")
        width, height = rgb.size
        scale = self.side / max(width, height)
        size = (max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32))
        pixels = np.asarray(rgb.resize(size, Image.BILINEAR), np.float32)[:, :, ::-1] / 255  # BGR, as PaddleOCR
        batch = np.ascontiguousarray(((pixels - 0.5) / 0.5).transpose(2, 0, 1)[None])
        probability = self.session.run(None, {self.session.get_inputs()[0].name: batch})[0][0, 0]
        labels, _ = ndimage.label(probability > 0.3)
        found = []
        for index, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
            if probability[rows, cols][labels[rows, cols] == index].mean() < 0.5:
                continue
            w, h = cols.stop - cols.start, rows.stop - rows.start
            grow = w * h * 1.6 / (2 * (w + h))  # DB's unclip distance
            sx, sy = width / size[0], height / size[1]
            found.append(
                (
                    max(0.0, (cols.start - grow) * sx),
                    max(0.0, (rows.start - grow) * sy),
                    min(width, (cols.stop + grow) * sx),
                    min(height, (rows.stop + grow) * sy),
                )
            )
        return sorted(found, key=lambda box: box[1])

    def read_page(self, image: Image.Image):
        crops = [tuple(round(v) for v in box) for box in self.boxes(image)]
        texts = [
            self.reader.read_page(image.crop(box)).text.replace("\n", "")
            for box in crops
            if box[2] > box[0] and box[3] > box[1]
        ]
        return SimpleNamespace(text="\n".join(text for text in texts if text))


def timed(work, path: Path, repeat: int) -> tuple[float, float]:
    """Median seconds of `work(path)` and of Pillow's full decode of the file, alternating."""

    def pillow(p: Path) -> None:
        with Image.open(p) as image:
            image.load()

    rounds: dict[str, list[float]] = {"ours": [], "pillow": []}
    for _ in range(repeat):
        for name, job in (("pillow", pillow), ("ours", work)):
            start = time.perf_counter()
            job(path)
            rounds[name].append(time.perf_counter() - start)
    return statistics.median(rounds["ours"]), statistics.median(rounds["pillow"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a run folder or .onnx file (default: the shipped model)")
    parser.add_argument("--real", type=Path, default=REAL)
    parser.add_argument("--only", default=",".join(SETS), help="comma-separated sets among " + ", ".join(SETS))
    parser.add_argument("--time", action="store_true", help="time each page and number against Pillow's decode")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quiet", action="store_true", help="print only the wrong pictures and the summary")
    parser.add_argument(
        "--detector",
        choices=("rules", "ppocr"),
        default="rules",
        help="find lines with the reader's own rules, or with PP-OCR's text detector",
    )
    parser.add_argument("--side", type=int, default=640, help="ppocr: the longer side the detector sees")
    args = parser.parse_args(argv)
    if not args.real.is_dir():
        print(f"{args.real}: no such folder; pass --real with the real-digits folder.", file=sys.stderr)
        return 2
    if args.detector == "ppocr" and importlib.util.find_spec("rapidocr") is None:
        print(
            "--detector ppocr needs the rapidocr wheel, which carries the model: pip install rapidocr.", file=sys.stderr
        )
        return 2
    reader = Reader(args.model)
    pages = PPOCRLines(reader, args.side) if args.detector == "ppocr" else reader
    summary = []
    for name in args.only.split(","):
        items = expected(args.real, name)
        right, by_read, ratios = 0, 0, []
        for path, want in items:
            if name == "single":
                picture = load_image(path)
                found = reader.read_digit(picture)
                got = "" if found.digit is None else str(found.digit)
                by_read += pages.read_page(picture).text == want
            else:
                got = pages.read_page(load_image(path)).text
            right += got == want
            line = f"{name:6} {'ok ' if got == want else 'BAD'} {path.name:42} want {want!r:40} got {got!r}"
            if args.time and name != "single":
                ours, pillow = timed(lambda p: pages.read_page(load_image(p)), path, args.repeat)
                ratios.append(ours / pillow)
                line += f"  {1000 * ours:.1f} ms = {ours / pillow:.2f}x Pillow"
            if not args.quiet or got != want:
                print(line)
        what = {
            "pages": "read exactly",
            "multi": "read exactly",
            "junk": "refused (no number)",
            "single": "read right",
        }[name]
        text = f"{name}: {right}/{len(items)} {what}"
        if name == "single":
            text += f" by `predict`, {by_read}/{len(items)} by `read`"
        if name == "junk":
            text += (
                f"; {len(items) - right}/{len(items)} = {100 * (len(items) - right) / len(items):.1f} % gave a number"
            )
        if ratios:
            text += f"; time median {statistics.median(ratios):.2f}x, worst {max(ratios):.2f}x Pillow's decode"
        summary.append(text)
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
