"""Reading an uploaded image from a request: size-limited, in memory only, never spooled to disk.

Starlette's own form parser spools file parts over 1 MB to a temporary file; an image service has
no reason to write uploads to disk, so the body is read here (counting bytes as they arrive) and a
multipart body is split with python-multipart's streaming parser straight into memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from maskdetect.serve.limits import DEFAULT_MAX_BYTES

IMAGE_FIELD = "image"
RAW_TYPES = ("application/octet-stream",)


class UploadError(ValueError):
    """A request that carries no usable upload; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    """The bytes of one uploaded image and what the client called it."""

    data: bytes
    filename: str | None
    content_type: str


async def read_upload(request: Request, max_bytes: int = DEFAULT_MAX_BYTES) -> Upload:
    """Read the image of a request: a multipart field ``image`` or a raw ``image/*`` body.

    Args:
        request: the incoming request; its body is read here.
        max_bytes: refuse bodies larger than this (checked from Content-Length, then while reading).

    Returns:
        The image bytes, still encoded.

    Raises:
        UploadError: wrong content type (415), too large (413), empty or malformed (400).
    """
    content_type = request.headers.get("content-type", "")
    media_type, options = _parse_content_type(content_type)
    multipart = media_type == "multipart/form-data"
    if not (multipart or media_type.startswith("image/") or media_type in RAW_TYPES):
        shown = media_type or "none"
        raise UploadError(
            415,
            f"unsupported content type {shown!r}: send multipart/form-data with a field {IMAGE_FIELD!r}, "
            "or the raw image bytes with Content-Type image/*",
        )
    body = await read_body(request, max_bytes)
    if not body:
        raise UploadError(400, "empty request body: no image was sent")
    if not multipart:
        return Upload(body, None, media_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise UploadError(400, "multipart/form-data request without a boundary in its Content-Type")
    return _image_part(parse_multipart(body, boundary))


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole request body, refusing it (413) as soon as it is known to exceed `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise UploadError(400, f"bad Content-Length header {declared!r}") from None
        if length > max_bytes:
            raise UploadError(413, _too_large(length, max_bytes))
    chunks: list[bytes] = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:  # chunked uploads, or a Content-Length that lied
                raise UploadError(413, _too_large(received, max_bytes, at_least=True))
            chunks.append(chunk)
    except ClientDisconnect:
        raise UploadError(400, "client disconnected before the body was complete") from None
    return b"".join(chunks)


@dataclass
class FormPart:
    """One part of a multipart body."""

    name: str | None
    filename: str | None
    content_type: str
    data: bytearray


def parse_multipart(body: bytes, boundary: bytes) -> list[FormPart]:
    """Split a multipart/form-data body into its parts, in memory.

    >>> head = b'--b\\r\\nContent-Disposition: form-data; name="image"; filename="a.jpg"\\r\\n\\r\\n'
    >>> body = head + b'xyz\\r\\n--b--\\r\\n'
    >>> [(p.name, p.filename, bytes(p.data)) for p in parse_multipart(body, b"b")]
    [('image', 'a.jpg', b'xyz')]
    """
    parts: list[FormPart] = []
    headers: dict[str, str] = {}
    field = bytearray()
    value = bytearray()

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value.extend(data[start:end])

    def on_header_end() -> None:
        headers[field.decode("latin-1").lower()] = value.decode("latin-1")
        field.clear()
        value.clear()

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(headers.get("content-disposition", ""))
        name = disposition.get(b"name")
        filename = disposition.get(b"filename")
        parts.append(
            FormPart(
                name=name.decode("utf-8", "replace") if name is not None else None,
                filename=filename.decode("utf-8", "replace") if filename is not None else None,
                content_type=headers.get("content-type", ""),
                data=bytearray(),
            )
        )

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data.extend(data[start:end])

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as err:
        raise UploadError(400, f"malformed multipart/form-data body ({err})") from None
    return parts


def _image_part(parts: list[FormPart]) -> Upload:
    for part in parts:
        if part.name == IMAGE_FIELD:
            if not part.data:
                raise UploadError(400, f"form field {IMAGE_FIELD!r} is empty: no image was sent")
            return Upload(bytes(part.data), part.filename, part.content_type)
    found = ", ".join(repr(p.name) for p in parts) or "none"
    raise UploadError(400, f"multipart form has no field {IMAGE_FIELD!r} (fields found: {found})")


def _parse_content_type(header: str) -> tuple[str, dict[bytes, bytes]]:
    media_type, options = parse_options_header(header)
    return media_type.decode("latin-1").strip().lower(), options


def _too_large(size: int, limit: int, at_least: bool = False) -> str:
    prefix = "more than " if at_least else ""
    return f"upload of {prefix}{size:,} bytes is over the limit of {limit:,} bytes"
