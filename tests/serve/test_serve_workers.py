"""`digits serve` with its worker processes: connections spread over the workers, nothing left behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_serve import free_port, wait_for_health

from digits.serve import listener as listening
from helpers import DIGITS

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing is Linux's")


@contextmanager
def digits_serve(workers: int, tmp_path: Path):
    """`digits serve` with the shipped model on a free port, its temporary files under tmp_path; yields (url, process)."""
    port = free_port()
    environment = {**os.environ, "TMPDIR": str(tmp_path)}
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [DIGITS, "serve", "--port", str(port), "--workers", str(workers)],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process, tmp_path / "server.log", bound=120)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        log.close()


def worker_counts(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {
        worker: float(count)
        for worker, count in re.findall(r'^digits_worker_requests_total\{worker="(\d+)"\} (\S+)$', text, re.MULTILINE)
    }


def test_new_connections_are_spread_over_both_workers(tmp_path):
    if not listening.REUSE_PORT:
        pytest.skip("needs SO_REUSEPORT")
    with digits_serve(2, tmp_path) as (url, _):
        deadline = time.monotonic() + 120  # a bound on the wait, not a measurement
        # Until both workers answer (the second may still be loading its model). The page that shows both is
        # kept: each worker makes its page at most once a second, so the next answer may be an older page.
        while len(before := worker_counts(url)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(before) == 2, before
        for _ in range(200):  # each on a connection of its own: the kernel picks the worker
            urllib.request.urlopen(f"{url}/health", timeout=30).close()
        # A worker's /metrics page is made at most once a second (`metrics.SCRAPE_EVERY`): asked again until new.
        deadline = time.monotonic() + 120
        while (
            sum((after := worker_counts(url)).get(w, 0.0) - before[w] for w in before) < 200
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
    counts = [after.get(worker, 0.0) - before[worker] for worker in before]
    assert sum(counts) >= 200, counts
    # An even hash of 200 connections strays past 30/70 % with odds of about 1 in 10**8.
    assert all(0.3 <= n / sum(counts) <= 0.7 for n in counts), counts


def test_a_one_worker_server_leaves_no_metrics_folder(tmp_path):
    with digits_serve(1, tmp_path) as (url, process):
        urllib.request.urlopen(f"{url}/metrics", timeout=30).close()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert not list(tmp_path.glob("digits-metrics-*"))


def test_each_worker_gets_a_socket_of_its_own_on_the_address():
    """What uvicorn sends to a worker (pickled) arrives as a new SO_REUSEPORT socket bound to the same address."""
    import pickle

    if not listening.REUSE_PORT:
        pytest.skip("needs SO_REUSEPORT")
    parent = listening.bind("127.0.0.1", 0)
    worker = pickle.loads(pickle.dumps(parent))
    try:
        assert worker.fileno() != parent.fileno() and worker.getsockname() == parent.getsockname()
        assert worker.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        worker.listen()
        with socket.create_connection(parent.getsockname(), timeout=30):  # the worker's socket takes it
            accepted, _ = worker.accept()
            accepted.close()
    finally:
        worker.close()
        parent.close()


def test_a_photo_upload_closes_its_connection_a_small_one_keeps_it():
    """After a large upload the client reconnects, and the kernel places the connection afresh."""
    from fastapi.testclient import TestClient

    from digits.serve import admission
    from digits.serve import app as serve

    photo = bytes(admission.REBALANCE_BYTES)  # not a picture: the answer is a 422, which still closes
    with TestClient(serve.create_app()) as client:
        large = client.post("/predict", files={"image": ("a.png", photo, "image/png")})
        small = client.post("/predict", files={"image": ("a.png", photo[:1000], "image/png")})
    assert large.headers.get("connection") == "close" and "connection" not in small.headers


@pytest.mark.parametrize(
    ("workers", "stop", "code"), [(1, signal.SIGINT, 130), (1, signal.SIGTERM, 143), (2, signal.SIGTERM, 143)]
)
def test_a_server_stopped_by_a_signal_exits_with_the_shells_code_for_it(tmp_path, workers, stop, code):
    with digits_serve(workers, tmp_path) as (url, process):
        urllib.request.urlopen(f"{url}/health", timeout=30).close()
        process.send_signal(stop)
        # Popen's exit status: 128 + n from the command, or -n where the signal itself ended it.
        assert process.wait(timeout=60) in (code, -stop), (tmp_path / "server.log").read_text()[-2000:]


def test_workers_never_outnumber_the_cores(tmp_path):
    from digits.batch import usable_cores

    with digits_serve(usable_cores() + 1, tmp_path) as (url, _):
        urllib.request.urlopen(f"{url}/health", timeout=30).close()
    cores = usable_cores()
    assert f"with {cores} worker{'s' * (cores > 1)}" in (tmp_path / "server.log").read_text()
