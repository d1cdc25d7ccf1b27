"""The `digits` command's entry point (and `python -m digits`): Ctrl-C while it loads ends it quietly.

The command's modules (Typer, rich, the commands) take a moment to load. A Ctrl-C then would stop an
import half way: a traceback, or a library left half initialised and reported as a bug in digits.
Until they have loaded, Ctrl-C ends the command at once with the shell's code for it, 130; from then on
`digits.cli.main` handles it.
"""

from __future__ import annotations

import os
import signal


def main() -> None:
    # Only where Ctrl-C would interrupt anyway: a command started with SIGINT ignored (a background job) keeps it so.
    quiet = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if quiet:
        signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))
    from digits.cli import main as command

    if quiet:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    command()


if __name__ == "__main__":
    main()
