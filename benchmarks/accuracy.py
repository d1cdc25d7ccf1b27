"""Accuracy table: train presets over several seeds and tabulate them from their run folders.

    python benchmarks/accuracy.py --presets seed fast mlp --seeds 3 --datasets mnist fashion-mnist
    python benchmarks/accuracy.py --table-only          # re-tabulate existing runs
    python benchmarks/accuracy.py --presets record --seeds 3 --ensembles record

`--ensembles PRESET ...` also averages each preset's finished seeds into one
model (`digits ensemble`, in benchmarks/runs/<dataset>/<preset>/ensemble-<n>)
and adds its row: its test accuracy, and the members' training time summed.

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
from datetime import UTC, datetime
from pathlib import Path

from _common import results_table
from digits.data import DATASETS
from digits.presets import PRESETS
from digits.runs import RunDir
from digits.train.provenance import machine

HERE = Path(__file__).parent
RUNS = HERE / "runs"
RESULTS = HERE / "results"
DIGITS = str(Path(sys.executable).parent / "digits")
# Issue 3's targets on MNIST: (median test accuracy, most seconds any seed may train).
TARGETS = {"mlp": (0.985, None), "mlp-aug": (0.990, 900), "cnn": (0.995, 900)}
MIN_SEEDS = 3


def train_missing(presets: list[str], datasets: list[str], seeds: int) -> None:
    for dataset in datasets:
        for preset in presets:
            for seed in range(seeds):
                run = RUNS / dataset / preset / f"s{seed}"
                if RunDir(run).has(RunDir.METRICS):
                    continue
                args = ["train", "--preset", preset, "--dataset", dataset, "--seed", str(seed)]
                if run.is_dir():
                    args = ["train", "--resume", str(run)]
                else:
                    args += ["--runs-dir", str(run.parent), "--name", run.name]
                print("$ digits", " ".join(args), flush=True)
                subprocess.run([DIGITS, *args], check=True)


def build_ensembles(presets: list[str], datasets: list[str]) -> None:
    from digits.train.ensemble import build

    for dataset in datasets:
        for preset in presets:
            members = finished(RUNS / dataset / preset)
            out = RUNS / dataset / preset / f"ensemble-{len(members)}"
            if len(members) >= 2 and not RunDir(out).has(RunDir.METRICS):
                print(f"$ digits ensemble {' '.join(str(m) for m in members)} --out {out}", flush=True)
                build(members, out)


def finished(preset_dir: Path) -> list[Path]:
    """The preset's seed runs that finished, in seed order."""
    return [run for run in sorted(preset_dir.glob("s*")) if RunDir(run).has(RunDir.METRICS)]


def ensemble_rows(dataset: str, preset_dir: Path) -> list[dict]:
    rows = []
    for folder in sorted(preset_dir.glob("ensemble-*")):
        if not RunDir(folder).has(RunDir.METRICS):
            continue
        metrics = RunDir(folder).read_metrics()
        members = RunDir(folder).read_info().ensemble or []
        # Members by folder name: the stored path is where they were built, not where a clone has them.
        seconds = sum(RunDir(preset_dir / Path(m["run"]).name).read_metrics()["train_seconds"] for m in members)
        rows.append(
            {
                "dataset": dataset,
                "preset": f"{preset_dir.name}: ensemble of {len(members)}",
                "seeds": len(members),
                "median": metrics["test_accuracy"],
                "std": "",
                "error": f"{100 * (1 - metrics['test_accuracy']):.2f} %",
                "train_s": seconds,
                "train_s_max": seconds,
                "params": metrics["parameters"],
                "target": "",
            }
        )
    return rows


def collect() -> list[dict]:
    rows = []
    # Rows in the package's own order (MNIST first, the article's preset first), not alphabetical.
    for dataset_dir in (RUNS / name for name in DATASETS):
        for preset_dir in (dataset_dir / name for name in PRESETS):
            metrics = [RunDir(run).read_metrics() for run in finished(preset_dir)]
            if not metrics:
                continue
            accuracy = [m["test_accuracy"] for m in metrics]
            seconds = [m["train_seconds"] for m in metrics]
            rows.append(
                {
                    "dataset": dataset_dir.name,
                    "preset": preset_dir.name,
                    "seeds": len(metrics),
                    "median": statistics.median(accuracy),
                    # Fixed point: seed-to-seed spreads are a few 1e-4, which the table would print in e-notation.
                    "std": f"{statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0:.4f}",
                    "error": f"{100 * (1 - statistics.median(accuracy)):.2f} %",
                    "train_s": statistics.median(seconds),
                    "train_s_max": max(seconds),
                    "params": metrics[0]["parameters"],
                    "target": target_verdict(preset_dir.name, accuracy, seconds) if dataset_dir.name == "mnist" else "",
                }
            )
            rows.extend(ensemble_rows(dataset_dir.name, preset_dir))
    return rows


def target_verdict(preset: str, accuracy: list[float], seconds: list[float]) -> str:
    if preset not in TARGETS:
        return ""
    least, most_seconds = TARGETS[preset]
    met = statistics.median(accuracy) >= least and len(accuracy) >= MIN_SEEDS
    text = f"≥ {least:.3f}"
    if most_seconds:
        met = met and max(seconds) <= most_seconds
        text += f" in ≤ {most_seconds} s"
    return f"{text} {'✅' if met else '❌'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Every preset but the smoke test, on every dataset the package knows.
    parser.add_argument("--presets", nargs="+", default=[name for name in PRESETS if name != "tiny"])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--table-only", action="store_true", help="only tabulate the runs already there")
    parser.add_argument(
        "--ensembles", nargs="*", default=[], help="presets whose finished seeds to average into one model"
    )
    args = parser.parse_args()
    if not args.table_only:
        train_missing(args.presets, args.datasets, args.seeds)
        build_ensembles(args.ensembles, args.datasets)
    rows = collect()
    columns = [
        ("dataset", "dataset"),
        ("preset", "preset"),
        ("seeds", "seeds"),
        ("median", "test accuracy (median)"),
        ("std", "± std"),
        ("error", "error"),
        ("train_s", "train s (median)"),
        ("train_s_max", "train s (max)"),
        ("params", "parameters"),
        ("target", "target"),
    ]
    stamp = machine()
    table = results_table(rows, columns)
    footer = (
        f"\nMachine: {stamp['cpu']}, {stamp['cores']} cores. Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"by `python benchmarks/accuracy.py {' '.join(sys.argv[1:])}` from benchmarks/runs/*/*/s*/metrics.json.\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "accuracy.md").write_text(table + footer)
    (RESULTS / "accuracy.json").write_text(json.dumps({"machine": stamp, "rows": rows}, indent=2) + "\n")
    print(table + footer)


if __name__ == "__main__":
    main()
