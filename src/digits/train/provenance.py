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
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


def _git(*args: str) -> str | None:
    """`git ARGS` run in this package's folder: its output, or None outside a checkout."""
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, if it runs from one."""
    return (_git("rev-parse", "HEAD") or "").strip() or None


def git_dirty() -> bool | None:
    """Whether tracked files differ from that commit (the run's code is then not the commit's); None outside a checkout."""
    status = _git("status", "--porcelain", "--untracked-files=no")
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
