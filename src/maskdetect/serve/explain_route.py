"""POST /v1/explain: where the classifier looked on one face of an uploaded photo.

The photo comes as it does to /v1/detect (multipart field ``image`` or a raw image/* body, the same
size, rate and pixel limits, the same error answers), with the face named by ``box=x0,y0,x1,y1``
(a box /v1/detect gave: no second detection) or by ``face=N`` (its index in /v1/detect's answer: the
photo is searched again). The answer is the library's coarse-to-fine occlusion map
(`maskdetect.explain.face.explain_face`, `quick_settings`) blended on that face as a PNG data URL,
with the share of its heat on the nose and mouth. Stateless: nothing is kept between requests.

The request takes the same slots as a detection (in flight, pixel budget, decode and inference
lanes), so explanations and detections share one queue. The explainer and the face mesh are built
on the first request (a few seconds), from the predictor's own checkpoint.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from maskdetect.serve.admission import (
    IMAGE_BODY,
    ClientGoneError,
    admit_photo,
    dropped,
    model_info,
    request_predictor,
)
from maskdetect.serve.upload import IMAGE_FIELD

log = logging.getLogger(__name__)

EXPLAIN_PATH = "/v1/explain"
# A box may reach this far past the photo's edge (detectors clip theirs to it; JSON rounds them):
# further, its crop would be mostly fill, and a huge box would make a huge crop.
BOX_SLACK_PX = 2.0


class _ExplainTools:
    """The explainer and face mesh of one app, built once on an inference thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.explainer: Any = None
        self.landmarks: Any = None
        self.error: str | None = None

    def get(self, predictor: Any) -> tuple[Any, Any]:
        with self.lock:
            if self.explainer is None and self.error is None:
                self._build(predictor)
            if self.error is not None:
                raise StarletteHTTPException(501, self.error)
            return self.explainer, self.landmarks

    def _build(self, predictor: Any) -> None:
        from maskdetect.explain.face import quick_settings
        from maskdetect.explain.runner import Explainer

        checkpoint = getattr(predictor, "checkpoint_path", None)
        preprocessing = getattr(predictor, "preprocessing", None)
        if checkpoint is None or preprocessing is None:
            self.error = "explanations are not available: this server's model has no checkpoint to explain"
            return
        try:
            self.explainer = Explainer(checkpoint, quick_settings(preprocessing.input_size))
        except (ValueError, FileNotFoundError, RuntimeError) as err:  # e.g. an ONNX export, no torch weights
            self.error = f"explanations are not available for {checkpoint}: {err}"
            log.warning("%s", self.error)
            return
        try:
            from maskdetect.faces.landmarks import FaceMesh

            self.landmarks = FaceMesh().landmarks_in_box
        except (ImportError, FileNotFoundError, ValueError) as err:  # the map still answers, without a share
            log.warning("no face mesh (%s): explanations come without the nose-and-mouth share", err)


def add_explain_route(app: FastAPI) -> None:
    """Add POST /v1/explain to an app made by `maskdetect.serve.create_app`."""
    tools = _ExplainTools()

    @app.post(
        EXPLAIN_PATH,
        summary="Where the classifier looked on one face: occlusion heat map and nose-and-mouth share",
        description=(
            f"Send the photo as for /v1/detect (multipart field `{IMAGE_FIELD}`, or the raw body with "
            "Content-Type image/*; the same limits) and name one face: `box=x0,y0,x1,y1` (a box "
            "/v1/detect answered, in the photo's pixels) or `face=N` (its index in /v1/detect's `faces`, "
            "from 0; the photo is searched again). The answer: the class probabilities of that face, the "
            "coarse-to-fine occlusion map (the drop in the predicted class's probability when each part "
            "is covered) blended on the face as a PNG data URL (`overlay`), and `nose_mouth.heat_share`, "
            "the share of the map's positive heat on the nose and mouth (`area_share`: that region's "
            "share of the crop, the chance level; null with a `note` when the face mesh finds no face)."
        ),
        openapi_extra={"requestBody": IMAGE_BODY},
    )
    async def explain(
        request: Request,
        face: int | None = Query(None, ge=0, description="the face's index in /v1/detect's answer"),
        box: str | None = Query(None, description="the face's box: x0,y0,x1,y1 in the photo's pixels"),
    ) -> Response:
        predictor = request_predictor(request)
        wanted = None if box is None else parse_box(box)
        if (face is None) == (wanted is None):
            raise StarletteHTTPException(
                422, "name one face: box=x0,y0,x1,y1 (a box /v1/detect answered) or face=N (its index "
                f"in /v1/detect's answer, from 0), not {'both' if face is not None else 'neither'}")
        try:
            async with admit_photo(request) as photo:
                if wanted is not None:
                    check_box(wanted, photo.image.width, photo.image.height, photo.name)
                work = functools.partial(_explain_face, tools, predictor, photo.image, face, wanted,
                                         photo.name)
                body = await photo.run(request, work)
                photo.timer.mark("explain")
                image = photo.image
                body.update(width=image.width, height=image.height, model=model_info(request)["name"])
                return JSONResponse(body, headers={"Server-Timing": photo.timer.header()})
        except ClientGoneError:
            return dropped(request)


def _explain_face(tools: _ExplainTools, predictor: Any, image: Any, index: int | None,
                  box: tuple[float, ...] | None, name: str) -> dict[str, Any]:
    # On an inference thread: the explainer's forward passes and the predictor share its lane.
    from maskdetect.explain.face import explain_face

    explainer, landmarks = tools.get(predictor)
    detected = None
    if index is not None:
        faces = list(predictor(image))
        if index >= len(faces):
            count = len(faces)
            found = f"{count} face{'s' * (count != 1)} (0 to {count - 1})" if faces else "no faces"
            raise StarletteHTTPException(422, f"{name}: there is no face {index}: the photo has {found}")
        detected = faces[index].to_dict()
        box = tuple(faces[index].box)
    why = explain_face(explainer, image, box, landmarks)
    return {"face": index, **why.summary(), "detected": detected}


def parse_box(text: str) -> tuple[float, float, float, float]:
    """A face box from ``x0,y0,x1,y1``, or an HTTP 422 naming what is wrong with it.

    >>> parse_box("10,20.5,110,140")
    (10.0, 20.5, 110.0, 140.0)
    >>> parse_box("10,20,5,40")
    Traceback (most recent call last):
    ...
    starlette.exceptions.HTTPException: 422: box '10,20,5,40' must have x1 > x0 and y1 > y0
    """
    shown = text if len(text) <= 80 else text[:80] + "..."
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise StarletteHTTPException(422, f"box {shown!r} must be four numbers x0,y0,x1,y1 in pixels")
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise StarletteHTTPException(422, f"box {shown!r} must have x1 > x0 and y1 > y0")
    return x0, y0, x1, y1


def check_box(box: tuple[float, ...], width: int, height: int, name: str) -> None:
    """Refuse (422) a box that does not lie within the photo (give or take `BOX_SLACK_PX`).

    >>> check_box((0, 0, 640, 480), 640, 480, "a.jpg")
    >>> check_box((0, 0, 6400, 480), 640, 480, "a.jpg")
    Traceback (most recent call last):
    ...
    starlette.exceptions.HTTPException: 422: a.jpg: box (0, 0, 6400, 480) is not within the 640x480 photo
    """
    x0, y0, x1, y1 = box
    slack = BOX_SLACK_PX
    if x0 < -slack or y0 < -slack or x1 > width + slack or y1 > height + slack:
        shown = ", ".join(f"{v:g}" for v in box)
        raise StarletteHTTPException(422, f"{name}: box ({shown}) is not within the {width}x{height} photo")
