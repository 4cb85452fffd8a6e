"""Every error as short JSON {"detail": message}: bad input is a 4xx, never a 500, never megabytes."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from maskdetect.images import ImageError, ImageTooLargeError
from maskdetect.serve.budget import BudgetSpentError
from maskdetect.serve.metrics import ERROR_KIND_KEY
from maskdetect.serve.upload import UploadError

log = logging.getLogger(__name__)

# Messages carry client-chosen text (file and field names); a hostile request must not get a
# megabyte back for it.
MAX_DETAIL_CHARS = 500


def short_detail(message: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """`message`, cut to `limit` characters with a note of how much was left out.

    >>> short_detail("x" * 10, limit=4)
    'xxxx... (6 more characters)'
    """
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... ({len(message) - limit:,} more characters)"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON answer for one error, its message kept short."""
    return JSONResponse({"detail": short_detail(message)}, status_code=status, headers=headers)


def note_error_kind(request: Request, kind: str) -> None:
    """Name the kind of the error being answered, for /metrics (one of `metrics.ERROR_KINDS`)."""
    setattr(request.state, ERROR_KIND_KEY, kind)


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error of the app in JSON, with the status its kind calls for."""

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, err: UploadError) -> JSONResponse:
        # A body left unread (too slow, too large) leaves the connection unusable: close it.
        headers = {"Connection": "close"} if err.status in (408, 413) else None
        kinds = {408: "body_timeout", 413: "body_too_large"}
        note_error_kind(request, kinds.get(err.status, "bad_upload"))
        return error_response(err.status, str(err), headers)

    @app.exception_handler(ImageError)
    async def image_error(request: Request, err: ImageError) -> JSONResponse:
        # By the error's type, not its text: the text carries the client's own file name.
        too_large = isinstance(err, ImageTooLargeError)
        note_error_kind(request, "image_too_large" if too_large else "bad_image")
        return error_response(413 if too_large else 422, str(err))

    @app.exception_handler(BudgetSpentError)
    async def budget_spent(request: Request, err: BudgetSpentError) -> JSONResponse:
        note_error_kind(request, "pixel_budget")
        return error_response(503, str(err), {"Retry-After": "2"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail), dict(err.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, err: Exception) -> JSONResponse:
        # A fault of ours, not of the input: log it whole, answer in JSON like every other error.
        log.error("%s %s failed", request.method, request.url.path, exc_info=err)
        return error_response(500, f"internal error ({type(err).__name__}); the server log has the details")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in err.errors()
        )
        return error_response(422, f"bad request: {problems}")
