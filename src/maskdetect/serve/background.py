"""Run the service on a free local port in a background thread: for tests, benchmarks and demos."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from maskdetect.serve.connection import ConnectionLimits, uvicorn_settings


class BackgroundServer:
    """A uvicorn server for an app, in a daemon thread, as a context manager; each connection within
    `limits` (the defaults of `serve` when None).

    >>> from fastapi import FastAPI
    >>> with BackgroundServer(FastAPI()) as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, start_timeout: float = 60.0,
                 limits: ConnectionLimits | None = None) -> None:
        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                                     **uvicorn_settings(limits))
        self.server = uvicorn.Server(self.config)
        self.start_timeout = start_timeout
        self.thread = threading.Thread(target=self.server.run, name="maskdetect-serve", daemon=True)
        self.url = ""

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"server on {self.config.host}:{self.config.port} stopped while starting")
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"server did not start within {self.start_timeout:.0f} s")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{self.config.host}:{port}"
        return self

    def close(self) -> None:
        """Ask the server to finish and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
