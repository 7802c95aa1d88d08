"""IRC over WebSocket (https://ircv3.net/specs/extensions/websocket): one line per message.

A :class:`WebSocketConnection` is a :class:`~relaychat.server.connection.Connection` whose lines
travel as WebSocket messages instead of CR-LF-separated bytes. Everything else is the TCP edge's:
the flood bucket, the turn budget, sendq accounting, coalesced writes and the hold until the
history group commit. The WebSocket protocol itself (frame parsing, masking, control frames,
close handshake, size limit) is ``websockets``' sans-I/O :class:`~websockets.protocol.Protocol`.

Rules:
1. Subprotocols ``binary.ircv3.net`` and ``text.ircv3.net``, in the client's order of
   preference; a client that offers none (or none of ours) is accepted and gets text messages.
2. In: each message is one line. A trailing CR/LF is tolerated and dropped; a message still
   holding CR or LF is refused whole (400), as the spec says a message MUST be one line. Binary
   messages are read as over TCP (a line that is not UTF-8 is refused with
   ``FAIL <command> INVALID_UTF8``: UTF8ONLY); a text message that is not UTF-8 fails the
   connection (1007, RFC 6455 §8.1). A message longer than
   an IRC line gets the same 417 as over TCP; one over ``http.ws_max_message`` closes the
   connection with 1009 (message too big).
3. Out: each line the core sends becomes one message, without its CR-LF. Text messages never
   carry invalid UTF-8 (it is replaced by U+FFFD). A broadcast's bytes are framed once for all
   recipients (:func:`frame_lines` caches by the bytes object the core shares).
4. Keepalive: the IRC PING of the core, plus a WebSocket ping to clients quiet for
   ``http.ws_ping_interval`` (proxies cut idle connections); a pong counts as activity.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from websockets.datastructures import Headers
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import OPEN, SERVER, Protocol
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from relaychat.errors import SeveralLines
from relaychat.protocol.lines import Overlong
from relaychat.protocol.message import MAX_LINE_BYTES
from relaychat.server.connection import Connection, Hub

__all__ = ["SUBPROTOCOLS", "WebSocketConnection", "frame_lines", "handshake"]

#: What we speak (IRCv3 websocket); the client's order of preference decides.
SUBPROTOCOLS = (Subprotocol("binary.ircv3.net"), Subprotocol("text.ircv3.net"))
BINARY = "binary.ircv3.net"

#: Largest core output (bytes) whose framing is cached whole (broadcasts are single lines;
#: a bigger output is framed line by line, each line cached).
CACHE_MAX_BYTES = 4096
#: Most cached framings per mode before the cache starts afresh.
CACHE_ENTRIES = 256
_CACHES: tuple[dict[bytes, bytes], dict[bytes, bytes]] = ({}, {})  # text, binary
#: Outputs too big for the cache, and their framing (text, binary), a few at a time: a channel's
#: coalesced lines of one loop turn are one ``bytes`` object handed to every member (its senders
#: get their own, without their lines), framed once for all of them.
_BIG: tuple[dict[bytes, bytes], dict[bytes, bytes]] = ({}, {})
#: What the big-output caches may hold (outputs and framings, bytes) before they start afresh.
BIG_BYTES = 1 << 20
_big_bytes = [0, 0]
#: Close codes that end a connection normally (the server going away, too).
_PLAIN_CLOSES = frozenset({CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY})

PING = Frame(Opcode.PING, b"").serialize(mask=False)

# websockets logs "connection closed" at INFO for every connection; the core logs disconnects.
_ws_log = logging.getLogger("relaychat.websocket")
_ws_log.setLevel(logging.WARNING)


def _choose(protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """The first subprotocol the client offered that we speak (rule 1), else none."""
    for name in offered:
        if name in SUBPROTOCOLS:
            return name
    return None


def handshake(path: str, headers: Sequence[tuple[str, str]]) -> tuple[Response, str | None]:
    """Answer a WebSocket opening handshake (RFC 6455 §4.2) with ``websockets``.

    Args:
        path: the request target.
        headers: the request's header fields.

    Returns:
        The response (101 to accept; 400, 426... to refuse, with a reason in its body) and the
        subprotocol chosen (``None`` for none: text messages).
    """
    proto = ServerProtocol(subprotocols=SUBPROTOCOLS, select_subprotocol=_choose, logger=_ws_log)
    response = proto.accept(Request(path, Headers(headers)))
    return response, proto.subprotocol


def frame_lines(data: bytes, binary: bool) -> bytes:
    """``data`` (whole IRC lines, each ending in CR-LF) as WebSocket messages, one per line.

    Server frames are not masked, so the same bytes serve every recipient: the framing of a
    small ``data`` is cached (rule 3).
    """
    cache = _CACHES[binary]
    small = len(data) <= CACHE_MAX_BYTES
    # (A dict finds the same object by identity, and bytes keep their hash: a hit is cheap.)
    framed = cache.get(data) if small else _BIG[binary].get(data)
    if framed is not None:
        return framed
    opcode = Opcode.BINARY if binary else Opcode.TEXT
    parts = []
    for line in data.split(b"\r\n"):
        if not line:
            continue
        if small:
            parts.append(_frame(opcode, line, binary))
            continue
        # A channel's coalesced lines of one loop turn (server/fanout.py rule 4) are too big
        # to cache whole: frame each line once, for every member (keyed without its CR-LF, so
        # never mistaken for a whole output, which always ends with one).
        part = cache.get(line)
        if part is None:
            part = _frame(opcode, line, binary)
            if len(cache) >= CACHE_ENTRIES:
                cache.clear()
            cache[line] = part
        parts.append(part)
    framed = b"".join(parts)
    if small:
        if len(cache) >= CACHE_ENTRIES:
            cache.clear()
        cache[data] = framed
    else:
        big = _BIG[binary]
        size = len(data) + len(framed)
        if _big_bytes[binary] + size > BIG_BYTES:
            big.clear()
            _big_bytes[binary] = 0
        if size <= BIG_BYTES:
            big[data] = framed
            _big_bytes[binary] += size
    return framed


def _frame(opcode: Opcode, line: bytes, binary: bool) -> bytes:
    """One IRC line (without CR-LF) as one unmasked WebSocket message."""
    if not binary and not line.isascii():
        line = line.decode("utf-8", "replace").encode("utf-8")
    return Frame(opcode, line).serialize(mask=False)


def _close_code(error: str) -> CloseCode:
    if error == "Server shutting down":
        return CloseCode.GOING_AWAY
    if error.endswith(("(Excess Flood)", "(SendQ exceeded)")):
        return CloseCode.POLICY_VIOLATION
    return CloseCode.NORMAL_CLOSURE


class WebSocketConnection(Connection):
    """One IRC client over WebSocket, after the HTTP edge accepted its handshake.

    The HTTP edge hands the transport over with ``transport.set_protocol`` and then calls
    :meth:`connection_made` (and :meth:`data_received` with any bytes read past the handshake).

    Args:
        server: the hub (as for every connection).
        subprotocol: the subprotocol chosen, or ``None`` (text messages).
        ip: the client's address when a trusted proxy said it, else ``None`` (the peer's).
        max_message: the largest message accepted (``http.ws_max_message``).
        base_url: ``scheme://host[:port]`` of the page's HTTP port as the client reached it
            (from its ``Host``), for the URLs it is given (uploads), or ``None``.
    """

    __slots__ = ("base_url", "binary", "forwarded", "heard", "partial", "partial_text", "ws")

    def __init__(
        self,
        server: Hub,
        *,
        subprotocol: str | None,
        ip: str | None,
        max_message: int,
        base_url: str | None = None,
    ) -> None:
        super().__init__(server)
        self.base_url = base_url
        self.binary = subprotocol == BINARY
        self.forwarded = ip
        self.ws = Protocol(SERVER, state=OPEN, max_size=max_message, logger=_ws_log)
        self.partial: bytearray | None = None  # a fragmented message being assembled
        self.partial_text = False
        self.heard = True  # input since the last keepalive sweep

    def client_ip(self, transport: asyncio.BaseTransport) -> str:
        return self.forwarded or super().client_ip(transport)

    # --- input -------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        user = self.user
        if user is None or self.closed:
            return
        ws = self.ws
        ws.receive_data(data)
        self.heard = True
        items: list[bytes | Overlong] = []
        for frame in ws.events_received():
            if not isinstance(frame, Frame):  # pragma: no cover - HTTP events: CONNECTING only
                continue
            op = frame.opcode
            if op is Opcode.TEXT or op is Opcode.BINARY or op is Opcode.CONT:
                message = self._assemble(frame)
                if message is None:
                    continue
                if self.partial_text and not message.isascii():
                    try:
                        message.decode("utf-8")
                    except UnicodeDecodeError:  # RFC 6455 §8.1: fail the connection
                        ws.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
                        break
                message = message.rstrip(b"\r\n")
                if not message:
                    continue  # an empty line, as over TCP
                items.append(Overlong(len(message)) if len(message) > MAX_LINE_BYTES else message)
            elif op is Opcode.PONG:
                self.core.alive(user, time.time())
        if items:
            self._lines_in(items)
        self._control()

    def _assemble(self, frame: Frame) -> bytes | None:
        """The whole message once its last fragment is in, else ``None``."""
        if frame.opcode is not Opcode.CONT:
            self.partial_text = frame.opcode is Opcode.TEXT
            if frame.fin:
                return bytes(frame.data)
            self.partial = bytearray(frame.data)
            return None
        partial = self.partial
        assert partial is not None  # the protocol refuses a stray continuation frame
        partial += frame.data
        if not frame.fin:
            return None
        self.partial = None
        return bytes(partial)

    def _process(self, item: bytes | Overlong, now: float) -> None:
        if isinstance(item, bytes) and (b"\n" in item or b"\r" in item):
            assert self.user is not None
            self.core.protocol_error(self.user, SeveralLines(), now)
            return
        super()._process(item, now)

    def _control(self) -> None:
        """Write what the protocol wants sent (pongs, a close reply); end a closing connection."""
        ws = self.ws
        chunks = ws.data_to_send()
        if ws.state is OPEN:
            self._write(chunks)
            return
        # The peer closed, or broke the protocol (too big, bad UTF-8, bad framing): what is
        # queued goes out before the close frame, then the core lets the user go.
        self.flush()
        self._write(chunks)
        user = self.user
        if user is not None and not user.quitting:
            received, sent = ws.close_rcvd, ws.close_sent
            if received is not None and (sent is None or ws.close_rcvd_then_sent):
                # The peer closed first (a page left: 1001, or 1000): our frame only echoed it.
                reason = "Connection closed"
            elif sent is not None and sent.code not in _PLAIN_CLOSES:
                reason = f"WebSocket error: {sent.reason or sent.code}"
            else:
                reason = "WebSocket closed"
            self.core.now = time.time()
            self.core.disconnect(user, reason)

    def _write(self, chunks: list[bytes]) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for chunk in chunks:
            if chunk:  # b"" is websockets' "half-close now": close() does that
                transport.write(chunk)
                self.server.stats.bytes_out += len(chunk)

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        return super().eof_received()

    def keepalive(self) -> None:
        """Ping the client when nothing came from it since the last call (rule 4)."""
        if not self.heard and not self.closed and self.ws.state is OPEN:
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.write(PING)
        self.heard = False

    # --- output ------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        super().send(frame_lines(data, self.binary))

    def farewell(self, error: str) -> bytes:
        """The ``ERROR`` line as a message, then a close frame (when still open)."""
        ws = self.ws
        if ws.state is not OPEN:
            return b""
        line = super().farewell(error)
        reason = error.encode("utf-8", "replace")[:120].decode("utf-8", "ignore")
        ws.send_close(_close_code(error), reason)
        return frame_lines(line, self.binary) + b"".join(ws.data_to_send())
