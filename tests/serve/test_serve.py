"""`digits serve`: the HTTP API end to end, every way bad input must fail, and the page in a real browser."""

import io
import json
import logging
import os
import selectors
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from digits.read.model import ModelError
from digits.serve import admission, listener
from digits.serve import logs as serve_logs
from digits.serve import server as http_server
from digits.serve.admission import IN_FLIGHT_BYTES, MAX_UPLOAD_BYTES
from digits.serve.app import create_app
from helpers import DIGITS, assert_one_line_error, run_cli

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def client(fast_run):
    with TestClient(create_app(fast_run)) as client:
        yield client


def png(image: np.ndarray | Image.Image) -> bytes:
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(data: bytes) -> dict:
    return {"files": {"image": ("picture.png", data, "image/png")}}


def number_png(mnist, number: str) -> bytes:
    """MNIST test digits side by side, 4× larger, dark ink on white paper: a number written on one line."""
    _, (x_test, y_test) = mnist
    glyphs = [x_test[np.flatnonzero(y_test == int(d))[0]] for d in number]
    line = Image.fromarray(255 - np.hstack(glyphs)).resize((4 * 28 * len(number), 4 * 28), Image.BICUBIC)
    return png(ImageOps.expand(line, border=40, fill=255))


def test_predict_reads_mnist_digits(client, mnist):
    _, (x_test, y_test) = mnist
    for index in range(3):
        response = client.post("/predict", **upload(png(x_test[index])))
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["digit"] == y_test[index] and result["status"] == "ok"
        assert [t["digit"] for t in result["top3"]][0] == result["digit"]
        assert result["confidence"] == result["top3"][0]["confidence"]


def test_read_a_number(client, mnist):
    response = client.post("/read", **upload(number_png(mnist, "2026")))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["text"] == "2026"
    [line] = result["lines"]
    assert [d["digit"] for d in line["digits"]] == [2, 0, 2, 6]
    assert all(0 < d["confidence"] <= 1 for d in line["digits"])


def test_a_picture_without_digits_is_an_answer_not_an_error(client):
    assert client.post("/predict", **upload(BLANK)).json()["status"] == "no digit found"
    assert client.post("/read", **upload(BLANK)).json() == {"text": "", "status": "no digits found", "lines": []}


def test_health_names_the_model(client, fast_run):
    assert client.get("/health").json() == {"status": "ok", "model": str(fast_run / "model.onnx")}


def test_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "<canvas" in response.text
    assert "://" not in response.text, "the page must fetch nothing from elsewhere"


BLANK = png(np.full((60, 60), 255, np.uint8))
BAD_INPUT = {
    "no image field": ({}, 422, "field named 'image'"),
    "file under another name": ({"files": {"photo": ("picture.png", BLANK, "image/png")}}, 422, "field named 'image'"),
    "text instead of a file": ({"data": {"image": "7"}}, 422, "field named 'image'"),
    "JSON instead of a form": ({"json": {"image": "7"}}, 422, "field named 'image'"),
    "empty file": (upload(b""), 422, "empty"),
    "not an image": (upload(b"just some notes"), 422, "not an image"),
    "over the size limit": (upload(bytes(MAX_UPLOAD_BYTES + 1)), 413, "10 MiB"),
    "malformed multipart": (
        {"content": b"no parts here", "headers": {"content-type": "multipart/form-data; boundary=x"}},
        400,
        "multipart",
    ),
    "multipart cut off before its closing boundary": (
        {
            "content": b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + BLANK,
            "headers": {"content-type": "multipart/form-data; boundary=x"},
        },
        400,
        "closing boundary",
    ),
    "multipart cut off in a part's headers, the close delimiter among them": (
        {
            "content": b'--x\r\nContent-Disposition: form-data; name="image"; filename="a"\r\nX: y\r\n--x--',
            "headers": {"content-type": "multipart/form-data; boundary=x"},
        },
        400,
        "closing boundary",
    ),
    "a picture, then a part that never closes": (
        {
            "content": b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
            + BLANK
            + b"\r\n--x\r\nX: y\r\n--x--",
            "headers": {"content-type": "multipart/form-data; boundary=x"},
        },
        400,
        "closing boundary",
    ),
    "multipart without a boundary": (
        {"content": b"--x--", "headers": {"content-type": "multipart/form-data"}},
        400,
        "boundary",
    ),
    "a part without a name": (
        {
            "content": b'--x\r\nContent-Disposition: form-data; filename="a.png"\r\n\r\n' + BLANK + b"\r\n--x--\r\n",
            "headers": {"content-type": "multipart/form-data; boundary=x"},
        },
        400,
        '"name"',
    ),
    "five files": (
        {"files": [("image", (f"{i}.png", BLANK, "image/png")) for i in range(5)]},
        400,
        "more than 4 files",
    ),
    "seventeen fields": (
        {"files": {"image": ("a.png", BLANK)}, "data": {f"f{i}": "x" for i in range(17)}},
        400,
        "16 fields",
    ),
    "a text field over 1 MiB": (
        {"files": {"image": ("a.png", BLANK)}, "data": {"note": "x" * (2**20 + 1)}},
        400,
        "1 MiB",
    ),
}


def assert_json_error(response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"] and fragment in body["error"] and "\n" not in body["error"]


@pytest.mark.parametrize("endpoint", ["/predict", "/read"])
@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_a_4xx_with_one_sentence(client, endpoint, case):
    request, status, fragment = BAD_INPUT[case]
    assert_json_error(client.post(endpoint, **request), status, fragment)


@pytest.mark.parametrize("endpoint", ["/predict", "/read"])
def test_upload_without_a_declared_size_is_cut_off_at_the_limit(client, endpoint):
    chunks = (bytes(2**20) for _ in range(MAX_UPLOAD_BYTES // 2**20 + 1))  # no Content-Length: sent chunked
    response = client.post(endpoint, content=chunks, headers={"content-type": "multipart/form-data; boundary=x"})
    assert_json_error(response, 413, "10 MiB")


def test_a_form_closed_then_followed_by_a_long_epilogue_is_read(client):
    head = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    body = head + BLANK + b"\r\n--x--\r\n" + b"an epilogue, which RFC 2046 allows " * 100
    response = client.post("/predict", content=body, headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 200 and response.json()["status"] == "no digit found", response.text


def test_a_second_image_part_is_refused(client):
    picture = png(np.zeros((28, 28), np.uint8))
    files = [("image", ("a.png", picture, "image/png")), ("image", ("b.png", picture, "image/png"))]
    assert_json_error(client.post("/predict", files=files), 422, "one picture per request")


def test_a_body_shorter_than_its_content_length_is_a_400(client):
    body = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    headers = {"content-type": "multipart/form-data; boundary=x", "content-length": str(len(body) + 100)}
    assert_json_error(client.post("/predict", content=body, headers=headers), 400, "Content-Length")


def test_a_progressive_jpeg_of_a_thousand_scans_is_refused_with_a_422(client):
    from helpers import progressive_jpeg, with_repeated_last_scan

    crafted = with_repeated_last_scan(progressive_jpeg(), 1000)
    response = client.post("/predict", files={"image": ("scans.jpg", crafted, "image/jpeg")})
    assert_json_error(response, 422, "scans")


def test_a_heic_upload_reads_as_its_png_and_a_damaged_one_is_a_422(client, mnist):
    """A HEIC is decoded in a child process (`digits.read.isolated`); the worker gets its pixels, or its sentence."""
    from digits.read import heif

    heif.register()
    _, (x_test, _) = mnist
    picture = Image.fromarray(255 - x_test[0]).resize((280, 280)).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="HEIF", quality=90)
    as_png = client.post("/predict", **upload(png(picture))).json()
    as_heic = client.post("/predict", files={"image": ("photo.heic", buffer.getvalue(), "image/heic")})
    assert as_heic.status_code == 200 and as_heic.json()["digit"] == as_png["digit"]
    damaged = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    assert_json_error(client.post("/predict", files={"image": ("photo.heic", damaged, "image/heic")}), 422, "damaged")


def test_past_the_in_flight_limit_a_503_says_when_to_retry(fast_run, mnist):
    app = create_app(fast_run)
    app.in_flight_bytes = IN_FLIGHT_BYTES  # as if requests at work held all the memory
    with TestClient(app) as client:
        response = client.post("/predict", **upload(png(mnist[1][0][0])))
        assert_json_error(response, 503, "retry")
        assert response.headers["retry-after"] == "1"
        assert client.get("/health").status_code == 200  # health is never turned away
        app.in_flight_bytes = 0
        assert client.post("/predict", **upload(png(mnist[1][0][0]))).json()["digit"] == 7


def test_a_body_that_stops_arriving_is_a_408(fast_run, monkeypatch):
    import asyncio

    monkeypatch.setattr(admission, "BODY_TIMEOUT", 0.01)
    app = create_app(fast_run)
    sent = []

    async def receive():
        await asyncio.Event().wait()  # the client never sends its body

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [(b"content-length", b"100")]}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 408 and b"did not arrive" in sent[1]["body"]


@pytest.mark.parametrize("path", ["/", "/health", "/metrics", "/v2/health/live", "/v2/models/digits"])
def test_head_works_wherever_get_does(client, path):
    got, head = client.get(path), client.head(path)
    assert got.status_code == head.status_code == 200
    assert head.content == b""


@pytest.mark.parametrize("path", ["/health/", "/predict/", "/v2/health/live/"])
def test_a_trailing_slash_is_a_json_404_not_a_redirect_to_the_clients_host(client, path):
    response = client.request("POST" if path == "/predict/" else "GET", path, headers={"host": "evil.example"})
    assert response.status_code == 404 and list(response.json()) == ["error"]
    assert "location" not in response.headers


@pytest.mark.parametrize("value", ["bytes=99999999-", "bytes=5-1", "bytes=x", "items=0-1"])
@pytest.mark.parametrize("path", ["/model.onnx", "/static/offline.js"])
def test_a_files_range_header_is_ignored_and_the_file_sent_whole(client, path, value):
    whole = client.get(path)
    ranged = client.get(path, headers={"range": value})
    assert ranged.status_code == whole.status_code == 200 and ranged.content == whole.content
    assert "accept-ranges" not in whole.headers


def test_metrics_count_requests_errors_and_batch_sizes(client, mnist, monkeypatch):
    from digits.serve import metrics

    monkeypatch.setattr(metrics, "SCRAPE_EVERY", 0.0)  # a page made for this scrape, not one made before
    client.post("/predict", **upload(png(mnist[1][0][0])))
    client.post("/predict", **upload(b"not a picture"))
    client.request("PROPFIND", "/health")  # one of the parser's 34 methods: counted, not a label of its own
    text = client.get("/metrics").text
    assert 'digits_http_requests_total{code="200",method="POST",route="/predict"}' in text
    assert 'digits_http_errors_total{code="422"}' in text
    assert "digits_batch_size_count" in text and 'digits_http_request_seconds_bucket{le="0.5",route="/predict"}' in text
    assert 'method="other",route="/health"' in text and "PROPFIND" not in text


def test_metrics_name_the_versioned_v2_routes_and_not_other_versions(client, monkeypatch):
    """serving.md says the versioned paths also answer: they were counted as "other", like unknown paths."""
    from digits.serve import metrics

    monkeypatch.setattr(metrics, "SCRAPE_EVERY", 0.0)
    assert client.get("/v2/models/digits/versions/1/ready").status_code == 200
    assert client.get("/v2/models/digits/versions/7/ready").status_code == 404
    text = client.get("/metrics").text
    assert 'code="200",method="GET",route="/v2/models/digits/versions/1/ready"' in text
    assert "versions/7" not in text and 'code="404",method="GET",route="other"' in text


def test_a_scrape_shares_the_page_made_within_the_second(client, monkeypatch):
    """Made afresh for each of 32 clients at once, the page took /health's p99 to 0.17-0.34 s."""
    from digits.serve import metrics

    monkeypatch.setattr(metrics, "SCRAPE_EVERY", 3600.0)
    first = client.get("/metrics").text
    client.get("/health")
    assert client.get("/metrics").text == first


def test_explain_shows_the_28x28_image_the_model_saw(client, mnist):
    answer = client.post("/predict?explain=1", **upload(png(mnist[1][0][0]))).json()
    pixels = np.array(answer["model_input"])
    assert pixels.shape == (28, 28) and pixels.max() > 200 and pixels[0].max() == 0


def test_micro_batching_gives_the_answers_of_single_calls(fast_run, mnist):
    import asyncio

    from digits.read.reader import Reader
    from digits.serve.batching import MicroBatcher

    reader = Reader(fast_run)
    images = mnist[1][0][:40].astype(np.float32) / 255
    sizes = []
    batcher = MicroBatcher(reader.classify, max_batch=16, max_wait=0.001, on_batch=sizes.append)

    async def together():  # 30 callers of one image and two of five, all at once
        calls = [batcher.classify(images[i : i + 1]) for i in range(30)]
        calls += [batcher.classify(images[30:35]), batcher.classify(images[35:40])]
        return await asyncio.gather(*calls)

    batched = np.concatenate(asyncio.run(together()))
    batcher.close()
    single = np.concatenate([reader.classify(images[i : i + 1]) for i in range(40)])
    assert np.allclose(batched, single, atol=1e-6) and (batched.argmax(1) == single.argmax(1)).all()
    assert sum(sizes) == 40 and max(sizes) > 1 and max(sizes) <= 16  # batched, within the limit


def test_explain_is_read_as_fastapi_reads_a_flag(client, mnist):
    picture = png(mnist[1][0][0])
    assert "model_input" in client.post("/predict?explain=true", **upload(picture)).json()
    assert "model_input" not in client.post("/predict?explain=off", **upload(picture)).json()
    answer = client.post("/predict?explain=maybe", **upload(picture))
    assert answer.status_code == 422
    assert answer.json() == {"error": "query.explain: Input should be a valid boolean, unable to interpret input."}


def test_open_inference_protocol_in_json(client, mnist):
    _, (x_test, y_test) = mnist
    assert client.get("/v2/health/ready").status_code == 200
    metadata = client.get("/v2/models/digits").json()
    assert metadata["inputs"][0]["shape"] == [-1, 28, 28]
    request = {
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [3, 28, 28], "data": x_test[:3].tolist()}],
        "outputs": [{"name": "digit"}],
    }
    answer = client.post("/v2/models/digits/infer", json=request).json()
    assert answer["outputs"] == [{"name": "digit", "datatype": "INT64", "shape": [3], "data": y_test[:3].tolist()}]
    one = {
        "inputs": [
            {"name": "image", "datatype": "FP32", "shape": [28, 28], "data": (x_test[0] / 255).reshape(-1).tolist()}
        ]
    }
    outputs = {o["name"]: o for o in client.post("/v2/models/digits/infer", json=one).json()["outputs"]}
    assert outputs["digit"]["data"] == [y_test[0]] and outputs["probabilities"]["shape"] == [1, 10]


@pytest.mark.parametrize(
    "request_body, status, fragment",
    [
        ({"inputs": [{"name": "image", "datatype": "FP32", "shape": [28, 27], "data": [0] * 756}]}, 400, "shape"),
        ({"inputs": [{"name": "image", "datatype": "FP64", "shape": [28, 28], "data": [0] * 784}]}, 400, "datatype"),
        (
            {"inputs": [{"name": "image", "datatype": "FP32", "shape": [28, 28], "data": [0] * 700}]},
            400,
            "holds 700 numbers",
        ),
        ({"inputs": [{"name": "image", "datatype": "FP32", "shape": [28, 28], "data": [255] * 784}]}, 400, "[0, 1]"),
        ({"inputs": []}, 400, "exactly one input"),
    ],
)
def test_open_inference_protocol_errors(client, request_body, status, fragment):
    assert_json_error(client.post("/v2/models/digits/infer", json=request_body), status, fragment)
    assert_json_error(client.post("/v2/models/other/infer", json=request_body), 404, "digits")


def test_the_openapi_schema_lists_each_operation_once_by_its_endpoints_name(fast_run):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns of an operation id listed twice
        schema = TestClient(create_app(fast_run)).get("/openapi.json").json()
    operations = [(method, op["operationId"]) for path in schema["paths"].values() for method, op in path.items()]
    assert "head" not in {method for method, _ in operations}  # GET implies it
    ids = [operation_id for _, operation_id in operations]
    assert len(ids) == len(set(ids)) and {"infer", "model_metadata", "version_infer"} <= set(ids)


def test_unknown_path_and_wrong_method_answer_in_json(client):
    assert_json_error(client.get("/nowhere"), 404, "Not Found")
    assert_json_error(client.get("/predict"), 405, "Method Not Allowed")


@pytest.mark.parametrize("endpoint", ["/predict", "/read"])
def test_a_fault_in_a_posted_endpoint_is_a_logged_500_in_json(fast_run, monkeypatch, endpoint):
    # These two routes skip FastAPI's middleware: their faults must still get the app's own answers.
    from digits.serve import app as app_module

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(app_module, "load_image", broken)  # /predict's small PNG, read on the event loop
    monkeypatch.setattr(app_module.Reader, "read_page", broken)
    # Its own handler, ahead of the ones a server started in this process may have set on "digits"
    # (whose filter then clears the record's exc_info: what it held is kept as it is emitted).
    faults = []
    handler = logging.Handler()
    handler.emit = lambda record: faults.append(record.exc_info and record.exc_info[1])  # type: ignore[method-assign]
    monkeypatch.setattr(logging.getLogger("digits.serve.app"), "handlers", [handler])
    with TestClient(create_app(fast_run), raise_server_exceptions=False) as own:
        assert_json_error(own.post(endpoint, **upload(png(np.zeros((28, 28), np.uint8)))), 500, "the fault is logged")
    assert [fault.args for fault in faults if fault] == [("a bug",)]


def test_a_handler_that_fails_is_still_a_500_in_json(fast_run, monkeypatch):
    from digits.serve import app as app_module

    def broken(*args, **kwargs):
        raise app_module.ImageError("unreadable")

    def failing_handler(request, err):
        raise KeyError("the handler's own bug")

    monkeypatch.setattr(app_module, "load_image", broken)
    monkeypatch.setattr(app_module, "_unreadable_image", failing_handler)
    with TestClient(create_app(fast_run), raise_server_exceptions=False) as own:
        assert_json_error(own.post("/predict", **upload(png(np.zeros((28, 28), np.uint8)))), 500, "the fault is logged")


@pytest.mark.parametrize("method", ["POST", "OPTIONS"])
def test_other_methods_of_a_direct_route_are_a_json_405(client, method):
    response = client.request(method, "/health")
    assert_json_error(response, 405, "Method Not Allowed")
    assert response.headers["allow"] == "GET, HEAD"  # in one order, not a set's


def test_bad_model_fails_at_startup(tmp_path):
    with pytest.raises(ModelError, match="no such run folder"):
        create_app(tmp_path / "missing")
    result = run_cli("serve", "--model", "runs/none", cwd=tmp_path, timeout=60)
    assert_one_line_error(result, "runs/none")


def test_serve_without_its_extra_says_what_to_install(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['uvicorn'] = None  # as if not installed\n"
        "from digits.cli import main\n"
        "sys.argv = ['digits', 'serve']\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert_one_line_error(result, "pip install 'digits[serve]' (from a clone: pip install '.[serve]')")


def test_serve_never_imports_tensorflow(fast_run, mnist, tmp_path):
    Image.fromarray(mnist[1][0][0]).save(tmp_path / "seven.png")
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from digits.serve.app import create_app\n"
        f"client = TestClient(create_app({str(fast_run)!r}))\n"
        f"with open({str(tmp_path / 'seven.png')!r}, 'rb') as f:\n"
        "    response = client.post('/predict', files={'image': f})\n"
        "assert response.json()['digit'] == 7, response.text\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def browser():
    """Debian's Chromium, driven by Playwright (which downloads no browser of its own)."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright (pip install playwright)")
    # A guard against a hang, not a clock to race: a loaded machine may take seconds to answer a stroke.
    sync_api.expect.set_options(timeout=60_000)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(fast_run, tmp_path_factory):
    """`digits serve` as a user starts it, with two workers, on a free port; yields (URL, log file)."""
    url = f"http://127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [DIGITS, "serve", "--model", str(fast_run), "--port", url.rsplit(":", 1)[1], "--workers", "2"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_health(url, process, log)
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_for_health(url: str, process: subprocess.Popen, log: Path, bound: float = 60) -> None:
    """Until the started server answers /health (failing with its log if it exits, or after `bound` seconds)."""
    deadline = time.monotonic() + bound
    while True:
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"the server did not answer within {bound:.0f} s"
            time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stroke(page, x: float, top: float, bottom: float, release: bool = True) -> None:
    """A downward pen stroke on the pad, slanted a little as hands do, at fractions of its width and height."""
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + (x + 0.02) * box["width"], box["y"] + top * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + (x - 0.02) * box["width"], box["y"] + bottom * box["height"], steps=12)
    if release:
        page.mouse.up()


def test_page_in_a_browser(browser, server):
    from playwright.sync_api import expect

    page = browser.new_page()
    # The server's answers, not the page's own model (test_serve_offline): without its module, the page
    # asks the server, whichever of the two would have been ready first.
    page.route("**/static/offline.js", lambda route: route.abort())
    page.goto(server[0])
    expect(page.locator("body")).to_have_attribute("data-offline", "server")
    # Live: the answer comes while the pen is still down (a downward stroke is a 1).
    stroke(page, 0.5, 0.2, 0.8, release=False)
    expect(page.locator("#answer")).to_have_text("1")
    page.mouse.up()
    expect(page.locator("#answer")).to_have_text("1")
    expect(page.locator("#details")).to_contain_text("confidence")
    expect(page.locator("#error")).to_be_empty()
    # The 28×28 image the model saw, drawn: white ink on black.
    expect(page.locator("#seen canvas")).to_have_count(1)
    ink = page.locator("#seen canvas").evaluate(
        "view => view.getContext('2d').getImageData(0, 0, 28, 28).data.filter((v, i) => i % 4 == 0 && v > 128).length"
    )
    assert 20 < ink < 300
    # Phones are offered the camera.
    assert page.locator("#camera").get_attribute("capture") == "environment"
    # Number mode: two strokes far apart are "11", each in a box.
    page.click("#clear")
    page.check("input[value=read]")
    stroke(page, 0.25, 0.25, 0.75)
    stroke(page, 0.75, 0.25, 0.75)
    expect(page.locator("#answer")).to_have_text("11")
    expect(page.locator("#overlay")).to_have_attribute("data-boxes", "2")
    artifacts = Path(os.environ.get("DIGITS_ARTIFACTS", "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifacts / "serve-page.png"), full_page=True)


def test_impossible_port_is_a_usage_error(tmp_path):
    result = run_cli("serve", "--port", "99999", cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "--port" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------
# The real server, as an attacker and a standard client meet it
# --------------------------------------------------------------------------


def exchange(url: str, data: bytes, half_close: bool = False) -> tuple[int, dict | bytes]:
    """Send raw bytes, read the answer to the end: (status, JSON body, or raw body if not JSON)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(data)
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    is_json = b"content-type: application/json" in head.lower()
    return status, json.loads(body) if is_json else body


ATTACKS = {
    "malformed Content-Length": (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n",
        400,
        "HTTP/1.1",
    ),
    "3,000 headers": (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 3000 + b"\r\n", 431, "header"),
    "16 KiB of URL": (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431, "KiB"),
    "missing Host": (b"GET /health HTTP/1.1\r\n\r\n", 400, "Host"),
    "no HTTP version": (b"GET /health\r\n\r\n", 400, "HTTP version"),
    "not HTTP at all": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(100), 400, "HTTP/1.1"),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_protocol_errors_are_json(server, attack):
    data, status, fragment = ATTACKS[attack]
    answer_status, body = exchange(server[0], data)
    assert answer_status == status and fragment in body["error"], body


def test_a_body_cut_short_by_a_half_close_is_a_400(server):
    request = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        b"Content-Length: 1000\r\n\r\n--x\r\n"
    )
    status, body = exchange(server[0], request, half_close=True)
    assert status == 400 and "ended after 5 of the 1000 bytes" in body["error"]


def test_head_of_the_page_on_a_real_socket(server):
    status, body = exchange(server[0], b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and body == b""


def test_slow_headers_cannot_lock_out_health(server):
    """Twice as many half-sent requests as the workers will wait for: the oldest are closed, /health answers."""
    url, _ = server
    host, port = url.removeprefix("http://").split(":")
    workers, count = 2, 2 * http_server.MAX_WAITING + 100
    listener.raise_open_file_limit()  # this process holds them all
    attackers = []
    try:
        for _ in range(count):
            connection = socket.create_connection((host, int(port)), timeout=30)
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never the rest
            attackers.append(connection)
        with urllib.request.urlopen(f"{url}/health", timeout=30) as response:
            assert response.status == 200
        # The connections beyond each worker's table are answered and closed, once they have had their grace.
        needed, closed = count - workers * http_server.MAX_WAITING - 1, 0
        with selectors.DefaultSelector() as selector:
            for connection in attackers:
                selector.register(connection, selectors.EVENT_READ)
            deadline = time.monotonic() + 30 + http_server.IDLE_GRACE
            while closed < needed and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=1):
                    selector.unregister(key.fileobj)
                    answer = key.fileobj.recv(4096)
                    closed += b"408" in answer.split(b"\r\n")[0] and b"waited longest" in answer
        assert closed >= needed
    finally:
        for connection in attackers:
            connection.close()


def test_the_header_deadline_answers_408_and_closes():
    """The deadline's own callback, run at the point the timer would: no waiting for the clock."""
    import asyncio

    class Transport:
        written, closing = b"", False

        def write(self, data):
            self.written += data

        def close(self):
            self.closing = True

        def is_closing(self):
            return self.closing

        def get_extra_info(self, name, default=None):
            return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    import uvicorn
    from uvicorn.server import ServerState

    loop = asyncio.new_event_loop()
    try:
        config = uvicorn.Config(lambda scope, receive, send: None)
        config.load()
        protocol = http_server.GuardedProtocol(config, ServerState(), {}, _loop=loop)
        transport = Transport()
        before = loop.time()
        protocol.connection_made(transport)
        after = loop.time()
        deadline = protocol._header_deadline
        assert before + http_server.HEADER_TIMEOUT <= deadline.when() <= after + http_server.HEADER_TIMEOUT
        protocol.data_received(b"GET /health HTTP/1.1\r\nHo")  # half the headers, then silence
        deadline._run()
        assert transport.written.startswith(b"HTTP/1.1 408 ") and b"did not arrive" in transport.written
        assert transport.closing and protocol not in protocol.waiting and protocol not in protocol.served
    finally:
        loop.close()


def test_logs_under_attack_are_bounded_and_one_line(server):
    url, log = server
    for _ in range(300):
        exchange(url, b"GET /health HTTP/1.1\r\nContent-Length: x\r\n\r\n")
    text = log.read_text()
    assert "Traceback" not in text
    complaints = text.count("Invalid HTTP request")
    # Two workers, each at most LOG_BURST lines per window; the 300 fit in a couple of windows.
    assert complaints <= 2 * 2 * serve_logs.LOG_BURST < 300


def test_tritonclient_round_trip(server, mnist):
    httpclient = pytest.importorskip("tritonclient.http", reason="needs tritonclient[http] (the test extra)")
    _, (x_test, y_test) = mnist
    client = httpclient.InferenceServerClient(url=server[0].removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("digits")
    assert client.get_model_metadata("digits")["outputs"][1]["name"] == "digit"
    for binary in (True, False):
        images = httpclient.InferInput("image", [8, 28, 28], "UINT8")
        images.set_data_from_numpy(x_test[:8], binary_data=binary)
        wanted = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in ("digit", "probabilities")]
        result = client.infer("digits", [images], outputs=wanted)
        assert (result.as_numpy("digit") == y_test[:8]).all()
        assert result.as_numpy("probabilities").shape == (8, 10)
    pixels = httpclient.InferInput("image", [28, 28], "FP32")
    pixels.set_data_from_numpy((x_test[0] / 255).astype(np.float32))
    assert client.infer("digits", [pixels]).as_numpy("digit").tolist() == [y_test[0]]  # outputs all, in binary
    client.close()


def test_metrics_add_up_across_workers(server):
    url, _ = server

    def ready_count() -> float:
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
            text = response.read().decode()
        line = 'digits_http_requests_total{code="200",method="GET",route="/v2/health/ready"} '
        return sum(float(row.removeprefix(line)) for row in text.splitlines() if row.startswith(line))

    from digits.serve.metrics import SCRAPE_EVERY

    time.sleep(SCRAPE_EVERY)  # every worker's page then is made afresh: `before` is today's count, not an older page's
    before = ready_count()
    for _ in range(12):
        urllib.request.urlopen(f"{url}/v2/health/ready", timeout=30).close()
    # A worker counts a request once its answer is out: the other worker's /metrics may come first.
    hang_guard = time.monotonic() + 60
    while (counted := ready_count() - before) < 12 and time.monotonic() < hang_guard:
        time.sleep(0.05)
    assert counted == 12


@pytest.mark.parametrize("host, fragment", [("", "--host is empty"), ("256.1.1.1", "--host 256.1.1.1")])
def test_a_bad_host_is_one_line(fast_run, tmp_path, host, fragment):
    assert_one_line_error(
        run_cli("serve", "--model", str(fast_run), "--host", host, cwd=tmp_path, timeout=60), fragment
    )


def test_a_port_in_use_is_one_line(fast_run, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli("serve", "--model", str(fast_run), "--port", port, cwd=tmp_path, timeout=60)
    assert_one_line_error(result, f"port {port} on 127.0.0.1 is in use")


def test_only_a_small_png_in_mnist_format_is_read_on_the_event_loop(client, mnist, monkeypatch):
    # A 32x32 checkerboard is a small PNG too, but its analysis took over a second: on the event loop it
    # stopped /health for 9.6 s under four clients (a reviewer's attack). Only MNIST's own format stays there.
    import threading

    from digits.read.reader import Reader

    analysed_on = []
    original = Reader.prepare
    monkeypatch.setattr(
        Reader,
        "prepare",
        lambda self, picture, **options: (
            analysed_on.append(threading.current_thread().name) or original(self, picture, **options)
        ),
    )
    digit = mnist[1][0][0]
    checkerboard = (np.indices((32, 32)).sum(axis=0) % 2 * 255).astype(np.uint8)
    as_is = client.post("/predict", **upload(png(digit))).json()
    assert analysed_on == []  # in MNIST's format: to the model as it is, no analysis, no hop
    larger = client.post("/predict", **upload(png(np.kron(digit, np.ones((2, 2), np.uint8))))).json()
    assert client.post("/predict", **upload(png(checkerboard))).status_code == 200
    assert as_is["digit"] == larger["digit"] == mnist[1][1][0]
    assert len(analysed_on) == 2 and all(name.startswith("decode") for name in analysed_on)
