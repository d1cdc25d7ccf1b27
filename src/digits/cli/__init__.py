"""The `digits` command: a thin shell over the library.

Heavy modules (TensorFlow, matplotlib, SciPy) are imported inside the commands
that need them, so `digits predict` starts in a fraction of a second.
Every known fault ends in one line on stderr and exit code 2.

The commands live by audience: `cli.read` (predict, read), `cli.train` (train, evaluate,
ensemble, export, show, runs, compare), `cli.tune` (tune) and `cli.serve` (serve); `main()` here turns errors
into exit codes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import warnings
from types import FrameType
from typing import Annotated

import typer

from digits import __version__
from digits.cli import read, serve, train, tune
from digits.cli.terminal import ensure_standard_streams, error
from digits.errors import DigitsError, Interrupted

try:  # Typer 0.2x parses with its own copy of Click; older versions with Click itself.
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # the same classes, from Click's own module
    from click.exceptions import NoArgsIsHelpError, UsageError  # type: ignore[assignment]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    """`--version`: eager, so it answers before Click asks for a command."""
    if asked:
        print(f"digits {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print digits' version and exit.")
    ] = False,
) -> None:
    """Handwritten digit recognition: train on MNIST with Keras, predict with ONNX Runtime."""


# In the order `digits --help` lists them.
for command in (
    train.train,
    tune.tune,
    train.evaluate,
    train.ensemble,
    train.export,
    read.predict,
    read.read,
    serve.serve,
    train.show,
    train.runs,
    train.compare,
):
    app.command()(command)


def _usage_error(err: UsageError) -> str:
    """Typer's usage error as one sentence (without the box, and without pydantic's "Value error, " prefix)."""
    message = err.format_message().replace("Value error, ", "")
    return message if message.endswith((".", "?", "!")) else message + "."


def main() -> None:
    """Entry point: our errors and usage errors become one line and exit code 2, signals 130/143."""
    warnings.filterwarnings("ignore", module=r"(keras|tensorflow|tf2onnx|onnx)")
    ensure_standard_streams()
    interrupted: list[int] = []

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        interrupted.append(signum)
        raise KeyboardInterrupt

    # Only where Ctrl-C would interrupt anyway: a command started with SIGINT ignored (a background job) keeps it so.
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        signal.signal(signal.SIGINT, on_interrupt)
    try:
        code = app(standalone_mode=False)
        code = code if isinstance(code, int) else 0
    except NoArgsIsHelpError as err:
        err.show()
        code = 2
    except UsageError as err:
        error(_usage_error(err))
        code = 2
    except Interrupted as stop:
        code = stop.exit_code
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    except Exception as err:
        # Ctrl-C inside an import the command made surfaces as the library's own error, or as ours.
        code = 130 if interrupted else _failed(err)
    _exit(code)


def _failed(err: Exception) -> int:
    """The exit code of a command that raised `err`, once its line is printed: 2 for our errors and the system's."""
    if isinstance(err, DigitsError):
        error(str(err))
        return 2
    if isinstance(err, OSError):
        error(f"{err.filename or ''}: {err.strerror or err}".lstrip(": "))
        return 2
    if os.environ.get("DIGITS_DEBUG"):
        raise err
    error(f"unexpected {type(err).__name__}: {err} (set DIGITS_DEBUG=1 for the traceback)")
    return 1


def _exit(code: int) -> None:
    sys.stdout.flush()
    with contextlib.suppress(OSError):  # a full stderr cannot take the error line: the exit code still tells
        sys.stderr.flush()
    if "tensorflow" in sys.modules or code in (130, 143):
        # TensorFlow's teardown at interpreter exit takes a second or more and
        # does nothing the command needs: every file is already written,
        # synced and renamed, and every child process waited for. After an
        # interrupt, a process pool's manager thread may be waiting for ever on
        # a worker stopped in the middle of an answer, and the interpreter's exit
        # joins that thread (CPython issue 83386): it went once in ~50 signals.
        import logging

        from digits.train.tf import remove_generated_sources

        logging.shutdown()
        remove_generated_sources()
        os._exit(code)
    sys.exit(code)
