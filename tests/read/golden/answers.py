"""A fixed set of pictures and the shipped reader's answers to them, for `test_golden.py`.

    python tests/read/golden/answers.py --write      # record answers.json from this tree

The pictures are made here, seeded: MNIST test digits photographed by `digits.synth.photograph`
(single digits and numbers), seeded junk from `digits.synth.junk`, and raw MNIST test images. A change
to the reader that changes an answer shows up as a failing test; a change meant to do so re-records
the file in the same commit and says why. Run with DIGITS_DATA_DIR set (MNIST).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
ANSWERS = HERE / "answers.json"
SEED = 2026


def pictures():
    """(name, picture, kind) for every picture in the set, in a fixed order."""
    from digits.data import load_test
    from digits.synth.junk import make_junk
    from digits.synth.photograph import make_lines, make_singles

    x_test, y_test = load_test()
    for i, (picture, _) in enumerate(make_singles(x_test, y_test, 40, SEED)):
        yield f"single-{i}", picture, "digit"
    for i, (picture, _) in enumerate(make_lines(x_test, y_test, 20, SEED)):
        yield f"line-{i}", picture, "page"
    for i, (picture, _) in enumerate(make_junk(20, SEED)):
        yield f"junk-{i}", picture, "page"
    for i in range(0, 2000, 10):
        yield f"mnist-{i}", Image.fromarray(x_test[i]), "digit"


def answers() -> dict[str, str]:
    from digits.read.reader import Reader

    reader = Reader()
    out = {}
    for name, picture, kind in pictures():
        if kind == "digit":
            digit = reader.read_digit(picture)
            out[name] = f"{digit.status}:{digit.digit}"
        else:
            out[name] = reader.read_page(picture).text
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record answers.json")
    args = parser.parse_args()
    found = answers()
    if args.write:
        ANSWERS.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    json.dump(found, sys.stdout, indent=1)
