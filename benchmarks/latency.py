"""Benchmark: one picture through `Reader.read_digit`, against Pillow's decode of the same bytes (issue 19, item 6).

A scanner or a form pipeline mostly hands over small crops; a phone, big
photos. For each set, every picture's bytes are held in memory and timed,
alternating, `--reps` rounds each:

  * Pillow: `Image.open(bytes)` + `load()`, the full decode;
  * the model call alone: `Recognizer.predict_proba` on one 28×28 image;
  * ours: `Reader.read_digit(bytes)`, bytes to answer (decode checks,
    finding the ink, the model call (two when the model is unsure and the
    reader asks about the digit turned, `digits.read.turns`), the decision).

Sets: `--small` generated crops, MNIST test digits as dark ink on white paper
(half at 28×28, half resized to 100×100 PNGs, as `benchmarks/batch.py` makes
them); the real pictures of `--real` (default ../shared/data/real-digits/single)
split by size into small (longer side < 256 px) and large (≥ 1000 px). A set
whose folder is absent is left out.

Per set: the medians over its pictures of each picture's median time (wall
clock, and ours in CPU time too), and ratios: ours over Pillow's decode (the
issue's target: ≤ 3×), by the wall clock and by CPU time, and ours over
decode plus the model call (what a small picture should cost). The CPU is
shared with other jobs on the machines this runs on, so wall-clock times are
noisy (CPU time much less so); the ratios, measured alternating on the same
bytes, are what count.

    python benchmarks/latency.py [--small 200] [--reps 7] [--real DIR]

Writes benchmarks/results/latency.json and latency.md (docs/benchmarks.md's table).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import RESULTS, write_results
from digits.read.reader import Reader
from digits.train import provenance

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real-digits" / "single"
SMALL_REAL, LARGE_REAL = 256, 1000
PICTURES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def crops(count: int, seed: int, data_dir: str | None) -> dict[str, list[bytes]]:
    """MNIST test digits as dark ink on white: `count` at 28×28 and `count` resized to 100×100, seeded."""
    from digits.data import load_test

    x, _ = load_test("mnist", data_dir)
    picked = np.random.default_rng(seed).choice(len(x), 2 * count, replace=False)
    ink_on_paper = [255 - x[i] for i in picked]
    return {
        "28×28 PNG crops": [png(digit) for digit in ink_on_paper[:count]],
        "100×100 PNG crops": [
            png(np.asarray(Image.fromarray(digit).resize((100, 100), Image.Resampling.BICUBIC)))
            for digit in ink_on_paper[count:]
        ],
    }


def real(folder: Path) -> dict[str, list[bytes]]:
    """The real single-digit pictures of `folder`, small and large."""
    if not folder.is_dir():
        return {}
    small, large = [], []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in PICTURES:
            continue
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            longest = max(image.size)
        if longest < SMALL_REAL:
            small.append(data)
        elif longest >= LARGE_REAL:
            large.append(data)
    return {f"real, under {SMALL_REAL} px": small, f"real, {LARGE_REAL} px and over": large}


def decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def seconds(work, argument) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process, every thread) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    work(argument)
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(reader: Reader, pictures: list[bytes], reps: int) -> dict:
    """Each picture's median over `reps` alternating rounds; the medians over the pictures, and the ratios."""
    one = np.zeros((1, 28, 28), dtype=np.float32)
    work = {"pillow": decode, "model": reader.recognizer.predict_proba, "ours": reader.read_digit}
    medians: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in work}
    for data in pictures:
        reader.read_digit(data)  # warm: the first call of a shape pays for allocations
        rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in work}
        for _ in range(reps):
            for name, call in work.items():
                rounds[name].append(seconds(call, one if name == "model" else data))
        for name, times in rounds.items():
            medians[name]["wall"].append(statistics.median(wall for wall, _ in times))
            medians[name]["cpu"].append(statistics.median(cpu for _, cpu in times))

    def ms(name: str, clock: str = "wall") -> float:
        return round(1000 * statistics.median(medians[name][clock]), 3)

    def ratio(clock: str, plus_model: bool = False) -> float:
        ours, pillow, model = (medians[name][clock] for name in ("ours", "pillow", "model"))
        below = [p + m for p, m in zip(pillow, model, strict=True)] if plus_model else pillow
        return round(statistics.median(o / b for o, b in zip(ours, below, strict=True)), 2)

    return {
        "pictures": len(pictures),
        "pillow_ms": ms("pillow"),
        "model_ms": ms("model"),
        "reader_ms": ms("ours"),
        "reader_cpu_ms": ms("ours", "cpu"),
        "ratio_to_decode": ratio("wall"),
        "ratio_to_decode_cpu": ratio("cpu"),
        "ratio_to_decode_and_model": ratio("wall", plus_model=True),
        # A few slow pictures hide under the medians: the totals show them.
        "ratio_of_totals": round(sum(medians["ours"]["wall"]) / sum(medians["pillow"]["wall"]), 2),
    }


def markdown(report: dict) -> str:
    lines = [
        "| pictures | n | Pillow decode | model call | `Reader.read_digit` | its CPU time | ÷ decode | "
        "÷ decode, CPU time | ÷ (decode + model call) | total ÷ decode's total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in report["sets"].items():
        lines.append(
            f"| {name} | {row['pictures']} | {row['pillow_ms']:.2f} ms | {row['model_ms']:.2f} ms | "
            f"{row['reader_ms']:.2f} ms | {row['reader_cpu_ms']:.2f} ms | {row['ratio_to_decode']}× | "
            f"{row['ratio_to_decode_cpu']}× | {row['ratio_to_decode_and_model']}× | {row['ratio_of_totals']}× |"
        )
    machine = report["machine"]
    lines += [
        "",
        "Medians over the pictures of each picture's median of "
        f"{report['reps']} alternating rounds, from the same bytes in memory; ratios are per picture, then "
        "their median, but for the last (all the pictures' times summed). Times are wall-clock but for the CPU time (this process, every thread). The CPU is "
        "shared with other jobs, so the wall-clock times are noisy; the ratios are what count. "
        f"Load average before the run: {report['load_average']}.",
        "",
        f"`{('python benchmarks/latency.py ' + report['arguments']).strip()}` on {machine['cpu']}, "
        f"{machine['cores']} cores.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=200, help="generated crops of each size")
    parser.add_argument("--reps", type=int, default=7, help="alternating rounds per picture")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", type=Path, default=REAL, help="folder of real single-digit pictures")
    parser.add_argument("--model", default=None, help="run folder or .onnx file (default: the shipped model)")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: DIGITS_DATA_DIR or cache)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for latency.json and latency.md")
    args = parser.parse_args(argv)
    sets = crops(args.small, args.seed, args.data_dir) | real(args.real)
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    reader = Reader(args.model)
    report = {
        "arguments": " ".join(sys.argv[1:] if argv is None else argv),
        "reps": args.reps,
        "load_average": load,
        "machine": provenance.machine(),
        "sets": {name: measure(reader, pictures, args.reps) for name, pictures in sets.items() if pictures},
    }
    write_results(args.out, "latency", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
