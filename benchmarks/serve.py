"""Benchmark: `digits serve` against the tutorial server, under load and under attack, in one run.

Both servers run on loopback with the load generators (`hey` and `wrk`, from
apt) on the same machine. Load, alternating between the servers for each
repetition so that drifting machine load hits both, after a warm-up each:
  (a) a 28×28 PNG at 32 clients: `digits` (the shipped model, or `--model`)
      for `--requests` POSTs, the tutorial server (`tutorial_server.py`:
      FastAPI, naive resize, Keras `model.predict` per request, with the
      Keras model of `--tutorial-model`) for `--anchor-seconds`; then the
      same with `wrk` for `--wrk-seconds` each;
  (b) a 2-megapixel photo (a real one from ../shared/data/real-digits when
      present, resized to 2 MP; else a synthetic one) at 8 clients, the same
      way, with each worker's share of the answers (from /metrics).
Then, against `digits` only:
  (c) the 28×28 PNG at 256 clients, with `hey` while `/health` is probed
      every 50 ms, and with `wrk`;
  (d) resident memory of all its processes before and after `--rss-requests`
      more 28×28 POSTs;
  (e) each attack of issues 13 and 21 while `/health` is probed every 50 ms:
      its latency, the server's peak resident memory, whether it still
      answers afterwards, and how much it logged.

Every figure comes from this run: req/s counts the answers `hey` got over
the span from the first request sent to the last answer received; p50/p99
are of those answers' times; errors are requests not answered 200.

Usage:
    DIGITS_DATA_DIR=... .venv/bin/python benchmarks/serve.py --tutorial-model RUN [--model RUN] [--reps 3] [--quick]

Writes benchmarks/results/serve.json and serve.md (serve-quick.* with --quick);
`benchmarks/update_readme.py` copies serve.md into the README.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from digits.atomic import write_json, write_text
from digits.read.model import resolve_model
from digits.runs import RunDir
from digits.train import provenance

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REAL_PHOTOS = HERE.parent.parent / "shared" / "data" / "real-digits" / "single"
DIGITS = str(Path(sys.executable).parent / "digits")
BOUNDARY = "digitsbenchmarkboundary"

# Issue 21's targets (2-core machine, loopback, client on the same machine).
TARGETS = {
    "png_rps": 5000,
    "png_ratio": 100,
    "png_p99_ms": 20,
    "png256_share": 0.9,
    "png256_errors": 0.01,
    "health_ms": 100,
    "photo_p99_ms": 300,
    "worker_share": (0.3, 0.7),
    "rss_growth": 0.10,
    "attack_health_ms": 100,
    "attack_rss_mib": 1024,
}


# --------------------------------------------------------------------------
# Servers and their processes
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(
    command: list[str], url: str, log: Path, env: dict | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{command[0]} exited at startup: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return process
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within 180 s") from None
            time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def process_tree(pid: int) -> list[int]:
    """The pid and all its descendants (uvicorn's workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        queue.extend(children.get(current, []))
    return tree


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants, MiB."""
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


# --------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------


def multipart(data: bytes, filename: str, content_type: str) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def mnist_png() -> bytes:
    from digits.data import load_mnist

    (_, _), (x_test, _) = load_mnist()
    return encode(Image.fromarray(x_test[1]), "PNG")


def two_megapixel_photo() -> tuple[bytes, str]:
    """A real phone photo of a digit resized to 2 MP when the real-digits set is here, else a synthetic one."""
    size = (1632, 1224)
    photos = sorted(REAL_PHOTOS.glob("*.JPEG")) or sorted(REAL_PHOTOS.glob("*.jpg"))
    if photos:
        picture = Image.open(photos[0]).convert("RGB")
        if picture.height > picture.width:
            size = size[::-1]
        return encode(picture.resize(size, Image.LANCZOS), "JPEG", quality=90), f"real photo {photos[0].name}"
    rng = np.random.default_rng(0)
    paper = (np.full(size[::-1], 215) + rng.normal(0, 6, size[::-1])).clip(0, 255).astype(np.uint8)
    picture = Image.fromarray(paper).convert("RGB")
    ImageDraw.Draw(picture).line([(820, 300), (780, 950)], fill=(40, 40, 50), width=40)
    return encode(picture, "JPEG", quality=90), "synthetic photo"


def rings_png() -> bytes:
    """A 32×32 PNG of concentric rings (248 bytes): small enough to be decoded on the event loop, but not
    in MNIST's format, so analysed, which must happen on the decode thread (it once took 2 s and 300 MiB)."""
    rows, cols = np.indices((32, 32))
    rings = np.where(np.hypot(rows - 16, cols - 16).astype(int) % 2 == 0, 0, 255).astype(np.uint8)
    return encode(Image.fromarray(rings), "PNG")


def sixteen_bit_png() -> bytes:
    """Issue 13's first attack: a small 16-bit PNG of 6300×6300 pixels."""
    picture = Image.new("I;16", (6300, 6300), 60000)
    ImageDraw.Draw(picture).line([(3150, 1200), (3100, 5000)], fill=2000, width=300)
    return encode(picture, "PNG", optimize=True)


def thousand_scan_jpeg() -> bytes:
    """Issue 13's second attack: a progressive JPEG whose last scan repeats 1,000 times."""
    picture = Image.new("RGB", (1024, 1024), "white")
    ImageDraw.Draw(picture).line([(512, 100), (500, 900)], fill="black", width=60)
    jpeg = encode(picture, "JPEG", progressive=True, quality=90)
    last, end = jpeg.rindex(b"\xff\xda"), jpeg.rindex(b"\xff\xd9")
    return jpeg[:end] + jpeg[last:end] * 1000 + jpeg[end:]


# --------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------


def hey(
    url: str,
    body: Path,
    clients: int,
    requests: int | None = None,
    seconds: float | None = None,
    content_type: str = f"multipart/form-data; boundary={BOUNDARY}",
) -> dict:
    """Run `hey`; its per-request CSV -> answers/s, p50/p99 ms, errors."""
    command = ["hey", "-c", str(clients), "-m", "POST", "-t", "30", "-o", "csv", "-T", content_type, "-D", str(body)]
    if seconds is not None:
        command += ["-z", f"{seconds:g}s"]
    if requests is not None and seconds is None:
        command += ["-n", str(requests)]
    output = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    rows = [row for row in csv.DictReader(io.StringIO(output)) if row.get("status-code")]
    times = np.array([float(row["response-time"]) for row in rows])
    starts = np.array([float(row["offset"]) for row in rows])
    ok = sum(row["status-code"] == "200" for row in rows)
    # hey gives each client requests // clients of them; hey itself counts the ones that got no answer.
    sent = (requests // clients) * clients if requests is not None and seconds is None else len(rows)
    span = float((starts + times).max() - starts.min()) if len(rows) else float("nan")
    return {
        "requests": sent,
        "answered": len(rows),
        "ok": ok,
        "errors": sent - ok,
        "rps": round(len(rows) / span, 1) if len(rows) else 0.0,
        "p50_ms": round(float(np.percentile(times, 50)) * 1000, 2) if len(rows) else None,
        "p99_ms": round(float(np.percentile(times, 99)) * 1000, 2) if len(rows) else None,
    }


def wrk(url: str, body: Path, clients: int, seconds: float) -> dict:
    """Run `wrk` for `seconds` with `clients` connections POSTing `body`: answers/s, p50/p99 ms, errors."""
    script = body.with_suffix(".lua")
    script.write_text(
        f'local f = io.open("{body}", "rb")\nwrk.body = f:read("*a")\nf:close()\nwrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "multipart/form-data; boundary={BOUNDARY}"\n'
    )
    command = [
        "wrk",
        "-t",
        "2",
        "-c",
        str(clients),
        "-d",
        f"{seconds:g}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def figure(pattern: str, default: float = 0.0) -> float:
        found = re.search(pattern, output, re.MULTILINE)
        return float(found.group(1)) if found else default

    def ms(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
        return (
            round(float(found.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[found.group(2)], 2)
            if found
            else None
        )

    requests = int(figure(r"^\s+(\d+) requests in"))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(figure(r"Non-2xx or 3xx responses: (\d+)")) + (
        sum(map(int, socket_errors.groups())) if socket_errors else 0
    )
    return {
        "requests": requests,
        "errors": errors,
        "rps": figure(r"^Requests/sec:\s+([\d.]+)"),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
    }


def worker_counts(url: str) -> dict[str, float]:
    """Requests each worker process has answered, from /metrics (`digits_worker_requests_total`), on a page made
    now: a worker makes its page at most once per `SCRAPE_EVERY` seconds, which are let pass first."""
    from digits.serve.metrics import SCRAPE_EVERY

    time.sleep(SCRAPE_EVERY)
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {
        pid: float(count)
        for pid, count in re.findall(r'^digits_worker_requests_total\{worker="(\d+)"\} (\S+)$', text, re.MULTILINE)
    }


def load_test(
    name: str,
    servers: dict,
    body: Path,
    clients: int,
    requests: int,
    anchor_seconds: float,
    reps: int,
    wrk_seconds: float = 0,
) -> dict:
    results = {side: [] for side in servers}
    wrk_results = {side: [] for side in servers} if wrk_seconds else {}
    for rep in range(reps):
        order = list(servers) if rep % 2 == 0 else list(servers)[::-1]
        for side in order:
            url = f"{servers[side]}/predict"
            hey(url, body, clients, requests=4 * clients)  # warm-up: every connection, every worker
            seconds = anchor_seconds if side == "tutorial" else None
            before = worker_counts(servers[side]) if side == "digits" else {}
            result = hey(url, body, clients, requests=requests, seconds=seconds)
            if side == "digits":  # each worker's share of this run's answers
                counts = {pid: n - before.get(pid, 0) for pid, n in worker_counts(servers[side]).items()}
                total = sum(counts.values()) or 1
                result["worker_shares"] = sorted(round(n / total, 3) for n in counts.values() if n)
            results[side].append(result)
            print(f"  {name} rep {rep + 1} {side}: {result}", flush=True)
            if wrk_seconds:
                wrk_results[side].append(wrk(url, body, clients, anchor_seconds if side == "tutorial" else wrk_seconds))
                print(f"  {name} rep {rep + 1} {side} (wrk): {wrk_results[side][-1]}", flush=True)
    summary = {
        side: {key: statistics.median([r[key] for r in runs]) for key in ("rps", "p50_ms", "p99_ms", "errors")}
        for side, runs in results.items()
    }
    summary["ratio"] = round(summary["digits"]["rps"] / summary["tutorial"]["rps"], 1)
    report = {"runs": results, "median": summary}
    if wrk_seconds:
        report["wrk"] = {
            side: {key: statistics.median([r[key] for r in runs]) for key in ("rps", "p99_ms", "errors")}
            for side, runs in wrk_results.items()
        }
        report["wrk"]["ratio"] = round(report["wrk"]["digits"]["rps"] / max(report["wrk"]["tutorial"]["rps"], 0.1), 1)
        report["wrk_runs"] = wrk_results
    return report


def crowd(url: str, pid: int, body: Path, clients: int, requests: int, wrk_seconds: float) -> dict:
    """The 28×28 PNG at `clients` clients against `digits` alone: hey with /health probed, then wrk."""
    with HealthProbe(url, pid) as probe:
        result = hey(f"{url}/predict", body, clients, requests=requests)
    latencies = probe.latencies or [float("nan")]
    result.update(
        health_p99_ms=round(float(np.percentile(latencies, 99)), 1),
        health_max_ms=round(max(latencies), 1),
        health_failures=probe.failures,
        wrk=wrk(f"{url}/predict", body, clients, wrk_seconds),
    )
    print(f"  {clients} clients: {result}", flush=True)
    return result


# --------------------------------------------------------------------------
# Attacks
# --------------------------------------------------------------------------


class HealthProbe:
    """GET /health every 50 ms on a fresh connection, and the server's resident memory, until stopped."""

    def __init__(self, url: str, pid: int):
        self.url, self.pid = url, pid
        self.latencies: list[float] = []
        self.failures = 0
        self.peak_rss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                    response.read()
                self.latencies.append((time.perf_counter() - started) * 1000)
            except OSError:
                self.failures += 1
            self.peak_rss = max(self.peak_rss, rss_mib(self.pid))
            self._stop.wait(0.05)


def raw_requests(url: str, payload: bytes, count: int, threads: int = 8) -> None:
    host, port = url.removeprefix("http://").split(":")

    def send(n: int) -> None:
        for _ in range(n):
            try:
                with socket.create_connection((host, int(port)), timeout=10) as connection:
                    connection.sendall(payload)
                    while connection.recv(65536):
                        pass
            except OSError:
                pass

    workers = [threading.Thread(target=send, args=(count // threads,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def held_connections(url: str, payload: bytes, count: int, hold_seconds: float) -> None:
    """Open `count` connections that each send `payload` and then nothing, hold them, close them."""
    host, port = url.removeprefix("http://").split(":")
    held = []
    try:
        for _ in range(count):
            try:
                connection = socket.create_connection((host, int(port)), timeout=10)
                connection.sendall(payload)
                held.append(connection)
            except OSError:
                break
        time.sleep(hold_seconds)
    finally:
        for connection in held:
            connection.close()


def corrupt_exif_jpeg() -> bytes:
    """Issue 21's warning attack: a JPEG whose EXIF points past its end (Pillow warns twice reading it)."""
    entries = b"".join(struct.pack(">HHII", 0x0112, 3, 0xFFFFFFFF, 0) for _ in range(5))
    return encode(
        Image.new("L", (64, 64), 255), "JPEG", exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x05" + entries
    )


def large_v2_request() -> bytes:
    """Issue 21's /v2 attack: JSON of 256 images, each value written out long (4 MB; refused past 1 MiB)."""
    data = ",".join(["0.0039215686274509803"] * (256 * 28 * 28))
    return f'{{"inputs": [{{"name": "image", "datatype": "FP32", "shape": [256, 28, 28], "data": [{data}]}}]}}'.encode()


def attacks(url: str, pid: int, log: Path, work: Path, quick: bool) -> list[dict]:
    scale = 4 if quick else 1
    bodies = {
        "16bit": work / "16bit.body",
        "scans": work / "scans.body",
        "exif": work / "exif.body",
        "v2": work / "v2.body",
    }
    bodies["16bit"].write_bytes(multipart(sixteen_bit_png(), "deep.png", "image/png"))
    bodies["scans"].write_bytes(multipart(thousand_scan_jpeg(), "scans.jpg", "image/jpeg"))
    bodies["exif"].write_bytes(multipart(corrupt_exif_jpeg(), "exif.jpg", "image/jpeg"))
    bodies["v2"].write_bytes(large_v2_request())
    bodies["rings"] = work / "rings.body"
    bodies["rings"].write_bytes(multipart(rings_png(), "rings.png", "image/png"))
    bodies["10mib"] = work / "10mib.body"  # the largest upload allowed, of bytes that are no picture
    bodies["10mib"].write_bytes(multipart(bytes(10 * 2**20 - 400), "big.png", "image/png"))
    plans = [
        (
            f"a 16-bit PNG of 6300×6300 ({bodies['16bit'].stat().st_size // 1024} KB), 6 at once",
            lambda: hey(f"{url}/predict", bodies["16bit"], 6, requests=24 // scale),
        ),
        (
            "a progressive JPEG of 1,000 scans, 8 at once",
            lambda: hey(f"{url}/predict", bodies["scans"], 8, requests=400 // scale),
        ),
        (
            "2,000 connections sending half their headers",
            lambda: held_connections(url, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ", 2000 // scale, 5),
        ),
        (
            "1,000 bodies shorter than their Content-Length",
            lambda: held_connections(
                url, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n--x", 1000 // scale, 5
            ),
        ),
        (
            "2,000 malformed requests (bad Content-Length, 3,000 headers, no Host)",
            lambda: [
                raw_requests(url, payload, 700 // scale)
                for payload in (
                    b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
                    b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 3000 + b"\r\n",
                    b"GET /health HTTP/1.1\r\n\r\n",
                )
            ],
        ),
        (
            "2,000 idle connections, each a CRLF after its answer (issue 21)",
            lambda: held_connections(url, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n\r\n", 2000 // scale, 5),
        ),
        (
            "1,000 answers of 413, each followed by one body byte (issue 21)",
            lambda: held_connections(
                url, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n-", 1000 // scale, 5
            ),
        ),
        (
            f"{bodies['v2'].stat().st_size // 10**6} MB /v2 JSON requests of 256 images, 32 at once (issue 21)",
            lambda: hey(
                f"{url}/v2/models/digits/infer",
                bodies["v2"],
                32,
                requests=128 // scale,
                content_type="application/json",
            ),
        ),
        (
            "32 uploads of 10 MiB at once (issue 21)",
            lambda: hey(f"{url}/predict", bodies["10mib"], 32, requests=128 // scale),
        ),
        (
            "a 32×32 PNG of one-pixel rings (small, but not MNIST's format), 8 at once",
            lambda: hey(f"{url}/predict", bodies["rings"], 8, requests=16 // scale),
        ),
        (
            "1,000 JPEGs with a corrupt EXIF, 8 at once (issue 21: Pillow's warnings)",
            lambda: hey(f"{url}/predict", bodies["exif"], 8, requests=1000 // scale),
        ),
    ]
    results = []
    for name, attack in plans:
        log_before = log.stat().st_size
        with HealthProbe(url, pid) as probe:
            time.sleep(0.3)
            outcome = attack()
            time.sleep(0.3)
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=10):
                alive = True
        except OSError:
            alive = False
        latencies = probe.latencies or [float("nan")]
        result = {
            "attack": name,
            "health_probes": len(probe.latencies),
            "health_failures": probe.failures,
            "health_p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "health_p99_ms": round(float(np.percentile(latencies, 99)), 1),
            "health_max_ms": round(max(latencies), 1),
            "peak_rss_mib": round(probe.peak_rss),
            "alive_after": alive,
            "log_bytes": log.stat().st_size - log_before,
            "answers": {k: outcome[k] for k in ("requests", "ok", "errors")} if isinstance(outcome, dict) else None,
        }
        print(f"  attack: {result}", flush=True)
        results.append(result)
    return results


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def markdown(report: dict) -> str:
    load = report["load"]
    lines = [
        "# Serving: `digits serve` against the tutorial server",
        "",
        "| picture, clients | server | req/s | p50 ms | p99 ms | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for key, label in (("png28", "28×28 PNG, 32"), ("photo", "2 MP photo, 8")):
        for side in ("digits", "tutorial"):
            m = load[key]["median"][side]
            lines.append(
                f"| {label} | {side} | {m['rps']:,.0f} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} | {m['errors']:.0f} |"
            )
        lines.append(f"| {label} | ratio | **{load[key]['median']['ratio']}×** | | | |")
        if "wrk" in load[key]:
            w = load[key]["wrk"]
            for side in ("digits", "tutorial"):
                lines.append(
                    f"| {label} (wrk) | {side} | {w[side]['rps']:,.0f} | | {w[side]['p99_ms']} | "
                    f"{w[side]['errors']:.0f} |"
                )
            lines.append(f"| {label} (wrk) | ratio | **{w['ratio']}×** | | | |")
    for clients, c in sorted(report.get("crowds", {}).items()):
        lines.append(
            f"| 28×28 PNG, {clients} | digits | {c['rps']:,.0f} | {c['p50_ms']} | {c['p99_ms']} | {c['errors']:.0f} |"
        )
        lines.append(
            f"| 28×28 PNG, {clients} (wrk) | digits | {c['wrk']['rps']:,.0f} | | {c['wrk']['p99_ms']} | "
            f"{c['wrk']['errors']:.0f} |"
        )
    shares = [r["worker_shares"] for r in load["photo"].get("runs", {}).get("digits", []) if "worker_shares" in r]
    if shares:
        lines += [
            "",
            "Each worker's share of the 2 MP answers, per run: "
            + "; ".join(" / ".join(f"{100 * x:.0f} %" for x in run) for run in shares)
            + ".",
        ]
    crowds = report.get("crowds", {})
    if crowds:
        lines += [
            "",
            "/health while 28×28 PNGs come from "
            + "; ".join(
                f"{clients} clients: p99 {c['health_p99_ms']} ms, max {c['health_max_ms']} ms, {c['health_failures']} failed"
                for clients, c in sorted(crowds.items())
            )
            + ".",
        ]
    rss = report["rss"]
    lines += [
        "",
        f"Resident memory of `digits serve` ({report['workers']} workers, all processes): "
        f"{rss['before_mib']:.0f} MiB before and {rss['after_mib']:.0f} MiB after {rss['requests']:,} more "
        f"28×28 POSTs ({100 * rss['growth']:+.1f} %).",
        "",
        "| attack | /health p50 ms | /health p99 ms | /health max ms | failed probes | peak RSS MiB | alive after | logged bytes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for a in report["attacks"]:
        lines.append(
            f"| {a['attack']} | {a['health_p50_ms']} | {a['health_p99_ms']} | {a['health_max_ms']} | "
            f"{a['health_failures']} | {a['peak_rss_mib']} | {'yes' if a['alive_after'] else '**no**'} | "
            f"{a['log_bytes']:,} |"
        )
    met = report["targets_met"]
    lines += [
        "",
        "Targets: " + ", ".join(f"{name} {'met' if ok else '**not met**'}" for name, ok in met.items()) + ".",
        "",
        f"{report['machine']['cpu']}, {report['machine']['cores']} cores, load average "
        f"{report['load_average_before']} before the run; `hey` on the same machine; model "
        f"`{report['model']}`; {report['reps']} repetitions, alternating, medians shown; "
        f"{report['photo_source']}. Command: `{report['command']}`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", type=Path, help="what digits serves: run folder or .onnx (default: the shipped model)"
    )
    parser.add_argument(
        "--tutorial-model",
        type=Path,
        required=True,
        help="what the tutorial server serves: a run folder with model.keras, or a .keras file",
    )
    parser.add_argument("--reps", type=int, default=3)
    # 5,000 lasted about a second, which hey's start-up (32 connections) weighed on.
    parser.add_argument("--requests", type=int, default=20_000, help="POSTs per load measurement of digits")
    parser.add_argument("--photo-requests", type=int, default=200)
    parser.add_argument("--anchor-seconds", type=float, default=20, help="time cap per tutorial-server measurement")
    parser.add_argument("--wrk-seconds", type=float, default=10, help="length of each wrk measurement of digits")
    parser.add_argument("--rss-requests", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--quick", action="store_true", help="fewer requests and one repetition: a smoke run")
    args = parser.parse_args()
    if shutil.which("hey") is None or shutil.which("wrk") is None:
        raise SystemExit("benchmarks/serve.py needs `hey` and `wrk` (apt-get install hey wrk).")
    if args.quick:
        args.reps, args.requests, args.photo_requests, args.anchor_seconds, args.rss_requests = 1, 500, 40, 5, 2000
        args.wrk_seconds = 3
    onnx = resolve_model(args.model)
    keras_model = RunDir(args.tutorial_model).keras_path if args.tutorial_model.is_dir() else args.tutorial_model
    if not keras_model.is_file():
        raise SystemExit(f"{args.tutorial_model}: no Keras model there for the tutorial server.")
    load_average = Path("/proc/loadavg").read_text().split()[:3]

    with tempfile.TemporaryDirectory(prefix="digits-serve-bench-") as tmp:
        work = Path(tmp)
        png_body, photo_body = work / "png28.body", work / "photo.body"
        png_body.write_bytes(multipart(mnist_png(), "digit.png", "image/png"))
        photo, photo_source = two_megapixel_photo()
        photo_body.write_bytes(multipart(photo, "photo.jpg", "image/jpeg"))
        urls = {"digits": f"http://127.0.0.1:{free_port()}", "tutorial": f"http://127.0.0.1:{free_port()}"}
        ours_log, tutorial_log = work / "digits.log", work / "tutorial.log"
        ours = start(
            [
                DIGITS,
                "serve",
                "--model",
                str(onnx),
                "--port",
                urls["digits"].rsplit(":", 1)[1],
                "--workers",
                str(args.workers),
            ],
            urls["digits"],
            ours_log,
        )
        env = dict(os.environ, DIGITS_TUTORIAL_MODEL=str(keras_model), TF_CPP_MIN_LOG_LEVEL="2")
        tutorial = start(
            [sys.executable, "-m", "uvicorn", "tutorial_server:app", "--port", urls["tutorial"].rsplit(":", 1)[1]],
            urls["tutorial"],
            tutorial_log,
            env=env,
            cwd=HERE,
        )
        try:
            print("load: 28x28 PNG, 32 clients", flush=True)
            png = load_test(
                "png28", urls, png_body, 32, args.requests, args.anchor_seconds, args.reps, args.wrk_seconds
            )
            print("load: 2 MP photo, 8 clients", flush=True)
            photo_load = load_test("photo", urls, photo_body, 8, args.photo_requests, args.anchor_seconds, args.reps)
            stop(tutorial)
            print("load: 28x28 PNG, 256 clients, digits alone", flush=True)
            crowds = {256: crowd(urls["digits"], ours.pid, png_body, 256, args.requests, args.wrk_seconds)}
            print(f"memory: {args.rss_requests} POSTs", flush=True)
            before = rss_mib(ours.pid)
            soak = hey(f"{urls['digits']}/predict", png_body, 32, requests=args.rss_requests)
            after = rss_mib(ours.pid)
            rss = {
                "before_mib": round(before, 1),
                "after_mib": round(after, 1),
                "requests": args.rss_requests,
                "growth": round(after / before - 1, 4),
                "errors": soak["errors"],
                "rps": soak["rps"],
            }
            print(f"  {rss}", flush=True)
            print("attacks", flush=True)
            attacked = attacks(urls["digits"], ours.pid, ours_log, work, args.quick)
        finally:
            stop(ours)
            if tutorial.poll() is None:
                stop(tutorial)

    p, ph, c256 = png["median"], photo_load["median"], crowds[256]
    low, high = TARGETS["worker_share"]
    targets_met = {
        # Both load generators share the server's two cores: hey (Go, a CSV row per answer) takes more of them.
        f"≥ {TARGETS['png_rps']:,} req/s (hey)": p["digits"]["rps"] >= TARGETS["png_rps"],
        f"≥ {TARGETS['png_rps']:,} req/s (wrk)": png["wrk"]["digits"]["rps"] >= TARGETS["png_rps"],
        f"≥ {TARGETS['png_ratio']}× the tutorial": p["ratio"] >= TARGETS["png_ratio"],
        f"PNG p99 ≤ {TARGETS['png_p99_ms']} ms": p["digits"]["p99_ms"] <= TARGETS["png_p99_ms"],
        "0 errors": p["digits"]["errors"] == 0 and ph["digits"]["errors"] == 0,
        f"256 clients ≥ {TARGETS['png256_share']:.0%} of 32's req/s": c256["rps"]
        >= TARGETS["png256_share"] * p["digits"]["rps"],
        f"256 clients ≤ {TARGETS['png256_errors']:.0%} errors": c256["errors"]
        <= TARGETS["png256_errors"] * c256["requests"],
        f"/health ≤ {TARGETS['health_ms']} ms at 256 clients": c256["health_max_ms"] <= TARGETS["health_ms"],
        f"photo p99 ≤ {TARGETS['photo_p99_ms']} ms": ph["digits"]["p99_ms"] <= TARGETS["photo_p99_ms"],
        f"each worker {low:.0%}-{high:.0%} of the photos, every run": all(
            len(r.get("worker_shares", [])) == args.workers and all(low <= x <= high for x in r["worker_shares"])
            for r in photo_load["runs"]["digits"]
        ),
        f"RSS growth ≤ {TARGETS['rss_growth']:.0%}": rss["growth"] <= TARGETS["rss_growth"],
        f"/health ≤ {TARGETS['attack_health_ms']} ms under attack": all(
            a["health_p99_ms"] <= TARGETS["attack_health_ms"] and a["health_failures"] == 0 for a in attacked
        ),
        "RSS < 1 GB under attack": all(a["peak_rss_mib"] < TARGETS["attack_rss_mib"] for a in attacked),
        "alive after every attack": all(a["alive_after"] for a in attacked),
    }
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/serve.py", *sys.argv[1:]]),
        "machine": provenance.machine(),
        "versions": provenance.versions(),
        "load_average_before": " ".join(load_average),
        "model": f"{onnx} (digits), {keras_model} (tutorial)",
        "workers": args.workers,
        "reps": args.reps,
        "photo_source": photo_source,
        "load": {"png28": png, "photo": photo_load},
        "crowds": crowds,
        "rss": rss,
        "attacks": attacked,
        "targets": TARGETS,
        "targets_met": targets_met,
    }
    stem = "serve-quick" if args.quick else "serve"
    RESULTS.mkdir(exist_ok=True)
    write_json(RESULTS / f"{stem}.json", report)
    write_text(RESULTS / f"{stem}.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
