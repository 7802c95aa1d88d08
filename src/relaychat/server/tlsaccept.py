"""The TLS port's accept loop: count and limit a connection *before* its handshake.

With ``loop.create_server(ssl=...)`` the event loop does the handshake before the protocol
hears of the connection, so a client that connects and never starts the handshake escapes the
per-address and total connection limits (issue 17 item 6). Here the listening socket is
accepted from directly:

1. ``accept()``; the address is known, nothing has been read.
2. The core admits the connection (:meth:`TLSConnection.admit`): ``limits.max_clients`` and
   ``limits.max_per_ip`` (by address group) apply; a refusal just closes the socket.
3. At most ``throttle.max_handshaking`` connections may be in their handshake at once; more are
   closed at once.
4. ``loop.connect_accepted_socket(..., ssl=..., ssl_handshake_timeout=...)`` does the handshake
   within ``throttle.tls_handshake_timeout`` seconds; a failure or timeout removes the
   connection from the core.

Refusals and failures are logged through the core's rate-limited log (one line per cause per
``throttle.log_interval``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import time
from typing import Any, Protocol

from relaychat.server.connection import Hub, TLSConnection

__all__ = ["Listening", "TLSListener", "TLSServer", "open_tls_server"]

log = logging.getLogger("relaychat.server")

#: Seconds to wait before accepting again when the process is out of file descriptors.
FD_PAUSE = 0.1


class Listening(Protocol):
    """What the server keeps of a listener: an ``asyncio.Server``, or a :class:`TLSServer`."""

    @property
    def sockets(self) -> tuple[Any, ...]: ...

    def close(self) -> None: ...

    def is_serving(self) -> bool: ...

    async def wait_closed(self) -> None: ...


class TLSHub(Hub, Protocol):
    """A hub that also counts the TLS handshakes in progress."""

    handshaking: int


class TLSListener:
    """Accepts TLS connections on one listening socket (see the module rules).

    Args:
        hub: the server.
        sock: a listening socket (non-blocking).
        context: the server's SSL context.
    """

    def __init__(self, hub: TLSHub, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.hub = hub
        self.sock = sock
        self.context = context
        self._task: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start accepting (on the running loop)."""
        self._task = asyncio.get_running_loop().create_task(self._accept_loop())

    def close(self) -> None:
        """Stop accepting, abandon the handshakes in progress, close the listening socket."""
        if self._task is not None:
            self._task.cancel()
        for task in list(self._handshakes):
            task.cancel()
        self.sock.close()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        ratelog = self.hub.core.ratelog
        while True:
            try:
                conn, addr = await loop.sock_accept(self.sock)
            except OSError as exc:
                ratelog.warning(
                    "TLS accept failed",
                    "TLS accept failed: %s",
                    exc.strerror or exc,
                    now=time.time(),
                )
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    await asyncio.sleep(FD_PAUSE)
                continue
            try:
                self._admit(conn, str(addr[0]) if addr else "unknown")
            except Exception:  # a bug must not stop the listener
                log.exception("TLS accept of %s failed", addr)
                conn.close()

    def _admit(self, sock: socket.socket, ip: str) -> None:
        hub = self.hub
        now = time.time()
        sock.setblocking(False)
        conn = TLSConnection(hub)
        user = conn.admit(ip, now)
        if user is None:
            sock.close()
            return
        cfg = hub.config.throttle
        if hub.handshaking >= cfg.max_handshaking:
            hub.core.ratelog.warning(
                "refused: too many TLS handshakes",
                "refused %s: %d TLS handshakes in progress (throttle.max_handshaking)",
                ip,
                hub.handshaking,
                now=now,
            )
            conn.handshake_failed("Too many TLS handshakes in progress")
            sock.close()
            return
        hub.handshaking += 1
        task = asyncio.get_running_loop().create_task(self._handshake(conn, sock))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: TLSConnection, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.hub.config.throttle.tls_handshake_timeout
        try:
            await loop.connect_accepted_socket(
                lambda: conn, sock, ssl=self.context, ssl_handshake_timeout=timeout
            )
        except asyncio.CancelledError:
            conn.handshake_failed("Server shutting down")
            sock.close()
            raise
        except (OSError, ssl.SSLError, TimeoutError, EOFError, ValueError) as exc:
            timed_out = isinstance(exc, TimeoutError) or "taking longer" in str(exc)
            reason = "TLS handshake timed out" if timed_out else "TLS handshake failed"
            self.hub.core.ratelog.info(
                f"{reason} (unregistered)",
                "%s from %s: %s",
                reason,
                conn.user.ip if conn.user is not None else "?",
                exc,
                now=time.time(),
            )
            conn.handshake_failed(reason)
            sock.close()
        finally:
            self.hub.handshaking -= 1


class TLSServer:
    """The TLS listening sockets of one host (one per address it resolves to), closed and
    listed like an ``asyncio.Server`` (``sockets``, ``close``, ``wait_closed``), so the server
    and the reloader (``server/reload.py``) treat the TLS port like the others."""

    def __init__(self, listeners: list[TLSListener]) -> None:
        self.listeners = listeners
        self.serving = False

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(listener.sock for listener in self.listeners)

    def start(self) -> None:
        for listener in self.listeners:
            listener.start()
        self.serving = True

    def is_serving(self) -> bool:
        return self.serving

    def close(self) -> None:
        self.serving = False
        for listener in self.listeners:
            listener.close()

    async def wait_closed(self) -> None:
        return None


async def open_tls_server(
    hub: TLSHub, host: str | None, port: int, context: ssl.SSLContext
) -> TLSServer:
    """Listen on ``port`` of ``host`` (``None``: every address) for TLS; not accepting yet
    (:meth:`TLSServer.start`).

    Raises:
        OSError: an address could not be bound (nothing is left open).
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners: list[TLSListener] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
                sock.listen(4096)
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
            listeners.append(TLSListener(hub, sock, context))
    except OSError:
        for listener in listeners:
            listener.close()
        raise
    return TLSServer(listeners)
