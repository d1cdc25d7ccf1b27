"""What a study looks like to a person: a progress bar while it runs, its trials by state, its best trials.

`digits tune` (`digits.train.tune`) reports through these; `--show` prints `describe`, and the plots and
`benchmarks/tuning.py` take `best_trials` and `trial_states`.
"""

from __future__ import annotations

from collections import Counter
from typing import cast

import optuna
from optuna.trial import TrialState


class TrialProgress:
    """Trials done of N, the best value so far and the ETA; one line per trial when not on a terminal."""

    def __init__(self, enabled: bool, total: int, log=print):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.enabled, self.log = enabled, log
        self.progress = Progress(  # a context manager; disabled, it draws nothing
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TimeRemainingColumn(),
            disable=not enabled,
        )
        self.task = self.progress.add_task("", total=total, best="-")

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna's per-trial callback."""
        try:
            best = f"{study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:  # no trial has completed yet
            best = "-"
        value = f"val acc {trial.value:.4f}" if trial.value is not None else trial.state.name.lower()
        line = f"trial {trial.number}: {value}, best {best}"
        if self.enabled:
            self.progress.console.print(line)
            self.progress.update(self.task, advance=1, best=best)
        else:
            self.log(line)


def best_trials(study: optuna.Study, count: int | None = None) -> list[optuna.trial.FrozenTrial]:
    """Complete trials, best first; the first `count` of them if given."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(complete, key=lambda t: -cast(float, t.value))[:count]


def trial_states(trials: list[optuna.trial.FrozenTrial]) -> dict[str, int]:
    """How many trials are in each state ("complete", "pruned", "fail", ...)."""
    return dict(Counter(t.state.name.lower() for t in trials))


def describe(study: optuna.Study, count: int = 5) -> str:
    """The study in a few lines: trial counts by state and the best trials with their parameters."""
    states = trial_states(study.get_trials(deepcopy=False))
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no trials yet"
    lines = [f"study {study.study_name}: preset {study.user_attrs.get('preset')}, {counts}"]
    for t in best_trials(study, count):
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(t.params.items()))
        lines.append(f"  trial {t.number}: val acc {t.value:.4f}  {params}")
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
