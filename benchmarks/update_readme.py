"""Copy the generated tables into README.md, between their `<!-- name -->` markers.

    python benchmarks/update_readme.py [--seed-run RUN]

Each block `<!-- NAME:start -->...<!-- NAME:end -->` in the README is replaced by
benchmarks/results/NAME.md. With --seed-run, the `seed-run` block is written
from that run's metrics.json and its curves.png is copied to docs/. The
`shipped-model` block is written from src/digits/shipped/reader.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

from digits.runs import RunDir

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def seed_run_block(run: Path) -> str:
    run = RunDir(run)
    metrics, config = run.read_metrics(), run.read_config()
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    shutil.copyfile(run.curves_path, docs / "seed-curves.png")
    shutil.copyfile(run.confusion_path, docs / "seed-confusion.png")
    machine = config["provenance"]["machine"]
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
        f"Run `{' '.join(['digits'] + config['provenance']['command'][1:])}` on {machine['cpu']} "
        f"({machine['cores']} cores), keras {config['provenance']['versions'].get('keras')}, "
        f"commit {str(config['provenance']['git_commit'])[:10]}; figures from its metrics.json.",
        "",
        "![loss and accuracy per epoch](docs/seed-curves.png)",
    ]
    return "\n".join(lines)


def shipped_model_block(card_path: Path) -> str:
    card = json.loads(card_path.read_text())
    metrics, config = card["metrics"], card["config"]
    lines = [
        "| figure | shipped model |",
        "| --- | ---: |",
        f"| MNIST test accuracy (a refused digit is an error) | {metrics['test_accuracy']:.2%} |",
        f"| MNIST test digits refused as \"not a digit\" | {metrics['digits_refused']:.2%} |",
        f"| junk refused ({metrics['junk_pictures']} generated pictures, seed {metrics['junk_seed']}, never trained on) "
        f"| {metrics['junk_refused']:.2%} |",
        f"| of which the preprocessing found no ink | {metrics['junk_refused_no_ink']:.2%} |",
        f"| parameters | {metrics['parameters']:,} |",
        f"| epochs | {metrics['epochs_run']} |",
        f"| model file | {card_path.with_suffix('.onnx').stat().st_size / 1e6:.1f} MB |",
        "",
        f"Trained by `{' '.join(['digits'] + config['provenance']['command'][1:])}` "
        f"(commit {str(config['provenance']['git_commit'])[:10]}) in {metrics['train_seconds'] / 60:.0f} min "
        f"on {config['provenance']['machine']['cpu']}; figures from `src/digits/shipped/reader.json`.",
    ]
    if card.get("training_data"):
        lines += ["", "Learnt from (licence as stated by each source; the generated junk and photographed digits are "
                  "made by `digits` itself): " + "; ".join(f"{d['name']} ({d['licence']})" for d in card["training_data"])
                  + "."]
    return "\n".join(lines)


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no <!-- {name}:start --> block")
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed-run", type=Path, help="run folder of a `digits train --preset seed` run")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    for table in sorted(RESULTS.glob("*.md")):
        if f"<!-- {table.stem}:start -->" in text:
            # A table's own top heading would break the README's outline.
            body = "\n".join(line for line in table.read_text().splitlines() if not line.startswith("# "))
            text = replace_block(text, table.stem, body.strip())
    if args.seed_run:
        text = replace_block(text, "seed-run", seed_run_block(args.seed_run))
    card = ROOT / "src" / "digits" / "shipped" / "reader.json"
    if card.is_file():
        text = replace_block(text, "shipped-model", shipped_model_block(card))
    readme.write_text(text)


if __name__ == "__main__":
    main()
