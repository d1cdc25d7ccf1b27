"""The socket `digits serve` listens on.

`bind` takes the address before anything starts, so a port in use or a bad
host is one sentence (`BindError`) rather than uvicorn's log and exit 3. On
Linux, each worker then listens on a socket of its own (`SO_REUSEPORT`,
`PerWorkerSocket`): the kernel spreads new connections evenly across the
workers, where one shared socket let whichever worker woke first take most
of them.
"""

from __future__ import annotations

import errno
import resource
import socket
import sys
from collections.abc import Callable
from typing import Any

from digits.errors import DigitsError


class BindError(DigitsError):
    """The server cannot listen where it was asked to; the message says why and what to do."""


# Linux balances connections across the sockets of one SO_REUSEPORT group.
REUSE_PORT = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


class PerWorkerSocket(socket.socket):
    """A socket bound with SO_REUSEPORT that, handed to a worker process, becomes one of the worker's own.

    Uvicorn sends the sockets it serves on to each worker (pickled). This one
    arrives as a new socket bound to the same address, so each worker listens
    on its own; the parent's socket is never listened on, and gets no
    connection: it keeps the port while workers come and go.
    """

    def __reduce__(self) -> tuple[Callable[..., PerWorkerSocket], tuple[int, int, int, Any]]:
        return _reuse_port, (self.family, self.type, self.proto, self.getsockname())


def _reuse_port(family: int, kind: int, protocol: int, address: Any) -> PerWorkerSocket:
    listener = PerWorkerSocket(family, kind, protocol)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(address)
    return listener


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (uvicorn listens on it), or BindError saying why not."""
    if not host.strip():
        raise BindError("--host is empty: give an address (127.0.0.1 for this machine, 0.0.0.0 for every interface).")
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as err:
        reason = err.strerror if isinstance(err, socket.gaierror) else err
        raise BindError(f"--host {host}: not an address or a known host name ({reason}).") from None
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Bound without SO_REUSEPORT first: anything else on the port, another
        # `digits serve` included, is refused here.
        listener.bind(address)
        if REUSE_PORT:
            address = listener.getsockname()
            listener.close()
            listener = _reuse_port(family, kind, protocol, address)
    except OSError as err:
        listener.close()
        if err.errno == errno.EADDRINUSE:
            raise BindError(
                f"port {port} on {host} is in use: stop what listens there, or pick another --port."
            ) from None
        if err.errno == errno.EADDRNOTAVAIL:
            raise BindError(f"--host {host}: not an address of this machine.") from None
        raise BindError(f"cannot listen on {host}:{port} ({err.strerror}).") from None
    listener.set_inheritable(True)
    return listener


def raise_open_file_limit() -> None:
    """Let each worker hold as many connections as the system allows (the soft limit is often 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
