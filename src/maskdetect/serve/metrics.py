"""Prometheus metrics at ``/metrics``: requests, latency, faces by class and errors by kind.

Every label value is the server's own, never a client's: the route is the template of the app's route
that answered (``/static/{name}``, not the path asked for) or ``other``; the status is the one the
server sent; a class is one of the model's; an error kind is one of `ERROR_KINDS`. So the answer of
``/metrics`` stays a few kilobytes whatever paths, methods, file names or fields clients send.

With several worker processes (``maskdetect serve --workers N``) each worker writes its values to
files in the folder named by ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode;
``serve`` makes that folder and removes it at exit), and ``/metrics`` sums the files of every
worker, whichever worker answers the scrape.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds: from a cached /healthz (a millisecond) to a 50 MP photo on a busy machine (tens of seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OTHER = "other"
# The kind of every error answer; the error handlers (serve/errors.py) name the finer ones, the
# status names the rest.
STATUS_KINDS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "body_timeout",
    413: "too_large",
    415: "unsupported_type",
    422: "bad_input",
    499: "client_gone",
    500: "internal",
    503: "busy",
}
HANDLER_KINDS = ("body_too_large", "bad_upload", "image_too_large", "bad_image", "pixel_budget")
ERROR_KINDS = tuple(dict.fromkeys((*STATUS_KINDS.values(), *HANDLER_KINDS, "client_error", "server_error")))
ERROR_KIND_KEY = "maskdetect_error_kind"  # where an error handler leaves its kind in the request's state


class ServiceMetrics:
    """The service's metrics, in a registry of their own (so that several apps in one process, as in
    the tests, never collide), and their text for a scrape.

    >>> metrics = ServiceMetrics()
    >>> metrics.observe("/healthz", 200, 0.002)
    >>> b'maskdetect_http_requests_total{route="/healthz",status="200"} 1.0' in metrics.exposition()
    True
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Read once: the values of this process go to files only when the variable was set before
        # prometheus_client was imported (as in `serve --workers`, which sets it for its workers).
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.requests = Counter(
            "maskdetect_http_requests", "HTTP requests answered, by route template and status",
            ["route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "maskdetect_http_request_duration_seconds",
            "Seconds from a request's start to the end of its answer",
            ["route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.faces = Counter("maskdetect_faces", "Faces found, by class", ["label"], registry=self.registry)
        self.errors = Counter("maskdetect_errors", "Error answers (status 400 and up), by kind", ["kind"],
                              registry=self.registry)
        self.classes: tuple[str, ...] = ()
        for kind in ERROR_KINDS:
            self.errors.labels(kind)  # every kind shows, at 0 until it happens

    def declare_classes(self, classes: Iterable[str]) -> None:
        """The model's classes: the only labels `count_faces` uses (each shows at 0 from the start)."""
        self.classes = tuple(classes)
        for label in (*self.classes, OTHER):
            self.faces.labels(label)

    def count_faces(self, counts: dict[str, int]) -> None:
        """Add one answer's faces, by class (a label outside the model's classes counts as other)."""
        for label, count in counts.items():
            if count:
                self.faces.labels(label if label in self.classes else OTHER).inc(count)

    def observe(self, route: str, status: int, seconds: float, error_kind: str | None = None) -> None:
        """Count one answered request (and its error, for status 400 and up) and time it."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if status >= 400:
            self.errors.labels(error_kind_of(status, error_kind)).inc()

    def exposition(self) -> bytes:
        """The text a Prometheus scrape reads: this process's values, or every worker's summed."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry)


def error_kind_of(status: int, named: str | None = None) -> str:
    """The kind an error answer counts as: the handler's own name if it is a known kind, else by status.

    >>> error_kind_of(413), error_kind_of(413, "image_too_large"), error_kind_of(418), error_kind_of(502)
    ('too_large', 'image_too_large', 'client_error', 'server_error')
    """
    if named in ERROR_KINDS:
        return named
    return STATUS_KINDS.get(status, "server_error" if status >= 500 else "client_error")


class MetricsMiddleware:
    """Times and counts every HTTP request by the template of the route that answered it.

    A pure ASGI middleware placed inside the error handler of last resort: a request that raised
    (answered 500 outside it) counts as 500. The route is read after the app has run, when the
    router has put the matched route in the scope; a path no route matched counts as ``other``.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or OTHER
            kind = scope.get("state", {}).get(ERROR_KIND_KEY)
            self.metrics.observe(route, status, time.perf_counter() - start, kind)


def add_metrics(app: FastAPI) -> ServiceMetrics:
    """Count and time every request of `app` and answer ``GET /metrics``; returns the metrics.

    ``/metrics`` takes none of the detect route's slots (a scrape must get through a busy server);
    its cost is bounded by the fixed label sets above, not by anything a client sends.
    """
    metrics = ServiceMetrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        # Reading the workers' files is blocking file I/O: off the event loop.
        return Response(await run_in_threadpool(metrics.exposition), media_type=CONTENT_TYPE)

    return metrics
