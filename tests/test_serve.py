"""`digits serve`: the HTTP API end to end, every way bad input must fail, and the page in a real browser."""

import io
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from conftest import DIGITS, assert_one_line_error, run_cli
from digits.inference import ModelError
from digits.serve import MAX_UPLOAD_BYTES, create_app

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
    assert client.post("/read", **upload(BLANK)).json() == {"text": "", "lines": []}


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
        {"content": b"no parts here", "headers": {"content-type": "multipart/form-data; boundary=x"}}, 400, "multipart"
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


def test_unknown_path_and_wrong_method_answer_in_json(client):
    assert_json_error(client.get("/nowhere"), 404, "Not Found")
    assert_json_error(client.get("/predict"), 405, "Method Not Allowed")


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
    assert_one_line_error(result, "pip install 'digits[serve]'")


def test_serve_never_imports_tensorflow(fast_run, mnist, tmp_path):
    Image.fromarray(mnist[1][0][0]).save(tmp_path / "seven.png")
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from digits.serve import create_app\n"
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
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()


@pytest.fixture
def server(fast_run, tmp_path):
    """`digits serve` as a user starts it, on a free port; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen([DIGITS, "serve", "--model", str(fast_run), "--port", str(port)],
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer within 60 s"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_page_in_a_browser(browser, server):
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(server)
    # A vertical stroke down the middle of the pad is a 1; lifting the pen sends the drawing.
    box = page.locator("#pad").bounding_box()
    middle = box["x"] + box["width"] / 2
    page.mouse.move(middle, box["y"] + 0.2 * box["height"])
    page.mouse.down()
    page.mouse.move(middle, box["y"] + 0.8 * box["height"], steps=10)
    page.mouse.up()
    expect(page.locator("#answer")).to_have_text("1")
    expect(page.locator("#details")).to_contain_text("confidence")
    expect(page.locator("#error")).to_be_empty()


def test_impossible_port_is_a_usage_error(tmp_path):
    result = run_cli("serve", "--port", "99999", cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "--port" in result.stderr and "Traceback" not in result.stderr
