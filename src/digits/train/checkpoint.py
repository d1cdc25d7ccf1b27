"""A run's checkpoint as the training loop writes and reads it: the variables, and where the loop stands.

`save_checkpoint` writes the model's, the optimizer's (and the best epoch's)
variables by name with the loop state (`new_state`'s keys) through
`RunDir.save_checkpoint`, atomically. `load_checkpoint` restores them in
place, and refuses a state that is missing, of the wrong type, or does not
fit the run (an epoch past its last, history columns of unequal lengths), so a
resume never goes on from a file that was altered.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from digits.config import is_number
from digits.errors import TRAIN_AGAIN, RunError
from digits.runs import RunDir

if TYPE_CHECKING:
    from digits.train.loop import Trainer


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _float(value) -> bool:
    """A number `fit` can add to: NaN and infinity included (a diverged run writes them), 10**400 not."""
    return isinstance(value, float) or is_number(value)


def _history(value) -> bool:
    return isinstance(value, dict) and all(
        isinstance(key, str) and isinstance(column, list) and all(_float(v) for v in column)
        for key, column in value.items()
    )


# What each key of a checkpoint's loop state must hold for `fit` to go on from it.
_STATE_CHECKS = {
    "epoch": _count,
    "step": _count,
    "loss_sum": _float,
    "correct": _float,
    "history": _history,
    "best_epoch": _count,
    "best_score": _float,
    "train_seconds": is_number,
}
STATE_KEYS = tuple(_STATE_CHECKS)  # what a checkpoint keeps of the loop state


def new_state() -> dict:
    return {
        "epoch": 0,
        "step": 0,
        "loss_sum": 0.0,
        "correct": 0.0,
        "history": {},
        "best_epoch": 0,
        "best_score": math.inf,
        "best_weights": None,
        "train_seconds": 0.0,
    }


def variable_values(variables: dict) -> dict[str, np.ndarray]:
    return {name: np.array(v.numpy()) for name, v in variables.items()}


def save_checkpoint(run: RunDir, trainer: Trainer, state: dict) -> None:
    """Model, optimizer and RNG variables, the best weights, and where the loop stands."""
    groups = {group: variable_values(variables) for group, variables in trainer.variables.items()}
    groups["best"] = state["best_weights"] or {}
    run.save_checkpoint(groups, {k: state[k] for k in STATE_KEYS})


def load_checkpoint(run: RunDir, trainer: Trainer) -> dict:
    """Restore model and optimizer variables in place, matched by name and shape; return the loop state."""
    expected = {
        group: {name: tuple(v.shape) for name, v in variables.items()} for group, variables in trainer.variables.items()
    }
    arrays, meta = run.load_checkpoint(expected | {"best": expected["model"]})
    wrong = next((key for key in STATE_KEYS if key not in meta or not _STATE_CHECKS[key](meta[key])), None)
    if wrong is None and meta["epoch"] > trainer.config.epochs:  # past the end the config sets: the config changed
        raise RunError(
            f"{run.path / RunDir.CONFIG}: asks for {trainer.config.epochs} epochs, and the checkpoint stands after "
            f"epoch {meta['epoch']}; config.json was changed since: restore its epochs, or {TRAIN_AGAIN}."
        )
    wrong = wrong or _inconsistent(meta, trainer.steps_per_epoch)
    if wrong is not None:
        raise RunError(
            f"{run.path / RunDir.CHECKPOINT}: where the loop stood ({wrong!r}) is missing or not what the loop "
            f"writes there; the file was altered: {TRAIN_AGAIN}."
        )
    for group, variables in trainer.variables.items():
        for name, variable in variables.items():
            variable.assign(arrays[group][name])
    return {**meta, "best_weights": arrays["best"] or None}


def _inconsistent(meta: dict, steps_per_epoch: int) -> str | None:
    """The first key of a well-typed loop state that does not fit the run: a step past an epoch's end, a best
    epoch not yet trained, a history whose columns differ in length or run past the epochs done (shorter is an
    early stop: the state then jumps to the last epoch)."""
    if meta["step"] >= steps_per_epoch and meta["step"]:
        return "step"
    if meta["best_epoch"] > meta["epoch"]:
        return "best_epoch"
    lengths = {len(column) for column in meta["history"].values()}
    if len(lengths) > 1 or max(lengths, default=0) > meta["epoch"]:
        return "history"
    return None
