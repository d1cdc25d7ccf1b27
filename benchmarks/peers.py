"""Two general OCR engines as peers for `realworld.py`, asked for digits only, on the same picture files.

  * Tesseract 5 (apt `tesseract-ocr`), run as its command with a digit whitelist
    (`tessedit_char_whitelist=0123456789`); page segmentation mode 10 (one
    character) for a single digit, 7 (one line) for a number, 6 (a block) for
    a page or a junk picture.
  * RapidOCR (pip `rapidocr`, on `onnxruntime`): PP-OCR's text detector and
    recogniser from its wheel, run offline. It has no whitelist: what it reads
    is kept to its digits, line by line, top to bottom.

Each `read_*` returns the digits read, lines joined with "\\n" ("" for
nothing), or None when the engine is not installed. A peer never sees
anything the reader does not: the file itself.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

_PSM = {"single": "10", "number": "7", "page": "6"}
_NOT_A_DIGIT = re.compile(r"[^0-9]")


def _digits_by_line(lines: list[str]) -> str:
    kept = [_NOT_A_DIGIT.sub("", line) for line in lines]
    return "\n".join(line for line in kept if line)


def tesseract_version() -> str | None:
    if not shutil.which("tesseract"):
        return None
    out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def read_tesseract(path: Path, layout: str) -> str | None:
    """Tesseract's digits for `layout` "single", "number" or "page"."""
    if not shutil.which("tesseract"):
        return None
    out = subprocess.run(
        ["tesseract", str(path), "stdout", "--psm", _PSM[layout], "-c", "tessedit_char_whitelist=0123456789"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return _digits_by_line(out.stdout.splitlines()) if out.returncode == 0 else ""


@cache
def _rapidocr():
    try:
        from rapidocr import RapidOCR
    except ImportError:
        return None
    engine = RapidOCR()
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)  # it logs every model file and every empty result
    return engine


def rapidocr_version() -> str | None:
    try:
        from importlib.metadata import version

        return f"rapidocr {version('rapidocr')}"
    except Exception:  # not installed
        return None


def read_rapidocr(path: Path, layout: str) -> str | None:
    """RapidOCR's digits, its lines ordered top to bottom (`layout` is not needed: it finds the text itself)."""
    engine = _rapidocr()
    if engine is None:
        return None
    found = engine(str(path))
    if not found.txts:
        return ""
    tops = [min(point[1] for point in box) for box in found.boxes]
    return _digits_by_line([text for _, text in sorted(zip(tops, found.txts, strict=False))])


PEERS = {"tesseract": (read_tesseract, tesseract_version), "rapidocr": (read_rapidocr, rapidocr_version)}
