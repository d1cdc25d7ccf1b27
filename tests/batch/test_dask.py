"""The same rows on a Dask cluster: a LocalCluster here, a real scheduler and workers when CI starts them."""

import csv
import os
import signal
import subprocess
import sys

import pytest

from digits import batch
from helpers import run_cli

pytest.importorskip("distributed")


def same(rows):
    return [{key: row[key] for key in batch.COLUMNS} for row in rows]


def test_local_cluster_gives_the_rows_of_one_worker(pictures):
    from distributed import LocalCluster

    paths = [str(p) for p in pictures] + [str(pictures[0].parent / "missing.png")]
    here = list(batch.read(paths, workers=1, chunk_size=4))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        on_dask = list(batch.read(paths, dask=cluster.scheduler_address, chunk_size=4))
        from distributed import Client

        with Client(cluster) as client:
            bagged = batch.bag(paths, chunk_size=4).compute()
            # --dask gave every worker glibc's malloc as it is outside Dask (`KeepLargeBlocks`).
            plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert same(on_dask) == same(here) == same(bagged)
    assert len(plugins) == 2 and all("digits-keep-large-blocks" in names for names in plugins.values())
    assert here[-1]["status"] == "error" and here[-1]["error"].endswith("missing.png: no such file.")


def test_a_worker_killed_mid_run_loses_no_picture(pictures):
    """SIGKILL one of two workers once the first chunk is back: Dask runs its chunks again, each picture once."""
    from distributed import Client, LocalCluster

    paths = [str(p) for p in pictures]
    job = batch.job_for("read")
    here = list(batch.read(paths, workers=1, chunk_size=2))
    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            victim = next(iter(client.run(os.getpid).values()))

        def chunk_done(results, chunk_rows):
            if not rows:
                os.kill(victim, signal.SIGKILL)
            rows.extend(chunk_rows)

        batch.write(paths, None, job, dask=cluster.scheduler_address, chunk_size=2, on_chunk=chunk_done)
    assert same(rows) == same(here)


def test_a_cluster_without_workers_is_one_sentence_not_a_wait_for_ever(pictures, monkeypatch):
    from distributed import LocalCluster

    from digits.batch import engine

    monkeypatch.setattr(engine, "NO_WORKER_SECONDS", 2.0)
    with (
        LocalCluster(n_workers=0, processes=True, dashboard_address=":0") as cluster,
        pytest.raises(batch.ClusterError, match="has had no worker for 2 s; start some"),
    ):
        list(batch.read([str(p) for p in pictures], dask=cluster.scheduler_address))


def test_a_scheduler_killed_mid_run_is_one_sentence(pictures):
    """SIGKILL a real `dask scheduler` once the first chunk is back: Dask cancels the run's futures, and the
    command says the scheduler was lost, in one sentence and exit code 2 (not Dask's traceback, not exit 1)."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from distributed import Client

        with Client(address, timeout="60s") as ready:  # both up before the run, however slow the machine
            ready.wait_for_workers(1, timeout=60)
        paths = [str(p) for p in pictures] * 20
        job = batch.job_for("read")

        def kill_the_scheduler(results, rows):
            if scheduler.poll() is None:
                scheduler.kill()
                scheduler.wait()

        with pytest.raises(batch.ClusterError, match=f"lost the Dask scheduler at {address} .*run the command again"):
            batch.write(paths, None, job, dask=address, chunk_size=1, on_chunk=kill_the_scheduler)
    finally:
        for process in (scheduler, worker):
            process.kill()
            process.wait()


def test_an_oserror_a_task_raised_is_not_taken_for_a_lost_scheduler():
    from distributed import Client, LocalCluster

    from digits.batch import engine

    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        future = client.submit(os.stat, "/no/such/folder/model.onnx", pure=False)
        with pytest.raises(FileNotFoundError):
            engine._dask_result(client, future, cluster.scheduler_address)


def test_the_command_keeps_dask_log_lines_off_its_stderr(monkeypatch):
    import logging

    from digits.cli import bulk

    for name in ("distributed", "distributed.client", "distributed.worker"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.INFO)
    bulk._quiet_dask()
    assert all(
        logging.getLogger(name).getEffectiveLevel() == logging.CRITICAL
        for name in ("distributed", "distributed.client", "distributed.worker", "distributed.comm.tcp")
    )


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.dask_scheduler
def test_real_scheduler_and_two_workers(tmp_path, pictures):
    """.ci/run starts `dask scheduler` and two `dask worker`s on loopback (.ci/dask) and sets the address."""
    address = os.environ.get("DIGITS_TEST_DASK_SCHEDULER")
    if not address:
        pytest.skip("set DIGITS_TEST_DASK_SCHEDULER to run the test on a real Dask cluster")
    folder = str(pictures[0].parent)
    local, remote = tmp_path / "local.csv", tmp_path / "remote.csv"
    assert run_cli("read", folder, "--out", str(local), "--workers", "1", cwd=tmp_path).returncode == 0
    result = run_cli("read", folder, "--out", str(remote), "--dask", address, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(local, newline="") as a, open(remote, newline="") as b:
        assert list(csv.DictReader(a)) == list(csv.DictReader(b))


MAPPED_BYTES = """
import ctypes, sys
import numpy as np
from digits.batch.dask_worker import keep_large_blocks

libc = ctypes.CDLL("libc.so.6")
fields = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in fields]
libc.mallinfo2.restype = Mallinfo2

def mapped_by(size):
    before = libc.mallinfo2().hblkhd
    block = np.ones(size, np.uint8)
    return libc.mallinfo2().hblkhd - before

size = 4 * 2**20
print(mapped_by(size) >= size, mapped_by(size) >= size)  # the second too: the threshold never rose
print(keep_large_blocks(), mapped_by(size) >= size)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_worker_started_by_dask_keeps_big_pictures_off_mmap():
    """Under Dask's MALLOC_TRIM_THRESHOLD_ a 4 MiB array is mmapped anew each time; `keep_large_blocks` undoes that."""
    import ctypes

    if not hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2"):
        pytest.skip("glibc older than 2.33 has no mallinfo2")
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", MAPPED_BYTES], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True", "False"]
