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

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digits.errors import ImageError

# Our own limit on decoded pixels. Pillow's guard (Image.MAX_IMAGE_PIXELS,
# about 89 megapixels, a hard error at twice that) protects against real
# bombs; 40 megapixels is larger than any phone photo yet keeps the float
# copies we make below a few hundred megabytes.
MAX_PIXELS = 40_000_000
# Refuse to even read files larger than this: no sane digit photo is bigger.
MAX_FILE_BYTES = 256 * 1024 * 1024
# Pillow's names of the formats a picture may come in (MPO: a phone's JPEG; DIB: a BMP's body).
READABLE_FORMATS = {"PNG", "JPEG", "MPO", "BMP", "DIB", "GIF", "WEBP", "TIFF", "PPM", "TGA", "ICO"}
EXPECTED = "PNG, JPEG, BMP, GIF, WebP or TIFF"

# Analysis resolution. Huge photos are reduced first (speed, memory); tiny
# images are enlarged so that thresholding and morphology work on smooth
# edges and the final downscale produces MNIST-like anti-aliasing.
_WORK_MAX = 1024
_WORK_MIN = 256


def load_image(source: str | os.PathLike | bytes) -> Image.Image:
    """Open an image file (or its bytes) safely and return its first frame.

    The file is read once, checked with Pillow's `verify()`, decoded, limited
    to `MAX_PIXELS`, and turned upright according to its EXIF orientation.
    Animated GIF/WebP/TIFF give their first frame. Every failure becomes an
    `ImageError` whose message is one sentence naming the file and the fault.
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
    try:
        return path.read_bytes()
    except PermissionError:
        raise ImageError(f"{name}: you may not read this file (permission denied).") from None
    except OSError as err:
        raise ImageError(f"{name}: cannot be read ({err.strerror or err}).") from None


def _check_pixels(size: tuple[int, int], name: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{name}: the image has no pixels ({width}×{height}).")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{name}: {width}×{height} pixels is over the limit of {MAX_PIXELS // 1_000_000} megapixels "
            "(possible decompression bomb)."
        )


def _decode(data: bytes, name: str) -> Image.Image:
    try:
        # Pillow warns between MAX_IMAGE_PIXELS and twice that, and raises
        # above. Turning the warning into an error means a bomb is refused
        # from its header, before a single pixel is decoded.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                if probe.format not in READABLE_FORMATS:
                    # EPS, PDF and the like need outside programs (Ghostscript) and are no digit photos.
                    raise ImageError(f"{name}: {probe.format} is a format digits does not read "
                                     f"(expected {EXPECTED}).")
                _check_pixels(probe.size, name)
                probe.verify()  # checksums and structure, without decoding
            # verify() leaves the image unusable: open again to decode.
            image = Image.open(io.BytesIO(data))
            _check_pixels(image.size, name)
            image.seek(0)  # first frame of an animation or multi-page TIFF
            image.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (expected {EXPECTED}).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        limit = Image.MAX_IMAGE_PIXELS or 0
        raise ImageError(
            f"{name}: refused as a possible decompression bomb "
            f"(over Pillow's limit of {limit // 1_000_000} megapixels)."
        ) from None
    except MemoryError:
        raise ImageError(f"{name}: not enough memory to decode this image.") from None
    except Exception as err:  # Pillow's decoders raise many types on damaged data
        fault = "truncated" if "truncated" in str(err).lower() else "damaged"
        raise ImageError(f"{name}: the image is {fault} and cannot be decoded ({err}).") from None
    try:
        # A copy detaches the frame from the file; EXIF turns phone photos upright.
        upright = ImageOps.exif_transpose(image)
    except Exception:
        # Broken EXIF must not cost us an otherwise good image.
        upright = image.copy()
    image.close()
    return upright


# --------------------------------------------------------------------------
# Step 1: grey
# --------------------------------------------------------------------------


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
        high = float(values.max()) if values.size else 0.0
        low = float(values.min()) if values.size else 0.0
        if wide or 255 < high <= 65535 and low >= 0:
            full = 65535.0
        elif 0 <= low and high <= 1 and image.mode == "F":
            full = 1.0
        elif 0 <= low and high <= 255:
            full = 255.0
        else:  # arbitrary range: stretch it
            values = values - low
            full = max(high - low, 1e-12)
        return np.clip(values / full, 0, 1).astype(np.float32)
    return np.asarray(convert_mode(image, "L"), dtype=np.float32) / 255


def working_grey(image: Image.Image) -> tuple[np.ndarray, tuple[float, float]]:
    """Grey image at analysis resolution, and working pixels per original pixel."""
    width, height = image.size
    longest = max(width, height)
    if longest > _WORK_MAX:
        # Reduce before going to float where we can: cheaper, and the box
        # filter averages areas, so thin strokes fade rather than vanish.
        scale = _WORK_MAX / longest
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
        if has_alpha(image):
            grey = grey_array(convert_mode(image, "RGBA").resize(target, Image.BOX))
        elif image.mode.startswith("I") or image.mode == "F":
            grey = grey_array(image)  # 16/32-bit: scale values first, then reduce
            grey = np.asarray(Image.fromarray(grey, "F").resize(target, Image.BOX), dtype=np.float32)
        else:
            grey = np.asarray(convert_mode(image, "L").resize(target, Image.BOX), dtype=np.float32) / 255
        return np.clip(grey, 0, 1).astype(np.float32), (target[0] / width, target[1] / height)
    grey = grey_array(image)
    if longest < _WORK_MIN:
        factor = _WORK_MIN / longest
        target = (max(1, round(width * factor)), max(1, round(height * factor)))
        grey = np.asarray(Image.fromarray(grey, "F").resize(target, Image.BICUBIC), dtype=np.float32)
        grey = np.clip(grey, 0, 1)
        return grey, (target[0] / width, target[1] / height)
    return grey, (1.0, 1.0)

