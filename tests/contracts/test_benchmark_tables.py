"""The markdown tables the benchmarks write (benchmarks/_common.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import results_table  # noqa: E402


def test_results_table_markdown():
    rows = [
        {"model": "mlp", "accuracy": 0.98123, "params": 101770, "seconds": 12.3456},
        {"model": "cnn|small", "accuracy": 0.99, "params": 34826, "seconds": 1234.5},
        {"model": "linear", "accuracy": 0.925},  # missing keys leave blank cells
    ]
    columns = [("model", "Model"), ("accuracy", "Test accuracy"), ("params", "Params"), ("seconds", "Time (s)")]
    table = results_table(rows, columns)
    lines = table.strip().split("\n")
    assert len(lines) == 5
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["Model", "Test accuracy", "Params", "Time (s)"]
    # Text left-aligned, numbers right-aligned.
    rule = [c.strip() for c in lines[1].strip("|").split("|")]
    assert not rule[0].endswith(":") and all(c.endswith(":") for c in rule[1:])
    assert "0.9812" in lines[2] and "12.35" in lines[2] and "101770" in lines[2]
    assert "1234" in lines[3]
    assert "cnn\\|small" in lines[3]
    # Every row has the same number of cells (escaped pipes don't count).
    assert {line.replace("\\|", "").count("|") for line in lines} == {5}


def test_results_table_empty_rows():
    table = results_table([], [("a", "A")])
    assert table.strip().split("\n")[0].strip() == "| A   |"
