"""Benchmark: `digits read` on pages photographed turned a few degrees, as a hand-held phone or a skewed scan shows them.

`shared/`'s pages and numbers face the camera squarely. This turns each
picture and reads it again, to see what a turn costs:

  * on a table: turned whole (the picture grows to hold it), the corners
    filled with a dark desk, a grey one or a light table;
  * cut to the page: turned, then cut to the middle 85 % of its size, so
    what lay beyond the page shows only as wedges in the corners;
  * narrower at its top, as a camera held below the page's middle sees
    it, on a dark desk that shows as slivers down its sides.

Pictures: `--pages` generated pages of MNIST's *test* digits
(`digits.synth.pages`, seed `--seed`; the reader's rules for turned photos
were chosen on seed 0's pages, so the default is another), and, where
`--real` exists, the numbers and pages of the real pictures' development
fold (`real_sources.py`), named apart: choices were made looking at them.
Each is saved as a JPEG (quality 90) and read from those bytes with
`Reader.read_page`; a picture counts when its text is exact.

    python benchmarks/turned_photos.py [--pages 70] [--seed 2] [--real DIR]

Writes `turned_photos.json` and `turned_photos.md` to `--out` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PIL import Image, ImageOps

import real_sources
from _common import count_by_condition, data_arguments, described, results_table, write_counts
from digits.data import load_test
from digits.read.reader import Reader
from digits.synth.pages import encoded, make_pages

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real-digits"
# Cut to the page: the middle of the turned picture, this share of the picture's own size.
KEPT = 0.85


def jpeg(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def turned(picture: Image.Image, degrees: float, table: int | None) -> Image.Image:
    """The picture turned `degrees` on a table of grey level `table`, or cut to the page (`table` None)."""
    if table is not None:
        return picture.rotate(degrees, Image.Resampling.BICUBIC, expand=True, fillcolor=(table,) * 3)
    whole = picture.rotate(degrees, Image.Resampling.BICUBIC, expand=True)
    (width, height), (wide, high) = picture.size, whole.size
    margin_x, margin_y = (wide - KEPT * width) / 2, (high - KEPT * height) / 2
    return whole.crop((margin_x, margin_y, wide - margin_x, high - margin_y))


def narrower_at_top(picture: Image.Image, share: float, table: int) -> Image.Image:
    """The picture as a camera held below its middle sees it: its top `share` of its width narrower on each
    side, the slivers beside it a table of grey level `table`."""
    width, height = picture.size
    corners = (
        -share * width,
        0,
        0,
        height,
        width,
        height,
        (1 + share) * width,
        0,
    )  # the source's quad, for each output corner
    return picture.transform(
        picture.size, Image.Transform.QUAD, corners, Image.Resampling.BICUBIC, fillcolor=(table,) * 3
    )


CONDITIONS: tuple[tuple[str, Callable[[Image.Image], Image.Image]], ...] = (
    ("as it is", lambda picture: picture),
    ("turned 5° on a dark desk", partial(turned, degrees=5.0, table=60)),
    ("turned −4° on a grey desk", partial(turned, degrees=-4.0, table=90)),
    ("turned −6° on a light table", partial(turned, degrees=-6.0, table=200)),
    ("turned 5°, cut to the page", partial(turned, degrees=5.0, table=None)),
    ("turned −8°, cut to the page", partial(turned, degrees=-8.0, table=None)),
    ("8 % narrower at its top, on a dark desk", partial(narrower_at_top, share=0.08, table=60)),
)


def photographed(picture: Image.Image, condition: Callable[[Image.Image], Image.Image]) -> bytes:
    """The picture, upright by its EXIF orientation, under `condition`, as a JPEG."""
    return jpeg(condition(ImageOps.exif_transpose(picture).convert("RGB")))


def pictures(pages: int, seed: int, real: Path, data_dir: str | None) -> dict[str, list[tuple[Image.Image, str]]]:
    """(picture, text) per set: the generated pages and, where `real` exists, the development fold's numbers and pages."""
    x, y = load_test("mnist", data_dir)
    sets = {
        f"generated pages (seed {seed})": [
            (Image.open(io.BytesIO(encoded(page))), text) for page, text, _ in make_pages(x, y, pages, seed)
        ]
    }
    if real.is_dir():
        rows = [row for row in real_sources.pictures(real) if row["fold"] == "dev" and row["set"] in ("multi", "pages")]
        sets["development fold: real numbers and pages"] = [(Image.open(row["path"]), row["truth"]) for row in rows]
    return sets


def table(report: dict) -> str:
    rows = [
        {
            "condition": condition,
            **{name: f"{found[condition]}/{report['sizes'][name]}" for name, found in report["exact"].items()},
        }
        for condition, _ in CONDITIONS
    ]
    columns = [("condition", "picture")] + [(name, f"{name}: exact") for name in report["exact"]]
    note = (
        "Each picture turned, saved as a JPEG and read with `Reader.read_page`; exact: every line read, in order. "
        f"Cut to the page: the middle {KEPT:.0%} of the turned picture (the corners show what lay beyond the page). "
        "Some real numbers run to their picture's edge: cut to the page, they lose a digit to the cut itself. "
        "The rules for turned photos were chosen on generated pages of seed 0 and on the development fold."
    )
    return described(results_table(rows, columns), note, "turned_photos.py", report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=70, help="generated pages, the scenes taking turns")
    parser.add_argument("--seed", type=int, default=2)
    data_arguments(parser, REAL, "real-digits folder (its development fold is read)")
    args = parser.parse_args()
    if args.pages < 1:
        parser.error("--pages must be at least 1.")

    reader = Reader()
    sets = pictures(args.pages, args.seed, args.real, args.data_dir)
    transforms = dict(CONDITIONS)
    exact = count_by_condition(
        transforms,
        sets,
        lambda condition, _, __, item: reader.read_page(photographed(item[0], transforms[condition])).text == item[1],
    )
    write_counts(args.out, "turned_photos", ("exact", exact), sets, args.seed, table)


if __name__ == "__main__":
    main()
