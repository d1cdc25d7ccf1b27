"""The tuning section of docs/benchmarks.md, from the real studies and the runs retrained from them.

    python benchmarks/tuning.py [--storage URL]
    python benchmarks/update_readme.py          # copies results/tuning.md into docs/benchmarks.md

Reads the studies `seed-mnist` and `mlp-mnist` (default: benchmarks/tune/tune.db),
saves each one's Optuna plots (as `digits tune --show` does) under
docs/tuning/<study>/, draws the article's recipe against its tuned twin
(docs/tuning/seed-curves.png), and writes results/tuning.json and
results/tuning.md. Every figure comes from these files:

    benchmarks/runs/mnist/seed/s*   the seed preset, the article's recipe (benchmarks/accuracy.py)
    benchmarks/tune/runs/seed-s*    digits train --from-study seed-mnist --seeds 3
    benchmarks/runs/mnist/mlp/s*    the hand-set mlp preset
    benchmarks/tune/runs/mlp-s*     digits train --from-study mlp-mnist --seeds 3

The mlp comparison is on validation accuracy, as the issue asks, and is made
fair this way: both sides are full trainings with the same seeds (the tuned
configuration retrained, the preset's own benchmark runs), on the same 54,000
training and 6,000 validation images, each scored by the accuracy of the
weights it keeps (the mlp preset stops early and keeps its best epoch by
validation accuracy; so does the tuned mlp, which inherits that rule). The
study's own best value is shown too, but it is the maximum over many trials
(all with seed 0) and so flatters the tuned side; a retraining does not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from digits.runs import RunDir  # noqa: E402
from digits.train import plots, tune  # noqa: E402
from digits.train.study_report import trial_states  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "tuning"
TUNE_DIR = ROOT / "benchmarks" / "tune"
ARTICLE_TEST_ACCURACY = 0.9736  # the article's reported figure, the one number not measured here

# How the studies and runs were made (run from the repository root).
COMMANDS = {
    "seed-mnist": [
        "digits tune --preset seed --trials 60 --timeout 1500 --max-epochs 20 --runs-dir benchmarks/tune",
        "digits tune --preset seed --trials 60 --timeout 960 --max-epochs 20 --runs-dir benchmarks/tune   # continues it",
        "digits train --from-study seed-mnist --seeds 3 --runs-dir benchmarks/tune/runs --name seed "
        "--storage sqlite:///benchmarks/tune/tune.db",
    ],
    "mlp-mnist": [
        "digits tune --preset mlp --trials 60 --timeout 1200 --max-epochs 12 --runs-dir benchmarks/tune",
        "digits tune --preset mlp --trials 60 --timeout 1080 --max-epochs 12 --runs-dir benchmarks/tune &  # two more workers",
        "digits tune --preset mlp --trials 60 --timeout 1020 --max-epochs 12 --runs-dir benchmarks/tune &  # join the study",
        "kill -INT <both workers>   # stopped early to free the CPU: their running trials count as failed",
        "digits train --from-study mlp-mnist --seeds 3 --runs-dir benchmarks/tune/runs --name mlp "
        "--storage sqlite:///benchmarks/tune/tune.db",
    ],
}


def read_run(run: Path) -> dict:
    folder = RunDir(run)
    (config, info), metrics, history = folder.read_run(), folder.read_metrics(), folder.read_history()
    return {
        "run": str(run.relative_to(ROOT)),
        "config": config.to_dict() | info.to_dict(),
        "metrics": metrics,
        "history": history,
        "kept_val_accuracy": tune.kept_val_accuracy(history, config),
    }


def read_runs(pattern: str) -> list[dict]:
    runs = sorted(ROOT.glob(pattern))
    if not runs:
        raise SystemExit(f"no run folders match {pattern}; see this script's docstring for the commands")
    return [read_run(run) for run in runs]


def summarize(runs: list[dict]) -> dict:
    tests = [r["metrics"]["test_accuracy"] for r in runs]
    overfitting = [r["metrics"]["overfitting"] for r in runs]
    return {
        "seeds": len(runs),
        "seed_list": [r["config"]["seed"] for r in runs],
        "test_accuracy_median": statistics.median(tests),
        "test_accuracy_min": min(tests),
        "test_accuracy_max": max(tests),
        "kept_val_accuracy_median": statistics.median(r["kept_val_accuracy"] for r in runs),
        "train_val_gap_median": statistics.median(o["train_val_gap"]["accuracy"] for o in overfitting),
        "val_loss_rise_median": statistics.median(
            r["history"]["val_loss"][-1] / min(r["history"]["val_loss"]) - 1 for r in runs
        ),
        "overfits": sum(o["overfits"] for o in overfitting),
        "epochs": runs[0]["config"]["epochs"],
        "train_seconds_median": statistics.median(r["metrics"]["train_seconds"] for r in runs),
        "parameters": runs[0]["metrics"]["parameters"],
        "verdicts": [o["verdict"] for o in overfitting],
    }


def study_summary(storage: str, name: str) -> dict:
    study = tune.open_study(tune.open_storage(storage), name)
    trials = study.get_trials(deepcopy=False)
    states = trial_states(trials)
    best = study.best_trial
    drawn = plots.save_study_plots(study, DOCS / name)
    finished = [t for t in trials if t.datetime_complete]
    seconds = (max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)).total_seconds()
    return {
        "study": name,
        "preset": study.user_attrs["preset"],
        "trials": states,
        "wall_minutes": round(seconds / 60),
        "workers": len({t.user_attrs.get("worker") for t in finished}),
        "best_trial": best.number,
        "best_val_accuracy": best.value,
        "best_params": best.params,
        "plots": [str(p.relative_to(ROOT)) for p in drawn],
    }


def plot_curves(article: dict, tuned: dict, out: Path) -> None:
    """Loss and accuracy per epoch, training vs validation: the article's recipe beside the tuned one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 7), sharex="col", sharey="row")
    for column, (title, run) in enumerate(
        (("the article's recipe (seed preset)", article), ("tuned (best trial of seed-mnist)", tuned))
    ):
        h = run["history"]
        for row, (metric, label) in enumerate((("loss", "loss"), ("accuracy", "accuracy"))):
            ax = axes[row][column]
            ax.plot(h["epoch"], h[metric], label=f"training {label}")
            ax.plot(h["epoch"], h[f"val_{metric}"], label=f"validation {label}")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend()
        axes[0][column].set_title(f"{title}: {run['run'].split('/')[-1]}")
        axes[1][column].set_xlabel("epoch")
        axes[1][column].set_ylim(0.94, 1.0)
    figure.suptitle("784-128-32-10 (104,938 parameters): the same network, trained two ways")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def markdown(result: dict) -> str:
    seed, mlp = result["seed"], result["mlp"]
    a, t = seed["article_recipe"], seed["tuned"]
    target = "✅" if t["test_accuracy_median"] >= 0.98 and not t["overfits"] else "❌"
    lines = [
        "### The article's network, tuned",
        "",
        "The studies ran on this project's 2-core machine while other work shared it, so they are small;",
        "more trials (or more workers) would only search further.",
        "",
        f"Study `seed-mnist`: {_states(seed['study'])}; best trial {seed['study']['best_trial']} "
        f"(validation accuracy {pct(seed['study']['best_val_accuracy'])}): {_params(seed['study']['best_params'])}.",
        "",
        "| 784-128-32-10, 104,938 parameters | seeds | test accuracy (median) | min – max | epochs | train − val accuracy (median) | val loss above its minimum at the end (median) | runs that overfit |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| the article (reported) | 1 | {pct(ARTICLE_TEST_ACCURACY)} | | 25 | | | |",
        _seed_row("the article's recipe (`--preset seed`)", a),
        _seed_row("tuned (`--from-study seed-mnist`)", t),
        "",
        "The tuned runs measure training accuracy on the deformed images they train on, hence below validation.",
        "",
        f"Target: median test accuracy ≥ 98.00 % with curves that no longer overfit: {target} "
        f"({pct(t['test_accuracy_median'])}, {t['overfits']} of {t['seeds']} runs flagged as overfitting by the run report).",
        "",
        "![the article's recipe against the tuned one](docs/tuning/seed-curves.png)",
        "",
        "![optimization history of seed-mnist](docs/tuning/seed-mnist/optimization-history.png)",
        "![parameter importances of seed-mnist](docs/tuning/seed-mnist/param-importances.png)",
        "![parallel coordinates of the best seed-mnist trials](docs/tuning/seed-mnist/parallel-coordinates.png)",
        "",
        "### A tuned `mlp` against the hand-set `mlp` preset",
        "",
        f"Study `mlp-mnist`: {_states(mlp['study'])}; best trial {mlp['study']['best_trial']} "
        f"(validation accuracy {pct(mlp['study']['best_val_accuracy'])}): {_params(mlp['study']['best_params'])}. "
        "Failed trials are ones stopped with Ctrl-C (see the commands below).",
        "",
        "| mlp | seeds | validation accuracy of the kept weights (median) | test accuracy (median) | epochs | parameters |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        _mlp_row("hand-set preset (`--preset mlp`)", mlp["preset"]),
        _mlp_row("tuned (`--from-study mlp-mnist`)", mlp["tuned"]),
        "",
        f"Target: the tuned mlp beats the preset on validation accuracy: "
        f"{'✅' if mlp['tuned']['kept_val_accuracy_median'] > mlp['preset']['kept_val_accuracy_median'] else '❌'} "
        f"({pct(mlp['tuned']['kept_val_accuracy_median'])} against {pct(mlp['preset']['kept_val_accuracy_median'])}, "
        f"both trained with seed{'s' if len(tuned_mlp_seeds := mlp['tuned']['seed_list']) > 1 else ''} "
        f"{', '.join(map(str, tuned_mlp_seeds))} on the same split; the study's best value, a maximum over trials, is not used).",
        "",
        "![optimization history of mlp-mnist](docs/tuning/mlp-mnist/optimization-history.png)",
        "",
        "Commands (from the repository root, `DIGITS_DATA_DIR` set):",
        "",
        "```",
        *[c for study in COMMANDS.values() for c in study],
        "python benchmarks/tuning.py && python benchmarks/update_readme.py",
        "```",
        "",
        f"Generated {result['generated']} by `python benchmarks/tuning.py`.",
    ]
    return "\n".join(lines)


def _states(study: dict) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in sorted(study["trials"].items()))
    return f"{counts} trials from {study['workers']} worker processes over {study['wall_minutes']} minutes"


def _params(params: dict) -> str:
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(params.items()))


def _seed_row(label: str, s: dict) -> str:
    return (
        f"| {label} | {s['seeds']} | {pct(s['test_accuracy_median'])} | {pct(s['test_accuracy_min'])} – "
        f"{pct(s['test_accuracy_max'])} | {s['epochs']} | {pct(s['train_val_gap_median'])} | "
        f"{100 * s['val_loss_rise_median']:.0f} % | {s['overfits']} of {s['seeds']} |"
    )


def _mlp_row(label: str, s: dict) -> str:
    return (
        f"| {label} | {s['seeds']} | {pct(s['kept_val_accuracy_median'])} | {pct(s['test_accuracy_median'])} | "
        f"{s['epochs']} | {s['parameters']:,} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", default=tune.default_storage(TUNE_DIR))
    args = parser.parse_args()
    article_runs, tuned_runs = read_runs("benchmarks/runs/mnist/seed/s*"), read_runs("benchmarks/tune/runs/seed-s*")
    # The preset's runs of the very seeds the tuned mlp was retrained with.
    tuned_mlp = read_runs("benchmarks/tune/runs/mlp-s*")
    preset_mlp = [read_run(ROOT / f"benchmarks/runs/mnist/mlp/s{run['config']['seed']}") for run in tuned_mlp]
    result = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seed": {
            "study": study_summary(args.storage, "seed-mnist"),
            "article_recipe": summarize(article_runs),
            "tuned": summarize(tuned_runs),
        },
        "mlp": {
            "study": study_summary(args.storage, "mlp-mnist"),
            "preset": summarize(preset_mlp),
            "tuned": summarize(tuned_mlp),
        },
        "commands": COMMANDS,
    }
    plot_curves(article_runs[0], tuned_runs[0], DOCS / "seed-curves.png")
    RESULTS.mkdir(exist_ok=True)
    table = markdown(result)
    (RESULTS / "tuning.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "tuning.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
