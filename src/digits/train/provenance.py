"""What a run was made with: package versions, data digests, code version, machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from digits.train.extra_data import dataset_digests as digests

PACKAGES = ("digits", "keras", "tensorflow", "tensorflow-cpu", "numpy", "onnx", "onnxruntime", "tf2onnx")


def cpu_model() -> str:
    """The CPU's model name, and its widest vector instructions where Linux says (one model name covers
    machines with and without AVX-512, whose speeds differ)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    widest = next((label for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), None)
    name = name or platform.processor() or platform.machine()
    return f"{name} ({widest})" if widest else name


def machine() -> dict:
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


# The digits package's own folder: git runs there, and only its files make a run's code "dirty".
_PACKAGE = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    """`git ARGS` run in this package's folder: its output, or None outside a checkout."""
    try:
        out = subprocess.run(["git", *args], cwd=_PACKAGE, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, if it runs from one."""
    return (_git("rev-parse", "HEAD") or "").strip() or None


def git_dirty() -> bool | None:
    """Whether the package's tracked files differ from that commit (the run's code is not the commit's); None outside a checkout.

    Only this package's folder counts (results and docs do not change a run), and git
    takes no lock: a commit made while a run starts does not fail for it.
    """
    status = _git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no", "--", str(_PACKAGE))
    return None if status is None else bool(status.strip())


def collect(dataset: str) -> dict:
    return {
        "versions": versions(),
        "data_sha256": digests(dataset),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "command": sys.argv,
        "machine": machine(),
    }
