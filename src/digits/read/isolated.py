"""Decoding a HEIF picture in a child process, under memory and CPU limits set by the kernel.

Why a child: libheif parses a container of many boxes, and decodes grids,
overlays and alpha planes at sizes their own data give. Seven rounds of
crafted files found ways to make it take gigabytes or minutes that the
header did not declare; `digits.read.heif` now refuses every one of them,
but each round found a new one. Those checks stay, and give the sentence;
this is the wall behind them. `decode(data, name)` runs `digits.read.load`'s
own decode in a fresh Python (`isolated.main`) whose address
space is capped at what it had mapped after its imports plus
`MAX_DECODE_BYTES` and `_SLACK`, and whose CPU time at `CPU_SECONDS`; a file
that escapes the checks kills that child, not the process that asked, and
gets one sentence (`ImageError`).

Contract: the image returned is what `load_image` returns for the same bytes
decoded in-process (mode, size, pixels, `ORIGINAL_SIZE`), with format "HEIF".
The child sends a big photo reduced as a big JPEG is decoded (`load`), so the
pipe carries a few MB, not a 24-megapixel frame. Starting the child costs
about a third of a second; a HEIC photo's decode takes about a second itself.

Where the kernel's limits are not there to set (any system but Linux), the
decode runs in the asking process, as it did before this module.

Only the standard library and Pillow are imported here; the child imports `digits.read.load`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from digits.errors import ImageError

AVAILABLE = sys.platform.startswith("linux")
# A 24-megapixel HEIC, priced at 187 MiB, decoded (and reduced) within 192 MiB over what the child had mapped, and
# failed within 186 (measured by lowering the cap): the budget's price is what it takes, and this is room to spare.
_SLACK = 64 * 2**20
# A 24-megapixel HEIC decodes in about a second on one core of a slow CPU here.
CPU_SECONDS = 20
# Beside the CPU cap, for a child stalled on something else: one reading its pipe, say.
_WALL_SECONDS = 120
ORIGINAL_SIZE_KEY = "original_size"


def decode(data: bytes, name: str) -> Image.Image:
    """`data`, a HEIF file, decoded in a child process under limits: the image, or an `ImageError` naming `name`."""
    try:
        child = subprocess.run(_command(name), input=data, capture_output=True, timeout=_WALL_SECONDS)
    except subprocess.TimeoutExpired:
        raise ImageError(f"{name}: decoding this HEIF image took over {_WALL_SECONDS} s; it is refused.") from None
    except OSError as err:
        raise ImageError(f"{name}: no process could be started to decode this HEIF image ({err.strerror}).") from None
    header, _, pixels = child.stdout.partition(b"\n")
    if child.returncode != 0 or not header:
        raise ImageError(f"{name}: {_failure(child.returncode, child.stderr)}")
    told = json.loads(header)
    if "error" in told:
        raise ImageError(told["error"])
    image = Image.frombytes(told["mode"], tuple(told["size"]), pixels)
    image.format = "HEIF"
    if told.get(ORIGINAL_SIZE_KEY):
        from digits.read.grey import ORIGINAL_SIZE

        image.info[ORIGINAL_SIZE] = tuple(told[ORIGINAL_SIZE_KEY])
    return image


def _command(name: str) -> list[str]:
    """This Python, without the working folder on its path (`-P`: a `PIL.py` in it would be imported), and this
    copy of `digits` appended to its path where that lacks it (a package put on `sys.path` at run time)."""
    from digits.read.load import MAX_DECODE_BYTES

    root = str(Path(__file__).resolve().parents[2])
    start = "import sys; r = sys.argv[1]; r in sys.path or sys.path.append(r); from digits.read.isolated import main"
    return [
        sys.executable,
        "-P",
        "-c",
        f"{start}; main()",
        root,
        str(MAX_DECODE_BYTES + _SLACK),
        str(CPU_SECONDS),
        name,
    ]


def _failure(returncode: int, stderr: bytes) -> str:
    """Why the child gave no image, in words: a limit it reached, or the last line it wrote."""
    import signal

    if returncode == -signal.SIGXCPU:
        return f"decoding this HEIF image took over {CPU_SECONDS} s of CPU; it is refused (damaged or crafted)."
    if returncode < 0:  # a crash in libheif, memory refused where it could not say so, the CPU cap's SIGKILL
        return f"decoding this HEIF image failed ({signal.Signals(-returncode).name}); it is damaged or crafted."
    last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
    return f"the process decoding this HEIF image failed ({last[0][:200]})."


def _limit(memory_bytes: int, cpu_seconds: int) -> None:
    """Cap this process's address space at what it maps now plus `memory_bytes`, and its CPU time."""
    import resource

    mapped = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (mapped + memory_bytes, mapped + memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def main() -> None:
    """The child (arguments: the folder holding `digits`, the memory cap, the CPU cap, the file's name): the
    file's bytes on stdin; one line of JSON on stdout (the image's mode, size and true size, or the error's
    sentence), then the pixels."""
    memory_bytes, cpu_seconds, name = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    from digits.read import heif, load

    heif.register()  # libheif mapped before the cap is measured
    data = sys.stdin.buffer.read()
    _limit(memory_bytes, cpu_seconds)
    out = sys.stdout.buffer
    try:
        image = load.decode_here(data, name)
    except ImageError as err:
        out.write(json.dumps({"error": str(err)}).encode() + b"\n")
        return
    from digits.read.grey import ORIGINAL_SIZE

    told = {"mode": image.mode, "size": image.size, ORIGINAL_SIZE_KEY: image.info.get(ORIGINAL_SIZE)}
    out.write(json.dumps(told).encode() + b"\n")
    out.write(image.tobytes())
