"""What the CLI prints stays on its line, and the standard streams it prints to exist.

File and folder names come from outside. `shown(name)` returns a name
unchanged when every character in it prints as itself, and otherwise its
Python literal, quoted, with each control, format or undecodable character
escaped (`'a\\nb.png'`, `'x\\x1b[2J.png'`): a name can neither end the line
(and forge the result line after it) nor send the terminal an escape.
`one_line(message)` escapes the same characters inside an error message,
which quotes names as they are. `percent(confidence)` writes a probability
without rounding it up to certainty. `echo` (escaping any control character but a line
break), `error` and `fail` print a result line,
an error line, and an error that ends the command with exit code 2; `waiting`
shows what a long silent step is doing, on a terminal only.

`ensure_standard_streams()` gives a closed stdin, stdout or stderr
(`digits read x.png >&-`) /dev/null instead: Python leaves `sys.stdout`
None then, so the first print fails with a traceback, and the next file the
command opens would take the free descriptor and receive its output.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import unicodedata
from collections.abc import Iterator

import typer

# Control (newline, ESC...), format (bidirectional overrides), lone surrogates
# (undecodable bytes in a file name), line and paragraph separators.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def shown(name: str | os.PathLike[str]) -> str:
    """`name` as it is when it prints safely on one line, else as a quoted literal with escapes."""
    name = os.fspath(name)
    return repr(name) if any(_unsafe(char) for char in name) else name


def one_line(message: str) -> str:
    """`message` with every character that `shown` would escape written as its escape."""
    return "".join(repr(char)[1:-1] if _unsafe(char) else char for char in message)


def percent(confidence: float) -> str:
    """A probability to one decimal, shown as 100.0 % only when it is 1: 0.9995 (unsure under 0.9999) is 99.9 %."""
    return f"{min(confidence, 0.999):.1%}" if confidence < 1 else f"{confidence:.1%}"


def ensure_standard_streams() -> None:
    """Open /dev/null on any of descriptors 0, 1, 2 that is closed, and give `sys` a stream for each; stdout
    writes what its encoding cannot hold as backslash escapes (as stderr does), never a UnicodeEncodeError."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one, as the lower are open
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 (the stream lives as long as sys does)
    if isinstance(sys.stdout, io.TextIOWrapper):  # PYTHONIOENCODING=ascii, and a name that is not
        sys.stdout.reconfigure(errors="backslashreplace")


def echo(text: str = "", styled: bool = False) -> None:
    """A line of the command's result on stdout, flushed (a pipe sees it at once).

    Names in it should come through `shown`; as a last guard, any control character but the line breaks a
    multi-line result holds is written as its escape, so no name reaches the terminal as an escape sequence.
    `styled`: the text holds the terminal's own styling (a rich table, its cells already `shown`), kept."""
    if not styled and not text.isprintable():
        text = "\n".join(one_line(line) for line in text.split("\n"))
    try:
        print(text, flush=True)
    except BrokenPipeError:
        raise  # the reader went away (`| head`): the CLI's exit code 1, as Click's, without a line
    except OSError as err:  # /dev/full, a disk that filled: the line says where the result could not go
        raise OSError(err.errno, err.strerror, "standard output") from None


@contextlib.contextmanager
def waiting(what: str) -> Iterator[None]:
    """A spinner with `what` on stderr while the block runs, when stderr is a terminal (like the progress bars)."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(what):
        yield


def error(message: str) -> None:
    """`error: <message>` on stderr, on one line; nothing when stderr cannot be written (full, or closed
    under us): the exit code still tells."""
    with contextlib.suppress(OSError):
        print(f"error: {one_line(message)}", file=sys.stderr, flush=True)


def fail(message: str) -> typer.Exit:
    """Report `message` and return the exit (code 2) for the caller to raise."""
    error(message)
    return typer.Exit(2)
