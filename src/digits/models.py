"""Architectures and training presets, as plain data.

Every model takes a batch of 28x28 float32 images with pixels in [0, 1]
(the article's `X / 255`) and returns 10 softmax probabilities, or 11 for a
preset with `"reject_class": True`, whose 11th class is "not a digit". A preset is a
dict of everything that defines a run; `digits train --preset NAME` picks one
and command-line flags override single keys.
"""

from __future__ import annotations

import os

# The package, not the user's environment, chooses the Keras backend.
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import layers  # noqa: E402

# What every preset starts from; each one below states only what it changes.
_BASE = {
    "arch": "dense",
    "dropout": 0.0,
    "batch_norm": False,
    "schedule": "constant",
    "weight_decay": 0.0,
    "validation_split": 0.1,
    "early_stopping": 0,  # patience in epochs; 0 = off. When on, the best epoch's weights are kept.
    "monitor": "val_loss",  # what "best epoch" means
    "augment": False,
    # Compile each chunk of training steps with XLA: at small batches it removes
    # the per-step overhead (the seed preset runs ~6x faster), at the cost of a
    # second or two of compile time.
    "jit_compile": True,
    # For reading real pictures (see the "reader" preset): real pens and
    # cameras, European 1s and 7s, and an 11th class learnt from junk.
    "augment_real": False,
    "european_ones": 0,
    "crossed_sevens": 0,
    "reject_class": False,
    "junk_train": 0,  # junk pictures made for training negatives (fewer survive preprocessing)
    "junk_val": 0,
    "junk_test": 500,  # held-out junk pictures on which evaluation measures refusal
}

PRESETS: dict[str, dict] = {
    # The article, exactly: 784-128-32-10, Adam defaults, batch 32, 25 epochs,
    # the last 20 % of the training set held out for validation.
    "seed": {**_BASE, "hidden": [128, 32], "epochs": 25, "batch_size": 32, "learning_rate": 1e-3,
             "validation_split": 0.2},
    # The default: the article's network, trained fast. Large batches with a
    # cosine-decayed learning rate reach the article's accuracy in a few
    # seconds instead of a couple of minutes.
    # With only ~100 steps per epoch, XLA's compile time costs more than it saves.
    "fast": {**_BASE, "hidden": [128, 32], "epochs": 8, "batch_size": 512, "learning_rate": 5e-3,
             "schedule": "cosine", "jit_compile": False},
    # The article's family done right: wider, dropout, decoupled weight decay,
    # a cosine schedule and early stopping that restores the best weights.
    # Validation loss starts rising from over-confidence long before validation
    # accuracy stops improving, so the best epoch is chosen by accuracy.
    "mlp": {**_BASE, "hidden": [1024, 1024], "dropout": 0.5, "epochs": 30, "batch_size": 256,
            "learning_rate": 1e-3, "schedule": "cosine", "weight_decay": 1e-4, "early_stopping": 10,
            "monitor": "val_accuracy"},
    # Dense only, on images deformed on the fly (affine + elastic): the
    # Simard/Cireşan recipe.
    "mlp-aug": {**_BASE, "hidden": [1024, 1024], "dropout": 0.2, "epochs": 40, "batch_size": 256,
                "learning_rate": 1e-3, "schedule": "cosine", "weight_decay": 1e-4, "augment": True},
    # A small convnet: three 'same' convolutions of stride 2 (28 -> 14 -> 7 -> 4
    # pixels) instead of convolutions plus max-pooling, each with batch
    # normalization, on deformed images. Striding does the downsampling inside
    # the convolution, so three layers cost less than the two-layer pooled
    # version (25 s per epoch on 2 cores instead of 46 s). It runs as a plain
    # graph: XLA's CPU convolutions measured over 10x slower than TensorFlow's own.
    "cnn": {**_BASE, "arch": "cnn", "convs": [[32, 5, 2], [64, 5, 2], [128, 3, 2]], "jit_compile": False,
            "hidden": [128], "dropout": 0.3, "batch_norm": True, "epochs": 30, "batch_size": 128,
            "learning_rate": 2e-3, "schedule": "cosine", "weight_decay": 1e-4, "augment": True},
    # The model the package ships, for real pictures: the cnn, plus an 11th
    # class "not a digit" learnt from generated junk run through the
    # preprocessing (`digits.junk.negatives`), pens from hairline to marker,
    # blur and faint ink (`augment.real_batch`), wider position and size
    # jitter, and European 1s and crossed 7s (`augment.european_variants`).
    "reader": {**_BASE, "arch": "cnn", "convs": [[32, 5, 2], [64, 5, 2], [128, 3, 2]], "jit_compile": False,
               "hidden": [128], "dropout": 0.3, "batch_norm": True, "epochs": 30, "batch_size": 128,
               "learning_rate": 2e-3, "schedule": "cosine", "weight_decay": 1e-4, "augment": True,
               "augment_real": True, "european_ones": 3000, "crossed_sevens": 2000,
               "reject_class": True, "junk_train": 12000, "junk_val": 1200},
    # A seconds-long smoke test for the test suite and for trying the CLI.
    "tiny": {**_BASE, "hidden": [32], "epochs": 2, "batch_size": 256, "learning_rate": 3e-3},
}

DEFAULT_PRESET = "fast"

# PyTorch's default (Keras's is 0.99): moving statistics that settle within a
# few hundred steps, so short runs evaluate with sensible batch-norm statistics.
BN_MOMENTUM = 0.9


def num_classes(config: dict) -> int:
    """10 digits, plus "not a digit" when the config has a reject class."""
    return 11 if config.get("reject_class") else 10


def build(config: dict, num_classes: int = 10) -> keras.Model:
    """Build the network a config describes (uncompiled)."""
    inputs = keras.Input(shape=(28, 28), name="image")
    if config["arch"] == "dense":
        x = layers.Flatten()(inputs)
    elif config["arch"] == "cnn":
        x = layers.Reshape((28, 28, 1))(inputs)
        for filters, kernel, stride in config["convs"]:
            x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=not config["batch_norm"])(x)
            x = _normalize_and_activate(x, config["batch_norm"])
        x = layers.Flatten()(x)
    else:
        raise ValueError(f"unknown architecture {config['arch']!r}")
    for units in config["hidden"]:
        x = layers.Dense(units, use_bias=not config["batch_norm"])(x)
        x = _normalize_and_activate(x, config["batch_norm"])
        if config["dropout"]:
            x = layers.Dropout(config["dropout"])(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=config.get("preset", config["arch"]).replace("-", "_"))


def _normalize_and_activate(x, batch_norm: bool):
    # Batch norm's shift replaces the layer's bias, hence use_bias=not batch_norm above.
    if batch_norm:
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    return layers.Activation("relu")(x)


def optimizer(config: dict, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam (the article's) or AdamW when weight decay is set, with the config's schedule."""
    lr = config["learning_rate"]
    if config["schedule"] == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps_per_epoch * config["epochs"])
    if config["weight_decay"]:
        return keras.optimizers.AdamW(lr, weight_decay=config["weight_decay"])
    return keras.optimizers.Adam(lr)
