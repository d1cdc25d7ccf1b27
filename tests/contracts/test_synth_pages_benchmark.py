"""The generated-pages benchmark's scoring and its README row (benchmarks/synth_pages.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import synth_pages  # noqa: E402  (a script beside its neighbours, as when it runs)


def test_a_page_counts_when_exact_and_a_line_wherever_it_is_read():
    expected = ["12\n345", "7\n7", "90\n81"]
    got = ["12\n345", "7", "81\n90"]  # right; one of two equal numbers; both numbers, out of order
    assert synth_pages.score(got, expected) == {"pages": 3, "exact": 1, "lines": 6, "lines_read": 5}


def test_the_contenders_take_turns_file_by_file(tmp_path):
    calls = []
    readers = {"a": lambda f: calls.append(("a", f.name)) or "1", "b": lambda f: calls.append(("b", f.name)) or ""}
    files = [tmp_path / "x.jpg", tmp_path / "y.jpg"]
    assert synth_pages.read_all(files, readers) == {"a": ["1", "1"], "b": ["", ""]}
    assert calls == [("a", "x.jpg"), ("b", "x.jpg"), ("a", "y.jpg"), ("b", "y.jpg")]


def test_the_readme_summary_row():
    import update_readme

    all_ = {"all": {"pages": 140, "exact": 92, "lines": 401, "lines_read": 316}}
    peer = {"all": {"pages": 140, "exact": 81, "lines": 401, "lines_read": 324}}
    what, figure, link = update_readme.pages_row({"results": {"digits": all_, "RapidOCR": peer}}, "docs/benchmarks.md")
    assert figure == "92 of 140 (RapidOCR: 81)"
    assert link == "docs/benchmarks.md#generated-pages-scene-by-scene" and "seven scenes" in what
