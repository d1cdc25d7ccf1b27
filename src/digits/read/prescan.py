"""What a picture will cost to decode, read from the bytes of formats whose cost Pillow fixes before we can look.

`digits.read.load.load_image` holds every decode to a budget read from the image's
header. `jpeg_scans` walks a JPEG's segments before Pillow does (it reads them one by one in
Python inside `Image.open`), counting its scans for the budget. Two formats escape a check made
on the opened image:

  * ICO: Pillow decodes the largest icon inside `Image.open`, and that
    icon's true size is in its own PNG or BMP header, not in the directory
    (which cannot say more than 256×256). `icon_frame_sizes` reads those
    headers from the bytes, so the budget is checked before `Image.open`.
  * TIFF: libtiff decodes a tile, or a compressed strip, whole and in its
    samples' own depth, whatever the image's size: a 16×16 image may declare
    one 16384×16384 tile, and a 325 KB 16-bit CMYK file one strip of 335 MB.
    `tiff_block_bytes` is the memory that one block takes, from the opened
    image's tags (opening decodes nothing).

Both only read headers: their work is linear in the directory, never in the pixels.

Five formats have parts Pillow walks in Python, so a small file can hold enough of them to take minutes:
`png_chunks` counts a PNG's chunks (Pillow keeps and walks each one: 8.7 million empty chunks, 100 MB, took
77 s and 2.2 GB), `pnm_comments` a plain PBM/PGM/PPM's comments (each one copied its block: a 6 MB file ran
for minutes), `gif_blocks` a GIF's extension blocks before its first frame (3.5 million took 3.4 s),
`tiff_blocks` the strips or tiles a TIFF lists against those its size holds (Pillow makes a tile of each:
4 million took 32 s and 2 GB);
a run-length BMP and a plain PNM's pixels are decoded in Python (0.7 s for a 2000×2000 BMP; 6 s for a
4000×4000 PGM of text). `refuse_long_walks` and `refuse_slow_decoding` say no past the limits below.
`small_png` tells, from a PNG's chunk headers, that decoding it costs next to
nothing (an MNIST-sized crop): the server decodes such a picture where it stands.
What the reader then does with it is not bounded by its size (a tiny pattern is
analysed at a large scale): that is the caller's to bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from PIL import Image

from digits.errors import ImageError

# Pillow reads a JPEG's segments before its first scan one by one in Python,
# inside `Image.open`, and keeps each: millions of empty ones cost seconds and
# hundreds of MiB. Cameras write a few dozen, and a few MiB of metadata (EXIF,
# ICC, XMP); the walk is refused past these, before Pillow sees the file.
MAX_JPEG_SEGMENTS = 4096
MAX_JPEG_METADATA_BYTES = 16 * 2**20
# It also reads fill bytes (0xFF before a marker) one call at a time: 9 MiB of them took 6.9 s. Encoders
# write none, or a few.
MAX_JPEG_FILL_BYTES = 64 * 1024

# The same for the other formats Pillow reads part by part in Python: a PNG is
# written in chunks of 8 KiB of pixels (a file of `load.MAX_FILE_BYTES` holds
# 32,768), a text PNM's comments are a line or two of its header, and a
# run-length BMP is an old screenshot's format (4 MP: a 2560×1440 screen; a
# file whose rows all end at once costs Pillow 0.7 s at that size), as a text
# PNM is a toy's (4 MP of text is a file of 8 MB or more, and 1.5 s).
MAX_PNG_CHUNKS = 100_000
MAX_PNM_COMMENTS = 100
# A PNM's header (its magic number, size and largest value) is read a byte at a time: 9 MiB of white space
# in it took 4 s. A real one is a line or two.
MAX_PNM_HEADER_BYTES = 64 * 1024
MAX_SLOW_DECODE_PIXELS = 4_000_000
# Pillow reads a GIF's extension blocks one by one in Python until its first frame: 3.5 million
# empty comment blocks (10.5 MB) took 3.4 s. An animation's first frame follows a few blocks.
MAX_GIF_BLOCKS = 10_000

# Both patterns are linear on any bytes: no quantifier is followed by anything
# that could make the engine backtrack (`\xff+[^...]` was quadratic on a run of 0xFF).
_JPEG_MARKER_AFTER_DATA = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_FILL = re.compile(rb"\xff+")
# The magic number of a file Pillow's PPM reader takes (PBM, PGM, PPM, PFM and its own "Py" and "P0" kinds),
# and one token of its header after the white space and comments before it. Possessive: nothing is given
# back (a comment may hold "#", and a run of them split in every way took exponential time).
_PNM_MAGIC = re.compile(rb"P[0-6fy][^\s#]{0,6}")
_PNM_TOKEN = re.compile(rb"(?:\s|#[^\r\n]*+)*+[^\s#]++")

ICO_MAGIC = b"\x00\x00\x01\x00"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_BITMAPCOREHEADER = 12
# A PNG within these limits, with none of the chunks below, decodes in a tenth of a
# millisecond (a 28×28 crop); a real one has 3 to 10 chunks.
SMALL_PNG_BYTES = 16 * 2**10
SMALL_PNG_PIXELS = 32 * 32
SMALL_PNG_CHUNKS = 64
# Chunks Pillow does more with than copy: text and colour profiles it inflates (a few KiB can
# hold megabytes), EXIF it parses (a thousand tags took 25 ms).
_COSTLY_CHUNKS = {b"zTXt", b"iTXt", b"iCCP", b"eXIf"}
_TILE_WIDTH, _TILE_LENGTH, _BITS_PER_SAMPLE, _SAMPLES_PER_PIXEL = 322, 323, 258, 277
_COMPRESSION, _ROWS_PER_STRIP = 259, 278
_IMAGE_WIDTH, _IMAGE_LENGTH, _STRIP_OFFSETS, _TILE_OFFSETS, _PLANAR_CONFIGURATION = 256, 257, 273, 324, 284


def icon_frame_sizes(data: bytes) -> list[tuple[int, int]]:
    """The (width, height) of every icon in ICO `data`, as its own header declares it.

    A directory entry whose frame header lies outside the data is skipped:
    Pillow cannot decode it either. A BMP frame's height counts its AND mask
    too, as Pillow allocates it.
    """
    sizes = []
    for offset in _icon_offsets(data):
        frame = data[offset : offset + 24]
        if frame[:8] == PNG_MAGIC and len(frame) == 24:  # the IHDR chunk comes first
            sizes.append((int.from_bytes(frame[16:20], "big"), int.from_bytes(frame[20:24], "big")))
        elif len(frame) >= 12:
            if int.from_bytes(frame[:4], "little") == _BITMAPCOREHEADER:
                width, height = int.from_bytes(frame[4:6], "little"), int.from_bytes(frame[6:8], "little")
            else:
                width = abs(int.from_bytes(frame[4:8], "little", signed=True))
                height = abs(int.from_bytes(frame[8:12], "little", signed=True))
            sizes.append((width, height))
    return sizes


def _icon_offsets(data: bytes) -> list[int]:
    """Where each icon of ICO `data` starts, as its directory says, for the entries that lie within the data."""
    entries = range(6, min(6 + 16 * int.from_bytes(data[4:6], "little"), len(data) - 15), 16)
    return [int.from_bytes(data[at + 12 : at + 16], "little") for at in entries]


def _icon_png_offsets(data: bytes) -> list[int]:
    """Where the PNG icons of ICO `data` start, each once (Pillow reads each from there on)."""
    return sorted(offset for offset in set(_icon_offsets(data)) if data[offset : offset + 8] == PNG_MAGIC)


# A TIFF value's width in bytes, and whether it is signed, by its type (BYTE, SHORT, LONG, SBYTE, SSHORT, SLONG, LONG8,
# SLONG8); any other type is read as the whole value field.
_TIFF_TYPES = {1: (1, False), 3: (2, False), 4: (4, False), 6: (1, True), 8: (2, True), 9: (4, True)}
_TIFF_TYPES |= {16: (8, False), 17: (8, True)}
# A directory has a few dozen entries; a classic TIFF's count stops here, and a BigTIFF's is refused beyond it.
MAX_TIFF_ENTRIES = 65_535


def _tiff_directory(data: bytes) -> tuple[Literal["little", "big"], int, int, int] | None:
    """A TIFF's byte order, the width of its counts and offsets (4, or 8 in a BigTIFF), where its first directory's
    entries start and how many it declares; None for another format."""
    byte_orders: dict[bytes, Literal["little", "big"]] = {b"II": "little", b"MM": "big"}
    order = byte_orders.get(data[:2])
    magic = int.from_bytes(data[2:4], order) if order else 0
    if order is None or magic not in (42, 43):  # 43: a BigTIFF
        return None
    field = 8 if magic == 43 else 4
    at = int.from_bytes(data[field : 2 * field], order)  # the first directory's offset
    count_bytes = 2 if field == 4 else 8
    return order, field, at + count_bytes, int.from_bytes(data[at : at + count_bytes], order)


def tiff_blocks(data: bytes) -> tuple[int, int] | None:
    """How many strips or tiles a TIFF's first directory lists, and how many its size holds, from the bytes;
    None for another format or a directory that lists neither (Pillow then refuses the file itself).

    Pillow makes a Python tile of each offset listed, at open and again at decode: 4 million one-byte strips of a
    1×2 picture (a 4 MB file) took 32 s and 2 GB. A picture holds one strip per `RowsPerStrip` rows (one strip
    for all of them when it is not given) or one tile per tile of its size, for each plane of samples stored
    apart. A tag given twice counts once, as Pillow reads it (the first); where both strips and tiles are listed,
    the one listing more than the picture holds is given.
    """
    directory = _tiff_directory(data)
    if directory is None:
        return None
    order, field, at, entries = directory
    entry_bytes = 4 + 2 * field
    tags: dict[int, tuple[int, int]] = {}  # tag -> (count, its first value where it fits in the entry)
    for entry in range(
        at, min(at + entry_bytes * min(entries, MAX_TIFF_ENTRIES), len(data) - entry_bytes + 1), entry_bytes
    ):
        tag, kind = int.from_bytes(data[entry : entry + 2], order), int.from_bytes(data[entry + 2 : entry + 4], order)
        width, signed = _TIFF_TYPES.get(kind, (field, False))
        value = data[entry + 4 + field : entry + 4 + field + width]
        tags.setdefault(
            tag,
            (int.from_bytes(data[entry + 4 : entry + 4 + field], order), int.from_bytes(value, order, signed=signed)),
        )
    width, height = max(tags.get(_IMAGE_WIDTH, (0, 0))[1], 0), max(tags.get(_IMAGE_LENGTH, (0, 0))[1], 0)
    planes = max(tags.get(_SAMPLES_PER_PIXEL, (1, 1))[1], 1) if tags.get(_PLANAR_CONFIGURATION, (1, 1))[1] == 2 else 1
    found = []
    if _STRIP_OFFSETS in tags:
        rows = max(min(tags.get(_ROWS_PER_STRIP, (1, height))[1], height), 1)
        found.append((tags[_STRIP_OFFSETS][0], -(-height // rows)))
    if _TILE_OFFSETS in tags:
        across, down = max(tags.get(_TILE_WIDTH, (1, 1))[1], 1), max(tags.get(_TILE_LENGTH, (1, 1))[1], 1)
        found.append((tags[_TILE_OFFSETS][0], -(-width // across) * -(-height // down)))
    if not found:
        return None
    listed, holds = max(found, key=lambda block: block[0] - max(block[1], 1) * planes)
    return listed, max(holds, 1) * planes


def tiff_block_bytes(image: Image.Image) -> int:
    """The bytes libtiff takes to decode one block of an opened TIFF: a tile, or a compressed strip, in its
    samples' own depth (16-bit CMYK: 8 bytes a pixel); 0 for an uncompressed strip, or another format."""
    tags = getattr(image, "tag_v2", None)
    if image.format != "TIFF" or tags is None:
        return 0
    bits = tags.get(_BITS_PER_SAMPLE, 8)
    bits = bits if isinstance(bits, tuple) else (bits,)
    # One value may stand for every sample.
    bits_per_pixel = sum(bits) if len(bits) > 1 else int(bits[0]) * int(tags.get(_SAMPLES_PER_PIXEL, 1))
    if _TILE_WIDTH in tags:
        width, rows = int(tags[_TILE_WIDTH]), int(tags.get(_TILE_LENGTH, 1))
    elif tags.get(_COMPRESSION, 1) != 1:  # Pillow reads an uncompressed strip row by row itself
        width, rows = image.size[0], min(int(tags.get(_ROWS_PER_STRIP, image.size[1])), image.size[1])
    else:
        return 0
    return width * rows * -(-bits_per_pixel // 8)


def small_png(data: bytes) -> bool:
    """Whether `data` is a PNG of at most `SMALL_PNG_BYTES` whose header declares at most `SMALL_PNG_PIXELS`
    pixels, in at most `SMALL_PNG_CHUNKS` chunks, none of them compressed text, a colour profile or EXIF:
    its decode is bounded by those few pixels.

    Walks the chunk headers only. A damaged PNG may pass: `load_image` then refuses it just as fast.
    """
    if len(data) > SMALL_PNG_BYTES or data[:8] != PNG_MAGIC or data[12:16] != b"IHDR":
        return False
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if width * height > SMALL_PNG_PIXELS:
        return False
    for count, kind in enumerate(_png_chunk_types(data), 1):
        if count > SMALL_PNG_CHUNKS or kind in _COSTLY_CHUNKS:
            return False
    return True


def png_chunks(data: bytes, limit: int, start: int = 0) -> int:
    """How many chunks the headers of the PNG at `start` chain together up to its IEND, counting no further than
    `limit` + 1."""
    chunks = 0
    for kind in _png_chunk_types(data, start):
        chunks += 1
        if kind == b"IEND" or chunks > limit:
            break
    return chunks


def _png_chunk_types(data: bytes, start: int = 0) -> Iterator[bytes]:
    """The type of each chunk the headers of the PNG at `start` chain together, in order, read from the headers."""
    at = start + len(PNG_MAGIC)
    while at + 8 <= len(data):  # each chunk: 4 bytes of length, 4 of type, the data, 4 of CRC
        yield data[at + 4 : at + 8]
        at += 12 + int.from_bytes(data[at : at + 4], "big")


def _text_pnm(data: bytes) -> bool:
    """Whether `data` is a plain (text) PBM, PGM or PPM, whose pixels are numbers written out."""
    return data[:2] in (b"P1", b"P2", b"P3")


def pnm_comments(data: bytes) -> int:
    """How many comments a plain (text) PBM, PGM or PPM holds; 0 for any other file."""
    if not _text_pnm(data):
        return 0
    # A comment starts with "#" where white space may stand: after the magic number or white space.
    # Counted with bytes.count, so a file of millions costs milliseconds; a "#" inside a comment is not one more.
    starts = sum(data.count(space + b"#") for space in (b" ", b"\t", b"\n", b"\r", b"\v", b"\f"))
    return starts + (data[2:3] == b"#")


def refuse_long_walks(data: bytes, name: str) -> None:
    """Refuse (`ImageError` naming `name`) a PNG (or an ICO's PNG icon), GIF, text PNM or TIFF with more parts than
    Pillow should walk."""
    starts = [0] if data[:8] == PNG_MAGIC else _icon_png_offsets(data) if data[:4] == ICO_MAGIC else []
    walked = 0  # one budget for an ICO's icons together: each one's walk is Pillow's too
    for start in starts:
        walked += png_chunks(data, MAX_PNG_CHUNKS - walked, start)
        if walked > MAX_PNG_CHUNKS:
            raise ImageError(f"{name}: a PNG of more than {MAX_PNG_CHUNKS:,} chunks is no picture digits reads.")
    if (directory := _tiff_directory(data)) is not None and directory[3] > MAX_TIFF_ENTRIES:
        raise ImageError(f"{name}: a TIFF directory of more than {MAX_TIFF_ENTRIES:,} entries is refused.")
    if (blocks := tiff_blocks(data)) is not None and blocks[0] > blocks[1]:
        raise ImageError(
            f"{name}: a TIFF whose first picture lists {blocks[0]:,} strips or tiles where its size holds "
            f"{blocks[1]:,} is refused."
        )
    if data[:3] == b"GIF" and gif_blocks(data, MAX_GIF_BLOCKS) > MAX_GIF_BLOCKS:
        raise ImageError(f"{name}: a GIF of more than {MAX_GIF_BLOCKS:,} blocks before its picture is refused.")
    if (comments := pnm_comments(data)) > MAX_PNM_COMMENTS:
        raise ImageError(f"{name}: a text PNM with {comments:,} comments is no picture digits reads.")
    if len(data) > MAX_PNM_HEADER_BYTES and pnm_header_bytes(data[: MAX_PNM_HEADER_BYTES + 1]) is None:
        raise ImageError(f"{name}: a PNM whose header runs past {MAX_PNM_HEADER_BYTES // 1024} KiB is refused.")


def pnm_header_bytes(data: bytes) -> int | None:
    """Where the header of a file Pillow's PPM reader takes ends in `data` (its magic number, size and, but for
    a bitmap, largest value or scale); None when `data` ends first; 0 for any other file."""
    if (magic := _PNM_MAGIC.match(data)) is None:
        return 0
    position = magic.end()
    for _ in range(2 if magic.group() in (b"P1", b"P4") else 3):
        token = _PNM_TOKEN.match(data, position)
        if token is None or token.end() == len(data):  # a token cut by the end may go on
            return None
        position = token.end()
    return position


def refuse_slow_decoding(image: Image.Image, data: bytes, name: str) -> None:
    """Refuse an opened picture over `MAX_SLOW_DECODE_PIXELS` whose pixels Pillow decodes in Python: a
    run-length BMP (RLE8 or RLE4) or a plain (text) PBM, PGM or PPM. `data` is the file's bytes."""
    width, height = image.size
    if width * height <= MAX_SLOW_DECODE_PIXELS:
        return
    if image.format in ("BMP", "DIB") and image.info.get("compression") in (1, 2):
        kind = "a run-length BMP"
    elif _text_pnm(data):
        kind = "a text PNM"
    else:
        return
    raise ImageError(
        f"{name}: {kind} of {width}×{height} is slow to decode; "
        f"digits reads one up to {MAX_SLOW_DECODE_PIXELS // 10**6} megapixels (save it as PNG)."
    )


def jpeg_scans(data: bytes, name: str = "the image data") -> int:
    """How many scans (SOS segments) a JPEG stream holds, counted without decoding it.

    Walks the marker segments; after each SOS, skips the entropy-coded data to
    the next marker (0xFF00 is a stuffed byte, 0xFFD0-D7 a restart, neither
    ends it). Stops at EOI or wherever the stream stops making sense: the
    decoder then says what is wrong with it. A stream of more than
    `MAX_JPEG_SEGMENTS` segments, or more than `MAX_JPEG_METADATA_BYTES` or
    `MAX_JPEG_FILL_BYTES` of fill (0xFF, or any byte where a marker should
    be) before its first scan, is refused (`ImageError` naming `name`).
    The walk is linear in the bytes.
    """
    scans, segments, filled, position, end = 0, 0, 0, 2, len(data)
    while position + 4 <= end:
        if data[position] != 0xFF:  # not a marker: Pillow skips such bytes, one call each, before the pixels
            following = data.find(b"\xff", position)
            if scans or following < 0:
                break
            filled += following - position
            position = following
            if filled > MAX_JPEG_FILL_BYTES:
                break  # refused below
            continue
        marker = data[position + 1]
        if marker == 0xFF:  # fill bytes before a marker: skip the run at once, keeping its last 0xFF
            fill = _JPEG_FILL.match(data, position)
            assert fill is not None  # data[position] is 0xFF, which the pattern matches
            if not scans:
                filled += fill.end() - 1 - position
            position = fill.end() - 1
            if filled > MAX_JPEG_FILL_BYTES:
                break  # refused below
            continue
        if marker == 0xD9:  # end of image
            break
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise ImageError(
                f"{name}: a JPEG of more than {MAX_JPEG_SEGMENTS} marker segments is refused "
                "(cameras write a few dozen; save it again as an ordinary JPEG)."
            )
        if not scans and position > MAX_JPEG_METADATA_BYTES:
            raise ImageError(
                f"{name}: a JPEG with more than {MAX_JPEG_METADATA_BYTES // 2**20} MiB of metadata "
                "before its pixels is refused (save it again without the metadata)."
            )
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            position += 2
            continue
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:
            scans += 1
            found = _JPEG_MARKER_AFTER_DATA.search(data, position)
            if found is None:
                break
            position = found.start()
    if filled > MAX_JPEG_FILL_BYTES:
        raise ImageError(
            f"{name}: a JPEG with more than {MAX_JPEG_FILL_BYTES // 1024} KiB of fill or stray bytes before its "
            "pixels is refused (save it again as an ordinary JPEG)."
        )
    return scans


def gif_blocks(data: bytes, limit: int) -> int:
    """How many extensions and their sub-blocks a GIF holds before its first frame, counting no further than `limit` + 1."""
    if data[:3] != b"GIF" or len(data) < 13:
        return 0
    flags = data[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # after the global colour table, if any
    blocks = 0
    while at + 1 < len(data) and data[at] == 0x21 and blocks <= limit:  # an extension: its label, then sub-blocks
        blocks += 1
        at += 2
        while at < len(data) and data[at] and blocks <= limit:
            blocks += 1
            at += 1 + data[at]
        at += 1  # the sub-blocks' terminator
    return blocks
