"""The log of `digits serve`, bounded: an attacker cannot fill the disk through it.

Contract (`LOGGING`, uvicorn's `log_config` in every worker): records go to
stderr, one line each (an exception as its type, message and the line that
raised it, not its traceback), at most
`LOG_BURST` lines per `LOG_WINDOW` seconds per worker, then a count of what
was dropped. Python warnings are records too (`digits.serve.server` turns
`logging.captureWarnings` on in each worker), under the same limit. There is
no access log, and python-multipart's warning per malformed form is left
out (the client's 400 says it).
"""

from __future__ import annotations

import logging
import time
import traceback

LOG_BURST = 20
LOG_WINDOW = 10.0


class OneLineLogs(logging.Filter):
    """At most `LOG_BURST` records per `LOG_WINDOW` seconds, each on one line; then a count of those dropped."""

    def __init__(self) -> None:
        super().__init__()
        self._window_start = -float("inf")  # the first record opens the first window
        self._in_window = 0
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._window_start >= LOG_WINDOW:
            self._window_start, self._in_window = now, 0
        self._in_window += 1
        if self._in_window > LOG_BURST:
            self._dropped += 1
            return False
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            # The frame that raised it: a traceback's many lines would each be a line of the log.
            frames = traceback.extract_tb(error.__traceback__)
            where = f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
            message = f"{message} ({type(error).__name__}: {error}{where})"
        if self._dropped:
            message = f"{message} [{self._dropped} earlier log lines dropped]"
            self._dropped = 0
        record.msg, record.args = " ".join(message.split()), None
        record.exc_info = record.exc_text = record.stack_info = None
        return True


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"one_line": {"()": OneLineLogs}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "plain",
            "filters": ["one_line"],
        },
    },
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        "asyncio": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "python_multipart": {"level": "ERROR"},
        "digits": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
