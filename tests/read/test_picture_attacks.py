"""digits.read.load against hostile files: each test builds what an attacker sent, and asserts the bounded outcome.

No test here times anything: a picture is refused from its header (Pillow is
never asked to open it, or never to decode it), or the work done is linear in
the bytes, which a run of the old quadratic code would show as an hour-long test.
"""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from digits.read import load as picture
from digits.read import prescan
from digits.read.grey import ORIGINAL_SIZE
from digits.read.load import ImageError, load_image
from digits.read.prescan import jpeg_scans


def baseline_jpeg(size=(32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, format="JPEG")
    return buffer.getvalue()


def headers_then_ff(total: int) -> bytes:
    """A JPEG valid up to its first scan's header, then nothing but 0xFF bytes up to `total` bytes."""
    jpeg = baseline_jpeg()
    sos = jpeg.index(b"\xff\xda")
    header_end = sos + 2 + int.from_bytes(jpeg[sos + 2 : sos + 4], "big")
    return jpeg[:header_end] + b"\xff" * (total - header_end)


@pytest.mark.parametrize("total", [64 * 1024, 2**20])
def test_a_scan_of_0xff_bytes_is_walked_in_linear_time(total):
    # The old regex (`\xff+` then a marker byte) backtracked over the whole run
    # from every start: 16 s of CPU at 64 KB, about an hour at 1 MiB.
    crafted = headers_then_ff(total)
    assert jpeg_scans(crafted) == 1
    with pytest.raises(ImageError) as excinfo:
        load_image(crafted)
    assert "\n" not in str(excinfo.value)


def test_fill_bytes_between_markers_are_skipped_as_one_run():
    jpeg = baseline_jpeg()
    # Fill bytes (0xFF) may pad before any marker: a megabyte of them after the pixels (libjpeg skips them
    # in C; before the pixels they are refused, below) stays one step of the walk.
    padded = jpeg[:-2] + b"\xff" * 2**20 + jpeg[-2:]
    assert jpeg_scans(padded) == jpeg_scans(jpeg) == 1
    assert load_image(padded).size == (32, 32)


@pytest.fixture
def pillow_opens(monkeypatch) -> list:
    """Every `Image.open` that `load_image` makes, recorded: a file refused from its bytes makes none."""
    calls = []
    real_open = picture.Image.open

    def recording_open(*args, **kwargs):
        calls.append(args)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(picture.Image, "open", recording_open)
    return calls


def test_a_jpeg_of_millions_of_empty_segments_is_refused_before_pillow_walks_them(pillow_opens):
    # 9 MB of empty APP0 segments: Pillow's Python walk took 7.7 s and 615 MiB over them.
    jpeg = baseline_jpeg()
    crafted = jpeg[:2] + b"\xff\xe0\x00\x02" * (9 * 2**20 // 4) + jpeg[2:]
    with pytest.raises(ImageError, match="marker segments"):
        load_image(crafted)
    assert pillow_opens == []


def test_a_jpeg_of_too_much_metadata_is_refused_before_pillow_reads_it(pillow_opens):
    jpeg = baseline_jpeg()
    comment = b"\xff\xfe\xff\xff" + b"x" * 0xFFFD  # the largest segment there is: 64 KiB
    crafted = jpeg[:2] + comment * (prescan.MAX_JPEG_METADATA_BYTES // len(comment) + 1) + jpeg[2:]
    with pytest.raises(ImageError, match="MiB of metadata"):
        load_image(crafted)
    assert pillow_opens == []
    assert load_image(jpeg[:2] + comment * 4 + jpeg[2:]).size == (32, 32)  # a few segments are an ordinary file


def icon_holding(frame: bytes) -> bytes:
    """An ICO whose one directory entry (which says 256×256, the most it can) points at `frame`."""
    entry = bytes([0, 0, 0, 0]) + (1).to_bytes(2, "little") + (32).to_bytes(2, "little")
    entry += len(frame).to_bytes(4, "little") + (6 + 16).to_bytes(4, "little")
    return b"\x00\x00\x01\x00\x01\x00" + entry + frame


def png_header(width: int, height: int, colour_type: int = 6) -> bytes:
    """The signature and IHDR of a PNG, then a few bytes of pixel data: all an ICO's reader looks at to size it."""
    ihdr = b"IHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, colour_type, 0, 0, 0])
    chunk = len(ihdr[4:]).to_bytes(4, "big") + ihdr + zlib.crc32(ihdr).to_bytes(4, "big")
    idat = b"IDAT" + zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk + len(idat[4:]).to_bytes(4, "big") + idat + zlib.crc32(idat).to_bytes(4, "big")


def test_an_icon_holding_a_huge_png_is_refused_before_pillow_decodes_it(pillow_opens):
    # Pillow decodes an ICO's largest icon inside Image.open: 12000² RGBA is 549 MiB.
    with pytest.raises(ImageError, match="ICO image would take"):
        load_image(icon_holding(png_header(12000, 12000)))
    assert pillow_opens == []


def test_an_icon_holding_a_huge_bitmap_is_refused_before_pillow_decodes_it(pillow_opens):
    info = (40).to_bytes(4, "little") + (4000).to_bytes(4, "little") + (8000).to_bytes(4, "little", signed=True)
    info += (1).to_bytes(2, "little") + (32).to_bytes(2, "little") + bytes(24)
    with pytest.raises(ImageError, match="ICO image would take"):
        load_image(icon_holding(info + bytes(64)))
    assert pillow_opens == []


def test_an_ordinary_icon_is_still_read():
    buffer = io.BytesIO()
    Image.new("RGBA", (48, 48), (0, 0, 0, 255)).save(buffer, format="ICO", sizes=[(48, 48), (16, 16)])
    assert load_image(buffer.getvalue()).size == (48, 48)


def tiff_with_tile(side: int, tile: int) -> bytes:
    """A grey, deflate-compressed TIFF of side×side pixels in one tile×tile tile (little-endian, one IFD)."""
    pixels = zlib.compress(bytes(side * side))
    tags = [
        (256, 3, side),
        (257, 3, side),
        (258, 3, 8),
        (259, 3, 8),
        (262, 3, 1),
        (277, 3, 1),
        (322, 4, tile),
        (323, 4, tile),
        (324, 4, 0),
        (325, 4, len(pixels)),
    ]
    ifd_at = 8
    data_at = ifd_at + 2 + 12 * len(tags) + 4
    ifd = len(tags).to_bytes(2, "little")
    for tag, kind, value in tags:
        value = data_at if tag == 324 else value
        ifd += tag.to_bytes(2, "little") + kind.to_bytes(2, "little") + (1).to_bytes(4, "little")
        ifd += value.to_bytes(4, "little")
    return b"II*\x00" + ifd_at.to_bytes(4, "little") + ifd + bytes(4) + pixels


def test_a_small_tiff_of_one_huge_tile_is_refused_by_its_tile_size():
    # 16×16 pixels, but libtiff would decode the whole 16384² tile: 256 MiB.
    with pytest.raises(ImageError, match=r"16×16 TIFF image would take 257 MiB"):
        load_image(tiff_with_tile(16, 16384))


def test_a_tiff_of_ordinary_tiles_is_still_read():
    image = load_image(tiff_with_tile(16, 16))
    assert image.size == (16, 16) and image.getpixel((0, 0)) == 0


def _one_strip_cmyk16_tiff(side: int) -> bytes:
    """A deflated 16-bit CMYK TIFF of one strip: libtiff decodes it into a buffer of 8 bytes a pixel."""
    pixels = zlib.compress(bytes(side * side * 8), 9)
    tags = [(256, 4, 1, side), (257, 4, 1, side), (258, 3, 4, None), (259, 3, 1, 8), (262, 3, 1, 5)]
    tags += [(273, 4, 1, None), (277, 3, 1, 4), (278, 4, 1, side), (279, 4, 1, len(pixels))]
    bits_at = 8 + 2 + 12 * len(tags) + 4
    data_at = bits_at + 8
    out = b"II*\0" + struct.pack("<IH", 8, len(tags))
    for tag, kind, count, value in tags:
        value = bits_at if tag == 258 else data_at if tag == 273 else value
        packed = struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + packed
    return out + bytes(4) + struct.pack("<4H", 16, 16, 16, 16) + pixels


def test_a_tiff_of_one_compressed_strip_counts_that_strip_in_the_budget(monkeypatch):
    """A 325 KB 16-bit CMYK TIFF of 6470×6470 in one strip peaked at 581 MB, three times the budget:
    libtiff decodes the strip whole, at 16 bits a sample, beside the 8-bit picture Pillow keeps."""
    monkeypatch.setattr(picture, "MAX_DECODE_BYTES", 2**20)  # the picture alone: 352 KiB; its strip 703 KiB more
    with pytest.raises(ImageError, match="300×300 TIFF image would take 2 MiB"):
        load_image(_one_strip_cmyk16_tiff(300))
    in_strips = io.BytesIO()
    Image.new("CMYK", (300, 300)).save(in_strips, "TIFF", compression="tiff_deflate")  # strips of 64 KiB
    assert load_image(in_strips.getvalue()).size == (300, 300)


@pytest.mark.parametrize("mode", ["P", "L"])
def test_transparency_counts_its_rgba_copy_in_the_budget(monkeypatch, mode):
    # A 173 KB grey or palette PNG with transparency cost 1.3 GB once composited
    # through RGBA. Here the budget is 1 MiB: the 800×800 picture decodes in
    # 625 KiB, but its RGBA and premultiplied copies take 4.9 MiB more.
    monkeypatch.setattr(picture, "MAX_DECODE_BYTES", 2**20)
    plain, transparent = io.BytesIO(), io.BytesIO()
    Image.new(mode, (800, 800), 0).save(plain, format="PNG")
    Image.new(mode, (800, 800), 0).save(transparent, format="PNG", transparency=0)
    assert load_image(plain.getvalue()).size == (800, 800)
    with pytest.raises(ImageError, match="800×800 PNG image would take 6 MiB"):
        load_image(transparent.getvalue())


def test_a_webp_counts_the_canvases_of_its_decoder(monkeypatch):
    # libwebp's animation decoder, which Pillow uses for every WebP, took a
    # 6000×6000 file to 549 MiB where the budget counted 137. Budget 1 MiB:
    # 400×400 pixels fit at 4 bytes each, not with the decoder's canvases.
    monkeypatch.setattr(picture, "MAX_DECODE_BYTES", 2**20)
    small, large = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (200, 200), "white").save(small, format="WEBP")
    Image.new("RGB", (400, 400), "white").save(large, format="WEBP")
    assert load_image(small.getvalue()).size == (200, 200)
    with pytest.raises(ImageError, match="400×400 WEBP image would take"):
        load_image(large.getvalue())


def png_bytes(size=(28, 28), **params) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, 255).save(buffer, format="PNG", **params)
    return buffer.getvalue()


def test_only_a_tiny_png_without_inflated_chunks_counts_as_small():
    from PIL import PngImagePlugin

    from digits.read.prescan import SMALL_PNG_BYTES, small_png

    assert small_png(png_bytes()) and small_png(png_bytes((32, 32)))
    assert not small_png(png_bytes((33, 32)))  # more pixels than a crop
    assert not small_png(baseline_jpeg((28, 28)))  # only a PNG's header is read here
    text = PngImagePlugin.PngInfo()
    text.add_text("comment", "x" * 100_000, zip=True)  # a few hundred bytes that Pillow inflates to 100 KB
    assert not small_png(png_bytes(pnginfo=text))
    tiny = png_bytes()
    padded = tiny[:-12] + (b"\x00" * 4 + b"tEXt" + b"\x00" * 4) * (SMALL_PNG_BYTES // 12) + tiny[-12:]
    assert not small_png(padded)  # over the byte limit, whatever it holds
    many = tiny[:-12] + (b"\x00" * 4 + b"tEXt" + b"\x00" * 4) * 64 + tiny[-12:]
    assert len(many) < SMALL_PNG_BYTES and not small_png(many)  # too many chunks to walk on an event loop
    exif = Image.Exif()
    exif[0x0112] = 6  # an orientation: Pillow parses the whole EXIF to find it
    with_exif = png_bytes(exif=exif.tobytes())
    assert b"eXIf" in with_exif and not small_png(with_exif)


def test_a_tiny_pattern_is_not_looked_at_far_beyond_its_own_pixels():
    # One-pixel rings in 32×32: the second look for small writing enlarged them to 2048×2048 (2 s, 300 MiB).
    import numpy as np

    from digits.read.ink import analyse

    rows, cols = np.indices((32, 32))
    rings = Image.fromarray(np.where(np.hypot(rows - 16, cols - 16).astype(int) % 2 == 0, 0, 255).astype(np.uint8))
    assert max(analyse(rings).grey.shape) <= 8 * 32


def _png_with_chunks_before_its_pixels(count: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (10, 10), 255).save(buffer, format="PNG")
    png = buffer.getvalue()
    empty = struct.pack(">I", 0) + b"abCd" + struct.pack(">I", zlib.crc32(b"abCd"))
    at = png.index(b"IDAT") - 4
    return png[:at] + empty * count + png[at:]


def test_a_png_of_a_hundred_thousand_chunks_is_refused_from_its_headers():
    """Pillow keeps and walks every chunk in Python: 8.7 million empty ones (100 MB) took 77 s and 2.2 GB."""
    load_image(_png_with_chunks_before_its_pixels(100))  # a few extra chunks are nothing
    with pytest.raises(ImageError, match="a PNG of more than 100,000 chunks is no picture digits reads"):
        load_image(_png_with_chunks_before_its_pixels(prescan.MAX_PNG_CHUNKS + 1))


def test_a_text_pnm_of_many_comments_is_refused():
    """Pillow copied its block once per comment: 3 million comments (6 MB) ran for minutes."""
    body = b"2 2\n255\n0 255 255 0\n"
    assert load_image(b"P2\n# made by hand\n" + body).size == (2, 2)
    assert load_image(b"P2\n# " + b"#" * 200 + b"\n" + body).size == (2, 2), "one comment, however many #s"
    with pytest.raises(ImageError, match="a text PNM with 101 comments is no picture digits reads"):
        load_image(b"P2\n" + b"#\n" * 101 + body)


def _rle_bmp(width: int, height: int) -> bytes:
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    body = b"\x01\x00\x00\x00" * height + b"\x00\x01"  # one pixel, then the row ends: Pillow pads it byte by byte
    offset = 14 + 40 + len(palette)
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(body), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + header + palette + body


def test_a_big_run_length_bmp_is_refused_from_its_header():
    """A 51 KB RLE8 BMP of 12000×12500 took 25 s and 528 MB to decode."""
    assert load_image(_rle_bmp(100, 100)).size == (100, 100)
    assert load_image(_rle_bmp(2560, 1440)).size == (2560, 1440), "a screenshot's size reads"
    with pytest.raises(ImageError, match="a run-length BMP of 4001×1000 is slow to decode"):
        load_image(_rle_bmp(4001, 1000))


def test_a_jpeg_of_a_megabyte_of_fill_bytes_is_refused_before_pillow_walks_them(pillow_opens):
    """Pillow reads fill bytes (0xFF before a marker) one call at a time: 9 MiB took 6.9 s, twice per picture."""
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 255).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    after_first_segment = 4 + int.from_bytes(jpeg[4:6], "big")
    padded = [jpeg[:2] + b"\xff" * 2**20 + jpeg[2:]]  # fill bytes before a marker
    padded += [jpeg[:after_first_segment] + b"\x00" * 2**20 + jpeg[after_first_segment:]]  # stray ones, skipped alike
    for padding in padded:
        with pytest.raises(ImageError, match="KiB of fill or stray bytes before its pixels is refused"):
            load_image(padding)
    assert pillow_opens == []
    assert load_image(jpeg[:2] + b"\xff" * 100 + jpeg[2:]).size == (64, 64), "a few fill bytes are allowed"


def test_a_pnm_of_a_megabyte_of_white_space_in_its_header_is_refused():
    """Pillow reads a PNM's header a byte at a time: 9 MiB of spaces before the size took 4 s."""
    pixels = b"\xff" * 64 * 64
    assert load_image(b"P5\n64 64\n255\n" + pixels).size == (64, 64)
    assert load_image(b"P5 " + b"# a comment\n" * 90 + b"64 64 255\n" + pixels).size == (64, 64)
    padded = [b"P5" + b" " * 2**20 + b"\n64 64\n255\n", b"P5\n64" + b"\n" * 2**20 + b"64\n255\n"]
    padded += [b"Pf" + b" " * 2**20 + b"\n4 4\n-1.0\n", b"PyP" + b" " * 2**20 + b"\n4 4\n255\n"]  # Pillow's others
    # A comment may hold "#": forty of them and no line break took a backtracking pattern days.
    padded += [b"P5\n" + b"#" * 40 + b"x" * 70_000]
    for header in padded:
        with pytest.raises(ImageError, match="a PNM whose header runs past 64 KiB is refused"):
            load_image(header + pixels)


def test_a_big_text_pnm_is_refused_from_its_header():
    """A text PGM of 11000×11000 (242 MB) took 40 s and 680 MB to decode, in Python."""
    small = b"P2\n3 2\n255\n0 255 0\n255 0 255\n"
    assert load_image(small).size == (3, 2)
    big = b"P2\n2001 2000\n255\n0\n"  # the header is all that is read before the refusal
    with pytest.raises(ImageError, match="a text PNM of 2001×2000 is slow to decode"):
        load_image(big)


def test_damaged_exif_is_read_past_without_a_warning_per_tag(tmp_path):
    """Pillow warned once per skipped tag ("Tag data larger than file"): 10,800 lines on stderr for one JPEG."""
    from helpers import run_cli

    picture = io.BytesIO()
    Image.new("L", (40, 40), 255).save(picture, "JPEG")
    jpeg, tags = picture.getvalue(), 50
    directory = b"MM\0*" + struct.pack(">IH", 8, tags)
    directory += b"".join(struct.pack(">HHII", tag, 7, 10**6, 8) for tag in range(1, tags + 1)) + b"\0" * 4
    segment = b"Exif\0\0" + directory
    (tmp_path / "damaged.jpg").write_bytes(
        jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + jpeg[2:]
    )
    answered = run_cli("predict", "damaged.jpg", cwd=tmp_path)
    assert answered.returncode == 0 and answered.stderr == "", answered.stderr[:300]


def test_a_picture_of_no_pixels_given_to_the_python_api_is_an_image_error():
    from digits.read.reader import Reader

    reader = Reader()
    for read in (reader.read_digit, reader.read_page):
        with pytest.raises(ImageError, match=r"the image has no pixels \(0×5\)"):
            read(Image.new("L", (0, 5)))


@pytest.mark.parametrize("dark_paper", [False, True], ids=["ink on white", "white on black"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_one_nan_or_infinite_pixel_of_a_float_tiff_is_paper(tmp_path, mnist, bad, dark_paper):
    """It made the whole picture NaN: a clear 7 was read as "no digit found", with NumPy's warnings on stderr."""
    import warnings

    from digits.read.reader import Reader

    (x_test, y_test) = mnist[1]
    pixels = (x_test[0] if dark_paper else 255 - x_test[0]).astype("float32") / 255
    pixels[0, :] = bad  # a whole row: as ink, it would make a stroke of its own
    Image.fromarray(pixels).save(tmp_path / "seven.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Reader().read_digit(tmp_path / "seven.tif").digit == y_test[0]


def _gif_with_extensions_before_its_picture(extension: bytes, count: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (20, 20), 0).save(buffer, format="GIF")
    gif = buffer.getvalue()
    flags = gif[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # after the global colour table
    return gif[:at] + extension * count + gif[at:]


def test_a_gif_of_many_blocks_before_its_picture_is_refused():
    """Pillow reads each block in Python: 3.5 million empty comments (10.5 MB) took 3.4 s."""
    comment = b"\x21\xfe\x03abc\x00"  # a comment extension of one sub-block
    assert load_image(_gif_with_extensions_before_its_picture(comment, 50)).size == (20, 20)
    for empty in (b"\x21\xfe\x00", comment):
        bomb = _gif_with_extensions_before_its_picture(empty, prescan.MAX_GIF_BLOCKS + 1)
        with pytest.raises(ImageError, match="a GIF of more than 10,000 blocks before its picture is refused"):
            load_image(bomb)


@pytest.mark.parametrize("key", ["transparency", ORIGINAL_SIZE])
@pytest.mark.parametrize("mode", ["RGB", "L", "P"])
def test_a_png_text_chunk_named_as_a_key_pillow_or_digits_reads_is_text(tmp_path, key, mode):
    """Pillow keeps a PNG's text chunks in `info` under their names: one named "transparency" broke the conversion
    to grey, one named `ORIGINAL_SIZE` the picture's size (TypeError, ValueError: "a bug in digits"). The picture
    is read as without them, from a file and from the caller's own image."""
    from PIL import PngImagePlugin

    from digits.read.reader import Reader

    text = PngImagePlugin.PngInfo()
    text.add_text(key, "x")
    path = tmp_path / "texted.png"
    Image.new(mode, (40, 40), 255).save(path, pnginfo=text)
    reader = Reader()
    for given in (path, Image.open(path)):
        assert reader.read_digit(given).status == "no digit found"
        assert not reader.read_page(given).lines


def test_an_icon_holding_a_png_of_too_many_chunks_is_refused_before_pillow_walks_them(pillow_opens):
    """The chunks of a PNG on its own were counted; inside an ICO, 8 million empty ones took 59 s and 1.1 GB."""
    png = png_header(32, 32)
    empty_chunk = (0).to_bytes(4, "big") + b"prVt" + zlib.crc32(b"prVt").to_bytes(4, "big")
    with pytest.raises(ImageError, match="a PNG of more than 100,000 chunks"):
        load_image(icon_holding(png[:33] + empty_chunk * 100_001 + png[33:]))
    assert pillow_opens == []


def _tiff_of_strips(listed: int, big: bool = False, length: tuple[int, int] = (4, 2), extra: tuple = ()) -> bytes:
    """A 1×2 grey TIFF, one row a strip (so its size holds 2 strips), whose directory lists `listed` strip offsets;
    its height given as (type, value field), and `extra` entries (tag, type, count, value) after the others."""
    field, count_format = (8, "Q") if big else (4, "I")
    offsets_at = 2 * field + (8 if big else 2) + (8 + len(extra)) * (4 + 2 * field) + field

    def entry(tag: int, kind: int, count: int, value: int) -> bytes:
        return struct.pack(f"<HH{count_format}{count_format}", tag, kind, count, value)

    tags = [(256, 4, 1, 1), (257, length[0], 1, length[1]), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1)]
    tags += [(277, 3, 1, 1), (273, 16 if big else 4, listed, offsets_at), (278, 4, 1, 1), *extra]
    header = b"II" + (struct.pack("<HHHQ", 43, 8, 0, 16) if big else struct.pack("<HI", 42, 8))
    directory = struct.pack("<Q" if big else "<H", len(tags)) + b"".join(entry(*tag) for tag in tags) + bytes(field)
    pixels_at = offsets_at + field * listed
    return header + directory + struct.pack(f"<{listed}{count_format}", *[pixels_at] * listed) + b"\x08\x08"


@pytest.mark.parametrize("big", [False, True])
def test_a_tiff_listing_more_strips_than_its_size_holds_is_refused_before_pillow_opens_it(pillow_opens, big):
    """Pillow makes a tile of each strip listed, at open and at decode: 4 million strips of a 1×2 picture (4 MB)
    took 32 s and 2 GB, and a file of the size allowed could take tens of GB."""
    assert load_image(_tiff_of_strips(2, big)).size == (1, 2)
    pillow_opens.clear()
    with pytest.raises(ImageError, match="lists 1,000 strips or tiles where its size holds 2"):
        load_image(_tiff_of_strips(1000, big))
    assert pillow_opens == []


@pytest.mark.parametrize("options", [{}, {"compression": "tiff_lzw"}, {"big_tiff": True}, {"compression": "jpeg"}])
def test_ordinary_tiffs_list_the_strips_their_size_holds(options):
    picture = Image.new("RGB", (200, 300), (250, 250, 250))
    buffer = io.BytesIO()
    picture.save(buffer, "TIFF", **options)
    listed, holds = prescan.tiff_blocks(buffer.getvalue())
    assert listed == holds and load_image(buffer.getvalue()).size == (200, 300)


@pytest.mark.parametrize(
    ("length", "extra"),
    [
        ((4, 2), ((257, 4, 1, 10**6),)),  # a second height: Pillow reads the first
        ((4, 2), ((322, 4, 1, 16), (323, 4, 1, 16), (324, 4, 1, 8))),  # tiles listed too: Pillow reads the strips
        ((8, 2 + (0xFFFF << 16)), ()),  # the height a signed short, its padding not part of it
    ],
)
def test_a_tiff_cannot_hide_its_strips_behind_another_entry(pillow_opens, length, extra):
    """Ways a review found past the first check, each Pillow reading 1,000 strips of a picture 2 rows tall."""
    with pytest.raises(ImageError, match="lists 1,000 strips or tiles where its size holds 2"):
        load_image(_tiff_of_strips(1000, length=length, extra=extra))
    assert pillow_opens == []


def test_an_icons_png_is_walked_once_and_all_its_pngs_share_one_chunk_limit(monkeypatch):
    """Every directory entry of one PNG walked it again (20 entries: 13 s; 65,535 would take hours)."""
    png = png_header(32, 32)
    empty_chunk = (0).to_bytes(4, "big") + b"prVt" + zlib.crc32(b"prVt").to_bytes(4, "big")
    many = png[:33] + empty_chunk * 60_000 + png[33:]
    entry = (
        bytes([0, 0, 0, 0]) + (1).to_bytes(2, "little") + (32).to_bytes(2, "little") + len(many).to_bytes(4, "little")
    )
    walks = []
    real_walk = prescan.png_chunks
    monkeypatch.setattr(prescan, "png_chunks", lambda *args: walks.append(args[2]) or real_walk(*args))
    at = 6 + 16 * 20
    prescan.refuse_long_walks(b"\x00\x00\x01\x00\x14\x00" + (entry + at.to_bytes(4, "little")) * 20 + many, "x")
    assert walks == [at]
    two = b"\x00\x00\x01\x00\x02\x00" + entry + (38).to_bytes(4, "little") + entry
    two += (38 + len(many)).to_bytes(4, "little") + many + many
    with pytest.raises(ImageError, match="a PNG of more than 100,000 chunks"):
        prescan.refuse_long_walks(two, "x")
