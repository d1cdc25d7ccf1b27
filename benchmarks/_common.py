"""What the benchmark scripts share: their folders, their common arguments, and the markdown tables they print
and write."""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from digits.atomic import write_json, write_text

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def data_arguments(parser: argparse.ArgumentParser, real: Path, real_help: str) -> None:
    """`--real` (default `real`), `--data-dir` and `--out`: where the pictures are, and where the results go."""
    parser.add_argument("--real", type=Path, default=real, help=real_help)
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: DIGITS_DATA_DIR or cache)")
    parser.add_argument("--out", type=Path, default=RESULTS)


def generated_arguments(parser: argparse.ArgumentParser, count: str, default: int, help: str) -> argparse.Namespace:
    """The parsed arguments of a benchmark on generated pictures: `--COUNT` of them (at least 1), `--seed`
    (2: the seed no choice looks at), `--data-dir` and `--out`."""
    parser.add_argument(f"--{count}", type=int, default=default, help=help)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: DIGITS_DATA_DIR or cache)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if getattr(args, count) < 1:
        parser.error(f"--{count} must be at least 1.")
    return args


def how_run() -> dict[str, str]:
    """For a report: this run's arguments, machine and Python, and the commit of the `digits` it ran (a run
    with PYTHONPATH at another checkout names that one's), `+changes` when its files differ from it
    (`how_measured` names them under its table)."""
    from digits.train import provenance

    commit = (provenance.git_commit() or "unknown")[:7] + ("+changes" if provenance.git_dirty() else "")
    return {
        "arguments": " ".join(sys.argv[1:]),
        "machine": platform.platform(),
        "cpu": f"{provenance.cpu_model()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "digits": commit,
    }


def how_measured(script: str, report: dict) -> str:
    """The line under a table that says how to measure it again, and where it was measured (`how_run`)."""
    command = " ".join([f"python benchmarks/{script}", report["arguments"]]).strip()
    at = f", `digits` at {report['digits']}" if "digits" in report else ""
    cpu = f" ({report['cpu']})" if "cpu" in report else ""  # reports made before it was recorded name no CPU
    return f"`{command}` on {report['machine']}{cpu}, Python {report['python']}{at}."


def described(table: str, note: str, script: str, report: dict) -> str:
    """A benchmark's markdown: its table, the note that says what was counted, and `how_measured`."""
    return "\n\n".join([table, note, how_measured(script, report)]) + "\n"


def count_by_condition(
    conditions: Iterable[str], sets: dict[str, list], right: Callable[[str, str, int, Any], bool]
) -> dict[str, dict[str, int]]:
    """For each set and condition, how many of the set's items `right(condition, set name, index, item)` holds
    for; each condition's counts printed as they come."""
    counts: dict[str, dict[str, int]] = {name: {} for name in sets}
    for condition in conditions:
        for name, items in sets.items():
            counts[name][condition] = sum(right(condition, name, k, item) for k, item in enumerate(items))
        print(f"{condition}: " + ", ".join(f"{counts[name][condition]}/{len(sets[name])}" for name in sets), flush=True)
    return counts


def write_counts(
    folder: Path, name: str, counts: tuple[str, dict], sets: dict[str, list], seed: int, table: Callable[[dict], str]
) -> None:
    """A by-condition benchmark's `name`.json and .md (`write_results`): its counts (`count_by_condition`,
    under the key given with them), each set's size, its seed and `how_run`, and its `table` of that."""
    key, by_condition = counts
    report = {key: by_condition, "sizes": {name: len(items) for name, items in sets.items()}, "seed": seed, **how_run()}
    write_results(folder, name, report, table(report))


def write_results(folder: Path, name: str, report: dict, table: str) -> None:
    """A benchmark's `name`.json and `name`.md (its table) in `folder`, each written atomically; the table on stdout."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / f"{name}.json", report)
    write_text(folder / f"{name}.md", table)
    print(table)


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------


def _format_cell(value: object) -> str:
    """A table cell: floats rounded to what a reader can use, None blank."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        magnitude = abs(value)
        if value == 0:
            return "0"
        if magnitude >= 1000:  # no separators, to match how ints print
            return f"{value:.0f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        if magnitude >= 1e-3:
            return f"{value:.4f}"
        return f"{value:.2e}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value)}"
    # A pipe would end the cell early; a newline would end the row.
    return str(value).replace("|", "\\|").replace("\n", " ")


def _is_numeric(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def results_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A GitHub-flavoured markdown table of `rows`.

    `columns` lists (key, header) pairs in display order; a key missing from a
    row leaves its cell blank. Numeric columns are right-aligned.
    """
    headers = [_format_cell(header) for _, header in columns]
    cells = [[_format_cell(row.get(key)) for key, _ in columns] for row in rows]
    numeric = [
        any(row.get(key) is not None for row in rows)
        and all(_is_numeric(row.get(key)) for row in rows if row.get(key) is not None)
        for key, _ in columns
    ]
    # Pad columns so the raw markdown reads as a table too.
    widths = [max([len(headers[c]), 3] + [len(r[c]) for r in cells]) for c in range(len(columns))]

    def line(values: list[str]) -> str:
        padded = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=False)]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "| "
        + " | ".join("-" * (w - 1) + ":" if num else "-" * w for w, num in zip(widths, numeric, strict=False))
        + " |"
    )
    return "\n".join([line(headers), rule, *(line(r) for r in cells)]) + "\n"
