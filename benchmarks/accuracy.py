"""Accuracy table: train presets over several seeds and tabulate them from their run folders.

    python benchmarks/accuracy.py --presets seed fast mlp --seeds 3 --datasets mnist fashion-mnist
    python benchmarks/accuracy.py --table-only          # re-tabulate existing runs

Runs go to benchmarks/runs/<dataset>/<preset>/s<seed>; a run already finished
is reused, so the table can be built up over several sessions. Every figure in
the output comes from the runs' metrics.json; nothing is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from digits.provenance import machine
from digits.report import results_table

HERE = Path(__file__).parent
RUNS = HERE / "runs"
RESULTS = HERE / "results"
DIGITS = str(Path(sys.executable).parent / "digits")
TARGETS = {"mlp": 0.985, "mlp-aug": 0.990, "cnn": 0.995}


def train_missing(presets: list[str], datasets: list[str], seeds: int) -> None:
    for dataset in datasets:
        for preset in presets:
            for seed in range(seeds):
                run = RUNS / dataset / preset / f"s{seed}"
                if (run / "metrics.json").is_file():
                    continue
                args = ["train", "--preset", preset, "--dataset", dataset, "--seed", str(seed)]
                if run.is_dir():
                    args = ["train", "--resume", str(run)]
                else:
                    args += ["--runs-dir", str(run.parent), "--name", run.name]
                print("$ digits", " ".join(args), flush=True)
                subprocess.run([DIGITS, *args], check=True)


def collect() -> list[dict]:
    rows = []
    for dataset_dir in sorted(p for p in RUNS.glob("*") if p.is_dir()):
        for preset_dir in sorted(p for p in dataset_dir.glob("*") if p.is_dir() and not p.is_symlink()):
            metrics = [json.loads(m.read_text()) for m in sorted(preset_dir.glob("s*/metrics.json"))]
            if not metrics:
                continue
            accuracy = [m["test_accuracy"] for m in metrics]
            seconds = [m["train_seconds"] for m in metrics]
            target = TARGETS.get(preset_dir.name) if dataset_dir.name == "mnist" else None
            rows.append({
                "dataset": dataset_dir.name,
                "preset": preset_dir.name,
                "seeds": len(metrics),
                "median": statistics.median(accuracy),
                "std": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
                "error": f"{100 * (1 - statistics.median(accuracy)):.2f} %",
                "train_s": statistics.median(seconds),
                "params": metrics[0]["parameters"],
                "target": f"≥ {target:.3f} {'✅' if statistics.median(accuracy) >= target and len(metrics) >= 3 else '❌'}" if target else "",
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["seed", "fast", "mlp", "mlp-aug", "cnn"])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--table-only", action="store_true", help="only tabulate the runs already there")
    args = parser.parse_args()
    if not args.table_only:
        train_missing(args.presets, args.datasets, args.seeds)
    rows = collect()
    columns = [("dataset", "dataset"), ("preset", "preset"), ("seeds", "seeds"), ("median", "test accuracy (median)"),
               ("std", "± std"), ("error", "error"), ("train_s", "train s (median)"), ("params", "parameters"),
               ("target", "target")]
    stamp = machine()
    table = results_table(rows, columns)
    footer = (f"\nMachine: {stamp['cpu']}, {stamp['cores']} cores. Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
              f"by `python benchmarks/accuracy.py {' '.join(sys.argv[1:])}` from benchmarks/runs/*/*/s*/metrics.json.\n")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "accuracy.md").write_text(table + footer)
    (RESULTS / "accuracy.json").write_text(json.dumps({"machine": stamp, "rows": rows}, indent=2) + "\n")
    print(table + footer)


if __name__ == "__main__":
    main()
