"""Benchmark: the tutorial article's own script vs `digits`, side by side, in one run.

For each repetition, alternating (so drifting machine load hits both sides):
  (a) the article's script (`reference_article.py`) as a subprocess;
  (b) `digits train --preset fast`;
  (c) `digits train --preset seed` (the article's 25 epochs of batch 32).
Then inference, in this process with ONNX Runtime only (no TensorFlow here):
  (d) `Recognizer.predict_proba` on all 10,000 test images vs the article's
      `model.predict(X_test)` (warm, measured inside its script);
  (e) single-image latency p50/p99;
  (f) cold start, alternating: `digits predict one.png` vs the article's
      `--single` mode (import TensorFlow, load the model, predict one image),
      both as whole-process wall time measured from outside;
  (g) the distance to the limit: NumPy float32 matmul GFLOP/s on this machine
      next to the GFLOP/s that training and inference achieve;
  (h) where the whole `digits train --preset fast` command's time goes
      (imports, data, XLA compile, training, ONNX export, evaluation, plots),
      from the phases the command records when DIGITS_PHASES names a file;
  (i) once: the same preset trained with Keras's `model.fit`
      (`keras_fit.py`, steps_per_execution and jit_compile), so the custom
      training loop's speed is measured, not assumed.

Every figure printed comes from the measurements of this run; epochs, samples
and parameters are read from the run folders and the script's own output.

Usage:
    DIGITS_DATA_DIR=/path/to/mnist .venv/bin/python benchmarks/speed.py [--reps 3] [--quick]

Writes benchmarks/results/speed.json and speed.md (speed-quick.* with --quick).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from digits.atomic import write_json, write_text
from digits.config import TrainConfig
from digits.data import DataError, cache_dir, load_mnist, locate
from digits.runs import RunDir
from digits.train import provenance
from digits.train.dataset import training_count
from digits.train.timing import PHASES_VARIABLE

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REFERENCE = HERE / "reference_article.py"
KERAS_FIT = HERE / "keras_fit.py"
# The phases of one `digits train` in the order they happen; the data load runs beside the TensorFlow import.
SEQUENTIAL_PHASES = (
    "import TensorFlow",
    "provenance",
    "build model",
    "training",
    "save Keras model",
    "ONNX export",
    "evaluation",
    "plots (waited for)",
)
PYTHON = sys.executable
DIGITS = str(Path(sys.executable).parent / "digits")
TEST_IMAGE_INDEX = 1  # the article's example, X_test[1]

# Targets of issue 6, as ratios digits / article (smaller is faster).
TARGETS = {
    "fit": (1 / 25, 1 / 40),  # (target, stretch target)
    "command": (1 / 10, None),
    "epoch": (1 / 2, None),
    "batch_predict": (1 / 10, None),
    "cold_start": (1 / 3, None),
}


# ---------------------------------------------------------------- helpers


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the final table."""
    print(message, file=sys.stderr, flush=True)


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def timed_calls(function, calls: int, warmup: int = 1) -> list[float]:
    """Seconds of `calls` calls of `function()`, after `warmup` untimed calls."""
    for _ in range(warmup):
        function()
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds


def run_process(command: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command to completion; return (whole-process wall seconds, result)."""
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, result


def check(result: subprocess.CompletedProcess, what: str) -> None:
    """Stop the benchmark with the tail of stderr if a required step failed."""
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"{what} failed (exit {result.returncode}):\n{tail}")


def last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def find_data() -> Path:
    """The MNIST folder (DIGITS_DATA_DIR, else the user cache); never downloads."""
    folder = Path(os.environ.get("DIGITS_DATA_DIR") or cache_dir("mnist"))
    try:
        locate("mnist", folder)
    except DataError as err:
        raise SystemExit(
            f"speed.py: MNIST not found ({err}); set DIGITS_DATA_DIR to the folder with the IDX files."
        ) from None
    return folder


def machine_info() -> dict:
    info = provenance.machine()
    info["versions"] = provenance.versions()
    return info


# ---------------------------------------------------------------- training


def run_reference(env: dict, epochs: int, latency_calls: int, save: Path | None) -> dict:
    """The article's script, timed from outside; its own measurements added."""
    command = [PYTHON, str(REFERENCE), "--epochs", str(epochs), "--latency-calls", str(latency_calls)]
    if save:
        command += ["--save", str(save)]
    seconds, result = run_process(command, env)
    check(result, "the article's script")
    measured = last_json_line(result.stdout)
    measured["process_seconds"] = seconds
    # The article's own work only: the benchmark-only extras run after it, in the same process.
    measured["article_process_seconds"] = seconds - measured["extra_seconds"]
    return measured


def samples_per_epoch(config: TrainConfig, total: int = 60000) -> int:
    """Samples `digits train` updates on per epoch: the held-out share removed, ragged tail dropped."""
    n_train = training_count(min(config.train_limit or total, total), config.validation_split)
    return n_train // config.batch_size * config.batch_size


def run_digits_train(env: dict, runs_dir: Path, preset: str, rep: int, epochs: int | None) -> dict:
    """`digits train` timed from outside; epochs, samples and seconds read from the run folder."""
    name = f"bench-{preset}-{rep}"
    command = [DIGITS, "train", "--preset", preset, "--runs-dir", str(runs_dir), "--name", name, "--seed", str(rep)]
    if epochs:
        command += ["--epochs", str(epochs)]
    phases_file = runs_dir / f"{name}-phases.json"
    seconds, result = run_process(command, {**env, PHASES_VARIABLE: str(phases_file)})
    check(result, f"digits train --preset {preset}")
    run = RunDir(runs_dir / name)
    (config, info), metrics = run.read_run(), run.read_metrics()
    return {
        "phases": json.loads(phases_file.read_text()),
        "run_dir": str(run),
        "process_seconds": seconds,
        "train_seconds": metrics["train_seconds"],
        "epochs": config.epochs,
        "epochs_run": metrics["epochs_run"],
        "epoch_seconds": metrics["train_seconds"] / metrics["epochs_run"],
        "batch_size": config.batch_size,
        "validation_split": config.validation_split,
        "train_limit": config.train_limit,
        "samples_per_epoch": samples_per_epoch(config),
        "parameters": info.parameters,
        "test_accuracy": metrics["test_accuracy"],
    }


def training_phase(env: dict, runs_dir: Path, args) -> list[dict]:
    """R repetitions of (article, fast, seed), alternating."""
    reps = []
    for rep in range(1, args.reps + 1):
        log(f"[{rep}/{args.reps}] article script, {args.reference_epochs} epochs ...")
        save = runs_dir / "reference.keras" if rep == 1 else None
        reference = run_reference(env, args.reference_epochs, args.reference_latency_calls, save)
        log(f"    {reference['process_seconds']:.1f} s (fit {reference['fit_seconds']:.1f} s)")
        fast = run_digits_train(env, runs_dir, "fast", rep, None)
        log(f"    digits fast: {fast['process_seconds']:.1f} s (train {fast['train_seconds']:.1f} s)")
        seed = run_digits_train(env, runs_dir, "seed", rep, args.seed_epochs)
        log(f"    digits seed: {seed['process_seconds']:.1f} s (train {seed['train_seconds']:.1f} s)")
        reps.append({"rep": rep, "reference": reference, "fast": fast, "seed": seed})
    return reps


def keras_fit_phase(env: dict) -> list[dict]:
    """`--preset fast` (its own epochs, --quick or not) trained once with `model.fit`, without and with XLA."""
    runs = []
    for jit in (False, True):
        command = [PYTHON, str(KERAS_FIT), "--preset", "fast"] + (["--jit-compile"] if jit else [])
        seconds, result = run_process(command, env)
        check(result, "keras_fit.py")
        runs.append({**last_json_line(result.stdout), "process_seconds": seconds})
        log(f"    model.fit, jit_compile={jit}: fit {runs[-1]['fit_seconds']:.1f} s")
    return runs


def breakdown(training: list[dict]) -> dict:
    """Median seconds of each phase of `digits train --preset fast`, and what the phases leave unaccounted."""
    phases = [r["fast"]["phases"] for r in training]
    names = list(dict.fromkeys(name for p in phases for name in p))
    medians = {name: median([p.get(name) for p in phases]) for name in names}
    outside = [
        r["fast"]["process_seconds"] - sum(r["fast"]["phases"].get(n, 0.0) for n in SEQUENTIAL_PHASES) for r in training
    ]
    medians["interpreter start, CLI and the rest"] = median(outside)
    return medians


# ---------------------------------------------------------------- inference


def inference_phase(run_dir: str, x_test: np.ndarray, batch_calls: int, latency_calls: int) -> dict:
    """Recognizer on 10,000 images (uint8, conversion included) and on single images."""
    from digits.read.model import Recognizer

    recognizer = Recognizer(run_dir)
    batch = timed_calls(lambda: recognizer.predict_proba(x_test), batch_calls)
    images = itertools.count()
    single = timed_calls(lambda: recognizer.predict_proba(x_test[next(images) % len(x_test)]), latency_calls, warmup=10)
    return {"model": run_dir, "predict_10k_seconds": batch, "single_predict_seconds": single}


def cold_start_phase(env: dict, reference_model: Path, run_dir: str, image: Path, reps: int) -> list[dict]:
    """Alternating whole-process runs: article `--single` vs `digits predict` (one untimed warm-up each)."""
    reference_cmd = [PYTHON, str(REFERENCE), "--single", str(reference_model), "--image", str(image)]
    digits_cmd = [DIGITS, "predict", str(image), "--model", run_dir]
    run_process(reference_cmd, env)
    run_process(digits_cmd, env)
    rounds = []
    for rep in range(1, reps + 1):
        seconds, result = run_process(reference_cmd, env)
        check(result, "the article's script --single")
        reference = {**last_json_line(result.stdout), "process_seconds": seconds}
        seconds, result = run_process(digits_cmd, env)
        ours = {"process_seconds": seconds, "returncode": result.returncode, "stdout": result.stdout.strip()}
        if result.returncode != 0:
            ours["error"] = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
            ours["process_seconds"] = None
        log(
            f"    cold start {rep}/{reps}: article {reference['process_seconds']:.2f} s, digits "
            + (f"{seconds:.2f} s" if result.returncode == 0 else f"FAILED: {ours['error']}")
        )
        rounds.append({"rep": rep, "reference": reference, "digits": ours})
    return rounds


def matmul_gflops(n: int = 2048, repeats: int = 5) -> dict:
    """Best NumPy float32 (n x n) @ (n x n) rate, GFLOP/s: the machine's practical ceiling."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    seconds = timed_calls(lambda: a @ b, repeats)
    return {"n": n, "seconds": seconds, "gflops": 2 * n**3 / min(seconds) / 1e9}


# ---------------------------------------------------------------- summary


def gflops(flops: float, seconds: float | None) -> float | None:
    return flops / seconds / 1e9 if seconds else None


def figure(key: str, name: str, reference: float | None, ours: float | None, unit: str = "s") -> dict:
    """One table row: medians, the ratio digits/article, and whether the targets are met."""
    ratio = ours / reference if ours is not None and reference else None
    target, stretch = TARGETS.get(key, (None, None))
    return {
        "key": key,
        "name": name,
        "unit": unit,
        "reference": reference,
        "digits": ours,
        "ratio": ratio,
        "target_ratio": target,
        "stretch_ratio": stretch,
        "met": None if ratio is None or target is None else ratio <= target,
        "stretch_met": None if ratio is None or stretch is None else ratio <= stretch,
    }


def summarize(training: list[dict], inference: dict, cold: list[dict], matmul: dict) -> dict:
    """Medians over repetitions, ratios, latency percentiles and GFLOP/s."""
    pick = lambda side, key: [r[side][key] for r in training]  # noqa: E731
    ref_latencies = [s for r in training for s in r["reference"]["single_predict_seconds"]]
    med = {
        "reference_fit_seconds": median(pick("reference", "fit_seconds")),
        "reference_epoch_seconds": median(pick("reference", "epoch_seconds")),
        "reference_process_seconds": median(pick("reference", "article_process_seconds")),
        "reference_predict_10k_seconds": median(pick("reference", "predict_10k_seconds")),
        "reference_predict_10k_first_seconds": median(pick("reference", "predict_10k_first_seconds")),
        "reference_import_seconds": median(pick("reference", "import_seconds")),
        "reference_test_accuracy": median(pick("reference", "test_accuracy")),
        "reference_single_p50_seconds": percentile(ref_latencies, 50),
        "reference_single_p99_seconds": percentile(ref_latencies, 99),
        "reference_cold_seconds": median([c["reference"]["process_seconds"] for c in cold]),
        "fast_train_seconds": median(pick("fast", "train_seconds")),
        "fast_process_seconds": median(pick("fast", "process_seconds")),
        "fast_test_accuracy": median(pick("fast", "test_accuracy")),
        "seed_epoch_seconds": median(pick("seed", "epoch_seconds")),
        "seed_test_accuracy": median(pick("seed", "test_accuracy")),
        "digits_predict_10k_seconds": median(inference["predict_10k_seconds"]),
        "digits_single_p50_seconds": percentile(inference["single_predict_seconds"], 50),
        "digits_single_p99_seconds": percentile(inference["single_predict_seconds"], 99),
        "digits_cold_seconds": median([c["digits"]["process_seconds"] for c in cold]),
    }
    ref, fast, seed = training[0]["reference"], training[0]["fast"], training[0]["seed"]
    per_epoch = lambda run, samples: 6 * run["parameters"] * samples  # noqa: E731
    rates = {
        "matmul_peak": matmul["gflops"],
        "reference_training": gflops(per_epoch(ref, ref["train_samples"]), med["reference_epoch_seconds"]),
        "fast_training": gflops(
            per_epoch(fast, fast["samples_per_epoch"]), median([r["fast"]["epoch_seconds"] for r in training])
        ),
        "seed_training": gflops(per_epoch(seed, seed["samples_per_epoch"]), med["seed_epoch_seconds"]),
        "reference_inference": gflops(2 * ref["parameters"] * 10_000, med["reference_predict_10k_seconds"]),
        "digits_inference": gflops(2 * fast["parameters"] * 10_000, med["digits_predict_10k_seconds"]),
    }
    figures = [
        figure(
            "fit",
            "training time: article `fit` vs `digits train --preset fast`",
            med["reference_fit_seconds"],
            med["fast_train_seconds"],
        ),
        figure(
            "command",
            "whole command (process wall time)",
            med["reference_process_seconds"],
            med["fast_process_seconds"],
        ),
        figure(
            "epoch",
            "seconds per epoch at batch 32 (`--preset seed`)",
            med["reference_epoch_seconds"],
            med["seed_epoch_seconds"],
        ),
        figure(
            "batch_predict",
            "predict 10,000 test images (warm)",
            med["reference_predict_10k_seconds"],
            med["digits_predict_10k_seconds"],
        ),
        figure(
            "cold_start",
            "cold start: one image, whole process (import + load + predict)",
            med["reference_cold_seconds"],
            med["digits_cold_seconds"],
        ),
        figure(
            "latency_p50",
            "single-image latency p50 (in process)",
            med["reference_single_p50_seconds"],
            med["digits_single_p50_seconds"],
        ),
        figure(
            "latency_p99",
            "single-image latency p99 (in process)",
            med["reference_single_p99_seconds"],
            med["digits_single_p99_seconds"],
        ),
    ]
    accuracies = {
        "reference": pick("reference", "test_accuracy"),
        "fast": pick("fast", "test_accuracy"),
        "seed": pick("seed", "test_accuracy"),
    }
    return {
        "medians": med,
        "gflops": rates,
        "figures": figures,
        "accuracies": accuracies,
        "breakdown": breakdown(training),
    }


# ---------------------------------------------------------------- report


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.0f} µs"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    if ratio >= 1:
        return f"{ratio:.2f}×"
    inverse = 1 / ratio
    return f"1/{inverse:.0f}" if inverse >= 100 else f"1/{inverse:.1f}".removesuffix(".0")


def fmt_target(row: dict) -> tuple[str, str]:
    """(target text, met text) for a row."""
    if row["target_ratio"] is None:
        return "—", ""
    mark = lambda ok: "—" if ok is None else ("✅" if ok else "❌")  # noqa: E731
    target, met = f"≤ {fmt_ratio(row['target_ratio'])}", mark(row["met"])
    if row["stretch_ratio"] is not None:
        target += f" (stretch {fmt_ratio(row['stretch_ratio'])})"
        met += f" (stretch {mark(row['stretch_met'])})"
    return target, met


def fmt_accuracies(values: list[float]) -> str:
    text = f"{100 * statistics.median(values):.2f} %"
    return text + (f" ({100 * min(values):.2f}–{100 * max(values):.2f})" if len(values) > 1 else "")


def breakdown_lines(phases: dict | None, medians: dict) -> list[str]:
    """Where the whole command's time goes, phase by phase."""
    if not phases:
        return []
    lines = [
        "",
        f"Where the whole `digits train --preset fast` command's {fmt_seconds(medians['fast_process_seconds'])} "
        "go (medians; the data load runs beside the TensorFlow import, and the plots are drawn in a second "
        "process beside the ONNX export and the evaluation, so only the wait for them counts):",
        "",
        "| phase | seconds |",
        "|---|---|",
    ]
    for name in ("interpreter start, CLI and the rest", *SEQUENTIAL_PHASES):
        if name in phases:
            lines.append(f"| {name} | {fmt_seconds(phases[name])} |")
    if "compile" in phases:
        lines.append(
            f"| of which training: first compiled call over a typical one (compile) | {fmt_seconds(phases['compile'])} |"
        )
    if "data" in phases:
        lines.append(f"| data, read and verified (beside the import) | {fmt_seconds(phases['data'])} |")
    return lines


def keras_fit_lines(runs: list[dict] | None, loop_seconds: float | None) -> list[str]:
    """The custom loop against Keras's `model.fit` on the same preset, run once."""
    if not runs:
        return []
    lines = [
        "",
        "The custom training loop against Keras's own `model.fit` on the same preset, data, network and "
        "optimizer (`benchmarks/keras_fit.py`, run once each; compile included on both sides):",
        "",
        "| `--preset fast`, training | seconds | val accuracy | loop / fit |",
        "|---|---|---|---|",
    ]
    lines.append(f"| `digits` custom loop (median) | {fmt_seconds(loop_seconds)} | | |")
    for run in runs:
        ratio = loop_seconds / run["fit_seconds"] if loop_seconds else None
        lines.append(
            f"| `model.fit`, steps_per_execution={run['steps_per_execution']}, jit_compile={run['jit_compile']} "
            f"| {fmt_seconds(run['fit_seconds'])} | {run['val_accuracy']:.4f} | {fmt_ratio(ratio)} |"
        )
    return lines


def markdown(report: dict) -> str:
    m, s = report["machine"], report["summary"]
    v = m["versions"]
    settings, first = report["settings"], report["raw"]["training"][0]
    # No heading: docs/benchmarks.md includes this file under its own "Speed" heading.
    lines = ["**QUICK RUN (shortened epochs): not the real figures.**", ""] if report["quick"] else []
    lines += [
        f"The article's script vs `digits`: medians of {settings['reps']} repetition(s), alternating article and `digits`; ratio = digits / article "
        f"(1/10 means ten times faster). Epochs: article {settings['reference_epochs']}, "
        f"`--preset fast` {first['fast']['epochs_run']}, `--preset seed` {first['seed']['epochs_run']}.",
        "",
        "| figure | article | digits | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in s["figures"]:
        target, met = fmt_target(row)
        lines.append(
            f"| {row['name']} | {fmt_seconds(row['reference'])} | {fmt_seconds(row['digits'])} "
            f"| {fmt_ratio(row['ratio'])} | {target} | {met} |"
        )
    lines += breakdown_lines(s.get("breakdown"), s["medians"])
    lines += keras_fit_lines(report["raw"].get("keras_fit"), s["medians"]["fast_train_seconds"])
    acc = s["accuracies"]
    spread = ""
    if len(acc["reference"]) > 1:
        inside = min(acc["reference"]) <= statistics.median(acc["seed"]) <= max(acc["reference"])
        spread = f" (seed median {'inside' if inside else 'outside'} the article's range)"
    g = s["gflops"]
    pct = lambda x: f"{x:.2f} GFLOP/s ({100 * x / g['matmul_peak']:.1f} % of peak)"  # noqa: E731
    cold_failures = [c["digits"]["error"] for c in report["raw"]["cold_start"] if "error" in c["digits"]]
    lines += [
        "",
        f"Test accuracy: article {fmt_accuracies(acc['reference'])}, `digits` fast {fmt_accuracies(acc['fast'])}, "
        f"`digits` seed {fmt_accuracies(acc['seed'])}{spread}.",
        "",
        f"Distance to the limit: NumPy float32 {report['raw']['matmul']['n']}² matmul peaks at "
        f"{g['matmul_peak']:.1f} GFLOP/s here. Training (6 × parameters × samples per epoch): "
        f"article {pct(g['reference_training'])}, `digits` fast {pct(g['fast_training'])}, "
        f"`digits` seed {pct(g['seed_training'])}. Inference on 10,000 images (2 × parameters × images): "
        f"article {pct(g['reference_inference'])}, `digits` {pct(g['digits_inference'])}.",
        "",
        "Notes: the article's whole-command time excludes the benchmark's extra measurements made after its work "
        "in the same process; its 10k predict is a warm call (first call: "
        f"{fmt_seconds(s['medians']['reference_predict_10k_first_seconds'])}); `digits` inference includes the "
        "uint8 → float conversion.",
    ]
    if cold_failures:
        lines += ["", f"`digits predict` failed: {cold_failures[0]}"]
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, TensorFlow "
        f"{v.get('tensorflow') or v.get('tensorflow-cpu')}, Keras {v.get('keras')}, ONNX Runtime {v.get('onnxruntime')}; "
        f"{report['timestamp']}.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="alternating repetitions of the training runs (default 3)")
    parser.add_argument("--cold-reps", type=int, help="cold-start rounds (default 5, 3 with --quick; at least 3)")
    parser.add_argument("--quick", action="store_true", help="2-epoch article and seed runs; writes speed-quick.*")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    args.cold_reps = args.cold_reps or (3 if args.quick else 5)
    if args.reps < 1 or args.cold_reps < 3:
        parser.error("--reps must be at least 1 and --cold-reps at least 3")
    args.reference_epochs = 2 if args.quick else 25
    args.seed_epochs = 2 if args.quick else None
    args.reference_latency_calls = 20 if args.quick else 100
    args.batch_calls = 10
    args.latency_calls = 1000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = find_data()
    env = {**os.environ, "DIGITS_DATA_DIR": str(data_dir)}
    _, (x_test, y_test) = load_mnist(data_dir)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="digits-speed-") as tmp:
        tmp = Path(tmp)
        image = tmp / "one.png"
        from PIL import Image

        Image.fromarray(x_test[TEST_IMAGE_INDEX]).save(image)
        training = training_phase(env, tmp, args)
        log("model.fit, once ...")
        keras_fit = keras_fit_phase(env)
        fast_run = training[0]["fast"]["run_dir"]
        log("inference (ONNX Runtime, in process) ...")
        inference = inference_phase(fast_run, x_test, args.batch_calls, args.latency_calls)
        log("cold start ...")
        cold = cold_start_phase(env, tmp / "reference.keras", fast_run, image, args.cold_reps)
    log("matmul peak ...")
    matmul = matmul_gflops()
    report = {
        "benchmark": "speed",
        "quick": args.quick,
        "timestamp": started,
        "command": [PYTHON, *sys.argv],
        "machine": machine_info(),
        "settings": {
            k: getattr(args, k)
            for k in (
                "reps",
                "cold_reps",
                "reference_epochs",
                "seed_epochs",
                "reference_latency_calls",
                "batch_calls",
                "latency_calls",
            )
        },
        "test_image": {"index": TEST_IMAGE_INDEX, "label": int(y_test[TEST_IMAGE_INDEX])},
        "raw": {
            "training": training,
            "inference": inference,
            "cold_start": cold,
            "matmul": matmul,
            "keras_fit": keras_fit,
        },
    }
    report["summary"] = summarize(training, inference, cold, matmul)
    stem = "speed-quick" if args.quick else "speed"
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    write_json(args.out / f"{stem}.json", report)
    write_text(args.out / f"{stem}.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
