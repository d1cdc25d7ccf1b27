"""The reader's answers to a fixed, seeded set of pictures are the recorded ones (golden/answers.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
from answers import ANSWERS, answers  # noqa: E402


def test_the_reader_answers_as_recorded(mnist):
    expected = json.loads(ANSWERS.read_text())
    found = answers()
    changed = {name: (expected.get(name), got) for name, got in found.items() if expected.get(name) != got}
    assert not changed, f"{len(changed)} answers changed (recorded, now): {dict(list(changed.items())[:10])}"
    assert found.keys() == expected.keys()
