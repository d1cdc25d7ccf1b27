"""The core without TensorFlow: presets as checked plain data, one error family, a quiet backend import."""

import math
import os
import sys

import pytest

from digits.config import TrainConfig
from digits.errors import ConfigError, DataError, DigitsError, ImageError, ModelError, TrainingError, WriteError
from digits.presets import PRESETS
from digits.train import tf as backend
from helpers import run_cli, run_python


def test_core_and_inference_never_import_tensorflow(tiny_run):
    code = (
        "import sys, importlib.util\n"
        "import numpy as np\n"
        "import digits.config, digits.errors, digits.runs, digits.run_table, digits.data, digits.read.pipeline, digits.cli\n"
        "from digits.read.model import Recognizer\n"
        "if importlib.util.find_spec('digits.read.reader'):\n"
        "    import digits.read.reader\n"
        f"Recognizer({str(tiny_run)!r}).predict(np.zeros((2, 28, 28), np.uint8))\n"
        f"digits.run_table.list_runs({str(tiny_run.parent)!r})\n"
        "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_a_bad_preset_is_refused_before_tensorflow_loads():
    code = (
        "import sys\n"
        "from digits.cli import main\n"
        "sys.argv = ['digits', 'train', '--preset', 'nope']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 2, exit.code\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("error: Invalid value for '--preset': 'nope' is not one of 'seed'")


def test_every_user_facing_error_is_a_digits_error():
    for error in (ConfigError, DataError, ImageError, ModelError, TrainingError, WriteError):
        assert issubclass(error, DigitsError)
    from digits.atomic import WriteError as from_atomic
    from digits.data import DataError as from_data
    from digits.read.model import ModelError as from_inference
    from digits.read.pipeline import ImageError as from_preprocess
    from digits.runs import TrainingError as from_runs

    assert (from_atomic, from_data, from_inference, from_preprocess, from_runs) == (
        WriteError,
        DataError,
        ModelError,
        ImageError,
        TrainingError,
    )


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_passes_its_own_checks(preset):
    assert TrainConfig.from_preset(preset, {}, "mnist", 0, None).preset == preset


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"epoch": 3}, "unknown override 'epoch'"),
        ({"epochs": 0}, "epochs is 0, expected a whole number from 1 to 100,000"),
        ({"batch_size": 2.5}, "batch_size is 2.5"),
        ({"learning_rate": math.nan}, "learning_rate is nan"),
        ({"learning_rate": -1.0}, "learning_rate is -1.0"),
        ({"dropout": 1.0}, "dropout is 1.0"),
        ({"schedule": "linear"}, "expected one of constant, cosine"),
        ({"hidden": [128, 0]}, "hidden is [128, 0]"),
        # A planted run folder's config asked for 9.4 GB of weights; TensorFlow's allocation failed, exit 1.
        ({"hidden": [3_000_000]}, "hidden is [3000000], expected a list of at most 32 whole numbers from 1 to 16,384"),
        ({"convs": [[32, 99, 2]]}, "kernel and stride from 1 to 28"),
        ({"ema": 1.0}, "ema is 1.0, expected a number in [0, 1)"),
        ({"label_smoothing": 0.7}, "label_smoothing is 0.7"),
    ],
)
def test_bad_overrides_are_refused_in_one_sentence(overrides, fragment):
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_preset("tiny", overrides, "mnist", 0, None)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_preset_is_refused():
    with pytest.raises(ConfigError, match="unknown preset 'huge'; choose one of seed, fast"):
        TrainConfig.from_preset("huge", {}, "mnist", 0, None)


def test_native_log_lines_are_dropped_and_everything_else_kept(capfd):
    with backend.native_logs_filtered():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1795674312.478481    6472 port.cc:153] oneDNN custom operations are on.\n")
        print("a Python warning", file=sys.stderr)
    assert capfd.readouterr().err == "a Python warning\n"


@pytest.mark.parametrize(("setting", "on"), [(None, True), ("0", False), ("1", True)])
def test_onednn_is_on_unless_the_user_turns_it_off(setting, on):
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    env |= {"TF_ENABLE_ONEDNN_OPTS": setting} if setting else {}
    probe = (
        "from digits.train import tf as backend; backend.load(); "
        "from tensorflow.python.util import _pywrap_util_port; print(_pywrap_util_port.IsMklEnabled())"
    )
    found = run_python(probe, env)
    assert found.stdout.split() == [str(on)]


def test_no_command_lets_tensorflow_talk_on_stderr(tmp_path):
    """With oneDNN forced on, TensorFlow prints its start-up lines on any CPU; none may reach the user."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"}
    trained = run_cli("train", "--preset", "tiny", "--train-limit", "3000", "--epochs", "1", cwd=tmp_path, env=env)
    assert trained.returncode == 0 and trained.stderr == "", trained.stderr
    exported = run_cli("export", "runs/latest", cwd=tmp_path, env=env)
    assert exported.returncode == 0 and exported.stderr == "", exported.stderr


def test_an_unknown_dataset_is_refused_with_the_config_naming_every_one_training_takes():
    with pytest.raises(ConfigError, match="dataset.*one of mnist, fashion-mnist, usps, semeion, cvl, dida"):
        TrainConfig.from_preset("tiny", None, "foo", 0, None)
