"""Pictures for the batch tests: MNIST digits as dark ink on white paper, 28 and 100 px, in one folder."""

from __future__ import annotations

import pytest
from PIL import Image


def save_digit(array, path, size: int = 28) -> None:
    Image.fromarray(255 - array).resize((size, size), Image.BICUBIC).save(path)


@pytest.fixture
def draw():
    """save_digit(array, path, size): an MNIST digit saved as dark ink on white, size×size pixels."""
    return save_digit


@pytest.fixture
def pictures(tmp_path, mnist):
    """tmp_path/pics/ holding ten pictures (00.png ... 09.png); returns their paths in name order."""
    (x_test, _), folder = mnist[1], tmp_path / "pics"
    folder.mkdir()
    paths = []
    for i in range(10):
        paths.append(folder / f"{i:02d}.png")
        save_digit(x_test[i], paths[-1], 28 if i % 2 else 100)
    return paths
