"""The tutorial article's script, as written, instrumented for `benchmarks/speed.py`.

The article's code is kept as it is: `from tensorflow import keras` (tf.keras,
which is Keras 3 in TensorFlow 2.16+), X / 255 (float64 arrays, as written),
the 784-128-32-10 `Sequential` model, `compile(loss='sparse_categorical_crossentropy',
optimizer='Adam', metrics=['accuracy'])`, `fit(..., epochs=25, batch_size=32,
validation_split=0.2)`, then `model.predict(X_test)` and the accuracy.

The only change to the article's code: the data come from the local MNIST
copy via `digits.data.load_mnist()`, which returns exactly the arrays
`keras.datasets.mnist.load_data()` returns (same uint8 values, same order),
because the benchmark machine has no internet. Also `verbose=2` for `fit` and
`verbose=0` for `predict`, so the output stays parseable, and the accuracy is
computed with NumPy instead of scikit-learn's `accuracy_score` (same number).

Two modes, each printing ONE JSON line as the last line of stdout:

  python benchmarks/reference_article.py [--epochs 25] [--save MODEL.keras]
      The article: import, load data, build, fit, predict 10,000 test images,
      accuracy. Then, benchmark-only extras (timed as `extra_seconds`, so the
      runner can subtract them from the process time): warm repeats of the
      10k predict, single-image `model.predict` latencies, saving the model.

  python benchmarks/reference_article.py --single MODEL.keras --image DIGIT.png
      Cold start: import TensorFlow, load the saved model, predict one image.
"""

import time

START = time.perf_counter()  # before any import, so import time is measured from the very start

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402

import tensorflow  # noqa: E402,F401
from tensorflow import keras  # noqa: E402
from tensorflow.keras import Sequential  # noqa: E402
from tensorflow.keras.layers import Dense, Flatten  # noqa: E402

IMPORTED = time.perf_counter()


def parse_args():
    parser = argparse.ArgumentParser(description="The tutorial article's MNIST script, timed.")
    parser.add_argument("--epochs", type=int, default=25, help="the article uses 25")
    parser.add_argument("--save", help="after the article's work, save the model here (for --single)")
    parser.add_argument("--batch-calls", type=int, default=3, help="warm repeats of the 10k predict")
    parser.add_argument("--latency-calls", type=int, default=100, help="single-image predicts to time")
    parser.add_argument("--single", metavar="MODEL", help="cold-start mode: load MODEL, predict --image, exit")
    parser.add_argument("--image", help="PNG of one 28x28 digit, for --single")
    return parser.parse_args()


def timed(function, *args, **kwargs):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def article(epochs: int) -> tuple[dict, keras.Model, object]:
    """The article's code; returns its timings, the model and X_test."""
    from digits.data import load_mnist  # the only change: local files instead of keras.datasets.mnist.load_data()

    (X_train, y_train), (X_test, y_test) = load_mnist()
    X_train = X_train / 255
    X_test = X_test / 255

    model = Sequential()
    model.add(Flatten(input_shape=(28, 28)))
    model.add(Dense(128, activation="relu"))
    model.add(Dense(32, activation="relu"))
    model.add(Dense(10, activation="softmax"))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="Adam", metrics=["accuracy"])

    history, fit_seconds = timed(
        model.fit, X_train, y_train, epochs=epochs, batch_size=32, validation_split=0.2, verbose=2
    )
    y_prob, predict_first = timed(model.predict, X_test, verbose=0)
    y_pred = y_prob.argmax(axis=1)
    accuracy = float((y_pred == y_test).mean())

    results = {
        "epochs": len(history.history["loss"]),
        "batch_size": 32,
        # Keras trains on the first ceil(N * (1 - validation_split)) samples (48,000).
        "train_samples": math.ceil(len(X_train) * (1.0 - 0.2)),
        "parameters": model.count_params(),
        "fit_seconds": fit_seconds,
        "epoch_seconds": fit_seconds / epochs,
        "test_accuracy": accuracy,
        "predict_10k_first_seconds": predict_first,
    }
    return results, model, X_test


def extras(model, X_test, batch_calls: int, latency_calls: int, save: str | None) -> dict:
    """Benchmark-only measurements after the article's work (not part of the article)."""
    batch = [timed(model.predict, X_test, verbose=0)[1] for _ in range(batch_calls)]
    one = lambda i: X_test[i % len(X_test) : i % len(X_test) + 1]  # noqa: E731
    single_first = timed(model.predict, one(1), verbose=0)[1]
    singles = [timed(model.predict, one(i), verbose=0)[1] for i in range(2, 2 + latency_calls)]
    if save:
        model.save(save)
    return {
        "predict_10k_warm_seconds": batch,
        "predict_10k_seconds": sorted(batch)[len(batch) // 2],
        "single_predict_first_seconds": single_first,
        "single_predict_seconds": singles,
    }


def single(model_path: str, image_path: str) -> dict:
    """Cold start: import (already done above), load the saved model, predict one image."""
    import numpy as np
    from PIL import Image

    model, load_seconds = timed(keras.models.load_model, model_path)
    x = np.asarray(Image.open(image_path).convert("L"))[None] / 255
    y_prob, predict_seconds = timed(model.predict, x, verbose=0)
    return {
        "digit": int(y_prob.argmax()),
        "import_seconds": IMPORTED - START,
        "load_seconds": load_seconds,
        "predict_seconds": predict_seconds,
        "total_seconds": time.perf_counter() - START,
    }


def main() -> None:
    args = parse_args()
    if args.single:
        if not args.image:
            raise SystemExit("--single needs --image DIGIT.png")
        print(json.dumps(single(args.single, args.image)), flush=True)
        return
    results, model, X_test = article(args.epochs)
    extra_start = time.perf_counter()
    results |= extras(model, X_test, args.batch_calls, args.latency_calls, args.save)
    results["extra_seconds"] = time.perf_counter() - extra_start
    results["import_seconds"] = IMPORTED - START
    results["script_seconds"] = time.perf_counter() - START
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
