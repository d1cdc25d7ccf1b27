"""The one door to TensorFlow and Keras: imported once, with the package's backend, quietly.

TensorFlow's C++ side writes to file descriptor 2 while it loads: absl's
"All log messages before absl::InitializeLog() is called are written to
STDERR" and, on CPUs where it turns oneDNN on (AVX-512 among them), a notice
about round-off. `TF_CPP_MIN_LOG_LEVEL` does not reach them, because absl
logs them before it reads its settings. So the import runs with fd 2 pointed
at a temporary file, and afterwards everything in it except those log lines
is written back to stderr: Python warnings and errors still reach the user,
TensorFlow's start-up chatter does not.

oneDNN is turned on where TensorFlow would leave it off (CPUs without
AVX-512, such as the AMD EPYC the benchmarks run on): there it trained the
`sprint` preset 1.47x faster (3 epochs, median of 3 alternating runs: 14.4 s
against 21.1 s), the `cnn` a few per cent faster and the article's dense
network no slower. A user's own `TF_ENABLE_ONEDNN_OPTS` wins.

Nothing else in `digits` imports `tensorflow` or `keras` before calling
`load()`; the core (presets, errors, runs, reader, inference) never does.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

# absl/TensorFlow log lines: "I0000 00:00:1795674312.478481    6472 port.cc:153] ..." and absl's preamble.
_NATIVE_LOG_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] )"
)


@contextlib.contextmanager
def native_logs_filtered() -> Iterator[None]:
    """Send fd 2 to a temporary file for the block, then replay all but the native log lines."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to protect
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if not _NATIVE_LOG_LINE.match(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


@functools.cache
def load():
    """Import TensorFlow and Keras (once) and return the two modules: `tf, keras = backend.load()`."""
    # The package, not the user's environment, chooses the Keras backend.
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # read by TensorFlow's import; see the module's docstring
    with native_logs_filtered(), their_deprecations_quiet():
        import keras
        import tensorflow
    return tensorflow, keras


def remove_generated_sources() -> None:
    """Remove the Python files AutoGraph wrote for this process's `tf.function`s.

    TensorFlow writes each one to the temporary folder and removes it at interpreter exit (`atexit`), which
    `digits.cli` skips after TensorFlow was loaded (its teardown costs a second and more): without this,
    every training command left one or more `__autograph_generated_file*.py` in /tmp. AutoGraph keeps each as a
    module of that name in `sys.modules`, with its file.
    """
    for name, module in list(sys.modules.items()):
        if name.startswith("__autograph_generated_file") and (path := getattr(module, "__file__", None)):
            with contextlib.suppress(OSError):
                os.remove(path)


@contextlib.contextmanager
def their_deprecations_quiet() -> Iterator[None]:
    """Within the block, Keras's and TensorFlow's own deprecation notices (numpy's `np.object` in Keras's
    ONNX export) are not shown: they are theirs to fix, not the user's to read. Warnings about the user's
    own code still show."""
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=r"(keras|tensorflow|tf2onnx)")
        yield
