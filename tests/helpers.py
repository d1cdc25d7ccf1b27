"""Helpers the tests share: run the command as a user would, and check its one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
