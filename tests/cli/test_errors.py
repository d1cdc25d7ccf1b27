"""Every failure a user can cause ends in one sentence naming the real cause, and exit code 2.

Usage errors, unreadable or strange files, models of the wrong kind, outputs
that are not regular files. (Broken run folders: test_runs.py; writes: test_atomic.py.)
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from digits.errors import ImageError, ModelError
from helpers import DIGITS, assert_one_line_error, run_cli


@pytest.fixture
def picture(tmp_path, mnist):
    path = tmp_path / "two.png"
    Image.fromarray(mnist[1][0][1]).save(path)
    return path


@pytest.fixture
def model(tiny_run):
    return str(tiny_run)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--threshold", "abc"], "'--threshold'"),
        (["--threshold", "-1"], "must be a number from 0 to 1, not -1.0"),
        (["--threshold", "2"], "must be a number from 0 to 1, not 2.0"),
        (["--threshold", "nan"], "not nan"),
        (["--threshold", "inf"], "not inf"),
        (["--explain", "out.png", "two.png"], "--explain takes exactly one image"),
        (["--explain", ""], "give it a file name ending in .png"),
        (["--explain", "out.png", "--out", "rows.csv"], "drop --out"),
        (["--explain", "out.png", "--dask", ""], "drop --dask"),
        (["--explain", "out.jpg"], "--explain saves a PNG"),
        (["--explain", "out.png/"], "give it a file name ending in .png"),  # a folder meant: was saved as a file
        (["--explain", "nowhere/out.png"], "the folder nowhere does not exist; create it first"),
        (["--explain", "sub"], "sub is a folder; name a file ending in .png"),
    ],
)
def test_predict_usage_errors_are_one_line(tmp_path, picture, model, args, fragment):
    (tmp_path / "sub").mkdir()
    assert_one_line_error(run_cli("predict", "two.png", *args, "--model", model, cwd=tmp_path), fragment)
    assert not (tmp_path / "out.png").exists()


def test_show_index_below_zero_is_one_line(tmp_path, model):
    assert_one_line_error(run_cli("show", "--index", "-1", "--model", model, cwd=tmp_path), "'--index'")


def test_show_refuses_a_dataset_whose_classes_the_run_never_learnt(tmp_path, model):
    """A digit model's outputs named after Fashion-MNIST's garments (its 2 called a pullover) would mean nothing."""
    result = run_cli("show", "--dataset", "fashion-mnist", "--model", model, cwd=tmp_path)
    assert_one_line_error(result, "was trained on mnist, whose classes are not fashion-mnist's; drop --dataset")
    assert not (tmp_path / "show-1.png").exists()


def test_show_saves_only_a_png_under_its_name(tmp_path, model):
    result = run_cli("show", "--out", "digit.jpg", "--model", model, cwd=tmp_path)
    assert_one_line_error(result, "digit.jpg is no .png file; name a file ending in .png")
    assert not (tmp_path / "digit.jpg").exists()


def test_a_keras_file_as_model_points_to_the_run_or_its_onnx(tmp_path, picture):
    (tmp_path / "model.keras").write_bytes(b"PK")
    result = run_cli("predict", "two.png", "--model", "model.keras", cwd=tmp_path)
    assert_one_line_error(result, "a Keras model; pass its run folder or the run's model.onnx instead")


def test_a_tflite_file_as_model_points_to_the_onnx(tmp_path, picture):
    (tmp_path / "model.tflite").write_bytes(b"TFL3")
    result = run_cli("predict", "two.png", "--model", "model.tflite", cwd=tmp_path)
    assert_one_line_error(result, "a TensorFlow Lite model, for other runtimes; pass the run's model.onnx instead")


def test_explain_takes_a_glob_that_matches_one_picture_and_names_it(tmp_path, picture):
    shutil.copy(picture, tmp_path / "three.png")
    result = run_cli("predict", "tw*.png", "--explain", "steps.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("two.png: ") and (tmp_path / "steps.png").is_file()
    many = run_cli("read", "t*.png", "--explain", "boxes.png", cwd=tmp_path)
    assert_one_line_error(many, "--explain takes one picture file; t*.png matches 2 files")
    assert not (tmp_path / "boxes.png").exists()


@pytest.mark.parametrize(
    "bad",
    [
        "--epochs 0",
        "--batch-size -3",
        "--learning-rate nan",
        "--dataset cifar",
        # Past 64 bits TensorFlow failed with exit 1, after the run folder was made.
        "--epochs 1000000000000000000000",
        "--seed 4294967296",
        # The last seed would fail only after the first had trained.
        "--seed 4294967295 --seeds 2",
        # Found only on the data, after the run folder was made: neither --name nor --resume could then go on.
        "--train-limit 512 --batch-size 512",
    ],
)
def test_bad_training_values_are_refused_before_training(tmp_path, bad):
    result = run_cli("train", "--preset", "tiny", *bad.split(), cwd=tmp_path)
    assert_one_line_error(result)
    assert not (tmp_path / "runs").exists(), "nothing is created for a refused command"


def test_empty_file_name_is_not_the_current_folder(tmp_path, model):
    assert_one_line_error(run_cli("predict", "", "--model", model, cwd=tmp_path), "an empty name is no picture")


def test_symlink_loop_is_not_called_missing(tmp_path, model):
    (tmp_path / "a.png").symlink_to("b.png")
    (tmp_path / "b.png").symlink_to("a.png")
    assert_one_line_error(
        run_cli("predict", "a.png", "--model", model, cwd=tmp_path),
        "a.png: cannot be opened (Too many levels of symbolic links)",
    )


def test_eps_is_refused_without_ghostscript_talk(tmp_path, model):
    Image.new("L", (20, 20), 255).save(tmp_path / "scan.eps", "EPS")
    result = run_cli("predict", "scan.eps", "--model", model, cwd=tmp_path)
    assert_one_line_error(result, "scan.eps: EPS is a format digits does not read")
    assert "Ghostscript" not in result.stderr


def test_a_file_you_may_not_read_says_so(tmp_path, monkeypatch):
    """Root reads every file, so the refusal is simulated where the bytes are read (pictures and models alike)."""
    from digits import safe_open
    from digits.read.load import load_image
    from digits.read.model import Recognizer

    (tmp_path / "secret.png").write_bytes(b"x")

    def refuse_open(path, flags):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(safe_open.os, "open", refuse_open)
    with pytest.raises(ImageError, match=r"secret.png: cannot be read \(Permission denied\)"):
        load_image(tmp_path / "secret.png")
    with pytest.raises(ModelError, match=r"secret.png: cannot be read \(Permission denied\)"):
        Recognizer(tmp_path / "secret.png")


def test_onnx_model_whose_output_shape_is_unknown_is_refused(tmp_path, picture):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "shapeless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    onnx.save(helper.make_model(graph), tmp_path / "shapeless.onnx")
    assert_one_line_error(
        run_cli("predict", "two.png", "--model", "shapeless.onnx", cwd=tmp_path),
        "shapeless.onnx: does not output 10 digit probabilities",
    )


def _keras_run(tmp_path, name: str, build) -> str:
    """A folder holding only a model.keras that `build(keras)` makes."""
    from digits.train.tf import load

    _, keras = load()
    folder = tmp_path / name
    folder.mkdir()
    build(keras).save(folder / "model.keras")
    return name


def test_export_of_a_32x32_model_names_the_shape(tmp_path):
    def build(keras):
        inputs = keras.Input((32, 32))
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs)))

    run = _keras_run(tmp_path, "wide", build)
    assert_one_line_error(run_cli("export", run, cwd=tmp_path), "takes input of shape (32, 32), not 28x28")


def test_export_of_a_model_of_other_outputs_names_them_and_keeps_the_onnx(tmp_path):
    """It wrote a model.onnx over the run's that every other command then refused, and exited 0."""

    def build(keras):
        inputs = keras.Input((28, 28))
        return keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(inputs)))

    run = _keras_run(tmp_path, "five", build)
    (tmp_path / run / "model.onnx").write_bytes(b"the run's own")
    assert_one_line_error(run_cli("export", run, cwd=tmp_path), "outputs (None, 5), not 10 digit probabilities")
    assert (tmp_path / run / "model.onnx").read_bytes() == b"the run's own"


def test_export_refuses_a_lambda_layer_in_a_whole_sentence(tmp_path):
    def build(keras):
        inputs = keras.Input((28, 28))
        return keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))

    run = _keras_run(tmp_path, "lambda", build)
    result = run_cli("export", run, cwd=tmp_path)
    assert_one_line_error(result, "Python lambda", "safe mode")
    assert result.stderr.rstrip().endswith(".")


def test_damaged_keras_file_is_not_called_missing(tmp_path, tiny_run):
    run = tmp_path / "copy"
    shutil.copytree(tiny_run, run)
    (run / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    result = run_cli("export", str(run), cwd=tmp_path)
    assert_one_line_error(result, "model.keras: not a .keras model")
    assert "not found" not in result.stderr


def test_explain_never_replaces_a_fifo(tmp_path, picture, model):
    os.mkfifo(tmp_path / "pipe.png")
    result = run_cli("predict", "two.png", "--explain", "pipe.png", "--model", model, cwd=tmp_path)
    assert_one_line_error(result, "pipe.png: it is a FIFO, not a regular file")
    assert (tmp_path / "pipe.png").is_fifo()


def test_explain_through_a_symlink_writes_its_target(tmp_path, picture, model):
    (tmp_path / "link.png").symlink_to("target.png")
    result = run_cli("predict", "two.png", "--explain", "link.png", "--model", model, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "link.png").is_symlink() and Image.open(tmp_path / "target.png").size[0] > 28
    assert np.asarray(Image.open(tmp_path / "link.png")).size > 0


def test_runs_of_a_folder_that_is_not_there_is_one_line(tmp_path):
    assert_one_line_error(run_cli("runs", "nope", cwd=tmp_path), "nope: no such folder of runs")
    (tmp_path / "file.txt").write_text("x")
    assert_one_line_error(run_cli("runs", "file.txt", cwd=tmp_path), "is a file, not a folder of runs")
    assert run_cli("runs", cwd=tmp_path).returncode == 0, "before the first training, ./runs is simply empty"


def test_a_run_folder_without_its_model_says_how_to_finish_it(tmp_path, tiny_run):
    import shutil

    unfinished = tmp_path / "unfinished"
    shutil.copytree(tiny_run, unfinished)
    (unfinished / "model.onnx").unlink()
    assert_one_line_error(run_cli("predict", "x.png", "--model", str(unfinished), cwd=tmp_path), "digits export")
    (unfinished / "model.keras").unlink()
    result = run_cli("predict", "x.png", "--model", str(unfinished), cwd=tmp_path)
    assert_one_line_error(result, "its model files are gone")
    assert_one_line_error(run_cli("export", str(unfinished), cwd=tmp_path), "has no model.keras to export")


def test_resume_refuses_settings_it_would_ignore(tmp_path, tiny_run):
    result = run_cli("train", "--resume", str(tiny_run), "--preset", "seed", "--epochs", "3", cwd=tmp_path)
    assert_one_line_error(result, "drop --preset, --epochs")
    # Even typed with its default value: the run's own seed, not this one, is what resuming uses.
    assert_one_line_error(run_cli("train", "--resume", str(tiny_run), "--seed", "0", cwd=tmp_path), "drop --seed.")


def test_explain_reads_one_picture_file(tmp_path, picture, model):
    (tmp_path / "list.txt").write_text("two.png\n")
    for source in ("@list.txt", "-", "."):
        result = run_cli("predict", source, "--explain", "out.png", "--model", model, cwd=tmp_path, input="two.png\n")
        assert_one_line_error(result, "--explain takes one picture file")


def test_json_nested_too_deeply_in_a_run_or_a_card_is_one_line(tmp_path, tiny_run):
    deep = "[" * 100_000 + "]" * 100_000
    run = tmp_path / "deep"
    shutil.copytree(tiny_run, run)
    (run / "config.json").write_text(deep)
    assert_one_line_error(run_cli("runs", str(tmp_path), cwd=tmp_path), "nested too deeply")
    card = tmp_path / "m.onnx"
    shutil.copy(tiny_run / "model.onnx", card)
    (tmp_path / "m.json").write_text(deep)
    assert_one_line_error(run_cli("predict", "x.png", "--model", str(card), cwd=tmp_path), "card cannot be read")


def test_an_ensemble_without_its_model_says_to_make_it_again(tmp_path, tiny_run):
    ensemble, twin = tmp_path / "ens", tmp_path / "twin"
    shutil.copytree(tiny_run, twin)  # a run named twice is refused: a copy in another folder is another run
    made = run_cli("ensemble", str(tiny_run), str(twin), "--out", str(ensemble), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    (ensemble / "model.onnx").unlink()
    assert_one_line_error(run_cli("predict", "x.png", "--model", str(ensemble), cwd=tmp_path), "digits ensemble")
    assert_one_line_error(run_cli("export", str(ensemble), cwd=tmp_path), "an ensemble has no Keras model")


def test_showing_a_study_never_creates_a_database(tmp_path):
    assert_one_line_error(run_cli("tune", "--show", "seed-mnist", cwd=tmp_path), "no study database at", "runs/tune.db")
    assert not (tmp_path / "runs").exists()


def test_explain_through_a_dangling_link_names_the_missing_folder(tmp_path, picture, model):
    os.symlink("nowhere/x.png", tmp_path / "dangling.png")
    result = run_cli("predict", "two.png", "--explain", "dangling.png", "--model", model, cwd=tmp_path)
    assert_one_line_error(result, "the folder", "nowhere does not exist")


# Ctrl-C at a known point of the start-up: an import hook sends it when a module starts loading.
_CTRL_C_WHEN_LOADING = """
import os, signal, sys, importlib.abc
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even where the tests run in the background
LOADING = sys.argv[1]
class CtrlC(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == LOADING:
            sys.meta_path.remove(self)
            try:
                os.kill(os.getpid(), signal.SIGINT)
            except KeyboardInterrupt:  # as a C extension's init reports it: its own error
                raise ImportError("initialization failed") from None
        return None
sys.meta_path.insert(0, CtrlC())
from digits.__main__ import main
sys.argv = ["digits", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize(
    "loading",
    [
        "typer",  # while the command's own modules load
        "digits.read.reader",  # inside the command, where the import fails with the library's own error
    ],
)
def test_ctrl_c_while_modules_load_exits_130_without_a_word(tmp_path, picture, loading):
    script = tmp_path / "ctrl_c.py"
    script.write_text(_CTRL_C_WHEN_LOADING)
    result = subprocess.run(
        [sys.executable, str(script), loading, "predict", str(picture)], capture_output=True, text=True, timeout=300
    )
    assert (result.returncode, result.stderr) == (130, ""), result.stderr


def test_a_mistyped_command_is_one_sentence_ending_once(tmp_path):
    result = run_cli("perdict", "x.png", cwd=tmp_path)
    assert_one_line_error(result, "No such command 'perdict'")
    assert result.stderr.strip().endswith("Did you mean 'predict'?")


def test_a_confidence_under_one_is_never_printed_as_100_percent():
    from digits.cli.terminal import percent

    assert percent(0.9995) == "99.9%" and percent(1.0) == "100.0%" and percent(0.5) == "50.0%"


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_a_file_given_for_a_run_folder_is_called_a_file(tmp_path, command):
    (tmp_path / "model.onnx").write_bytes(b"")
    assert_one_line_error(run_cli(command, "model.onnx", cwd=tmp_path), "model.onnx: a file, not a run folder")


def test_export_of_a_folder_that_is_no_run_does_not_suggest_an_onnx_file(tmp_path):
    (tmp_path / "plain").mkdir()
    result = run_cli("export", "plain", cwd=tmp_path)
    assert_one_line_error(result, "plain: not a run folder (no config.json, no model.keras)")
    assert ".onnx file" not in result.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("command", ["predict", "compare"])  # a line of answers, and a table
def test_a_full_standard_output_is_named(tmp_path, picture, model, command):
    args = [str(picture), "--model", model] if command == "predict" else [model]
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [DIGITS, command, *args], stdout=full, stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=300
        )
    assert_one_line_error(result, "standard output: No space left on device")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_bad_input_exits_2_even_when_stderr_cannot_take_the_sentence(tmp_path):
    """The error line could not be written to a full stderr: the OSError made it exit 1, as a crash does."""
    with open("/dev/full", "w") as full:
        result = subprocess.run([DIGITS, "predict", "missing.png"], stderr=full, cwd=tmp_path, timeout=300)
    assert result.returncode == 2


@pytest.mark.parametrize("args", [["--timeout", "-1"], ["--timeout", "nan"], ["--study", ""]])
def test_tune_refuses_a_timeout_or_study_it_would_ignore(tmp_path, args):
    assert_one_line_error(run_cli("tune", "--trials", "1", *args, cwd=tmp_path))
    assert not (tmp_path / "runs").exists()
