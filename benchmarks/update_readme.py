"""Write the generated tables into the docs: docs/benchmarks.md, and the README's one summary table.

    python benchmarks/update_readme.py [--seed-run RUN] [--check]

A generated block is the text between `<!-- NAME:start -->` and `<!-- NAME:end -->`
in one of the PAGES. Its body comes from:

  * benchmarks/results/NAME.md, the table a benchmark script wrote;
  * `shipped-model`: src/digits/shipped/reader.json;
  * `seed-run`: with --seed-run, that run's metrics.json (its plots are copied to docs/);
  * `summary`: a few headline figures, read from the results' JSON and reader.json.

Nothing between the markers is typed by hand. A block whose source is absent
is left as it is; a block with a name nothing generates is refused, so a typo
cannot leave a stale table behind. Bodies write their links from the
repository root (`docs/seed-curves.png`); each is made relative to the page
it lands in. With --check nothing is written: the command names every page
that is out of date and exits 1. Bad input (a run without its plots, an unknown
block) is one sentence on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from digits import atomic
from digits.runs import RunDir

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# The row of `benchmarks/unseen_numbers.py` for numbers by CVL's unseen writers with two digits touching.
TOUCHING_ROW = "CVL's evaluation writers (unseen), two digits touching"
DOCS = ROOT / "docs"
CARD = ROOT / "src" / "digits" / "shipped" / "reader.json"
PAGES = (DOCS / "benchmarks.md", ROOT / "README.md")
BLOCK = re.compile(r"(<!-- ([\w-]+):start -->\n).*?(<!-- \2:end -->)", re.S)
# A Markdown link or image target: relative, without a scheme, an anchor only, or an absolute path.
LINK = re.compile(r"(\]\()(?![a-z][a-z0-9+.-]*:|#|/)([^)\s#]+)")


def refuse(sentence: str) -> NoReturn:
    """Bad input, as every `digits` command says it: one sentence on stderr, exit code 2."""
    print(f"error: {sentence}", file=sys.stderr)
    sys.exit(2)


def seed_run_block(run: Path) -> str:
    run = RunDir(run)
    metrics, provenance = run.read_metrics(), run.read_info().provenance
    machine = provenance["machine"]
    lines = [
        "| figure | this run | the article |",
        "| --- | ---: | ---: |",
        f"| test accuracy | {metrics['test_accuracy']:.4f} | 0.9736 |",
        f"| test loss | {metrics['test_loss']:.4f} | |",
        f"| parameters | {metrics['parameters']:,} | 104,938 |",
        f"| epochs | {metrics['epochs_run']} | 25 |",
        f"| training time | {metrics['train_seconds']:.1f} s | |",
        f"| best epoch (lowest val_loss) | {metrics['overfitting']['best_epoch']} | |",
        "",
        f"{metrics['overfitting']['verdict']}",
        "",
        f"Run `{' '.join(['digits'] + provenance['command'][1:])}` on {machine['cpu']} "
        f"({machine['cores']} cores), keras {provenance['versions'].get('keras')}, "
        f"{commit_text(provenance)}; figures from its metrics.json.",
        "",
        "![loss and accuracy per epoch](docs/seed-curves.png)",
    ]
    return "\n".join(lines)


def commit_text(provenance: dict) -> str:
    """The run's commit (`commit abc1234567`), and whether its code had changes not in that commit."""
    text = f"commit {str(provenance['git_commit'])[:10]}"
    return text + " with uncommitted changes" if provenance.get("git_dirty") else text


def copy_seed_plots(run: Path) -> None:
    run = RunDir(run)
    plots = {run.curves_path: DOCS / "seed-curves.png", run.confusion_path: DOCS / "seed-confusion.png"}
    missing = [str(plot) for plot in plots if not plot.is_file()]
    if missing:
        refuse(f"{', '.join(missing)}: missing; run `digits evaluate {run}` to draw the plots again.")
    for plot, copy in plots.items():
        atomic.write_bytes(copy, plot.read_bytes())


def shipped_model_block(card_path: Path) -> str:
    card = json.loads(card_path.read_text())
    metrics, config = card["metrics"], card["config"]
    lines = [
        "| figure | shipped model |",
        "| --- | ---: |",
        f"| MNIST test accuracy (a refused digit is an error) | {metrics['test_accuracy']:.2%} |",
        f'| MNIST test digits refused as "not a digit" | {metrics["digits_refused"]:.2%} |',
        f"| junk refused ({metrics['junk_pictures']} generated pictures, seed {metrics['junk_seed']}, "
        f"never trained on) | {metrics['junk_refused']:.2%} |",
        f"| of which the preprocessing found no ink | {metrics['junk_refused_no_ink']:.2%} |",
        f"| parameters | {metrics['parameters']:,} |",
        f"| epochs | {metrics['epochs_run']} |",
        f"| model file | {card_path.with_suffix('.onnx').stat().st_size / 1e6:.1f} MB |",
        "",
        f"Trained by `{' '.join(['digits'] + config['provenance']['command'][1:])}` "
        f"({commit_text(config['provenance'])}) in {metrics['train_seconds'] / 60:.0f} min "
        f"on {config['provenance']['machine']['cpu']}; figures from `src/digits/shipped/reader.json`.",
    ]
    if card.get("training_data"):
        lines += [
            "",
            "Learnt from (licence as stated by each source; the generated junk and photographed digits are "
            "made by `digits` itself): "
            + "; ".join(f"{d['name']} ({d['licence']})" for d in card["training_data"])
            + ".",
        ]
    return "\n".join(lines)


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%} of {whole:,}"


PUBLIC_SETS = ("MNIST test", "CVL evaluation split")  # as realworld.public_sets names them


def summary_block() -> str:
    """The README's one table: a headline figure from each benchmark, linked to its full table."""
    card = json.loads(CARD.read_text())["metrics"]
    shipped = json.loads((RESULTS / "realworld.json").read_text())["models"]["shipped"]
    accuracy = json.loads((RESULTS / "accuracy.json").read_text())
    speed = {f["key"]: f for f in json.loads((RESULTS / "speed.json").read_text())["summary"]["figures"]}
    png28 = json.loads((RESULTS / "serve.json").read_text())["load"]["png28"]
    serve, wrk = png28["median"], png28["wrk"]
    # A single preset's median over seeds; an ensemble row is several models in one, not a preset.
    presets = [row for row in accuracy["rows"] if row["dataset"] == "mnist" and ": ensemble of" not in row["preset"]]
    best = max(presets, key=lambda row: row["median"])
    real, numbers, junk = shipped["singles"]["real"], shipped["numbers"]["real"], shipped["junk"]["all"]
    fit = speed["fit"]
    page = "docs/benchmarks.md"
    rows = [
        (
            "MNIST test accuracy, the model the package ships",
            f"{card['test_accuracy']:.2%}",
            f"{page}#the-model-the-package-ships",
        ),
        (
            "MNIST test / CVL's evaluation split (176 writers no model here saw), as the reader reads them",
            " / ".join(
                f"{score['right'] / score['n']:.2%}"
                for score in (shipped["public"][f"{name}, as the reader reads it"] for name in PUBLIC_SETS)
            ),
            f"{page}#real-pictures",
        ),
        (
            "real photos, scans and drawings of one digit, read right",
            _share(real["correct"], real["n"]),
            f"{page}#real-pictures",
        ),
        ("real pictures of a number, read exactly", _share(numbers["exact"], numbers["n"]), f"{page}#real-pictures"),
        (
            "real pictures with no digit, refused by both `predict` and `read`: development / held-out sources",
            " / ".join(
                f"{junk_fold['right']} of {junk_fold['n']}"
                for junk_fold in (shipped["folds"][fold]["sets"]["junk"] for fold in ("dev", "held out"))
            ),
            f"{page}#real-pictures",
        ),
        (
            "generated pictures with no digit, given a digit anyway",
            _share(junk["accepted"], junk["n"]),
            f"{page}#real-pictures",
        ),
        (
            f"best MNIST test accuracy of a preset (`{best['preset']}`, median of {best['seeds']} seeds)",
            f"{best['median']:.2%}",
            f"{page}#accuracy",
        ),
        (
            "training the article's network: `digits train --preset fast` against the article's `fit`",
            f"{fit['digits']:.2f} s against {fit['reference']:.2f} s",
            f"{page}#speed",
        ),
        (
            "`digits serve`, 28×28 PNG uploads at 32 clients, measured with `hey` / `wrk` (median of repetitions)",
            f"{serve['digits']['rps']:,.0f} / {wrk['digits']['rps']:,.0f} req/s, "
            f"p99 {serve['digits']['p99_ms']:.0f} / {wrk['digits']['p99_ms']:.0f} ms; "
            f"{serve['ratio']}× / {wrk['ratio']}× the tutorial's server",
            f"{page}#serving",
        ),
    ]
    if (RESULTS / "diverse_ensemble.json").is_file():
        ensemble = json.loads((RESULTS / "diverse_ensemble.json").read_text())
        rows.append(
            (
                f"an ensemble of {len(ensemble['members'])} `record` models with other kernels: "
                "the averaged model alone / as the reader reads it (±10° turns)",
                f"{ensemble['ensemble_accuracy']:.2%} / {ensemble['ensemble_as_read']:.2%}",
                f"{page}#an-ensemble-whose-members-differ",
            )
        )
    if (RESULTS / "frontier.json").is_file():
        rows.append(frontier_row(json.loads((RESULTS / "frontier.json").read_text()), page))
    if (RESULTS / "latency.json").is_file():
        rows.append(latency_row(json.loads((RESULTS / "latency.json").read_text()), page))
    if (RESULTS / "synth_pages.json").is_file():
        rows.append(pages_row(json.loads((RESULTS / "synth_pages.json").read_text()), page))
    if (RESULTS / "unseen_numbers.json").is_file():
        numbers = json.loads((RESULTS / "unseen_numbers.json").read_text())
        rows.append(unseen_numbers_row(numbers, page))
        if TOUCHING_ROW in numbers["counts"]:
            rows.append(unseen_numbers_row(numbers, page, touching=True))
    if (RESULTS / "pens.json").is_file():
        rows.append(pens_row(json.loads((RESULTS / "pens.json").read_text()), page))
    if (RESULTS / "batch-quick.json").is_file():
        rows.append(batch_row(json.loads((RESULTS / "batch-quick.json").read_text()), page))
    lines = ["| what | measured | table |", "| --- | ---: | --- |"]
    lines += [f"| {what} | {figure} | [details]({link}) |" for what, figure, link in rows]
    machine = accuracy["machine"]
    lines += [
        "",
        f"Times and accuracies measured on {machine['cpu']}, {machine['cores']} cores, unless their table names "
        "another machine; counts of pictures read come out the same on each machine tried. Each table names its "
        "command and date.",
    ]
    return "\n".join(lines)


def batch_row(batch: dict, page: str) -> tuple[str, str, str]:
    """The summary's row of `benchmarks/batch.py`: `digits read` on many pictures, 2 worker processes and Dask."""
    small, mixed = (batch["sets"][name]["median"] for name in ("small", "mixed"))
    return (
        "`digits read` on many pictures, 2 worker processes (on 2 local Dask workers), pictures/s",
        f"small crops {small['workers_2']['steady']:,.0f} ({small['dask_2']['steady']:,.0f}); "
        f"a mix with phone photos and pages {mixed['workers_2']['steady']:,.0f} ({mixed['dask_2']['steady']:,.0f})",
        f"{page}#reading-many-pictures",
    )


def pages_row(pages: dict, page: str) -> tuple[str, str, str]:
    """Generated pages read exactly, by the reader and by each peer of the same run."""
    scores = {name: by_scene["all"] for name, by_scene in pages["results"].items()}
    ours = next(iter(scores))  # the reader is the first contender
    figure = f"{scores[ours]['exact']} of {scores[ours]['pages']}"
    peers = [f"{name}: {score['exact']}" for name, score in scores.items() if name != ours]
    return (
        "generated pages of 2 to 4 numbers in seven scenes, read exactly",
        figure + (f" ({'; '.join(peers)})" if peers else ""),
        f"{page}#generated-pages-scene-by-scene",
    )


def unseen_numbers_row(numbers: dict, page: str, touching: bool = False) -> tuple[str, str, str]:
    """A summary row of `benchmarks/unseen_numbers.py`: numbers by CVL's unseen writers, or the same numbers with
    two digits touching, read exactly, not at all, wrong with a digit marked unsure, wrong and sure."""
    counts = numbers["counts"][TOUCHING_ROW if touching else "CVL's evaluation writers (unseen)"]
    kinds = ("exact", "nothing", "wrong, a digit marked unsure", "wrong, every digit sure")
    what = (
        "the same numbers with two of their digits touching"
        if touching
        else "generated photos of numbers by CVL's writers no model here saw"
    )
    return (
        f"{what}: read exactly / nothing / wrong with a digit marked unsure / wrong and sure",
        " / ".join(f"{counts[kind] / numbers['numbers']:.1%}" for kind in kinds) + f" of {numbers['numbers']:,}",
        f"{page}#numbers-by-writers-no-model-saw",
    )


def pens_row(pens: dict, page: str) -> tuple[str, str, str]:
    """The summary's row of `benchmarks/pens.py`: single digits of CVL's unseen writers in each pen, read right."""
    by_pen = pens["counts"]["CVL's evaluation writers"]
    named = (
        ("any pen", "any pen"),
        ("faint pencil", "a faint grainy pencil"),
        ("marker on grey paper", "a bold marker on grey paper"),
    )
    return (
        "single digits by CVL's writers no model here saw, read right: in " + " / ".join(words for _, words in named),
        " / ".join(f"{by_pen[pen]['digits']['right'] / by_pen[pen]['digits']['n']:.1%}" for pen, _ in named)
        + f" of {pens['pictures']:,}",
        f"{page}#digits-in-three-pens",
    )


def latency_row(latency: dict, page: str) -> tuple[str, str, str]:
    """The summary's row of `benchmarks/latency.py`: one 28×28 crop through the reader, against its decode."""
    crops = latency["sets"]["28×28 PNG crops"]
    return (
        "a 28×28 MNIST digit as a black-on-white PNG, read by `Reader`, bytes to answer (median)",
        f"{crops['reader_ms']:.2f} ms; {crops['ratio_to_decode']}× Pillow's decode",
        f"{page}#one-picture",
    )


def frontier_row(frontier: dict, page: str) -> tuple[str, str, str]:
    """The summary's row of `benchmarks/frontier.py`: digits' least time to 99.0 % and to 99.5 % against the article's `fit`."""
    article = next(row for row in frontier["rows"] if row["contender"] == "article")

    def fastest(key: str, accuracy: str) -> str:
        ours = min(
            (row for row in frontier["rows"] if row["contender"] == "digits" and row.get(key) is not None),
            key=lambda row: row[key],
            default=None,
        )
        if not ours:
            return f"{accuracy} not reached"
        preset, _, epochs = ours["recipe"].partition(":")  # "sprint:8": the preset for 8 epochs
        how = f"`{preset}` for {epochs} epochs, `--epochs {epochs}`" if epochs else f"`{preset}`"
        return f"{ours[key]:.1f} s to {accuracy} ({how})"

    figure = (
        f"{fastest('to_990', '99.0 %')}, {fastest('to_995', '99.5 %')}; "
        f"the article's `fit`: {article['train_seconds']:.0f} s ({article['final_accuracy']:.2%})"
    )
    return (
        "time to 99.0 % and 99.5 % MNIST test accuracy, training on this CPU",
        figure.replace("%)", " %)"),
        f"{page}#training-at-the-frontier",
    )


def results_block(table: Path) -> str:
    # A table's own top heading would break the page's outline.
    return "\n".join(line for line in table.read_text().splitlines() if not line.startswith("# ")).strip()


def generators(seed_run: Path | None) -> dict[str, Callable[[], str] | None]:
    """Every block name there is, with what writes its body (None: its source is absent, keep the block)."""
    made: dict[str, Callable[[], str] | None] = {t.stem: (lambda t=t: results_block(t)) for t in RESULTS.glob("*.md")}
    made.setdefault("frontier", None)  # until `benchmarks/frontier.py` has made a full run, its block waits
    made["seed-run"] = (lambda: seed_run_block(seed_run)) if seed_run else None
    made["shipped-model"] = (lambda: shipped_model_block(CARD)) if CARD.is_file() else None
    sources = [CARD] + [RESULTS / f"{name}.json" for name in ("realworld", "accuracy", "speed", "serve")]
    made["summary"] = summary_block if all(path.is_file() for path in sources) else None
    return made


def relink(body: str, page: Path) -> str:
    """Links written from the repository root, made relative to `page`'s folder."""

    def fix(match: re.Match) -> str:
        target = ROOT / match.group(2)
        if not target.exists():
            return match.group(0)
        return match.group(1) + Path(os.path.relpath(target, page.parent)).as_posix()

    return LINK.sub(fix, body)


def render(page: Path, made: dict[str, Callable[[], str] | None]) -> str:
    text = page.read_text()

    def replace(match: re.Match) -> str:
        name = match.group(2)
        if name not in made:
            refuse(
                f"{page.relative_to(ROOT)}: no generator writes a block named {name!r} "
                f"(known: {', '.join(sorted(made))})."
            )
        make = made[name]
        if make is None:
            return match.group(0)
        try:
            body = make()
        except KeyError as err:
            # A benchmark changed the shape of its JSON: say which key, not a traceback.
            refuse(f"block {name!r}: its source has no key {err}; update its generator in {Path(__file__).name}.")
        return match.group(1) + relink(body, page).rstrip() + "\n" + match.group(3)

    return BLOCK.sub(replace, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed-run", type=Path, help="run folder of a `digits train --preset seed` run")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is out of date")
    args = parser.parse_args()
    made = generators(args.seed_run)
    if args.seed_run and not args.check:
        copy_seed_plots(args.seed_run)  # first: a run without its plots changes no page
    stale = []
    for page in PAGES:
        text = render(page, made)
        if text == page.read_text():
            continue
        stale.append(str(page.relative_to(ROOT)))
        if not args.check:
            atomic.write_text(page, text)
    if args.check and stale:
        sys.exit(f"out of date: {', '.join(stale)} (run python benchmarks/update_readme.py)")


if __name__ == "__main__":
    main()
