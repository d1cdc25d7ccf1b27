"""A HEIC is decoded in a child process under the kernel's limits (`digits.read.isolated`): the same image as a
decode in this process, and one sentence whatever becomes of the child."""

from __future__ import annotations

import io
import sys

import pytest
from PIL import Image

from digits.read import heif, isolated, load
from digits.read.grey import ORIGINAL_SIZE
from digits.read.load import ImageError

pytestmark = pytest.mark.skipif(not isolated.AVAILABLE, reason="the child's limits are set on Linux only")


def heic(size: tuple[int, int]) -> bytes:
    heif.register()
    ramp = Image.linear_gradient("L").resize(size).convert("RGB")  # something to see at every size
    buffer = io.BytesIO()
    ramp.save(buffer, format="HEIF", quality=60)
    return buffer.getvalue()


@pytest.mark.parametrize("size", [(320, 240), (2100, 1400)], ids=["as it is", "reduced as a JPEG would be"])
def test_a_heic_decoded_in_a_child_is_the_one_decoded_here(size, monkeypatch):
    data = heic(size)
    here = load.decode_here(data, "a.heic")
    monkeypatch.setattr(load, "decode_here", None)  # not in this process
    there = load.load_image(data)
    assert (there.format, there.mode, there.size) == ("HEIF", here.mode, here.size)
    assert there.tobytes() == here.tobytes()
    assert there.info.get(ORIGINAL_SIZE) == here.info.get(ORIGINAL_SIZE) == (None if size[0] < 2048 else size)


def test_a_child_out_of_memory_gives_one_sentence(monkeypatch):
    """The child may map 2 MiB more than its imports did: too little for a 320×240 decode (8 bytes a pixel)."""
    monkeypatch.setattr(isolated, "_SLACK", 2 * 2**20 - load.MAX_DECODE_BYTES)
    with pytest.raises(ImageError, match=r"^a\.heic: .*(memory|damaged)"):
        isolated.decode(heic((320, 240)), "a.heic")


@pytest.mark.parametrize(
    "ending, said",
    [
        ("os.kill(os.getpid(), signal.SIGXCPU)", r"took over 20 s of CPU; it is refused"),
        ("os.kill(os.getpid(), signal.SIGSEGV)", r"decoding this HEIF image failed \(SIGSEGV\)"),
        ("sys.exit('ModuleNotFoundError: no module named pillow_heif')", r"failed \(ModuleNotFoundError: no module"),
        ('print(\'{"error": "a.heic: the image is truncated."}\')', r"^a\.heic: the image is truncated\.$"),
    ],
)
def test_whatever_becomes_of_the_child_is_one_sentence(monkeypatch, ending, said):
    child = [sys.executable, "-c", f"import os, signal, sys; sys.stdin.buffer.read(); {ending}"]
    monkeypatch.setattr(isolated, "_command", lambda name: child)
    with pytest.raises(ImageError, match=said):
        isolated.decode(b"bytes", "a.heic")


def test_a_child_that_never_answers_is_stopped(monkeypatch):
    monkeypatch.setattr(isolated, "_command", lambda name: [sys.executable, "-c", "import time; time.sleep(600)"])
    monkeypatch.setattr(isolated, "_WALL_SECONDS", 1)
    with pytest.raises(ImageError, match=r"^a\.heic: decoding this HEIF image took over 1 s; it is refused\.$"):
        isolated.decode(b"bytes", "a.heic")
