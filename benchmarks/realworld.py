"""Benchmark: reading realistic photos of digits, naive resize vs our pipeline.

Generates the seeded realistic set from MNIST **test** digits
(`digits.realistic`), writes it to a temporary folder as PNG and JPEG files,
reads every file back through `digits.preprocess.load_image` (the path
`digits predict` takes) and reports:

  * singles: accuracy of (a) the naive baseline (grey, resize to 28×28) and
    (b) `preprocess.prepare`, next to the model's accuracy on clean MNIST;
  * lines: exact whole-number accuracy of `preprocess.segment` + classify,
    next to a naive reader that is even told the digit count and cuts the
    line into that many equal slices;
  * the ceiling: the same model on the very same MNIST digits, clean.

Usage:
    python benchmarks/realworld.py --model runs/<run> [--singles 2000 --lines 300 --seed 0]

Writes benchmarks/results/realworld.json and benchmarks/results/realworld.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from digits import preprocess
from digits.atomic import write_json, write_text
from digits.data import load_mnist
from digits.realistic import write_set

RESULTS = Path(__file__).resolve().parent / "results"


def _classify(recognizer, images: list[np.ndarray], batch: int = 512) -> np.ndarray:
    """Probabilities (N, 10) for a list of (28, 28) images."""
    if not images:
        return np.zeros((0, 10), dtype=np.float32)
    stack = np.stack(images).astype(np.float32)
    return np.concatenate([recognizer.predict_proba(stack[i : i + batch]) for i in range(0, len(stack), batch)])


def _naive_line(image, count: int) -> list[np.ndarray]:
    """The naive reader, told the digit count: equal vertical slices, each squashed."""
    width, height = image.size
    cuts = np.linspace(0, width, count + 1).round().astype(int)
    return [preprocess.naive(image.crop((int(a), 0, int(b), height))) for a, b in zip(cuts[:-1], cuts[1:])]


def ceiling(clean_correct: np.ndarray, labels: dict) -> dict:
    """What a perfect pipeline would score: the model on the same digits, clean from MNIST.

    `clean_correct` says, per MNIST test index, whether the model reads the
    original digit right. The realistic set records which digits it used.
    """
    singles = [entry["mnist_index"] for entry in labels["singles"]]
    lines = [entry["mnist_index"] for entry in labels["lines"]]
    return {
        "singles_clean_accuracy": round(float(clean_correct[singles].mean()), 4) if singles else 0.0,
        "lines_clean_exact": round(float(np.mean([clean_correct[i].all() for i in lines])), 4) if lines else 0.0,
    }


def evaluate(recognizer, folder: Path, labels: dict) -> dict:
    """Score naive and pipeline on a realistic set written by `write_set`."""
    singles = labels["singles"]
    naive_images, prepared_images, has_ink = [], [], []
    prepare_s = 0.0
    for entry in singles:
        image = preprocess.load_image(folder / entry["file"])
        naive_images.append(preprocess.naive(image))
        t0 = time.perf_counter()
        prepared = preprocess.prepare(image)
        prepare_s += time.perf_counter() - t0
        prepared_images.append(prepared.image)
        has_ink.append(prepared.has_ink)
    truth = np.array([entry["label"] for entry in singles])
    naive_pred = _classify(recognizer, naive_images).argmax(axis=1)
    probs = _classify(recognizer, prepared_images)
    pipe_pred = np.where(has_ink, probs.argmax(axis=1), -1)
    prepare_ms = 1000 * prepare_s / max(len(singles), 1)

    lines = labels["lines"]
    exact = naive_exact = count_ok = digits_ok = digits_total = 0
    segment_s = 0.0
    failures = []
    for entry in lines:
        image = preprocess.load_image(folder / entry["file"])
        text = entry["label"]
        t0 = time.perf_counter()
        segments = preprocess.segment(image)
        segment_s += time.perf_counter() - t0
        read = "".join(str(d) for d in _classify(recognizer, [s.image for s in segments]).argmax(axis=1))
        exact += read == text
        if len(read) == len(text):
            count_ok += 1
            digits_ok += sum(a == b for a, b in zip(read, text))
            digits_total += len(text)
        elif len(failures) < 20:
            failures.append({"file": entry["file"], "label": text, "read": read})
        naive_read = "".join(str(d) for d in _classify(recognizer, _naive_line(image, len(text))).argmax(axis=1))
        naive_exact += naive_read == text

    def share(k: int, n: int) -> float:
        return round(k / n, 4) if n else 0.0

    return {
        "singles": {
            "count": len(singles),
            "naive_accuracy": share(int((naive_pred == truth).sum()), len(truth)),
            "pipeline_accuracy": share(int((pipe_pred == truth).sum()), len(truth)),
            "no_digit_found": int(len(has_ink) - sum(has_ink)),
            "prepare_ms_mean": round(prepare_ms, 2),
        },
        "lines": {
            "count": len(lines),
            "pipeline_exact": share(exact, len(lines)),
            "naive_exact_told_count": share(naive_exact, len(lines)),
            "digit_count_correct": share(count_ok, len(lines)),
            "per_digit_accuracy_when_count_correct": share(digits_ok, digits_total),
            "segment_ms_mean": round(1000 * segment_s / max(len(lines), 1), 2),
            "count_failures": failures,
        },
    }


def markdown(report: dict) -> str:
    s, l, c = report["singles"], report["lines"], report["ceiling"]
    pct = lambda v: f"{100 * v:.2f} %"  # noqa: E731
    rows = [
        "# Real-world input benchmark",
        "",
        f"Model: `{report['model']}` (clean MNIST test accuracy {pct(report['clean_mnist_accuracy'])}).  ",
        f"Realistic set: seed {report['seed']}, {s['count']} single digits, {l['count']} lines of 2–5 digits, "
        "rendered from MNIST test digits only (`digits.realistic`), read back from PNG/JPEG files.",
        "",
        "| task | naive resize | `digits` pipeline | ceiling: same digits, clean |",
        "|---|---|---|---|",
        f"| single digit accuracy | {pct(s['naive_accuracy'])} | {pct(s['pipeline_accuracy'])} "
        f"| {pct(c['singles_clean_accuracy'])} |",
        f"| whole number exact match | {pct(l['naive_exact_told_count'])} (told the count) "
        f"| {pct(l['pipeline_exact'])} | {pct(c['lines_clean_exact'])} |",
        "",
        "The ceiling is the model on the very same MNIST digits, clean: what a perfect pipeline would reach. "
        "The gap below it is what rendering (rotation, pens, blur, light, JPEG) and preprocessing cost.",
        "",
        f"Pipeline details: {s['no_digit_found']} singles reported as \"no digit found\"; "
        f"digit count right on {pct(l['digit_count_correct'])} of lines; per-digit accuracy on those "
        f"{pct(l['per_digit_accuracy_when_count_correct'])}; prepare {s['prepare_ms_mean']} ms/image, "
        f"segment {l['segment_ms_mean']} ms/line.",
        "",
        f"Run on {report['machine']}, Python {report['python']}.",
        "",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="run folder or .onnx file for digits.inference.Recognizer")
    parser.add_argument("--singles", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: DIGITS_DATA_DIR or cache)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for realworld.json and realworld.md")
    args = parser.parse_args(argv)

    from digits.inference import Recognizer  # written by the inference side of the project

    recognizer = Recognizer(args.model)
    (_, _), (x_test, y_test) = load_mnist(args.data_dir)
    clean = _classify(recognizer, list(x_test.astype(np.float32) / 255)).argmax(axis=1)
    clean_correct = clean == y_test

    with tempfile.TemporaryDirectory(prefix="digits-realworld-") as tmp:
        labels_path = write_set(tmp, x_test, y_test, args.singles, args.lines, args.seed)
        labels = json.loads(labels_path.read_text())
        report = {
            "model": str(args.model),
            "seed": args.seed,
            "clean_mnist_accuracy": round(float(clean_correct.mean()), 4),
            **evaluate(recognizer, Path(tmp), labels),
            "ceiling": ceiling(clean_correct, labels),
            "machine": platform.platform(),
            "python": platform.python_version(),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "realworld.json", report)
    write_text(args.out / "realworld.md", markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
