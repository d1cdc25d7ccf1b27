"""Inference on ONNX Runtime: parity with Keras, no TensorFlow import, safe loading."""

import subprocess
import sys

import numpy as np
import pytest

from digits.calibration import apply as apply_temperature
from digits.read.model import ModelError, Recognizer
from digits.runs import RunDir


def test_onnx_matches_keras_on_all_test_images(fast_run, mnist):

    from digits.train.export import load_keras

    _, (x_test, _) = mnist
    keras_probabilities = load_keras(fast_run / "model.keras").predict(
        x_test.astype("float32") / 255, verbose=0, batch_size=1000
    )
    onnx_probabilities = Recognizer(fast_run).predict_proba(x_test)
    assert np.array_equal(keras_probabilities.argmax(1), onnx_probabilities.argmax(1))
    assert np.abs(keras_probabilities - onnx_probabilities).max() <= 1e-4


def test_default_preset_reaches_the_articles_accuracy(fast_run):
    """The issue asks for a median of 0.974 over 3 seeds (see benchmarks/); one seed must not fall far below."""
    metrics = RunDir(fast_run).read_metrics()
    assert metrics["parameters"] == 104_938
    assert metrics["test_accuracy"] >= 0.970


def test_recognizer_never_imports_tensorflow(tiny_run, mnist):
    code = (
        "import sys, numpy as np\n"
        "from digits import Recognizer\n"
        f"r = Recognizer({str(tiny_run)!r})\n"
        "print(r.predict(np.zeros((2, 28, 28), np.uint8)))\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_predict_command_never_imports_tensorflow(tiny_run, mnist, tmp_path):
    from PIL import Image

    Image.fromarray(mnist[1][0][0]).save(tmp_path / "seven.png")
    code = (
        "import sys\n"
        "from digits.cli import main\n"
        f"sys.argv = ['digits', 'predict', {str(tmp_path / 'seven.png')!r}, '--model', {str(tiny_run)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "seven.png: " in result.stdout


def test_single_image_and_batch_agree(tiny_run, mnist):
    _, (x_test, _) = mnist
    recognizer = Recognizer(tiny_run)
    batch = recognizer.predict_proba(x_test[:8])
    one = recognizer.predict_proba(x_test[3])
    np.testing.assert_allclose(one[0], batch[3], atol=1e-6)
    np.testing.assert_allclose(recognizer.predict_proba(x_test[:8].astype(np.float32) / 255), batch, atol=1e-6)


def test_a_few_images_on_one_thread_give_the_same_probabilities(mnist):
    """One image or a few go to a one-thread session (quicker than handing them to a pool): bit for bit the same."""
    _, (x_test, _) = mnist
    recognizer = Recognizer(threads=2)
    images = x_test[:3].astype(np.float32) / 255
    pooled = recognizer.session.run(None, {recognizer.input_name: images})[0]
    np.testing.assert_array_equal(recognizer.predict_proba(images), apply_temperature(pooled, recognizer.temperature))


def test_threads_sharing_a_recognizer_make_its_one_thread_session_once(mnist, monkeypatch):
    """The one-thread session is made at the first small call, once, however many threads call at once."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    _, (x_test, _) = mnist
    recognizer = Recognizer(threads=2)
    from digits.read import model as model_module

    made, real_session, all_in = [], model_module.onnx_session, threading.Barrier(8)

    def slow_session(path, threads=None, model_bytes=None, fix=""):
        made.append(threads)
        time.sleep(0.2)  # the window in which a second thread, unlocked, would make another (from no bytes)
        return real_session(path, threads, model_bytes, fix)

    monkeypatch.setattr(model_module, "onnx_session", slow_session)
    image = x_test[:1].astype(np.float32) / 255

    def call(_):
        all_in.wait()
        return recognizer.predict_proba(image)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(8)))
    assert made == [1]
    for answer in answers:
        np.testing.assert_array_equal(answer, answers[0])


def test_not_a_digit_wins_only_when_it_outweighs_every_digit():
    from digits.spec import refused

    rows = np.array([[0.4, 0.2] + [0.0] * 8 + [0.4], [0.3, 0.2] + [0.0] * 8 + [0.5], [0.6, 0.4] + [0.0] * 8 + [0.0]])
    assert refused(rows).tolist() == [False, True, False]  # a tie goes to the digit
    assert refused(rows[:, :10]).tolist() == [False, False, False]  # a model without the class never refuses
    assert bool(refused(rows[1])) is True


@pytest.mark.parametrize(
    "threads, error", [(0, ValueError), (10**9, ValueError), ("2", TypeError), (True, TypeError), (1.5, TypeError)]
)
def test_a_thread_count_that_is_none_is_refused(threads, error):
    """ONNX Runtime answered 10**9 threads with std::bad_alloc, reported as "not a valid ONNX model"."""
    with pytest.raises(error, match="a whole number from 1 to 1024, or None for every core"):
        Recognizer(threads=threads)


def test_waiting_model_threads_sleep_rather_than_spin():
    """Between model calls the reader works on the same cores: idle threads must not take them."""
    session = Recognizer().session
    assert session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_wrong_image_shape_is_a_clear_error(tiny_run):
    with pytest.raises(ValueError, match="28, 28"):
        Recognizer(tiny_run).predict(np.zeros((4, 32, 32)))


def test_integer_pixels_of_any_type_are_0_to_255_and_floats_far_outside_0_1_are_refused(mnist):
    """int64 or uint16 pixels were taken as floats, unscaled: 99.2 % became 95.5 %, without a word."""
    _, (x_test, y_test) = mnist
    recognizer = Recognizer()
    expected = recognizer.predict(x_test[:50])
    for dtype in ("int64", "uint16", "int32"):
        np.testing.assert_array_equal(recognizer.predict(x_test[:50].astype(dtype)), expected)
    np.testing.assert_array_equal(recognizer.predict(x_test[:50] / 255.0), expected)
    recognizer.predict(np.full((28, 28), 1.2))  # resampling's overshoot is taken as it is
    for pixels, fragment in (
        (x_test[:2].astype(np.float32), "divide 0-255 pixels by 255"),
        (x_test[:2].astype(np.int64) - 1, "integer pixels must be 0-255"),
        (np.full((28, 28), np.nan), "float pixels must be in"),
        (x_test[:2].astype(object), "as numbers"),
    ):
        with pytest.raises(ValueError, match=fragment):
            recognizer.predict(pixels)


def test_keras_file_with_code_is_refused_by_safe_mode(tmp_path):
    """A .keras file from elsewhere may carry a Lambda layer (arbitrary Python); safe_mode refuses it."""
    import keras

    from digits.train.export import load_keras

    inputs = keras.Input((28, 28))
    outputs = keras.layers.Lambda(lambda t: t * 2)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "evil.keras")
    with pytest.raises(ModelError, match="evil.keras"):
        load_keras(tmp_path / "evil.keras")
