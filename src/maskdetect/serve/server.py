"""Run the service: `serve(ServeOptions)`, in one process or in several worker processes.

One worker: the model loads in this process, then uvicorn serves the app built around it.
Several (``workers=N``): uvicorn's supervisor binds the port once and starts N worker processes that
share it (the kernel hands each new connection to one of them); each worker builds its own app and
loads its own model through `app_from_env`, the factory uvicorn calls, which reads the options from
the environment variable `OPTIONS_ENV`. Nothing is shared between workers: each has its own in-flight
slots, decoded-pixel budget and decode/inference lanes, so N workers admit N times the work (and
need N times the memory) of one. `/metrics` sums every worker's counts through prometheus_client's
multiprocess mode, in a temporary folder made here and removed when the server stops.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from maskdetect.options import ModelOptions
from maskdetect.serve.limits import DEFAULT_MAX_BYTES, SERVE_MAX_PIXELS

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"  # reachable from this machine only, unless asked otherwise
DEFAULT_PORT = 8000
OPTIONS_ENV = "MASKDETECT_SERVE_OPTIONS"
FACTORY = "maskdetect.serve.server:app_from_env"
# Seconds a worker may take to answer the supervisor's ping; uvicorn's 5 s default is short for a
# worker that is loading torch and its model on a busy machine (it would be killed and restarted).
WORKER_HEALTHCHECK_S = 60


@dataclass(frozen=True)
class ServeOptions:
    """What `serve` runs: where it listens, how many workers, which model, which limits.

    >>> ServeOptions(workers=0)
    Traceback (most recent call last):
    ...
    ValueError: workers must be at least 1, got 0
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = 1
    model: ModelOptions = field(default_factory=ModelOptions)
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = SERVE_MAX_PIXELS
    cors_origins: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")
        if self.workers > 1 and self.port == 0:
            raise ValueError("several workers need a fixed port (port 0 picks a free one per process)")
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        if isinstance(self.model, dict):  # read back from JSON
            object.__setattr__(self, "model", ModelOptions.from_dict(self.model))

    def to_json(self) -> str:
        """The options as JSON, as the workers read them back with `from_json`."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        """Options written by `to_json`; unknown keys are an error (a worker of another version)."""
        values = json.loads(text)
        known = {f.name for f in fields(cls)}
        if not isinstance(values, dict) or not set(values) <= known:
            raise ValueError(f"{OPTIONS_ENV}: expected a JSON object with keys among {sorted(known)}")
        return cls(**values)


def load_predictor(options: ServeOptions) -> Any:
    """The `Predictor` the options ask for (raises the loader's clear error for a bad model)."""
    from maskdetect.predict import Predictor  # late: loads torch and the runtimes

    return Predictor.from_options(options.model)


def build_app(options: ServeOptions, predictor: Any = None) -> Any:
    """The FastAPI app for `options`, around `predictor` (loaded here when None)."""
    from maskdetect.serve.app import create_app

    return create_app(predictor if predictor is not None else load_predictor(options),
                      max_bytes=options.max_bytes, max_pixels=options.max_pixels,
                      cors_origins=list(options.cors_origins) or None)


def app_from_env() -> Any:
    """The app of one worker process: options from `OPTIONS_ENV`, and a model of its own.

    uvicorn calls it in each worker (``uvicorn.run(FACTORY, factory=True, workers=N)``); `serve`
    sets the variable. By hand: ``MASKDETECT_SERVE_OPTIONS='{"detector": "blazeface-fast"}' uvicorn
    --factory maskdetect.serve.server:app_from_env --workers 2`` (then set PROMETHEUS_MULTIPROC_DIR
    to an empty folder too, or each scrape of /metrics shows one worker's counts only).
    """
    text = os.environ.get(OPTIONS_ENV)
    if not text:
        raise RuntimeError(f"{OPTIONS_ENV} is not set: app_from_env builds the workers of "
                           "`maskdetect serve --workers N`, which sets it")
    return build_app(ServeOptions.from_json(text))


def serve(options: ServeOptions) -> None:
    """Serve until stopped (Ctrl+C or SIGTERM), with `options.workers` worker processes.

    The model loads before the port opens: a bad checkpoint is one clear error. With several workers
    it loads first in a short-lived process of its own, so that a bad checkpoint is still one error
    (not workers failing one by one), the ONNX export the workers share is written once (not raced
    by each of them), and this supervising process stays small (no torch in it).
    """
    import uvicorn

    from maskdetect.serve.connection import uvicorn_settings
    from maskdetect.serve.metrics import MULTIPROC_ENV

    where = f"http://{options.host}:{options.port}/"
    if options.workers == 1:
        app = build_app(options, load_predictor(options))
        print(f"maskdetect: serving on {where} (Ctrl+C stops)", flush=True)
        uvicorn.run(app, host=options.host, port=options.port, workers=1, log_level="info", access_log=False,
                    **uvicorn_settings())
        return
    check_model_in_a_process(options)
    with tempfile.TemporaryDirectory(prefix="maskdetect-metrics-") as metrics_dir:
        environment = {OPTIONS_ENV: options.to_json(), MULTIPROC_ENV: metrics_dir}
        with _environment(environment):
            print(f"maskdetect: serving on {where} with {options.workers} workers (Ctrl+C stops)", flush=True)
            uvicorn.run(FACTORY, factory=True, host=options.host, port=options.port, workers=options.workers,
                        log_level="info", access_log=False, timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
                        **uvicorn_settings())


def check_model_in_a_process(options: ServeOptions) -> None:
    """Load the model the options ask for in a spawned process and drop it; raises its error if any."""
    context = multiprocessing.get_context("spawn")  # as uvicorn starts its workers: nothing inherited
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        pool.submit(_load_and_drop, options).result()


def _load_and_drop(options: ServeOptions) -> None:
    load_predictor(options)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    # Set for the worker processes (they inherit this process's environment), then restored.
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
