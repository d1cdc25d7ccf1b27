"""A picture as grey: any Pillow mode to float32 grey in [0, 1] (0 = black), at the resolution the analysis needs.

`grey_array` turns any mode into grey at the picture's own size: alpha over white, 16-bit scaled, palettes
expanded. `working_grey` does the same at the analysis resolution, reducing big photos first, and says how many
working pixels make one of the picture's own, so that boxes land on the picture the user has (`true_size`, the
size `digits.read.load` keeps under `ORIGINAL_SIZE` for a picture it decoded smaller).

Only NumPy and Pillow are imported here.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from digits.errors import ImageError

# Analysis resolution. Huge photos are reduced first (speed, memory); tiny images are enlarged so that thresholding
# and morphology work on smooth edges and the final downscale produces MNIST-like anti-aliasing.
WORK_MAX = 1024
WORK_MIN = 256
# The key in `Image.info` under which a picture decoded at a reduced size
# keeps its true (upright) size, so that boxes are given in its own pixels.
ORIGINAL_SIZE = "digits.original_size"


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
    image: Image.Image, longest_side: int = WORK_MAX, shortest_side: int = WORK_MIN
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
