"""The commands that read pictures: predict (one digit per picture) and read (every line of digits).

Many pictures go to `digits.cli.bulk` (folders, globs, lists, an output file, workers, a Dask cluster),
where a picture that does not open is one line on stderr, the others are still read, and the command
exits 2 at the end. `--explain` reads one picture here and saves what the reader saw.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from digits.cli.options import ImagePaths, ModelOpt, ThresholdOpt, png_name

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
    explain: Annotated[str | None, typer.Option(help="Save the preprocessing steps as a PNG (one image only).")] = None,
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
    reader, path, image, saved = _explained_picture(images, model, threshold, explain, recursive, out, workers, dask)
    prepared = reader.prepare(image)
    bulk.show("predict", path, reader.answer(prepared).to_dict(), as_json)
    save_steps(prepared, saved)


def _explained_picture(
    images: list[str],
    model: Path | None,
    threshold: float,
    explain: str,
    recursive: bool,
    out: str | None,
    workers: int | None,
    dask: str | None,
) -> tuple[Reader, str, Image.Image, Path]:
    """The reader, the path of the one picture --explain reads, that picture, and the PNG it saves, once
    every check has passed.

    The options of many pictures would be ignored, so they are refused; a glob is taken when it matches one
    file (as without --explain); a picture that does not open is one line and exit 2, as any error of ours.
    """
    from digits.atomic import writable_target
    from digits.batch.inputs import expand
    from digits.read.load import load_image
    from digits.read.reader import Reader

    bulk_options = {"--recursive": recursive, "--out": out, "--workers": workers, "--dask": dask}
    if given := [name for name, value in bulk_options.items() if value is not None and value is not False]:
        raise typer.BadParameter(f"--explain reads one picture and writes no table; drop {', '.join(given)}.")
    if len(images) == 1 and (images[0] == "-" or images[0].startswith("@") or os.path.isdir(images[0])):
        raise typer.BadParameter("--explain takes one picture file, not a folder or a list.")
    # Kept a string until here: Path("out.png/") drops the slash that says a folder was meant.
    if not Path(explain).name or explain.endswith(("/", os.sep)):
        raise typer.BadParameter("--explain saves a PNG: give it a file name ending in .png.")
    explain_path = Path(explain)
    png_name(explain_path, "--explain")
    if len(images) != 1:
        raise typer.BadParameter("--explain takes exactly one image.")
    matches = expand(images)  # a glob's files; any other path as it is
    if len(matches) != 1:
        raise typer.BadParameter(f"--explain takes one picture file; {images[0]} matches {len(matches)} files.")
    path = matches[0]
    if explain_path.exists() and Path(path).exists() and os.path.samefile(explain_path, path):
        raise typer.BadParameter("--explain would overwrite the picture it explains; name another file.")
    writable_target(explain_path)  # a folder, device, FIFO or read-only file there fails now, before any work
    return Reader(model, threshold=threshold), path, load_image(path), explain_path


def read(
    images: Annotated[ImagePaths, typer.Argument(help=IMAGES_HELP)],
    model: ModelOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per file: lines -> digits -> boxes.")
    ] = False,
    explain: Annotated[
        str | None, typer.Option(help="Save the picture with the boxes found as a PNG (one image only).")
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
    reader, path, image, saved = _explained_picture(images, model, threshold, explain, recursive, out, workers, dask)
    page = reader.read_page(image)
    bulk.show("read", path, page.to_dict(), as_json)
    save_boxes(image, page, saved)
