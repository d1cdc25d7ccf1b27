"""Helpers the tests share: run the command as a user would, check its one-line errors, load a benchmark script,
draw a signature."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DIGITS = str(Path(sys.executable).parent / "digits")


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_module(name: str):
    """`benchmarks/<name>.py` as a module (the scripts are not a package; they import their neighbours, as when
    they run)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def weights_beyond_7_bits(model: Path) -> list[str]:
    """The signed 8-bit weight kernels of a QDQ model that use more than 7 bits: ONNX Runtime's u8s8 kernel for
    x86 CPUs without VNNI (AVX2 alone) adds pairs of their products in 16 bits, and those saturate. Fails when
    the model has no such kernel at all, so that a model of another format does not pass unchecked."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(model).graph
    signed = {t.name: t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8}
    # A kernel has two dimensions or more; a per-channel zero point is a vector.
    read = [node.input[0] for node in graph.node if node.op_type == "DequantizeLinear"]
    kernels = [name for name in read if name in signed and len(signed[name].dims) > 1]
    assert kernels, f"{model}: no signed 8-bit weight kernel to check"
    return [name for name in kernels if np.abs(numpy_helper.to_array(signed[name]).astype(np.int16)).max() > 64]


def run_cli(*args: str, cwd: Path, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed `digits` command as a user would."""
    return subprocess.run([DIGITS, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (with `env`, else this one's), so what it imports is all that is in sys.modules."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """The command failed as promised: exit code 2 and one line on stderr naming the fault."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# Training histories with a known shape, for the metrics and the plots.
def overfitting_history(epochs=25, best=6):
    """Training loss keeps falling; validation loss bottoms out at `best` then rises."""
    loss = np.linspace(0.5, 0.01, epochs)
    val_loss = np.concatenate([np.linspace(0.5, 0.1, best), np.linspace(0.1, 0.135, epochs - best + 1)[1:]])
    return {
        "loss": loss.tolist(),
        "val_loss": val_loss.tolist(),
        "accuracy": np.linspace(0.85, 0.999, epochs).tolist(),
        "val_accuracy": np.linspace(0.85, 0.975, epochs).tolist(),
    }


def healthy_history(epochs=10):
    """Both losses fall together and the accuracies stay within a fraction of a point."""
    return {
        "loss": np.linspace(0.5, 0.05, epochs).tolist(),
        "val_loss": np.linspace(0.45, 0.06, epochs).tolist(),
        "accuracy": np.linspace(0.85, 0.985, epochs).tolist(),
        "val_accuracy": np.linspace(0.86, 0.982, epochs).tolist(),
    }


# Progressive JPEGs, for the decode budget (reading and serving).
def progressive_jpeg(size=(64, 64)) -> bytes:
    image = Image.new("L", size, "white")
    ImageDraw.Draw(image).line([(size[0] // 2, 8), (size[0] // 2, size[1] - 8)], fill="black", width=6)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", progressive=True, quality=90)
    return buffer.getvalue()


def with_repeated_last_scan(jpeg: bytes, copies: int) -> bytes:
    """The same JPEG with its last scan repeated: what a crafted many-scan file looks like to a decoder."""
    last_scan = jpeg.rindex(b"\xff\xda")
    end = jpeg.rindex(b"\xff\xd9")
    return jpeg[:end] + jpeg[last_scan:end] * copies + jpeg[end:]


def signature(peaks: int = 8) -> Image.Image:
    """A pencil signature like the real ones: a long rising stroke, back down, then a tight zigzag rising
    to the right, on light grey paper (the reader at 9a921f6: a 4 at 0.98)."""
    picture = Image.new("L", (600, 520), 235)
    draw = ImageDraw.Draw(picture)
    zigzag = [(30, 500), (330, 20), (140, 270)]
    for k in range(peaks):
        x = 170 + 20 * k
        zigzag += [(x, 330 - 8 * k), (x + 10, 250 - 8 * k)]
    draw.line(zigzag + [(580, 90)], fill=110, width=5, joint="curve")
    return picture
