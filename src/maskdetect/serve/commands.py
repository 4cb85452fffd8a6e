"""`maskdetect serve`: the REST API and web page on uvicorn, one process, one shared model."""

from __future__ import annotations

import argparse
import logging

from maskdetect.faces.detector import DETECTORS
from maskdetect.runtime import BACKENDS
from maskdetect.serve.limits import DEFAULT_MAX_BYTES, SERVE_MAX_PIXELS

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"  # reachable from this machine only, unless asked otherwise
DEFAULT_PORT = 8000


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the REST API (POST /v1/detect) and the web page at /",
        description="Serve the REST API and the web page. The model loads once, before the port opens.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--checkpoint", help="model checkpoint (default: the bundled model)")
    parser.add_argument("--detector", default="blazeface", choices=DETECTORS, help="face detector")
    parser.add_argument("--backend", default="onnx", choices=BACKENDS, help="classifier runtime")
    parser.add_argument("--detection-threshold", type=float,
                        help="face score threshold (the face verifier's when the checkpoint has one)")
    parser.add_argument("--no-verifier", dest="verify", action="store_false",
                        help="let the detector's scores alone decide what is a face (no face verifier)")
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
    import uvicorn

    from maskdetect.predict import Predictor
    from maskdetect.serve.app import create_app

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, got {args.port}")
    # Load before listening: a bad checkpoint is one clear error, not a server that answers 503.
    predictor = Predictor(
        args.checkpoint, detector=args.detector, backend=args.backend,
        detection_threshold=args.detection_threshold, verify=args.verify,
    )
    app = create_app(
        predictor, max_bytes=args.max_bytes, max_pixels=args.max_pixels, cors_origins=args.cors_origin or None
    )
    print(f"maskdetect: serving on http://{args.host}:{args.port}/ (Ctrl+C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level="info", access_log=False)
    return 0
