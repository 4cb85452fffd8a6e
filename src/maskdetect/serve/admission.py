"""The one way in for a request that sends a photo (/v1/detect, /v1/explain): its body, an in-flight
slot, room in the decoded-pixel budget, a decode slot, then an inference slot for its work, each
taken on the event loop so that a request whose client has gone is dropped before the costly steps.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from fastapi import Request
from fastapi.responses import Response
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException

from maskdetect.images import image_size, open_image
from maskdetect.serve.modelinfo import describe_model
from maskdetect.serve.upload import IMAGE_FIELD, read_upload

log = logging.getLogger(__name__)

T = TypeVar("T")

# The OpenAPI request body of a route that takes a photo (read by `read_upload`).
IMAGE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {IMAGE_FIELD: {"type": "string", "format": "binary"}},
                "required": [IMAGE_FIELD],
            }
        },
        "image/*": {"schema": {"type": "string", "format": "binary"}},
    },
}


class ClientGoneError(Exception):
    """The client closed its connection while its request waited: the work is dropped."""


async def check_client(request: Request) -> None:
    if await request.is_disconnected():
        raise ClientGoneError


def dropped(request: Request) -> Response:
    """The answer to a request whose client has gone (nobody reads it; nginx's code for that)."""
    request.app.state.abandoned += 1
    log.info("dropped a %s request: its client has gone", request.url.path)
    return Response(status_code=499)


def request_predictor(request: Request) -> Any:
    """The app's predictor, or 503 while it loads."""
    predictor = request.app.state.predictor
    if predictor is None:
        raise StarletteHTTPException(503, "the model is still loading; try again in a moment")
    return predictor


def model_info(request: Request) -> dict[str, Any]:
    """The model's description (`describe_model`), built once."""
    # Built at startup; an app used without its lifespan (a bare TestClient) builds it on first use.
    state = request.app.state
    if state.model_info is None:
        state.model_info = describe_model(request_predictor(request))
    return state.model_info


class StageTimer:
    """Milliseconds per stage of a request, for the Server-Timing header (browser dev tools show it)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.stages: list[tuple[str, float]] = []

    def mark(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages.append((stage, (now - self.last) * 1000))
        self.last = now

    def header(self) -> str:
        return ", ".join(f"{name};dur={ms:.1f}" for name, ms in self.stages)


@dataclass
class AdmittedPhoto:
    """A decoded photo that holds its in-flight slot and pixel budget while the request runs."""

    image: Image.Image
    name: str
    lane: Any  # app._Lane: the decode/inference slots and threads of its size class
    timer: StageTimer

    async def run(self, request: Request, work: Callable[[], T]) -> T:
        """Run `work` on the lane's inference threads once a slot is free, unless the client has gone."""
        async with self.lane.inference_limiter:
            await check_client(request)
            return await asyncio.get_running_loop().run_in_executor(self.lane.pool, work)


@asynccontextmanager
async def admit_photo(request: Request) -> AsyncIterator[AdmittedPhoto]:
    """Read and decode the photo a request sends, within the app's limits.

    The slot is taken once the body is in: a slow sender holds a connection, never a slot.

    Raises:
        StarletteHTTPException: 503 when every slot is taken; the upload's and the image's own
            errors (400, 413, 415, 422) as `read_upload` and `open_image` raise them.
        ClientGoneError: the client left while the request waited (answer with `dropped`).
    """
    state = request.app.state
    timer = StageTimer()
    upload = await read_upload(request, state.max_bytes, state.body_deadline)
    timer.mark("read")
    if state.pending >= state.max_pending:
        busy = f"busy: {state.pending} requests in progress; retry shortly"
        raise StarletteHTTPException(503, busy, headers={"Retry-After": "1"})
    state.pending += 1  # touched only on the event loop thread: no lock needed
    try:
        name = upload.filename or "upload"
        width, height = await anyio.to_thread.run_sync(functools.partial(image_size, upload.data, name=name))
        pixels = width * height
        if pixels > state.max_pixels:
            pixels = 0  # refused by open_image before decoding: nothing to budget for
        lane = state.lanes["large" if pixels > state.large_pixels else "ordinary"]
        async with state.pixel_budget.hold(pixels):
            decode = functools.partial(open_image, upload.data, max_pixels=state.max_pixels, name=name,
                                       max_scans=state.max_scans)
            async with lane.decode_limiter:
                await check_client(request)
                image = await anyio.to_thread.run_sync(decode)
            timer.mark("decode")
            yield AdmittedPhoto(image, name, lane, timer)
    finally:
        state.pending -= 1
