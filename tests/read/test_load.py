"""digits.read.load: the work one picture may cost is bounded before it is decoded.

A phone's 50-megapixel JPEG is read (at a reduced size, in bounded memory),
with boxes in its own pixels; a JPEG of a thousand scans, or a decode over
the memory budget, is refused from its header in one sentence.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw

from digits.read.grey import ORIGINAL_SIZE, working_grey
from digits.read.load import MAX_JPEG_SCANS, ImageError, load_image
from digits.read.prescan import jpeg_scans
from helpers import progressive_jpeg, with_repeated_last_scan


def test_scans_are_counted_without_decoding():
    jpeg = progressive_jpeg()
    scans = jpeg_scans(jpeg)
    assert 2 <= scans <= 12  # libjpeg's default progressive script
    assert jpeg_scans(with_repeated_last_scan(jpeg, 5)) == scans + 5
    baseline = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(baseline, format="JPEG")
    assert jpeg_scans(baseline.getvalue()) == 1


def test_a_jpeg_of_a_thousand_scans_is_refused_before_decoding():
    crafted = with_repeated_last_scan(progressive_jpeg(), 1000)
    with pytest.raises(ImageError) as excinfo:
        load_image(crafted)
    message = str(excinfo.value)
    assert "scans" in message and "\n" not in message
    assert jpeg_scans(crafted) > MAX_JPEG_SCANS


def test_a_big_jpeg_is_decoded_smaller_and_keeps_its_true_size():
    image = Image.new("RGB", (4096, 3072), "white")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    loaded = load_image(buffer.getvalue())
    assert loaded.size == (1024, 768)  # DCT scaling by 4, down to the analysis resolution and no further
    assert loaded.info[ORIGINAL_SIZE] == (4096, 3072)
    grey, scale = working_grey(loaded)
    assert grey.shape == (768, 1024) and scale == (0.25, 0.25)


def test_a_big_mpo_is_decoded_smaller_like_a_jpeg():
    """A phone's MPO (a JPEG with a second frame) takes the JPEG's reduced decode, not the full one."""
    frame = Image.new("RGB", (4096, 3072), "white")
    buffer = io.BytesIO()
    frame.save(buffer, format="MPO", save_all=True, append_images=[frame.resize((64, 48))])
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    loaded = load_image(buffer.getvalue())
    assert loaded.size == (1024, 768) and loaded.info[ORIGINAL_SIZE] == (4096, 3072)


def test_16bit_picture_is_reduced_in_its_own_mode():
    wide = Image.new("I;16", (3000, 2000), 60000)
    ImageDraw.Draw(wide).rectangle((1000, 500, 1100, 1500), fill=1000)
    grey, scale = working_grey(wide)
    assert grey.shape == (683, 1024) and grey.dtype.name == "float32"
    assert grey.max() > 0.9 and grey.min() < 0.05  # values scaled by the 16-bit range, not clipped at 255


# In a subprocess, so that its peak memory is its own: write a big picture,
# then read it (and find its digit) while measuring the peak RSS growth.
BIG_PICTURE = """
import json, resource, sys
from PIL import Image, ImageDraw
path, step = sys.argv[1], sys.argv[2]
if step == "phone":  # a 50 MP phone photo: 8160x6120 JPEG
    photo = Image.new("L", (8160, 6120), 235)
    ImageDraw.Draw(photo).line([(4080, 1500), (4000, 4600)], fill=30, width=260)
    photo.convert("RGB").save(path, quality=90)
    sys.exit()
if step == "deep":  # a 16-bit scan: 5000x5000 PNG
    scan = Image.new("I;16", (5000, 5000), 60000)
    ImageDraw.Draw(scan).line([(2500, 1000), (2450, 4000)], fill=2000, width=200)
    scan.save(path)
    sys.exit()
from digits.read.pipeline import load_image, prepare, segment_page
warm = Image.new("L", (300, 200), "white"); ImageDraw.Draw(warm).line([(150, 40), (150, 160)], fill=0, width=12)
segment_page(warm), prepare(warm)  # imports and first-call allocations before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
picture = load_image(path)
pieces = [piece for line in segment_page(picture).lines for piece in line]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kib": after - before, "boxes": [list(piece.box) for piece in pieces]}))
"""


def read_big_picture(path: str, kind: str) -> dict:
    subprocess.run([sys.executable, "-c", BIG_PICTURE, path, kind], check=True)
    result = subprocess.run(
        [sys.executable, "-c", BIG_PICTURE, path, "read"], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def test_a_50_megapixel_phone_photo_is_read_in_bounded_memory(tmp_path):
    measured = read_big_picture(str(tmp_path / "phone.jpg"), "phone")
    # Decoded whole, the photo alone is 200 MB (RGBX); at 1/4 it is 12 MB.
    assert measured["growth_kib"] < 100 * 1024, measured
    [box] = measured["boxes"]
    x0, y0, x1, y1 = box  # in the photo's own pixels, within a working pixel of the stroke's ends:
    # its one bold stroke is read in 256 px (`ink._bold_look`), where a pixel is 32 of the photo's.
    assert 3700 < x0 < 3950 and 4130 < x1 < 4350 and 1250 < y0 < 1532 and 4568 < y1 < 4850, box


def test_a_16bit_scan_is_read_without_a_full_size_wide_copy(tmp_path):
    measured = read_big_picture(str(tmp_path / "deep.png"), "deep")
    # Decoded, the scan is 50 MB of 16-bit values, and the analysis at 1024×1024 takes about 60 MB more;
    # one full-size 32-bit copy would add 100 MB, and float work on it 200 MB more.
    assert measured["growth_kib"] < 160 * 1024, measured
    [box] = measured["boxes"]
    assert 2250 < box[0] < 2450 and 2500 < box[2] < 2700, box
