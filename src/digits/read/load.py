"""Loading a picture: any file a user may bring, opened safely.

`load_image` reads a file (or bytes) once, refuses what is not an image or
would not fit in memory with one sentence naming the file (`ImageError`),
and returns the first frame turned upright by its EXIF orientation. What a
decode may cost is checked from the picture's header first (the decode
budget); `digits.read.grey` then makes the grey array the analysis reads.

Only Pillow is imported here (and pillow-heif once a HEIC comes).
"""

from __future__ import annotations

import functools
import io
import os
import stat
import warnings
from pathlib import Path

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from digits.errors import ImageError
from digits.read import heif, isolated
from digits.read.grey import ORIGINAL_SIZE, WORK_MAX, has_alpha, true_size
from digits.read.prescan import (
    ICO_MAGIC,
    icon_frame_sizes,
    jpeg_scans,
    refuse_long_walks,
    refuse_slow_decoding,
    tiff_block_bytes,
)
from digits.safe_open import read_open, read_regular

# Pillow warns of each tag it skips in damaged EXIF or TIFF data (10,800 lines for one JPEG) and, from 89 megapixels,
# of a possible decompression bomb (the decode budget below refuses bombs from the header): for pictures of unknown
# origin that is noise, since each is read or refused in one sentence. Filtered once, for Pillow's modules only;
# `warnings.catch_warnings` round each decode is not thread-safe (the server decodes on two threads).
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# The budget for one picture, checked from its header before any pixel is
# decoded. Phone cameras make 50-200 megapixel JPEGs: those are decoded at a
# reduced size by DCT scaling (JPEG's `draft`), so what counts is the memory
# the decode itself takes. Formats that cannot be decoded smaller (PNG, TIFF,
# HEIF, ...) pay their full size: 192 MiB lets in an iPhone's 24-megapixel
# HEIC photo. A picture over either limit is refused.
MAX_PIXELS = 150_000_000
MAX_DECODE_BYTES = 192 * 2**20
# A progressive JPEG is decoded once per scan, over every coefficient of the
# full-size image: encoders use about 10 scans; a crafted file holds
# thousands, and costs seconds of CPU each. Refuse past a few dozen, or past
# this many scan-pixels (scans × pixels) in all.
MAX_JPEG_SCANS = 64
MAX_SCAN_PIXELS = 1_000_000_000
# Refuse to even read files larger than this: no sane digit photo is bigger.
MAX_FILE_BYTES = 256 * 1024 * 1024
OUT_OF_MEMORY = "not enough memory to decode this image."
# Pillow's names of the formats a picture may come in (MPO: a phone's JPEG; DIB: a BMP's body; HEIF: an iPhone's).
READABLE_FORMATS = {"PNG", "JPEG", "MPO", "HEIF", "BMP", "DIB", "GIF", "WEBP", "TIFF", "PPM", "TGA", "ICO"}
EXPECTED = "PNG, JPEG, HEIC, BMP, GIF, WebP, TIFF, PPM, TGA or ICO"
# What a format's decoder holds beside the picture, in bytes a pixel, from the peak of a decode: libwebp's animation
# decoder (every WebP) its canvases (16.3-16.7 in all); libheif's depends on the file (`heif.declared`).
_DECODER_BYTES_PER_PIXEL = {"WEBP": 13}
# What one icon costs Pillow: the icon, its 1-bit mask, and the RGBA merge of both.
_ICON_BYTES_PER_PIXEL = 9


@functools.cache
def picture_suffixes() -> frozenset[str]:
    """The file-name suffixes (lower case, with the dot) Pillow gives the formats above: what a folder's
    pictures are told by (`.jpg`, `.jfif`, `.apng`, `.heic`, `.tif`, `.pgm`, ...)."""
    heif.register()
    return frozenset(suffix for suffix, name in Image.registered_extensions().items() if name in READABLE_FORMATS)


# ---------------------------------------------------------------- Loading


def load_image(source: str | os.PathLike[str] | bytes) -> Image.Image:
    """Open an image file (or its bytes) safely and return its first frame.

    The file is read once and checked with Pillow's `verify()`. Before any pixel is decoded, the header is held
    to `MAX_PIXELS` and the decode's memory to `MAX_DECODE_BYTES` (a TIFF's tile, the RGBA copy that transparency
    needs and the decoder's own buffers included), and a JPEG's scans are counted. A JPEG's segments and an ICO's
    icons are checked before Pillow opens the file: it walks the former and decodes the latter inside
    `Image.open`. A big JPEG is decoded at a reduced size by DCT scaling, never below the analysis resolution;
    its true size is then kept in `image.info[ORIGINAL_SIZE]`. A HEIC photo is decoded at full size (on Linux in
    a child process under the kernel's limits, `digits.read.isolated`), then reduced as a JPEG of its size is.
    The frame is turned upright according to its EXIF orientation (a HEIF's own turn is applied by libheif).
    Animated GIF/WebP/TIFF give their first frame. Every failure becomes an `ImageError` whose message is one
    sentence naming the file and the fault.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = "the image data"
        data = bytes(source)
    else:
        name = os.fspath(source)
        data = _read_file(Path(name), name)
    if not data:
        raise ImageError(f"{name}: the file is empty (0 bytes), not an image.")
    return _decode(data, name)


def _read_file(path: Path, name: str) -> bytes:
    if not name:
        raise ImageError("the file name is empty; pass the path of an image file.")
    if "\0" in name:  # no file name holds one: a picture's bytes decoded to text, most likely
        raise ImageError("a path holds no NUL character; pass a picture's bytes as bytes, not as text.")
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageError(f"{name}: a symbolic link to {os.readlink(path)}, which does not exist.") from None
        raise ImageError(f"{name}: no such file.") from None
    except OSError as err:  # a symlink loop, a file used as a folder on the way, a folder we may not enter
        raise ImageError(f"{name}: cannot be opened ({err.strerror or err}).") from None
    except UnicodeEncodeError:  # a lone surrogate (from text decoded wrongly) that no file name holds
        raise ImageError(f"{ascii(name)}: not a file name, it holds characters no file system encodes.") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{name}: a folder, not an image file.")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(f"{name}: a device, FIFO or socket, not an image file.")
    if info.st_size > MAX_FILE_BYTES:
        raise ImageError(f"{name}: the file is {info.st_size / 2**20:.0f} MiB, too large for a digit image.")
    # The checks above name the common mistakes; this read holds if the file is swapped meanwhile (a FIFO, /dev/zero).
    return read_regular(path, MAX_FILE_BYTES, ImageError, "pass an image file")


def check_pixels(size: tuple[int, int], name: str, most: int | None = MAX_PIXELS) -> None:
    """Refuse a picture of no pixels, or of more than `most` (`ImageError` naming `name`)."""
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{name}: the image has no pixels ({width}×{height}).")
    if most is not None and width * height > most:
        raise ImageError(
            f"{name}: {width}×{height} pixels is over the limit of {most // 1_000_000} megapixels "
            "(possible decompression bomb)."
        )


def _decode_budget(
    image: Image.Image, full_size: tuple[int, int], scans: int, name: str, declared: heif.Declared | None = None
) -> None:
    """Refuse, from the header, a decode that would take more than `MAX_DECODE_BYTES` or too many JPEG scans.
    `declared`: a HEIF's price, whose decoder decodes the largest image the file declares, not `image.size`."""
    width, height = image.size
    decoder_bytes: float = _DECODER_BYTES_PER_PIXEL.get(image.format or "", 0)
    if declared:
        decoder_bytes = declared.decoder_bytes_per_pixel
        if declared.size[0] * declared.size[1] > width * height:
            check_pixels(declared.size, name)
            width, height = full_size = declared.size
    # Pillow keeps one byte per pixel for 1-bit, grey and palette images, two
    # for 16-bit grey, four for everything else (RGB is padded to RGBX).
    per_pixel = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    if has_alpha(image):
        # Transparency is composited from an RGBA copy of the whole picture,
        # which Pillow resizes through a premultiplied copy (working_grey): a
        # 1-byte palette picture then peaks at 9 bytes per pixel.
        per_pixel += 8
    # libtiff decodes a tile or a compressed strip whole into a buffer of its own, however small the image.
    needed = int(width * height * (per_pixel + decoder_bytes)) + tiff_block_bytes(image)
    if image.format in ("JPEG", "MPO"):
        pixels = full_size[0] * full_size[1]
        if scans > MAX_JPEG_SCANS or scans * pixels > MAX_SCAN_PIXELS:
            raise ImageError(
                f"{name}: a JPEG of {full_size[0]}×{full_size[1]} pixels in {scans} scans is refused "
                "(encoders write at most a dozen; save it again as an ordinary JPEG)."
            )
        if scans > 1:
            # libjpeg keeps every coefficient of a multi-scan image at full
            # size (two bytes each, per component at its own sampling), however
            # small the output.
            layers = getattr(image, "layer", None) or [("", 1, 1, 0)]
            h_max = max(layer[1] for layer in layers)
            v_max = max(layer[2] for layer in layers)
            needed += sum(2 * pixels * layer[1] * layer[2] // (h_max * v_max) for layer in layers)
    _refuse_over_budget(needed, full_size, image.format or "", name)


def _refuse_over_budget(needed: int, size: tuple[int, int], kind: str, name: str) -> None:
    if needed > MAX_DECODE_BYTES:
        raise ImageError(
            f"{name}: decoding this {size[0]}×{size[1]} {kind} image would take "
            f"{-(-needed // 2**20)} MiB, over the limit of {MAX_DECODE_BYTES // 2**20} MiB "
            "(save it smaller, or as an ordinary JPEG)."
        )


def _undecoded_heif(image: Image.Image) -> bool:
    if image.format != "HEIF":
        return False
    # pillow-heif's own flag: its `seek` gives the image a blank buffer, which the test below would take for pixels.
    if (loaded := getattr(image, "_LibHeifImageFile__loaded", None)) is not None:
        return not loaded
    # Its pixels: in `_im` from Pillow 11 (`im` then asserts they are there), in `im` before; None until decoded.
    return (image._im if hasattr(image, "_im") else image.im) is None


def _opened_bytes(image: Image.Image, name: str) -> bytes:
    """The bytes of the file a caller's image was opened from, read through its own open file (the name it was
    opened by may point at another file by now), or an `ImageError` naming `name` where there is none."""
    fp = getattr(image, "fp", None)
    if isinstance(fp, io.BytesIO):
        return fp.getvalue()
    try:
        fd = fp.fileno()  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):  # closed, or a file object with no file under it
        raise ImageError(
            f"{name}: a HEIC whose file cannot be read again cannot be checked; pass its path or bytes."
        ) from None
    return read_open(fd, name, MAX_FILE_BYTES, ImageError, "pass an image file")


def decoded_opened_heif(image: Image.Image, name: str) -> Image.Image | None:
    """A HEIF image the caller opened and has not decoded, at its first image, decoded from its file's bytes as
    `load_image` decodes any HEIC: behind `digits.read.isolated`'s wall, where Pillow would decode it in this
    process. None for any other image, where the wall is not there, or where the caller's plugin gives a
    thumbnail of another size (`draft`)."""
    if not (isolated.AVAILABLE and _undecoded_heif(image) and image.tell() == 0):
        return None
    decoded = _decode(_opened_bytes(image, name), name)
    if true_size(decoded) != image.size:
        decoded.close()
        return None
    return decoded


def within_budget(image: Image.Image, name: str) -> tuple[int, int]:
    """The size of a Pillow image the caller passed, checked before it is decoded. One opened but not decoded
    (`Image.open` reads the header only) is held to a file's limits (but for JPEG scans, which only its bytes
    tell); a JPEG over the budget at full size is set to decode reduced, as `load_image` decodes one (`draft`,
    on the caller's image). A decoded image has spent its memory: only its size is checked. A HEIF image lists
    no tiles, decoded or not: one not decoded yet has its file's header read again, through its open file."""
    full_size = image.size
    undecoded_heif = _undecoded_heif(image)
    if not getattr(image, "tile", None) and not undecoded_heif:  # decoded, or made in memory (Image.new)
        check_pixels(full_size, name, most=None)
        return full_size
    check_pixels(full_size, name)
    declared = None
    if undecoded_heif:
        declared = heif.declared(_opened_bytes(image, name), name)
    try:
        _decode_budget(image, full_size, 0, name, declared)
    except ImageError:
        if image.format not in ("JPEG", "MPO"):
            raise
        _reduce_jpeg(image)
        _decode_budget(image, full_size, 0, name)
    return full_size


def _opened(data: bytes) -> Image.Image:
    """`Image.open` of `data`, trying the formats digits reads only: no other plugin of Pillow's parses a byte of
    it (libavif parsed an AVIF of 65,000 items for 38 s before it could be refused)."""
    Image.init()
    return Image.open(io.BytesIO(data), formats=[kind for kind in READABLE_FORMATS if kind in Image.OPEN])


def _format_of(data: bytes) -> str | None:
    """The name of the format Pillow would take `data` for from its first bytes alone, parsing nothing."""
    for kind in Image.ID:
        accept = Image.OPEN[kind][1]
        if accept is not None and accept(data[:16]) is True:
            return kind
    return None


def _decode(data: bytes, name: str) -> Image.Image:
    """A file's bytes decoded: a HEIF's in a child process where the kernel's limits can be set, any other here."""
    if isolated.AVAILABLE and heif.is_heif(data):  # libheif, behind a wall of its own (`digits.read.isolated`)
        return isolated.decode(data, name)
    return decode_here(data, name)


def decode_here(data: bytes, name: str) -> Image.Image:
    """`data` decoded in this process (after every check of `load_image`), upright, big HEIFs reduced."""
    # Before Pillow reads a byte: it walks a JPEG's first segments and decodes an ICO inside `Image.open`, and
    # libheif reads a HEIF's tracks and pillow-heif its metadata there.
    scans = jpeg_scans(data, name) if data[:3] == b"\xff\xd8\xff" else 0
    for size in icon_frame_sizes(data) if data[:4] == ICO_MAGIC else []:  # each icon held to the budget
        check_pixels(size, name)
        _refuse_over_budget(size[0] * size[1] * _ICON_BYTES_PER_PIXEL, size, "ICO", name)
    refuse_long_walks(data, name)
    declared = heif.declared(data, name) if heif.is_heif(data) else None
    if declared:
        heif.register()
    if data[:5] == b"%PDF-":  # Pillow writes PDFs but cannot read them: say so, rather than "not an image"
        raise ImageError(f"{name}: a PDF is a document, not a picture; export its page as PNG or JPEG.")
    try:
        with _opened(data) as probe:
            check_pixels(probe.size, name)
            refuse_slow_decoding(probe, data, name)
            probe.verify()  # checksums and structure, without decoding
        # verify() leaves the image unusable: open again to decode.
        image = _opened(data)
        image.seek(0)  # first frame of an animation or multi-page TIFF
        full_size = image.size
        check_pixels(full_size, name)
        _reduce_jpeg(image)
        _decode_budget(image, full_size, scans, name, declared if image.format == "HEIF" else None)
        image.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        kind = "HEIF" if heif.is_heif(data) else _format_of(data)
        if kind in READABLE_FORMATS:  # a format we read, too damaged for Pillow to tell its size
            raise ImageError(f"{name}: the {kind} image is damaged and cannot be decoded.") from None
        if kind is not None:  # EPS, AVIF, PSD, ...: no digit photos, or not safely read
            raise ImageError(f"{name}: {kind} is a format digits does not read (expected {EXPECTED}).") from None
        raise ImageError(f"{name}: not an image (expected {EXPECTED}).") from None
    except Image.DecompressionBombError:  # Pillow's own check, in Image.open: far over ours too
        raise ImageError(
            f"{name}: over the limit of {MAX_PIXELS // 1_000_000} megapixels (possible decompression bomb)."
        ) from None
    except MemoryError:
        raise ImageError(f"{name}: {OUT_OF_MEMORY}") from None
    except Exception as err:  # Pillow's decoders raise many types on damaged data
        detail = " ".join(str(err).split())  # libheif ends its messages with a line break
        if detail.startswith("Memory allocation error: Unspecified: Allocating"):  # libheif's, out of memory
            raise ImageError(f"{name}: {OUT_OF_MEMORY}") from None
        fault = "truncated" if "truncated" in detail.lower() else "damaged"
        raise ImageError(f"{name}: the image is {fault} and cannot be decoded ({detail}).") from None
    decoded = _reduce_heif(image)
    decoded_size = decoded.size
    upright = turned_upright(decoded)
    if upright is not image:
        image.close()
    if decoded is not image and decoded is not upright:  # reduced, then turned: the reduced copy is spent too
        decoded.close()
    return as_read(upright, decoded_size, full_size)


def as_read(upright: Image.Image, decoded_size: tuple[int, int], full_size: tuple[int, int]) -> Image.Image:
    """`upright` (decoded at `decoded_size`, then turned) with its `full_size` kept (`true_size`) if smaller, and
    no text in `info` under a key Pillow or digits reads there: Pillow keeps a PNG's text chunks in it under their
    names, and a "transparency" or an `ORIGINAL_SIZE` of text broke the conversion to grey or the size."""
    for key in ("transparency", ORIGINAL_SIZE):  # a real one is a number, bytes or a colour; the other, set here
        if isinstance(upright.info.get(key), str):
            upright.info.pop(key, None)  # two threads reading one image may both get here
    if decoded_size != full_size:
        turned = upright.size != decoded_size
        upright.info[ORIGINAL_SIZE] = full_size[::-1] if turned else full_size
    return upright


def _reduce_jpeg(image: Image.Image) -> None:
    """Set a JPEG (or MPO: a phone's JPEG with a second frame) to decode at 1/2, 1/4 or 1/8 of its size (DCT
    scaling), never below the analysis resolution (both sides stay at or above it)."""
    if image.format in ("JPEG", "MPO"):
        reduction = max(image.size) / WORK_MAX
        if reduction >= 2:
            wanted = (max(1, int(image.size[0] / reduction)), max(1, int(image.size[1] / reduction)))
            image.draft(image.mode, wanted)


def _reduce_heif(image: Image.Image) -> Image.Image:
    """A HEIF, which libheif decodes at full size only, reduced by the factor (2, 4 or 8) a JPEG of its size is
    decoded at (`_reduce_jpeg`), by averaging blocks of pixels; any other picture as it is."""
    factor = 1
    while image.format == "HEIF" and factor < 8 and max(image.size) / (2 * factor) >= WORK_MAX:
        factor *= 2
    if factor == 1:
        return image
    # Averaging boxes as `Image.reduce` does, which refuses 16-bit grey (a camera's 10- or 12-bit monochrome HEIF).
    reduced = image.resize((-(-image.width // factor), -(-image.height // factor)), Image.Resampling.BOX)
    reduced.format = image.format  # as the child's answer says (`digits.read.isolated`)
    return reduced


def turned_upright(image: Image.Image) -> Image.Image:
    """The picture as its EXIF orientation says it is seen (phone photos are stored turned); itself when upright.

    Only a picture that must turn is copied: a full-size copy of a big upright one would double its memory.
    """
    try:
        if image.getexif().get(ExifTags.Base.Orientation, 1) in range(2, 9):
            return ImageOps.exif_transpose(image)
    except Exception:  # Pillow's EXIF parser raises many types on broken EXIF
        pass  # broken EXIF must not cost us an otherwise good image
    return image
