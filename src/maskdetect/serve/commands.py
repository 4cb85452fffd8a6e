"""`maskdetect serve`: the REST API and web page on uvicorn, in one process or several workers."""

from __future__ import annotations

import argparse
import logging
import os

from maskdetect.detect.commands import add_model_options, model_options
from maskdetect.serve.limits import DEFAULT_MAX_BYTES, SERVE_MAX_PIXELS
from maskdetect.serve.server import DEFAULT_HOST, DEFAULT_PORT, ServeOptions, serve

log = logging.getLogger(__name__)

# Defaults an environment can set (a container image does): the port and the number of workers.
PORT_ENV = "MASKDETECT_PORT"
WORKERS_ENV = "MASKDETECT_WORKERS"


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the REST API (POST /v1/detect) and the web page at /",
        description="Serve the REST API and the web page. The model loads once, before the port opens.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help=f"port (default ${PORT_ENV} or {DEFAULT_PORT})")
    parser.add_argument(
        "--workers", type=int,
        help=f"worker processes, each with its own model and its own limits (default ${WORKERS_ENV} or 1)",
    )
    add_model_options(parser)
    parser.add_argument(
        "--cors-origin", action="append", default=[], metavar="URL",
        help="allow pages from this origin to call the API (repeatable; CORS is off without it)",
    )
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help=f"largest upload in bytes (default {DEFAULT_MAX_BYTES:,})")
    parser.add_argument("--max-pixels", type=int, default=SERVE_MAX_PIXELS,
                        help=f"largest image in pixels (default {SERVE_MAX_PIXELS:,})")
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    options = ServeOptions(
        host=args.host,
        port=_setting(args.port, "--port", PORT_ENV, DEFAULT_PORT, 0, 65535),
        workers=_setting(args.workers, "--workers", WORKERS_ENV, 1, 1),
        model=model_options(args),
        max_bytes=args.max_bytes, max_pixels=args.max_pixels, cors_origins=tuple(args.cors_origin),
    )
    serve(options)
    return 0


def _setting(
    value: int | None, option: str, variable: str, default: int, low: int, high: int | None = None
) -> int:
    """The option's value if given, else the environment variable's, else `default`; in bounds."""
    source = option
    if value is None:
        text = os.environ.get(variable, "").strip()
        if not text:
            return default
        source = f"${variable}"
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{source} must be a whole number, got {text!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{source} must be {bounds}, got {value}")
    return value
