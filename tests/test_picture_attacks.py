"""digits.picture against hostile files: each test builds what an attacker sent, and asserts the bounded outcome.

No test here times anything: a picture is refused from its header (Pillow is
never asked to open it, or never to decode it), or the work done is linear in
the bytes, which a run of the old quadratic code would show as an hour-long test.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from digits import picture
from digits.picture import ImageError, jpeg_scans, load_image


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
    # Fill bytes (0xFF) may pad before any marker: a megabyte of them stays one step of the walk.
    padded = jpeg[:2] + b"\xff" * 2**20 + jpeg[2:]
    assert jpeg_scans(padded) == jpeg_scans(jpeg) == 1
    assert load_image(padded).size == (32, 32)
