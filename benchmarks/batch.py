"""Benchmark: reading many pictures (issue 20): `digits.batch` against what users do today, and the limit.

Two generated, seeded sets (written once to a temporary folder):
  * small: `--small` crops, MNIST test digits as dark ink on white paper, half
    28×28 and half 100×100 PNGs;
  * mixed: the same crops, `--phones` phone-size JPEGs (a photo-like digit from
    `digits.synth.photograph`, 1632×1224) and `--pages` pages (lines of digits
    on an A4 sheet at 100 dpi, PNG), shuffled.
`--scale` multiplies every count (0.02 for a quick run); the default is the issue's size.

For each set and repetition, alternating, pictures/s of:
  * ours, `--workers 1` and `--workers 2` (`digits.batch.write`, the code behind
    `digits read --out`, the model already loaded in this process);
  * ours on Dask: a real `dask scheduler` and two `dask worker`s (one thread
    each) on loopback, started once by `.ci/dask` (the workers stay warm);
  * the limit: Pillow decoding the same files in 1 and 2 processes (started beforehand);
  * the loop users write today, `digits read FILE` once per file, on a sample.
"wall" counts the whole call (a pool's start-up included); "steady" the pictures
after the first chunk came back, over the time since. Memory: resident memory of
each worker process, sampled every 0.1 s (peak, and last sample minus the one a quarter in).
Then one Dask worker is killed mid-run (SIGKILL to its nanny and process), and
the run must still give every picture once, with the answers of `--workers 1`.

Usage: DIGITS_DATA_DIR=... nice .venv/bin/python benchmarks/batch.py [--scale 0.02] [--reps 3]
Writes benchmarks/results/batch.json and batch.md (batch-quick.* when --scale < 1).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from digits import batch
from digits.atomic import write_json, write_text
from digits.data import load_mnist
from digits.synth.photograph import make_lines, make_singles
from digits.train import provenance

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DASK_SCRIPT = HERE.parent / ".ci" / "dask"
DIGITS = str(Path(sys.executable).parent / "digits")
PHONE = (1632, 1224)
PAGE = (827, 1169)
TARGETS = {
    "small_2_workers": 1000,
    "reader_vs_decode": 2.0,
    "workers_2_vs_1": 1.8,
    "dask_vs_workers_2": 0.85,
    "vs_loop": 100,
    "worker_mib": 300,
}


def make_sets(folder: Path, scale: float, seed: int) -> dict[str, list[str]]:
    x, y = load_mnist()[1]
    rng = np.random.default_rng(seed)
    small_n, phone_n, page_n = (max(1, round(n * scale)) for n in (20_000, 2_000, 200))
    small = []
    for i, index in enumerate(rng.choice(len(x), small_n)):
        size = 28 if i % 2 == 0 else 100
        path = folder / f"small-{i:05d}.png"
        Image.fromarray(255 - x[index]).resize((size, size), Image.BICUBIC).save(path)
        small.append(str(path))
    phones = []
    for i, (photo, _) in enumerate(make_singles(x, y, phone_n, seed)):
        cover = max(PHONE[0] / photo.width, PHONE[1] / photo.height)
        big = photo.convert("RGB").resize((round(photo.width * cover), round(photo.height * cover)), Image.BICUBIC)
        left, top = (big.width - PHONE[0]) // 2, (big.height - PHONE[1]) // 2
        path = folder / f"phone-{i:04d}.jpg"
        big.crop((left, top, left + PHONE[0], top + PHONE[1])).save(path, quality=90)
        phones.append(str(path))
    pages, lines = [], iter(make_lines(x, y, page_n * 6, seed))
    for i in range(page_n):
        page = Image.new("L", PAGE, 245)
        for row in range(6):
            line = next(lines)[0].convert("L")
            line.thumbnail((PAGE[0] - 100, 150))
            page.paste(line, (50, 60 + row * 180))
        path = folder / f"page-{i:03d}.png"
        page.save(path)
        pages.append(str(path))
    mixed = small + phones + pages
    rng.shuffle(mixed)
    return {"small": small, "mixed": [str(p) for p in mixed]}


@contextlib.contextmanager
def memory(processes):
    """Yield {pid: [MiB, ...]}: the resident memory of `processes()`, sampled every 0.1 s until the block ends."""
    samples, done = {}, threading.Event()

    def sample():
        while not done.wait(0.1):
            for proc in processes():
                with contextlib.suppress(psutil.Error):
                    samples.setdefault(proc.pid, []).append(proc.memory_info().rss / 2**20)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()


def memory_summary(samples: dict) -> dict:
    """Peak over the processes, and drift: last sample minus the one a quarter into the run."""
    sampled = [s for s in samples.values() if s]
    return {
        "workers": len(sampled),
        "peak_mib": round(max((max(s) for s in sampled), default=0), 1),
        "drift_mib": round(max((s[-1] - s[len(s) // 4] for s in sampled), default=0), 1),
    }


def ours(paths, job, **where) -> tuple[dict, list]:
    """One `digits.batch.write` run: wall and steady pictures/s, and the rows."""
    rows, firsts = [], []

    def chunk(results, chunk_rows):
        if not firsts:
            firsts.append((time.perf_counter(), len(chunk_rows)))
        rows.extend(chunk_rows)

    start = time.perf_counter()
    batch.write(paths, None, job, chunk_size=64, on_chunk=chunk, **where)
    end = time.perf_counter()
    first_time, first_count = firsts[0]
    steady = (len(paths) - first_count) / (end - first_time) if end > first_time else float("nan")
    return {"wall": len(paths) / (end - start), "steady": steady}, rows


def _decode(paths):
    for path in paths:
        with Image.open(path) as image:
            image.load()
    return len(paths)


def pillow(paths, processes) -> float:
    """Pictures/s of Pillow alone, once its processes have started (the limit a reader could reach)."""
    chunks = [paths[i : i + 64] for i in range(0, len(paths), 64)]
    if processes == 1:
        start = time.perf_counter()
        list(map(_decode, chunks))
        return len(paths) / (time.perf_counter() - start)
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        list(pool.map(_decode, [paths[:1]] * processes))  # start the processes and import Pillow
        start = time.perf_counter()
        list(pool.map(_decode, chunks))
        return len(paths) / (time.perf_counter() - start)


def loop(paths) -> float:
    start = time.perf_counter()
    for path in paths:
        subprocess.run([DIGITS, "read", path], capture_output=True, check=False)
    return len(paths) / (time.perf_counter() - start)


def dask_processes(folder: Path):
    """The dask worker processes (nannies and their workers) that `.ci/dask` started in `folder`."""
    found = []
    for name in ("worker1", "worker2"):
        try:
            root = psutil.Process(int((folder / f"{name}.pid").read_text()))
            found += [root, *root.children(recursive=True)]
        except (OSError, psutil.Error):
            continue
    return found


def kill_one_worker(paths, job, address, folder: Path, expected) -> dict:
    """SIGKILL worker 1 (nanny and process) after the first chunk: every picture once, same answers."""
    rows, killed = [], []

    def chunk(results, chunk_rows):
        rows.extend(chunk_rows)
        if not killed:
            root = psutil.Process(int((folder / "worker1.pid").read_text()))
            for proc in [*root.children(recursive=True), root]:
                proc.send_signal(signal.SIGKILL)
            killed.append(root.pid)

    batch.write(paths, None, job, dask=address, chunk_size=16, on_chunk=chunk)

    def answers(found):
        return [(r["path"], r["text"], r["status"]) for r in found]

    same = answers(rows) == answers(expected)
    return {
        "pictures": len(paths),
        "rows": len(rows),
        "distinct_paths": len({r["path"] for r in rows}),
        "same_answers_as_workers_1": same,
    }


def median_of(runs: list[dict]) -> dict:
    return {key: round(statistics.median(run[key] for run in runs), 1) for key in runs[0]}


def markdown(report: dict) -> str:
    lines = [
        "| set | ours, 1 worker | ours, 2 workers | Dask, 2 local workers | Pillow decode, 1 / 2 processes "
        "| `digits read` per file | reader's cost / decode's (2 processes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in report["sets"].items():
        m = result["median"]
        ours_cells = " | ".join(
            f"{m[key]['steady']:,.0f} ({m[key]['wall']:,.0f})" for key in ("workers_1", "workers_2", "dask_2")
        )
        lines.append(
            f"| {name} ({result['pictures']:,} pictures) | {ours_cells} "
            f"| {m['pillow_1']:,.0f} / {m['pillow_2']:,.0f} "
            f"| {m['loop']:,.2f} | {m['pillow_2'] / m['workers_2']['steady']:.1f}× |"
        )
    workers_mem, kill, estimate = report["memory"], report["dask_worker_killed"], report["estimate_100m"]
    lines += [
        "",
        "Pictures/s, steady (after the first chunk) and, in brackets, wall (with the pool's start-up).",
        f"Memory per worker (--workers 2, mixed set): peak {workers_mem['peak_mib']} MiB, "
        f"drift {workers_mem['drift_mib']} "
        f"MiB over the run; Dask workers: peak {report['dask_memory']['peak_mib']} MiB.",
        f"A Dask worker killed mid-run: {kill['rows']} rows for {kill['pictures']} pictures, "
        f"{kill['distinct_paths']} distinct, same answers as --workers 1: {kill['same_answers_as_workers_1']}.",
        f"100 million pictures on 50 nodes of {estimate['cores_per_node']} cores at the measured per-core rate "
        f"({estimate['per_core']:,.0f}/s on the mixed set, {estimate['per_core_small']:,.0f}/s on small crops): "
        f"{estimate['hours']:.1f} h (small crops only: {estimate['hours_small']:.1f} h), if the cluster scales "
        f"as linearly as 2 local workers did.",
        "",
        "Targets: " + "; ".join(f"{name} {'met' if ok else 'NOT met'}" for name, ok in report["targets_met"].items()),
        "",
        f"{report['machine']['cpu']}, {report['machine']['cores']} cores, load average "
        f"{report['load_average_before']} before the run"
        f"{'; CPU shared with other jobs' if report['shared'] else ''}; "
        f"{report['reps']} repetitions, alternating, medians. Command: `{report['command']}`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the issue's set sizes (0.02: quick run)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loop-sample", type=int, default=20, help="files read one `digits read` at a time")
    parser.add_argument("--node-cores", type=int, default=16, help="cores per node for the 100-million estimate")
    parser.add_argument("--shared", action="store_true", help="say in the report that the CPU was shared")
    args = parser.parse_args()
    load_average = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    job = batch.job_for("read")
    with tempfile.TemporaryDirectory(prefix="digits-batch-bench-") as tmp:
        work = Path(tmp)
        (work / "pictures").mkdir()
        print("generating the sets", flush=True)
        sets = make_sets(work / "pictures", args.scale, args.seed)
        env = dict(os.environ, PYTHON=sys.executable)
        address = subprocess.run(
            [str(DASK_SCRIPT), "start", str(work / "dask")], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        try:
            me = psutil.Process()
            results, worker_memory, expected_rows = {}, None, {}
            for name, paths in sets.items():
                runs = []
                for rep in range(args.reps):
                    print(f"{name}: repetition {rep + 1}", flush=True)
                    run = {}
                    run["workers_1"], expected = ours(paths, job, workers=1)
                    run["pillow_1"] = pillow(paths, 1)
                    with memory(lambda: me.children(recursive=True)) as sampled:
                        run["workers_2"], _ = ours(paths, job, workers=2)
                    if name == "mixed" and worker_memory is None:
                        worker_memory = memory_summary(sampled)
                    run["pillow_2"] = pillow(paths, 2)
                    with memory(lambda: dask_processes(work / "dask")) as dask_sampled:
                        run["dask_2"], on_dask = ours(paths, job, dask=address)
                    assert [r["text"] for r in on_dask] == [r["text"] for r in expected], "Dask answers differ"
                    run["loop"] = loop(paths[: args.loop_sample])
                    runs.append(run)
                    expected_rows[name] = expected
                    print(f"  {run}", flush=True)
                results[name] = {
                    "pictures": len(paths),
                    "runs": runs,
                    "median": {
                        key: median_of([r[key] for r in runs])
                        if isinstance(runs[0][key], dict)
                        else round(statistics.median(r[key] for r in runs), 2)
                        for key in runs[0]
                    },
                }
            dask_memory = memory_summary(dask_sampled)
            print("killing a Dask worker mid-run", flush=True)
            killed = kill_one_worker(sets["small"], job, address, work / "dask", expected_rows["small"])
        finally:
            subprocess.run([str(DASK_SCRIPT), "stop", str(work / "dask")], env=env, check=False)
    small, mixed = results["small"]["median"], results["mixed"]["median"]
    per_core, per_core_small = mixed["workers_1"]["steady"], small["workers_1"]["steady"]
    nodes = 50 * args.node_cores
    estimate = {
        "cores_per_node": args.node_cores,
        "per_core": per_core,
        "per_core_small": per_core_small,
        "hours": 1e8 / (per_core * nodes) / 3600,
        "hours_small": 1e8 / (per_core_small * nodes) / 3600,
    }
    one, two, dask_two = (mixed[key]["steady"] for key in ("workers_1", "workers_2", "dask_2"))
    targets_met = {
        f"small crops ≥ {TARGETS['small_2_workers']:,}/s on 2 workers": small["workers_2"]["steady"]
        >= TARGETS["small_2_workers"],
        f"reader ≤ {TARGETS['reader_vs_decode']}× decode (mixed)": mixed["pillow_2"] / two
        <= TARGETS["reader_vs_decode"],
        f"2 workers ≥ {TARGETS['workers_2_vs_1']}× 1": two >= TARGETS["workers_2_vs_1"] * one,
        f"Dask ≥ {TARGETS['dask_vs_workers_2']}× 2 workers": dask_two >= TARGETS["dask_vs_workers_2"] * two,
        f"≥ {TARGETS['vs_loop']}× the per-file loop (small)": small["workers_2"]["steady"]
        >= TARGETS["vs_loop"] * small["loop"],
        f"≤ {TARGETS['worker_mib']} MB per worker": worker_memory["peak_mib"] <= TARGETS["worker_mib"],
        "a killed Dask worker loses nothing": killed["rows"] == killed["distinct_paths"] == killed["pictures"]
        and killed["same_answers_as_workers_1"],
    }
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/batch.py", *sys.argv[1:]]),
        "machine": provenance.machine(),
        "versions": provenance.versions(),
        "load_average_before": load_average,
        "shared": args.shared,
        "reps": args.reps,
        "scale": args.scale,
        "sets": results,
        "memory": worker_memory,
        "dask_memory": dask_memory,
        "dask_worker_killed": killed,
        "estimate_100m": estimate,
        "targets": TARGETS,
        "targets_met": targets_met,
    }
    stem = "batch" if args.scale >= 1 else "batch-quick"
    RESULTS.mkdir(exist_ok=True)
    write_json(RESULTS / f"{stem}.json", report)
    write_text(RESULTS / f"{stem}.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
