"""`/v2` (the Open Inference Protocol) under hostile requests: every one a 4xx in JSON, parsed off the event loop."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient

from digits.serve import app as serve
from digits.serve import v2 as kserve

INFER = "/v2/models/digits/infer"


@pytest.fixture(scope="module")
def client():
    with TestClient(serve.create_app()) as client:  # the shipped model: no training needed
        yield client


def image_input(**changes) -> dict:
    tensor = {"name": "image", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}
    return {"inputs": [{**tensor, **changes}]}


HOSTILE = {
    "parameters a list": {**image_input(), "parameters": [1, 2]},
    "input parameters a string": image_input(parameters="binary"),
    "outputs a number": {**image_input(), "outputs": 5},
    "outputs a string": {**image_input(), "outputs": "digit"},
    "output name a list": {**image_input(), "outputs": [{"name": ["digit"]}]},
    "output parameters a list": {**image_input(), "outputs": [{"name": "digit", "parameters": [True]}]},
    "another input's name": image_input(name="x"),
    "no input name": {"inputs": [{k: v for k, v in image_input()["inputs"][0].items() if k != "name"}]},
    "datatype a list": image_input(datatype=["UINT8"]),
    "datatype an object": image_input(datatype={"a": 1}),
    "shape of 2**60 + 1 images": image_input(shape=[2**60 + 1, 28, 28]),
    "shape with booleans": image_input(shape=[True, 28, 28]),
    "shape of no images": image_input(shape=[0, 28, 28], data=[]),
    "more images than the cap": image_input(shape=[256 + 1, 28, 28], data=[0] * 784 * (256 + 1)),
    "data of strings": image_input(data=["x"] * 784),
    "data of objects": image_input(data=[{}] * 784),
    "data nested 500 deep": json.dumps(image_input(data=None)).replace("null", "[" * 500 + "0" + "]" * 500),
    # An attacker's: one output asked for 10,000 times made a 580 MB answer and lost its worker.
    "an output asked for twice": {**image_input(), "outputs": [{"name": "digit"}, {"name": "digit"}]},
    "more outputs than the model has": {**image_input(), "outputs": [{"name": "digit"}] * 10_000},
    # The answer repeats "id": one that is no JSON text (NaN, a lone surrogate) made a 500.
    "id NaN": json.dumps({**image_input(), "id": "X"}).replace('"X"', "NaN"),
    "id a number": {**image_input(), "id": 1e300},
    "id an object": {**image_input(), "id": {"a": [1]}},
    "id a lone surrogate": json.dumps({**image_input(), "id": "X"}).replace('"X"', '"\\ud800"'),
    "id too long": {**image_input(), "id": "x" * 10_000},
    # NumPy took these, or answered in its own words.
    "data nested unevenly": image_input(data=[[0] * 28] * 27 + [[0] * 3]),
    # The count was right, the nesting not the shape's: taken.
    "data nested other than the shape": image_input(data=[[[0]] * 28] * 28),
    "data nested 15 deep": json.dumps(image_input(data=None)).replace(
        "null", "[" * 14 + ",".join(["0"] * 784) + "]" * 14
    ),
    "a shape of a 4,000-digit number": image_input(shape=[10**4000, 28, 28]),
    "data of nulls": image_input(data=[None] * 784),
    "data of booleans": image_input(data=[True] * 784),
    "data absent": image_input(data=None),
    "data an integer past float64": image_input(data=[10**400] * 784),
    "UINT8 past 255": image_input(data=[256] * 784),
    "UINT8 below 0": image_input(data=[-1] * 784),
    "UINT8 not whole": image_input(data=[0.5] * 784),
    # An attacker's: an output's name nested 960 deep recursed in str() on the event loop (a 500); "false" was true.
    "output name nested 960 deep": json.dumps({**image_input(), "outputs": [{"name": "X"}]}).replace(
        '"X"', "[" * 960 + "]" * 960
    ),
    "binary_data the text false": {
        **image_input(),
        "outputs": [{"name": "digit", "parameters": {"binary_data": "false"}}],
    },
    "binary_data_output a number": {**image_input(), "parameters": {"binary_data_output": 1}},
    "a number of 5,000 digits": json.dumps(image_input()).replace("[1, 28, 28]", "[1" + "0" * 5000 + ", 28, 28]"),
    "data of 100,000 nested lists": json.dumps(image_input(data=None)).replace(
        "null", "[" + ",".join(["[[0]]"] * 100_000) + "]"
    ),
    "binary_data_size a lone surrogate": json.dumps(
        image_input(data=None, parameters={"binary_data_size": "X"})
    ).replace('"X"', '"\\ud800"'),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_inference_requests_are_400s(client, case):
    body = HOSTILE[case] if isinstance(HOSTILE[case], str) else json.dumps(HOSTILE[case])
    response = client.post(INFER, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["error"] and "\n" not in response.json()["error"]
    assert len(response.json()["error"]) < 300  # nothing the client sent is echoed whole


def test_a_long_model_name_is_not_echoed_whole(client):
    response = client.get(f"/v2/models/{'m' * 16_000}/ready")
    assert response.status_code == 404 and len(response.text) < 300


@pytest.mark.parametrize("body", [b"[" * 200_000 + b"]" * 200_000, b'{"inputs": ' + b"[" * 200_000])
def test_json_nested_past_any_stack_is_a_400(client, body):
    response = client.post(INFER, content=body)
    assert response.status_code == 400 and "error" in response.json()


def test_the_words_are_ours_not_numpys(client):
    for case in ("data nested unevenly", "data of strings", "UINT8 past 255", "a number of 5,000 digits"):
        body = HOSTILE[case] if isinstance(HOSTILE[case], str) else json.dumps(HOSTILE[case])
        error = client.post(INFER, content=body).json()["error"]
        assert "array" not in error and "sequence" not in error and "bounds" not in error, error
        assert "sys." not in error, error


def test_json_of_more_lists_than_images_need_is_refused_before_it_is_parsed(client, monkeypatch):
    """1 MiB of small nested lists held Python's lock in json.loads for 0.2 s: four clients sending them kept
    /health waiting up to 2 s. The largest request a client sends, nested as its shape, is still answered."""

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed")

    body = HOSTILE["data of 100,000 nested lists"]
    monkeypatch.setattr(kserve.json, "loads", no_parse)  # json's own: the answer is read after undo()
    response = client.post(INFER, content=body)
    monkeypatch.undo()
    assert response.status_code == 400 and "more lists or objects than 256 images need" in response.json()["error"]
    test_the_largest_request_allowed_is_answered(client)


def test_an_fp32_pixel_past_float32_is_refused_without_a_warning(client, recwarn):
    body = json.dumps(image_input(datatype="FP32", data=[1e300] * 784))
    response = client.post(INFER, content=body)
    assert response.status_code == 400 and "[0, 1]" in response.json()["error"]
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("extra", [b"", b"JUNK"])
def test_bytes_after_the_tensor_are_refused(client, extra):
    """The binary part is the declared tensor, whole: bytes after it (or after JSON data) are a 400, not ignored."""
    header = json.dumps(image_input(data=None, parameters={"binary_data_size": 784})).encode()
    response = client.post(
        INFER, content=header + bytes(784) + extra, headers={"inference-header-content-length": str(len(header))}
    )
    assert response.status_code == (400 if extra else 200), response.text
    header = json.dumps(image_input()).encode()
    response = client.post(INFER, content=header + extra, headers={"inference-header-content-length": str(len(header))})
    assert response.status_code == (400 if extra else 200), response.text
    if extra:
        assert response.json()["error"].startswith("the body holds 4 bytes after the JSON")


@pytest.mark.parametrize("value", ["\u00b2", "1\u00b9", "12 ", "-1", "99999999"])
def test_a_bad_binary_header_length_is_a_400(client, value):
    response = client.post(
        INFER,
        content=json.dumps(image_input()).encode(),
        headers={"inference-header-content-length": value.encode("latin-1")},
    )
    assert response.status_code == 400 and "Inference-Header-Content-Length" in response.json()["error"]


@pytest.mark.parametrize("size", [kserve.MAX_BODY_BYTES + 1, 8 * 2**20 + 1])
def test_a_body_over_the_cap_is_a_413_that_names_it(client, size):
    response = client.post(INFER, content=b" " * size)
    assert response.status_code == 413 and "limit of 2 MiB." in response.json()["error"]


def test_a_body_declared_over_the_cap_is_refused_before_it_is_sent():
    import asyncio

    sent = []

    async def receive():
        raise AssertionError("the body was waited for")

    async def send(message):
        sent.append(message)

    declared = str(kserve.MAX_BODY_BYTES + 1).encode()
    scope = {"type": "http", "method": "POST", "path": INFER, "headers": [(b"content-length", declared)]}
    asyncio.run(serve.create_app()(scope, receive, send))
    assert sent[0]["status"] == 413 and b"limit of 2 MiB." in sent[1]["body"]


def test_a_model_version_in_the_path_is_the_same_model(client):
    versioned = "/v2/models/digits/versions/1"
    assert client.get(versioned).json() == client.get("/v2/models/digits").json()
    assert client.get(f"{versioned}/ready").json() == {"name": "digits", "ready": True}
    assert client.post(f"{versioned}/infer", json=image_input()).json() == client.post(INFER, json=image_input()).json()
    for path in ("/v2/models/digits/versions/2", "/v2/models/digits/versions/2/ready"):
        response = client.get(path)
        assert response.status_code == 404 and "version '2'" in response.json()["error"]
    assert client.post("/v2/models/digits/versions/2/infer", json=image_input()).status_code == 404


def test_the_largest_request_allowed_is_answered(client):
    images = np.zeros((256, 28, 28), np.uint8)
    body = json.dumps(image_input(shape=list(images.shape), data=images.tolist(), parameters=None)).encode()
    response = client.post(INFER, content=body)
    assert response.status_code == 200, response.text
    assert {o["name"]: o["shape"] for o in response.json()["outputs"]}["digit"] == [256]


def test_parsing_runs_off_the_event_loop(client, monkeypatch):
    threads = []
    parse = kserve._parse

    def noting(*args):
        threads.append(threading.current_thread().name)
        return parse(*args)

    monkeypatch.setattr(kserve, "_parse", noting)
    assert client.post(INFER, json=image_input()).status_code == 200
    assert len(threads) == 1 and threads[0].startswith("decode")


def test_json_over_its_cap_is_a_413_that_points_to_binary(client):
    response = client.post(INFER, content=b" " * (kserve.MAX_JSON_BYTES + 1))
    assert response.status_code == 413 and "binary" in response.json()["error"]


def test_a_fault_behind_the_app_is_answered_in_json_and_logged_once(client, monkeypatch, caplog):
    """Starlette raises a fault again once its handler has answered it, for uvicorn to log a second time (and
    for this client to raise): the server logs it once, and the client gets its JSON."""

    def broken(*args):
        raise RuntimeError("broken")

    monkeypatch.setattr(kserve, "_answer", broken)
    response = client.post(INFER, json=image_input())
    assert response.status_code == 500 and "logged" in response.json()["error"]
    assert [record.name for record in caplog.records if record.levelname == "ERROR"] == ["digits.serve.app"]
