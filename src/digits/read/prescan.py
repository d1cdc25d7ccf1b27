"""What a picture will cost to decode, read from the bytes of formats whose cost Pillow fixes before we can look.

`digits.read.load.load_image` holds every decode to a budget read from the image's
header. Two formats escape a check made on the opened image:

  * ICO: Pillow decodes the largest icon inside `Image.open`, and that
    icon's true size is in its own PNG or BMP header, not in the directory
    (which cannot say more than 256×256). `icon_frame_sizes` reads those
    headers from the bytes, so the budget is checked before `Image.open`.
  * TIFF: libtiff decodes a tile whole, whatever the image's size: a 16×16
    image may declare one 16384×16384 tile. `tiff_tile_bytes` is the memory
    that one tile takes, from the opened image's tags (opening decodes nothing).

Both only read headers: their work is linear in the directory, never in the pixels.
`small_png` tells, from a PNG's chunk headers, that decoding it costs next to
nothing (an MNIST-sized crop): the server decodes such a picture where it stands.
What the reader then does with it is not bounded by its size (a tiny pattern is
analysed at a large scale): that is the caller's to bound.
"""

from __future__ import annotations

from PIL import Image

ICO_MAGIC = b"\x00\x00\x01\x00"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
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


def icon_frame_sizes(data: bytes) -> list[tuple[int, int]]:
    """The (width, height) of every icon in ICO `data`, as its own header declares it.

    A directory entry whose frame header lies outside the data is skipped:
    Pillow cannot decode it either. A BMP frame's height counts its AND mask
    too, as Pillow allocates it.
    """
    count = int.from_bytes(data[4:6], "little")
    sizes = []
    for entry in range(count):
        at = 6 + 16 * entry
        if at + 16 > len(data):
            break
        offset = int.from_bytes(data[at + 12 : at + 16], "little")
        frame = data[offset : offset + 24]
        if frame[:8] == _PNG_MAGIC and len(frame) == 24:  # the IHDR chunk comes first
            sizes.append((int.from_bytes(frame[16:20], "big"), int.from_bytes(frame[20:24], "big")))
        elif len(frame) >= 12:
            if int.from_bytes(frame[:4], "little") == _BITMAPCOREHEADER:
                width, height = int.from_bytes(frame[4:6], "little"), int.from_bytes(frame[6:8], "little")
            else:
                width = abs(int.from_bytes(frame[4:8], "little", signed=True))
                height = abs(int.from_bytes(frame[8:12], "little", signed=True))
            sizes.append((width, height))
    return sizes


def tiff_tile_bytes(image: Image.Image) -> int:
    """The bytes libtiff takes to decode one tile of an opened TIFF (0 for a TIFF in strips, or another format)."""
    tags = getattr(image, "tag_v2", None)
    if image.format != "TIFF" or tags is None or _TILE_WIDTH not in tags:
        return 0
    bits = tags.get(_BITS_PER_SAMPLE, 8)
    bits = bits if isinstance(bits, tuple) else (bits,)
    # One value may stand for every sample.
    bits_per_pixel = sum(bits) if len(bits) > 1 else int(bits[0]) * int(tags.get(_SAMPLES_PER_PIXEL, 1))
    return int(tags[_TILE_WIDTH]) * int(tags.get(_TILE_LENGTH, 1)) * -(-bits_per_pixel // 8)


def small_png(data: bytes) -> bool:
    """Whether `data` is a PNG of at most `SMALL_PNG_BYTES` whose header declares at most `SMALL_PNG_PIXELS`
    pixels, in at most `SMALL_PNG_CHUNKS` chunks, none of them compressed text, a colour profile or EXIF:
    its decode is bounded by those few pixels.

    Walks the chunk headers only. A damaged PNG may pass: `load_image` then refuses it just as fast.
    """
    if len(data) > SMALL_PNG_BYTES or data[:8] != _PNG_MAGIC or data[12:16] != b"IHDR":
        return False
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if width * height > SMALL_PNG_PIXELS:
        return False
    at, chunks = len(_PNG_MAGIC), 0
    while at + 8 <= len(data):  # each chunk: 4 bytes of length, 4 of type, the data, 4 of CRC
        chunks += 1
        if chunks > SMALL_PNG_CHUNKS or data[at + 4 : at + 8] in _COSTLY_CHUNKS:
            return False
        at += 12 + int.from_bytes(data[at : at + 4], "big")
    return True
