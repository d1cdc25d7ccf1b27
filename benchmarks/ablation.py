"""Ablation: what each extra set adds to the reader preset (issue 19).

Trains the `reader` preset once per variant and seed into
`benchmarks/ablation/<variant>/s<seed>` (a finished run is reused, an
unfinished one resumed, so the table can be built over several sessions),
then scores each run's model on what the reader is for:

  * MNIST's test set and CVL's evaluation split (176 writers never trained on);
  * every picture of `real-digits/`, by fold and source (`real_sources.py`;
    its docstring holds the fold protocol): one digit right, numbers and pages
    exact, junk refused by `predict` and by `read`, the worst source.

Variants (each is the reader preset with these two keys set):

  * `none`: no extra set (the recipe of the model shipped before issue 19, calibrated);
  * `+usps`, `+semeion`, `+cvl`, `+dida`: that digit set alone;
  * `+negatives`: the real non-digits alone;
  * `all`: every set (the `reader` preset as it stands).

    python benchmarks/ablation.py [--variants none +cvl all] [--seeds 1]     # train what is missing, then tabulate
    python benchmarks/ablation.py --table-only                                # re-tabulate from results/ablation.json
    python benchmarks/ablation.py --epochs 8                                  # every variant on a shorter schedule
    python benchmarks/ablation.py --smoke                                     # minutes: tiny trainings, marked as a smoke

`--epochs N` trains each variant for N epochs instead of the preset's 30
(the cosine schedule shrinks with it), into `ablation/epochs<N>/`: the
variants stay comparable with one another, not with the shipped model, and
the table says so.

`--smoke` trains each variant for one epoch on 2000 MNIST digits with a few
hundred made-up pictures, into `ablation/smoke/`, and writes
`results/ablation-smoke.*`: it checks the pipeline, its figures mean nothing.
Every figure comes from the runs and the benchmark's own reading; nothing is
typed by hand. The data is found like any training's (`--data-dir` or
`DIGITS_DATA_DIR`, whose folder's parent holds the extra sets).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import real_sources
from digits.atomic import write_json, write_text
from digits.data import DIGIT_SETS, NEGATIVE_SETS
from digits.runs import RunDir
from realworld import REAL, public_sets

HERE = Path(__file__).parent
RESULTS = HERE / "results"
VARIANTS = {
    "none": {"extra_digits": [], "real_negatives": []},
    **{f"+{name}": {"extra_digits": [name], "real_negatives": []} for name in DIGIT_SETS},
    "+negatives": {"extra_digits": [], "real_negatives": list(NEGATIVE_SETS)},
    "all": {"extra_digits": list(DIGIT_SETS), "real_negatives": list(NEGATIVE_SETS)},
}
SMOKE = {
    "epochs": 1,
    "photo_singles": 200,
    "photo_lines": 100,
    "junk_train": 300,
    "junk_val": 60,
    "european_ones": 50,
    "crossed_sevens": 50,
}
SMOKE_TRAIN_LIMIT = 2000


def train_missing(variants: list[str], seeds: int, runs: Path, data_dir, smoke: bool, epochs: int | None) -> None:
    from digits.train.run import train

    for variant in variants:
        for seed in range(seeds):
            run = RunDir(runs / variant / f"s{seed}")
            if run.has(RunDir.METRICS):
                continue
            print(f"training {run}", flush=True)
            if run.path.is_dir():
                train(resume=run.path, data_dir=data_dir)
            else:
                train(
                    "reader",
                    runs_dir=run.path.parent,
                    name=run.name,
                    data_dir=data_dir,
                    seed=seed,
                    train_limit=SMOKE_TRAIN_LIMIT if smoke else None,
                    overrides=VARIANTS[variant] | (SMOKE if smoke else {}) | ({"epochs": epochs} if epochs else {}),
                )


def score(variants: list[str], seeds: int, runs: Path, real: Path, data_dir) -> dict:
    from digits.read.reader import Reader

    rows = real_sources.pictures(real)
    scored = {}
    for variant in variants:
        for seed in range(seeds):
            run = RunDir(runs / variant / f"s{seed}")
            reader = Reader(run.path)
            metrics, (config, info) = run.read_metrics(), run.read_run()
            scored[f"{variant} s{seed}"] = {
                "run": str(run.path),
                "config": {
                    "extra_digits": list(config.extra_digits),
                    "real_negatives": list(config.real_negatives),
                    "calibration": info.calibration,
                },
                "junk_refused": metrics.get("junk_refused"),
                "public": public_sets(reader, data_dir),
                "folds": real_sources.summarize(rows, real_sources.read_with_reader(reader, rows)),
            }
    return scored


def _pct(score: dict | None, right: str = "right") -> str:
    return f"{100 * score[right] / score['n']:.1f} %" if score and score.get("n") else "-"


def markdown(report: dict) -> str:
    head = (
        "| variant | MNIST test | CVL eval | generated junk refused | dev: one digit | dev: numbers | held out: numbers "
        "| junk `predict` digit (dev / held out) | junk `read` number (dev / held out) | worst dev source |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in report["variants"].items():
        dev, held = r["folds"]["dev"], r["folds"]["held out"]
        junk = [f.get("junk_kinds", {}).get("all") for f in (dev, held)]
        worst = dev.get("worst_source")
        lines.append(
            " | ".join(
                [
                    f"| {name}",
                    _pct(r["public"].get("MNIST test")),
                    _pct(r["public"].get("CVL evaluation split")),
                    f"{100 * r['junk_refused']:.1f} %" if r.get("junk_refused") is not None else "-",
                    _pct(dev["sets"].get("single")),
                    _pct(dev["sets"].get("multi")),
                    _pct(held["sets"].get("multi")),
                    " / ".join(_pct(j, "predict_digit") for j in junk),
                    " / ".join(_pct(j, "read_number") for j in junk),
                    f"{worst} {_pct(dev['sources'][worst])}" if worst else "-",
                ]
            )
            + " |"
        )
    lines += [
        "",
        f"`python benchmarks/ablation.py {report['arguments']}` on {report['machine']}."
        + (
            " **Smoke run: one epoch on 2000 digits; these figures only show that the pipeline works.**"
            if report["smoke"]
            else ""
        )
        + (
            f" Each variant trained {report['epochs']} epochs instead of the preset's 30: the rows compare with one"
            " another, not with the shipped model."
            if report.get("epochs")
            else ""
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument(
        "--real", type=Path, default=REAL, help="folder of real pictures (single/, multi/, pages/, junk/)"
    )
    parser.add_argument(
        "--data-dir", default=None, help="MNIST folder (default: DIGITS_DATA_DIR); the extra sets beside it"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny trainings that only check the pipeline")
    parser.add_argument("--epochs", type=int, default=None, help="train each variant N epochs (default: the preset's)")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args(argv)
    stem = "ablation-smoke" if args.smoke else "ablation"
    if args.table_only:
        write_text(RESULTS / f"{stem}.md", markdown(json.loads((RESULTS / f"{stem}.json").read_text())))
        return 0
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    runs = HERE / "ablation" / ("smoke" if args.smoke else f"epochs{args.epochs}" if args.epochs else "full")
    train_missing(args.variants, args.seeds, runs, args.data_dir, args.smoke, args.epochs)
    report = {
        "arguments": " ".join(sys.argv[1:] if argv is None else argv),
        "smoke": args.smoke,
        "epochs": args.epochs,
        "machine": platform.platform(),
        "variants": score(args.variants, args.seeds, runs, args.real, args.data_dir),
    }
    RESULTS.mkdir(exist_ok=True)
    write_json(RESULTS / f"{stem}.json", report)
    write_text(RESULTS / f"{stem}.md", markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
