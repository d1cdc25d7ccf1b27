"""How long refusing a bomb and reading a big photo take: `digits` vs a plain Pillow resize, alternating.

The test suite checks what happens (a decompression bomb is refused from its
header; a 12-megapixel photo is analysed at a reduced size); this script
measures how long it takes, which tests must not:

  (a) a 400-megapixel 1-bit PNG (a few hundred KB on disk): `load_image`
      refusing it vs Pillow's own `Image.open` + `load()` refusing it;
  (b) a 4000x3000 photo of a digit on paper: `load_image` + `prepare` vs the
      naive `Image.open(...).convert("L").resize((28, 28))`.

Medians of --reps alternating rounds, written to
benchmarks/results/preprocess_speed.json and .md.

    python benchmarks/preprocess_speed.py [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from digits.atomic import write_json, write_text
from digits.errors import ImageError
from digits.read.load import load_image
from digits.read.pipeline import prepare
from digits.train import provenance

RESULTS = Path(__file__).resolve().parent / "results"


def make_files(folder: Path) -> tuple[Path, Path]:
    bomb = folder / "bomb.png"
    Image.new("1", (20000, 20000), 1).save(bomb, optimize=False)
    photo = folder / "photo.jpg"
    page = Image.new("L", (4000, 3000), 235)
    ImageDraw.Draw(page).line([(1500, 800), (2300, 800), (1700, 2200)], fill=30, width=90, joint="curve")
    page.save(photo, quality=90)
    return bomb, photo


def seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def refuse_ours(path: Path) -> None:
    try:
        load_image(path)
    except ImageError:
        return
    raise SystemExit("load_image accepted the bomb")


def refuse_pillow(path: Path) -> None:
    try:
        with Image.open(path) as image:
            image.load()
    except Image.DecompressionBombError:
        return
    raise SystemExit("Pillow accepted the bomb")


def read_ours(path: Path) -> None:
    prepare(load_image(path))


def read_naive(path: Path) -> None:
    with Image.open(path) as image:
        image.convert("L").resize((28, 28))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bomb, photo = make_files(Path(tmp))
        cases = {"bomb refused": (refuse_pillow, refuse_ours, bomb), "12 MP photo read": (read_naive, read_ours, photo)}
        raw = {name: {"pillow": [], "digits": []} for name in cases}
        for _ in range(args.reps):
            for name, (theirs, ours, path) in cases.items():
                raw[name]["pillow"].append(seconds(lambda theirs=theirs, path=path: theirs(path)))
                raw[name]["digits"].append(seconds(lambda ours=ours, path=path: ours(path)))
    rows = {name: {side: statistics.median(values) for side, values in sides.items()} for name, sides in raw.items()}
    machine = provenance.machine()
    lines = [
        f"Medians of {args.reps} alternating rounds (`python benchmarks/preprocess_speed.py`).",
        "",
        "| case | Pillow alone | digits |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {row['pillow'] * 1e3:.2f} ms | {row['digits'] * 1e3:.2f} ms |" for name, row in rows.items()]
    lines += [
        "",
        "Pillow alone: `Image.open` + `load()` for the bomb, `convert('L').resize((28, 28))` for the photo; "
        "digits: `load_image` (+ `prepare` for the photo).",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "preprocess_speed.json", {"reps": args.reps, "machine": machine, "raw": raw, "medians": rows})
    write_text(args.out / "preprocess_speed.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
