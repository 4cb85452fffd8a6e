"""Reading an uploaded image from a request: size-limited, in memory only, never spooled to disk.

Starlette's own form parser spools file parts over 1 MB to a temporary file; an image service has
no reason to write uploads to disk, so the body is read here (counting bytes as they arrive) and a
multipart body is split with python-multipart's streaming parser straight into memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from maskdetect.serve.limits import (
    BODY_GRACE_S,
    BODY_TIMEOUT_S,
    DEFAULT_MAX_BYTES,
    MAX_FORM_PARTS,
    MIN_BODY_RATE,
)

IMAGE_FIELD = "image"
RAW_TYPES = ("application/octet-stream",)
SHOWN_FIELDS = 10


class UploadError(ValueError):
    """A request that carries no usable upload; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class BodyDeadline:
    """How long a client may take to send its body: a deadline for all of it and a minimum rate.

    After `grace` seconds the body must keep arriving at `min_rate` bytes/s or better on average,
    and it must be complete within `timeout` seconds, so a client that sends a few bytes and then
    waits holds its connection for seconds, not for ever.

    >>> BodyDeadline(timeout=60, min_rate=1000, grace=5).allowed(received=10_000)
    15.0
    """

    timeout: float = BODY_TIMEOUT_S
    min_rate: float = MIN_BODY_RATE
    grace: float = BODY_GRACE_S

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.min_rate <= 0 or self.grace < 0:
            raise ValueError(
                f"body timeout and minimum rate must be positive and grace not negative, got "
                f"{self.timeout}, {self.min_rate} and {self.grace}"
            )

    def allowed(self, received: int) -> float:
        """Seconds since the first byte by which the body may have reached `received` bytes."""
        return min(self.timeout, self.grace + received / self.min_rate)


@dataclass(frozen=True)
class Upload:
    """The bytes of one uploaded image and what the client called it."""

    data: bytes
    filename: str | None
    content_type: str


async def read_upload(
    request: Request, max_bytes: int = DEFAULT_MAX_BYTES, deadline: BodyDeadline | None = None
) -> Upload:
    """Read the image of a request: a multipart field ``image`` or a raw ``image/*`` body.

    Args:
        request: the incoming request; its body is read here.
        max_bytes: refuse bodies larger than this (checked from Content-Length, then while reading).
        deadline: how long the body may take (`BodyDeadline()` when None).

    Returns:
        The image bytes, still encoded.

    Raises:
        UploadError: wrong content type (415), too large (413), too slow (408), empty or
            malformed (400).
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
    body = await read_body(request, max_bytes, deadline or BodyDeadline())
    if not body:
        raise UploadError(400, "empty request body: no image was sent")
    if not multipart:
        return Upload(body, None, media_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise UploadError(400, "multipart/form-data request without a boundary in its Content-Type")
    # In a worker thread: even within MAX_FORM_PARTS, splitting 10 MB takes a while, and the event
    # loop must keep answering every other connection meanwhile.
    return _image_part(await anyio.to_thread.run_sync(parse_multipart, body, boundary))


async def read_body(request: Request, max_bytes: int, deadline: BodyDeadline) -> bytes:
    """The whole request body, refusing it (413) as soon as it is known to exceed `max_bytes`, and
    (408) as soon as it arrives slower than `deadline` allows."""
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
    start = time.monotonic()
    stream = request.stream()
    try:
        while True:
            left = deadline.allowed(received) - (time.monotonic() - start)
            try:
                with anyio.fail_after(max(left, 0.0)):
                    chunk = await stream.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise UploadError(408, _too_slow(received, time.monotonic() - start, deadline)) from None
            received += len(chunk)
            if received > max_bytes:  # chunked uploads, or a Content-Length that lied
                raise UploadError(413, _too_large(received, max_bytes, at_least=True))
            chunks.append(chunk)
    except ClientDisconnect:
        raise UploadError(400, "client disconnected before the body was complete") from None
    finally:
        await stream.aclose()
    return b"".join(chunks)


@dataclass
class FormPart:
    """One part of a multipart body."""

    name: str | None
    filename: str | None
    content_type: str
    data: bytearray


def parse_multipart(body: bytes, boundary: bytes, max_parts: int = MAX_FORM_PARTS) -> list[FormPart]:
    """Split a multipart/form-data body into its parts, in memory; a body of more than `max_parts`
    parts is refused (400) as soon as the one past the limit begins.

    >>> head = b'--b\\r\\nContent-Disposition: form-data; name="image"; filename="a.jpg"\\r\\n\\r\\n'
    >>> body = head + b'xyz\\r\\n--b--\\r\\n'
    >>> [(p.name, p.filename, bytes(p.data)) for p in parse_multipart(body, b"b")]
    [('image', 'a.jpg', b'xyz')]
    """
    parts: list[FormPart] = []
    headers: dict[str, str] = {}
    field = bytearray()
    value = bytearray()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value.extend(data[start:end])

    def on_header_end() -> None:
        headers[field.decode("latin-1").lower()] = value.decode("latin-1")
        field.clear()
        value.clear()

    def on_part_begin() -> None:
        if len(parts) >= max_parts:
            raise UploadError(400, f"multipart form has more than {max_parts:,} parts: send the image "
                                   f"in one field {IMAGE_FIELD!r}")
        headers.clear()

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
    # A few names are enough to see the mistake; a form of 90,000 fields must not echo them all.
    found = ", ".join(repr(p.name if p.name is None else p.name[:40]) for p in parts[:SHOWN_FIELDS]) or "none"
    if len(parts) > SHOWN_FIELDS:
        found += f" and {len(parts) - SHOWN_FIELDS:,} more"
    raise UploadError(400, f"multipart form has no field {IMAGE_FIELD!r} (fields found: {found})")


def _parse_content_type(header: str) -> tuple[str, dict[bytes, bytes]]:
    media_type, options = parse_options_header(header)
    return media_type.decode("latin-1").strip().lower(), options


def _too_slow(received: int, seconds: float, deadline: BodyDeadline) -> str:
    return (
        f"request body too slow: {received:,} bytes in {seconds:.1f} s; a body must arrive at "
        f"{deadline.min_rate:,.0f} bytes/s or faster after {deadline.grace:g} s and be complete "
        f"within {deadline.timeout:g} s"
    )


def _too_large(size: int, limit: int, at_least: bool = False) -> str:
    prefix = "more than " if at_least else ""
    return f"upload of {prefix}{size:,} bytes is over the limit of {limit:,} bytes"
