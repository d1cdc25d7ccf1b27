"""Find, verify and parse MNIST-format datasets.

`load_mnist()` returns exactly what `keras.datasets.mnist.load_data()` returns
(uint8 arrays in the original order), but it never trusts a file: every byte
read is checked against a pinned SHA-256 digest and the IDX header is checked
against the data that follows it.

Where a dataset is looked for, in order:
  1. `data_dir` (the CLI's `--data-dir`) or the `DIGITS_DATA_DIR` variable;
  2. system folders (Debian's `dataset-fashion-mnist` package);
  3. the user cache, `~/.cache/digits/<dataset>/` (or `$XDG_CACHE_HOME`);
  4. a download from the public mirrors into the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import struct
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from digits import atomic
from digits.errors import DataError
from digits.safe_open import open_regular, read_regular
from digits.spec import DIGIT_NAMES, DIGITS, REJECT, REJECT_NAME

SPLITS = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    # IDX base names (without .gz) for each split.
    files: dict[str, str]
    # SHA-256 of each *uncompressed* IDX file. Checking the content rather
    # than the archive accepts the original .gz, a re-compressed copy (Debian
    # re-gzips Fashion-MNIST) and an uncompressed file alike.
    sha256: dict[str, str]
    mirrors: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()
    # Keras's own single-file copy, with the digest Keras pins for it.
    npz: tuple[str, str] | None = None
    # What each label means, in label order (the digits for every digit set).
    class_names: tuple[str, ...] = DIGIT_NAMES
    shapes: dict[str, tuple[int, ...]] = field(
        default_factory=lambda: {
            "train_images": (60000, 28, 28),
            "train_labels": (60000,),
            "test_images": (10000, 28, 28),
            "test_labels": (10000,),
        }
    )


_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# Handwritten digits from other writers (USPS, Semeion, CVL, DIDA), loaded and normalized by
# `digits.train.extra_data`, and real non-digit pictures learnt as "not a digit". Named here, in
# the core, so configs and the CLI can check names without loading anything.
DIGIT_SETS = ("usps", "semeion", "cvl", "dida")
NEGATIVE_SETS = ("omniglot", "quickdraw", "comnist")

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        files=_IDX_FILES,
        sha256={
            "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mirrors=(
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
        ),
        npz=("mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        files=_IDX_FILES,
        sha256={
            "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mirrors=(
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
}


# The dataset every command and function uses unless told another.
DEFAULT_DATASET = "mnist"


def class_names(dataset: str, num_classes: int = DIGITS) -> tuple[str, ...]:
    """What each output of a model of `num_classes` outputs trained on `dataset` means, in order: the digits,
    or Fashion-MNIST's garments, then "not a digit" for a model with that class."""
    spec = DATASETS.get(dataset)
    names = spec.class_names if spec is not None else DIGIT_NAMES
    return names + (REJECT_NAME,) if num_classes > REJECT else names


# An IDX file's largest legal size here: 60000 * 28 * 28 plus header, with room.
_MAX_IDX_BYTES = 64 * 1024 * 1024
_IDX_DTYPES = {0x08: np.uint8}


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse an uncompressed IDX file, checking magic, dimensions and length."""
    if len(raw) < 4:
        raise DataError(f"{name}: too short to be an IDX file ({len(raw)} bytes).")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code not in _IDX_DTYPES or not 1 <= ndim <= 3:
        raise DataError(f"{name}: bad IDX magic number 0x{raw[:4].hex()}.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise DataError(
            f"{name}: header promises {'x'.join(map(str, dims))} values "
            f"({expected} bytes) but the file has {len(raw)} bytes (truncated or padded)."
        )
    return np.frombuffer(raw, dtype=_IDX_DTYPES[dtype_code], offset=header).reshape(dims)


def read_idx(path: Path, expected_sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (`.gz` or not), verify its digest, and parse it."""
    raw = _read_bytes(path, gzipped=path.suffix == ".gz")
    if expected_sha256 is not None:
        check_digest(raw, expected_sha256, path)
    return parse_idx(raw, str(path))


def check_digest(raw: bytes, expected_sha256: str, name: object) -> None:
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected_sha256:
        raise DataError(
            f"{name}: SHA-256 mismatch (expected {expected_sha256[:16]}…, got {digest[:16]}…); "
            "the file is corrupt or not the expected dataset file."
        )


def _read_bytes(path: Path, gzipped: bool) -> bytes:
    """The file's bytes (unpacked when `gzipped`), never more than any MNIST-format file holds."""
    fix = "point --data-dir at the dataset's own files"
    if not gzipped:
        return read_regular(path, _MAX_IDX_BYTES, DataError, fix)
    with open_regular(path, _MAX_IDX_BYTES, DataError, fix) as file:
        try:
            return _gunzip(file)
        except (OSError, EOFError, zlib.error, DataError) as err:
            raise DataError(f"{path}: cannot be read as gzip ({err}).") from None


def _gunzip(file: BinaryIO) -> bytes:
    """The unpacked bytes of a gzip stream, never more than any MNIST-format file holds (a gzip bomb stops there)."""
    raw = gzip.GzipFile(fileobj=file).read(_MAX_IDX_BYTES + 1)
    if len(raw) > _MAX_IDX_BYTES:
        raise DataError("larger than any MNIST-format file once unpacked")
    return raw


def cache_dir(dataset: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "digits" / dataset


def _find_split(folder: Path, base: str) -> Path | None:
    for candidate in (folder / f"{base}.gz", folder / base):
        if candidate.is_file():
            return candidate
    return None


def _files_in(folder: Path, spec: DatasetSpec) -> dict[str, Path] | Path | None:
    found = {split: _find_split(folder, base) for split, base in spec.files.items()}
    if all(found.values()):
        return found  # type: ignore[return-value]
    if spec.npz and (folder / spec.npz[0]).is_file():
        return folder / spec.npz[0]
    return None


def _other_dataset_in(files: dict[str, Path], spec: DatasetSpec) -> str | None:
    """Name the dataset a folder really holds, judged by its small test-labels file."""
    digest = hashlib.sha256(_read_bytes(files["test_labels"], files["test_labels"].suffix == ".gz")).hexdigest()
    for other in DATASETS.values():
        if other.name != spec.name and other.sha256["test_labels"] == digest:
            return other.name
    return None


def locate(dataset: str = DEFAULT_DATASET, data_dir: str | os.PathLike | None = None) -> dict[str, Path] | Path:
    """Return the files a dataset will be read from, downloading it if needed.

    The result is either one path per split (IDX files) or the path of a
    Keras `mnist.npz`. An explicit `data_dir` must hold the dataset; the
    `DIGITS_DATA_DIR` folder is skipped when it holds another dataset, so one
    setting serves MNIST while Fashion-MNIST comes from its Debian package.
    """
    spec = _spec(dataset)
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        files = _files_in(folder, spec)
        if files is None:
            missing = ", ".join(f"{base}[.gz]" for base in spec.files.values())
            or_npz = f", or {spec.npz[0]}" if spec.npz else ""
            raise DataError(f"{folder}: no {dataset} data there (expected {missing}{or_npz}).")
        if isinstance(files, dict) and (other := _other_dataset_in(files, spec)):
            raise DataError(f"{folder}: holds {other}, not {dataset}.")
        return files
    searched = []
    env_dir = os.environ.get("DIGITS_DATA_DIR")
    for folder in (
        ([Path(env_dir).expanduser()] if env_dir else []) + [Path(d) for d in spec.system_dirs] + [cache_dir(dataset)]
    ):
        searched.append(str(folder))
        files = _files_in(folder, spec)
        if files is not None and not (isinstance(files, dict) and _other_dataset_in(files, spec)):
            return files
    return _download(spec, searched)


def _download(spec: DatasetSpec, searched: list[str]) -> dict[str, Path]:
    target = cache_dir(spec.name)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"cannot create the cache folder {target} ({err.strerror or err}); "
            "set XDG_CACHE_HOME, or point DIGITS_DATA_DIR (or --data-dir) at the dataset's files."
        ) from None
    paths = {}
    for split, base in spec.files.items():
        dest = target / f"{base}.gz"
        if not dest.is_file():
            _download_one(spec, f"{base}.gz", dest, spec.sha256[split], searched)
        paths[split] = dest
    return paths


def _fetch(url: str) -> bytes:
    """The body at `url`, never more than any MNIST-format file packs to."""
    with urllib.request.urlopen(url, timeout=30) as response:
        data = response.read(_MAX_IDX_BYTES + 1)
    if len(data) > _MAX_IDX_BYTES:
        raise DataError("larger than any MNIST-format file")
    return data


def _download_one(spec: DatasetSpec, filename: str, dest: Path, content_sha256: str, searched: list[str]) -> None:
    errors = []
    for mirror in spec.mirrors:
        url = mirror + filename
        try:
            packed = _fetch(url)
            raw = _gunzip(io.BytesIO(packed))
        except (OSError, EOFError, zlib.error, http.client.HTTPException, DataError) as err:
            errors.append(f"{url}: {err}")
            continue
        try:
            check_digest(raw, content_sha256, url)
        except DataError as err:
            errors.append(str(err))
            continue
        # A WriteError names the file that could not be written; a link planted there is replaced.
        atomic.write_bytes(dest, packed, follow_symlinks=False)
        return
    raise DataError(
        f"{spec.name} is not in {', '.join(searched)} and could not be downloaded "
        f"({'; '.join(errors)}). If you are offline, point DIGITS_DATA_DIR (or --data-dir) at a folder holding the "
        f"four IDX files{' or ' + spec.npz[0] if spec.npz else ''}."
    )


def _spec(dataset: str) -> DatasetSpec:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.") from None


def load(dataset: str = DEFAULT_DATASET, data_dir: str | os.PathLike | None = None):
    """Load a dataset as `((x_train, y_train), (x_test, y_test))`, uint8, original order.

    The extra digit sets (`DIGIT_SETS`) come from their own loaders in `digits.train.extra_data`,
    which normalize them through the reader.
    """
    arrays = _load_splits(dataset, data_dir, SPLITS)
    return (arrays["train_images"], arrays["train_labels"]), (arrays["test_images"], arrays["test_labels"])


def load_test(dataset: str = DEFAULT_DATASET, data_dir: str | os.PathLike | None = None):
    """Only `(x_test, y_test)`: what evaluation needs, without reading the training set."""
    arrays = _load_splits(dataset, data_dir, ("test_images", "test_labels"))
    return arrays["test_images"], arrays["test_labels"]


def _load_splits(dataset: str, data_dir, splits: tuple[str, ...]) -> dict[str, np.ndarray]:
    spec = _spec(dataset)
    source = locate(dataset, data_dir)
    if isinstance(source, Path):
        arrays = _read_npz(source, spec)
    else:
        arrays = {split: read_idx(source[split], spec.sha256[split]) for split in splits}
    for split in splits:
        shape = spec.shapes[split]
        if arrays[split].shape != shape:
            raise DataError(f"{dataset} {split}: shape {arrays[split].shape}, expected {shape}.")
    return arrays


def load_mnist(data_dir: str | os.PathLike | None = None):
    """Same result as `keras.datasets.mnist.load_data()`, from a verified local copy."""
    return load("mnist", data_dir)


def _read_npz(path: Path, spec: DatasetSpec) -> dict[str, np.ndarray]:
    assert spec.npz is not None
    raw = _read_bytes(path, gzipped=False)
    check_digest(raw, spec.npz[1], path)

    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        keys = {"train_images": "x_train", "train_labels": "y_train", "test_images": "x_test", "test_labels": "y_test"}
        return {split: npz[key] for split, key in keys.items()}


def digests(dataset: str = DEFAULT_DATASET) -> dict[str, str]:
    """The pinned content digests, recorded in each run's config for provenance."""
    return dict(_spec(dataset).sha256)
