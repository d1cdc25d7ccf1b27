"""A checkpoint's arrays matched to a model's variables, by group and name, before any is loaded.

Contract. `matched_arrays(stored, expected, path)` returns, for every group of `expected`
({group: {name: shape}}), the stored arrays of exactly those names and shapes, in `expected`'s
order. Every group but "best" must be there in full; "best" is empty or complete. A missing,
extra or differently shaped array, one of values that are not numbers, one holding NaN or infinity,
or a negative step count is a `RunError` naming `path`:
loading it would put wrong weights in the model. Checkpoints from before variables were keyed
by name (keys "0", "1", ...) are matched by position, and their shapes checked. NumPy only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digits.errors import TRAIN_AGAIN, RunError

Arrays = dict[str, np.ndarray]


def matched_arrays(stored: dict[str, Arrays], expected: dict[str, dict[str, tuple]], path: Path) -> dict[str, Arrays]:
    """`stored`'s arrays for each group and name of `expected`, checked (see the module's contract)."""
    matched: dict[str, Arrays] = {}
    for group, shapes in expected.items():
        arrays = stored.get(group, {})
        if group == "best" and not arrays:
            matched[group] = {}
            continue
        if arrays and all(key.isdigit() for key in arrays):  # the layout before names: by position
            if len(arrays) != len(shapes):
                raise RunError(
                    f"{path}: the checkpoint holds {len(arrays)} {group} arrays, this run's "
                    f"{group} has {len(shapes)}; it belongs to another model."
                )
            arrays = dict(zip(shapes, (arrays[k] for k in sorted(arrays, key=int)), strict=False))
        missing, extra = sorted(shapes.keys() - arrays.keys()), sorted(arrays.keys() - shapes.keys())
        if missing or extra:
            what = f"lacks {missing[0]!r}" if missing else f"holds {extra[0]!r}, which this model has not"
            raise RunError(f"{path}: the checkpoint's {group} {what}; it belongs to another model.")
        for name, shape in shapes.items():
            if tuple(arrays[name].shape) != tuple(shape):
                raise RunError(
                    f"{path}: {group} variable {name!r} has shape {tuple(arrays[name].shape)} "
                    f"in the checkpoint, {tuple(shape)} in this model; it belongs to another model."
                )
        matched[group] = {name: arrays[name] for name in shapes}
        for name, array in matched[group].items():
            # Variables hold real numbers: strings, bytes, records or dates would fail in TensorFlow's cast
            # (an "unexpected" error), or pass it as nonsense.
            if array.dtype.kind not in "fiub":
                raise RunError(
                    f"{path}: {group} variable {name!r} holds {array.dtype} values, not numbers "
                    f"(the file was altered); {TRAIN_AGAIN}."
                )
            if name == "iteration" and array.size and array.min() < 0:  # the optimizer's step count
                raise RunError(f"{path}: the optimizer's step count is negative (the file was altered); {TRAIN_AGAIN}.")
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise RunError(
                    f"{path}: {group} variable {name!r} holds NaN or infinite values "
                    f"(training diverged, or the file was altered); {TRAIN_AGAIN}."
                )
    return matched
