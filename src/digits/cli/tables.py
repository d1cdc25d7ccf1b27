"""The one table renderer of the CLI: rows of a run listing as a rich table, whole values off a terminal."""

from __future__ import annotations

import sys
from typing import Any

from digits.cli.terminal import shown


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Print `rows` as a table of `columns` ((key, header) pairs); a missing value shows as "-"."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table()
    for _, header in columns:
        table.add_column(header)
    for row in rows:  # Text: a folder named "[red]" is a name, not markup
        table.add_row(*(Text(_cell(row.get(key))) for key, _ in columns))
    # Off a terminal (a pipe, a file) there is no width to fit: print whole values, never "fin…".
    Console(width=None if sys.stdout.isatty() else 10_000).print(table)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:.1f}"
    return shown(str(value))
