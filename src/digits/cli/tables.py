"""The one table renderer of the CLI: rows of a run listing as a rich table, whole values off a terminal."""

from __future__ import annotations

import io
import sys
from typing import Any

from digits.cli.terminal import echo, shown


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Print `rows` as a table of `columns` ((key, header) pairs); a missing value shows as "-"."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table()
    for _, header in columns:
        table.add_column(header)
    for row in rows:  # Text: a folder named "[red]" is a name, not markup
        table.add_row(*(Text(_cell(key, row.get(key))) for key, _ in columns))
    # Off a terminal (a pipe, a file) there is no width to fit: print whole values, never "fin…".
    terminal = sys.stdout.isatty()
    rendered = io.StringIO()
    Console(file=rendered, width=None if terminal else 10_000, force_terminal=terminal).print(table)
    # One way to stdout (a full disk is named as standard output), with rich's bold headers kept on a terminal.
    echo(rendered.getvalue().rstrip("\n"), styled=terminal)


def _cell(key: str, value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        # Seconds to a tenth; accuracies and losses to four places (a loss of 10 or more to a tenth).
        return f"{value:.1f}" if key.endswith("seconds") or value >= 10 else f"{value:.4f}"
    return shown(str(value))
