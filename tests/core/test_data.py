import gzip
import hashlib
import http.client
import struct

import numpy as np
import pytest

from digits import data
from digits.data import DataError, parse_idx, read_idx


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@pytest.fixture
def images():
    return np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)


def test_parse_valid_idx(images):
    np.testing.assert_array_equal(parse_idx(idx_bytes(images)), images)


def test_bad_magic_is_refused(images):
    raw = bytearray(idx_bytes(images))
    raw[2] = 0x0D  # float32 type code: not an MNIST file
    with pytest.raises(DataError, match="magic"):
        parse_idx(bytes(raw))


def test_truncated_file_is_refused(images):
    with pytest.raises(DataError, match="truncated"):
        parse_idx(idx_bytes(images)[:-7])


def test_count_mismatch_is_refused(images):
    raw = idx_bytes(images) + b"\x00" * 20  # more bytes than the header promises
    with pytest.raises(DataError, match="promises 3x4x5"):
        parse_idx(raw)


def test_corrupt_gzip_names_the_file(tmp_path, images):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    packed = bytearray(gzip.compress(idx_bytes(images)))
    packed[len(packed) // 2] ^= 0xFF
    path.write_bytes(bytes(packed))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        read_idx(path)


def test_digest_mismatch_is_refused(tmp_path, images):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(images))
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        read_idx(path, expected_sha256="0" * 64)
    assert read_idx(path, hashlib.sha256(idx_bytes(images)).hexdigest()).shape == (3, 4, 5)


def test_load_mnist_matches_keras_contract(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == x_test.dtype == y_test.dtype == np.uint8
    assert list(y_train[:5]) == [5, 0, 4, 1, 9]
    assert list(y_test[:5]) == [7, 2, 1, 0, 4]


def test_uncompressed_copy_is_accepted(tmp_path, mnist):
    """The digests pin the content, so a gunzipped copy is the same dataset."""
    source = data.locate("mnist")
    for path in source.values():
        (tmp_path / path.name.removesuffix(".gz")).write_bytes(gzip.decompress(path.read_bytes()))
    (x_train, _), (x_test, y_test) = data.load("mnist", tmp_path)
    np.testing.assert_array_equal(y_test, mnist[1][1])


def test_missing_data_dir_names_what_is_missing(tmp_path):
    with pytest.raises(DataError, match="no mnist data there.*train-images-idx3-ubyte"):
        data.load("mnist", tmp_path)


def test_offline_and_missing_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("DIGITS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(data.urllib.request, "urlopen", _offline)
    with pytest.raises(DataError, match="DIGITS_DATA_DIR"):
        data.load("mnist")
    assert not list((tmp_path / "digits" / "mnist").glob("*")), "no partial download may be left behind"


def _offline(*args, **kwargs):
    raise OSError("network is unreachable")


def test_download_is_verified_and_atomic(tmp_path, monkeypatch, mnist):
    """A mirror serving the wrong bytes is refused; the cache never holds them."""
    monkeypatch.delenv("DIGITS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    class WrongFile:
        def __init__(self, *args, **kwargs):
            self.body = [gzip.compress(idx_bytes(np.zeros((2, 2), np.uint8))), b""]

        def read(self, n):
            return self.body.pop(0)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(data.urllib.request, "urlopen", WrongFile)
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        data.load("mnist")
    assert not list((tmp_path / "digits" / "mnist").glob("*"))


class _Mirror:
    """A stand-in for `urlopen` whose answer is `body`, or which raises `error` as it is read."""

    def __init__(self, body: bytes = b"", error: Exception | None = None):
        self.body, self.error, self.urls = body, error, []

    def __call__(self, url, timeout=None):
        self.urls.append(url)
        return self

    def read(self, n):
        if self.error is not None:
            raise self.error
        return self.body[:n]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize(
    "mirror",
    [_Mirror(error=http.client.IncompleteRead(b"")), _Mirror(error=http.client.BadStatusLine("x"))],
    ids=["incomplete read", "bad status line"],
)
def test_a_mirror_that_breaks_http_is_passed_over(tmp_path, monkeypatch, mirror):
    """HTTP's own errors are no OSError: each mirror is still tried, and the end is one DataError."""
    monkeypatch.delenv("DIGITS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(data.urllib.request, "urlopen", mirror)
    with pytest.raises(DataError, match="could not be downloaded.*DIGITS_DATA_DIR"):
        data.load("mnist")
    assert len(mirror.urls) == len(data.DATASETS["mnist"].mirrors)
    assert not list((tmp_path / "digits" / "mnist").glob("*"))


def test_a_gzip_bomb_from_a_mirror_is_not_unpacked_whole(tmp_path, monkeypatch):
    monkeypatch.delenv("DIGITS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    bomb = gzip.compress(bytes(data._MAX_IDX_BYTES + 1))
    assert len(bomb) < 2**20
    monkeypatch.setattr(data.urllib.request, "urlopen", _Mirror(bomb))
    with pytest.raises(DataError, match="larger than any MNIST-format file once unpacked"):
        data.load("mnist")
    assert not list((tmp_path / "digits" / "mnist").glob("*"))


def test_a_good_mirror_fills_the_cache(tmp_path, monkeypatch, mnist):
    """What a mirror serves is checked, then written whole into the cache, and read from there next time."""
    local = data.locate("mnist")
    served = {
        f"{base}.gz": gzip.compress(data._read_bytes(local[split], local[split].suffix == ".gz"))
        for split, base in data.DATASETS["mnist"].files.items()
    }
    monkeypatch.delenv("DIGITS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def urlopen(url, timeout=None):
        return _Mirror(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(data.urllib.request, "urlopen", urlopen)
    (_, _), (x_test, y_test) = data.load("mnist")
    np.testing.assert_array_equal(y_test, mnist[1][1])
    assert sorted(p.name for p in (tmp_path / "digits" / "mnist").iterdir()) == sorted(served)


def test_explicit_folder_of_another_dataset_is_named(monkeypatch):
    folder = data.locate("mnist")["test_labels"].parent
    with pytest.raises(DataError, match="holds mnist, not fashion-mnist"):
        data.load("fashion-mnist", folder)


@pytest.mark.skipif(
    not data.Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_from_debian_package():
    (x_train, y_train), (x_test, y_test) = data.load("fashion-mnist")
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert list(y_train[:5]) == [9, 0, 0, 3, 0]
