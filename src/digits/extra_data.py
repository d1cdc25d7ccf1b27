"""More writers and real non-digits: the extra sets, verified and made MNIST-like.

Contract. Every loader here returns MNIST-style images, uint8 (N, 28, 28),
white ink on black, the ink fitted in a 20×20 box and centred by mass in
28×28: the digit sets with uint8 labels 0-9, the negative sets without.
Every file is read whole and checked against the SHA-256 pinned in `SETS`
before a byte of it is parsed; a mismatch, a missing file or an unreadable
one is one `DataError` sentence naming the file and the fix. Nothing here
imports TensorFlow.

The sets and where they come from are described in the data folder's
`EXTRA-DATASETS.md` and `negatives/README.md`:

  * digits: `usps` (US mail), `semeion` (Italian writers), `cvl` (Austrian
    writers, writer-disjoint train / validation / evaluation), `dida`
    (Swedish historical crops at their original size);
  * negatives ("not a digit"): `omniglot` (50 alphabets), `quickdraw`
    (doodles), `comnist` (Latin and Cyrillic capitals). Characters flagged
    `digit_like_level == 2` (Cyrillic з, Korean ㄱ, ...) are dropped: they
    read as digits.

Where a set is looked for, in order: `data_dir` (the CLI's `--data-dir`), else
`DIGITS_DATA_DIR`, taken as the set's own folder or as a data root holding
`<folder>/` (`usps/`, `cvl-digits/`, `negatives/omniglot/`, ...); then its
parent as a data root, so the folder that holds MNIST finds the sets kept
beside it (a reader preset trained with `--data-dir data/mnist` finds
`data/usps/`); then the user cache `~/.cache/digits/<folder>/`.
There is no download: these sets have no stable public mirror.

How each becomes MNIST-like: 16×16 and 28×28 scans (USPS, Semeion, CVL,
and the negatives) are thresholded into an ink mask and go through the
reader's own normalize step (`digits.normalize.to_mnist`: pen width brought
into MNIST's range, 20×20 box, centre of mass), which is how MNIST itself was
made from binary NIST scans. DIDA's crops are photographs of old paper with
rules, stains and neighbouring digits, so they go through the reader's whole
preprocessing (`digits.preprocess.prepare`), exactly as a user's crop would;
a crop in which it finds no ink is left out. Making the images costs up to a
minute per set, so they are cached (`reader_data`'s cache, keyed by the
files' digests and a probe of the normalizing code).

Splits. `usps`: the ESL train / test files. `cvl`: the competition's
writer-disjoint splits. `semeion` and `dida` have none; the last 20 % of
each class's rows in Semeion's file (ordered by writing session) and DIDA's crops
numbered above 800 in each class are the test part. Training parts are put
in a fixed shuffled order (the files are sorted by class), because
`train.split_data` validates on the last rows.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import inspect
import io
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits.errors import DataError

DIGIT_SETS = ("usps", "semeion", "cvl", "dida")
NEGATIVE_SETS = ("omniglot", "quickdraw", "comnist")

# QuickDraw's categories that are also among `real-digits/junk`'s doodles (drawn
# from the same public QuickDraw files): kept out of training negatives, so
# refusing those doodles still measures pictures the model has never seen.
QUICKDRAW_SEEN_IN_JUNK = ("apple", "bicycle", "cat", "eye", "house")

# The largest file any of these sets holds is 13 MB; refuse anything far past it.
_MAX_BYTES = 64 * 1024 * 1024
# The test part of the sets that come without a split.
_TEST_SHARE = 0.2
_SHUFFLE_SEED = 19


@dataclass(frozen=True)
class ExtraSet:
    name: str
    folder: str  # under a data root
    sha256: dict[str, str]  # file name -> SHA-256 of its bytes
    licence: str


SETS: dict[str, ExtraSet] = {s.name: s for s in (
    ExtraSet("usps", "usps", {
        "zip.train.gz": "66ebf231ab51f2cf6ac1a892d0f98ccffee1079d7a5db638c1f11f366046ca16",
        "zip.test.gz": "8dacc3c6e136af6c3488de9e5113a7daf140c8c2f1f0b61c54ee02f03f1a962f",
    }, "none stated; research data (Hull 1994, LeCun et al. 1990)"),
    ExtraSet("semeion", "semeion", {
        "semeion.data": "f43228ae3da5ea6a3c95069d53450b86166770e3b719dcc333182128fe08d4b1",
    }, "for machine-learning research, cite Semeion / Buscema 1998 (UCI)"),
    ExtraSet("cvl", "cvl-digits", {
        "cvl_single_digits_28x28.npz": "347e46af9707eceeecaf61bc6474dad8daf7fb37342d1e01e7e83ef5bd6ab783",
    }, "'freely available' (TU Wien CVL, ICDAR 2013 HDRC); no licence text"),
    ExtraSet("dida", "dida-10k", {
        "dida_10k_original_jpg.zip": "caba95250efbfed28e7acbaf82b1b21392f0dfc8c46ee2517078ba1977fe2bc9",
        "labels.csv": "22d2a579e708ae5821c485d2c6f041f4f8f91ab48e19b4e3bcfc5be980d4590f",
    }, "GPL-3.0 in the authors' repository, cite Kusetogullari et al. 2020; doubtful"),
    ExtraSet("omniglot", "negatives/omniglot", {
        "omniglot_105x105.npz": "5b13dcd2c78d409400d8d135f8ccfe8c171c997829620254415e6d616951445b",
    }, "MIT, cite Lake et al., Science 2015"),
    ExtraSet("quickdraw", "negatives/quickdraw", {
        "quickdraw_28x28.npz": "70fe6c4fdec349076280bf0e0157d04b351faf3e6c56ddd4cf0b0a6c60848880",
    }, "CC BY 4.0 (Google)"),
    ExtraSet("comnist", "negatives/comnist-early", {
        "comnist_early_278x278.npz": "a339991b92f4110f713b88c0b50e1cbb3992beb8e5da4b9fc60608438fb3fcef",
    }, "CC BY-SA 4.0 (G. Vial)"),
)}


# --- finding and verifying ------------------------------------------------------------


def _holds(folder: Path, spec: ExtraSet) -> bool:
    return all((folder / name).is_file() for name in spec.sha256)


def locate(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder a set is read from (see the module's docstring for the order)."""
    from digits.data import cache_dir

    spec = _spec(name)
    base = data_dir if data_dir is not None else os.environ.get("DIGITS_DATA_DIR")
    roots = [Path(base).expanduser(), Path(base).expanduser().parent] if base else []
    candidates = [c for root in roots for c in (root, root / spec.folder)] + [cache_dir(spec.folder)]
    for folder in candidates:
        if _holds(folder, spec):
            return folder
    where = f"{base}, its parent and the cache" if base else "the cache (DIGITS_DATA_DIR is not set)"
    raise DataError(f"{name}: not found in {where} (expected {', '.join(spec.sha256)} in a folder "
                    f"'{spec.folder}/'); point --data-dir or DIGITS_DATA_DIR at that folder or at the data root "
                    "holding it.")


def read_verified(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, bytes]:
    """Every file of a set, as bytes, each checked against its pinned SHA-256."""
    from digits.data import _check_digest

    spec, folder = _spec(name), locate(name, data_dir)
    raw = {}
    for file, digest in spec.sha256.items():
        path = folder / file
        try:
            if path.stat().st_size > _MAX_BYTES:
                raise DataError(f"{path}: larger than any file of the {name} set; refusing to read it.")
            raw[file] = path.read_bytes()
        except OSError as err:
            raise DataError(f"{path}: cannot be read ({err.strerror or err}).") from None
        _check_digest(raw[file], digest, path)
    return raw


def _spec(name: str) -> ExtraSet:
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
    return tuple(np.concatenate(column) for column in zip(*parts))


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
        keep &= npz["digit_like_level"] < 2
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
    "quickdraw": _parse_negatives("quickdraw_28x28.npz", QUICKDRAW_SEEN_IN_JUNK),
    "comnist": _parse_negatives("comnist_early_278x278.npz"),
}


# --- normalizing: the reader's own steps ---------------------------------------------


def box_scans(images: np.ndarray) -> dict[str, np.ndarray]:
    """Ink-bright scans -> MNIST-like float32 images through `to_mnist`; "labels" is 1 where there was ink.

    The mask is the ink above half-way between the picture's paper (its
    10th percentile: Semeion's stretched digits cover half their box) and
    its strongest ink, so grey paper (CVL) and antialiased strokes
    (QuickDraw) give the same masks as binary scans (Semeion, Omniglot).
    """
    from digits.normalize import to_mnist

    out = np.zeros((len(images), 28, 28), np.float32)
    kept = np.zeros(len(images), bool)
    for i, image in enumerate(images):
        paper, ink = float(np.percentile(image, 10)), float(image.max())
        if ink - paper < 32:  # no stroke stands out from the paper
            continue
        out[i] = to_mnist(np.asarray(image) > (paper + ink) / 2)[1]
        kept[i] = out[i].any()
    return {"images": out, "labels": kept.astype(np.int32)}


def prepare_crops(files: list[bytes]) -> dict[str, np.ndarray]:
    """Photographed crops (image files' bytes) -> what the reader's preprocessing makes; "labels": 1 with ink."""
    from digits.picture import load_image
    from digits.preprocess import prepare

    prepared = [prepare(load_image(file)) for file in files]
    return {"images": np.stack([p.image for p in prepared]).astype(np.float32).reshape(-1, 28, 28),
            "labels": np.array([p.has_ink for p in prepared], np.int32)}


def _normalized(name: str, images, raw: dict[str, bytes], workers: int | None, progress: bool) -> tuple:
    """(uint8 MNIST-like images, kept mask) for every row, from the cache when it was made before."""
    from digits import reader_data

    job = prepare_crops if name == "dida" else box_scans
    chunk = 500
    jobs = [(images[start:start + chunk],) for start in range(0, len(images), chunk)]
    # A change to the files, to this step's code or to what the reader's
    # normalizing makes of a sample spread over the set makes a new cache file.
    probe = [images[i] for i in np.linspace(0, len(images) - 1, 16).astype(int)]
    fingerprint = b"".join(hashlib.sha256(raw[f]).digest() for f in sorted(raw))
    fingerprint += inspect.getsource(job).encode() + reader_data._fingerprint(job(probe))

    def make():
        made = reader_data._in_chunks(job, jobs, reader_data._workers(workers),
                                      f"{name}: {len(images)} pictures" if progress else None)
        return {"images": np.round(made["images"] * 255).astype(np.uint8), "labels": made["labels"]}

    made = reader_data._cached(f"extra-{name}", fingerprint, make)
    return made["images"], made["labels"].astype(bool)


# --- public loaders ---------------------------------------------------------------------


def load_parts(name: str, data_dir: str | os.PathLike | None = None, workers: int | None = None,
               progress: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """A set's parts ("train", and "val" and "test" where it has them) as (images, labels).

    Images are uint8 (N, 28, 28), MNIST-like; labels uint8, or None for a
    negative set. Rows without ink are left out; training rows are in a fixed
    shuffled order, the others in file order.
    """
    raw = read_verified(name, data_dir)
    images, labels, split = _PARSERS[name](raw)
    boxed, kept = _normalized(name, images, raw, workers, progress)
    parts = {}
    for part in ("train", "val", "test"):
        rows = np.flatnonzero((split == part) & kept)
        if part == "train":
            rows = np.random.default_rng(_SHUFFLE_SEED).permutation(rows)
        if rows.size:
            parts[part] = (boxed[rows], None if labels is None else labels[rows])
    return parts


def load(name: str, data_dir: str | os.PathLike | None = None):
    """A digit set as `digits.data.load` returns MNIST: `((x_train, y_train), (x_test, y_test))`.

    CVL's training part is its train split followed by its validation split,
    so a `validation_split` of up to 0.5 validates on writers never trained on.
    """
    if name not in DIGIT_SETS:
        raise DataError(f"{name!r} holds no digits; `--dataset` takes one of {', '.join(DIGIT_SETS)} (or mnist).")
    parts = load_parts(name, data_dir)
    train = [parts[part] for part in ("train", "val") if part in parts]
    x_train, y_train = (np.concatenate(column) for column in zip(*train))
    return (x_train, y_train), parts["test"]


def load_negatives(names: tuple[str, ...] = NEGATIVE_SETS, data_dir: str | os.PathLike | None = None,
                   progress: bool = False) -> np.ndarray:
    """Real non-digits from the named negative sets, uint8 (N, 28, 28), MNIST-like.

    Omniglot's and CoMNIST's digit look-alikes are dropped, and so are
    QuickDraw's categories that `real-digits/junk` also shows (`QUICKDRAW_SEEN_IN_JUNK`).
    """
    unknown = [name for name in names if name not in NEGATIVE_SETS]
    if unknown:
        raise DataError(f"{unknown[0]!r} is not a set of non-digits; choose from {', '.join(NEGATIVE_SETS)}.")
    arrays = [load_parts(name, data_dir, progress=progress)["train"][0] for name in names]
    return np.concatenate(arrays) if arrays else np.zeros((0, 28, 28), np.uint8)


# The licences of the datasets `digits.data` loads, as far as their sources state one.
_DATASET_LICENCES = {
    "mnist": "none stated in its source; cite LeCun, Cortes and Burges",
    "fashion-mnist": "MIT (Zalando Research)",
}


def training_sets(config: dict) -> list[dict[str, str]]:
    """The datasets a run learnt from, each with its licence as stated: the shipped model's card lists them."""
    names = [config["dataset"], *config.get("extra_digits", []), *config.get("real_negatives", [])]
    return [{"name": name, "licence": SETS[name].licence if name in SETS else _DATASET_LICENCES.get(name, "unknown")}
            for name in names]


def digests(name: str) -> dict[str, str]:
    """The pinned digests, recorded in a run's provenance."""
    return dict(_spec(name).sha256)
