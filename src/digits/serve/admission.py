"""Admission to a worker of `digits serve`: memory, not a count, and the body read whole before the app sees it.

Contract (`Guard`, ASGI middleware round the app). Each request at work holds
`REQUEST_BYTES` plus the bytes of its body received so far, and a worker
holds at most `IN_FLIGHT_BYTES` in all: thousands of small requests are
admitted at once, four of the largest, and a slow upload holds only what it
has sent, so slow uploads cannot lock the others out. A request that does not
fit is a 503 with `Retry-After`, before its body when its Content-Length says
it cannot fit, else as soon as it would pass the budget. The body is read
whole before the app runs: over `MAX_UPLOAD_BYTES` (or a lower limit given
for a path, as the Open Inference Protocol's) it is a 413 (before it is
read when declared), not all there within `BODY_TIMEOUT` a 408, shorter than
its Content-Length a 400. After an upload of `REBALANCE_BYTES` or more the
answer closes the connection, so the client's next one lands on whichever
worker the kernel picks. Every answer, the app's and these, is counted in
the worker's metrics. Refusals are JSON {"error": "<one sentence>"}, like
every answer of the app.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digits.serve.headers import byte_count
from digits.serve.metrics import Metrics

# The whole request body, multipart framing included. A phone photo is a few
# megabytes; anything bigger is refused before it is read, let alone decoded.
MAX_UPLOAD_BYTES = 10 * 2**20
# Memory of the requests at work in one worker (reading their body, waiting to
# be decoded, or classified): what they hold of their bodies, plus a fixed
# cost each. A body is held several times over at its peak (as received,
# joined, its picture copied out of the form): 32 uploads of 10 MiB at once,
# admitted against a budget of 128 MiB, took a worker past 500 MB. With 48 MiB,
# four of the largest uploads are at work at once, or 3,000 small requests.
IN_FLIGHT_BYTES = 48 * 2**20
REQUEST_BYTES = 16 * 2**10
# After an upload this large (a photo: a 2 MP one is 100 KiB and more, a
# drawing 5-20 KiB; its decode costs far more than a new connection), the
# answer closes the connection: the client's next one is placed afresh by the
# kernel (`SO_REUSEPORT`), so a few kept-alive clients of photos cannot pile
# their work onto one worker (8 such clients split 1/7 in one run of three).
REBALANCE_BYTES = 32 * 2**10
BODY_TIMEOUT = 30.0
RETRY_AFTER_SECONDS = 1


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


class Guard:
    """ASGI middleware: memory admission, body read whole (size, deadline, length), metrics of every answer."""

    def __init__(self, app: ASGIApp, metrics: Metrics, body_limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.metrics = metrics
        # Path prefixes whose bodies have a lower limit than `MAX_UPLOAD_BYTES`, the first that matches.
        self.body_limits = dict(body_limits or {})
        self.in_flight_bytes = 0  # what the requests at work hold, `REQUEST_BYTES` each plus their bodies

    def body_limit(self, path: str) -> int:
        """The most bytes a body sent to `path` may hold."""
        return next((limit for prefix, limit in self.body_limits.items() if path.startswith(prefix)), MAX_UPLOAD_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 499  # nginx's "client closed the request": no answer was sent
        rebalance = False

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if rebalance:
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            if scope["method"] not in ("POST", "PUT", "PATCH"):
                await self.app(scope, receive, send_and_note)
                return
            holding = _Holding(self)
            try:
                holding.take(REQUEST_BYTES)
                body = await _read_body(scope, receive, holding, self.body_limit(scope["path"]))
                rebalance = body is not None and len(body) >= REBALANCE_BYTES
                if body is not None:
                    await self.app(scope, _replay(body, receive), send_and_note)
            except _Refusal as refusal:
                headers = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())] if refusal.status == 503 else []
                await _send_error(send_and_note, refusal.status, refusal.message, headers)
            finally:
                holding.release()
        finally:
            self.metrics.observe(scope["path"], scope["method"], status, time.perf_counter() - started)


class _Holding:
    """What one request holds of its worker's memory for requests at work (`Guard.in_flight_bytes`)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.bytes = 0

    def fits(self, size: int) -> bool:
        return self.guard.in_flight_bytes + size <= IN_FLIGHT_BYTES

    def take(self, size: int) -> None:
        """Hold `size` more bytes, or raise the 503 that says the memory is taken."""
        if not self.fits(size):
            raise self.refusal()
        self.guard.in_flight_bytes += size
        self.bytes += size

    def release(self) -> None:
        self.guard.in_flight_bytes -= self.bytes
        self.bytes = 0

    @staticmethod
    def refusal() -> _Refusal:
        return _Refusal(
            503,
            f"the server's memory for requests at work ({IN_FLIGHT_BYTES // 2**20} MiB) is taken; "
            f"retry in {RETRY_AFTER_SECONDS} s.",
        )


async def _read_body(scope: Scope, receive: Receive, holding: _Holding, limit: int) -> bytes | None:
    """The whole body, or _Refusal (413 past `limit` bytes, 408, 400, or 503 from `holding`); None when the
    client has gone.

    Each chunk is held from the worker's memory as it arrives.
    """
    declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
    if declared is not None and not declared.isdigit():  # HTTP parsers refuse it; other ASGI servers may not
        raise _Refusal(400, "the Content-Length header is not a byte count.")
    declared = byte_count(declared.decode("ascii")) if declared is not None else None
    too_large = _Refusal(413, f"the upload is over the limit of {limit / 2**20:g} MiB.")
    if declared is not None and declared > limit:
        raise too_large
    if declared is not None and not holding.fits(declared):  # refused before it is sent, not half-way
        raise holding.refusal()
    chunks, size = [], 0
    deadline = asyncio.get_running_loop().time() + BODY_TIMEOUT
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise _Refusal(408, f"the request body did not arrive within {BODY_TIMEOUT:.0f} s.") from None
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        holding.take(len(chunk))
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if declared is not None and size < declared:
        raise _Refusal(400, f"the body ended after {size} of the {declared} bytes its Content-Length declares.")
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # after the body: wait for the disconnect, as a server would
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _send_error(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
