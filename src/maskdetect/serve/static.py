"""The web page: three files shipped inside the package, read once and served from memory."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8"}

# The page may load nothing from elsewhere: the browser enforces it, not just our own discipline.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; font-src 'none'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def read_static(name: str) -> bytes:
    """The bytes of one shipped page file.

    >>> read_static("index.html").startswith(b"<!doctype html>")
    True
    """
    if name not in STATIC_FILES:
        raise ValueError(f"unknown static file {name!r}; known: {', '.join(STATIC_FILES)}")
    return resources.files("maskdetect.serve").joinpath("static", name).read_bytes()


def add_static_routes(app: FastAPI) -> None:
    """Serve the page at ``/`` and its script and style sheet at ``/static/<name>``."""
    files = {name: read_static(name) for name in STATIC_FILES}

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(files["index.html"], headers=PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in files:
            raise StarletteHTTPException(404, f"no static file {name!r}")
        return Response(files[name], media_type=STATIC_FILES[name], headers=PAGE_HEADERS)
