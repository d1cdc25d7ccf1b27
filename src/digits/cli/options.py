"""What the commands share: their common options and arguments, and the check that a command's extra is installed.

The choices Typer checks while parsing (presets, datasets) come from the TF-free core, so a bad value
fails before any command imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from digits import runs
from digits.cli.terminal import fail, shown
from digits.data import DATASETS, DIGIT_SETS
from digits.errors import install_hint
from digits.presets import PRESETS

RunArg = Annotated[Path, typer.Argument(help="Run folder (default: runs/latest).")]


def _model_path(value: str) -> Path:
    if not value:  # Path("") is the current folder: a run folder there would load without a word
        raise typer.BadParameter(
            "is empty; pass a run folder or an .onnx file, or leave --model out for the shipped model."
        )
    return Path(value)


ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        parser=_model_path,
        metavar="PATH",
        help="Run folder or .onnx file (default: the model the package ships).",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder with the dataset's files; for usps, semeion, cvl and dida also the data root holding their folders (else $DIGITS_DATA_DIR, the system's data folders, the cache; only MNIST and Fashion-MNIST are downloaded).",
    ),
]
RUNS = runs.RUNS
LATEST = RUNS / runs.LATEST


def _fraction(value: float) -> float:
    if not 0 <= value <= 1:  # also refuses nan, for which every comparison is false
        raise typer.BadParameter(f"must be a number from 0 to 1, not {value}.")
    return value


ThresholdOpt = Annotated[
    float,
    typer.Option(
        callback=_fraction,
        help="Below this confidence a digit is 'unsure' (0 to 1). `read` finds a number only where its digits are"
        " sure, so a higher threshold can leave lines out.",
    ),
]

# Paths of pictures stay strings: Typer would turn "" into Path("."), the current folder.
ImagePaths = list[str]
# Choices Typer checks while parsing, before any command imports TensorFlow.
if TYPE_CHECKING:  # a Literal built at run time is no type to mypy
    PresetName = str
    DatasetName = str
else:
    PresetName = Literal[tuple(PRESETS)]
    DatasetName = Literal[tuple(DATASETS) + DIGIT_SETS]


# What each extra brings, by the import name of a package it installs.
EXTRAS = {
    "train": ("tensorflow", "keras", "tf2onnx", "onnx", "matplotlib"),
    "tune": ("optuna", "sqlalchemy"),
    "serve": ("fastapi", "uvicorn", "python_multipart", "httptools", "prometheus_client"),
}


def require(command: str, *extras: str) -> None:
    """Refuse, in one line that says what to install, a command whose extra is not installed."""
    from importlib.util import find_spec

    missing = [extra for extra in extras if any(find_spec(name) is None for name in EXTRAS[extra])]
    if missing:
        spec = ",".join(missing)
        raise fail(f"digits {command} needs the {spec} extra{'s' if len(missing) > 1 else ''}: {install_hint(spec)}.")


def png_name(path: Path, option: str) -> None:
    """Refuse a file name `option` would save a PNG under without the .png suffix (its bytes would lie about it)."""
    if path.suffix.lower() != ".png":
        what = "a folder" if path.is_dir() else "no .png file"
        raise typer.BadParameter(f"{option} saves a PNG file: {shown(path)} is {what}; name a file ending in .png.")
