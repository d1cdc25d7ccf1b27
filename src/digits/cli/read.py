"""The commands that read pictures: predict (one digit per picture) and read (every line of digits).

Many pictures go to `digits.cli.bulk` (folders, globs, lists, an output file, workers, a Dask cluster);
`--explain` reads one picture here and saves what the reader saw. A picture that does not open is one
line on stderr, the others are still read, and the command exits 2 at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from digits.cli.options import ImagePaths, ModelOpt, ThresholdOpt
from digits.cli.terminal import error, shown

if TYPE_CHECKING:
    from PIL import Image

    from digits.read.reader import Reader

# Many pictures at once (digits.cli.bulk): folders, globs, lists, an output file, workers, a Dask cluster.
RecursiveOpt = Annotated[
    bool, typer.Option("--recursive", "-r", help="Also read the pictures in sub-folders of folders given.")
]
OutOpt = Annotated[
    str | None,  # as typed: a Path would drop the slash of "results.csv/", which names a folder
    typer.Option(help="Write one row per picture to this .csv, .jsonl or .parquet file; running again resumes."),
]
WorkersOpt = Annotated[
    int | None, typer.Option(min=1, help="Processes reading pictures (default: one per core; one for a few pictures).")
]
DaskOpt = Annotated[str | None, typer.Option(help="Read on this Dask cluster instead, e.g. tcp://scheduler:8786.")]
IMAGES_HELP = "Pictures: files, folders, globs ('scans/**/*.jpg'), @list.txt (one path a line), or - (paths on stdin)."


def predict(
    images: Annotated[ImagePaths, typer.Argument(help=IMAGES_HELP)],
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file.")] = False,
    explain: Annotated[
        Path | None, typer.Option(help="Save the preprocessing steps as a PNG (one image only).")
    ] = None,
    threshold: ThresholdOpt = 0.5,
    recursive: RecursiveOpt = False,
    out: OutOpt = None,
    workers: WorkersOpt = None,
    dask: DaskOpt = None,
) -> None:
    """Recognize one digit per image (exit code 2 if any picture could not be read)."""
    from digits.cli import bulk
    from digits.read.explain import save_steps

    if explain is None:
        return bulk.run("predict", images, model, as_json, threshold, recursive, out, workers, dask)
    _explain_alone(images, explain, recursive=recursive, out=out, workers=workers, dask=dask)
    for reader, path, image in _each_picture(images, model, threshold, explain):
        prepared = reader.prepare(image)
        bulk.show("predict", path, reader.answer(prepared).to_dict(), as_json)
        save_steps(prepared, explain)


def _explain_alone(images: list[str], explain: Path, **bulk_options: object) -> None:
    """--explain reads one picture file here: the options of many pictures would be ignored, so they are refused."""
    if given := [f"--{name}" for name, value in bulk_options.items() if value is not None and value is not False]:
        raise typer.BadParameter(f"--explain reads one picture and writes no table; drop {', '.join(given)}.")
    if len(images) == 1 and (images[0] == "-" or images[0].startswith("@") or os.path.isdir(images[0])):
        raise typer.BadParameter("--explain takes one picture file, not a folder or a list.")
    if not explain.name:
        raise typer.BadParameter("--explain saves a PNG: give it a file name ending in .png.")
    if explain.suffix.lower() != ".png":
        raise typer.BadParameter(f"--explain saves a PNG: name the file .png, not {shown(explain)}.")


def _each_picture(
    images: list[str], model: Path | None, threshold: float, explain: Path | None
) -> Iterator[tuple[Reader, str, Image.Image]]:
    """Check --explain, load the reader, then yield (reader, path, picture) for each picture that opens.

    A file that does not open is reported in one line and the rest are still
    read; the command then exits 2 at the end.
    """
    from digits.read.reader import Reader

    if explain and len(images) != 1:
        raise typer.BadParameter("--explain takes exactly one image.")
    if explain and explain.exists() and Path(images[0]).exists() and os.path.samefile(explain, images[0]):
        raise typer.BadParameter("--explain would overwrite the picture it explains; name another file.")
    if explain:
        from digits.atomic import writable_target

        writable_target(explain)  # a folder, device, FIFO or read-only file there fails now, before any work
    reader = Reader(model, threshold=threshold)
    failures: list[str] = []
    for path, image in _readable_images(images, failures):
        yield reader, path, image
    if failures:
        raise typer.Exit(2)


def _readable_images(paths: list[str], failures: list[str]) -> Iterator[tuple[str, Image.Image]]:
    """Yield (path, image) for each file that opens as an image; report the others in one line each.

    The rest of the batch is still read; the command exits 2 at the end if `failures` is not empty.
    """
    from digits.errors import ImageError
    from digits.read.load import load_image

    for path in paths:
        try:
            image = load_image(path)
        except ImageError as err:
            error(str(err))
            failures.append(path)
            continue
        yield path, image


def read(
    images: Annotated[ImagePaths, typer.Argument(help=IMAGES_HELP)],
    model: ModelOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per file: lines -> digits -> boxes.")
    ] = False,
    explain: Annotated[
        Path | None, typer.Option(help="Save the picture with the boxes found as a PNG (one image only).")
    ] = None,
    threshold: ThresholdOpt = 0.5,
    recursive: RecursiveOpt = False,
    out: OutOpt = None,
    workers: WorkersOpt = None,
    dask: DaskOpt = None,
) -> None:
    """Read the numbers in a picture: every line of digits, top to bottom, one number per line (exit code 2 if any picture could not be read)."""
    from digits.cli import bulk
    from digits.read.explain import save_boxes

    if explain is None:
        return bulk.run("read", images, model, as_json, threshold, recursive, out, workers, dask)
    _explain_alone(images, explain, recursive=recursive, out=out, workers=workers, dask=dask)
    for reader, path, image in _each_picture(images, model, threshold, explain):
        page = reader.read_page(image)
        bulk.show("read", path, page.to_dict(), as_json)
        save_boxes(image, page, explain)
