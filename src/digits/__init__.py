"""digits: handwritten digit recognition, trained with Keras, served with ONNX Runtime."""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `import digits` stays cheap and never pulls in TensorFlow.
    if name == "Reader":
        from digits.read.reader import Reader

        return Reader
    if name == "Recognizer":
        from digits.read.model import Recognizer

        return Recognizer
    if name == "load_mnist":
        from digits.data import load_mnist

        return load_mnist
    raise AttributeError(name)
