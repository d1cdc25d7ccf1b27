"""Loading a picture: any file a user may bring, opened safely, as a grey array.

`load_image` reads a file (or bytes) once, refuses what is not an image or
would not fit in memory with one sentence naming the file (`ImageError`),
and returns the first frame turned upright by its EXIF orientation.
`grey_array` turns any Pillow mode into float32 grey in [0, 1] (0 = black):
alpha over white, 16-bit scaled, palettes expanded. `working_grey` does the
same at the resolution the analysis needs, reducing big photos first.

Only NumPy and Pillow are imported here.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from digits.errors import ImageError
from digits.read import heif
from digits.read.prescan import (
    ICO_MAGIC,
    icon_frame_sizes,
    jpeg_scans,
    refuse_long_walks,
    refuse_slow_decoding,
    tiff_block_bytes,
)
from digits.safe_open import read_regular

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
# Pillow's names of the formats a picture may come in (MPO: a phone's JPEG; DIB: a BMP's body; HEIF: an iPhone's).
READABLE_FORMATS = {"PNG", "JPEG", "MPO", "HEIF", "AVIF", "BMP", "DIB", "GIF", "WEBP", "TIFF", "PPM", "TGA", "ICO"}
EXPECTED = "PNG, JPEG, HEIC, AVIF, BMP, GIF, WebP, TIFF, PPM, TGA or ICO"
# What a format's decoder holds beside the picture, in bytes a pixel, from the peak of a decode: libwebp's animation
# decoder (every WebP) its canvases (16.3-16.7 in all); libheif (7.3-8.0) and libavif (9.3) planes and an RGB copy.
_DECODER_BYTES_PER_PIXEL = {"WEBP": 13, "HEIF": 4, "AVIF": 6}
# What one icon costs Pillow: the icon, its 1-bit mask, and the RGBA merge of both.
_ICON_BYTES_PER_PIXEL = 9


@functools.cache
def picture_suffixes() -> frozenset[str]:
    """The file-name suffixes (lower case, with the dot) Pillow gives the formats above: what a folder's
    pictures are told by (`.jpg`, `.jfif`, `.apng`, `.heic`, `.tif`, `.pgm`, ...)."""
    heif.register()
    return frozenset(suffix for suffix, name in Image.registered_extensions().items() if name in READABLE_FORMATS)


# Analysis resolution. Huge photos are reduced first (speed, memory); tiny images are enlarged so that thresholding
# and morphology work on smooth edges and the final downscale produces MNIST-like anti-aliasing.
_WORK_MAX = 1024
WORK_MIN = 256
# The key in `Image.info` under which a picture decoded at a reduced size
# keeps its true (upright) size, so that boxes are given in its own pixels.
ORIGINAL_SIZE = "digits.original_size"


# ---------------------------------------------------------------- Loading


def load_image(source: str | os.PathLike[str] | bytes) -> Image.Image:
    """Open an image file (or its bytes) safely and return its first frame.

    The file is read once and checked with Pillow's `verify()`. Before any pixel is decoded, the header is held
    to `MAX_PIXELS` and the decode's memory to `MAX_DECODE_BYTES` (a TIFF's tile, the RGBA copy that transparency
    needs and the decoder's own buffers included), and a JPEG's scans are counted. A JPEG's segments and an ICO's
    icons are checked before Pillow opens the file: it walks the former and decodes the latter inside
    `Image.open`. A big JPEG is decoded at a reduced size by DCT scaling, never below the analysis resolution;
    its true size is then kept in `image.info[ORIGINAL_SIZE]`. HEIC and AVIF photos are decoded at full size.
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


def _decode_budget(image: Image.Image, full_size: tuple[int, int], scans: int, name: str) -> None:
    """Refuse, from the header, a decode that would take more than `MAX_DECODE_BYTES` or too many JPEG scans."""
    width, height = image.size
    # Pillow keeps one byte per pixel for 1-bit, grey and palette images, two
    # for 16-bit grey, four for everything else (RGB is padded to RGBX).
    per_pixel = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    if has_alpha(image):
        # Transparency is composited from an RGBA copy of the whole picture,
        # which Pillow resizes through a premultiplied copy (working_grey): a
        # 1-byte palette picture then peaks at 9 bytes per pixel.
        per_pixel += 8
    per_pixel += _DECODER_BYTES_PER_PIXEL.get(image.format or "", 0)
    # libtiff decodes a tile or a compressed strip whole into a buffer of its own, however small the image.
    needed = width * height * per_pixel + tiff_block_bytes(image)
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
            f"{needed / 2**20:.0f} MiB, over the limit of {MAX_DECODE_BYTES // 2**20} MiB "
            "(save it smaller, or as an ordinary JPEG)."
        )


def within_budget(image: Image.Image, name: str) -> tuple[int, int]:
    """The size of a Pillow image the caller passed, checked before it is decoded. One opened but not decoded
    (`Image.open` reads the header only) is held to a file's limits (but for JPEG scans, which only its bytes
    tell); a JPEG over the budget at full size is set to decode reduced, as `load_image` decodes one (`draft`,
    on the caller's image). A decoded image has spent its memory: only its size is checked; but a HEIF image,
    which lists no tiles decoded or not, is always held to the budget."""
    full_size = image.size
    if not getattr(image, "tile", None) and image.format != "HEIF":  # decoded, or made in memory (Image.new)
        check_pixels(full_size, name, most=None)
        return full_size
    check_pixels(full_size, name)
    try:
        _decode_budget(image, full_size, 0, name)
    except ImageError:
        if image.format not in ("JPEG", "MPO"):
            raise
        _reduce_jpeg(image)
        _decode_budget(image, full_size, 0, name)
    return full_size


def _decode(data: bytes, name: str) -> Image.Image:
    # Before Pillow reads a byte: it walks a JPEG's first segments and decodes an ICO inside `Image.open`.
    scans = jpeg_scans(data, name) if data[:3] == b"\xff\xd8\xff" else 0
    for size in icon_frame_sizes(data) if data[:4] == ICO_MAGIC else []:  # each icon held to the budget
        check_pixels(size, name)
        _refuse_over_budget(size[0] * size[1] * _ICON_BYTES_PER_PIXEL, size, "ICO", name)
    refuse_long_walks(data, name)
    if heif.is_heif(data):
        heif.register()
    if data[:5] == b"%PDF-":  # Pillow writes PDFs but cannot read them: say so, rather than "not an image"
        raise ImageError(f"{name}: a PDF is a document, not a picture; export its page as PNG or JPEG.")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in READABLE_FORMATS:
                # EPS, PDF and the like need outside programs (Ghostscript) and are no digit photos.
                raise ImageError(f"{name}: {probe.format} is a format digits does not read (expected {EXPECTED}).")
            check_pixels(probe.size, name)
            refuse_slow_decoding(probe, data, name)
            probe.verify()  # checksums and structure, without decoding
        # verify() leaves the image unusable: open again to decode.
        image = Image.open(io.BytesIO(data))
        image.seek(0)  # first frame of an animation or multi-page TIFF
        full_size = image.size
        check_pixels(full_size, name)
        _reduce_jpeg(image)
        _decode_budget(image, full_size, scans, name)
        image.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (expected {EXPECTED}).") from None
    except Image.DecompressionBombError:  # Pillow's own check, in Image.open: far over ours too
        raise ImageError(
            f"{name}: over the limit of {MAX_PIXELS // 1_000_000} megapixels (possible decompression bomb)."
        ) from None
    except MemoryError:
        raise ImageError(f"{name}: not enough memory to decode this image.") from None
    except Exception as err:  # Pillow's decoders raise many types on damaged data
        detail = " ".join(str(err).split())  # libheif ends its messages with a line break
        fault = "truncated" if "truncated" in detail.lower() else "damaged"
        raise ImageError(f"{name}: the image is {fault} and cannot be decoded ({detail}).") from None
    decoded_size = image.size
    upright = turned_upright(image)
    if upright is not image:
        image.close()
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
        reduction = max(image.size) / _WORK_MAX
        if reduction >= 2:
            wanted = (max(1, int(image.size[0] / reduction)), max(1, int(image.size[1] / reduction)))
            image.draft(image.mode, wanted)


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


# ----------------------------------------------------------- Step 1: grey


def convert_mode(image: Image.Image, mode: str) -> Image.Image:
    """`image.convert(mode)`, through an intermediate mode where Pillow has no direct path."""
    for path in ([mode], ["RGBA", mode], ["RGB", mode], ["LA", mode]):
        try:
            converted = image
            for step in path:
                converted = converted.convert(step)
            return converted
        except ValueError:
            continue
    raise ImageError(f"the image mode {image.mode!r} cannot be converted to grey.")


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def grey_array(image: Image.Image) -> np.ndarray:
    """Any mode to a float32 grey array in [0, 1] (0 = black), native size.

    Transparency is composited over white: a transparent canvas is paper. If
    the colour channels carry nothing (white ink on a transparent canvas,
    or a shape drawn only in the alpha channel), the alpha itself is the ink.
    """
    if has_alpha(image):
        rgba = convert_mode(image, "RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255
        grey = np.asarray(rgba.convert("RGB").convert("L"), dtype=np.float32) / 255
        if alpha.min() >= 1:
            return grey
        composite = grey * alpha + (1 - alpha)
        if composite.std() < 0.02 and alpha.std() > 0.05:
            return 1 - alpha
        return composite
    if image.mode.startswith("I") or image.mode == "F":
        # 16-bit and 32-bit grey: Pillow's own conversion to "L" clips at 255,
        # so scale by the range the values can have instead.
        wide = image.mode.startswith("I;16")
        values = np.asarray(image if image.mode == "F" else image.convert("I"), dtype=np.float32)
        # A float TIFF's NaN or infinite pixel has no grey: it takes the commonest, the paper's (integers are finite).
        if image.mode == "F" and not (finite := np.isfinite(values)).all():
            values = np.where(finite, values, float(np.median(values[finite])) if finite.any() else 0.0)
        high = float(values.max()) if values.size else 0.0
        low = float(values.min()) if values.size else 0.0
        if wide or 255 < high <= 65535 and low >= 0:
            full = 65535.0
        elif low >= 0 and high <= 1 and image.mode == "F":
            full = 1.0
        elif low >= 0 and high <= 255:
            full = 255.0
        else:  # arbitrary range: stretch it
            values = values - low
            full = max(high - low, 1e-12)
        scaled: np.ndarray = np.clip(values / full, 0, 1).astype(np.float32)
        return scaled
    # A grey picture as it is: `convert` would copy it first (a third of this function's time on a 28×28 crop).
    return np.asarray(image if image.mode == "L" else convert_mode(image, "L"), dtype=np.float32) / 255


def true_size(image: Image.Image) -> tuple[int, int]:
    """The picture's size as the user has it, even when `load_image` decoded it smaller."""
    size: tuple[int, int] = image.info.get(ORIGINAL_SIZE, image.size)
    return size


def working_grey(
    image: Image.Image, longest_side: int = _WORK_MAX, shortest_side: int = WORK_MIN
) -> tuple[np.ndarray, tuple[float, float]]:
    """Grey image at analysis resolution, and working pixels per original pixel.

    A picture longer than `longest_side` is reduced to it. One shorter than
    `WORK_MIN` is enlarged towards it, and no further than its shorter side
    reaching `shortest_side`. A picture `load_image` decoded at a reduced
    size counts in the pixels of its true size (`ORIGINAL_SIZE`), so boxes
    land on the picture the user has.
    """
    width, height = image.size
    true_width, true_height = true_size(image)
    longest = max(width, height)
    if longest > longest_side:
        # Reduce before going to float, in the picture's own mode: cheaper, no
        # full-size wide copy (16/32-bit included), and the box filter
        # averages areas, so thin strokes fade rather than vanish.
        scale = longest_side / longest
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
        if has_alpha(image):
            grey = grey_array(convert_mode(image, "RGBA").resize(target, Image.Resampling.BOX))
        elif image.mode.startswith("I") or image.mode == "F":
            grey = grey_array(image.resize(target, Image.Resampling.BOX))
        else:
            grey = np.asarray(convert_mode(image, "L").resize(target, Image.Resampling.BOX), dtype=np.float32) / 255
        grey = np.clip(grey, 0, 1).astype(np.float32)
    elif (factor := min(WORK_MIN / longest, shortest_side / min(width, height))) > 1:
        target = (max(1, round(width * factor)), max(1, round(height * factor)))
        grey = np.asarray(
            Image.fromarray(grey_array(image), "F").resize(target, Image.Resampling.BICUBIC), dtype=np.float32
        )
        grey = np.clip(grey, 0, 1)
    else:
        target = (width, height)
        grey = grey_array(image)
    return grey, (target[0] / true_width, target[1] / true_height)
