"""Refit a shipped reader's last layer with handwritten letters among the non-digits.

Contract. `refit_shipped(folder)` takes a shipped reader (`reader.onnx` with its card
`reader.json`, as `export.ship` writes them), keeps every layer but the last, and fits
that last one (128 features -> 11 classes, float, before the softmax) again on the
features the model already computes, for these images (`training_mix`):

  * the digits it learnt from: 20,000 of MNIST's first 54,000 training images, the
    training parts of USPS, Semeion, CVL and DIDA, and 3,000 photographed MNIST digits
    and 300 photographed numbers (`reader_data.photographed_digits`);
  * its non-digits: 3,000 generated junk pictures (`reader_data.negatives`), QuickDraw's
    doodles and CoMNIST's capitals;
  * and what it never saw: Omniglot's characters of its first 30 alphabets (Latin,
    Greek and Cyrillic among them; the flagged digit look-alikes are dropped), weighed
    lightly (`HeadRecipe.letters`).

The fit is a weighted softmax regression started from the old weights and pulled
towards them (`HeadRecipe.pull`), so what the model knew stays; a new temperature is
fitted on validation features (CVL's validation writers and MNIST's last 6,000
training images, which no part of the model trained on), and the card records the
recipe, the temperature and the int8 model's new metrics (`evaluate.model_metrics`).
Same images, same weights: seeded throughout.

Why (issue 19): the shipped model gave a digit for 28 % of Omniglot's characters of
its last 20 alphabets (none of them in the fit), letters written by hand being what
real pictures with no digit most often are. Chosen on validation data only: with the
recipe below, 22 % of them, CVL's validation writers 96.47 % as the reader reads
them (96.53 % before), MNIST's 99.53 % (99.58 %); a heavier weight on letters refused
more of them and more real digits (docs/training.md has the table).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from digits import atomic
from digits.spec import DIGITS, REJECT

# The first 30 of Omniglot's 50 alphabets, in the file's order (it holds them one after another):
# the split its authors call "background". The other 20 are left out, to measure what the fit did.
OMNIGLOT_FIT_SHARE = 0.6
_MNIST_VALIDATION = 54_000  # MNIST's last 6,000 training images: validation, as the reader preset holds them out


@dataclass(frozen=True)
class HeadRecipe:
    """How the last layer is refitted: each image's weight by kind (a digit weighs 1) and the pull to the old layer."""

    letters: float = 0.07  # Omniglot's characters: heavier refused more real digits (0.1: CVL 96.44 %)
    junk: float = 2.0  # the generated junk pictures: at 1, 3.7 % of unseen ones got a digit (3.2 % before)
    doodles: float = 1.0  # QuickDraw and CoMNIST
    pull: float = 1e-3  # times the squared distance to the old weights
    mnist: int = 20_000
    photographed: tuple[int, int] = (3_000, 300)
    junk_pictures: int = 3_000
    seed: int = 0


def last_layer(model) -> tuple[str, str, str]:
    """(its input, its weights' name, its bias's name) of the Gemm whose output the softmax takes."""
    produced = {output: node for node in model.graph.node for output in node.output}
    softmax = produced[model.graph.output[0].name]
    gemm = produced.get(softmax.input[0])
    if softmax.op_type != "Softmax" or gemm is None or gemm.op_type != "Gemm":
        raise ValueError("the model does not end in a dense layer and its softmax: its last layer cannot be refitted")
    return gemm.input[0], gemm.input[1], gemm.input[2]


def penultimate(model_path: Path, images: np.ndarray, batch: int = 2048) -> np.ndarray:
    """(N, 28, 28) images -> (N, F) float64: what the last layer of the model takes."""
    import onnx
    import onnxruntime as ort

    from digits.read.model import as_batch

    model = onnx.load(model_path)
    features, _, _ = last_layer(model)
    model.graph.output.append(onnx.helper.make_tensor_value_info(features, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    images = as_batch(images)
    parts = [session.run([features], {name: images[i : i + batch]})[0] for i in range(0, len(images), batch)]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, 0))


def refit(
    features: np.ndarray, labels: np.ndarray, weights: np.ndarray, old: tuple[np.ndarray, np.ndarray], pull: float
) -> tuple[np.ndarray, np.ndarray]:
    """The (F, C) weights and (C,) bias minimising the weighted cross-entropy of softmax(features @ W + b)
    plus `pull` times the squared distance from W to the old weights, from the old ones (L-BFGS)."""
    from scipy.optimize import minimize

    old_weights, old_bias = (np.asarray(a, np.float64) for a in old)
    count, (width, classes) = len(labels), old_weights.shape
    share = np.asarray(weights, np.float64) / np.mean(weights)
    truth = np.eye(classes)[labels]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        layer, bias = theta[: width * classes].reshape(width, classes), theta[width * classes :]
        logits = features @ layer + bias
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        value = -(share * np.log(probabilities[np.arange(count), labels] + 1e-12)).sum() / count
        gradient = (probabilities - truth) * share[:, None] / count
        layer_gradient = features.T @ gradient + 2 * pull * (layer - old_weights)
        value += pull * float(((layer - old_weights) ** 2).sum())
        return value, np.concatenate([layer_gradient.ravel(), gradient.sum(axis=0)])

    start = np.concatenate([old_weights.ravel(), old_bias])
    found = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 300}).x
    return found[: width * classes].reshape(width, classes), found[width * classes :]


def training_mix(recipe: HeadRecipe, data_dir=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, weights) the last layer is refitted on: see the module's docstring."""
    from digits.data import load
    from digits.train import reader_data
    from digits.train.extra_data import load_negatives, load_parts

    rng = np.random.default_rng(recipe.seed)
    (x_train, y_train), _ = load("mnist", data_dir)
    picked = rng.choice(_MNIST_VALIDATION, recipe.mnist, replace=False)
    parts: list[tuple[np.ndarray, np.ndarray | None, float]] = [(x_train[picked] / 255.0, y_train[picked], 1.0)]
    for name in ("cvl", "usps", "semeion", "dida"):
        images, labels = load_parts(name, data_dir)["train"]
        parts.append((images / 255.0, labels, 1.0))
    singles, lines = recipe.photographed
    photographed = picked[: singles + lines]
    parts.append(
        (*reader_data.photographed_digits(x_train[photographed], y_train[photographed], singles, lines, seed=11), 1.0)
    )
    parts.append((reader_data.negatives(recipe.junk_pictures, seed=21), None, recipe.junk))
    parts.append((load_negatives(("quickdraw", "comnist"), data_dir) / 255.0, None, recipe.doodles))
    letters = load_parts("omniglot", data_dir)["train"][0]
    parts.append((letters[: int(len(letters) * OMNIGLOT_FIT_SHARE)] / 255.0, None, recipe.letters))
    images = np.concatenate([np.asarray(p[0], np.float32) for p in parts])
    labels = np.concatenate([p[1] if p[1] is not None else np.full(len(p[0]), REJECT) for p in parts]).astype(int)
    weights = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
    return images, labels, weights


def validation_set(data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """CVL's validation writers and MNIST's last 6,000 training images: the temperature is fitted on them."""
    from digits.data import load
    from digits.train.extra_data import load_parts

    (x_train, y_train), _ = load("mnist", data_dir)
    cvl_images, cvl_labels = load_parts("cvl", data_dir)["val"]
    images = np.concatenate([cvl_images, x_train[_MNIST_VALIDATION:]]).astype(np.float32) / 255
    return images, np.concatenate([cvl_labels, y_train[_MNIST_VALIDATION:]]).astype(int)


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    out: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return out


def refit_shipped(folder: Path, recipe: HeadRecipe = HeadRecipe(), data_dir=None) -> Path:
    """Refit the last layer of `folder`'s reader.onnx in place, and its card; return the model's path."""
    import onnx
    from onnx import numpy_helper

    from digits.calibration import METADATA_KEY, fit_temperature, nll
    from digits.config import TrainConfig
    from digits.read.model import Recognizer
    from digits.train.evaluate import model_metrics
    from digits.train.extra_data import load_test_set

    model_path, card_path = folder / "reader.onnx", folder / "reader.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if "head" in card:
        raise ValueError(f"{model_path}: its last layer was refitted already; ship the run again first.")
    model = onnx.load(model_path)
    _, weights_name, bias_name = last_layer(model)
    stored = {t.name: t for t in model.graph.initializer}
    old = (numpy_helper.to_array(stored[weights_name]), numpy_helper.to_array(stored[bias_name]))
    if old[0].shape[1] != DIGITS + 1:
        raise ValueError(f"{model_path}: a model without a 'not a digit' output has no non-digits to learn")

    images, labels, weights = training_mix(recipe, data_dir)
    layer, bias = refit(penultimate(model_path, images), labels, weights, old, recipe.pull)
    val_images, val_labels = validation_set(data_dir)
    val_probabilities = _softmax(penultimate(model_path, val_images) @ layer + bias)
    temperature = fit_temperature(val_probabilities, val_labels)

    stored[weights_name].CopyFrom(numpy_helper.from_array(layer.astype(np.float32), weights_name))
    stored[bias_name].CopyFrom(numpy_helper.from_array(bias.astype(np.float32), bias_name))
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    model.metadata_props.add(key=METADATA_KEY, value=repr(float(temperature)))
    card["config"]["calibration"] = {
        "temperature": round(float(temperature), 4),
        "fitted_on": f"{len(val_labels)} validation images: CVL's validation writers and MNIST's last 6,000 "
        "training images (digits.train.head.validation_set)",
        "nll_before": round(nll(val_probabilities, val_labels), 5),
        "nll_after": round(nll(_softmax(np.log(val_probabilities + 1e-12) / temperature), val_labels), 5),
    }
    card["training_data"] = [
        *card["training_data"],
        {"name": "omniglot", "licence": "MIT, cite Lake et al., Science 2015"},
    ]
    card["head"] = {
        "recipe": asdict(recipe),
        "how": "the last layer refitted on the int8 model's own features (digits.train.head.refit_shipped); every "
        "other layer, and float_model, as shipped from the run",
    }
    # Measured beside the model it replaces, with its own card (whose temperature applies), then swapped in.
    work = folder / ".refitting"
    work.mkdir(exist_ok=True)
    atomic.write_json(work / card_path.name, card)
    atomic.write_bytes(work / model_path.name, model.SerializeToString())
    settings = {k: v for k, v in card["config"].items() if k in TrainConfig.names()}
    config = TrainConfig.from_dict(settings, str(card_path))
    measured, _, _ = model_metrics(Recognizer(work / model_path.name), config, load_test_set(config.dataset, data_dir))
    card["metrics"] = card["metrics"] | {k: v for k, v in measured.items() if k in card["metrics"]}
    atomic.write_json(card_path, card)
    atomic.write_bytes(model_path, model.SerializeToString())
    for leftover in work.iterdir():
        leftover.unlink()
    work.rmdir()
    return model_path


if __name__ == "__main__":  # `make shipped-model`'s last step
    import sys

    from digits.read.model import shipped_file

    print(refit_shipped(Path(sys.argv[1]) if len(sys.argv) > 1 else shipped_file("reader.onnx").parent))
