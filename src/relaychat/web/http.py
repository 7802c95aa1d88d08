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
5. Streaming (uploads and downloads): the router may take a request's body as it arrives
   (:meth:`Router.begin` gives a :class:`BodySink`, which may pause reading while it writes),
   and may answer with a file (:class:`FileBody`), sent in chunks as the peer reads them. A
   streamed request's deadline is idle time: it stays alive while bytes keep coming. When a
   request is refused before its body was read, the connection reads and drops at most
   :data:`DISCARD_LIMIT` more bytes (so the client sees the answer rather than a reset) and
   closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import os
import re
from typing import cast

import h11

from relaychat.server.connection import peer_ip
from relaychat.web.http_types import (
    Begin,
    BodySink,
    FileBody,
    HttpRequest,
    Response,
    Router,
    Upgrade,
)

__all__ = [
    "DISCARD_LIMIT",
    "HOST_FIELD",
    "MAX_HEAD_BYTES",
    "Begin",
    "BodySink",
    "FileBody",
    "HttpConnection",
    "HttpRequest",
    "Response",
    "Router",
    "Upgrade",
    "request_base",
]

log = logging.getLogger("relaychat.web")

#: The answer to a request whose head did not arrive in time (no h11 request to answer yet).
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

#: The longest request line plus headers accepted (431-ish refusals past it come from h11).
MAX_HEAD_BYTES = 16_384
#: Bytes of a refused request's body read and dropped before the connection closes (rule 5).
DISCARD_LIMIT = 4 << 20
#: Seconds spent reading and dropping a refused request's body, at most (rule 5).
DISCARD_SECONDS = 2.0
#: Bytes of a file read and written at a time.
FILE_CHUNK = 256 << 10
#: A ``Host`` field fit to put in a URL or a CSP (no spaces, quotes, slashes or commas).
HOST_FIELD = re.compile(r"[A-Za-z0-9.:\[\]-]{1,255}\Z")


def request_base(request: HttpRequest) -> str | None:
    """``scheme://host[:port]`` of this port as the client reached it (its ``Host``), or
    ``None`` when it sent none fit for a URL."""
    host = request.headers.get("host")
    if host and HOST_FIELD.match(host):
        return f"{'https' if request.tls else 'http'}://{host}"
    return None


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
        "discard",
        "last_data",
        "max_body",
        "max_connections",
        "request",
        "router",
        "sink",
        "sink_paused",
        "timeout",
        "timer",
        "tls",
        "transport",
        "writable",
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
        self.busy = False  # a route is running (or a file is being sent); input waits
        self.timer: asyncio.TimerHandle | None = None
        self.tls = False
        self.sink: BodySink | None = None  # the streamed body's destination (rule 5)
        self.sink_paused = False  # the sink asked to stop reading
        self.last_data = 0.0  # loop time of the last body bytes (a stream's idle deadline)
        self.discard = -1  # >= 0: bytes of a refused body still to drop before closing
        self.writable: asyncio.Event | None = None  # set while the transport takes writes

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
        if self.discard >= 0:
            self._drop(len(data))
            return
        try:
            self.conn.receive_data(data)
        except RuntimeError:  # data after the connection was declared closed
            return
        self._next()

    def eof_received(self) -> bool | None:
        if self.discard >= 0:
            return False
        self.conn.receive_data(b"")
        self._next()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._detach()
        self._drop_sink()
        if self.writable is not None:
            self.writable.set()  # wake a file being sent: it sees the closed transport

    def pause_writing(self) -> None:
        if self.writable is None:
            self.writable = asyncio.Event()
        self.writable.clear()

    def resume_writing(self) -> None:
        if self.writable is not None:
            self.writable.set()

    def _detach(self) -> None:
        self.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _drop_sink(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            try:
                sink.abort()
            except Exception:  # pragma: no cover - a bug in a sink
                log.exception("HTTP body sink failed to abort")

    def _arm(self, delay: float | None = None) -> None:
        """(Re)start the deadline for the next request (rule 2)."""
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.timeout if delay is None else delay, self._expired)

    def _expired(self) -> None:
        self.timer = None
        if self.transport is None:
            return
        if self.busy:
            return  # a route or a file in progress; re-armed when it is done
        if self.sink is not None:  # rule 5: a stream's deadline is idle time
            idle = asyncio.get_running_loop().time() - self.last_data
            if idle < self.timeout:
                self._arm(self.timeout - idle)
                return
            self._drop_sink()
        if self.discard >= 0:
            self.transport.close()
            return
        if self.request is not None and self.conn.our_state is h11.SEND_RESPONSE:
            self._send(None, Response.text(408, "Request timed out", close=True))
            return
        if self.conn.trailing_data[0]:  # part of a request head: h11 has no request to answer
            self.transport.write(TIMED_OUT)
        self.transport.close()

    def _reading(self) -> None:
        """Resume reading unless a route runs or the sink asked for a pause."""
        transport = self.transport
        if transport is not None and not self.busy and not self.sink_paused:
            transport.resume_reading()

    def _sink_pause(self) -> None:
        self.sink_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def _sink_resume(self) -> None:
        self.sink_paused = False
        self._reading()

    # --- requests ------------------------------------------------------------------------------

    def _next(self) -> None:
        """Take every event h11 has; answer each complete request."""
        while not self.busy and self.transport is not None and not self.transport.is_closing():
            if self.discard >= 0:
                return
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._drop_sink()
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
                if self._begin(event):
                    return
                length = _content_length(event)
                if length is not None and length > self.max_body:
                    self._too_large()
                    return
            elif isinstance(event, h11.Data):
                sink = self.sink
                if sink is not None:
                    self.last_data = asyncio.get_running_loop().time()
                    refusal = sink.feed(bytes(event.data))
                    if refusal is not None:
                        self._refuse_unread(None, refusal)
                        return
                    continue
                self.body += event.data
                if len(self.body) > self.max_body:
                    self._too_large()
                    return
            elif isinstance(event, h11.EndOfMessage):
                if self.sink is not None:
                    self._finish_stream()
                    return
                self._dispatch()
            elif isinstance(event, h11.ConnectionClosed):
                self._drop_sink()
                self.transport.close()
                return

    def _begin(self, raw: h11.Request) -> bool:
        """Ask the router about a request whose head is in (rule 5).

        Returns:
            ``True`` when the router took it over (refused it, or will stream its body); the
            caller stops reading events for now.
        """
        transport = self.transport
        assert transport is not None
        head = _request(raw, b"", peer_ip(transport), self.tls)
        try:
            plan = self.router.begin(head)
        except Exception:
            log.exception("HTTP %s %s failed", head.method, head.path)
            plan = Response.text(500, "Internal error", close=True)
        if plan is None:
            return False
        if isinstance(plan, Response):
            self._refuse_unread(head, plan)
            return True
        self.busy = True
        transport.pause_reading()
        task = asyncio.ensure_future(plan)
        task.add_done_callback(lambda t: self._begun(head, t))
        return True

    def _begun(self, head: HttpRequest, task: asyncio.Future[Response | BodySink]) -> None:
        self.busy = False
        transport = self.transport
        if task.cancelled() or transport is None or transport.is_closing():
            if not task.cancelled() and task.exception() is None:
                plan = task.result()
                if not isinstance(plan, Response):
                    plan.abort()
            return
        exc = task.exception()
        if exc is not None:
            log.error("HTTP %s %s failed: %r", head.method, head.path, exc)
            self._refuse_unread(head, Response.text(500, "Internal error", close=True))
            return
        plan = task.result()
        if isinstance(plan, Response):
            self._refuse_unread(head, plan)
            return
        self.sink = plan
        self.sink_paused = False
        self.last_data = asyncio.get_running_loop().time()
        plan.bind(self._sink_pause, self._sink_resume)
        if self.conn.they_are_waiting_for_100_continue:
            transport.write(self.conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        self._reading()
        self._next()

    def _finish_stream(self) -> None:
        sink, self.sink = self.sink, None
        assert sink is not None and self.request is not None and self.transport is not None
        head = _request(self.request, b"", peer_ip(self.transport), self.tls)
        self.busy = True
        self.transport.pause_reading()
        task = asyncio.ensure_future(sink.finish())
        task.add_done_callback(lambda t: self._answered(head, t))

    def _refuse_unread(self, request: HttpRequest | None, answer: Response) -> None:
        """Answer a request whose body was not (all) read, then close (rule 5)."""
        self._drop_sink()
        self._send(request, answer, close=True)

    def _drop(self, size: int) -> None:
        self.discard -= size
        if self.discard < 0 and self.transport is not None:
            self.transport.close()

    def _too_large(self) -> None:
        self._refuse_unread(
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

    def _send(self, request: HttpRequest | None, answer: Response, *, close: bool = False) -> None:
        """Write ``answer``; then close, or get ready for the next request.

        A :class:`FileBody` is sent by a task (rule 5); the connection is busy meanwhile.
        """
        transport = self.transport
        assert transport is not None
        length = answer.file.length if answer.file is not None else len(answer.body)
        headers = [
            *self.router.common_headers(request),
            ("Content-Type", answer.content_type),
            ("Content-Length", str(length)),
            *answer.headers,
        ]
        close = close or answer.close or self.conn.their_state is not h11.DONE
        if close:
            headers.append(("Connection", "close"))
        try:
            phrase = http.HTTPStatus(answer.status).phrase
        except ValueError:
            phrase = ""
        head_only = request is not None and request.method == "HEAD"
        waiting = self.conn.they_are_waiting_for_100_continue  # h11 forgets it once we answer
        try:
            data = self.conn.send(
                h11.Response(status_code=answer.status, headers=headers, reason=phrase)
            )
            if answer.file is not None and not head_only and length:
                transport.write(data)
                self.busy = True
                transport.pause_reading()
                task = asyncio.ensure_future(self._send_file(answer.file))
                task.add_done_callback(lambda t: self._file_sent(t, close, waiting))
                return
            if answer.body and not head_only:
                data += self.conn.send(h11.Data(data=answer.body))
            data += self.conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:  # pragma: no cover - a bug in a route's answer
            log.error("cannot send the HTTP response: %s", exc)
            transport.close()
            return
        transport.write(data)
        self._done(close, waiting)

    def _done(self, close: bool, waiting: bool) -> None:
        """The response is written: close, start dropping a refused body (unless the client
        waits for ``100 Continue`` and so sends none), or wait for the next request."""
        transport = self.transport
        assert transport is not None
        self.request = None
        if close or self.conn.our_state is h11.MUST_CLOSE:
            body_left = self.conn.their_state is h11.SEND_BODY
            if body_left and not waiting and not transport.is_closing():
                self.discard = DISCARD_LIMIT  # rule 5: let the client see the answer
                transport.resume_reading()
                self._arm(DISCARD_SECONDS)
                return
            transport.close()
            return
        self.conn.start_next_cycle()
        self._arm()

    async def _send_file(self, body: FileBody) -> None:
        """Send ``body`` in chunks, reading ahead of the socket but never more than one chunk,
        and waiting whenever the transport's buffer is full."""
        loop = asyncio.get_running_loop()
        fd = await loop.run_in_executor(body.executor, os.open, body.path, os.O_RDONLY)
        try:
            offset, left = body.offset, body.length
            while left > 0:
                size = min(FILE_CHUNK, left)
                chunk = await loop.run_in_executor(body.executor, os.pread, fd, size, offset)
                if not chunk:
                    raise OSError(f"{body.path} ended {left} bytes early")
                transport = self.transport
                if transport is None or transport.is_closing():
                    return
                framed = self.conn.send_with_data_passthrough(h11.Data(data=chunk))
                transport.writelines(framed or ())
                offset += len(chunk)
                left -= len(chunk)
                writable = self.writable
                if writable is not None and not writable.is_set():
                    # A reader that stops reading is dropped after the request timeout.
                    await asyncio.wait_for(writable.wait(), self.timeout)
        finally:
            with contextlib.suppress(OSError):
                await loop.run_in_executor(body.executor, os.close, fd)

    def _file_sent(self, task: asyncio.Future[None], close: bool, waiting: bool) -> None:
        self.busy = False
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if task.cancelled() or task.exception() is not None:
            if not task.cancelled():
                log.error("HTTP file body failed: %r", task.exception())
            transport.close()  # the length was promised: a short body must not look whole
            return
        transport.write(self.conn.send(h11.EndOfMessage()))
        transport.resume_reading()
        self._done(close, waiting)
        self._next()


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
