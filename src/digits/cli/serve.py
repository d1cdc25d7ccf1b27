"""The serve command: the HTTP API, the Open Inference Protocol and the drawing page, on uvicorn workers."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from digits.cli.options import ModelOpt, require
from digits.cli.terminal import echo


def serve(
    model: ModelOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default and most: one per CPU core).")
    ] = None,
) -> None:
    """Serve the HTTP API, the Open Inference Protocol and a page to draw digits on (needs the `serve` extra)."""
    require("serve", "serve")
    import tempfile

    from digits.read.model import Recognizer
    from digits.serve import server as http_server
    from digits.serve.app import MODEL_VARIABLE
    from digits.serve.listener import bind

    # Load the model once here: a bad one is a one-line error before anything listens.
    path = Recognizer(model).path
    from digits.config import usable_cores

    # Each worker holds a model and decodes on a core of its own: more would only take turns, and
    # `--workers 100000000` would start processes until memory ran out.
    cores = usable_cores()
    workers = min(workers or cores, cores)
    listener = bind(host, port)
    os.environ[MODEL_VARIABLE] = str(path)
    echo(f"digits: serving {path} on http://{host}:{port} with {workers} worker{'s' * (workers > 1)}")
    if workers == 1:  # counts stay in the process; uvicorn ends it by re-raising SIGTERM, past any cleanup
        http_server.run("digits.serve.app:app_from_environment", listener, workers)
        return
    with tempfile.TemporaryDirectory(prefix="digits-metrics-") as metrics:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics  # each worker writes its counts here; /metrics adds them up
        http_server.run("digits.serve.app:app_from_environment", listener, workers)
