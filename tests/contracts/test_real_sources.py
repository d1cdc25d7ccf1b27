"""The real-world benchmark's fold protocol and per-source scoring (benchmarks/real_sources.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import benchmark_module

real_sources = benchmark_module("real_sources")
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-digits"


def test_sources_before_issue_19_are_dev_and_new_ones_held_out():
    assert real_sources.fold("rksharma007/Handwritten_Digit_Recognition_Using_Custom_Images") == "dev"
    assert real_sources.fold("Calamari-OCR/calamari") == "held out"
    assert real_sources.fold("someone/added-next-year") == "held out"


def test_every_real_picture_has_a_fold_and_every_kind_is_held_out_somewhere():
    if not REAL.is_dir():
        pytest.skip(f"{REAL} is absent")
    rows = real_sources.pictures(REAL)
    assert {row["set"] for row in rows} == {"single", "multi", "pages", "junk"}
    held_out = {(row["set"], row["kind"]) for row in rows if row["fold"] == "held out"}
    assert {"letters", "printed", "blank"} <= {kind for name, kind in held_out if name == "junk"}
    assert any(name == "multi" for name, _ in held_out)
    assert all("\\n" not in row["truth"] for row in rows)  # pages' two-character "\n" became a line break


def test_summary_scores_each_source_and_names_the_worst():
    rows = [
        {"set": "single", "truth": "3", "kind": "photo", "source": "a", "fold": "dev"},
        {"set": "single", "truth": "4", "kind": "photo", "source": "b", "fold": "dev"},
        {"set": "junk", "truth": "", "kind": "doodle", "source": "c", "fold": "held out"},
        {"set": "junk", "truth": "", "kind": "blank", "source": "c", "fold": "held out"},
    ]
    answers = [
        {"digit": "3", "confidence": 0.99, "refused": False},
        {"digit": "7", "confidence": 0.95, "refused": False},  # wrong and confident
        {"digit": "0", "confidence": 0.97, "refused": False, "text": ""},  # predict takes junk for a 0
        {"digit": None, "confidence": 0.9, "refused": True, "text": ""},
    ]
    summary = real_sources.summarize(rows, answers)
    dev, held = summary["dev"], summary["held out"]
    assert dev["sets"]["single"] == {"n": 2, "right": 1} and dev["worst_source"] == "single: b"
    assert dev["confident_wrong"]["single"] == 1
    assert held["junk_kinds"]["all"] == {"n": 2, "predict_digit": 1, "read_number": 0}
    assert held["confident_wrong"]["junk"] == 1 and held["sources"]["junk: c"] == {"n": 2, "right": 1}
    table = real_sources.markdown({"model": summary})
    assert "| dev | worst source (digits, numbers, pages) | single: b 0.0 % |" in table
