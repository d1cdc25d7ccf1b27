"""Where chunks are read: in this process, in a pool of processes, or on a Dask cluster.

`chunks_read(job, chunks, workers, dask)` yields each chunk's results in the
order the chunks were given, whichever finishes first. At most two chunks per
worker are in flight, so memory stays flat over a run of any length.

  * `workers=1` and no `dask`: read here, one chunk after another.
  * `workers=N`: a pool of N processes (spawned, so no ONNX Runtime state is
    inherited), each loading the model once (`digits.batch.work.reader`).
    SIGTERM or Ctrl-C stops the pool at once (its chunks in flight are not
    written); a worker whose command was killed outright exits by itself.
  * `dask="tcp://host:8786"`: every chunk is a task on that Dask cluster
    (`Client.submit`). Dask's scheduler places the tasks; a worker lost
    mid-run has its tasks run again elsewhere, and a task that raised is
    retried (`retries`). Results come back here, so each picture is written
    once whatever the cluster did. Workers must see the same paths (shared
    storage) and have digits installed. A cluster with no worker for
    `NO_WORKER_SECONDS` (at the start, or once all are gone) and a scheduler
    lost mid-run are each a `ClusterError`, not a wait for ever or Dask's
    traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from digits.batch.work import Item, Job, read_chunk
from digits.errors import DigitsError, Interrupted, first_line, install_hint

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

# A task that raised (not a lost worker: Dask reschedules those on its own) runs this many more times.
DASK_RETRIES = 2


class ClusterError(DigitsError):
    """The Dask scheduler cannot be reached, or a pool of workers broke down."""


def chunks_read(
    job: Job, chunks: Iterable[list[Item]], workers: int = 1, dask: str | None = None
) -> Generator[list[dict[str, Any]], None, None]:
    """Each chunk's results, in the chunks' order."""
    if dask is not None:  # "" too: refused as an address below, rather than read here without a word
        yield from _on_dask(job, chunks, dask)
    elif workers <= 1:
        for chunk in chunks:
            yield read_chunk(job, chunk)
    else:
        yield from _on_processes(job, chunks, workers)


def _in_order(
    submit: Callable[[list[Item]], Any],
    result: Callable[[Any], list[dict[str, Any]]],
    chunks: Iterable[list[Item]],
    window: int,
) -> Iterator[list[dict[str, Any]]]:
    """Keep `window` chunks submitted ahead; yield their results first-submitted first."""
    pending: deque[Any] = deque()
    for chunk in chunks:
        pending.append(submit(chunk))
        if len(pending) >= window:
            yield result(pending.popleft())
    while pending:
        yield result(pending.popleft())


def _on_processes(job: Job, chunks: Iterable[list[Item]], workers: int) -> Iterator[list[dict[str, Any]]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    with _quiet_resource_tracker():
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start)
    try:
        with _term_interrupts():
            yield from _in_order(
                lambda chunk: pool.submit(read_chunk, job, chunk), lambda f: f.result(), chunks, 2 * workers
            )
    except BaseException as err:  # a worker died; Ctrl-C, SIGTERM, or the caller stopped (an output that failed)
        _stop_now(pool)
        if isinstance(err, BrokenProcessPool):
            raise ClusterError(
                "a worker process died (out of memory or killed; from Python, a script that starts workers "
                "must do it under `if __name__ == '__main__':`); run the same command again to resume."
            ) from None
        raise
    pool.shutdown(wait=True)


def _stop_now(pool: ProcessPoolExecutor) -> None:
    """Stop the pool without waiting for its chunks in flight: what they would give is not written anyway.

    Waiting (`shutdown(wait=True)`) took 10 s on chunks of pages, and a second Ctrl-C in
    that wait left the pool's threads and workers waiting on each other for ever.
    Python 3.14 has `terminate_workers()`; before it, the pool's processes are `_processes`.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    # Gone before the command goes on, none left to the exit's joins. A join can return before
    # the process may be reaped (its pipe closes first), so it is asked again until it has an exit code.
    deadline = time.monotonic() + 5
    for process in processes:
        with contextlib.suppress(Exception):
            while process.exitcode is None and time.monotonic() < deadline:
                process.join(0.05)
            if process.exitcode is None:
                process.kill()
                process.join(1)
    pool.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def _quiet_resource_tracker() -> Iterator[None]:
    """While the pool's queues start multiprocessing's resource tracker, its warnings are off.

    The tracker is a process of its own that outlives a command killed outright (`kill -9`); it then
    frees the pool's semaphores and warns about them on the terminal, after the shell's prompt. The
    filter reaches it through the environment it starts with, and is taken back at once.
    """
    variable = "PYTHONWARNINGS"
    before = os.environ.get(variable)
    quiet = "ignore::UserWarning:multiprocessing.resource_tracker"
    os.environ[variable] = f"{before},{quiet}" if before else quiet
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = before


@contextlib.contextmanager
def _term_interrupts() -> Iterator[None]:
    """While the pool runs, SIGTERM raises `Interrupted`, so the pool is shut down (not orphaned) on the way out."""

    def stop(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only; its own handler stays
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _worker_start() -> None:
    """In each worker: Ctrl-C is the command's to handle, and the worker ends with the command.

    Ctrl-C reaches every process of the terminal; the command stops the pool
    and the workers print nothing. A command killed outright (SIGKILL) cannot
    stop its pool, so each worker watches its parent and exits when it goes.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:

        def exit_with_parent() -> None:
            wait([parent.sentinel])
            os._exit(1)

        threading.Thread(target=exit_with_parent, daemon=True).start()


def _on_dask(job: Job, chunks: Iterable[list[Item]], address: str) -> Iterator[list[dict[str, Any]]]:
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError(f"--dask needs Dask's distributed scheduler: {install_hint('batch')}.") from None
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        # Checked before Client: a Client given no port fails, then waits 40 s and prints a traceback at exit.
        scheme, location = parse_address(address)
        if scheme not in ("tcp", "tls"):
            raise ValueError(f"digits reaches a scheduler over tcp:// or tls://, not {scheme}://")
        host, port = parse_host_port(location)
        if not host:
            raise ValueError("no host")
        if not 0 < port < 65536:  # socket's error for -5 was passed over, then 10 s lost waiting for an answer
            raise ValueError(f"port {port} is not one from 1 to 65535")
    except ValueError as err:
        raise ClusterError(
            f"{address or repr(address)} is not a scheduler address ({err}); give tcp://host:port."
        ) from None
    _listening(address, *parse_host_port(location))
    _answers_as_scheduler(address)
    try:
        client = Client(address, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} ({err}).") from None
    with client:
        from digits.batch.dask_worker import PLUGIN_NAME, KeepLargeBlocks

        client.register_plugin(KeepLargeBlocks(), name=PLUGIN_NAME)
        workers = sum(_dask_workers(client, address).values())  # one worker at least, of a thread at least
        run = uuid.uuid4().hex[:8]  # task keys unique to this run; chunk numbers within it
        numbers = iter(range(1 << 62))
        yield from _in_order(
            lambda chunk: client.submit(
                read_chunk, job, chunk, key=f"digits-chunk-{run}-{next(numbers)}", retries=DASK_RETRIES, pure=False
            ),
            lambda future: _dask_result(client, future, address),
            chunks,
            2 * workers,
        )


# How long a run waits for a cluster with no worker (at its start, or once all of them are gone).
NO_WORKER_SECONDS = 60.0


def _dask_workers(client: Any, address: str) -> dict[str, int]:
    """The cluster's threads per worker, once it has a worker; `NO_WORKER_SECONDS` without one is a ClusterError."""
    deadline = time.monotonic() + NO_WORKER_SECONDS
    while not (threads := _asked(client.nthreads, address)):
        if time.monotonic() > deadline:
            raise ClusterError(
                f"the Dask scheduler at {address} has had no worker for {NO_WORKER_SECONDS:.0f} s; start some "
                f"(dask worker {address}) and run the command again (with --out, what was written stays)."
            )
        time.sleep(1)
    return threads


def _dask_result(client: Any, future: Any, address: str) -> list[dict[str, Any]]:
    """A chunk's rows from the cluster. The wait and the fetch are apart, so that only the cluster's own faults
    are said to be the cluster's: a scheduler gone (Dask then cancels every future) or no worker for
    `NO_WORKER_SECONDS`, each one sentence; an error the task itself raised is raised as it is."""
    from concurrent.futures import CancelledError

    finished = threading.Event()
    future.add_done_callback(lambda _: finished.set())  # done, failed or cancelled
    while not finished.wait(1):
        _dask_workers(client, address)  # still some: wait on; none for a while: the run stops
    try:
        rows: list[dict[str, Any]] = future.result()
    except CancelledError:
        raise _lost(address, "it cancelled the run's tasks") from None
    return rows


def _asked(ask: Callable[[], Any], address: str) -> Any:
    """`ask()`, a call to the scheduler; its connection lost or timed out (Dask's errors for it are OSErrors)
    is one sentence."""
    try:
        return ask()
    except OSError as err:
        raise _lost(address, first_line(err)) from None


def _lost(address: str, why: str) -> ClusterError:
    return ClusterError(
        f"lost the Dask scheduler at {address} ({why}); run the command again once it is back "
        "(with --out, the pictures already written are not read again)."
    )


# How long a scheduler has to answer who it is, before Client is made.
SCHEDULER_ANSWER_SECONDS = 10.0


def _answers_as_scheduler(address: str) -> None:
    """Fail in one sentence unless a Dask scheduler answers at `address` within `SCHEDULER_ANSWER_SECONDS`.

    Client waits for ever on a port that accepts and never answers (a mistyped port, a dashboard),
    and on one that answers something else it fails inside Dask's decoder, then prints a traceback
    at exit. Asking the scheduler who it is, under one deadline, catches all of these first.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm import connect
    from distributed.security import Security

    connection = Security().get_connection_args("client")
    if address.startswith("tls://") and connection.get("ssl_context") is None:
        raise ClusterError(
            f"{address}: tls:// needs Dask's TLS settings (distributed.comm.tls: ca-file, and the client's cert "
            "and key) in its configuration; set them, or give the scheduler's tcp:// address."
        )

    async def identity() -> object:
        comm = await connect(address, **connection)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        # On a thread of its own: the caller may be inside an event loop already (a notebook).
        with ThreadPoolExecutor(1, thread_name_prefix="dask-probe") as probe:
            answer = probe.submit(asyncio.run, asyncio.wait_for(identity(), SCHEDULER_ANSWER_SECONDS)).result()
    except TimeoutError:
        raise ClusterError(
            f"{address} accepted the connection but gave no answer in {SCHEDULER_ANSWER_SECONDS:.0f} s: "
            "is that the scheduler's port (8786 by default, not the dashboard's)?"
        ) from None
    except OSError as err:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} ({err}).") from None
    except Exception:  # Dask's decoder fails in many ways (even MemoryError) on bytes of another protocol
        raise ClusterError(f"{address} answers in another protocol, not as a Dask scheduler.") from None
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        raise ClusterError(f"{address} answers, but it is not a Dask scheduler.")


def _listening(address: str, host: str, port: int) -> None:
    """Fail at once where nothing listens, and where no connection is made within `SCHEDULER_ANSWER_SECONDS` (Dask's
    client would retry for its whole timeout, silently; its failure was then said to be a connection accepted and
    never answered). The deadline lets a lost SYN be sent again three times (at 1, 3 and 7 s)."""
    import socket

    try:
        socket.create_connection((host, port), timeout=SCHEDULER_ANSWER_SECONDS).close()
    except ConnectionRefusedError:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: nothing listens on that port.") from None
    except TimeoutError:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address}: no connection in {SCHEDULER_ANSWER_SECONDS:.0f} s."
        ) from None
    except OSError as err:  # a host name no resolver knows (256.1.1.1 is one), a network that cannot be reached
        raise ClusterError(f"cannot reach the Dask scheduler at {address} ({err.strerror or err}).") from None
