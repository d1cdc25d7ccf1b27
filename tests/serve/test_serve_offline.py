"""The page reads drawings offline: the served model runs in the browser, on drawings prepared as the reader does."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from test_serve import browser  # noqa: F401 (a fixture: Debian's Chromium, driven by Playwright)
from test_serve_limits import serving

from digits.read.pipeline import prepare
from digits.serve import app as serve
from helpers import benchmark_module, signature


@pytest.fixture
def page(browser):  # noqa: F811 (the fixture imported above)
    return browser.new_context().new_page()


def pen(page, points: list[tuple[float, float]]) -> None:
    """One stroke through `points`, fractions of the pad's width and height."""
    box = page.locator("#pad").bounding_box()
    at = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for point in at[1:]:
        page.mouse.move(*point, steps=12)
    page.mouse.up()


def test_a_seven_drawn_offline_is_read_as_the_reader_reads_it(page):
    from playwright.sync_api import expect

    from digits.read.reader import Reader

    with serving(serve.create_app()) as (port, _):
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator("body")).to_have_attribute("data-offline", "ready", timeout=60_000)
    # The server is gone, and the network with it.
    page.context.set_offline(True)
    pen(page, [(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)])
    expect(page.locator("#answer")).to_have_text("7")
    expect(page.locator("#error")).to_be_empty()
    # The answer shown is that of the whole drawing, not of a stroke still being drawn.
    page.wait_for_function(
        "document.getElementById('answer').dataset.request === document.getElementById('pad').dataset.sent"
    )
    # The 28×28 image the page gave its model is the reader's, for the same drawing.
    drawing = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    prepared = Reader().prepare(base64.b64decode(drawing.split(",", 1)[1]))
    seen = np.array(
        page.locator("#seen canvas").evaluate(
            "view => Array.from(view.getContext('2d').getImageData(0, 0, 28, 28).data.filter((v, i) => i % 4 == 0))"
        )
    )
    difference = np.abs(seen.reshape(28, 28) - np.round(prepared.image * 255))
    assert difference.max() <= 2, difference.max()


def _faint_zero_and_speck() -> Image.Image:
    """A 0 drawn in light grey (a fifth of the grey scale off the paper) with a small dot beside it."""
    rows, cols = np.ogrid[:240, :240]
    ring = ((rows - 120) / 45.0) ** 2 + ((cols - 110) / 30.0) ** 2
    ink = ((ring <= 1) & (ring >= 0.7)) | ((rows >= 117) & (rows < 125) & (cols >= 154) & (cols < 162))
    return Image.fromarray(np.where(ink, 204, 255).astype(np.uint8))


@pytest.mark.parametrize("drawn", ["a signature", "an underlined 7", "a faint 0 and a speck"])
def test_the_page_leaves_out_what_the_reader_does(page, mnist, drawn):
    """A signature is no digit (`geometry.scribbled`), a line under a digit no part of it
    (`pick._without_underlines`), a small piece beside faint ink no part of it (`pick.pick_digit`),
    in the page as in the reader."""
    if drawn == "a signature":
        picture = signature().resize((480, 416))  # a pad's size: under 512 px, looked at once
    elif drawn == "a faint 0 and a speck":
        picture = _faint_zero_and_speck()
    else:
        marked = benchmark_module("marked")
        paper, box = marked.on_paper([mnist[1][0][0]], 3)  # MNIST's first test digit: a 7
        picture = marked.underlined(paper, box, np.random.default_rng(6), 1)  # read as a 1, line and all
    grey = np.asarray(picture, np.float32) / 255
    with serving(serve.create_app()) as (port, _):
        page.goto(f"http://127.0.0.1:{port}/")
        found = page.evaluate(
            """async ([grey, width, height]) => {
                const prepared = (await import("/static/offline.js")).prepare(Float32Array.from(grey), width, height);
                return {...prepared, image: Array.from(prepared.image)};
            }""",
            [grey.ravel().tolist(), picture.width, picture.height],
        )
    prepared = prepare(picture, explain=False)
    assert (
        (found["hasInk"], found["scribbled"])
        == (prepared.has_ink, prepared.scribbled)
        == (True, drawn == "a signature")
    )
    assert np.abs(np.array(found["image"]) - prepared.image.ravel()).max() <= 2 / 255


def test_only_the_pages_own_files_are_served():
    with TestClient(serve.create_app()) as client:
        assert client.get("/static/offline.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/static/ort/ort-wasm-simd-threaded.wasm").headers["content-type"] == "application/wasm"
        assert client.get("/model.onnx").content[:1] == b"\x08"  # an ONNX protobuf: ir_version first
        for path in ("/static/index.html", "/static/../serve.py", "/static/ort/NOTICE", "/static/%2e%2e/serve.py"):
            assert client.get(path).status_code == 404, path


def test_the_page_reads_28x28_images_as_the_reader_does(page, mnist):
    """Calibration and the turns where the model is unsure (`digits.read.turns`) happen in the browser too."""
    from digits.read.reader import Reader
    from digits.read.turns import SETTLED

    reader = Reader()
    (x_test, _) = mnist[1]
    images = x_test[:400].astype(np.float32) / 255
    alone = reader.recognizer.predict_proba(images).max(axis=1)
    # Four the model is sure of and four it is not: both paths.
    chosen = np.concatenate([np.flatnonzero(alone >= SETTLED)[:4], np.flatnonzero(alone < SETTLED)[:4]])
    assert len(chosen) == 8
    with serving(serve.create_app()) as (port, _):
        page.goto(f"http://127.0.0.1:{port}/")
        found = page.evaluate(
            """async ([images, temperature]) => {
                const module = await import("/static/offline.js");
                const offline = await module.Offline.load(temperature);
                const rows = [];
                for (const image of images) rows.push(await offline.probabilities(Float32Array.from(image)));
                return rows;
            }""",
            [images[chosen].reshape(len(chosen), -1).tolist(), reader.recognizer.temperature],
        )
    np.testing.assert_allclose(np.array(found), reader.classify(images[chosen]), atol=1e-4)


def test_the_pages_turns_are_scipys_to_the_edges(page):
    """`turn` in the page equals `turns._turned` (scipy's rotate), ink on the outer ring included."""
    from digits.read.turns import TURNS, _turned

    images = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)  # ink up to every edge
    with serving(serve.create_app()) as (port, _):
        page.goto(f"http://127.0.0.1:{port}/")
        found = page.evaluate(
            """async ([images, turns]) => {
                const module = await import("/static/offline.js");
                return images.map(image => turns.map(degrees => Array.from(module.turn(Float32Array.from(image), degrees))));
            }""",
            [images.reshape(3, -1).tolist(), list(TURNS)],
        )
    expected = np.stack(_turned(images.astype(np.float64)), axis=1).reshape(3, len(TURNS), -1)
    np.testing.assert_allclose(np.array(found), expected, atol=1e-5)


def test_the_page_is_given_the_served_models_temperature():
    from digits.read.reader import Reader

    temperature = Reader().recognizer.temperature
    assert temperature != 1.0  # the shipped model is calibrated: the test would pass on the default otherwise
    with TestClient(serve.create_app()) as client:
        page = client.get("/").text
    assert page.count(f'data-temperature="{temperature!r}"') == 1
