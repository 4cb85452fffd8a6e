"""What the server allows each connection, below the app: the HTTP protocol uvicorn runs for us.

uvicorn's own h11 protocol keeps a connection that sends its headers slowly (or nothing at all) open
for ever, holds any number of connections, takes a header block of any size when it arrives in one
read, and drops the answer of a client that shuts its write side after sending its request.
`GuardedH11Protocol` is that protocol with `ConnectionLimits`: headers must be in within
`header_timeout` (else 408 and close), at most `max_header_bytes` and `max_headers` of them (else
431), at most `max_connections` open per process (more get 503 and are closed), and a half-closed
client still gets its answer. `serve` and `BackgroundServer` run it through `uvicorn_settings`.
It builds on uvicorn's H11Protocol (its `cycle`, `conn` and hooks), checked by
tests/test_serve_hostile_round2.py against the uvicorn installed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from maskdetect.serve.limits import HEADER_TIMEOUT_S, MAX_CONNECTIONS, MAX_HEADER_BYTES, MAX_HEADERS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    """Bounds on every connection of one server process.

    >>> ConnectionLimits(header_timeout=0)
    Traceback (most recent call last):
    ...
    ValueError: header_timeout must be positive, got 0
    """

    header_timeout: float = HEADER_TIMEOUT_S
    max_header_bytes: int = MAX_HEADER_BYTES
    max_headers: int = MAX_HEADERS
    max_connections: int = MAX_CONNECTIONS

    def __post_init__(self) -> None:
        for name in ("header_timeout", "max_header_bytes", "max_headers", "max_connections"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol within `limits` (a class attribute: uvicorn builds one per connection)."""

    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timer: asyncio.TimerHandle | None = None
        self.closing_timer: asyncio.TimerHandle | None = None  # set once answered outside h11
        self.probe_timer: asyncio.TimerHandle | None = None  # set while a half-closed client is watched
        self.app = _header_guard(self.app, self.limits)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.debug("refused a connection: %d open", len(self.connections) - 1)
            self._answer_and_close(503, "too many connections; retry shortly", retry_after=True)
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        for timer in (self.closing_timer, self.probe_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.closing_timer is not None:
            return  # answered and closing: what still arrives is read and dropped
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request's headers are in (or it was refused)
            self._cancel_header_timer()

    def eof_received(self) -> bool | None:
        # A client may shut its write side once its request is sent (`nc -N`, some HTTP/1.0 tools):
        # keep the socket open to write the answer, and close it after. A client that has gone sends
        # the same end of stream: `_probe_client` tells them apart, so its work is still dropped.
        if self.closing_timer is None and self.cycle is not None and not self.cycle.response_complete \
                and self.conn.their_state in (h11.DONE, h11.MUST_CLOSE):  # its request is all in
            self.cycle.keep_alive = False
            self._probe_client()
            return True
        return None

    def _probe_client(self) -> None:
        # HTTP/1.1 clients skip a 1xx answer they did not ask for (RFC 9110, 15.2); a closed socket
        # answers it with a reset, which leaves an error on ours. (1.0 clients must not get one.)
        if self.scope["http_version"] != "1.1" or self.cycle.response_started:
            return
        try:
            interim = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
            self.transport.write(self.conn.send(interim))
        except h11.LocalProtocolError:
            return
        self.cycle.waiting_for_100_continue = False
        self._check_client_gone()

    def _check_client_gone(self) -> None:
        self.probe_timer = None
        if self.transport.is_closing() or self.cycle is None or self.cycle.response_complete:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self.transport.close()  # connection_lost tells the request its client has gone
            return
        self.probe_timer = self.loop.call_later(PROBE_S, self._check_client_gone)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_timer()  # the next request on this connection has the same time

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self.header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            seconds = self.limits.header_timeout
            log.debug("closed a connection whose request headers took over %g s", seconds)
            self._answer_and_close(408, f"request headers not received within {seconds:g} s")

    def _answer_and_close(self, status: int, message: str, retry_after: bool = False) -> None:
        # Written raw: no request was parsed, so h11 has no response to send in its state. Then our
        # side is shut and what the client still sends is read for a moment before closing: closing
        # with its request unread would reset the connection and lose the answer on the way.
        body = _detail(message)
        head = f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
        head += f"content-length: {len(body)}\r\nconnection: close\r\n"
        head += "retry-after: 1\r\n" if retry_after else ""
        self.transport.write(head.encode() + b"\r\n" + body)
        self.transport.write_eof()
        self.closing_timer = self.loop.call_later(CLOSING_S, self.transport.close)


_REASONS = {408: "Request Timeout", 503: "Service Unavailable"}
CLOSING_S = 1.0  # how long a connection answered outside h11 is read (and dropped) before closing
PROBE_S = 0.1  # how often a half-closed client's socket is checked for the reset of one that has gone


def _detail(message: str) -> bytes:
    return json.dumps({"detail": message}).encode()  # as the app's own errors (serve/errors.py)


def _header_guard(app: Any, limits: ConnectionLimits) -> Any:
    """`app`, behind a 431 for requests with too many or too large headers.

    h11 refuses a header block over its size only while it is incomplete; one that arrives whole in a
    single read is parsed, so the block is measured here, before the app sees it.
    """

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        problem = _header_problem(scope, limits) if scope["type"] == "http" else None
        if problem is not None:
            await _send_431(send, _detail(problem))
            return
        await app(scope, receive, send)

    return guarded


def _header_problem(scope: dict[str, Any], limits: ConnectionLimits) -> str | None:
    headers = scope["headers"]
    if len(headers) > limits.max_headers:
        return f"too many request headers: {len(headers):,}, the limit is {limits.max_headers:,}"
    size = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
    size += sum(len(name) + len(value) + 4 for name, value in headers)  # "name: value\r\n"
    if size > limits.max_header_bytes:
        return f"request headers too large: {size:,} bytes, the limit is {limits.max_header_bytes:,}"
    return None


async def _send_431(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # the rest of the request is never read
    await send({"type": "http.response.start", "status": 431, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def protocol_class(limits: ConnectionLimits | None = None) -> type[GuardedH11Protocol]:
    """The protocol class for uvicorn's ``http`` setting; the module's own class for the defaults
    (several workers receive it by name, so it must be importable)."""
    if limits is None or limits == GuardedH11Protocol.limits:
        return GuardedH11Protocol
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


def uvicorn_settings(limits: ConnectionLimits | None = None) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` / `uvicorn.Config` that put `limits` on every connection.

    >>> settings = uvicorn_settings(ConnectionLimits(max_header_bytes=8192))
    >>> settings["h11_max_incomplete_event_size"]
    8192
    """
    limits = limits or ConnectionLimits()
    # h11's own bound refuses a header block that is still arriving once it passes the same size.
    return {"http": protocol_class(limits), "h11_max_incomplete_event_size": limits.max_header_bytes}
