"""Per-socket glue: bytes -> LineBuffer -> parse -> core, and core -> coalesced writes.

Rules:
1. No IRC logic here: every decision about a line is the core's.
2. Writes are coalesced: ``send`` only appends; the server flushes every connection that has
   output once per event-loop turn, in one ``transport.write`` each.
3. Bounded: a client whose unsent output passes ``limits.sendq`` is dropped (SendQ exceeded). One
   that sends more than ``limits.flood_burst`` lines, faster than ``limits.flood_rate``, meets
   ``limits.flood_action``: ``throttle`` delays its lines (reading pauses while they wait) and
   drops it (Excess Flood) when its waiting input passes ``limits.recvq``; ``fakelag`` delays
   them the same way and never drops it (reading stays paused while lines wait, so what is held
   is at most one read of the socket: the client's own buffers fill and it blocks), and while
   one of its commands is pending (a password check, a streamed answer) its later lines wait
   here, not in the core;
   ``disconnect`` drops it (Excess Flood) at once.
4. Closing always ends: a peer that never reads its last bytes is aborted after a deadline.
5. A streamed answer (``server/pending.py``: a long LIST, a WHO scan) goes on only when this
   connection's output has drained: after a flush that left the transport's buffer below its
   high-water mark, when the transport says it may write again (``resume_writing``), or at
   once when a part sent nothing (a WHO scan's part that matched nobody).
6. TLS (:class:`TLSConnection`, accepted by ``tlsaccept.py``): the connection is counted and
   limited by the core *before* the handshake (per address group, server full); nothing is
   written to the socket before the handshake ends.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from collections import deque
from collections.abc import Iterable
from typing import Protocol, cast

from relaychat.config import Config
from relaychat.errors import InputTooLong, ProtocolError
from relaychat.protocol.lines import LineBuffer, Overlong
from relaychat.protocol.message import MAX_LINE_BYTES, parse_from_client
from relaychat.server.core import ServerCore
from relaychat.server.state import User
from relaychat.server.stats import EdgeStats
from relaychat.server.tls import peer_certfp

__all__ = [
    "INHERITED_OPTIONS",
    "TURN_LINES",
    "Connection",
    "Hub",
    "TLSConnection",
    "listener_options",
    "peer_ip",
    "set_keepalive",
]

#: Most lines of one connection handled in one loop turn; the rest wait their turn.
TURN_LINES = 200
#: Seconds between two looks at a fakelagged connection whose command is still pending.
BUSY_POLL = 0.05

log = logging.getLogger("relaychat.server")


def set_keepalive(sock: socket.socket, idle: int = 60, interval: int = 15, count: int = 4) -> None:
    """Turn on TCP keepalive (and TCP_NODELAY) where the platform allows; never raises."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # pragma: no cover - e.g. a socket type without TCP options
        pass


#: Linux gives an accepted socket the listening socket's keepalive and TCP_NODELAY settings, so
#: :func:`listener_options` sets them once per listener and a connection makes no
#: ``setsockopt`` calls (four system calls and a socket object per connection saved; W1/W2 in
#: docs/benchmarks.md). Elsewhere each connection sets its own.
INHERITED_OPTIONS = sys.platform.startswith("linux")


def listener_options(sockets: Iterable[socket.socket]) -> None:
    """Set keepalive and TCP_NODELAY on a listener's sockets, for its connections to inherit."""
    if INHERITED_OPTIONS:
        for sock in sockets:
            set_keepalive(sock)


def peer_ip(transport: asyncio.BaseTransport) -> str:
    """The remote address of ``transport`` as text (IPv4-mapped IPv6 shown as IPv4)."""
    peer = transport.get_extra_info("peername")
    ip = str(peer[0]) if peer else "unknown"
    return ip[7:] if ip.startswith("::ffff:") else ip


class Hub(Protocol):
    """What a connection needs from the server that owns it (``listeners.Server`` is one).

    Connections are handed their hub; they never import the server module.
    """

    config: Config
    core: ServerCore
    connections: set[Connection]
    stats: EdgeStats

    def mark_dirty(self, conn: Connection) -> None:
        """Schedule ``conn``'s queued output for the flush at the end of this loop turn."""

    def request_flush(self) -> None:
        """Make sure a flush (and a history commit) follows this loop turn."""

    def holding(self) -> bool:
        """Whether queued bytes may carry messages not yet committed to history (then they
        wait for the flush that follows the commit)."""


class Connection(asyncio.Protocol):
    """One client socket; implements :class:`~relaychat.server.effects.Peer` for the core."""

    __slots__ = (
        "abort_handle",
        "backlog",
        "backlog_size",
        "burst",
        "closed",
        "closing",
        "continuing",
        "core",
        "dirty",
        "flood_action",
        "lines",
        "out",
        "out_size",
        "rate",
        "recvq",
        "refilled",
        "resume_handle",
        "room",
        "sendq",
        "server",
        "throttling",
        "tokens",
        "transport",
        "tx_buffered",
        "user",
        "write_paused",
    )

    def __init__(self, server: Hub) -> None:
        self.server = server
        self.core = server.core
        self.transport: asyncio.Transport | None = None
        self.user: User | None = None
        self.lines = LineBuffer(MAX_LINE_BYTES)
        self.out: list[bytes] = []
        self.out_size = 0
        self.tx_buffered = 0  # transport's write buffer size at the last flush
        self.dirty = False
        self.closed = False
        self.closing = False  # closed, its last bytes waiting for a commit (see close)
        self.room = -1  # what send may still queue before it must look (see send)
        limits = server.config.limits
        self.sendq = limits.sendq
        self.recvq = limits.recvq
        self.rate = limits.flood_rate
        self.burst = float(limits.flood_burst)
        self.flood_action = limits.flood_action
        self.tokens = self.burst
        self.refilled = time.monotonic()
        self.backlog: deque[bytes | Overlong] | None = None  # lines waiting (see _lines_in)
        self.backlog_size = 0
        self.throttling = False  # lines are being delayed by the flood bucket
        self.resume_handle: asyncio.TimerHandle | None = None
        self.abort_handle: asyncio.TimerHandle | None = None
        self.write_paused = False  # the transport's buffer is over its high-water mark
        self.continuing = False  # a part of a streamed answer is scheduled (rule 5)

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        if not INHERITED_OPTIONS:  # else inherited from the listener (listener_options)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                set_keepalive(sock)
        self.server.connections.add(self)
        self.user = self.core.accept(self, self.client_ip(transport), time.time())
        if self.user is not None and self.server.config.tls_port:
            # A TLS client certificate, for WHOIS and SASL EXTERNAL (only asked for when there
            # is a TLS listener: the look-up costs a plain connection ~4 % of its set-up).
            self.user.certfp = peer_certfp(transport)

    def client_ip(self, transport: asyncio.BaseTransport) -> str:
        """The client's address, as the core sees it (the peer's; a proxy edge may say better)."""
        return peer_ip(transport)

    def data_received(self, data: bytes) -> None:
        if self.closed or self.user is None:
            return
        self._lines_in(self.lines.feed(data))

    def _lines_in(self, items: list[bytes | Overlong]) -> None:
        """Process complete lines now, or queue them for :meth:`_drain`."""
        if not items:
            return
        backlog = self.backlog
        if backlog is None and len(items) <= TURN_LINES:
            # The common case, handled without a queue: nothing waits, and the flood bucket
            # (when there is one) holds a token for every line, as _drain would find. Not with
            # fakelag: there _drain keeps lines at the edge while a command is pending.
            if self.rate > 0:
                if self.flood_action == "fakelag":
                    self._queue(items)
                    return
                mono = time.monotonic()
                tokens = min(self.burst, self.tokens + (mono - self.refilled) * self.rate)
                self.refilled = mono
                self.tokens = tokens
                if tokens >= len(items):
                    self.tokens = tokens - len(items)
                    self._process_now(items)
                    return
            else:
                self._process_now(items)
                return
        self._queue(items)

    def _queue(self, items: list[bytes | Overlong]) -> None:
        """Queue ``items`` for :meth:`_drain` (now, unless a drain is scheduled)."""
        backlog = self.backlog
        if backlog is None:
            # Allocated only while lines wait (an empty deque is 760 bytes; most connections
            # never need one), and dropped again once drained.
            backlog = self.backlog = deque()
        backlog.extend(items)
        self.backlog_size += sum(len(i) if isinstance(i, bytes) else 1 for i in items)
        if self.resume_handle is None:
            self._drain()

    def _process_now(self, items: list[bytes | Overlong]) -> None:
        now = time.time()
        for item in items:
            self._process(item, now)
            if self.closed:
                return
        self.server.request_flush()

    def eof_received(self) -> bool | None:
        return False  # close our side too; connection_lost follows

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._want_more()

    # --- streamed answers (rule 5) -------------------------------------------------------------

    def _want_more(self) -> None:
        """Schedule the next part of a streamed answer, if one is pending and output drained."""
        user = self.user
        if (
            user is None
            or user.stream is None
            or self.continuing
            or self.write_paused
            or self.closed
        ):
            return
        self.continuing = True
        asyncio.get_running_loop().call_soon(self._continue)

    def _continue(self) -> None:
        self.continuing = False
        user = self.user
        if user is None or self.closed or user.stream is None:
            return
        self.core.writable(user, time.time())
        if not self.dirty:  # nothing was sent (e.g. only secret channels): go on anyway
            self._want_more()
        self.server.request_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        for handle in (self.resume_handle, self.abort_handle):
            if handle is not None:
                handle.cancel()
        user = self.user
        if user is not None and not user.quitting:
            reason = "Connection closed" if exc is None else f"Connection error: {exc}"
            self.closed = True
            self.core.now = time.time()
            self.core.disconnect(user, reason)
        self.closed = True
        self.room = -1

    # --- input ---------------------------------------------------------------------------------

    def _process(self, item: bytes | Overlong, now: float) -> None:
        user = self.user
        assert user is not None
        if isinstance(item, Overlong):
            self.core.protocol_error(user, InputTooLong(item.size, MAX_LINE_BYTES), now)
            return
        try:
            msg = parse_from_client(item)
        except ProtocolError as exc:
            self.core.protocol_error(user, exc, now)
            return
        self.core.handle(user, msg, now)
        self.handled(user)

    def handled(self, user: User) -> None:
        """After a command: a streamed answer whose first part sent nothing goes on (rule 5)."""
        if user.stream is not None and not self.dirty:
            self._want_more()

    def _drain(self) -> None:
        """Process queued lines: at most TURN_LINES a loop turn, and no faster than the flood
        bucket allows. While lines wait, reading pauses (so memory stays bounded) and a later
        turn continues; past the burst, ``flood_action`` says what else happens (rule 3)."""
        self.resume_handle = None
        budget = TURN_LINES
        if self.rate > 0:
            mono = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (mono - self.refilled) * self.rate)
            self.refilled = mono
            budget = min(budget, int(self.tokens))
        now = time.time()
        backlog = self.backlog
        if backlog is None:  # pragma: no cover - a resume scheduled before a drop for SendQ
            return
        done = 0
        user = self.user
        assert user is not None
        # fakelag: while a command is pending the lines wait here, reading paused, rather than
        # in the core (which bounds what it holds by recvq: Excess Flood).
        hold_back = self.flood_action == "fakelag" and self.rate > 0
        while backlog and done < budget:
            if hold_back and user.busy:
                break
            item = backlog.popleft()
            self.backlog_size -= len(item) if isinstance(item, bytes) else 1
            done += 1
            self._process(item, now)
            if self.closed:
                return
        if self.rate > 0:
            self.tokens -= done
        self.server.request_flush()
        transport = self.transport
        assert transport is not None and self.user is not None
        if not backlog:
            self.backlog = None
            self.throttling = False
            if not transport.is_closing():
                transport.resume_reading()
            return
        delay = 0.0
        if self.rate > 0 and self.tokens < 1.0:
            action = self.flood_action
            if action == "disconnect" or (action == "throttle" and self.backlog_size > self.recvq):
                backlog.clear()
                self.backlog_size = 0
                self.core.disconnect(self.user, "Excess Flood")
                return
            if not self.throttling:
                self.throttling = True
                self.server.stats.flood_throttles += 1
                self.core.throttled(self.user, self.rate)
            delay = (1.0 - self.tokens) / self.rate
        if hold_back and user.busy:
            delay = max(delay, BUSY_POLL)
        transport.pause_reading()
        self.resume_handle = asyncio.get_running_loop().call_later(delay, self._drain)

    # --- Peer ----------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        # The hottest function of the server: one call per recipient of every message (W3 makes
        # four million a second). The fast path is an append, an addition and one comparison
        # against ``room``: the bytes this connection may still queue in this loop turn. Every
        # other case makes ``room`` negative so that it falls to _send_slow: the first send of a
        # loop turn (the connection is not scheduled for a flush yet), a closed connection
        # (the bytes are taken back), and a queue past its SendQ.
        self.out.append(data)
        self.out_size += len(data)
        if self.out_size > self.room:
            self._send_slow(data)

    def _send_slow(self, data: bytes) -> None:
        """:meth:`send` past ``room``: closed, first output of the turn, or SendQ reached."""
        if self.closed:
            self.out.pop()
            self.out_size -= len(data)
            return
        if not self.dirty:
            self.dirty = True
            self.server.mark_dirty(self)
            self.room = self.sendq - self.tx_buffered
            if self.out_size <= self.room:
                return
        # Over the SendQ with the kernel-side backlog seen at the last flush: look again.
        transport = self.transport
        assert transport is not None
        self.tx_buffered = transport.get_write_buffer_size()
        self.room = self.sendq - self.tx_buffered
        if self.out_size > self.room:
            self._sendq_exceeded()

    def _sendq_exceeded(self) -> None:
        # Never disconnect from inside a broadcast: stop queueing now, leave the core later.
        self.closed = True
        self.room = -1
        self.out.clear()
        self.out_size = 0
        self.server.stats.sendq_drops += 1
        user = self.user
        if user is not None:
            asyncio.get_running_loop().call_soon(self._drop_for_sendq, user)

    def _drop_for_sendq(self, user: User) -> None:
        if user.quitting:
            return
        self.closed = False  # let close() write the ERROR line
        self.core.now = time.time()
        self.core.disconnect(user, "SendQ exceeded")

    def flush(self, count: int | None = None) -> None:
        """Write what is queued in one call (the server calls this once per loop turn).

        Args:
            count: write only the first ``count`` items (those covered by a history commit);
                the rest stay queued and the connection stays dirty.
        """
        out = self.out
        if count is None or count >= len(out):
            self.dirty = False
            self.room = -1  # the next send schedules the next flush (see send)
            if not out:
                if self.closing:
                    self._close_now()
                return
            data = b"".join(out) if len(out) > 1 else out[0]
            out.clear()
            self.out_size = 0
        else:
            if count <= 0:
                return
            data = b"".join(out[:count])
            del out[:count]
            self.out_size -= len(data)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            self.server.stats.bytes_out += len(data)
            self.tx_buffered = transport.get_write_buffer_size()
            if self.dirty and not self.closed:
                self.room = self.sendq - self.tx_buffered
        if self.closing and not out:
            self._close_now()
            return
        user = self.user
        if user is not None and user.stream is not None and not self.out:
            self._want_more()

    def farewell(self, error: str) -> bytes:
        """The last bytes a closing client gets: ``ERROR :<error>``."""
        return b"ERROR :" + error.encode("utf-8", "replace") + b"\r\n"

    def close(self, error: str) -> None:
        if self.closed and self.transport is not None and self.transport.is_closing():
            return
        self.closed = True
        self.room = -1
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        farewell = self.farewell(error)
        if farewell:
            self.out.append(farewell)
        if self.resume_handle is not None:
            self.resume_handle.cancel()
            self.resume_handle = None
        if self.server.holding():
            # What is queued may carry messages whose group commit has not returned yet
            # (docs/history.md): like every connection's bytes, they wait for it. The flush
            # after the commit writes them, then closes (flush -> _close_now).
            self.closing = True
            transport.pause_reading()
            if not self.dirty:
                self.dirty = True
                self.server.mark_dirty(self)
            return
        self.flush()
        self._close_now()

    def _close_now(self) -> None:
        """Close the transport once everything queued is written (see :meth:`close`)."""
        self.closing = False
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.close()
        # A peer that never reads would keep the socket open for ever: abort after a deadline.
        self.abort_handle = asyncio.get_running_loop().call_later(
            self.server.config.shutdown_timeout, transport.abort
        )


class TLSConnection(Connection):
    """A connection on the TLS port (rule 6): admitted by the core *before* the handshake
    (:meth:`admit`, called by ``server/tlsaccept.py`` with the raw socket's address), then
    :meth:`connection_made` once the handshake is done.

    Until then nothing is written (output stays queued) and a refusal closes the socket without
    an ``ERROR`` line a TLS client could not read anyway.
    """

    __slots__ = ("secured",)

    def __init__(self, server: Hub) -> None:
        super().__init__(server)
        self.secured = False  # the handshake is done: output may be written

    def admit(self, ip: str, now: float) -> User | None:
        """Count the new connection in the core (limits per address group, server full).

        Returns:
            Its :class:`User`, or ``None`` when refused (nothing was written).
        """
        if ip.startswith("::ffff:"):
            ip = ip[7:]
        self.server.connections.add(self)
        self.user = self.core.accept(self, ip, now)
        if self.user is None:
            self.server.connections.discard(self)
        return self.user

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The handshake is done: this is the TLS transport.
        self.transport = cast(asyncio.Transport, transport)
        self.secured = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            set_keepalive(sock)
        user = self.user
        if user is None or user.quitting or self.closed:
            transport.close()
            return
        user.certfp = peer_certfp(transport)  # for WHOIS and SASL EXTERNAL
        if self.out:
            self.flush()  # what the core queued during the handshake

    def handshake_failed(self, reason: str) -> None:
        """The handshake failed or timed out: the core forgets the connection."""
        self.server.connections.discard(self)
        user = self.user
        if user is not None and not user.quitting:
            self.core.now = time.time()
            self.core.disconnect(user, reason)
        self.closed = True
        self.room = -1

    def flush(self, count: int | None = None) -> None:
        if not self.secured:
            self.dirty = False  # kept queued: flushed when the handshake ends
            self.room = -1
            return
        super().flush(count)

    def farewell(self, error: str) -> bytes:
        return super().farewell(error) if self.secured else b""
