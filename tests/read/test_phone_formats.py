"""Phones' own formats: an iPhone's HEIC photo and an AVIF read like the same picture as a PNG.

They are decoded at full size (no reduced decode exists for them), so the
budget is checked from their header before a pixel is decoded, and a file
whose coded image is larger than its header says is refused in one sentence.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from digits import Reader
from digits.batch.inputs import expand
from digits.read import heif
from digits.read.load import ImageError, load_image, within_budget


@pytest.fixture(scope="module")
def photo(mnist) -> tuple[Image.Image, int]:
    """MNIST's first test digit (a 7), dark ink ten times its size on a sheet of off-white paper."""
    (_, _), (x_test, y_test) = mnist
    ink = Image.fromarray(255 - x_test[0]).resize((280, 280), Image.Resampling.BICUBIC)
    sheet = Image.new("L", (640, 480), 235)
    sheet.paste(ink.point(lambda v: min(v, 235)), (180, 100))
    return sheet.convert("RGB"), int(y_test[0])


def encoded(image: Image.Image, kind: str, **options) -> bytes:
    heif.register()  # pillow-heif's encoder, which the reader itself never uses
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["HEIF", "AVIF"])
def test_a_phone_format_reads_as_the_same_picture_in_png(photo, kind):
    image, label = photo
    data = encoded(image, kind, quality=90)
    assert load_image(data).format == kind and load_image(data).size == image.size
    reader = Reader()
    assert reader.read_digit(data).digit == reader.read_digit(encoded(image, "PNG")).digit == label


def test_a_heic_turned_by_its_own_header_reads_upright(photo):
    """A phone stores a portrait photo as it was taken, with a turn to apply: the picture comes out upright, and
    turned once only (pillow-heif applies the HEIF's turn and clears the EXIF one, which `load` would apply
    again)."""
    image, label = photo
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90° clockwise to view"
    data = encoded(image.rotate(90, expand=True), "HEIF", quality=90, exif=exif.tobytes())
    assert load_image(data).size == image.size
    assert Reader().read_digit(data).digit == label


def test_a_heic_over_the_budget_is_refused_from_its_header(photo, monkeypatch):
    """Nothing is decoded: the budget (here 1 MiB for a 640×480 picture at 8 bytes a pixel) is checked first."""
    data = encoded(photo[0], "HEIF", quality=50)
    monkeypatch.setattr("digits.read.load.MAX_DECODE_BYTES", 2**20)

    def no_decode(self):
        raise AssertionError("decoded")

    monkeypatch.setattr(pillow_heif.as_plugin.HeifImageFile, "load", no_decode)
    with pytest.raises(ImageError, match=r"640×480 HEIF image would take 2 MiB, over the limit of 1 MiB"):
        load_image(data)
    with pytest.raises(ImageError, match="over the limit"):  # opened by the caller: HEIF lists no tiles
        within_budget(Image.open(io.BytesIO(data)), "photo.heic")


def test_a_heic_coding_more_than_its_header_declares_is_refused_in_one_sentence():
    data = bytearray(encoded(Image.new("RGB", (1024, 1024), "white"), "HEIF", quality=10))
    size = data.find(b"ispe") + 8
    data[size : size + 8] = struct.pack(">II", 64, 64)  # declares 64×64 of the 1024×1024 it codes
    with pytest.raises(ImageError) as refused:
        load_image(bytes(data))
    assert "damaged" in str(refused.value) and "\n" not in str(refused.value)


def test_a_truncated_heic_is_refused_in_one_sentence(photo):
    data = encoded(photo[0], "HEIF", quality=90)
    with pytest.raises(ImageError) as refused:
        load_image(data[: len(data) // 2])
    assert str(refused.value).startswith("the image data: the image is") and "\n" not in str(refused.value)


def test_a_folder_lists_its_heic_and_avif_photos(tmp_path, photo):
    for name, kind in (("a.heic", "HEIF"), ("b.HEIF", "HEIF"), ("c.avif", "AVIF")):
        (tmp_path / name).write_bytes(encoded(photo[0], kind))
    (tmp_path / "notes.txt").write_text("not a picture")
    assert [path.rsplit("/", 1)[1] for path in expand([str(tmp_path)])] == ["a.heic", "b.HEIF", "c.avif"]
    assert np.asarray(load_image(str(tmp_path / "a.heic"))).shape == (480, 640, 3)
