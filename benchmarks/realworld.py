"""Benchmark: the reader on real pictures, photo-like pictures and junk, against the naive resize.

Every picture goes through `digits.read.reader.Reader`, the path `digits predict`,
`digits read` and the server take. Sets:

  * real: photos, scans and drawings by people outside the project
    (`--real`, default ../shared/data/real-digits: single/labels.csv,
    multi/labels.csv), scored by kind;
  * synthetic: the seeded photo-like set rendered from MNIST *test* digits
    (`digits.synth.photograph`), written to PNG/JPEG files and read back;
  * junk: seeded pictures with no digit at all (`digits.synth.junk`).

For each model (the shipped one unless `--model`, plus any `--compare`):
single-digit accuracy (the naive resize beside it), whole numbers read
exactly, real digits refused ("no digit found"), junk accepted (a confident
digit), and the time per real picture next to Pillow's own full decode of the
same file (alternating, median of `--repeat` rounds): the singles read as one
digit, the numbers, pages and junk of `real-digits/` read as pages.

Issue 19 adds, on every picture of `real-digits/` (single, multi, pages,
junk), a table by fold and by source repository (the fold protocol, which
folds are "dev" and which "held out", is in `real_sources.py`'s docstring),
junk refused by kind by both `predict` and `read`, the confident-wrong rate
(wrong at confidence >= 0.9), accuracy on CVL's evaluation split (176
writers never trained on) and on DIDA's test part (2,000 crops of Swedish
historical records, numbered above 800 in each class, never trained on;
not split by writer) beside MNIST's test set, and the same pictures
read by two peers, Tesseract and RapidOCR (`peers.py`; a peer that is not
installed is reported as such).

    python benchmarks/realworld.py [--model RUN] [--compare RUN ...] [--singles 2000 --lines 1000 --junk 1000]
    python benchmarks/realworld.py --table-only     # rewrite the table from the JSON

Writes benchmarks/results/realworld.json and realworld.md (the README's table).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from PIL import Image

import real_sources
from _common import how_measured, how_run, write_results
from digits.atomic import write_text
from digits.read.load import load_image
from digits.read.normalize import naive
from digits.read.reader import Reader
from digits.spec import NO_DIGIT, OK, UNSURE
from digits.synth.junk import make_junk
from digits.synth.photograph import write_set

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
REAL = ROOT.parent / "shared" / "data" / "real-digits"
REAL_KINDS = ("photo", "scan", "drawn")


def real_sets(folder: Path) -> tuple[list[tuple[Path, str, str]], list[tuple[Path, str, str]]]:
    """(path, label, kind) for the single digits and the numbers of a real-digits folder."""

    def rows(name: str, column: str) -> list[tuple[Path, str, str]]:
        with open(folder / name / "labels.csv", newline="") as f:
            return [(folder / name / row["file"], row[column], row["kind"]) for row in csv.DictReader(f)]

    return rows("single", "label"), rows("multi", "text")


def synthetic_sets(folder: Path, singles: int, lines: int, seed: int, data_dir) -> tuple[list, list]:
    from digits.data import load_test

    x_test, y_test = load_test("mnist", data_dir)
    labels = json.loads(write_set(folder, x_test, y_test, singles, lines, seed).read_text())
    return (
        [(folder / e["file"], str(e["label"]), "synthetic") for e in labels["singles"]],
        [(folder / e["file"], str(e["label"]), "synthetic") for e in labels["lines"]],
    )


def _totals(kind: str) -> tuple[str, ...]:
    """The rows a picture counts in: its kind, and "real" for every kind of real picture."""
    return (kind, "real") if kind in REAL_KINDS else (kind,)


def score_singles(reader: Reader, items: list[tuple[Path, str, str]]) -> dict:
    """Per kind: pictures, read right, refused, unsure, and the naive resize's accuracy."""
    counts: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for path, label, kind in items:
        image = load_image(path)
        found = reader.read_digit(image)
        naive_digit = int(reader.classify(naive(image))[0][:10].argmax())
        for key in _totals(kind):
            row = counts[key]
            row["n"] += 1
            row["correct"] += found.digit == int(label)
            row["refused"] += found.status == NO_DIGIT
            row["unsure"] += found.status == UNSURE
            row["naive_correct"] += naive_digit == int(label)
    return {kind: dict(row) for kind, row in counts.items()}


def score_numbers(reader: Reader, items: list[tuple[Path, str, str]]) -> dict:
    """Per kind: numbers, read exactly, and up to ten misreadings."""
    counts: dict[str, dict] = defaultdict(lambda: {"n": 0, "exact": 0, "misread": []})
    for path, text, kind in items:
        read = reader.read_page(path).text.replace("\n", " ")
        for key in _totals(kind):
            row = counts[key]
            row["n"] += 1
            row["exact"] += read == text
            if read != text and len(row["misread"]) < 10:
                row["misread"].append({"file": path.name, "text": text, "read": read})
    return dict(counts)


def score_junk(reader: Reader, pictures: list[tuple[Image.Image, str]]) -> dict:
    """Per kind of junk: pictures, accepted as a confident digit, unsure, refused."""
    counts: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for image, kind in pictures:
        status = reader.read_digit(image).status
        for key in (kind, "all"):
            counts[key]["n"] += 1
            counts[key]["accepted"] += status == OK
            counts[key]["refused"] += status == NO_DIGIT
    return {kind: dict(row) for kind, row in counts.items()}


def time_pictures(read: Callable[[Path], object], paths: list[Path], repeat: int) -> dict:
    """Median seconds per picture for the reader (file to answer, by `read`: `Reader.read_digit` or `read_page`)
    and for Pillow's full decode, alternating."""

    def pillow(path: Path) -> None:
        with Image.open(path) as image:
            image.load()

    ours, theirs = [], []
    for path in paths:
        rounds = {"ours": [], "pillow": []}
        for _ in range(repeat):
            for name, work in (("pillow", pillow), ("ours", read)):
                start = time.perf_counter()
                work(path)
                rounds[name].append(time.perf_counter() - start)
        ours.append(statistics.median(rounds["ours"]))
        theirs.append(statistics.median(rounds["pillow"]))
    return {
        "pictures": len(paths),
        "reader_ms_median": round(1000 * statistics.median(ours), 2),
        "pillow_ms_median": round(1000 * statistics.median(theirs), 2),
        "reader_ms_total": round(1000 * sum(ours), 1),
        "pillow_ms_total": round(1000 * sum(theirs), 1),
        "ratio_of_totals": round(sum(ours) / sum(theirs), 2),
        "ratio_median": round(statistics.median(o / t for o, t in zip(ours, theirs, strict=False)), 2),
    }


def _ordered(rows: dict) -> list[tuple[str, dict]]:
    """Real pictures first, then each kind of them, then the rest."""
    order = ("real", *REAL_KINDS)
    return sorted(rows.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f} %" if n else "-"


def markdown(report: dict) -> str:
    names = list(report["models"])
    # A run folder is named by its folder ("cnn"), the shipped model as "shipped".
    header = "| set | pictures | naive resize | " + " | ".join(f"`{Path(name).name}`" for name in names) + " |"
    rows = [header, "|" + "---|" * (3 + len(names))]
    first = report["models"][names[0]]
    for kind, row in _ordered(first["singles"]):
        cells = [_pct(m["singles"][kind]["correct"], m["singles"][kind]["n"]) for m in report["models"].values()]
        rows.append(
            f"| one digit, {kind} | {row['n']} | {_pct(row['naive_correct'], row['n'])} | " + " | ".join(cells) + " |"
        )
    for kind, row in _ordered(first["numbers"]):
        cells = [_pct(m["numbers"][kind]["exact"], m["numbers"][kind]["n"]) for m in report["models"].values()]
        rows.append(f"| whole number exact, {kind} | {row['n']} | | " + " | ".join(cells) + " |")
    real = {name: m["singles"].get("real", {}) for name, m in report["models"].items()}
    for outcome in ("refused", "unsure"):
        rows.append(
            f"| real digits {outcome} | "
            + f"{first['singles'].get('real', {}).get('n', 0)} | | "
            + " | ".join(_pct(r.get(outcome, 0), r.get("n", 0)) for r in real.values())
            + " |"
        )
    for kind, row in sorted(first["junk"].items(), key=lambda item: item[0] != "all"):
        cells = [_pct(m["junk"][kind]["accepted"], m["junk"][kind]["n"]) for m in report["models"].values()]
        rows.append(f"| generated junk accepted, {kind} | {row['n']} | | " + " | ".join(cells) + " |")
    timing = first["time"]
    if timing:
        rows += [
            "",
            f"Time per real picture, file to answer, `{Path(names[0]).name}`: median {timing['reader_ms_median']} ms against "
            f"{timing['pillow_ms_median']} ms for Pillow's own full decode of the same file; over all "
            f"{timing['pictures']} pictures, {timing['ratio_of_totals']}× Pillow's decode time (median per picture "
            f"{timing['ratio_median']}×).",
        ]
    if pages := first.get("time_pages"):  # absent from reports made before pages were timed
        rows[-1] += (
            " Read as pages (`read_page`), "
            + "; ".join(
                f"the {t['pictures']} pictures of `{folder}/`: median {t['reader_ms_median']} ms against "
                f"{t['pillow_ms_median']} ms, {t['ratio_of_totals']}× Pillow's decode over all"
                for folder, t in pages.items()
            )
            + "."
        )
    rows += [
        "",
        '"Real" pictures are photos, scans and drawings by people outside the project, never trained on; '
        '"synthetic" ones are rendered from MNIST test digits; junk holds no digit. A digit read right '
        'counts whether it is sure or "unsure"; junk is accepted when it gets a sure digit.',
        "",
        how_measured("realworld.py", report),
        "",
    ]
    return "\n".join(rows) + issue19_markdown(report)


def public_sets(reader: Reader, data_dir) -> dict:
    """Accuracy (argmax over all outputs: a refused digit is wrong) on MNIST's test set, CVL's evaluation split
    and DIDA's test part, of the model alone and of the reader (which turns the images the model is unsure of)."""
    from digits.data import load_test
    from digits.errors import DataError
    from digits.train.extra_data import load_parts

    scores = {}
    for name, load in (
        ("MNIST test", lambda: load_test("mnist", data_dir)),
        ("CVL evaluation split", lambda: load_parts("cvl", data_dir)["test"]),
        # Real photos of old paper, made MNIST-like by the reader's own `prepare` (`extra_data`).
        ("DIDA test part", lambda: load_parts("dida", data_dir)["test"]),
    ):
        try:
            x, y = load()
        except DataError as err:
            scores[name] = {"missing": str(err)}
            continue
        scores[name] = {"n": len(y), "right": int((reader.recognizer.predict(x) == y).sum())}
        # What `predict` answers for the same 28×28 images: the model, turned where unsure (`digits.read.turns`).
        read = reader.classify(x).argmax(axis=1)
        scores[f"{name}, as the reader reads it"] = {"n": len(y), "right": int((read == y).sum())}
    return scores


def evaluate(
    reader: Reader,
    singles: list,
    numbers: list,
    junk: list,
    timed: list[Path],
    repeat: int,
    real_rows: list[dict],
    data_dir,
) -> dict:
    return {
        "model": str(reader.model_path),
        "temperature": reader.recognizer.temperature,
        "singles": score_singles(reader, singles),
        "numbers": score_numbers(reader, numbers),
        "junk": score_junk(reader, junk),
        "time": time_pictures(reader.read_digit, timed, repeat) if timed else None,
        "time_pages": {  # the other real pictures, by folder, read as pages
            folder: time_pictures(reader.read_page, paths, repeat)
            for folder in ("multi", "pages", "junk")
            if timed and (paths := [row["path"] for row in real_rows if row["set"] == folder])
        },
        "folds": real_sources.summarize(real_rows, real_sources.read_with_reader(reader, real_rows)),
        "public": public_sets(reader, data_dir),
    }


def issue19_markdown(report: dict) -> str:
    """The fold, per-source, junk-by-kind, public-set and peer tables."""
    engines = {Path(name).name: m["folds"] for name, m in report["models"].items() if "folds" in m}
    engines |= {name: p["folds"] for name, p in report.get("peers", {}).items() if "folds" in p}
    if not engines:
        return ""
    rows = [
        "",
        real_sources.markdown(engines),
        "",
        "### Public test sets (argmax over all outputs; a refused digit is wrong)",
        "",
        "| set | " + " | ".join(f"`{Path(n).name}`" for n in report["models"]) + " |",
        "|" + "---|" * (1 + len(report["models"])),
    ]
    first = next(iter(report["models"].values()))
    for name in first.get("public", {}):
        cells = []
        for m in report["models"].values():
            score = m["public"][name]
            cells.append(_pct(score["right"], score["n"]) + f" of {score['n']}" if "n" in score else "not found")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    rows.append("")
    for name, p in report.get("peers", {}).items():
        rows.append(f"- `{name}`: {p.get('version') or p.get('missing')}.")
    rows += [
        "",
        "Peers: Tesseract with a digit whitelist (page segmentation 10 for one digit, 7 for a number, 6 for a "
        "page or junk); RapidOCR (PP-OCR in ONNX Runtime) keeping the digits of what it reads. Junk is refused by "
        "a peer when it reads no digit."
        + (
            f" The peers' figures come from an earlier run (`{report['peers_from']}`)."
            if report.get("peers_from")
            else ""
        )
        + " Temperatures applied: "
        + ", ".join(f"`{Path(n).name}` {m.get('temperature', 1.0)}" for n, m in report["models"].items())
        + ".",
        "",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="run folder or .onnx file (default: the shipped model)")
    parser.add_argument("--compare", nargs="*", default=[], help="more run folders or .onnx files to score beside it")
    parser.add_argument("--real", type=Path, default=REAL, help="folder of real pictures (single/, multi/)")
    parser.add_argument("--singles", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--junk", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timing rounds per picture")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: DIGITS_DATA_DIR or cache)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for realworld.json and realworld.md")
    parser.add_argument(
        "--table-only", action="store_true", help="rewrite realworld.md from realworld.json, measure nothing"
    )
    parser.add_argument("--no-peers", action="store_true", help="skip Tesseract and RapidOCR")
    parser.add_argument(
        "--keep-peers",
        action="store_true",
        help="take the peers' figures from the realworld.json already in --out (they do not depend on our model)",
    )
    args = parser.parse_args(argv)
    if args.table_only:
        write_text(args.out / "realworld.md", markdown(json.loads((args.out / "realworld.json").read_text())))
        return 0

    kept_peers, kept_from = None, None
    if args.keep_peers:
        earlier = json.loads((args.out / "realworld.json").read_text())
        measured_by = f"python benchmarks/realworld.py {earlier['arguments']}".strip()
        kept_peers, kept_from = earlier["peers"], earlier.get("peers_from") or measured_by
    real_singles, real_numbers = real_sets(args.real)
    real_rows = real_sources.pictures(args.real)
    junk = make_junk(args.junk, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="digits-realworld-") as tmp:
        synth_singles, synth_numbers = synthetic_sets(Path(tmp), args.singles, args.lines, args.seed, args.data_dir)
        models = {}
        if len({str(m) for m in [args.model, *args.compare]}) != 1 + len(args.compare):
            parser.error("--compare names a model twice.")
        for index, model in enumerate([args.model, *args.compare]):
            reader = Reader(model)
            timed = [path for path, _, _ in real_singles] if index == 0 else []
            models[str(model or "shipped")] = evaluate(
                reader,
                real_singles + synth_singles,
                real_numbers + synth_numbers,
                junk,
                timed,
                args.repeat,
                real_rows,
                args.data_dir,
            )
    if kept_peers is not None:
        peers_found = kept_peers
    else:
        peers_found = {} if args.no_peers else real_sources.peer_results(real_rows)
    report = how_run() | {
        "arguments": " ".join(sys.argv[1:] if argv is None else argv),
        "models": models,
        "peers": peers_found,
        # The run whose arguments measured the peers, when they were kept from an earlier run.
        "peers_from": kept_from,
    }
    write_results(args.out, "realworld", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
