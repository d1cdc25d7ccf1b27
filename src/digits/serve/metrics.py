"""Prometheus metrics of the server: requests by route, method and code, latency, batch sizes, errors, workers.

One `Metrics` per app. With `PROMETHEUS_MULTIPROC_DIR` set (several worker processes), each worker writes
its counts there and `/metrics` adds them up. Routes outside `ROUTES` and methods outside `METHODS` count
as "other", so a client cannot grow the label set (the parser takes 34 methods: each on each route had
doubled the page). A scrape's page is made at most once per `SCRAPE_EVERY` seconds per worker and shared
(made afresh for each of 32 clients at once, it took /health's p99 to 0.17-0.34 s); Prometheus scrapes
every 15 s or more.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

from fastapi.responses import Response

from digits.serve.v2 import MODEL, VERSION

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

# The routes the metrics name; anything else is counted as "other".
ROUTES = (
    "/predict",
    "/read",
    "/health",
    "/metrics",
    "/",
    "/model.onnx",
    f"/v2/models/{MODEL}/infer",
    "/v2/health/live",
    "/v2/health/ready",
    f"/v2/models/{MODEL}",
    f"/v2/models/{MODEL}/ready",
    # The same three with the one version served (serving.md: they "also answer"); another version is a 404, "other".
    f"/v2/models/{MODEL}/versions/{VERSION}",
    f"/v2/models/{MODEL}/versions/{VERSION}/ready",
    f"/v2/models/{MODEL}/versions/{VERSION}/infer",
    "/v2",
)
METHODS = ("GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE")
SCRAPE_EVERY = 1.0  # seconds


class Metrics:
    """Prometheus metrics of one app; across worker processes when PROMETHEUS_MULTIPROC_DIR is set."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "digits_http_requests",
            "HTTP requests answered, by route, method and status code.",
            ["route", "method", "code"],
            registry=self.registry,
        )
        self.errors = Counter(
            "digits_http_errors", "Answers with a 4xx or 5xx status, by code.", ["code"], registry=self.registry
        )
        self.latency = Histogram(
            "digits_http_request_seconds",
            "Time from the request's headers to its answer.",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_size = Histogram(
            "digits_batch_size",
            "Images per model call (micro-batching).",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        worker = Counter(
            "digits_worker_requests",
            "HTTP requests answered, by worker process id.",
            ["worker"],
            registry=self.registry,
        )
        self.mine = worker.labels(str(os.getpid()))  # the app is made in the worker process
        self._series: dict[tuple[str, str, int], tuple[tuple[Counter, ...], Histogram]] = {}
        self._page: tuple[float, bytes] | None = None  # when the last scrape's page was made, and it
        self._making = threading.Lock()  # scrapes run on FastAPI's thread pool: one makes the page, the rest wait

    def observe(self, path: str, method: str, code: int, seconds: float) -> None:
        counters, latency = self._series_of(path, method, code)
        for counter in counters:
            counter.inc()
        latency.observe(seconds)

    def _series_of(self, path: str, method: str, code: int) -> tuple[tuple[Counter, ...], Histogram]:
        """The series one answer adds to, found once per (route, method, code): `labels` is a third of
        `observe`'s cost, on every request. The label set is bounded (`ROUTES`, `METHODS`, HTTP codes),
        and so is this cache."""
        route = path if path in ROUTES else "other"
        key = (route, method if method in METHODS else "other", code)
        if (series := self._series.get(key)) is None:
            counters: tuple[Counter, ...] = (self.requests.labels(route, key[1], str(code)), self.mine)
            if code >= 400:
                counters += (self.errors.labels(str(code)),)
            series = self._series[key] = (counters, self.latency.labels(route))
        return series

    def exposition(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

        with self._making:
            if self._page is None or time.monotonic() - self._page[0] >= SCRAPE_EVERY:
                registry = self.registry
                if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                    registry = CollectorRegistry()
                    # prometheus_client leaves MultiProcessCollector.__init__ unannotated.
                    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
                self._page = (time.monotonic(), generate_latest(registry))
            page = self._page[1]
        return Response(page, media_type=CONTENT_TYPE_LATEST)
