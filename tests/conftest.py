"""Shared fixtures. The tests need MNIST: set DIGITS_DATA_DIR (CI points it at ../shared/data/mnist)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

# Ctrl-C's tests send SIGINT to a training run, in this process and in the commands it starts. A shell
# starts a background job (`.ci/run &`, a CI runner's step) with SIGINT ignored, and an ignored signal stays
# ignored in every child, as the commands rightly keep it: those tests would find nothing to stop them.
# The suite runs as from a terminal, where Ctrl-C is Python's own KeyboardInterrupt (children get the default).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Fixtures that cost a full training run or a browser: every test using one is slow.
SLOW_FIXTURES = {"fast_run", "browser", "server"}
# What CI provides, as skip reasons name it: what .ci/run installs or starts, and ../shared beside the
# clone. Under .ci/run (it exports DIGITS_CI=1) a test skipped for one of these fails instead: a missing
# extra, browser, service or dataset would otherwise pass as "1 skipped". Skips that depend on the machine
# (root, glibc, /dev/full, Linux only, the frontier benchmark's optional PyTorch) stay skips. Not CI=1:
# other CI systems set that without these services, and Hypothesis takes it for its fixed-examples profile.
CI_PROVIDES = (
    "'optuna'",
    "'distributed'",
    "'pyarrow'",
    "'psycopg",
    "tritonclient",
    "TensorFlow",
    "Playwright",
    "Chromium",
    "import-linter",
    "DIGITS_TEST_POSTGRES_URL",
    "DIGITS_TEST_DASK_SCHEDULER",
    "real-digits",
    "fashion-mnist",
)


def _provided_by_ci(report) -> str | None:
    """The skip's reason, when .ci/run runs this and it names something CI provides; else None."""
    if not (os.environ.get("DIGITS_CI") and report.skipped) or hasattr(report, "wasxfail"):
        return None
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    return reason if any(need in reason for need in CI_PROVIDES) else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if reason := _provided_by_ci(report):
        report.outcome, report.longrepr = "failed", f"skipped under CI, which provides what it needs: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):  # a module skipped as a whole (importorskip at its top)
    report = (yield).get_result()
    if reason := _provided_by_ci(report):
        report.outcome, report.longrepr = "failed", f"skipped under CI, which provides what it needs: {reason}"


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
