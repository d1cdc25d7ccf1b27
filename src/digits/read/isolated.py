"""Decoding a HEIF picture in a child process, under memory and CPU limits set by the kernel.

Why a child: libheif parses a container of many boxes, and decodes grids,
overlays and alpha planes at sizes their own data give. Seven rounds of
crafted files found ways to make it take gigabytes or minutes that the
header did not declare; `digits.read.heif` now refuses every one of them,
but each round found a new one. Those checks stay, and give the sentence;
this is the wall behind them. `decode(data, name)` runs `digits.read.load`'s
own checks and decode (`load.decode_here`) in a fresh, isolated Python
(`main`) whose address space is capped at what it had mapped after its
imports plus `MAX_DECODE_BYTES`, `_SLACK` and its threads' stacks, and whose
CPU time at `CPU_SECONDS`; a file that escapes the checks ends that child,
not the process that asked, and gets one sentence (`ImageError`).

Contract: the image returned is what `load.decode_here` returns for the same
bytes (mode, size, pixels, `ORIGINAL_SIZE`, format "HEIF"). The child sends a
big photo reduced as a big JPEG is decoded, so the pipe carries a few MB, not
a 24-megapixel frame. Starting the child costs about a third of a second; a
HEIC photo's decode takes about a second itself. A HEIF image the caller
opened and has not decoded is read from its file's bytes here too
(`load.decoded_opened_heif`). Where the limits cannot be set or
no Python can be started (`AVAILABLE`: Linux, not frozen or embedded), the
decode runs in the asking process.

Only the standard library, Pillow and `digits.read.grey` are imported here; the child imports `digits.read.load`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from PIL import Image

from digits.errors import ImageError
from digits.read.grey import ORIGINAL_SIZE

# Linux, from a Python that can be started again: not an embedded one without `sys.executable`, nor a frozen app.
AVAILABLE = sys.platform.startswith("linux") and bool(sys.executable) and not getattr(sys, "frozen", False)
# A 24-megapixel HEIC, priced at 187 MiB, decoded (and reduced) within 192 MiB over what the child had mapped, and
# failed within 186, its decoding thread's 8 MiB stack included (measured by lowering the cap): the budget's price
# is what it takes, and this is room to spare.
_SLACK = 64 * 2**20
# libheif decodes on a thread of its own, whose stack counts in the address space: the child gives its threads
# stacks of `_THREAD_STACK` (glibc sizes them from `ulimit -s` when the process starts, and a host's may be 1 GiB
# or unlimited), and room for `_THREAD_STACKS` of them is added to the cap.
_THREAD_STACK = 8 * 2**20
_THREAD_STACKS = 2
# A 24-megapixel HEIC decodes in about a second on one core of a slow CPU here.
CPU_SECONDS = 20
# Beside the CPU cap, for a child stalled on something else: one reading its pipe, say.
_WALL_SECONDS = 120
# A failure within this much of the cap is the cap's, whatever the library said (libheif: "unexpected C++ exception").
_NEAR_THE_CAP = 32 * 2**20


def decode(data: bytes, name: str) -> Image.Image:
    """`data`, a HEIF file, decoded in a child process under limits: the image, or an `ImageError` naming `name`."""
    path = [entry for entry in sys.path if entry]  # "": the working folder of an interactive session or `-c`
    root = str(Path(__file__).resolve().parents[2])  # an editable install may find `digits` through an import hook
    told_first = json.dumps(path if root in path else [root, *path]).encode() + b"\n"
    try:
        child = subprocess.run(_command(name), input=told_first + data, capture_output=True, timeout=_WALL_SECONDS)
    except subprocess.TimeoutExpired:
        raise ImageError(f"{name}: decoding this HEIF image took over {_WALL_SECONDS} s; it is refused.") from None
    except OSError as err:
        raise ImageError(f"{name}: no process could be started to decode this HEIF image ({err.strerror}).") from None
    if child.returncode != 0:
        raise ImageError(f"{name}: {_failure(child.returncode, child.stderr)}")
    header, _, pixels = child.stdout.partition(b"\n")
    try:
        told = json.loads(header)
        if not (refused := told.get("error")):
            image = _image(told["mode"], tuple(told["size"]), pixels)
    except (ValueError, TypeError, KeyError, AttributeError) as err:  # not what the child writes
        raise ImageError(f"{name}: the process decoding this HEIF image answered as it never does ({err}).") from None
    if refused:
        raise ImageError(str(refused))
    image.format = "HEIF"
    if told.get(ORIGINAL_SIZE):
        image.info[ORIGINAL_SIZE] = tuple(told[ORIGINAL_SIZE])
    return image


def _image(mode: str, size: tuple[int, int], pixels: bytes) -> Image.Image:
    """The image of these pixels, which must be exactly as many bytes as its mode and size take."""
    expected = len(Image.new(mode, (size[0], 1)).tobytes()) * size[1]
    if len(pixels) != expected:
        raise ValueError(f"{len(pixels)} bytes of pixels for {expected}")
    return Image.frombytes(mode, size, pixels)


# The child's first lines, before it reads its stdin: glibc sizes the stacks of the threads a process starts
# from the `ulimit -s` it found at its own start, so the child lowers the limit to `_THREAD_STACK` and starts
# again, once; then it takes its import path from the first line of stdin.
_START = f"""
import os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
wanted = {_THREAD_STACK} if hard == resource.RLIM_INFINITY else min({_THREAD_STACK}, hard)
if soft != wanted:
    resource.setrlimit(resource.RLIMIT_STACK, (wanted, hard))
    os.execv(sys.executable, sys.orig_argv)
import json
sys.path[:] = json.loads(sys.stdin.buffer.readline())
from digits.read.isolated import main
main()
"""


def _command(name: str) -> list[str]:
    """This Python, isolated (`-I -S`: no environment variable, working folder, `sitecustomize` or `.pth` file
    runs code or prints in it), importing what this process imports: its path comes first on stdin (one line of
    JSON; an argument is held to 128 KiB), this copy of `digits` first where that path lacks it."""
    from digits.read.load import MAX_DECODE_BYTES

    limits = [str(MAX_DECODE_BYTES + _SLACK + _THREAD_STACKS * _THREAD_STACK), str(CPU_SECONDS)]
    return [sys.executable, "-I", "-S", "-c", _START, *limits, name]


def _failure(returncode: int, stderr: bytes) -> str:
    """Why the child gave no image, in words: a limit it reached, or the last line it wrote."""
    if returncode == -signal.SIGXCPU:
        return f"decoding this HEIF image took over {CPU_SECONDS} s of CPU; it is refused (damaged or crafted)."
    if returncode < 0:  # a crash in libheif, memory refused where it could not say so, the CPU cap's SIGKILL
        try:
            killed_by = signal.Signals(-returncode).name
        except ValueError:  # a real-time signal, sent from outside
            killed_by = f"signal {-returncode}"
        return f"decoding this HEIF image failed ({killed_by}); it is damaged or crafted."
    last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
    return f"the process decoding this HEIF image failed ({last[0][:200]})."


def _limit(memory_bytes: int, cpu_seconds: int) -> int:
    """Cap this process's address space at what it maps now plus `memory_bytes`, and its CPU time; the cap."""
    import resource

    cap = _mapped() + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a child the caps end writes no core file (200 MiB each)
    return cap


def _mapped(peak: bool = False) -> int:
    """This process's address space now (or at its peak), in bytes."""
    key = "VmPeak:" if peak else "VmSize:"
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(key))
    return int(line.split()[1]) * 1024


def main() -> None:
    """The child (arguments: the memory cap, the CPU cap, the file's name): after its import path, the file's
    bytes on stdin; on stdout one line of JSON (the image's mode, size and true size, or the error's sentence),
    then the pixels. What the libraries print goes to stderr: libde265 writes its errors to stdout."""
    memory_bytes, cpu_seconds, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    from digits.read import heif, load

    heif.register()  # libheif mapped before the cap is measured
    with os.fdopen(os.dup(1), "wb") as out:
        os.dup2(2, 1)
        data = sys.stdin.buffer.read()
        cap = _limit(memory_bytes, cpu_seconds)
        try:
            image = load.decode_here(data, name)
        except ImageError as err:
            said = str(err)
            if said.endswith(load.OUT_OF_MEMORY) or _mapped(peak=True) > cap - _NEAR_THE_CAP:
                said = f"{name}: decoding this HEIF image took more memory than its header declares; it is refused."
            out.write(json.dumps({"error": said}).encode() + b"\n")
            return
        told = {"mode": image.mode, "size": image.size, ORIGINAL_SIZE: image.info.get(ORIGINAL_SIZE)}
        out.write(json.dumps(told).encode() + b"\n")
        out.write(image.tobytes())
