"""The road not taken: a preset trained with Keras's own `model.fit`, timed for `benchmarks/speed.py`.

`digits` trains with a custom loop (train.py says why). This script trains
the same preset the plain Keras way, on the same split and the same network
and optimizer (`digits.train.models`), with the two knobs that make `fit` fast:
`steps_per_execution` (many steps per compiled call, as the custom loop's
chunks) and `jit_compile` (XLA). It prints ONE JSON line as the last line of
stdout: the wall time of `fit` (compile included, as `train_seconds` of a
`digits` run includes it) and the final validation accuracy.

    python benchmarks/keras_fit.py --preset fast [--jit-compile] [--steps-per-execution 64] [--epochs N]

It runs in its own process, so `speed.py` times it with the same imports
and the same cold start as `digits train`.
"""

from __future__ import annotations

import argparse
import json
import time

from digits.config import TrainConfig
from digits.data import load_mnist
from digits.presets import PRESETS
from digits.train import models
from digits.train.dataset import split_data
from digits.train.tf import load as load_backend


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--preset", default="fast", choices=[name for name in PRESETS if not TrainConfig.from_preset(name).augment]
    )
    parser.add_argument("--epochs", type=int, help="default: the preset's")
    parser.add_argument("--steps-per-execution", type=int, default=64, help="the custom loop's chunk is up to 64")
    parser.add_argument("--jit-compile", action="store_true", help="compile with XLA")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    _, keras = load_backend()
    config = TrainConfig.from_preset(args.preset, {"epochs": args.epochs}, "mnist", args.seed, None)
    keras.utils.set_random_seed(args.seed)
    (x, y), _ = load_mnist()
    split = split_data(x, y, config.validation_split)
    steps = len(split.x_train) // config.batch_size
    model = models.build(config)
    model.compile(
        optimizer=models.optimizer(config, steps),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=args.steps_per_execution,
        jit_compile=args.jit_compile,
    )
    start = time.perf_counter()
    history = model.fit(
        split.x_train,
        split.y_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(split.x_val, split.y_val),
        shuffle=True,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    result = {
        "preset": args.preset,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "steps_per_execution": args.steps_per_execution,
        "jit_compile": args.jit_compile,
        "fit_seconds": seconds,
        "val_accuracy": float(history.history["val_accuracy"][-1]),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
