"""An iPhone's HEIC photo reads like the same picture as a PNG; AVIF is refused before any of it is parsed.

A HEIC is decoded at full size (no reduced decode exists), so the budget is
checked before a pixel is decoded, against the largest image its header
declares: libheif decodes a grid whole before cropping it, and an alpha
plane at its own size, whatever size the picture says it shows.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from digits import Reader
from digits.batch.inputs import expand
from digits.read import heif, isolated
from digits.read.load import ImageError, load_image, within_budget


@pytest.fixture(scope="module")
def photo(mnist) -> tuple[Image.Image, int]:
    """MNIST's first test digit (a 7), dark ink ten times its size on a sheet of off-white paper."""
    (_, _), (x_test, y_test) = mnist
    ink = Image.fromarray(255 - x_test[0]).resize((280, 280), Image.Resampling.BICUBIC)
    sheet = Image.new("L", (640, 480), 235)
    sheet.paste(ink.point(lambda v: min(v, 235)), (180, 100))
    return sheet.convert("RGB"), int(y_test[0])


@pytest.fixture
def in_process(monkeypatch):
    """The decode run in this process, where a test's monkeypatch reaches it: on Linux `load` runs it in a child
    (`digits.read.isolated`), the same code behind the kernel's limits."""
    monkeypatch.setattr(isolated, "AVAILABLE", False)


def encoded(image: Image.Image, kind: str, **options) -> bytes:
    heif.register()  # pillow-heif's encoder, which the reader itself never uses
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **options)
    return buffer.getvalue()


def test_a_heic_reads_as_the_same_picture_in_png(photo, tmp_path):
    image, label = photo
    data = encoded(image, "HEIF", quality=90)
    (tmp_path / "photo.heic").write_bytes(data)
    assert load_image(data).format == "HEIF" and load_image(data).size == image.size
    reader = Reader()
    png = reader.read_digit(encoded(image, "PNG")).digit
    assert reader.read_digit(data).digit == reader.read_digit(tmp_path / "photo.heic").digit == png == label
    with Image.open(tmp_path / "photo.heic") as opened:  # opened by the caller, from its path
        assert reader.read_digit(opened).digit == label


def test_an_avif_is_refused_before_pillow_parses_it(photo, monkeypatch):
    """libavif parsed an AVIF of 65,000 items for 38 s, and decoded a grid larger than its header said (2 GB)."""
    data = encoded(photo[0], "AVIF")
    from PIL import AvifImagePlugin

    def no_parse(self):
        raise AssertionError("parsed")

    monkeypatch.setattr(AvifImagePlugin.AvifImageFile, "_open", no_parse)
    with pytest.raises(ImageError, match="AVIF is a format digits does not read"):
        load_image(data)


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


def no_decode(self):
    raise AssertionError("decoded")


def test_a_heic_over_the_budget_is_refused_from_its_header(photo, monkeypatch, in_process, tmp_path):
    """Nothing is decoded: the budget (here 1 MiB for a 640×480 picture at 8 bytes a pixel) is checked first."""
    (tmp_path / "photo.heic").write_bytes(data := encoded(photo[0], "HEIF", quality=50))
    monkeypatch.setattr("digits.read.load.MAX_DECODE_BYTES", 2**20)
    monkeypatch.setattr(pillow_heif.as_plugin.HeifImageFile, "load", no_decode)
    with pytest.raises(ImageError, match=r"640×480 HEIF image would take 3 MiB, over the limit of 1 MiB"):
        load_image(data)
    with pytest.raises(ImageError, match="over the limit"):  # opened by the caller: HEIF lists no tiles
        within_budget(Image.open(tmp_path / "photo.heic"), "photo.heic")
    with pytest.raises(ImageError, match="over the limit"):  # from bytes: priced from them
        within_budget(Image.open(io.BytesIO(data)), "photo.heic")
    opened = Image.open(tmp_path / "photo.heic")
    opened.fp.close()
    with pytest.raises(ImageError, match="whose file cannot be read again cannot be checked; pass its path or bytes"):
        within_budget(opened, "photo.heic")


def test_a_heic_is_priced_at_the_largest_image_it_declares(photo, monkeypatch, in_process):
    """A grid cropped to one pixel, or an alpha plane larger than the picture, is decoded whole by libheif: a
    2.4 KB file shown as 1×1 took 1.1 GB. Here the file is made to declare an image of 15360×15360."""
    data = encoded(photo[0], "HEIF", quality=50)
    assert heif.declared_sizes(data, "photo.heic") == [(640, 480)]
    monkeypatch.setattr(heif, "declared_sizes", lambda data, name, properties: [(640, 480), (15360, 15360)])
    monkeypatch.setattr(pillow_heif.as_plugin.HeifImageFile, "load", no_decode)
    with pytest.raises(ImageError, match="15360×15360 pixels is over the limit of 150 megapixels"):
        load_image(data)


@pytest.fixture
def grid_heic(photo, monkeypatch) -> bytes:
    """The photo as iPhones store theirs: a grid of 512-pixel tiles, its description (output size) in `idat`."""
    heif.register()
    monkeypatch.setattr(pillow_heif.options, "GRID_TILE_SIZE", 512)
    return encoded(photo[0], "HEIF", quality=90)


def test_a_grid_heic_reads_and_declares_its_output(grid_heic, photo):
    assert (640, 480) in heif.declared_sizes(grid_heic, "grid.heic")  # the grid's own, and its ispe
    assert (512, 512) in heif.declared_sizes(grid_heic, "grid.heic")  # a tile's
    assert Reader().read_digit(grid_heic).digit == photo[1]


def test_a_grid_larger_than_any_declared_size_is_refused_before_it_is_decoded(grid_heic, monkeypatch, in_process):
    """libheif decodes a grid at the size its own description gives, then compares it with the declared one: a
    4.5 KB grid declaring 64×64 and describing 32768×32768 took 1.7 GB, a 455-byte overlay 3.2 GB."""
    data = bytearray(grid_heic)
    description = data.find(b"idat") + 4 + 4  # after the box's type: version, flags, rows - 1, columns - 1
    assert struct.unpack_from(">HH", data, description) == (640, 480)
    struct.pack_into(">HH", data, description, 65535, 65535)
    monkeypatch.setattr(pillow_heif.as_plugin.HeifImageFile, "load", no_decode)
    with pytest.raises(ImageError, match="65535×65535 pixels is over the limit of 150 megapixels"):
        load_image(bytes(data))


def test_a_heic_of_several_images_reads_once_decoded(photo):
    """pillow-heif keeps the file of a HEIC of several images after decoding it: it was taken for undecoded,
    and refused for want of a file name."""
    data = encoded(photo[0], "HEIF", save_all=True, append_images=[photo[0].rotate(90)])
    image = load_image(data)
    assert Reader().read_digit(image).digit == photo[1]


def box(kind: bytes, content: bytes, full: bool = False) -> bytes:
    body = (b"\0\0\0\0" if full else b"") + content
    return struct.pack(">I4s", 8 + len(body), kind) + body


def test_the_declared_sizes_are_read_from_every_ispe_and_no_further():
    ispe = [box(b"ispe", struct.pack(">II", w, h), full=True) for w, h in ((512, 512), (15360, 20))]
    meta = box(b"meta", box(b"hdlr", b"pict") + box(b"iprp", box(b"ipco", b"".join(ispe))), full=True)
    data = box(b"ftyp", b"heic\0\0\0\0mif1") + meta + box(b"mdat", box(b"ispe", struct.pack(">III", 0, 9, 9)))
    assert heif.declared_sizes(data, "x.heic") == [(512, 512), (15360, 20)]  # the one in mdat is data, not a box
    many = box(b"meta", box(b"iprp", box(b"ipco", box(b"free", b"") * (heif.MAX_HEIF_BOXES + 1))), full=True)
    with pytest.raises(ImageError, match="x.heic: a HEIF box holds over 10,000 boxes"):
        heif.declared_sizes(box(b"ftyp", b"heic") + many, "x.heic")
    assert heif.declared(data, "x.heic").size == (15360, 20)  # the most pixels


def no_open(self):
    raise AssertionError("opened")


def test_an_image_sequence_is_refused_before_libheif_reads_it(photo, monkeypatch, in_process):
    """libheif reads a sequence's tracks when it opens the file: a 997-byte track of 18 million samples of one
    size took 2.35 GB."""
    data = encoded(photo[0], "HEIF") + box(b"moov", box(b"mvhd", bytes(100), full=True))
    monkeypatch.setattr(pillow_heif.as_plugin.HeifImageFile, "_open", no_open)
    with pytest.raises(ImageError, match="a HEIF image sequence"):
        load_image(data)


def test_items_listing_more_data_than_the_file_are_refused_before_it_is_opened(photo, monkeypatch, in_process):
    """pillow-heif reads every Exif and XMP item when it opens a file: 100 of them, each listing one 256 KiB
    stretch 32 times, took 2.6 GB of a 292 KB file."""
    data = bytearray(encoded(photo[0], "HEIF"))
    iloc = data.find(b"iloc") + 4  # version, flags, the sizes of offsets and lengths: 4 and 4 from pillow-heif
    assert data[iloc] in (0, 1) and data[iloc + 4] == 0x44
    count_at = iloc + 6
    first = count_at + 2  # item, (method), data reference, base offset, extent count, offset, length
    length_at = first + (2 + (2 if data[iloc] else 0) + 2 + (data[iloc + 5] >> 4) + 2 + 4)
    struct.pack_into(">I", data, length_at, len(data) + 1)
    monkeypatch.setattr(pillow_heif.as_plugin.HeifImageFile, "_open", no_open)
    with pytest.raises(ImageError, match="items list more data than the file holds"):
        load_image(bytes(data))


def exif_referred_to(times: int, size: int) -> bytes:
    """A HEIF's meta box: item 2, an Exif block of `size` bytes (in idat), referred to `times` by its `cdsc`."""
    infe = box(b"infe", struct.pack(">HH", 2, 0) + b"Exif\0", full=True)
    infe = infe[:8] + b"\2" + infe[9:]  # version 2: it names the item's type
    iinf = box(b"iinf", struct.pack(">H", 1) + infe, full=True)
    iloc = box(b"iloc", bytes([0x44, 0x00]) + struct.pack(">HHHHHII", 1, 2, 1, 0, 1, 0, size), full=True)
    iloc = iloc[:8] + b"\1" + iloc[9:]  # version 1: a construction method (1: in idat)
    iref = box(b"iref", box(b"cdsc", struct.pack(">HH", 2, times) + struct.pack(">H", 1) * times), full=True)
    return box(b"ftyp", b"heic") + box(b"meta", iinf + iloc + iref + box(b"idat", bytes(size)), full=True)


def test_what_opening_would_copy_past_the_file_or_a_few_mib_is_refused():
    """pillow-heif copies an Exif item once for each reference to it (one of 1 MB referred to 1,000 times took
    1.1 GB), and metadata or a colour profile about five times (394 MB for 50 MB)."""
    assert heif.declared_sizes(exif_referred_to(1, 1000), "x.heic") == []
    with pytest.raises(ImageError, match="x.heic: the HEIF file's items refer to others more than its data allows"):
        heif.declared_sizes(exif_referred_to(1000, 1000), "x.heic")
    with pytest.raises(ImageError, match="metadata or a colour profile over 4 MiB"):
        heif.declared_sizes(exif_referred_to(1, heif.MAX_HEIF_METADATA_BYTES + 1), "x.heic")
    profile = box(b"colr", b"prof" + bytes(heif.MAX_HEIF_METADATA_BYTES))
    with pytest.raises(ImageError, match="metadata or a colour profile over 4 MiB"):
        heif.declared_sizes(box(b"ftyp", b"heic") + box(b"meta", box(b"iprp", box(b"ipco", profile)), full=True), "x")


def test_a_tile_named_again_and_again_by_its_grid_is_refused_before_it_is_opened():
    """libheif decodes a tile once for each time its grid names it: a 4 MB tile named 1,000 times took 6 s."""
    tile = 100_000
    iloc = box(b"iloc", bytes([0x44, 0x00]) + struct.pack(">HHHHII", 1, 2, 0, 1, 0, tile), full=True)
    iref = box(b"iref", box(b"dimg", struct.pack(">HH", 1, 1000) + struct.pack(">H", 2) * 1000), full=True)
    data = box(b"ftyp", b"heic") + box(b"meta", iloc + iref, full=True) + box(b"mdat", bytes(tile))
    with pytest.raises(ImageError, match="items refer to others more than its data allows"):
        heif.declared_sizes(data, "x.heic")
    # A tile can hide its slices in its HEVC configuration, which libheif decodes with it: priced at nothing.
    slice_array = bytes([19]) + struct.pack(">HH", 1, 4) + b"\x26\x01\xaf\x00"  # one IDR slice (NAL type 19)
    hidden = box(b"hvcC", bytes(22) + bytes([1]) + slice_array)
    with pytest.raises(ImageError, match="HEVC configuration holds picture data"):
        heif.declared_sizes(box(b"ftyp", b"heic") + box(b"meta", box(b"iprp", box(b"ipco", hidden)), full=True), "x")
    parameters = box(b"hvcC", bytes(22) + bytes([1, 32]) + struct.pack(">HH", 1, 2) + b"\x40\x01")  # a VPS
    assert (
        heif.declared_sizes(
            box(b"ftyp", b"heic") + box(b"meta", box(b"iprp", box(b"ipco", parameters)), full=True), "x"
        )
        == []
    )
    config = box(b"hvcC", bytes(heif.MAX_HEVC_CONFIG_BYTES + 1))
    with pytest.raises(ImageError, match="HEVC configuration is over 64 KiB"):
        heif.declared_sizes(box(b"ftyp", b"heic") + box(b"meta", box(b"iprp", box(b"ipco", config)), full=True), "x")


def test_a_grid_described_twice_is_priced_at_both_descriptions():
    """libheif believes a file's first word on an item (the first `infe`, the first `iloc` entry): an item called
    a grid, then a plain image, whose data is a 16384² grid, then a 64² one, decoded 559 MB from 3.5 KB."""
    grids = struct.pack(">4BHH", 0, 0, 3, 3, 16384, 16384) + struct.pack(">4BHH", 0, 0, 3, 3, 64, 64)
    infe = [box(b"infe", struct.pack(">HH", 1, 0) + kind + b"\0", full=True) for kind in (b"grid", b"hvc1")]
    infe[0] = infe[0][:8] + b"\2\0\0\0" + infe[0][12:]  # version 2: it names the item's type
    infe[1] = infe[1][:8] + b"\2\0\0\0" + infe[1][12:]
    places = b"".join(struct.pack(">HHHHII", 1, 1, 0, 1, offset, 8) for offset in (0, 8))
    iloc = box(b"iloc", bytes([0x44, 0x00]) + struct.pack(">H", 2) + places, full=True)
    iloc = iloc[:8] + b"\1\0\0\0" + iloc[12:]  # version 1: a construction method (1: in idat)
    iinf = box(b"iinf", struct.pack(">H", 2) + b"".join(infe), full=True)
    data = box(b"ftyp", b"heic") + box(b"meta", iinf + iloc + box(b"idat", grids), full=True)
    assert sorted(heif.declared_sizes(data, "x.heic")) == [(64, 64), (16384, 16384)]


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
    assert "damaged" in str(refused.value) and "\n" not in str(refused.value)


def test_a_folder_lists_its_heic_photos(tmp_path, photo):
    for name in ("a.heic", "b.HEIF", "c.hif"):
        (tmp_path / name).write_bytes(encoded(photo[0], "HEIF"))
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "d.avif").write_bytes(encoded(photo[0], "AVIF"))
    assert [Path(path).name for path in expand([str(tmp_path)])] == ["a.heic", "b.HEIF", "c.hif"]
    assert np.asarray(load_image(str(tmp_path / "a.heic"))).shape == (480, 640, 3)
