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
    digit-like at all (`digit_like_level` 1 or 2: Cyrillic з, Korean ㄱ, and
    the letters shaped like O, I, S, Z, ...) are dropped: they read as digits.

Where a set is looked for, in order: `data_dir` (the CLI's `--data-dir`), else
`DIGITS_DATA_DIR`, taken as the set's own folder or as a data root holding
`<folder>/` (`usps/`, `cvl-digits/`, `negatives/omniglot/`, ...); then its
parent as a data root, so the folder that holds MNIST finds the sets kept
beside it (a reader preset trained with `--data-dir data/mnist` finds
`data/usps/`); then the user cache `~/.cache/digits/<folder>/`.
There is no download: these sets have no stable public mirror.

How each becomes MNIST-like: 16×16 and 28×28 scans (USPS, Semeion, CVL,
and the negatives) are thresholded into an ink mask and go through the
reader's own normalize step (`digits.read.normalize.to_mnist`: pen width brought
into MNIST's range, 20×20 box, centre of mass), which is how MNIST itself was
made from binary NIST scans. DIDA's crops are photographs of old paper with
rules, stains and neighbouring digits, so they go through the reader's whole
preprocessing (`digits.read.pipeline.prepare`), exactly as a user's crop would;
a crop in which it finds no ink is left out. Making the images costs up to a
minute per set, so they are cached (`digits.train.chunks`'s cache, keyed by the
files' digests and a probe of the normalizing code).

Splits. `usps`: the ESL train / test files. `cvl`: the competition's
writer-disjoint splits. `semeion` and `dida` have none; the last 20 % of
each class's rows in Semeion's file (ordered by writing session) and DIDA's crops
numbered above 800 in each class are the test part. Training parts are put
in a fixed shuffled order (the files are sorted by class), because
`digits.train.dataset.split_data` validates on the last rows.
"""

from __future__ import annotations

import hashlib
import inspect
import os

import numpy as np

from digits.config import TrainConfig
from digits.data import DIGIT_SETS, NEGATIVE_SETS
from digits.errors import DataError
from digits.extra_sets import SETS, parse, read_verified, set_spec
from digits.spec import SHAPE

# Training parts are put in this fixed shuffled order (the files are sorted by class).
_SHUFFLE_SEED = 19

# --- normalizing: the reader's own steps ---------------------------------------------


def box_scans(images: np.ndarray | list[np.ndarray]) -> dict[str, np.ndarray]:
    """Ink-bright scans -> MNIST-like float32 images through `to_mnist`; "labels" is 1 where there was ink.

    The mask is the ink above a quarter of the way from the picture's paper
    (its 10th percentile: Semeion's stretched digits cover half their box) to
    its strongest ink, so grey paper (CVL) and antialiased strokes (QuickDraw)
    give the same masks as binary scans (Semeion, Omniglot). Half-way broke
    CVL's faint strokes apart (0s became Cs): on CVL's validation writers the
    same model read 86.5 % of them at half-way and 93.1 % at a quarter.
    """
    from digits.read.normalize import to_mnist

    out = np.zeros((len(images), *SHAPE), np.float32)
    kept = np.zeros(len(images), bool)
    for i, image in enumerate(images):
        paper, ink = float(np.percentile(image, 10)), float(image.max())
        if ink - paper < 32:  # no stroke stands out from the paper
            continue
        out[i] = to_mnist(np.asarray(image) > paper + (ink - paper) / 4)[1]
        kept[i] = out[i].any()
    return {"images": out, "labels": kept.astype(np.int32)}


def prepare_crops(files: list[bytes]) -> dict[str, np.ndarray]:
    """Photographed crops (image files' bytes) -> what the reader's preprocessing makes; "labels": 1 with ink."""
    from digits.read.load import load_image
    from digits.read.pipeline import prepare

    prepared = [prepare(load_image(file), explain=False) for file in files]
    return {
        "images": np.stack([p.image for p in prepared]).astype(np.float32).reshape(-1, *SHAPE),
        "labels": np.array([p.has_ink for p in prepared], np.int32),
    }


def _normalized(name: str, images, raw: dict[str, bytes], progress: bool) -> tuple:
    """(uint8 MNIST-like images, kept mask) for every row, from the cache when it was made before."""
    from digits.train import chunks

    job = prepare_crops if name == "dida" else box_scans
    chunk = 500
    jobs = [(images[start : start + chunk],) for start in range(0, len(images), chunk)]
    # A change to the files, to this step's code or to what the reader's
    # normalizing makes of a sample spread over the set makes a new cache file.
    probe = [images[i] for i in np.linspace(0, len(images) - 1, 16).astype(int)]
    fingerprint = b"".join(hashlib.sha256(raw[f]).digest() for f in sorted(raw))
    fingerprint += inspect.getsource(job).encode() + chunks.fingerprint(job(probe))

    def make():
        made = chunks.in_chunks(
            job, jobs, chunks.worker_count(), f"{name}: {len(images)} pictures" if progress else None
        )
        return {"images": np.round(made["images"] * 255).astype(np.uint8), "labels": made["labels"]}

    made = chunks.cached(f"extra-{name}", fingerprint, make)
    return made["images"], made["labels"].astype(bool)


# --- public loaders ---------------------------------------------------------------------


def load_parts(
    name: str, data_dir: str | os.PathLike | None = None, progress: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """A set's parts ("train", and "val" and "test" where it has them) as (images, labels).

    Images are uint8 (N, 28, 28), MNIST-like; labels uint8, or None for a
    negative set. Rows without ink are left out; training rows are in a fixed
    shuffled order, the others in file order.
    """
    raw = read_verified(name, data_dir)
    images, labels, split = parse(name, raw)
    boxed, kept = _normalized(name, images, raw, progress)
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
    x_train, y_train = (np.concatenate(column) for column in zip(*train, strict=False))
    return (x_train, y_train), parts["test"]


def load_dataset(dataset: str, data_dir: str | os.PathLike | None = None):
    """Any dataset `--dataset` names, as `((x_train, y_train), (x_test, y_test))`: MNIST-style sets
    through `digits.data`, the extra digit sets through their own loaders here."""
    from digits import data

    return load(dataset, data_dir) if dataset in DIGIT_SETS else data.load(dataset, data_dir)


def load_test_set(dataset: str, data_dir: str | os.PathLike | None = None):
    """Only `(x_test, y_test)` of any dataset `--dataset` names (MNIST's without its training set)."""
    from digits import data

    return load(dataset, data_dir)[1] if dataset in DIGIT_SETS else data.load_test(dataset, data_dir)


def dataset_digests(dataset: str) -> dict[str, str]:
    """The pinned digests of any dataset `--dataset` names, recorded in each run's config."""
    from digits import data

    return digests(dataset) if dataset in DIGIT_SETS else data.digests(dataset)


def load_negatives(
    names: tuple[str, ...] = NEGATIVE_SETS, data_dir: str | os.PathLike | None = None, progress: bool = False
) -> np.ndarray:
    """Real non-digits from the named negative sets, uint8 (N, 28, 28), MNIST-like.

    Omniglot's and CoMNIST's digit look-alikes are dropped, and so are
    QuickDraw's diamonds (`QUICKDRAW_DIGIT_LIKE`: a 0's shape) and its
    categories that `real-digits/junk` also shows (`QUICKDRAW_SEEN_IN_JUNK`).
    """
    unknown = [name for name in names if name not in NEGATIVE_SETS]
    if unknown:
        raise DataError(f"{unknown[0]!r} is not a set of non-digits; choose from {', '.join(NEGATIVE_SETS)}.")
    arrays = [load_parts(name, data_dir, progress=progress)["train"][0] for name in names]
    return np.concatenate(arrays) if arrays else np.zeros((0, *SHAPE), np.uint8)


# The licences of the datasets `digits.data` loads, as far as their sources state one.
_DATASET_LICENCES = {
    "mnist": "none stated in its source; cite LeCun, Cortes and Burges",
    "fashion-mnist": "MIT (Zalando Research)",
}


def training_sets(config: TrainConfig) -> list[dict[str, str]]:
    """The datasets a run learnt from, each with its licence as stated: the shipped model's card lists them."""
    names = [config.dataset, *config.extra_digits, *config.real_negatives]
    return [
        {"name": name, "licence": SETS[name].licence if name in SETS else _DATASET_LICENCES.get(name, "unknown")}
        for name in names
    ]


def digests(name: str) -> dict[str, str]:
    """The pinned digests, recorded in a run's provenance."""
    return dict(set_spec(name).sha256)
