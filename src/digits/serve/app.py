"""`digits serve`: the HTTP API, the Open Inference Protocol and the drawing page, over one Reader.

    POST /predict   one digit per picture   -> {"digit", "confidence", "top3", "box", "status"}
    POST /read      every line of digits    -> {"text", "lines": [{"text", "box", "digits": [...]}]}
    GET  /health                            -> {"status", "model"}
    GET  /metrics                           Prometheus: requests, latency, batch sizes, errors by code
    GET  /                                  the page: draw a digit or photograph one
    GET  /model.onnx, /static/...           the served model and the page's scripts, which run it in the
                                            browser (onnxruntime-web, bundled): drawings are read offline
    /v2/...                                 the Open Inference Protocol (KServe v2), see `digits.serve.v2`

Uploads are multipart/form-data with the picture in ONE field `image`;
`?explain=1` adds the 28×28 image the model saw ("model_input", rows of
0-255). HEAD works wherever GET does. Every answer that is not a success is
JSON {"error": "<one sentence>"} (a picture without digits is an answer:
status "no digit found"):

    400  the multipart body is malformed, or shorter than its Content-Length
    404 / 405  no such path / method
    408  the body did not arrive within `BODY_TIMEOUT` seconds
    413  the body is over `MAX_UPLOAD_BYTES`
    422  the request is whole but holds no usable picture (not multipart,
         no or two `image` fields, not an image, over the decode budget)
    503  this worker's memory for requests at work (`IN_FLIGHT_BYTES`) is
         taken; retry after the `Retry-After` seconds

Work per request is bounded: the body by `MAX_UPLOAD_BYTES`, the decode by
`digits.read.load`'s budget (checked from the header), and decoding runs on
one thread per worker, so a worker decodes one picture at a time. Admission
is by memory, not by count: each request at work holds `REQUEST_BYTES` plus
the bytes of its body received so far, and a worker holds at most
`IN_FLIGHT_BYTES` in all. Thousands of small requests are admitted at once,
four of the largest; a slow upload holds only what it has sent, so slow
uploads cannot lock the others out. A request that does not fit is a 503,
before its body when its Content-Length says it cannot fit, else as soon as
it would pass the budget. After an upload of `REBALANCE_BYTES` or more the
answer closes the connection, so the client's next one lands on whichever
worker the kernel picks. Concurrent requests share model calls
(`digits.serve.batching`). The app keeps no state between requests: run as many
replicas as you like behind a load balancer.

Like `digits predict`, this module never imports TensorFlow.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digits.errors import ImageError
from digits.read.reader import Reader
from digits.serve.batching import MicroBatcher
from digits.serve.metrics import Metrics
from digits.serve.multipart import CloseDelimiter

# The whole request body, multipart framing included. A phone photo is a few
# megabytes; anything bigger is refused before it is read, let alone decoded.
MAX_UPLOAD_BYTES = 10 * 2**20
# Memory of the requests at work in one worker (reading their body, waiting to
# be decoded, or classified): what they hold of their bodies, plus a fixed
# cost each. A body is held about four times over at its peak (as received,
# joined, parsed out of the form, read back): 32 uploads of 10 MiB at once,
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
# Micro-batching: wait at most this long for company before a model call.
MAX_BATCH = 64
MAX_WAIT_SECONDS = 0.002
# The page's scripts, under /static/: its reader, and onnxruntime-web (from npm; see static/ort/NOTICE).
ASSETS = {
    "offline.js": "text/javascript",
    "ort/ort.wasm.bundle.min.mjs": "text/javascript",
    "ort/ort-wasm-simd-threaded.wasm": "application/wasm",
}
# The variable that tells uvicorn's worker processes which model to serve.
MODEL_VARIABLE = "DIGITS_SERVE_MODEL"

_T = TypeVar("_T")


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


class Guard:
    """ASGI middleware: memory admission, body read whole (size, deadline, length), metrics of every answer."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.in_flight_bytes = 0  # what the requests at work hold, `REQUEST_BYTES` each plus their bodies

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
                body = await _read_body(scope, receive, holding)
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


async def _read_body(scope: Scope, receive: Receive, holding: _Holding) -> bytes | None:
    """The whole body, or _Refusal (413, 408, 400, or 503 from `holding`); None when the client has gone.

    Each chunk is held from the worker's memory as it arrives.
    """
    declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
    if declared is not None and not declared.isdigit():  # HTTP parsers refuse it; other ASGI servers may not
        raise _Refusal(400, "the Content-Length header is not a byte count.")
    declared = int(declared) if declared is not None else None
    too_large = _Refusal(413, f"the upload is over the limit of {MAX_UPLOAD_BYTES // 2**20} MiB.")
    if declared is not None and declared > MAX_UPLOAD_BYTES:
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
        if size > MAX_UPLOAD_BYTES:
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


def create_app(model: str | os.PathLike[str] | None = None) -> Guard:
    """The app, its model loaded now: a bad model raises ModelError here, not at the first request."""
    reader = Reader(model, threads=1)  # one worker per core: each model call on one thread
    metrics = Metrics()
    batcher = MicroBatcher(reader.classify, MAX_BATCH, MAX_WAIT_SECONDS, metrics.batch_size.observe)
    decoder = ThreadPoolExecutor(1, thread_name_prefix="decode")  # one picture at a time: bounded memory
    page = _page_with_temperature(reader.recognizer.temperature)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()
        decoder.shutdown(wait=False, cancel_futures=True)

    handlers: dict[int | type[Exception], Callable[[Request, Any], JSONResponse]] = {
        ImageError: _unreadable_image,
        RequestValidationError: _invalid_request,
        StarletteHTTPException: _http_error,
        Exception: _internal_error,
    }
    app = FastAPI(
        title="digits",
        lifespan=lifespan,
        # FastAPI annotates handlers as coroutine functions; Starlette also takes plain ones (run in its
        # thread pool), as these are.
        exception_handlers=handlers,  # type: ignore[arg-type]
    )

    async def decode(function: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(decoder, function, *args)

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def index() -> str:
        return page

    app.router.redirect_slashes = False  # "/health/" is a 404 in JSON, not a 307 to the client's own Host

    @app.api_route("/model.onnx", methods=["GET", "HEAD"])
    def model_file() -> FileResponse:
        return _WholeFile(reader.model_path, media_type="application/octet-stream")

    @app.api_route("/static/{name:path}", methods=["GET", "HEAD"])
    def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise HTTPException(404, "Not Found")
        return _WholeFile(str(files("digits.serve").joinpath("static", name)), media_type=ASSETS[name])

    # On the event loop itself, not Starlette's thread pool: under load, a hop to a thread and
    # back waits behind every request in flight, and a health check must answer fast.
    @app.api_route("/health", methods=["GET", "HEAD"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": str(reader.model_path)}

    @app.api_route("/metrics", methods=["GET", "HEAD"])
    def prometheus() -> Response:
        return metrics.exposition()

    @app.post("/predict")
    async def predict(request: Request, explain: bool = False) -> JSONResponse:
        prepared = await decode(reader.prepare, await _picture(request))
        if prepared.has_ink:
            probabilities = (await batcher.classify(prepared.image[None]))[0]
            digit = reader.decide(probabilities, prepared.box)
        else:
            digit = reader.answer(prepared)  # "no digit found", without a model call
        answer = digit.to_dict()
        if explain:
            answer["model_input"] = np.round(prepared.image * 255).astype(np.uint8).tolist()
        return JSONResponse(answer)

    @app.post("/read")
    async def read(request: Request) -> JSONResponse:
        # A page's digits already go to the model in one call; pages are not batched across requests.
        return JSONResponse((await decode(reader.read_page, await _picture(request))).to_dict())

    from digits.serve.v2 import router

    app.include_router(router(reader, batcher, decode))
    return Guard(app, metrics)


def _page_with_temperature(temperature: float) -> str:
    """index.html, its `data-temperature` the model's: the page's own reader calibrates as the server does."""
    page = files("digits.serve").joinpath("static/index.html").read_text(encoding="utf-8")
    marker = 'data-temperature="1"'
    if page.count(marker) != 1:
        raise RuntimeError(f"static/index.html must hold {marker} exactly once, for the model's temperature.")
    return page.replace(marker, f'data-temperature="{temperature!r}"')


def app_from_environment() -> Guard:
    """The app factory uvicorn's worker processes call: the model comes from `MODEL_VARIABLE`."""
    return create_app(os.environ.get(MODEL_VARIABLE))


async def _picture(request: Request) -> bytes:
    """The bytes of the one file in the form's `image` field."""
    delimiter = CloseDelimiter(request.headers.get("content-type", ""))

    async def receive() -> Message:
        message = await request.receive()
        if message["type"] == "http.request":
            delimiter.feed(message.get("body", b""))
        return message

    try:
        form = await Request(request.scope, receive).form(max_files=4, max_fields=16)
    except StarletteHTTPException as err:  # Starlette's word for a malformed multipart body
        raise HTTPException(400, f"the body is not valid multipart/form-data ({err.detail.rstrip('.')}).") from None
    if delimiter.cut_off:
        raise HTTPException(400, "the body is not valid multipart/form-data (it ends before its closing boundary).")
    images = form.getlist("image")
    if not images or isinstance(images[0], str):
        raise HTTPException(422, "send the picture as multipart/form-data, in a file field named 'image'.")
    if len(images) > 1:
        raise HTTPException(422, f"send one picture per request: the form has {len(images)} fields named 'image'.")
    return await images[0].read()


class _WholeFile(FileResponse):
    """A file sent whole, its Range header ignored (RFC 9110 allows it): the files are small, and
    Starlette answers a bad Range in plain text, where every error here is JSON."""

    def __init__(self, path: str | os.PathLike[str], media_type: str) -> None:
        super().__init__(path, media_type=media_type)
        del self.headers["accept-ranges"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(name, value) for name, value in scope["headers"] if name.lower() != b"range"]
        await super().__call__({**scope, "headers": headers}, receive, send)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    # A message may quote what the client sent: a lone surrogate there would not encode as UTF-8.
    sayable = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"error": sayable}, status_code=status, headers=headers)


def _unreadable_image(request: Request, err: ImageError) -> JSONResponse:
    return _error(422, str(err))


def _invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
    # FastAPI's default is a list of pydantic errors under "detail": one sentence instead.
    first = err.errors()[0] if err.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return _error(422, f"{where or 'the request'}: {first.get('msg', 'is not valid')}.")


def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    # Starlette's own faults (unknown path, wrong method) and ours.
    return _error(err.status_code, err.detail, err.headers)


def _internal_error(request: Request, err: Exception) -> JSONResponse:
    import logging

    logging.getLogger("digits.serve.app").error("%s %s failed", request.method, request.url.path, exc_info=err)
    return _error(500, "the server failed on this request; the fault is logged.")
