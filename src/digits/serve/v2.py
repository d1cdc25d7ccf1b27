"""The Open Inference Protocol (KServe v2, REST), beside our own API: what Triton and KServe clients speak.

    GET  /v2                          server metadata
    GET  /v2/health/live              200 while the process runs
    GET  /v2/health/ready             200 once the model is loaded (it is before the first request)
    GET  /v2/models/digits            model metadata: input "image", outputs "probabilities" (10 digits,
                                      or 11 with "not a digit") and "digit" (-1 for "not a digit")
    GET  /v2/models/digits/ready
    POST /v2/models/digits/infer      one input: a (28, 28) or (N, 28, 28) tensor, FP32 in [0, 1] or
                                      UINT8 0-255, white digit on black (MNIST's own format)

and the last three with the version, `/v2/models/digits/versions/1/...`.

Tensors come as JSON ("data", flat or nested) or in the binary tensor
extension (the `Inference-Header-Content-Length` header, as `tritonclient`
sends by default); outputs are returned in binary when the request asks
(`binary_data` per output, or `binary_data_output`), else as JSON. The
images go through the same micro-batcher as the rest of the server, so
the probabilities are `Reader.classify`'s: an image the model gives less
than 0.99 is averaged with its copies turned ±10° (`digits.read.turns`). Errors
are 400 (404 for another model name) with {"error": "<one sentence>"}, as
the protocol says; a body over `MAX_BODY_BYTES` (refused by the admission
guard, before it is read when declared), or JSON over `MAX_JSON_BYTES`, is a 413.

Work per request is bounded: at most `MAX_IMAGES` images, a body of at most
`MAX_BODY_BYTES`, and the JSON is parsed and checked off the event loop (in
the `offload` the server gives, its decode thread). Parsing JSON holds
Python's lock throughout (about 50 ms for 4 MB on one core), which would
stall the event loop all the same: so the JSON part is capped at
`MAX_JSON_BYTES`, and more images go as binary tensors, which cost nothing
to parse. A list or an object costs far more to parse than a number, so the
JSON may hold no more of them than a full request needs (`MAX_JSON_LISTS`,
`MAX_JSON_OBJECTS`). Every field of the wrong type, any nesting depth, any
shape (sizes are Python ints: no wrap-around) and any header is a 4xx, never
a 500.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from digits import __version__
from digits.read.model import as_batch
from digits.read.reader import Reader
from digits.serve.batching import MicroBatcher
from digits.serve.headers import byte_count
from digits.spec import SHAPE

MODEL = "digits"
VERSION = "1"
INPUT = "image"
DATATYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}
MAX_IMAGES = 256
# 256 FP32 images as binary tensors (784 KiB) and their JSON header, with room to spare.
MAX_BODY_BYTES = 2 * 2**20
# The JSON part: 64 FP32 images written out in full, or 256 of UINT8.
MAX_JSON_BYTES = 2**20
# The request's "id", repeated in the answer: room for a UUID or a trace id, not for a payload.
MAX_ID = 256
# json.loads and NumPy build each list and object of the JSON holding Python's lock: 1 MiB of small nested lists
# took 0.2 s to parse, and four clients sending them kept /health waiting up to 2 s. A request needs a list per
# row of its images, one per image and a few more, and a handful of objects; brackets inside strings count too.
MAX_JSON_LISTS = MAX_IMAGES * (SHAPE[0] + 1) + 64
MAX_JSON_OBJECTS = 64
# A value the client sent, in a message: short, and cheap however deeply it is nested (`str` of a list nested
# 960 deep recursed past Python's limit on the event loop).
_SHORT = reprlib.Repr()  # its limits as arguments need Python 3.12
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 40, 40

JSONObject = dict[str, Any]


def router(reader: Reader, batcher: MicroBatcher, offload: Callable[..., Awaitable[Any]]) -> APIRouter:
    """The /v2 routes over `reader` (its model's metadata), `batcher` (inference) and `offload(function, *args)`,
    which runs the parsing off the event loop."""
    routes = APIRouter(prefix="/v2")
    classes = reader.recognizer.num_classes  # 10 digits, or 11 with "not a digit"
    metadata: JSONObject = {
        "name": MODEL,
        "versions": [VERSION],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, *SHAPE]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, classes]},
            {"name": "digit", "datatype": "INT64", "shape": [-1]},
        ],
    }

    @routes.api_route("", methods=["GET", "HEAD"])
    def server_metadata() -> JSONObject:
        return {"name": "digits", "version": __version__, "extensions": ["binary_tensor_data"]}

    @routes.api_route("/health/live", methods=["GET", "HEAD"])
    async def live() -> JSONObject:
        return {"live": True}

    @routes.api_route("/health/ready", methods=["GET", "HEAD"])
    async def ready() -> JSONObject:
        return {"ready": True}

    @routes.api_route("/models/{name}", methods=["GET", "HEAD"])
    def model_metadata(name: str) -> JSONObject:
        _check_model(name)
        return metadata

    @routes.api_route("/models/{name}/ready", methods=["GET", "HEAD"])
    def model_ready(name: str) -> JSONObject:
        _check_model(name)
        return {"name": MODEL, "ready": True}

    @routes.post("/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        _check_model(name)
        body = await request.body()  # at most `MAX_BODY_BYTES`: `Guard` holds /v2/ to it (its `body_limits`)
        header, images = await offload(_parse, body, request.headers.get("inference-header-content-length"))
        probabilities = (await batcher.classify(images)).astype(np.float32)
        digits = [reader.decide(row).digit for row in probabilities]
        tensors: dict[str, np.ndarray] = {
            "probabilities": probabilities,
            "digit": np.array([-1 if d is None else d for d in digits], dtype=np.int64),
        }
        return _answer(header, tensors)

    # The same three with the model's version in the path, as clients that pin one send them.
    @routes.api_route("/models/{name}/versions/{version}", methods=["GET", "HEAD"])
    def version_metadata(name: str, version: str) -> JSONObject:
        _check_model(name, version)
        return metadata

    @routes.api_route("/models/{name}/versions/{version}/ready", methods=["GET", "HEAD"])
    def version_ready(name: str, version: str) -> JSONObject:
        _check_model(name, version)
        return {"name": MODEL, "ready": True}

    @routes.post("/models/{name}/versions/{version}/infer")
    async def version_infer(name: str, version: str, request: Request) -> Response:
        _check_model(name, version)
        return await infer(name, request)

    return routes


def _check_model(name: str, version: str = VERSION) -> None:
    if name != MODEL:
        raise HTTPException(404, f"no model named {name[:40]!r}: this server serves {MODEL!r}.")
    if version != VERSION:
        raise HTTPException(404, f"no version {version[:40]!r} of {MODEL!r}: this server serves version {VERSION!r}.")


def _parse(body: bytes, header_length: str | None) -> tuple[JSONObject, np.ndarray]:
    """The request's JSON header and its images as (N, 28, 28) float32 in [0, 1]."""
    header, binary = _split(body, header_length)
    return header, _images(header, binary)


def _object(value: object, what: str) -> JSONObject:
    """`value` if it is a JSON object, {} if it is absent; else a 400 naming `what`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HTTPException(400, f"{what} must be a JSON object, not {type(value).__name__}.")
    return value


def _split(body: bytes, header_length: str | None) -> tuple[JSONObject, bytes]:
    """The request's JSON header and the binary tensor data after it."""
    if header_length is not None:
        # str.isdigit accepts other scripts' digits ("²", "٣"), which int() refuses.
        if not (header_length.isascii() and header_length.isdigit()) or byte_count(header_length) > len(body):
            raise HTTPException(400, "Inference-Header-Content-Length must be a byte count within the body.")
        cut = byte_count(header_length)
    else:
        cut = len(body)
    if cut > MAX_JSON_BYTES:
        raise HTTPException(
            413,
            f"the inference request's JSON is over {MAX_JSON_BYTES // 2**20} MiB: send the "
            "tensor as binary data (the binary tensor extension), or fewer images per request.",
        )
    if body.count(b"[", 0, cut) > MAX_JSON_LISTS or body.count(b"{", 0, cut) > MAX_JSON_OBJECTS:
        raise HTTPException(
            400,
            f"the inference request's JSON holds more lists or objects than {MAX_IMAGES} images need: "
            'send "data" flat, or nested as its shape.',
        )
    try:
        header = json.loads(body[:cut])
    except (ValueError, UnicodeDecodeError) as err:
        if "int_max_str_digits" in str(err):  # Python's own advice, to set it higher, is not the client's to take
            raise HTTPException(400, "the inference request holds a number of over 4,300 digits.") from None
        raise HTTPException(400, f"the inference request is not JSON ({err}).") from None
    except RecursionError:
        raise HTTPException(400, "the inference request's JSON is nested too deeply.") from None
    if not isinstance(header, dict):
        raise HTTPException(400, 'the inference request must be a JSON object with "inputs".')
    return header, body[cut:]


def _images(header: JSONObject, binary: bytes) -> np.ndarray:
    """The one input tensor as (N, 28, 28) float32 in [0, 1]."""
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise HTTPException(400, f"send exactly one input, {INPUT!r}: a (28, 28) or (N, 28, 28) tensor.")
    tensor = inputs[0]
    if tensor.get("name") != INPUT:  # as Triton answers: a client that names another input sends something else
        raise HTTPException(400, f"the model's input is {INPUT!r}, not {_SHORT.repr(tensor.get('name'))}.")
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise HTTPException(
            400, f"input datatype {_SHORT.repr(datatype)} is not supported: send FP32 (0-1) or UINT8 (0-255)."
        )
    if not (
        isinstance(shape, list)
        and all(type(n) is int and n >= 0 for n in shape)
        and (shape[-2:] == list(SHAPE) and len(shape) in (2, 3))
    ):
        raise HTTPException(400, f"input shape {_SHORT.repr(shape)} is not (28, 28) or (N, 28, 28).")
    if not 0 < math.prod(shape[:-2]) <= MAX_IMAGES:  # Python ints: a shape of 2**60 + 1 images stays that
        raise HTTPException(
            400,
            f"input shape {_SHORT.repr(shape)} holds no image or more than {MAX_IMAGES}: send 1 to {MAX_IMAGES} images "
            "per request.",
        )
    dtype = DATATYPES[datatype]
    count = math.prod(shape)
    size = _object(tensor.get("parameters"), f"input {INPUT!r}'s parameters").get("binary_data_size")
    if size is None:
        if binary:
            raise HTTPException(
                400, f"the body holds {len(binary)} bytes after the JSON, but the input declares no binary_data_size."
            )
        values = _json_values(tensor.get("data"), count, shape)
        if dtype == np.uint8 and not ((values >= 0) & (values <= 255) & (values == np.floor(values))).all():
            raise HTTPException(400, "UINT8 pixels must be whole numbers from 0 to 255, white digit on black.")
        with np.errstate(over="ignore"):  # an FP32 pixel of 1e300 becomes inf, refused below
            values = values.astype(dtype)
    elif type(size) is not int or size != count * dtype.itemsize:
        raise HTTPException(
            400, f"binary_data_size must be the tensor's byte count, {count * dtype.itemsize} for {count} {datatype}."
        )
    elif size != len(binary):  # the binary part is this one tensor, whole: no fewer bytes and none after it
        raise HTTPException(
            400, f"the body holds {len(binary)} bytes after the JSON, where binary_data_size says {size}."
        )
    else:
        values = np.frombuffer(binary, dtype=dtype, count=count)
    images = values.reshape([-1, *SHAPE])
    if dtype != np.uint8 and (not np.isfinite(images).all() or images.min(initial=0) < 0 or images.max(initial=0) > 1):
        raise HTTPException(400, "FP32 pixels must be in [0, 1], white digit on black (send UINT8 for 0-255).")
    return as_batch(images)


# What a JSON value that is no number was, in JSON's words.
_JSON_NAMES = {type(None): "null", bool: "true or false", dict: "an object", str: "text"}
_UNEVEN = f'input {INPUT!r}: "data" is nested unevenly; its lists must follow the shape.'


def _json_values(data: object, count: int, shape: list[int]) -> np.ndarray:
    """A JSON tensor's "data" as float64: `count` numbers, flat or nested, or a 400 that says what is wrong."""
    if data is None:
        raise HTTPException(400, f'input {INPUT!r} has neither "data" nor a binary_data_size parameter.')
    try:
        nested = np.array(data, dtype=object)
    except ValueError:  # NumPy's word for lists of unequal lengths
        raise HTTPException(400, _UNEVEN) from None
    except RecursionError:
        raise HTTPException(400, f'input {INPUT!r}: "data" is nested too deeply.') from None
    if nested.ndim > 1 and list(nested.shape) != shape:  # flat, or nested as the shape says
        raise HTTPException(400, _UNEVEN)
    values = nested.reshape(-1)
    # bool is an int to Python, and NumPy would take true as 1: JSON keeps them apart.
    if not_numbers := sorted({type(value) for value in values} - {int, float}, key=lambda kind: kind.__name__):
        if list in not_numbers:  # lists of unequal lengths stay lists in an array of objects
            raise HTTPException(400, _UNEVEN)
        raise HTTPException(
            400, f'input {INPUT!r}: "data" must hold numbers only, not {_JSON_NAMES.get(not_numbers[0], "text")}.'
        )
    if values.size != count:
        raise HTTPException(400, f'input {INPUT!r}: "data" holds {values.size} numbers; shape {shape} needs {count}.')
    try:
        return values.astype(np.float64)
    except OverflowError:  # an integer past float64's range
        raise HTTPException(400, f'input {INPUT!r}: "data" holds a number too large for any pixel.') from None


def _answer(header: JSONObject, tensors: dict[str, np.ndarray]) -> Response:
    """The inference response: the outputs asked for (all when none is named), in JSON or binary as asked."""
    datatypes = {"probabilities": "FP32", "digit": "INT64"}
    everything_binary = _flag(header.get("parameters"), "binary_data_output", False, "the request's parameters")
    requested = header.get("outputs") or [{"name": name} for name in tensors]
    if not isinstance(requested, list) or len(requested) > len(tensors):
        raise HTTPException(
            400, f'the request\'s outputs must be a list of at most {len(tensors)} objects, each with a "name".'
        )
    outputs: list[JSONObject] = []
    result: JSONObject = {"model_name": MODEL, "model_version": VERSION, "outputs": outputs}
    if "id" in header:
        result["id"] = _request_id(header["id"])
    chunks = []
    for output in requested:
        name = output.get("name") if isinstance(output, dict) else None
        if not isinstance(name, str) or name not in tensors:
            raise HTTPException(400, f"no output named {_SHORT.repr(name)}: there are {', '.join(map(repr, tensors))}.")
        if any(entry["name"] == name for entry in outputs):
            raise HTTPException(400, f"the output {name!r} is asked for twice: name each output once.")
        tensor = tensors[name]
        entry: JSONObject = {"name": name, "datatype": datatypes[name], "shape": list(tensor.shape)}
        if _flag(output.get("parameters"), "binary_data", everything_binary, f"output {name!r}'s parameters"):
            data = tensor.astype(tensor.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            entry["data"] = tensor.reshape(-1).tolist()
        outputs.append(entry)
    if not chunks:
        return JSONResponse(result)
    head = json.dumps(result).encode()
    return Response(
        head + b"".join(chunks),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )


def _flag(parameters: object, key: str, default: bool, what: str) -> bool:
    """A true-or-false parameter, `default` when absent; the text "false" is no false (it was taken for true)."""
    value = _object(parameters, what).get(key, default)
    if not isinstance(value, bool):
        raise HTTPException(400, f"{what}: {key} must be true or false, not {_SHORT.repr(value)}.")
    return value


def _request_id(value: object) -> str:
    """The request's "id", which the answer repeats: a string (as the protocol has it) of at most `MAX_ID` characters."""
    if not isinstance(value, str) or len(value) > MAX_ID:
        raise HTTPException(400, f'the request\'s "id" must be a string of at most {MAX_ID} characters.')
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise HTTPException(400, 'the request\'s "id" holds a lone surrogate, which is not text.') from None
    return value
