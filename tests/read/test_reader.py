"""The reader (`digits.read.reader`): real pictures, pages, junk, and one answer for every caller.

Real pictures come from ../shared/data/real-digits (photos, scans and drawings
by people outside the project); those tests are skipped where it is absent
(and fail under .ci/run, which runs beside it).
They assert only the development fold (`benchmarks/real_sources.py`): rules
are chosen there, and a test on a held-out picture would push the next rule
toward it. The held-out fold is measured by `benchmarks/realworld.py` alone.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from digits.read.reader import Page, Reader
from digits.spec import NO_DIGIT, OK
from digits.synth.junk import make_junk
from helpers import benchmark_module, run_cli

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-digits"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real-digits is not here")
real_sources = benchmark_module("real_sources")


@pytest.fixture(scope="module")
def reader() -> Reader:
    """The model the package ships, as a user gets it with no --model."""
    return Reader()


def real_rows(folder: str) -> list[dict]:
    """The rows of a real-pictures folder's labels.csv that belong to the development fold."""
    with open(REAL / folder / "labels.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if real_sources.fold(row["source_repo"]) == "dev"]


@needs_real
@pytest.mark.parametrize("kind", ["photo", "scan", "drawn"])
def test_real_single_digits_of_every_kind(reader, kind):
    rows = [row for row in real_rows("single") if row["kind"] == kind][::3][:8]
    read = [reader.read_digit(REAL / "single" / row["file"]) for row in rows]
    assert [d.digit for d in read] == [int(row["label"]) for row in rows]
    assert all(d.status == OK and d.box is not None for d in read)


@needs_real
@pytest.mark.parametrize("name", ["lucksoft__567891.jpg", "filippo__img-202114-215724.png", "niraj__1.jpeg"])
def test_real_numbers(reader, name):
    """A crop of pen on grey paper, a vignetted webcam frame, a phone photo of a 10-digit number."""
    [row] = [row for row in real_rows("multi") if row["file"] == name]
    page = reader.read_page(REAL / "multi" / name)
    assert page.text == row["text"]
    [line] = page.lines
    lefts = [d.box[0] for d in line.digits]
    assert lefts == sorted(set(lefts)), "digits come left to right"


def test_junk_is_refused(reader):
    """Blank paper, specks, strokes, grids, letters, hatching, smudges: never a confident digit."""
    junk = make_junk(20, seed=9)
    answers = [reader.read_digit(image) for image, _ in junk]
    accepted = [kind for (_, kind), found in zip(junk, answers, strict=False) if found.status == OK]
    assert len(accepted) <= 1, accepted
    blank = reader.read_digit(Image.new("L", (300, 200), 235))
    assert blank.status == NO_DIGIT and blank.digit is None


def mnist_page(mnist, lines: list[str], scale: int = 3) -> Image.Image:
    """MNIST test digits written as lines on white paper, one number per line."""
    _, (x_test, y_test) = mnist
    rows = []
    for number in lines:
        glyphs = [x_test[np.flatnonzero(y_test == int(d))[1]] for d in number]
        rows.append(255 - np.hstack(glyphs))
    width = max(row.shape[1] for row in rows)
    page = np.full((len(rows) * 56, width + 28), 255, np.uint8)
    for k, row in enumerate(rows):
        page[14 + 56 * k : 42 + 56 * k, 14 : 14 + row.shape[1]] = row
    return Image.fromarray(page).resize((page.shape[1] * scale, page.shape[0] * scale), Image.BICUBIC)


def test_a_page_with_three_lines_gives_three_numbers_in_order(reader, mnist):
    page = reader.read_page(mnist_page(mnist, ["2026", "731", "58490"]))
    assert [line.text for line in page.lines] == ["2026", "731", "58490"]
    tops = [line.box[1] for line in page.lines]
    assert tops == sorted(tops)
    as_dict = page.to_dict()
    assert as_dict["text"] == "2026\n731\n58490" and len(as_dict["lines"][2]["digits"]) == 5
    assert as_dict["status"] == page.status in ("ok", "unsure")
    assert Page().to_dict() == {"text": "", "status": "no digits found", "lines": []}


def test_the_cli_the_api_and_the_server_agree(reader, mnist, tmp_path):
    from fastapi.testclient import TestClient

    from digits.serve.app import create_app

    picture = tmp_path / "page.png"
    mnist_page(mnist, ["407", "19"]).save(picture)
    single = tmp_path / "one.png"
    ImageOps.invert(Image.fromarray(mnist[1][0][1])).resize((140, 140)).save(single)

    api_page, api_digit = reader.read_page(picture).to_dict(), reader.read_digit(single).to_dict()
    cli_page = json.loads(run_cli("read", str(picture), "--json", cwd=tmp_path).stdout)
    cli_digit = json.loads(run_cli("predict", str(single), "--json", cwd=tmp_path).stdout)
    assert cli_page.pop("file") == str(picture) and cli_digit.pop("file") == str(single)
    with TestClient(create_app()) as client:
        served_page = client.post("/read", files={"image": ("p.png", picture.read_bytes(), "image/png")}).json()
        served_digit = client.post("/predict", files={"image": ("o.png", single.read_bytes(), "image/png")}).json()
    assert api_page == cli_page == served_page and api_page["text"] == "407\n19"
    assert api_digit == cli_digit == served_digit and api_digit["digit"] == 2


def test_read_explain_draws_the_boxes(mnist, tmp_path):
    picture = tmp_path / "page.png"
    mnist_page(mnist, ["38"]).save(picture)
    result = run_cli("read", str(picture), "--explain", "boxes.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{picture}: 38"
    with Image.open(tmp_path / "boxes.png") as drawn, Image.open(picture) as original:
        colours = np.asarray(drawn.convert("RGB")).reshape(-1, 3)
        assert drawn.size == original.size
        assert ((colours[:, 1] > 120) & (colours[:, 0] < 60)).any(), "green boxes drawn"


def test_explain_draws_a_huge_picture_reduced(tmp_path):
    """A 12247² 1-bit PNG (61 KB) drawn at full size took 1.4 GB: it is drawn at most 2048 pixels long."""
    from digits.read.explain import save_boxes
    from digits.read.load import load_image
    from digits.read.reader import Page

    huge = tmp_path / "huge.png"
    Image.new("1", (12247, 6000), 1).save(huge)
    save_boxes(load_image(huge), Page(), tmp_path / "boxes.png")
    with Image.open(tmp_path / "boxes.png") as drawn:
        assert drawn.size == (2048, round(6000 * 2048 / 12247))


def test_explain_boxes_land_on_the_digits_of_a_big_jpeg(mnist, tmp_path):
    """A big JPEG is decoded smaller than it is; its boxes must still frame its digits."""
    from digits.read.explain import save_boxes
    from digits.read.load import load_image

    big = tmp_path / "big.jpg"
    mnist_page(mnist, ["38"], scale=30).save(big, quality=90)
    picture = load_image(big)
    assert picture.size != Image.open(big).size, "decoded at a reduced size (DCT scaling)"
    page = Reader().read_page(picture)
    save_boxes(picture, page, tmp_path / "boxes.png")
    with Image.open(tmp_path / "boxes.png") as drawn:
        green = (np.asarray(drawn.convert("RGB"))[..., 1] > 120) & (np.asarray(drawn.convert("RGB"))[..., 0] < 60)
        rows, cols = np.nonzero(green)
        # The digits sit in the middle band of the page; boxes drawn at true-pixel size would run off it.
        assert rows.max() < drawn.height and cols.max() < drawn.width * 0.95
        assert rows.min() > 0.1 * drawn.height


def test_explain_never_overwrites_the_picture(mnist, tmp_path):
    picture = tmp_path / "page.png"
    mnist_page(mnist, ["38"]).save(picture)
    before = picture.read_bytes()
    for command in ("read", "predict"):
        result = run_cli(command, str(picture), "--explain", str(picture), cwd=tmp_path)
        assert result.returncode == 2 and "overwrite" in result.stderr
    assert picture.read_bytes() == before


def test_explain_boxes_of_a_transparent_drawing_show_its_ink(mnist, tmp_path):
    """Black ink on a transparent canvas, as drawing apps save it: the picture must not come out all black."""
    _, (x_test, y_test) = mnist
    rgba = np.zeros((28 * 5, 28 * 5, 4), np.uint8)
    rgba[..., 3] = np.asarray(Image.fromarray(x_test[0]).resize((140, 140)))
    picture = tmp_path / "drawing.png"
    Image.fromarray(rgba, "RGBA").save(picture)
    result = run_cli("read", str(picture), "--explain", "boxes.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "boxes.png") as drawn:
        assert np.asarray(drawn.convert("L")).mean() > 128, "transparent paper is drawn white"


def test_a_page_of_specks_reads_no_numbers(reader):
    rng = np.random.default_rng(0)
    page = np.full((600, 800), 240, np.uint8)
    for y, x in rng.integers(10, 590, size=(400, 2)):
        page[y : y + 5, x : x + 5] = 20
    assert reader.read_page(Image.fromarray(page)).lines == ()


def test_the_shipped_model_is_part_of_the_installed_package(tmp_path):
    """No runs/ folder, no --model: the model comes from the package, and a wheel carries it."""
    from importlib.resources import files

    assert Reader().model_path == Path(str(files("digits").joinpath("shipped/reader.onnx")))
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    result = run_cli("predict", str(blank), cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"{blank}: no digit found", result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_digit_found_on_paper_has_its_place_and_a_blank_has_none(reader, mnist):
    _, (x_test, _) = mnist
    found = reader.read_digit(Image.fromarray(np.pad(x_test[0], 20)))
    assert found.placed_box() == found.box and found.box is not None
    blank = reader.read_digit(Image.new("L", (64, 64), 255))
    assert blank.status == NO_DIGIT and blank.box is None
    with pytest.raises(ValueError, match="no box"):
        blank.placed_box()


def test_threshold_must_be_a_probability():
    with pytest.raises(ValueError):
        Reader(threshold=1.5)


def test_a_28x28_digit_and_the_same_digit_as_bytes_agree(reader, mnist):
    _, (x_test, _) = mnist
    buffer = io.BytesIO()
    Image.fromarray(x_test[0]).save(buffer, format="PNG")
    assert reader.read_digit(Image.fromarray(x_test[0])) == reader.read_digit(buffer.getvalue())


@pytest.mark.slow
def test_a_fresh_install_reads_with_the_model_it_carries(tmp_path):
    """Build the wheel, install it into a new virtual environment, and read a picture there with no runs/."""
    import site
    import subprocess
    import sys
    import sysconfig
    import zipfile

    root = Path(__file__).resolve().parents[2]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(root)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("digits-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert {"digits/shipped/reader.onnx", "digits/shipped/reader.json"} <= set(archive.namelist())
        # A new environment: this wheel installed (a wheel installs by unpacking), and the
        # dependencies borrowed from the test's own environment through a .pth file.
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=120)
        purelib = Path(
            subprocess.run(
                [
                    str(tmp_path / "venv" / "bin" / "python"),
                    "-c",
                    "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        archive.extractall(purelib)
    dependencies = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (purelib / "dependencies.pth").write_text("\n".join(dependencies) + "\n")
    picture = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(picture)
    code = "from digits.read.reader import Reader; r = Reader(); print(r.model_path); print(r.read_digit('blank.png').status)"
    # -I: ignore PYTHONPATH and the user's site, so the source tree cannot leak in.
    ran = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-I", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    model_path, status = ran.stdout.split("\n")[:2]
    assert model_path.startswith(str(purelib)) and status == "no digit found"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("index", [1, 4, 7])  # MNIST's test digits 2, 4 and 9
def test_a_digit_written_across_ruled_lines_is_read_by_predict_and_read(reader, mnist, index):
    """Ruled lines crossing a digit made one piece as wide as the page with it: `predict` cropped the lines
    (no digit found), and `read`, which drops rules, then refused the lone digit `predict` did not see."""
    x_test, y_test = mnist[1]
    paper = np.full((800, 600), 248, np.uint8)
    paper[100::60, :] = 150  # a rule every 60 px, 1 px thick, lighter than the ink
    paper[101::60, :] = 150
    digit = np.asarray(Image.fromarray(x_test[index]).resize((120, 120), Image.Resampling.BICUBIC))
    region = paper[300:420, 240:360]
    paper[300:420, 240:360] = np.minimum(region, 255 - digit)  # dark ink over the paper and its rules
    picture = Image.fromarray(paper)
    found = reader.read_digit(picture)
    assert (found.digit, found.status) == (y_test[index], OK), found
    assert reader.read_page(picture).text == str(y_test[index])


@pytest.mark.parametrize("pen", [2, 3])
def test_a_thin_pen_on_a_big_canvas_is_read_whole(reader, pen):
    """Reduced for the first look, a 7 of 2-3 px strokes on 800 px broke into pieces: `read` gave three 1s
    and `predict` no digit at all. A clean picture whose strokes are that thin is looked at again at its size."""
    from PIL import ImageDraw

    canvas = Image.new("L", (800, 800), 255)
    ImageDraw.Draw(canvas).line([(350, 300), (450, 300), (380, 500)], fill=0, width=pen, joint="curve")
    found = reader.read_digit(canvas)
    assert (found.digit, found.status) == (7, OK), found
    assert reader.read_page(canvas).text == "7"
