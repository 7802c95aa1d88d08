"""A fault-injecting TCP proxy for tests: client <-> proxy <-> server, all on loopback.

Each accepted connection becomes a :class:`Link` that forwards bytes both ways. Faults act on
the links open at the time of the call (new connections are healthy again), so a client that
reconnects through the proxy gets a working path:

- :meth:`FaultProxy.drop`: close both sides at once (FIN), losing whatever was in transit;
- :meth:`FaultProxy.reset`: abort both sides with RST (``SO_LINGER`` 0);
- :meth:`FaultProxy.stall`: stop forwarding both ways and keep both sockets open: a half-open
  link that no OS will report, seen by neither end;
- :meth:`FaultProxy.cut`: forward the next client chunk only up to the middle of a line, then
  close both sides: the server is left with half a line;
- :meth:`FaultProxy.deafen`: stop forwarding what the server says (the client's lines still go
  through): the server relays them, and the client never hears back;
- :meth:`FaultProxy.inject`: write garbage to the client;
- :meth:`FaultProxy.slow`: add latency to every chunk, both ways.

The same faults exist per link (:class:`Link`), and :attr:`FaultProxy.counts` tallies every
fault injected, by kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import Counter


class Link:
    """One proxied connection."""

    def __init__(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.client_reader, self.client_writer = client
        self.server_reader, self.server_writer = server
        self.stalled = False
        self.deaf = False
        self.delay = 0.0
        self.closed = False
        self.cut_next = False
        self.cuts = 0
        self._ended = 0
        self.tasks = [
            asyncio.ensure_future(self._pump(self.client_reader, self.server_writer, True)),
            asyncio.ensure_future(self._pump(self.server_reader, self.client_writer, False)),
        ]

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool
    ) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self.stalled or (self.deaf and not upstream):
                    continue  # a black hole: nothing goes through, nothing is closed
                if self.delay:
                    await asyncio.sleep(self.delay)
                    if self.stalled or self.closed:
                        continue
                if upstream and self.cut_next:
                    self.cuts += 1
                    writer.write(data[: _mid_line(data)])
                    await writer.drain()
                    self.close()
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        self._ended += 1
        if not self.stalled or self._ended == 2:  # a stalled link goes once both ends left
            self.close()

    def close(self) -> None:
        """Close both sides with FIN."""
        if self.closed:
            return
        self.closed = True
        for w in (self.client_writer, self.server_writer):
            with contextlib.suppress(Exception):
                w.close()

    def reset(self) -> None:
        """Abort both sides with RST."""
        self.closed = True
        for w in (self.client_writer, self.server_writer):
            sock = w.get_extra_info("socket")
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()

    def inject(self, garbage: bytes) -> None:
        """Write ``garbage`` to the client."""
        with contextlib.suppress(Exception):
            self.client_writer.write(garbage)

    async def aclose(self) -> None:
        self.close()
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


def _mid_line(data: bytes) -> int:
    """Where to cut ``data`` so that the last line forwarded is incomplete (at least 1 byte)."""
    end = data.find(b"\n")
    if end <= 0:
        return max(1, len(data) // 2)
    return max(1, end // 2)


class FaultProxy:
    """Listens on 127.0.0.1 (ephemeral port) and forwards to ``upstream``.

    Args:
        upstream: the server.
        latency: seconds every chunk waits, both ways, on every link (a slow network).
    """

    def __init__(self, upstream: tuple[str, int], latency: float = 0.0) -> None:
        self.upstream = upstream
        self.latency = latency
        self.links: list[Link] = []
        self.accepted = 0
        #: Faults injected so far, by kind (each call on a live link counts once).
        self.counts: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._accepted = asyncio.Event()

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        link = Link((reader, writer), upstream)
        link.delay = self.latency
        self.links.append(link)
        self.accepted += 1
        self._accepted.set()

    def _live(self) -> list[Link]:
        return [link for link in self.links if not link.closed and not link.stalled]

    def _each(self, kind: str) -> list[Link]:
        live = self._live()
        if live:
            self.counts[kind] += 1
        return live

    def drop(self) -> None:
        """Close every open link now (FIN both ways); bytes in transit are lost."""
        for link in self._each("drop"):
            link.close()

    def reset(self) -> None:
        """Abort every open link with RST."""
        for link in self._each("reset"):
            link.reset()

    def stall(self) -> None:
        """Stop forwarding on every open link, both ways, without closing anything."""
        for link in self._each("stall"):
            link.stalled = True

    def deafen(self) -> None:
        """Stop forwarding server -> client on every open link (client -> server goes on)."""
        for link in self._each("deafen"):
            link.deaf = True

    def cut(self) -> None:
        """Drop every open link in the middle of the next line the client sends."""
        for link in self._each("cut"):
            link.cut_next = True

    def inject(self, garbage: bytes) -> None:
        """Write ``garbage`` to the client side of every open link."""
        for link in self._each("garbage"):
            link.inject(garbage)

    def slow(self, seconds: float) -> None:
        """Delay every chunk on the open links by ``seconds``, both ways."""
        for link in self._each("delay" if seconds else "undelay"):
            link.delay = seconds

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self.links:
            await link.aclose()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
