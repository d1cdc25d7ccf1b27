"""The sheet finder: a small segmenter that marks the sheet in a photo of a sheet on a desk.

`digits.read.sheet` runs it (from `shipped/sheet.onnx`) where its rules find no sheet. It
learns from photos generated from MNIST's *training* digits
(`digits.synth.pages.make_sheets`: sheets and sticky notes on varied desks,
and pictures that are all sheet), each seen as the reader sees it: saved as
a file, loaded by `digits.read.load`, and brought to 64×64 by
`digits.read.sheet.finder_input`. The target is the sheet's mask at 64×64.

The network is fully convolutional (about 100k weights): two strided
convolutions, three dilated ones that see the whole square, and an upsampling
that joins the first layer's detail back in. A sheet is a sheet whichever way
round, so training adds each photo's flips and quarter turn.

    python -m digits.train.sheet_finder          # make shipped-sheet-finder: writes src/digits/shipped/sheet.*
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from digits import atomic
from digits.read.model import shipped_file

# Photos learnt from and held out, and the seeds they are drawn with (pages.make_sheets).
SAMPLES, VALIDATION = 6000, 600
TRAIN_SEED, VALIDATION_SEED = 100, 101
EPOCHS, BATCH_SIZE, LEARNING_RATE = 8, 64, 3e-3
# Photos per chunk: the unit of work of one worker process.
_CHUNK = 200
# Where `digits.read.sheet` loads it from.
_SHIPPED = shipped_file("sheet.onnx").parent


@functools.cache
def _training_digits(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    from digits.data import load

    (x, y), _ = load("mnist", data_dir)
    return x, y


def _chunk(data_dir: str | None, seed: int, chunk: int, n: int) -> dict[str, np.ndarray]:
    """`n` photos of chunk `chunk`: the segmenter's inputs and the sheets' masks, both 64×64."""
    from PIL import Image

    from digits.read.grey import working_grey
    from digits.read.load import load_image
    from digits.read.sheet import FINDER_SIDE, finder_input
    from digits.synth.pages import make_sheets

    inputs, masks = [], []
    for saved, sheet in make_sheets(*_training_digits(data_dir), n, (seed, chunk)):
        grey, _ = working_grey(load_image(saved))
        inputs.append(finder_input(grey))
        square = Image.fromarray(np.uint8(sheet) * 255).resize((FINDER_SIDE, FINDER_SIDE), Image.Resampling.BOX)
        masks.append(np.asarray(square) > 127)
    return {"images": np.stack(inputs), "labels": np.stack(masks)}


def photos(n: int, seed: int, data_dir: str | None, workers: int | None = None) -> dict[str, np.ndarray]:
    """`n` training photos as (inputs, masks) under "images" and "labels"; the same for any number of workers."""
    from digits.train.chunks import in_chunks, worker_count

    jobs = [(data_dir, seed, k, min(_CHUNK, n - start)) for k, start in enumerate(range(0, n, _CHUNK))]
    return in_chunks(_chunk, jobs, worker_count(workers), f"photos of sheets (seed {seed})")


def build(keras):
    """The segmenter: (N, 64, 64, 1) centred grey -> (N, 64, 64, 1) probability of sheet."""
    from digits.read.sheet import FINDER_SIDE

    layers = keras.layers
    picture = keras.Input((FINDER_SIDE, FINDER_SIDE, 1), name="picture")
    detail = layers.Conv2D(16, 3, padding="same", activation="relu")(picture)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(detail)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(48, 3, strides=2, padding="same", activation="relu")(x)
    for dilation in (2, 4, 8):  # each 16×16 cell comes to see the whole photo
        x = layers.Conv2D(48, 3, dilation_rate=dilation, padding="same", activation="relu")(x)
    x = layers.UpSampling2D(4, interpolation="bilinear")(x)
    x = layers.Concatenate()([x, detail])
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    return keras.Model(picture, layers.Conv2D(1, 1, activation="sigmoid")(x))


def _flipped_and_turned(images: np.ndarray) -> np.ndarray:
    """Each picture, then all flipped top to bottom, left to right, and turned a quarter."""
    return np.concatenate([images, images[:, ::-1], images[:, :, ::-1], np.rot90(images, axes=(1, 2))])


def train(
    out_dir: Path, data_dir: str | None, epochs: int = EPOCHS, samples: int = SAMPLES, validation: int = VALIDATION
) -> dict:
    """Train the sheet finder, write `sheet.onnx` and its card `sheet.json` into `out_dir`; return the card."""
    from digits.read.sheet import FINDER_LEVEL, FINDER_SIDE
    from digits.train.export import to_onnx
    from digits.train.tf import load

    for name in ("sheet.onnx", "sheet.json"):  # before the work, not after it
        atomic.writable_target(out_dir / name)
    _training_digits(data_dir)  # MNIST missing or damaged: said now, before TensorFlow and the workers start
    _, keras = load()
    keras.utils.set_random_seed(TRAIN_SEED)
    learn, held_out = photos(samples, TRAIN_SEED, data_dir), photos(validation, VALIDATION_SEED, data_dir)
    x, y = (
        _flipped_and_turned(learn["images"])[..., None],
        _flipped_and_turned(learn["labels"])[..., None].astype(np.float32),
    )
    model = build(keras)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, epochs * max(1, -(-len(x) // BATCH_SIZE)))
    model.compile(keras.optimizers.Adam(schedule), "binary_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, verbose=2)
    seconds = time.perf_counter() - started
    found = model.predict(held_out["images"][..., None], batch_size=256, verbose=0)[..., 0] > FINDER_LEVEL
    truth = held_out["labels"]
    table = ~truth
    to_onnx(model, out_dir / "sheet.onnx", shape=(FINDER_SIDE, FINDER_SIDE, 1), name="picture")
    card = {
        "model": "digits.train.sheet_finder.build",
        "parameters": int(model.count_params()),
        "training_data": [
            {
                "name": "mnist (training digits only)",
                "licence": "none stated in its source; cite LeCun, Cortes and Burges",
                "as": f"digits.synth.pages.make_sheets: {samples} photos (seed {TRAIN_SEED}), "
                f"{validation} held out (seed {VALIDATION_SEED}), flips and a quarter turn added",
            }
        ],
        "epochs": epochs,
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "train_seconds": round(seconds, 1),
        "validation": {
            "pixel_accuracy": round(float((found == truth).mean()), 4),
            # The share of the desk found as desk, where there is one: what keeps a desk out of the ink.
            "table_found": round(float((~found & table).sum() / max(1, table.sum())), 4),
        },
    }
    atomic.write_json(out_dir / "sheet.json", card)
    return card


def main(
    out: Annotated[Path, typer.Option(help="folder for sheet.onnx and sheet.json")] = _SHIPPED,
    data_dir: Annotated[str | None, typer.Option(envvar="DIGITS_DATA_DIR", help="folder holding MNIST's files")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="passes over the photos")] = EPOCHS,
    samples: Annotated[int, typer.Option(min=1, help="photos to learn from")] = SAMPLES,
) -> None:
    """Train the sheet finder that `digits read` runs on photos of pages."""
    from digits.errors import DigitsError

    try:
        card = train(out, data_dir, epochs, samples)
    except DigitsError as err:  # MNIST missing or damaged, a folder that cannot be written: say which, and stop
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{out / 'sheet.onnx'}: validation {card['validation']}")


if __name__ == "__main__":
    typer.run(main)
