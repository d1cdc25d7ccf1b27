"""digits: handwritten digit recognition, trained with Keras, served with ONNX Runtime.

The public API, imported lazily so `import digits` stays cheap and never pulls in TensorFlow:

    >>> from digits import Reader
    >>> Reader().read_page("page.jpg").text

`Reader` reads pictures (`digits.read`), `Recognizer` runs a model on 28×28 images,
`load_mnist` finds and verifies MNIST; `digits.batch` reads many pictures at once.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Reader", "Recognizer", "__version__", "batch", "load_mnist"]

# Each public name and the module it lives in.
_HOMES = {"Reader": "digits.read.reader", "Recognizer": "digits.read.model", "load_mnist": "digits.data"}

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load on first use
    from digits.data import load_mnist
    from digits.read.model import Recognizer
    from digits.read.reader import Reader


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    if name == "batch":  # `import digits; digits.batch.read(...)`, as `from digits import batch` gives it
        return import_module("digits.batch")
    raise AttributeError(f"module 'digits' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
