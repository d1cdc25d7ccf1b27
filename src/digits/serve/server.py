"""Uvicorn, hardened: what `digits serve` runs the app in.

Contract, per worker process:
  * every connection state has a timer. The request line and headers must
    arrive within `HEADER_TIMEOUT` seconds, and number at most `MAX_HEADERS`
    lines of `MAX_HEADER_BYTES` in all, else 408 / 431 (a line still
    arriving, a chunked body's trailers too, counts as it comes); an
    `Upgrade` header is not followed (a request without a body is answered,
    one with a body refused: the parser would drop it); an idle keep-alive
    connection is closed after `KEEP_ALIVE` seconds; bytes that arrive after
    an answer (a stray `\r\n`, the rest of a body the app refused) restart
    the header deadline; an answer the client does not read is dropped after
    `WRITE_TIMEOUT` seconds (body timeouts are the app's: see `digits.serve.app`);
  * at most `MAX_WAITING` connections may be idle (waiting for headers, or
    kept alive between requests): past that, the one that has waited longest
    is closed, at once if it was kept alive after an answer, else once it has
    waited `IDLE_GRACE` seconds or past `MAX_WAITING + GRACE_ROOM` (idle and
    slow-header attacks cannot fill the file-descriptor table, and a new
    `/health` always gets in);
  * HTTP the parser rejects is a 400 (or 408 / 431) with a JSON body
    {"error": "<one sentence>"}, like every answer of the app; a client that
    half-closes in the middle of its body gets the app's 400 for a short body;
  * logs are bounded (`digits.serve.logs`): one line per record, at most
    `LOG_BURST` per `LOG_WINDOW` seconds; Python warnings (Pillow's about a
    corrupt EXIF, NumPy's) are log records too, under the same limit;
  * no access log (the `/metrics` counters say what it would).

What stays uvicorn's (docs/serving.md): a connection closed by the client is
not answered; a request cut before its headers end is closed without an
answer; the supervisor of several workers logs its own start and stop lines.

The listening socket is `digits.serve.listener`'s. The event loop is
Python's own (`ACCEPT_LOOP`), which accepts many connections at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
from collections import OrderedDict
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from digits.errors import EXIT_CODES, Interrupted
from digits.serve.listener import raise_open_file_limit
from digits.serve.logs import LOGGING

HEADER_TIMEOUT = 10.0
KEEP_ALIVE = 5
WRITE_TIMEOUT = 30.0
MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024
MAX_WAITING = 256
# ...a connection not yet answered, once it has waited this long: time for its headers to be read, a few turns
# of the loop later (closed at once, a health check that arrived among thousands of idle connections was the
# oldest); past `MAX_WAITING + GRACE_ROOM`, at once (a client reconnecting fast cannot fill the descriptor table).
IDLE_GRACE = 0.25
GRACE_ROOM = 2048
SWEEP = 64
# Python's event loop, not uvloop, whose libuv accepts one connection per turn: as 256 clients connected at
# once, a health check waited 0.5-1.7 s in the kernel's queue behind them (asyncio accepts up to the listen
# backlog, 2048, per turn: 0.17 s at most). 28×28 PNGs at 32 connections: 2,350 req/s against uvloop's 2,450
# (wrk, alternating, medians of 3).
ACCEPT_LOOP = "asyncio"


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing: the connection is answered and closed."""


class GuardedProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol with header deadlines and limits, and JSON for its own errors."""

    # Per worker process (one server, one loop): idle connections (no request at work), oldest first, with
    # when each began to wait: those never answered (`waiting`, which have a grace) and those kept alive
    # after an answer (`served`, which have had their turn); and the timer, on that loop, for the oldest.
    waiting: OrderedDict[GuardedProtocol, float] = OrderedDict()
    served: OrderedDict[GuardedProtocol, float] = OrderedDict()
    sweep: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._write_deadline: asyncio.TimerHandle | None = None
        self._running_cycle: RequestResponseCycle | None = None  # the request at work (pipelined: maybe not the newest)
        self._fault = (400, "the request is not valid HTTP/1.1.")
        self._answered = False
        self._progress, self._unparsed = False, 0  # see data_received
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_arrived()
        self.resume_writing()
        # Uvicorn marks only the newest request disconnected; with pipelining, the
        # one at work may be older, and would write to the closed transport.
        running = self._running_cycle
        if running is not None and not running.response_complete:
            running.disconnected = True
            running.message_event.set()
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        self._running_cycle = cycle
        super()._start_asgi_task(cycle, app)

    def data_received(self, data: bytes) -> None:
        # The parser calls back only once a line of the request is whole, and until then grows that line
        # in memory, on the event loop (a header value streamed for 10 s took 60 MB and held /health for
        # 0.3 s or more): bytes that made no callback at all are counted, and past `MAX_HEADER_BYTES` refused.
        self._progress = False
        super().data_received(data)
        self._unparsed = 0 if self._progress else self._unparsed + len(data)
        if self._unparsed > MAX_HEADER_BYTES:
            self._answer(431, f"a line of the request's headers or trailers is over {MAX_HEADER_BYTES // 1024} KiB.")
            return
        # Uvicorn cancels its keep-alive timer on any byte, even one that starts
        # no request (a stray CRLF, the unread rest of a refused body): between
        # requests, the header deadline takes over.
        if self._header_deadline is None and self._between_requests():
            self._await_headers()

    def on_body(self, body: bytes) -> None:
        self._progress = True
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._progress = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._answered = True
        if self.timeout_keep_alive_task is not None:  # kept alive and idle: it counts toward the cap
            self._wait()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None:
            self._write_deadline = self.loop.call_later(WRITE_TIMEOUT, self.transport.abort)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    # asyncio.Protocol.eof_received may return True (keep the transport open to write); uvicorn's annotation
    # narrows it to None.
    def eof_received(self) -> bool | None:  # type: ignore[override]
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.more_body:
            # The client stopped sending in the middle of its body but can still
            # read: hand the app what came, so that it answers 400, then close.
            cycle.more_body = False
            cycle.keep_alive = False
            cycle.message_event.set()
            return True
        return None

    def on_message_begin(self) -> None:
        self._progress = True
        super().on_message_begin()
        self._header_count = 0
        self._header_bytes = 0
        if self._header_deadline is None:  # the next request on a kept-alive connection
            self._await_headers()

    def on_url(self, url: bytes) -> None:
        self._progress = True
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._progress = True
        self._header_count += 1
        self._count_header_bytes(len(name) + len(value))
        if self._header_count > MAX_HEADERS:
            self._fault = (431, f"the request has more than {MAX_HEADERS} header lines.")
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._progress = True
        self._headers_arrived()
        version = self.parser.get_http_version()
        if version not in ("1.0", "1.1"):  # "GET /health" alone is HTTP/0.9 to the parser, which has no headers
            self._fault = (400, "the request line must end with the HTTP version (HTTP/1.1).")
            raise _Refused
        if version == "1.1" and not any(name == b"host" for name, _ in self.headers):
            self._fault = (400, "an HTTP/1.1 request must have a Host header.")
            raise _Refused
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        # Uvicorn calls this for everything its parser rejects (and for what we refuse above).
        self._answer(*self._fault)

    def _unsupported_upgrade_warning(self) -> None:
        # An `Upgrade` header (`curl --http2` sends h2c) stops the parser after the headers: what follows is
        # never parsed. A request without a body is answered, and then the connection closes; one whose body
        # would be lost is refused at once, rather than waiting for a body that never comes. Not logged: a
        # client may send it with every request.
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return
        cycle.keep_alive = False
        if any(
            (name == b"content-length" and value.strip(b"0")) or name == b"transfer-encoding"
            for name, value in self.headers
        ):
            self._answer(400, "this server speaks plain HTTP/1.1: send the upload without an Upgrade header.")

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            self._fault = (431, f"the request line and headers are over {MAX_HEADER_BYTES // 1024} KiB.")
            raise _Refused

    def _between_requests(self) -> bool:
        idle_cycle = self.cycle is None or self.cycle.response_complete
        return not self.transport.is_closing() and not self.pipeline and idle_cycle

    def _await_headers(self) -> None:
        self._header_count = self._header_bytes = 0
        message = f"the request headers did not arrive within {HEADER_TIMEOUT:g} s."
        self._header_deadline = self.loop.call_later(HEADER_TIMEOUT, self._answer, 408, message)
        self._wait()

    def _wait(self) -> None:
        """Count this connection as idle, the newest; past `MAX_WAITING`, close the oldest (`close_oldest`)."""
        self._leave_tables()
        (self.served if self._answered else self.waiting)[self] = self.loop.time()
        self.close_oldest(self.loop)

    @staticmethod
    def close_oldest(loop: asyncio.AbstractEventLoop, most: int = 2) -> None:
        """While more than `MAX_WAITING` connections are idle, close at most `most` of those that waited longest:
        one kept alive after an answer at once, one never answered once it has waited `IDLE_GRACE` seconds (or at
        once while more than `MAX_WAITING + GRACE_ROOM` are idle). A timer comes back for the rest, `SWEEP` at a
        time: closing thousands in one callback held the loop for a tenth of a second."""
        fresh, served, closed = GuardedProtocol.waiting, GuardedProtocol.served, 0
        while len(fresh) + len(served) > MAX_WAITING:
            victim, since, left = None, float("inf"), 0.0
            if fresh:
                victim, since = next(iter(fresh.items()))
                left = since + IDLE_GRACE - loop.time()
                if left > 0 and len(fresh) + len(served) <= MAX_WAITING + GRACE_ROOM:
                    victim, since = None, float("inf")  # in its grace, and every newer one too
            if served and next(iter(served.values())) < since:
                victim = next(iter(served))
            if victim is None or closed == most:
                GuardedProtocol._come_back(loop, 0.0 if closed == most else max(left, 0.0))
                return
            victim._answer(408, "the server is busy with too many idle connections; this one waited longest.")
            closed += 1

    @staticmethod
    def _come_back(loop: asyncio.AbstractEventLoop, delay: float) -> None:
        """One timer, due when the next may go: one due sooner is kept (it comes back); one that has fired,
        is due too late, or belongs to another loop (a server stopped in this process) is replaced."""
        wanted = loop.time() + delay
        sweep = GuardedProtocol.sweep
        if sweep is None or sweep[0] is not loop or not loop.time() < sweep[1].when() <= wanted:
            if sweep is not None:
                sweep[1].cancel()
            GuardedProtocol.sweep = (loop, loop.call_at(wanted, GuardedProtocol.close_oldest, loop, SWEEP))

    def _headers_arrived(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None
        self._leave_tables()

    def _leave_tables(self) -> None:
        self.waiting.pop(self, None)
        self.served.pop(self, None)

    def _answer(self, status: int, message: str) -> None:
        """Answer {"error": message} with `status` outside any request cycle, and close."""
        self._headers_arrived()
        if self.transport.is_closing():
            return
        body = json.dumps({"error": message}).encode()
        head = [STATUS_LINE[status]]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body)]
        head += [b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class GuardedConfig(uvicorn.Config):
    def configure_logging(self) -> None:
        # Run in each worker process: warnings.showwarning would write to stderr past the limit.
        super().configure_logging()
        logging.captureWarnings(True)


def guarded_config(app: ASGI3Application | Callable[..., Any] | str, **options: Any) -> GuardedConfig:
    """Uvicorn's configuration for `app` with the guarded protocol, the bounded log and our timers."""
    return GuardedConfig(
        app,
        http=GuardedProtocol,
        loop=ACCEPT_LOOP,
        timeout_keep_alive=KEEP_ALIVE,
        log_config=LOGGING,
        access_log=False,
        lifespan="on",
        server_header=False,
        date_header=False,
        **options,
    )


def run(app: str, listener: socket.socket, workers: int) -> None:
    """Serve the ASGI app factory `app` ("module:function") on `listener` with `workers` processes.

    After a shutdown on SIGINT or SIGTERM it raises `Interrupted`, so the command exits 130 or 143
    whatever the number of workers: uvicorn's supervisor returns as if nothing happened. A lone server
    re-raises the signal itself, so the process may end by it, which a shell reports as the same code.
    """
    from uvicorn.supervisors import Multiprocess

    stopped_by: list[int] = []

    class Supervisor(Multiprocess):
        def handle_int(self) -> None:
            stopped_by.append(signal.SIGINT)
            super().handle_int()

        def handle_term(self) -> None:
            stopped_by.append(signal.SIGTERM)
            super().handle_term()

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            stopped_by.append(sig)
            super().handle_exit(sig, frame)

    raise_open_file_limit()
    config = guarded_config(app, factory=True, workers=workers)
    if workers > 1:
        Supervisor(config, sockets=[listener]).run()
    else:
        Server(config).run(sockets=[listener])
    if stopped_by and stopped_by[0] in EXIT_CODES:
        raise Interrupted(stopped_by[0])
