"""The extra sets' files: where they are found, their pinned SHA-256, and how their bytes parse.

Contract. `read_verified(name)` returns every file of a set as bytes, each checked against
the digest pinned in `SETS` before a byte of it is parsed; `parse(name, raw)` turns those bytes
into (images, labels or None, split per row) in file order, images uint8 ink-bright arrays at
their original size. A missing, unreadable or mismatching file is one `DataError` sentence naming
the file and the fix. Making the images MNIST-like needs the reader, so it happens a layer up,
in `digits.train.extra_data`; this module is core: NumPy and the standard library only.
Where the sets are looked for is described in `digits.train.extra_data`.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits.errors import DataError
from digits.safe_open import read_regular

# QuickDraw's categories that are also among `real-digits/junk`'s doodles (drawn
# from the same public QuickDraw files): kept out of training negatives, so
# refusing those doodles still measures pictures the model has never seen.
QUICKDRAW_SEEN_IN_JUNK = ("apple", "bicycle", "cat", "eye", "house")
# QuickDraw's diamonds are closed four-sided loops: the shape of many people's 0.
# Taught as "not a digit", they made the model refuse a slanted 0 on a page.
QUICKDRAW_DIGIT_LIKE = ("diamond",)

# The largest file any of these sets holds is 13 MB; refuse anything far past it.
_MAX_BYTES = 64 * 1024 * 1024
# The test part of the sets that come without a split.
_TEST_SHARE = 0.2


@dataclass(frozen=True)
class ExtraSet:
    name: str
    folder: str  # under a data root
    sha256: dict[str, str]  # file name -> SHA-256 of its bytes
    licence: str


SETS: dict[str, ExtraSet] = {
    s.name: s
    for s in (
        ExtraSet(
            "usps",
            "usps",
            {
                "zip.train.gz": "66ebf231ab51f2cf6ac1a892d0f98ccffee1079d7a5db638c1f11f366046ca16",
                "zip.test.gz": "8dacc3c6e136af6c3488de9e5113a7daf140c8c2f1f0b61c54ee02f03f1a962f",
            },
            "none stated; research data (Hull 1994, LeCun et al. 1990)",
        ),
        ExtraSet(
            "semeion",
            "semeion",
            {
                "semeion.data": "f43228ae3da5ea6a3c95069d53450b86166770e3b719dcc333182128fe08d4b1",
            },
            "for machine-learning research, cite Semeion / Buscema 1998 (UCI)",
        ),
        ExtraSet(
            "cvl",
            "cvl-digits",
            {
                "cvl_single_digits_28x28.npz": "347e46af9707eceeecaf61bc6474dad8daf7fb37342d1e01e7e83ef5bd6ab783",
            },
            "'freely available' (TU Wien CVL, ICDAR 2013 HDRC); no licence text",
        ),
        ExtraSet(
            "dida",
            "dida-10k",
            {
                "dida_10k_original_jpg.zip": "caba95250efbfed28e7acbaf82b1b21392f0dfc8c46ee2517078ba1977fe2bc9",
                "labels.csv": "22d2a579e708ae5821c485d2c6f041f4f8f91ab48e19b4e3bcfc5be980d4590f",
            },
            "GPL-3.0 in the authors' repository, cite Kusetogullari et al. 2020; doubtful",
        ),
        ExtraSet(
            "omniglot",
            "negatives/omniglot",
            {
                "omniglot_105x105.npz": "5b13dcd2c78d409400d8d135f8ccfe8c171c997829620254415e6d616951445b",
            },
            "MIT, cite Lake et al., Science 2015",
        ),
        ExtraSet(
            "quickdraw",
            "negatives/quickdraw",
            {
                "quickdraw_28x28.npz": "70fe6c4fdec349076280bf0e0157d04b351faf3e6c56ddd4cf0b0a6c60848880",
            },
            "CC BY 4.0 (Google)",
        ),
        ExtraSet(
            "comnist",
            "negatives/comnist-early",
            {
                "comnist_early_278x278.npz": "a339991b92f4110f713b88c0b50e1cbb3992beb8e5da4b9fc60608438fb3fcef",
            },
            "CC BY-SA 4.0 (G. Vial)",
        ),
    )
}


# --- finding and verifying ------------------------------------------------------------


def _holds(folder: Path, spec: ExtraSet) -> bool:
    return all((folder / name).is_file() for name in spec.sha256)


def locate(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder a set is read from (see the module's docstring for the order)."""
    from digits.data import cache_dir

    spec = set_spec(name)
    base = data_dir if data_dir is not None else os.environ.get("DIGITS_DATA_DIR")
    roots = [Path(base).expanduser(), Path(base).expanduser().parent] if base else []
    candidates = [c for root in roots for c in (root, root / spec.folder)] + [cache_dir(spec.folder)]
    for folder in candidates:
        if _holds(folder, spec):
            return folder
    where = f"{base}, its parent and the cache" if base else "the cache (DIGITS_DATA_DIR is not set)"
    raise DataError(
        f"{name}: not found in {where} (expected {', '.join(spec.sha256)} in a folder "
        f"'{spec.folder}/'); point --data-dir or DIGITS_DATA_DIR at that folder or at the data root "
        "holding it."
    )


def read_verified(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, bytes]:
    """Every file of a set, as bytes, each checked against its pinned SHA-256."""
    from digits.data import check_digest

    spec, folder = set_spec(name), locate(name, data_dir)
    raw = {}
    for file, digest in spec.sha256.items():
        path = folder / file
        raw[file] = read_regular(path, _MAX_BYTES, DataError, f"restore the {name} set's own files")
        check_digest(raw[file], digest, path)
    return raw


def set_spec(name: str) -> ExtraSet:
    """The pinned description of set `name`, or one sentence naming the sets there are."""
    try:
        return SETS[name]
    except KeyError:
        raise DataError(f"unknown extra dataset {name!r}; choose one of {', '.join(SETS)}.") from None


def _fault(name: str, what: str) -> DataError:
    return DataError(f"{name}: {what}; the file matches its digest, so the loader is at fault - please report it.")


# --- parsing: raw bytes -> ink-bright images, labels, split ---------------------------
# Each parser returns (images, labels or None, split) in file order; split is
# "train", "val" or "test" per row, and images are uint8 ink-bright arrays.


def _npz(raw: bytes) -> np.lib.npyio.NpzFile:
    return np.load(io.BytesIO(raw), allow_pickle=False)


def _parse_usps(raw: dict[str, bytes]):
    parts = []
    for file, split in (("zip.train.gz", "train"), ("zip.test.gz", "test")):
        table = np.loadtxt(io.BytesIO(gzip.decompress(raw[file])), dtype=np.float32, ndmin=2)
        if table.shape[1] != 257:
            raise _fault(file, f"{table.shape[1]} columns, expected 257")
        images = np.round((table[:, 1:] + 1) * 127.5).clip(0, 255).astype(np.uint8).reshape(-1, 16, 16)
        parts.append((images, table[:, 0].astype(np.uint8), np.full(len(table), split)))
    return tuple(np.concatenate(column) for column in zip(*parts, strict=False))


def _parse_semeion(raw: dict[str, bytes]):
    table = np.loadtxt(io.BytesIO(raw["semeion.data"]), dtype=np.float32, ndmin=2)
    if table.shape[1] != 266:
        raise _fault("semeion.data", f"{table.shape[1]} columns, expected 266")
    images = (table[:, :256] * 255).astype(np.uint8).reshape(-1, 16, 16)
    labels = table[:, 256:].argmax(1).astype(np.uint8)
    # The file runs through the classes several times, a session of writers
    # at a time: the last rows of each class are the last writers.
    rank = np.zeros(len(labels))
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        rank[rows] = np.arange(len(rows)) / len(rows)
    return images, labels, np.where(rank >= 1 - _TEST_SHARE, "test", "train")


def _parse_cvl(raw: dict[str, bytes]):
    with _npz(raw["cvl_single_digits_28x28.npz"]) as npz:
        return 255 - npz["x"], npz["y"].astype(np.uint8), np.array(["train", "val", "test"])[npz["split"]]


def _parse_dida(raw: dict[str, bytes]):
    """The crops as their JPEG files' bytes (they differ in size), their labels and split."""
    rows = list(csv.DictReader(io.StringIO(raw["labels.csv"].decode("utf-8"))))
    archive = zipfile.ZipFile(io.BytesIO(raw["dida_10k_original_jpg.zip"]))
    try:
        images = [archive.read(row["file"]) for row in rows]
    except KeyError as err:
        raise _fault("labels.csv", f"names a file the zip does not hold ({err})") from None
    number = np.array([int(Path(row["file"]).stem.split("_")[1]) for row in rows])
    split = np.where(number > round(1000 * (1 - _TEST_SHARE)), "test", "train")
    return images, np.array([int(row["label"]) for row in rows], np.uint8), split


def _kept(npz, exclude: tuple[str, ...] = ()) -> np.ndarray:
    keep = np.ones(len(npz["x"]), bool)
    if "digit_like_level" in npz.files:
        # Level 2 reads as a digit; level 1 holds the letters shaped like O, I, l,
        # S, Z, b, g, q. Taught as "not a digit" beside the rest, they made the
        # model refuse 6 % of the real single digits (0s, 1s, 2s and 5s first).
        keep &= npz["digit_like_level"] == 0
    if exclude:
        keep &= ~np.isin(npz["label"], exclude)
    return npz["x"][keep]


def _parse_negatives(file: str, exclude: tuple[str, ...] = ()):
    def parse(raw: dict[str, bytes]):
        with _npz(raw[file]) as npz:
            images = _kept(npz, exclude)
        return images, None, np.full(len(images), "train")

    return parse


_PARSERS: dict[str, Callable] = {
    "usps": _parse_usps,
    "semeion": _parse_semeion,
    "cvl": _parse_cvl,
    "dida": _parse_dida,
    "omniglot": _parse_negatives("omniglot_105x105.npz"),
    "quickdraw": _parse_negatives("quickdraw_28x28.npz", QUICKDRAW_SEEN_IN_JUNK + QUICKDRAW_DIGIT_LIKE),
    "comnist": _parse_negatives("comnist_early_278x278.npz"),
}


def parse(name: str, raw: dict[str, bytes]):
    """(images, labels or None, split per row) of set `name`, from its verified files."""
    return _PARSERS[name](raw)
