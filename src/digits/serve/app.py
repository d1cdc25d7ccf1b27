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
`digits.read.load`'s budget (checked from the header), and pictures are
read on one thread per worker, so a worker reads one picture at a time; only
a small PNG (`prescan.small_png`: a few pixels, a few KiB) is decoded
on the event loop itself, and goes from there to the model when it is
already in MNIST's format (`prepare` below). Admission is by memory, not by
count (`digits.serve.admission`, where the limits above live). Concurrent
requests share model calls (`digits.serve.batching`). A POST to `/predict` or `/read`, the routes
that carry the load, and a GET or HEAD of `/health` go from `Guard` straight to their endpoint (`_straight_to`),
past FastAPI's middleware and router, their faults answered by the same handlers. The app keeps no state between
requests: run as many replicas as you like behind a load balancer.

Like `digits predict`, this module never imports TensorFlow.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from importlib.resources import files
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from PIL import Image
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from digits.errors import ImageError
from digits.read.load import load_image
from digits.read.pipeline import Prepared, ready_for_model
from digits.read.prescan import small_png
from digits.read.reader import Reader
from digits.serve.admission import Guard
from digits.serve.batching import MicroBatcher
from digits.serve.metrics import Metrics
from digits.serve.multipart import PARSE_ON_LOOP_BYTES, image_field

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


def create_app(model: str | os.PathLike[str] | None = None) -> Guard:
    """The app, its model loaded now: a bad model raises ModelError here, not at the first request."""
    reader = Reader(model, threads=1)  # one worker per core: each model call on one thread
    metrics = Metrics()
    batcher = MicroBatcher(reader.classify, MAX_BATCH, MAX_WAIT_SECONDS, metrics.batch_size.observe)
    decoder = ThreadPoolExecutor(1, thread_name_prefix="decode")  # one picture read at a time: bounded memory
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
        # Operation ids are the endpoints' names (`infer`, `model_metadata`): FastAPI's own add the path and
        # one of the route's methods, picked from a set, so they changed from one process to the next.
        generate_unique_id_function=lambda route: route.name,
    )

    async def decode(function: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(decoder, function, *args)

    async def prepare(data: bytes) -> Prepared:
        """`reader.prepare` for one uploaded digit, without --explain's steps.

        A small PNG (`prescan.small_png`: its decode is bounded by a few pixels) is decoded here, on the
        event loop, and if it is already in MNIST's format it goes to the model as it is: a 28×28 crop
        costs less that way than the hop to the decode thread and back, which was a third of such a
        request's CPU. Everything else, the analysis of a small picture included (a 32×32 pattern of
        one-pixel rings took 2 s before that analysis was bounded), runs on the decode thread.
        """
        picture: bytes | Image.Image = data
        if small_png(data):
            picture = load_image(data)
            if (ready := ready_for_model(picture)) is not None:
                return ready
        return await decode(partial(reader.prepare, explain=False), picture)

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
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": str(reader.model_path)})

    @app.api_route("/metrics", methods=["GET", "HEAD"])
    def prometheus() -> Response:
        return metrics.exposition()

    async def picture(request: Request) -> bytes:
        """The bytes of the one file in the form's `image` field (`digits.serve.multipart`)."""
        body, content_type = await request.body(), request.headers.get("content-type", "")
        if len(body) <= PARSE_ON_LOOP_BYTES:
            return image_field(body, content_type)
        return await decode(image_field, body, content_type)

    async def predict(request: Request) -> JSONResponse:
        explain = _flag(request, "explain")
        prepared = await prepare(await picture(request))
        if prepared.readable:
            probabilities = (await batcher.classify(prepared.image[None]))[0]
            digit = reader.decide(probabilities, prepared.box)
        else:
            digit = reader.answer(prepared)  # "no digit found", without a model call
        answer = digit.to_dict()
        if explain:
            answer["model_input"] = np.round(prepared.image * 255).astype(np.uint8).tolist()
        return JSONResponse(answer)

    async def read(request: Request) -> JSONResponse:
        # A page's digits already go to the model in one call; pages are not batched across requests.
        return JSONResponse((await decode(reader.read_page, await picture(request))).to_dict())

    # The routes that carry the load, and the health check that must answer beside them.
    direct = {("POST", "/predict"): predict, ("POST", "/read"): read, ("GET", "/health"): health}
    for (method, path), endpoint in direct.items():  # registered too: the router answers other methods (405)
        app.add_route(path, endpoint, methods=[method])
    from digits.serve.v2 import MAX_BODY_BYTES, router

    app.include_router(router(reader, batcher, decode))
    app.openapi = partial(_schema_of_gets, app)  # type: ignore[method-assign]
    return Guard(_straight_to(direct, handlers, app), metrics, body_limits={"/v2/": MAX_BODY_BYTES})


def _straight_to(
    endpoints: Mapping[tuple[str, str], Callable[[Request], Awaitable[Response]]],
    handlers: Mapping[int | type[Exception], Callable[[Request, Any], JSONResponse]],
    app: FastAPI,
) -> ASGIApp:
    """`app`, but a request for one of `endpoints` (by method and path; HEAD as GET) goes straight to
    its endpoint, its exceptions answered by the app's own `handlers`.

    FastAPI's middleware (errors, exceptions, body limit, telemetry) and router cost a third of a
    28×28 request's CPU, for nothing these endpoints need: `Guard` has read and bounded any body,
    they take no dependencies, and their faults get the same answers here, logged once (Starlette
    re-raised them for uvicorn to log again) and with the connection kept alive. Every other request
    goes through the app.
    """

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (endpoint := endpoints.get((_as_get(scope["method"]), scope["path"]))) is None:
            try:
                return await app(scope, receive, send)
            except Exception:
                if scope.get(_LOGGED):  # answered and logged by `_internal_error`; Starlette raises it again
                    return
                raise
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as err:
            # As Starlette finds one: the handler of the nearest class in the exception's MRO.
            handler = next((handlers[kind] for kind in type(err).__mro__ if kind in handlers), _internal_error)
            try:
                response = handler(request, err)
            except Exception as fault:  # a handler's own fault is still an answer in JSON
                response = _internal_error(request, fault)
        await response(scope, receive, send)

    return dispatch


def _schema_of_gets(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI schema with HEAD left out, as GET implies it (RFC 9110: GET without the body).

    A route that answers both lists its one operation id under each, which
    FastAPI warns of and client generators refuse; the HEAD entries go.
    """
    if app.openapi_schema is None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Duplicate Operation ID")
            schema = FastAPI.openapi(app)  # kept as app.openapi_schema: the HEAD entries leave it in place
        for operations in schema["paths"].values():
            operations.pop("head", None)
        return schema
    return app.openapi_schema


def _as_get(method: str) -> str:
    """A request's method as routes are told apart: HEAD is GET without the body."""
    return "GET" if method == "HEAD" else method


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


_BOOLEAN = TypeAdapter(bool)


def _flag(request: Request, name: str) -> bool:
    """A true/false query parameter, read as FastAPI reads one ("1", "true", "yes", "on"...); absent is False."""
    value = request.query_params.get(name)
    try:
        return value is not None and _BOOLEAN.validate_python(value)
    except ValidationError as err:
        raise RequestValidationError([{**err.errors()[0], "loc": ("query", name)}]) from None


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


# The order `Allow` names methods in; Starlette's follows a set's, which changes from one process to the next.
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    # Starlette's own faults (unknown path, wrong method) and ours.
    headers = dict(err.headers or {})
    if "Allow" in headers:
        methods = headers["Allow"].split(", ")
        headers["Allow"] = ", ".join(sorted(methods, key=lambda m: (_METHOD_ORDER + (m,)).index(m)))
    return _error(err.status_code, err.detail, headers)


# Set in a request's scope once its fault is logged, so that it is logged once (uvicorn would log it again).
_LOGGED = "digits.fault_logged"


def _internal_error(request: Request, err: Exception) -> JSONResponse:
    import logging

    logging.getLogger("digits.serve.app").error("%s %s failed", request.method, request.url.path, exc_info=err)
    request.scope[_LOGGED] = True
    return _error(500, "the server failed on this request; the fault is logged.")
