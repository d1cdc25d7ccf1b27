"""The real-world benchmark's fold protocol and per-source scoring (benchmarks/real_sources.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

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


def test_the_realworld_table_times_the_pictures_read_as_pages_by_folder(tmp_path):
    realworld = benchmark_module("realworld")
    paths = []
    for i in range(2):
        Image.new("L", (8, 8), 255).save(path := tmp_path / f"{i}.png")
        paths.append(path)
    read = []

    class Counted:  # a reader whose pages are read instantly, and counted
        def read_page(self, path):
            read.append(path)

    timing = realworld.time_pictures(Counted().read_page, paths, 3)
    assert read == [paths[0]] * 3 + [paths[1]] * 3 and timing["pictures"] == 2
    report = json.loads((realworld.RESULTS / "realworld.json").read_text())
    report["models"]["shipped"]["time_pages"] = {"junk": timing}
    assert "Read as pages (`read_page`), the 2 pictures of `junk/`: median" in realworld.markdown(report)
    del report["models"]["shipped"]["time_pages"]  # a report from before pages were timed
    assert "Read as pages" not in realworld.markdown(report)
