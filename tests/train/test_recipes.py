"""Issue 22's recipes: the sprint, sprint-99.5 and record presets, OneCycle, label smoothing, the EMA of the weights."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from digits.config import TrainConfig
from digits.errors import ConfigError, Interrupted
from digits.runs import RunDir
from digits.train import models
from digits.train.loop import TEST_SIGNAL_VARIABLE

LOAD_KERAS = (
    "import sys; from digits.train.export import load_keras; load_keras(__import__('pathlib').Path(sys.argv[1]))"
)

# A few steps per epoch: enough to change every weight, the optimizer's moments and the average.
LIMITS = {"sprint": 1300, "sprint-99.5": 1300, "record": 520}


def _train(preset, tmp_path, name, **kwargs):
    from digits.train.run import train

    return train(
        preset,
        runs_dir=tmp_path,
        name=name,
        seed=5,
        train_limit=LIMITS[preset],
        overrides={"epochs": 3},
        progress=False,
        log=lambda *a: None,
        **kwargs,
    )


def _arrays(run) -> dict[str, np.ndarray]:
    groups, _ = RunDir(run).read_checkpoint()
    return {f"{group}/{name}": array for group, named in groups.items() for name, array in named.items()}


def _assert_same(first, second) -> None:
    a, b = _arrays(first), _arrays(second)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("preset", ["sprint", "sprint-99.5", "record"])
def test_preset_resumes_exactly_and_the_same_seed_gives_the_same_weights(preset, tmp_path, mnist, monkeypatch):
    whole = _train(preset, tmp_path, "whole")
    _assert_same(whole, _train(preset, tmp_path, "again"))
    monkeypatch.setenv(TEST_SIGNAL_VARIABLE, "SIGINT:1")
    with pytest.raises(Interrupted):
        _train(preset, tmp_path, "cut")
    assert RunDir(tmp_path / "cut").checkpoint_meta()["epoch"] == 1
    monkeypatch.delenv(TEST_SIGNAL_VARIABLE)
    from digits.train.run import train

    train(resume=tmp_path / "cut", progress=False, log=lambda *a: None)
    _assert_same(whole, tmp_path / "cut")
    from digits.read.model import Recognizer

    _, (x_test, _) = mnist
    np.testing.assert_array_equal(
        Recognizer(whole).predict_proba(x_test[:64]), Recognizer(tmp_path / "cut").predict_proba(x_test[:64])
    )


def test_with_ema_the_model_saved_is_the_average_of_the_weights(tmp_path, mnist):
    """The checkpoint keeps the raw weights and, among the optimizer's variables, their average; the model is the average."""
    from digits.train.export import load_keras

    run = _train("record", tmp_path, "ema")
    arrays = _arrays(run)
    model = load_keras(RunDir(run).keras_path)
    kernel = next(w for w in model.trainable_weights if w.path.startswith("conv_0/"))
    average = next(a for key, a in arrays.items() if key.startswith("optimizer/") and "conv_0_kernel_average" in key)
    np.testing.assert_array_equal(np.asarray(kernel), average)
    assert not np.array_equal(arrays["model/conv_0/kernel"], average)


def test_onecycle_warms_up_then_anneals():
    config = TrainConfig.from_preset("sprint", {"epochs": 4, "learning_rate": 0.01})
    lr = models.learning_rate(config, steps_per_epoch=100)
    assert float(lr(0)) == pytest.approx(0.01 / 25)
    assert float(lr(100)) == pytest.approx(0.01)  # the peak, a quarter of the 400 steps in
    assert float(lr(50)) < float(lr(100)) and float(lr(250)) < float(lr(100))
    assert float(lr(400)) == pytest.approx(0.01 * models.ONECYCLE_END, rel=1e-3)


def test_label_smoothing_spreads_the_target():
    import keras

    config = TrainConfig.from_preset("tiny", {"label_smoothing": 0.1})
    uniform = keras.ops.full((1, 10), 0.1)
    confident = keras.ops.convert_to_tensor([[0.99] + [0.01 / 9] * 9])
    labels = keras.ops.convert_to_tensor([0])
    smooth, plain = models.train_loss(config), models.train_loss(TrainConfig.from_preset("tiny"))
    assert float(smooth(labels, uniform)) == pytest.approx(float(plain(labels, uniform)), rel=1e-5)
    # Smoothed targets put 0.01 on each wrong class, so near-certainty costs more than with hard labels.
    assert float(smooth(labels, confident)) > float(plain(labels, confident)) + 0.01


def test_ema_and_early_stopping_are_refused_together():
    with pytest.raises(ConfigError, match="exclude each other"):
        TrainConfig.from_preset("record", {"early_stopping": 3})


def test_the_fused_batch_norm_computes_what_keras_does(tmp_path):
    """Training and inference: the same outputs, moving statistics and gradients as Keras's layer; saved and loaded."""
    from digits.train.export import load_keras
    from digits.train.tf import load

    tf, keras = load()
    images = np.random.default_rng(0).random((32, 7, 7, 8), dtype=np.float32) * 3 + 1
    weights = np.random.default_rng(1).random((32, 7, 7, 8), dtype=np.float32)
    plain = keras.layers.BatchNormalization(momentum=models.BN_MOMENTUM)
    fused = models.FusedBatchNormalization(momentum=models.BN_MOMENTUM)
    seen = {}
    for name, layer in (("plain", plain), ("fused", fused)):
        layer.build(images.shape)
        with tf.GradientTape() as tape:
            outputs = layer(images, training=True)
            loss = tf.reduce_sum(outputs * weights)
        seen[name] = [
            outputs,
            *tape.gradient(loss, layer.trainable_variables),
            layer.moving_mean,
            layer.moving_variance,
        ]
        seen[name].append(layer(images, training=False))
    for a, b in zip(seen["plain"], seen["fused"], strict=True):  # float32 sums in another order: 1e-4 of the scale
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-4 * np.abs(np.asarray(a)).max())

    # Over 8 values a batch's unbiased variance is 8/7 of the biased one Keras keeps: the correction shows.
    small = images[:2, :2, :2]
    for layer in (plain, fused):
        layer(small, training=True)
    np.testing.assert_allclose(fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-6)
    model = models.build(TrainConfig.from_preset("sprint"))
    assert any(isinstance(layer, models.FusedBatchNormalization) for layer in model.layers)
    model.save(tmp_path / "model.keras")
    # In a process that has not built a model yet, loading registers the layer itself.
    subprocess.run([sys.executable, "-c", LOAD_KERAS, str(tmp_path / "model.keras")], check=True)
    loaded = load_keras(tmp_path / "model.keras")
    np.testing.assert_array_equal(
        loaded.predict(images[:4, :, :, 0].repeat(4, 1).repeat(4, 2), verbose=0),
        model.predict(images[:4, :, :, 0].repeat(4, 1).repeat(4, 2), verbose=0),
    )
