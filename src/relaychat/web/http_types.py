"""What the HTTP edge (``http.py``) and its routes exchange: requests, responses, streamed bodies.

Frozen values and the two protocols a router implements (:class:`Router`) and a streamed body's
destination implements (:class:`BodySink`); no I/O here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Begin", "BodySink", "FileBody", "HttpRequest", "Response", "Router", "Upgrade"]


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
class FileBody:
    """A response body read from a file as it is sent (rule 5).

    Attributes:
        path: the file.
        offset: where the body starts in it.
        length: how many bytes to send.
        executor: where the reads run (never on the event loop's thread).
    """

    path: str
    offset: int
    length: int
    executor: Executor | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """An answer: status, body and extra header fields (the edge adds the length and date).

    ``file``, when set, is the body instead of ``body`` (sent in chunks, rule 5).
    """

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())
    close: bool = False
    file: FileBody | None = None

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


class BodySink(Protocol):
    """Where a streamed request body goes, as it arrives (rule 5; an upload)."""

    def bind(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """Called once before the first :meth:`feed`: how to stop and restart reading."""

    def feed(self, data: bytes) -> Response | None:
        """Take the next bytes; a :class:`Response` refuses the request now (413: too big)."""

    def finish(self) -> Awaitable[Response]:
        """The whole body is in: store it; the awaitable gives the answer."""

    def abort(self) -> None:
        """The request will not complete (refused, timed out, connection lost): clean up."""


#: What :meth:`Router.begin` may give: buffer the body (``None``), refuse now, or stream it.
Begin = Response | Awaitable[Response | BodySink] | None


class Router(Protocol):
    """What the HTTP edge asks for each complete request (``relaychat.web.app.WebApp``)."""

    def route(self, request: HttpRequest) -> Response | Upgrade | Awaitable[Response]:
        """The answer to ``request``: now, or once the awaitable is done."""

    def begin(self, request: HttpRequest) -> Begin:
        """Called when a request's head is in (``request.body`` is empty): ``None`` to read the
        body whole and then :meth:`route` it, a :class:`Response` to refuse it unread, or an
        awaitable of either a refusal or the :class:`BodySink` to stream it into (rule 5)."""

    def common_headers(self, request: HttpRequest | None) -> list[tuple[str, str]]:
        """Header fields added to every response (security headers)."""
