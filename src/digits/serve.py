"""`digits serve`: the HTTP API and the drawing page, over one Recognizer.

    POST /predict   one digit per image     -> {"digit", "confidence", "top3", "box", "status"}
    POST /read      every line of digits    -> {"text", "lines": [{"text", "box", "digits": [...]}]}
    GET  /health                            -> {"status", "model"}
    GET  /                                  the page: draw a digit or upload a photo

Uploads are multipart/form-data with the picture in the field `image`. Bad
input gets a 4xx status and {"error": "<one sentence>"}: 400 for a body that
is not valid multipart, 413 over `MAX_UPLOAD_BYTES`, 422 when the request is
whole but holds no usable picture (no `image` field, not an image). A
picture with no digit is an answer, not an error: status "no digit found".

Like `digits predict`, this module never imports TensorFlow.
"""

from __future__ import annotations

import os
from importlib.resources import files

from fastapi import FastAPI, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException

from digits.picture import ImageError, load_image
from digits.reader import Reader

# The whole request body, multipart framing included. A phone photo is a few
# megabytes; anything bigger is refused before it is read, let alone decoded.
MAX_UPLOAD_BYTES = 10 * 2**20


def create_app(model: str | os.PathLike | None = None) -> FastAPI:
    """The app, with its model loaded now: a bad model raises ModelError here, not at the first request.

    `model` is a run folder or an `.onnx` file; None serves the model the package ships.
    """
    reader = Reader(model)
    page = files("digits").joinpath("static/index.html").read_text(encoding="utf-8")
    app = FastAPI(
        title="digits",
        exception_handlers={
            ImageError: _unreadable_image,
            RequestValidationError: _invalid_request,
            413: _too_large,
            StarletteHTTPException: _http_error,
        },
    )

    @app.middleware("http")
    async def refuse_declared_oversize(request: Request, call_next):
        # The routes' max_body_size counts bytes as they arrive (chunked
        # uploads, lying headers), but answers a Content-Length over the limit
        # in plain text. Say it in JSON, before a byte of the body is read.
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
            return _too_large(request, None)
        return await call_next(request)

    # Plain `def` endpoints: inference is CPU-bound, so FastAPI runs them in its threadpool.

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": str(reader.model_path)}

    @app.post("/predict", max_body_size=MAX_UPLOAD_BYTES)
    def predict(image: UploadFile) -> dict:
        return reader.read_digit(_open(image)).to_dict()

    @app.post("/read", max_body_size=MAX_UPLOAD_BYTES)
    def read(image: UploadFile) -> dict:
        return reader.read_page(_open(image)).to_dict()

    return app


def _open(upload: UploadFile) -> Image.Image:
    return load_image(upload.file.read())


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _unreadable_image(request: Request, err: ImageError) -> JSONResponse:
    return _error(422, str(err))


def _invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
    # FastAPI's default is a list of pydantic errors under "detail"; the one
    # thing a client can get wrong here is the file field.
    return _error(422, "send the picture as multipart/form-data, in a file field named 'image'.")


def _too_large(request: Request, err: StarletteHTTPException | None) -> JSONResponse:
    return _error(413, f"the upload is over the limit of {MAX_UPLOAD_BYTES // 2**20} MiB.")


def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    # Starlette's own faults (malformed multipart, unknown path, wrong method) and ours.
    return JSONResponse({"error": err.detail}, status_code=err.status_code, headers=err.headers)
