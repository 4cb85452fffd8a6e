"""The REST API and the web page: a FastAPI app built by `create_app`, a thin wrapper over Predictor.

One predictor (one model session) serves every request of a process (`serve --workers N` runs N
processes, each with its own app, model and limits: serve/server.py; /metrics: serve/metrics.py).
Decoding runs in the shared worker threads and inference in its own small pool (one thread by
default), so the event loop keeps answering.
A request holds nothing while its body arrives (which has a deadline and a minimum rate); then it
takes an in-flight slot, room in the budget of decoded pixels, a decode slot and an inference slot,
and is dropped before decoding and before inference if its client has gone. Images over
`large_pixels` decode and run in a lane of their own (one at a time), so a burst of 50 MP uploads
cannot hold up ordinary photos behind it.
One inference thread because the runtimes already use the cores within a call and a model that stays
on one thread ran faster here than one handed between anyio's workers. (More are safe with
`Predictor`: its face detectors keep one TFLite interpreter / Haar cascade per thread.)
"""

from __future__ import annotations

import base64
import functools
import io
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from maskdetect import __version__
from maskdetect.images import DEFAULT_MAX_SCANS
from maskdetect.results import ImageResult
from maskdetect.serve.admission import (
    IMAGE_BODY,
    AdmittedPhoto,
    ClientGoneError,
    admit_photo,
    dropped,
    model_info,
    request_predictor,
)
from maskdetect.serve.budget import PixelBudget
from maskdetect.serve.errors import add_error_handlers
from maskdetect.serve.explain_route import add_explain_route
from maskdetect.serve.limits import (
    BODY_GRACE_S,
    BODY_TIMEOUT_S,
    BUDGET_WAIT_S,
    DECODED_PIXELS_BUDGET,
    LARGE_IMAGE_PIXELS,
    MIN_BODY_RATE,
    SERVE_MAX_PIXELS,
)
from maskdetect.serve.metrics import add_metrics
from maskdetect.serve.modelinfo import describe_model
from maskdetect.serve.static import SecurityHeadersMiddleware, add_static_routes
from maskdetect.serve.upload import DEFAULT_MAX_BYTES, IMAGE_FIELD, BodyDeadline

log = logging.getLogger(__name__)

JPEG_QUALITY = 85
DECODE_THREADS = 2


def create_app(
    predictor: Any = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = SERVE_MAX_PIXELS,
    cors_origins: Sequence[str] | None = None,
    inference_threads: int = 1,
    max_pending: int = 64,
    load_predictor: Callable[[], Any] | None = None,
    body_timeout: float = BODY_TIMEOUT_S,
    min_body_rate: float = MIN_BODY_RATE,
    body_grace: float = BODY_GRACE_S,
    pixel_budget: int = DECODED_PIXELS_BUDGET,
    budget_wait: float = BUDGET_WAIT_S,
    max_scans: int = DEFAULT_MAX_SCANS,
    large_pixels: int = LARGE_IMAGE_PIXELS,
) -> FastAPI:
    """Build the service.

    Args:
        predictor: a ready `maskdetect.predict.Predictor` (or anything callable the same way:
            ``predictor(image) -> list[FaceResult]`` with a ``classes`` attribute); its faces are
            answered as an `ImageResult` (`to_dict()` for the JSON, `draw()` for the picture). When
            None, one is built at startup by `load_predictor`, or `Predictor()` with the bundled
            default model.
        max_bytes: largest accepted request body.
        max_pixels: largest accepted image (width x height), checked from its header before decoding.
        cors_origins: origins allowed to call the API from other pages; CORS is off when None/empty.
        inference_threads: how many predictor calls may run at once (each on its own thread); more
            than 1 only for a predictor that is thread-safe.
        max_pending: detect requests in progress at once (counted once the body is in); more get
            503 with Retry-After, so a burst cannot pile up work without bound.
        load_predictor: builds the predictor at startup when `predictor` is None.
        body_timeout: seconds a request body may take in all; slower ones get 408.
        min_body_rate: bytes/s a body must keep up after `body_grace` seconds; slower ones get 408.
        body_grace: seconds before the minimum rate applies.
        pixel_budget: decoded pixels held at once between decoding and the model's answer; an image
            that does not fit waits up to `budget_wait` seconds, then gets 503 with Retry-After.
        budget_wait: seconds a request waits for room in the pixel budget.
        max_scans: refuse JPEGs with more scans than this before decoding (422): scan bombs.
        large_pixels: images with more pixels than this decode and run in their own lane, one at
            a time, beside the lane of ordinary photos.

    Returns:
        The FastAPI application (serve it with uvicorn).

    >>> app = create_app(lambda image: [], max_bytes=1024)
    >>> app.state.max_bytes
    1024
    """
    if max_bytes <= 0 or max_pixels <= 0:
        raise ValueError(f"max_bytes and max_pixels must be positive, got {max_bytes} and {max_pixels}")
    if inference_threads < 1 or max_pending < 1 or max_scans < 1:
        raise ValueError(
            f"inference_threads, max_pending and max_scans must be at least 1, got {inference_threads}, "
            f"{max_pending} and {max_scans}"
        )
    body_deadline = BodyDeadline(body_timeout, min_body_rate, body_grace)  # checks its own values
    budget = PixelBudget(pixel_budget, budget_wait)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.predictor is None:
            app.state.predictor = await run_in_threadpool(load_predictor or _default_predictor)
        app.state.model_info = await run_in_threadpool(describe_model, app.state.predictor)
        app.state.metrics.declare_classes(_classes(app.state.predictor))
        log.info("serving model %s", app.state.model_info["name"])
        for lane in app.state.lanes.values():
            lane.start()
        try:
            yield
        finally:
            for lane in app.state.lanes.values():
                lane.pool.shutdown(wait=False, cancel_futures=True)

    # /docs and /redoc load Swagger UI / ReDoc from a CDN (blank offline, and outside the page's
    # Content-Security-Policy): off. /openapi.json still describes the API for any client.
    app = FastAPI(
        docs_url=None,
        redoc_url=None,
        title="maskdetect",
        version=__version__,
        description="Finds the faces in a photo and says whether each mask is covered, incorrect or "
        "uncovered.",
        lifespan=lifespan,
    )
    app.state.predictor = predictor
    app.state.model_info = None
    app.state.max_bytes = max_bytes
    app.state.max_pixels = max_pixels
    app.state.max_pending = max_pending
    app.state.max_scans = max_scans
    app.state.body_deadline = body_deadline
    app.state.pixel_budget = budget
    app.state.pending = 0  # touched only on the event loop thread: no lock needed
    app.state.abandoned = 0  # requests dropped because their client had gone
    app.state.large_pixels = large_pixels
    app.state.lanes = {"ordinary": _Lane(DECODE_THREADS, inference_threads), "large": _Lane(1, 1)}
    app.state.metrics = add_metrics(app)  # innermost middleware: it sees the status each route sent
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(SecurityHeadersMiddleware)  # added last: outermost, so on CORS answers too
    add_error_handlers(app)
    _add_api_routes(app)
    add_explain_route(app)  # POST /v1/explain, the page's "Why?"
    from maskdetect.serve.web_model import add_web_model_routes

    add_web_model_routes(app)  # GET /v1/web-model: the page's private mode
    add_static_routes(app)
    return app


@dataclass
class _Lane:
    """Slots for decoding and inference, taken on the event loop (so a request whose client left
    while it waited is dropped there), and the inference threads behind them."""

    decode_threads: int
    inference_threads: int
    decode_limiter: anyio.CapacityLimiter = field(init=False)
    inference_limiter: anyio.CapacityLimiter = field(init=False)
    pool: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        # A few decodes at a time: each may hold up to max_pixels x 3 bytes while it runs.
        self.decode_limiter = anyio.CapacityLimiter(self.decode_threads)
        self.inference_limiter = anyio.CapacityLimiter(self.inference_threads)
        self.start()

    def start(self) -> None:
        """A fresh inference pool (at each startup; threads start on first use, so this is cheap)."""
        self.pool = ThreadPoolExecutor(self.inference_threads, thread_name_prefix="maskdetect-infer")


def _default_predictor() -> Any:
    from maskdetect.predict import Predictor  # imported late: it loads torch and the runtimes

    return Predictor()


def _add_api_routes(app: FastAPI) -> None:
    @app.get("/healthz", summary="Liveness: answers as soon as the model is loaded")
    async def healthz(request: Request) -> dict[str, Any]:
        request_predictor(request)
        return {"status": "ok", "model": model_info(request)["name"]}

    @app.get("/v1/model", summary="The model: classes, input size, architecture, metrics")
    async def model(request: Request) -> dict[str, Any]:
        info = dict(model_info(request))
        info["limits"] = {"max_bytes": app.state.max_bytes, "max_pixels": app.state.max_pixels}
        return info

    @app.post(
        "/v1/detect",
        summary="Find the faces in an image and classify each mask",
        description=(
            f"Send the image as multipart/form-data (field `{IMAGE_FIELD}`) or as the raw body with "
            "Content-Type image/*. `annotate=true` adds the image with boxes drawn, as base64 JPEG; "
            "`format=jpeg` answers with that image instead of JSON (face counts in X-Face-Counts)."
        ),
        openapi_extra={"requestBody": IMAGE_BODY},
    )
    async def detect(
        request: Request,
        annotate: bool = Query(False, description="add the annotated image (base64 JPEG) to the JSON"),
        format: Literal["json", "jpeg"] = Query("json", description="jpeg: answer with the annotated image"),
    ) -> Response:
        predictor = request_predictor(request)
        try:
            async with admit_photo(request) as photo:
                faces = await photo.run(request, functools.partial(predictor, photo.image))
                return await _answer(request, predictor, photo, faces, annotate, format)
        except ClientGoneError:
            return dropped(request)


async def _answer(
    request: Request, predictor: Any, photo: AdmittedPhoto, faces: Any, annotate: bool, format: str
) -> Response:
    app, timer = request.app, photo.timer
    result = ImageResult(list(faces), photo.image.width, photo.image.height, image=photo.image)
    timer.mark("predict")
    counts = {name: 0 for name in _classes(predictor)}
    for face in result:
        counts[face.label] = counts.get(face.label, 0) + 1
    app.state.metrics.count_faces(counts)
    if format == "jpeg":
        jpeg = await run_in_threadpool(_annotated_jpeg, result)
        counts_header = ",".join(f"{k}={v}" for k, v in counts.items())
        timer.mark("draw")
        headers = {"X-Face-Counts": counts_header, "Server-Timing": timer.header()}
        return Response(jpeg, media_type="image/jpeg", headers=headers)
    record = result.to_dict()
    body: dict[str, Any] = {
        "faces": record["faces"],
        "counts": counts,
        "width": record["width"],
        "height": record["height"],
        "model": model_info(request)["name"],
    }
    if annotate:
        jpeg = await run_in_threadpool(_annotated_jpeg, result)
        body["annotated_image"] = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
        timer.mark("draw")
    return JSONResponse(body, headers={"Server-Timing": timer.header()})


def _classes(predictor: Any) -> Sequence[str]:
    from maskdetect.labels import CLASSES

    return tuple(getattr(predictor, "classes", None) or CLASSES)


def _annotated_jpeg(result: ImageResult) -> bytes:
    buffer = io.BytesIO()
    result.draw().save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
