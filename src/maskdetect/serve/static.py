"""The web page: three files shipped inside the package, read once and served from memory."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8"}

# The page may load nothing from elsewhere: the browser enforces it, not just our own discipline.
# 'wasm-unsafe-eval' lets private mode compile onnxruntime-web's WebAssembly (served from here too).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; font-src 'none'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class SecurityHeadersMiddleware:
    """Adds `PAGE_HEADERS` to every response (API, errors and schema too) unless a route set its own.

    A pure ASGI middleware, so streamed and large responses pass through untouched.
    """

    def __init__(self, app: ASGIApp, headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.headers = dict(PAGE_HEADERS if headers is None else headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def read_static(name: str) -> bytes:
    """The bytes of one shipped page file.

    >>> read_static("index.html").startswith(b"<!doctype html>")
    True
    """
    if name not in STATIC_FILES:
        raise ValueError(f"unknown static file {name!r}; known: {', '.join(STATIC_FILES)}")
    return resources.files("maskdetect.serve").joinpath("static", name).read_bytes()


def add_static_routes(app: FastAPI) -> None:
    """Serve the page at ``/`` and its script and style sheet at ``/static/<name>``.

    Their security headers come from `SecurityHeadersMiddleware`, which the app puts on every response.
    """
    files = {name: read_static(name) for name in STATIC_FILES}

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(files["index.html"])

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in files:
            raise StarletteHTTPException(404, f"no static file {name!r}")
        return Response(files[name], media_type=STATIC_FILES[name])
