"""The HTTP edge: one :class:`HttpConnection` per socket, driving ``h11``'s HTTP/1.1 machine.

Rules:
1. No HTTP parsing here: ``h11`` reads requests and writes responses; this module moves bytes
   between it and the socket, bounds what a peer may make it hold, and asks the
   :class:`Router` what to answer.
2. Bounded: a request's head is at most :data:`MAX_HEAD_BYTES`, its body ``http.max_body``
   (413 past it, before reading it); a request must arrive within ``http.request_timeout``,
   which is also how long an idle keep-alive connection stays; at most
   ``http.max_connections`` connections are served at once (WebSockets are not counted).
3. A WebSocket handshake hands the socket over: the router gives a new asyncio protocol, which
   takes the transport (``transport.set_protocol``) and the bytes read past the handshake.
4. Errors are values: a malformed request gets its 4xx from h11's hint and the connection
   closes; an exception in a route is logged and answered with 500, never a traceback.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol, cast

import h11

from relaychat.server.connection import peer_ip

__all__ = ["MAX_HEAD_BYTES", "HttpConnection", "HttpRequest", "Response", "Router", "Upgrade"]

log = logging.getLogger("relaychat.web")

#: The answer to a request whose head did not arrive in time (no h11 request to answer yet).
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

#: The longest request line plus headers accepted (431-ish refusals past it come from h11).
MAX_HEAD_BYTES = 16_384


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request, as the routes see it.

    Attributes:
        method: upper case, e.g. ``GET``.
        path: the path, percent-encoding left as sent, without the query.
        query: what followed ``?`` (``""`` for none).
        headers: field name (lower case) -> value; repeated fields are joined with ``", "``.
        raw_headers: every field as sent, in order (for the WebSocket handshake).
        body: the request body.
        peer: the address of the socket's peer (a proxy's, behind one).
        tls: whether the request came over TLS.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw_headers: tuple[tuple[str, str], ...]
    body: bytes
    peer: str
    tls: bool


@dataclass(frozen=True, slots=True)
class Response:
    """An answer: status, body and extra header fields (the edge adds the length and date)."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())
    close: bool = False

    @classmethod
    def text(
        cls,
        status: int,
        text: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        close: bool = False,
    ) -> Response:
        """A plain-text answer of one line (``text`` plus a newline)."""
        return cls(status, (text + "\n").encode("utf-8"), headers=headers, close=close)


@dataclass(frozen=True, slots=True)
class Upgrade:
    """The router's answer to an accepted WebSocket handshake.

    Attributes:
        response: the 101 response bytes, written before the hand-over.
        protocol: the asyncio protocol taking the socket over (rule 3).
    """

    response: bytes
    protocol: asyncio.Protocol


class Router(Protocol):
    """What the HTTP edge asks for each complete request (``relaychat.web.app.WebApp``)."""

    def route(self, request: HttpRequest) -> Response | Upgrade | Awaitable[Response]:
        """The answer to ``request``: now, or once the awaitable is done."""

    def common_headers(self, request: HttpRequest | None) -> list[tuple[str, str]]:
        """Header fields added to every response (security headers)."""


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 connection (keep-alive, no pipelining in parallel: one request at a time).

    Args:
        router: answers requests.
        connections: the set of open HTTP connections (shared, for the bound).
        max_connections, max_body, timeout: the ``http.*`` bounds of rule 2.
    """

    __slots__ = (
        "body",
        "busy",
        "conn",
        "connections",
        "max_body",
        "max_connections",
        "request",
        "router",
        "timeout",
        "timer",
        "tls",
        "transport",
    )

    def __init__(
        self,
        router: Router,
        connections: set[HttpConnection],
        *,
        max_connections: int,
        max_body: int,
        timeout: float,
    ) -> None:
        self.router = router
        self.connections = connections
        self.max_connections = max_connections
        self.max_body = max_body
        self.timeout = timeout
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.transport: asyncio.Transport | None = None
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.busy = False  # a route is running; input waits
        self.timer: asyncio.TimerHandle | None = None
        self.tls = False

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if len(self.connections) >= self.max_connections:
            log.warning("HTTP connection refused: %d open already", len(self.connections))
            self.transport.abort()
            return
        self.tls = transport.get_extra_info("ssl_object") is not None
        self.connections.add(self)
        self._arm()

    def data_received(self, data: bytes) -> None:
        try:
            self.conn.receive_data(data)
        except RuntimeError:  # data after the connection was declared closed
            return
        self._next()

    def eof_received(self) -> bool | None:
        self.conn.receive_data(b"")
        self._next()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._detach()

    def _detach(self) -> None:
        self.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _arm(self) -> None:
        """(Re)start the deadline for the next request (rule 2)."""
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(self.timeout, self._expired)

    def _expired(self) -> None:
        self.timer = None
        if self.busy or self.transport is None:
            return
        if self.request is not None and self.conn.our_state is h11.SEND_RESPONSE:
            self._send(None, Response.text(408, "Request timed out", close=True))
            return
        if self.conn.trailing_data[0]:  # part of a request head: h11 has no request to answer
            self.transport.write(TIMED_OUT)
        self.transport.close()

    # --- requests ------------------------------------------------------------------------------

    def _next(self) -> None:
        """Take every event h11 has; answer each complete request."""
        while not self.busy and self.transport is not None and not self.transport.is_closing():
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    self._send(None, Response.text(status, f"Bad request: {exc}", close=True))
                else:
                    self.transport.close()
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self.request = event
                self.body = bytearray()
                length = _content_length(event)
                if length is not None and length > self.max_body:
                    self._too_large()
                    return
            elif isinstance(event, h11.Data):
                self.body += event.data
                if len(self.body) > self.max_body:
                    self._too_large()
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._dispatch()
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.close()
                return

    def _too_large(self) -> None:
        self._send(
            None,
            Response.text(
                413, f"Request body too large (at most {self.max_body} bytes)", close=True
            ),
        )

    def _dispatch(self) -> None:
        raw = self.request
        assert raw is not None and self.transport is not None
        request = _request(raw, bytes(self.body), peer_ip(self.transport), self.tls)
        self.body = bytearray()
        try:
            answer = self.router.route(request)
        except Exception:
            log.exception("HTTP %s %s failed", request.method, request.path)
            answer = Response.text(500, "Internal error", close=True)
        if isinstance(answer, Upgrade):
            self._upgrade(answer)
        elif isinstance(answer, Response):
            self._send(request, answer)
        else:
            self.busy = True
            self.transport.pause_reading()
            task = asyncio.ensure_future(answer)
            task.add_done_callback(lambda t: self._answered(request, t))

    def _answered(self, request: HttpRequest, task: asyncio.Future[Response]) -> None:
        self.busy = False
        if self.transport is None or self.transport.is_closing():
            return
        if task.cancelled():
            self.transport.close()
            return
        exc = task.exception()
        if exc is not None:
            log.error("HTTP %s %s failed: %r", request.method, request.path, exc)
            answer = Response.text(500, "Internal error", close=True)
        else:
            answer = task.result()
        self.transport.resume_reading()
        self._send(request, answer)
        self._next()

    def _upgrade(self, upgrade: Upgrade) -> None:
        transport = self.transport
        assert transport is not None
        trailing, _ = self.conn.trailing_data
        self._detach()
        self.transport = None
        transport.write(upgrade.response)
        transport.set_protocol(upgrade.protocol)
        upgrade.protocol.connection_made(transport)
        if trailing and not transport.is_closing():
            upgrade.protocol.data_received(bytes(trailing))

    def _send(self, request: HttpRequest | None, answer: Response) -> None:
        """Write ``answer``; then close, or get ready for the next request."""
        transport = self.transport
        assert transport is not None
        headers = [
            *self.router.common_headers(request),
            ("Content-Type", answer.content_type),
            ("Content-Length", str(len(answer.body))),
            *answer.headers,
        ]
        close = answer.close or self.conn.their_state is not h11.DONE
        if close:
            headers.append(("Connection", "close"))
        try:
            phrase = http.HTTPStatus(answer.status).phrase
        except ValueError:
            phrase = ""
        try:
            data = self.conn.send(
                h11.Response(status_code=answer.status, headers=headers, reason=phrase)
            )
            if answer.body and (request is None or request.method != "HEAD"):
                data += self.conn.send(h11.Data(data=answer.body))
            data += self.conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:  # pragma: no cover - a bug in a route's answer
            log.error("cannot send the HTTP response: %s", exc)
            transport.close()
            return
        transport.write(data)
        self.request = None
        if close or self.conn.our_state is h11.MUST_CLOSE:
            transport.close()
            return
        self.conn.start_next_cycle()
        self._arm()


def _content_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)  # h11 checked it is a number
    return None


def _request(raw: h11.Request, body: bytes, peer: str, tls: bool) -> HttpRequest:
    target = raw.target.decode("ascii", "replace")
    path, _, query = target.partition("?")
    pairs = tuple(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in raw.headers.raw_items()
    )
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return HttpRequest(
        method=raw.method.decode("ascii", "replace").upper(),
        path=path,
        query=query,
        headers=headers,
        raw_headers=pairs,
        body=body,
        peer=peer,
        tls=tls,
    )
