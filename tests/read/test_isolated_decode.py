"""A HEIC is decoded in a child process under the kernel's limits (`digits.read.isolated`): the same image as a
decode in this process, and one sentence whatever becomes of the child."""

from __future__ import annotations

import io
import sys

import numpy as np
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


def test_a_decode_over_the_childs_memory_cap_is_one_sentence(monkeypatch):
    """The child may map 1 MiB more than its imports and its threads' stacks (whatever `ulimit -s`): far too little for a 2100×1400 decode
    (8 bytes a pixel), which libheif reports as an unexpected C++ exception; the sentence says what happened."""
    monkeypatch.setattr(
        isolated, "_SLACK", 2**20 - load.MAX_DECODE_BYTES - isolated._THREAD_STACKS * isolated._THREAD_STACK
    )
    with pytest.raises(ImageError) as refused:
        isolated.decode(heic((2100, 1400)), "a.heic")
    assert str(refused.value) == (
        "a.heic: decoding this HEIF image took more memory than its header declares; it is refused."
    )


@pytest.mark.parametrize(
    "ending, said",
    [
        ("os.kill(os.getpid(), signal.SIGXCPU)", rf"took over {isolated.CPU_SECONDS} s of CPU; it is refused"),
        ("os.kill(os.getpid(), signal.SIGSEGV)", r"decoding this HEIF image failed \(SIGSEGV\)"),
        ("sys.exit('ModuleNotFoundError: no module named pillow_heif')", r"failed \(ModuleNotFoundError: no module"),
        ("os.kill(os.getpid(), 40)", r"decoding this HEIF image failed \(signal 40\)"),
        ('print(\'{"error": "a.heic: the image is truncated."}\')', r"^a\.heic: the image is truncated\.$"),
        ("print('ERR: a library speaking'); print('{}')", r"^a\.heic: the process .* answered as it never does"),
        ("print('{\"mode\": \"L\", \"size\": [2, 2]}'); print('ERR', end='')", r"\(3 bytes of pixels for 4\)"),
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


def test_what_a_library_prints_in_the_child_leaves_its_answer_whole(monkeypatch):
    """libde265 writes its errors to stdout (with `write`, as C does), where the child sends its answer: the
    child points it at stderr, and the pixels must be exactly as many bytes as the image's."""
    command = isolated._command("a.heic")
    speaking = "import os, digits.read.load as L; L.print_first = L.decode_here; "
    speaking += "L.decode_here = lambda d, n: (os.write(1, b'ERR: coding'), L.print_first(d, n))[1]; "
    command[command.index("-c") + 1] = command[command.index("-c") + 1].replace(
        "from digits", speaking + "\nfrom digits"
    )
    monkeypatch.setattr(isolated, "_command", lambda name: command)
    data = heic((320, 240))
    assert isolated.decode(data, "a.heic").tobytes() == load.decode_here(data, "a.heic").tobytes()


def heic_of(chroma: int, bits: int) -> bytes:
    import pillow_heif

    heif.register()
    ramp = np.linspace(0, 2**bits - 1, 64 * 48 * 3).reshape(48, 64, 3).astype("<u2" if bits > 8 else "u1")
    image = pillow_heif.from_bytes(mode="RGB;16" if bits > 8 else "RGB", size=(64, 48), data=ramp.tobytes())
    buffer = io.BytesIO()
    image.save(buffer, quality=60, chroma=chroma)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "chroma, bits, price",
    [(420, 8, 4.0), (422, 8, 4.5), (444, 8, 5.5), (420, 10, 4.0), (422, 10, 9.5), (444, 10, 11.5)],
)
def test_a_heic_is_priced_by_its_chroma_and_bit_depth(chroma, bits, price):
    """libheif holds more for 4:2:2 and 4:4:4, in 10 bits through 16-bit RGB: a camera's 20-megapixel 10-bit 4:2:2
    took 254 MiB, priced at 4 bytes a pixel as a phone's 4:2:0 it was read in 187, and killed the child."""
    assert heif.declared(heic_of(chroma, bits), "a.heic").decoder_bytes_per_pixel == price


def test_a_big_16_bit_grey_heic_is_reduced_in_its_own_mode():
    """A camera's 10- or 12-bit monochrome HEIF comes as 16-bit grey, which `Image.reduce` refuses."""
    import pillow_heif

    heif.register()
    ramp = np.linspace(0, 65535, 2100 * 1400).reshape(1400, 2100).astype("<u2")
    buffer = io.BytesIO()
    pillow_heif.from_bytes(mode="L;16", size=(2100, 1400), data=ramp.tobytes()).save(buffer, quality=60)
    here, there = load.decode_here(buffer.getvalue(), "a.heic"), load.load_image(buffer.getvalue())
    assert there.mode == here.mode == "I;16" and there.size == here.size == (1050, 700)
    assert there.tobytes() == here.tobytes() and there.info[ORIGINAL_SIZE] == (2100, 1400)


def test_the_cap_holds_whatever_stack_size_the_child_inherits():
    """glibc gives each thread a stack of `ulimit -s`, counted in the capped address space: at 4 GiB no thread
    could start, and every HEIC was refused. The child lowers it to 8 MiB before it starts any."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if hard != resource.RLIM_INFINITY and hard < 4 * 2**30:
        pytest.skip("this machine's hard stack limit is under 4 GiB")
    resource.setrlimit(resource.RLIMIT_STACK, (4 * 2**30, hard))
    try:
        data = heic((320, 240))
        assert isolated.decode(data, "a.heic").tobytes() == load.decode_here(data, "a.heic").tobytes()
    finally:
        resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))


def test_a_heic_the_caller_opened_is_read_from_its_file_in_the_child(tmp_path, monkeypatch):
    """Pillow would decode the caller's image in this process, without the wall: its file is read instead."""
    import pillow_heif

    from digits import Reader

    (tmp_path / "a.heic").write_bytes(heic((320, 240)))
    reader = Reader()
    with_path = reader.read_digit(tmp_path / "a.heic")

    def not_here(self):
        raise AssertionError("decoded in this process")

    monkeypatch.setattr(pillow_heif.as_plugin.HeifImageFile, "load", not_here)
    with Image.open(tmp_path / "a.heic") as opened:
        assert reader.read_digit(opened) == with_path


def test_a_heic_the_caller_opened_is_read_through_its_own_open_file(tmp_path):
    """The name it was opened by may point at another file by now: the caller's picture is read, not that one."""
    first, second = heic((320, 240)), heic((200, 100))
    (tmp_path / "a.heic").write_bytes(first)
    (tmp_path / "b.heic").write_bytes(second)
    with Image.open(tmp_path / "a.heic") as opened:
        (tmp_path / "b.heic").replace(tmp_path / "a.heic")
        opened.filename = str(tmp_path / "elsewhere.heic")
        assert load.decoded_opened_heif(opened, "a.heic").tobytes() == load.load_image(first).tobytes()


def test_a_heic_moved_back_to_its_first_image_is_still_undecoded(tmp_path):
    """pillow-heif's `seek` gives the image a blank buffer: it is still priced, and read in the child."""
    (tmp_path / "a.heic").write_bytes(heic((320, 240)))
    with Image.open(tmp_path / "a.heic") as opened:
        opened.seek(0)
        assert load.decoded_opened_heif(opened, "a.heic") is not None
        opened.load()
        assert load.decoded_opened_heif(opened, "a.heic") is None  # decoded by the caller: its pixels are spent
