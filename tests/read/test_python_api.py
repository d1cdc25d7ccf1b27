"""Bad input through the Python API (`Reader`, `Recognizer`): one exception of a documented type, one sentence."""

from __future__ import annotations

import io
import threading
import warnings

import numpy as np
import pytest
from PIL import Image

from digits.errors import ModelError, stop_signals_call
from digits.read.model import Recognizer
from digits.read.reader import Reader
from helpers import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


@pytest.mark.parametrize("threshold", ["0.5", None, True])
def test_a_threshold_that_is_no_number_is_a_type_error(threshold):
    with pytest.raises(TypeError, match="threshold is a number from 0 to 1"):
        Reader(threshold=threshold)


@pytest.mark.parametrize("threshold", [5, -0.1, float("nan")])
def test_a_threshold_set_later_is_checked_too(reader, threshold):
    before = reader.threshold
    with pytest.raises(ValueError, match="threshold must be between 0 and 1"):
        reader.threshold = threshold
    assert reader.threshold == before
    with pytest.raises(TypeError, match="threshold is a number from 0 to 1"):
        reader.threshold = "0.9"


@pytest.mark.parametrize("model", [b"model.onnx", 3, ["runs/a"]])
def test_a_model_that_is_no_path_is_a_type_error(model):
    """Not os.fspath's own message, which offers bytes (an API user's trial)."""
    with pytest.raises(TypeError, match=r"model is a run folder or an \.onnx file \(a str or a pathlib\.Path\)"):
        Reader(model=model)


def test_a_float_array_says_how_to_make_it_a_picture(reader):
    with pytest.raises(TypeError, match=r"from floats in 0-1: np\.round\(a \* 255\)\.astype\(np\.uint8\)"):
        reader.read_digit(np.zeros((40, 40), np.float32))


def test_a_threshold_of_numpy_type_is_taken():
    assert Reader(threshold=np.float32(0.25)).threshold == np.float32(0.25)


def test_decide_takes_a_list_and_refuses_what_is_no_probability(reader):
    row = [0.0] * 10 + [0.0]
    row[3] = 1.0
    assert reader.decide(row).digit == 3
    for bad in (np.full(11, np.nan), np.full(11, -0.5), np.array(["a"] * 11)):
        with pytest.raises(ValueError, match="decide takes probabilities"):
            reader.decide(bad)


def test_a_closed_pil_image_is_named_as_such(reader):
    buffer = io.BytesIO()
    Image.new("L", (40, 40), 255).save(buffer, "PNG")
    picture = Image.open(buffer)
    picture.close()
    with pytest.raises(TypeError, match="the PIL image was closed before it was read"):
        reader.read_digit(picture)


def test_a_truncated_pil_image_is_an_image_error(reader):
    from digits.errors import ImageError

    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)  # no run-length to shrink it
    Image.fromarray(noise).save(buffer, "PNG")
    with pytest.raises(ImageError, match="the PIL image cannot be decoded"):
        reader.read_digit(Image.open(io.BytesIO(buffer.getvalue()[:3000])))


def test_decide_allows_a_rounding_hair_over_one(reader):
    row = np.zeros(11, np.float32)
    row[4] = 1 + 1e-7
    assert reader.decide(row).digit == 4


def test_the_batch_module_is_an_attribute_of_the_package():
    import digits

    assert digits.batch.read is __import__("digits.batch", fromlist=["read"]).read


def test_an_ensemble_of_one_string_is_a_type_error(tmp_path):
    pytest.importorskip("onnx")
    from digits.train.ensemble import build

    with pytest.raises(TypeError, match="a list of run folders, not the one folder 'runs/a'"):
        build("runs/a", tmp_path / "out")


@pytest.mark.parametrize("given", [None, "photo.png", (i for i in range(3))])
def test_something_that_is_no_array_of_digits_is_named(given):
    with pytest.raises(
        ValueError, match=r"got (NoneType|str|generator) \(a picture file or a photo goes to digits.Reader\)"
    ):
        Recognizer().predict(given)


def test_pixels_too_large_for_float32_are_refused_without_an_overflow_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="float pixels must be in"):
            Recognizer().predict(np.full((1, 28, 28), 1e308))


def test_an_empty_model_name_is_refused_not_taken_for_the_current_folder(tmp_path):
    with pytest.raises(ModelError, match="the model's name is empty"):
        Reader("")
    assert_one_line_error(run_cli("predict", "x.png", "--model", "", cwd=tmp_path), "'--model' / '-m': is empty")


def test_signal_handlers_are_left_alone_outside_the_main_thread():
    """Python lets only the main thread set handlers: train() called from a thread raised ValueError there."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with stop_signals_call(lambda signum, frame: None):
                pass
        except BaseException as err:  # noqa: BLE001 (the test reports what the thread met)
            failures.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert failures == []


def test_the_steps_of_a_thin_picture_are_drawn_at_a_bounded_size(reader, tmp_path):
    """Each step was drawn 200 px high whatever its width: a 1024×1 picture made a PNG of 512,496×260."""
    from digits.read.explain import save_steps

    save_steps(reader.prepare(np.full((1, 1024), 255, np.uint8)), tmp_path / "steps.png")
    with Image.open(tmp_path / "steps.png") as saved:
        assert saved.width <= 12 * 812 and saved.height <= 260, saved.size


def test_explain_pictures_are_pngs_drawn_on_the_picture_read(reader, tmp_path):
    from digits.read.explain import save_boxes, save_steps
    from digits.read.reader import Page

    with pytest.raises(ValueError, match=r"steps.jpg: the picture saved is a PNG"):
        save_steps(reader.prepare(np.full((40, 40), 255, np.uint8)), tmp_path / "steps.jpg")
    with pytest.raises(TypeError, match="save_boxes draws on the PIL image that was read"):
        save_boxes("page.png", Page(), tmp_path / "boxes.png")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"boxes.webp: the picture saved is a PNG"):
        save_boxes(Image.new("L", (40, 40), 255), Page(), tmp_path / "boxes.webp")
    assert not list(tmp_path.iterdir())


def test_threads_sharing_a_reader_and_a_lazily_opened_image_all_read_it(reader, mnist):
    from concurrent.futures import ThreadPoolExecutor

    buffer = io.BytesIO()
    Image.fromarray(255 - mnist[1][0][0]).resize((100, 100)).save(buffer, "PNG")
    for _ in range(5):  # the race was one call in a trial or so
        shared = Image.open(io.BytesIO(buffer.getvalue()))  # not loaded yet: the threads' first use loads it
        with ThreadPoolExecutor(8) as pool:
            found = [answer.digit for answer in pool.map(reader.read_digit, [shared] * 16)]
        assert found == [7] * 16


def test_a_reader_cannot_be_pickled_or_deep_copied_and_says_what_to_do(reader):
    import copy
    import pickle

    for attempt in (pickle.dumps, copy.deepcopy):
        with pytest.raises(TypeError, match="cannot be pickled or deep-copied: make one in each process"):
            attempt(reader)
    assert copy.copy(reader).read_digit(np.zeros((28, 28), np.uint8)).status == "no digit found"  # shares it


def test_text_holding_a_nul_byte_is_said_to_be_bytes_decoded_not_a_path(reader):
    from digits.errors import ImageError

    with pytest.raises(ImageError, match="pass a picture's bytes as bytes, not as text"):
        reader.read_digit(b"\x89PNG\r\n\x1a\n\x00\x00".decode("latin-1"))


def test_batch_write_names_its_output_and_job_types(tmp_path):
    from digits import batch

    with pytest.raises(TypeError, match=r"output is a digits.batch.Output \(with Output\(path\) as output"):
        batch.write(["a.png"], "out.csv", batch.job_for())
    with pytest.raises(TypeError, match="job is a digits.batch.Job, made by digits.batch.job_for"):
        batch.write(["a.png"], None, "read")
