"""The real pictures of `real-digits/`, split into folds by source repository, scored per source (used by realworld.py).

Fold protocol (issue 19). Every picture belongs to the public repository it
was copied from (`source_repo` in the folder's labels.csv; the file-name
prefix names it too), and every repository to exactly one fold:

  * **dev**: the repositories in `DEV_SOURCES`. Rules, thresholds and
    training choices may be made looking at these. They are every source
    that was in `real-digits/` before issue 19 (the reader's rules were
    chosen on all of them already: its "every picture right" there is a
    development figure, not a measurement), plus, of the sources issue 19
    added, one per kind of junk (doodles, sample photos, signatures), one
    source of numbers (mrsadeghi) and the only source of pages.
  * **held out**: every other repository, including any added later. Their
    figures are reported and nothing is chosen on them: no rule, threshold,
    preset value or training set is changed because of a held-out picture.
    Today they are calamari (printed lines), shrsai (Greek letters),
    HYPJUDY's blank A4 sheets, tellstory and zwass (blank paper) as junk,
    and tahaemara, Soha, Allda and Ramish as numbers. There is no held-out
    source of single digits in `real-digits/`: the public benchmark for
    unseen writers is CVL's evaluation split (176 writers), reported beside
    MNIST, and the project is also judged on sources outside `shared/`.

Per picture: a single digit is right when the reader's digit (sure or
unsure) is the label; a number or page is right when `read` gives exactly
its lines; junk is refused by `predict` when it gives no digit (neither
sure nor unsure) and by `read` when it finds no number. Confident-wrong: a
wrong digit at confidence >= 0.9, for a single digit or for junk. Peers give
no confidence and have no "no digit" answer, so those rows are "-" for them.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import peers

CONFIDENT = 0.9

DEV_SOURCES = frozenset(
    {
        # in real-digits/ before issue 19
        "rksharma007/Handwritten_Digit_Recognition_Using_Custom_Images",
        "Happy1HappyHappy/Recognition-using-Deep-Networks",
        "Sourav-02121996/Recognition-using-Deep-Networks",
        "ParkerCai/PRCV_Project-5_Recognition-using-Deep-Networks",
        "juttu-s/Recognition-using-Deep-Networks",
        "msdanatr/cs5330_project5",
        "MelancholyZhong/Recognition-using-Deep-Networks",
        "hangyin2020/cs5330_p5",
        "mzecic/CS5330Project5",
        "DanilaEremenko/NeuralNetwork",
        "filippoguerranti/handwritten_long_numbers_recognition",
        "niraj-dudani/mnist-multiple-digits",
        "lucksoft-yungui/handwritten-multi-digit-number-recognition",
        # added by issue 19, chosen as dev
        "anuraglodhi/hand-drawn-doodle-recognition",
        "scikit-image/scikit-image",
        "SHIVITG/Signature_Detection_Analysis",
        "mrsadeghi/handwritten-multi-digits",
        "HYPJUDY/handwritten-digits-recognition",
    }
)
FOLDS = ("dev", "held out")
SETS = ("single", "multi", "pages", "junk")


def fold(source_repo: str) -> str:
    return "dev" if source_repo in DEV_SOURCES else "held out"


def pictures(folder: Path) -> list[dict]:
    """One row per picture of the four sets: path, set, truth, kind, source, fold."""
    rows = []
    for name, column in (("single", "label"), ("multi", "text"), ("pages", "text"), ("junk", None)):
        labels = folder / name / "labels.csv"
        if not labels.is_file():
            continue
        with open(labels, newline="") as f:
            for row in csv.DictReader(f):
                truth = row[column].replace("\\n", "\n") if column else ""
                rows.append(
                    {
                        "path": folder / name / row["file"],
                        "set": name,
                        "truth": truth,
                        "kind": row["kind"],
                        "source": row["file"].split("__")[0],
                        "fold": fold(row["source_repo"]),
                    }
                )
    return rows


def read_with_reader(reader, rows: list[dict]) -> list[dict]:
    """The reader's answers, one per row: `digit` and its confidence (`predict`), `text` (`read`)."""
    from digits.spec import NO_DIGIT

    answers = []
    for row in rows:
        answer = {}
        if row["set"] in ("single", "junk"):
            found = reader.read_digit(row["path"])
            answer |= {
                "digit": None if found.status == NO_DIGIT else str(found.digit),
                "confidence": found.confidence,
                "refused": found.status == NO_DIGIT,
            }
        if row["set"] != "single":
            answer["text"] = reader.read_page(row["path"]).text
        answers.append(answer)
    return answers


def read_with_peer(read, rows: list[dict]) -> list[dict] | None:
    """A peer's answers (`peers.PEERS`), None when it is not installed. Peers give no confidence."""
    answers = []
    for row in rows:
        answer = {}
        if row["set"] in ("single", "junk"):
            text = read(row["path"], "single")
            if text is None:
                return None
            answer["digit"] = text.replace("\n", "") or None
        if row["set"] != "single":
            layout = "number" if row["set"] == "multi" else "page"
            text = read(row["path"], layout)
            answer["text"] = text.replace("\n", "") if layout == "number" else text
        answers.append(answer)
    return answers


def peer_results(rows: list[dict]) -> dict:
    """Each peer of `peers.PEERS` on `rows`: its version and `summarize`'s figures, or why it is missing."""
    found = {}
    for name, (read, version) in peers.PEERS.items():
        answers = read_with_peer(read, rows)
        found[name] = (
            {"version": version(), "folds": summarize(rows, answers)}
            if answers
            else {"missing": f"{name} is not installed"}
        )
    return found


def _right(row: dict, answer: dict) -> bool:
    if row["set"] == "single":
        return answer["digit"] == row["truth"]
    if row["set"] == "junk":
        return answer["digit"] is None and not answer["text"]
    return answer["text"] == row["truth"]


def summarize(rows: list[dict], answers: list[dict]) -> dict:
    """Per fold: each set's score, junk by kind both ways, confident-wrong, and every source's score."""
    out = {
        f: {
            "sets": defaultdict(lambda: {"n": 0, "right": 0}),
            "sources": defaultdict(lambda: {"n": 0, "right": 0}),
            "junk_kinds": defaultdict(lambda: {"n": 0, "predict_digit": 0, "read_number": 0}),
            "confident_wrong": {"single": 0, "junk": 0},
            "single_refused": 0,
        }
        for f in FOLDS
    }
    for row, answer in zip(rows, answers, strict=False):
        here = out[row["fold"]]
        right = _right(row, answer)
        for bucket in (here["sets"][row["set"]], here["sources"][f"{row['set']}: {row['source']}"]):
            bucket["n"] += 1
            bucket["right"] += right
        sure = answer.get("confidence", 0) >= CONFIDENT and answer.get("digit") is not None
        if row["set"] == "single":
            here["confident_wrong"]["single"] += sure and not right
            here["single_refused"] += bool(answer.get("refused"))
        if row["set"] == "junk":
            for key in (row["kind"], "all"):
                kind = here["junk_kinds"][key]
                kind["n"] += 1
                kind["predict_digit"] += answer["digit"] is not None
                kind["read_number"] += bool(answer["text"])
            here["confident_wrong"]["junk"] += sure
    for here in out.values():
        scored = [(b["right"] / b["n"], name) for name, b in here["sources"].items() if not name.startswith("junk")]
        here["worst_source"] = min(scored)[1] if scored else None
    return _plain(out) | {"confidence": any("confidence" in answer for answer in answers)}


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _table_head(column: str, names: list[str]) -> list[str]:
    """A table's header and rule: the fold, `column`, then one column per engine."""
    return [
        f"| fold | {column}".rstrip() + " | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|" + "---|" * (2 + len(names)),
    ]


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f} %" if n else "-"


def _frac(k: int, n: int) -> str:
    return f"{k}/{n} = {_pct(k, n)}" if n else "-"


def _row(fold: str, label: str, cells) -> str:
    return f"| {fold} | {label} | " + " | ".join(cells) + " |"


def _scored(engines: dict[str, dict], fold: str, count, n: int):
    """One row's cells: `count(an engine's fold)` of n, or "-" for an engine without confidences."""
    return (_frac(count(engine[fold]), n) if engine["confidence"] else "-" for engine in engines.values())


def markdown(engines: dict[str, dict]) -> str:
    """The folds table (engines side by side), then per source and junk by kind for each fold."""
    names = list(engines)
    lines = [
        "### Real pictures by fold (dev: rules may be chosen on it; held out: reported only)",
        "",
        *_table_head("", names),
    ]
    labels = {"single": "one digit, right", "multi": "a number, exact", "pages": "a page, exact"}
    for f in FOLDS:
        fold = {n: engines[n][f] for n in names}
        for key, label in labels.items():
            cells = [fold[n]["sets"].get(key) for n in names]
            if any(cells):
                lines.append(_row(f, label, (_frac(c["right"], c["n"]) if c else "-" for c in cells)))
        first = fold[names[0]]
        single_n = first["sets"].get("single", {}).get("n", 0)
        junk_n = first["junk_kinds"].get("all", {}).get("n", 0)
        if single_n:
            lines.append(_row(f, "real digits refused", _scored(engines, f, lambda e: e["single_refused"], single_n)))
            lines.append(
                _row(
                    f,
                    f"one digit wrong at confidence ≥ {CONFIDENT}",
                    _scored(engines, f, lambda e: e["confident_wrong"]["single"], single_n),
                )
            )
        if junk_n:
            for key, label in (
                ("predict_digit", "junk: `predict` gives a digit"),
                ("read_number", "junk: `read` finds a number"),
            ):
                lines.append(_row(f, label, (_frac(fold[n]["junk_kinds"]["all"][key], junk_n) for n in names)))
            lines.append(
                _row(
                    f,
                    f"junk: a digit at confidence ≥ {CONFIDENT}",
                    _scored(engines, f, lambda e: e["confident_wrong"]["junk"], junk_n),
                )
            )
        worst = {n: fold[n]["worst_source"] for n in names}
        if any(worst.values()):
            lines.append(
                _row(
                    f,
                    "worst source (digits, numbers, pages)",
                    (
                        f"{w} {_pct(fold[n]['sources'][w]['right'], fold[n]['sources'][w]['n'])}" if w else "-"
                        for n, w in worst.items()
                    ),
                )
            )
    lines += [
        "",
        "Per source (right / pictures; for junk: refused by both `predict` and `read`):",
        "",
        *_table_head("set: source", names),
    ]
    for f in FOLDS:
        for source in sorted(engines[names[0]][f]["sources"]):
            cells = [engines[n][f]["sources"][source] for n in names]
            lines.append(_row(f, source, (_frac(c["right"], c["n"]) for c in cells)))
    lines += [
        "",
        "Junk by kind (gives a digit with `predict` / finds a number with `read`):",
        "",
        *_table_head("kind", names),
    ]
    for f in FOLDS:
        for kind in sorted(engines[names[0]][f]["junk_kinds"]):
            cells = [engines[n][f]["junk_kinds"][kind] for n in names]
            lines.append(_row(f, kind, (f"{c['predict_digit']}/{c['n']} / {c['read_number']}/{c['n']}" for c in cells)))
    return "\n".join(lines)
