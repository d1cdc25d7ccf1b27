"""Shared fixtures. The tests need MNIST: set DIGITS_DATA_DIR (CI points it at ../shared/data/mnist)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    from digits.train.run import train

    runs = tmp_path_factory.mktemp("runs")
    return train("tiny", runs_dir=runs, name="tiny", train_limit=6000, progress=False, log=lambda *a: None)


@pytest.fixture(scope="session")
def fast_run(tmp_path_factory, mnist) -> Path:
    """The default preset on the full data: the model whose accuracy and ONNX parity we check."""
    from digits.train.run import train

    runs = tmp_path_factory.mktemp("runs")
    return train("fast", runs_dir=runs, name="fast", progress=False, log=lambda *a: None)
