"""Shared fixtures. The tests need MNIST: set DIGITS_DATA_DIR (CI points it at ../shared/data/mnist)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DIGITS = str(Path(sys.executable).parent / "digits")


def run_cli(*args: str, cwd: Path, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed `digits` command as a user would."""
    return subprocess.run([DIGITS, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)


def run_python(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter, so what it imports is all that is in sys.modules."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """The command failed as promised: exit code 2 and one line on stderr naming the fault."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# Fixtures that cost a full training run or a browser: every test using one is slow.
SLOW_FIXTURES = {"fast_run", "browser", "server"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def mnist():
    if not os.environ.get("DIGITS_DATA_DIR"):
        pytest.fail("set DIGITS_DATA_DIR to a folder with the MNIST IDX files (CI uses ../shared/data/mnist)")
    from digits.data import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, mnist) -> Path:
    """A real (tiny, seconds-long) run folder, trained once and shared read-only by the tests."""
    from digits.train import train

    runs = tmp_path_factory.mktemp("runs")
    return train("tiny", runs_dir=runs, name="tiny", train_limit=6000, progress=False, log=lambda *a: None)


@pytest.fixture(scope="session")
def fast_run(tmp_path_factory, mnist) -> Path:
    """The default preset on the full data: the model whose accuracy and ONNX parity we check."""
    from digits.train import train

    runs = tmp_path_factory.mktemp("runs")
    return train("fast", runs_dir=runs, name="fast", progress=False, log=lambda *a: None)
