"""The layers hold: import-linter's contracts pass on the tree, and each one fails when broken on purpose."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_python

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is in the dev extra")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_keeps_every_contract():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("read/reader.py", "import tensorflow", "never import TensorFlow"),
        ("serve/app.py", "import digits.train.export", "never import TensorFlow"),
        ("runs.py", "import matplotlib", "never import TensorFlow"),
        ("synth/junk.py", "import onnxruntime", "need no model"),
        ("read/ink.py", "import digits.serve.app", "sits on serving and training"),
        ("config.py", "import digits.read.reader", "imports no layer above it"),
    ],
)
def test_each_contract_fails_when_a_forbidden_import_is_added(tmp_path, module, line, contract):
    shutil.copytree(
        ROOT / "src" / "digits",
        tmp_path / "src" / "digits",
        ignore=shutil.ignore_patterns("__pycache__", "shipped", "static"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "digits" / module
    target.write_text(target.read_text() + f"\n{line}  # added on purpose by the test\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout


def test_training_without_the_train_extra_says_what_to_install():
    # As if TensorFlow were not installed: the command must say so in one line, not crash on import.
    result = run_python(
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'tensorflow' else real(name, *a)\n"
        "sys.argv = ['digits', 'train', '--preset', 'tiny']\n"
        "from digits.cli import main\n"
        "main()\n"
    )
    assert_one_line_error(result, "pip install 'digits[train]' (from a clone: pip install '.[train]')")
    assert "tensorflow" not in result.stderr.lower()
