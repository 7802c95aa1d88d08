"""Helpers for the HTTP port's tests over real sockets (not itself a test module).

- :func:`web_server` starts a server whose HTTP port is a free one (``http.port = 0`` means
  "off", so a free port is picked and the start retried if another test took it meanwhile).
- :class:`WsClient` is an IRC client over WebSocket (the ``websockets`` client library).
- :func:`fetch` makes one HTTP request with the standard library's ``http.client``.
- :func:`raw_ws` opens a WebSocket by hand on a plain socket, for clients that misbehave.
"""

from __future__ import annotations

import asyncio
import base64
import http.client as httpclient
import os
import re
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode

from relaychat.server.listeners import ListenError, Server
from tests.harness import TIMEOUT, LineClient
from tests.integration.tls_support import free_port

__all__ = ["HttpAnswer", "WsClient", "fetch", "raw_ws", "tcp_client", "web_port", "web_server"]

MakeServer = Callable[..., Any]


async def web_server(make_server: MakeServer, **kwargs: Any) -> Server:
    """A server with an HTTP port (``http`` settings in ``http_settings``), other kwargs as
    for ``free_config``."""
    from dataclasses import replace

    from tests.harness import free_config

    http_settings = kwargs.pop("http_settings", {})
    for _ in range(5):
        config = free_config(**kwargs)
        config = replace(config, http=replace(config.http, port=free_port(), **http_settings))
        try:
            srv: Server = await make_server(config)
            return srv
        except ListenError:
            continue  # another test took the port between the probe and the bind
    raise AssertionError("no free HTTP port")


async def tcp_client(srv: Server, nick: str) -> LineClient:
    """A registered IRC client over TCP to ``srv``."""
    host, port = srv.addresses[0]
    c = await LineClient.open(host, port)
    await c.register(nick)
    return c


def web_port(srv: Server) -> int:
    ((_, port),) = srv.addresses_of("http")
    return port


class WsClient:
    """An IRC client over WebSocket, with ``expect`` like ``LineClient``'s."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[str | bytes] = []

    @classmethod
    async def open(
        cls,
        port: int,
        subprotocols: Sequence[str] | None = ("text.ircv3.net",),
        *,
        scheme: str = "ws",
        **kwargs: Any,
    ) -> WsClient:
        protos: Any = list(subprotocols) if subprotocols is not None else None
        ws = await connect(
            f"{scheme}://127.0.0.1:{port}/ws", subprotocols=protos, open_timeout=TIMEOUT, **kwargs
        )
        return cls(ws)

    async def send(self, line: str | bytes) -> None:
        await self.ws.send(line)

    async def recv(self, timeout: float = TIMEOUT) -> str | bytes:
        message = await asyncio.wait_for(self.ws.recv(), timeout)
        self.seen.append(message)
        return message

    async def expect(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        rx = re.compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; last: {self.seen[-5:]}")
            try:
                message = await self.recv(remaining)
            except TimeoutError:
                continue
            text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
            m = rx.search(text)
            if m:
                return m

    async def register(self, nick: str) -> None:
        await self.send(f"NICK {nick}")
        await self.send(f"USER {nick} 0 * :{nick}")
        await self.expect(r" 001 ")
        await self.expect(r" (376|422) ")

    async def close(self) -> None:
        await self.ws.close()


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


async def fetch(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> HttpAnswer:
    """One request to 127.0.0.1:``port`` with ``http.client`` (in a thread)."""

    def run() -> HttpAnswer:
        conn: httpclient.HTTPConnection
        if tls is not None:
            conn = httpclient.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=tls)
        else:
            conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return HttpAnswer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    return await asyncio.to_thread(run)


def masked(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    """A client frame (masked, as RFC 6455 §5.3 requires of clients)."""
    return Frame(opcode, data, fin=fin).serialize(mask=True)


async def raw_ws(
    port: int, *, rcvbuf: int | None = None, subprotocol: str | None = "text.ircv3.net"
) -> socket.socket:
    """A WebSocket opened by hand on a non-blocking socket; the 101 response is read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    )
    if subprotocol:
        head += f"Sec-WebSocket-Protocol: {subprotocol}\r\n"
    await loop.sock_sendall(sock, (head + "\r\n").encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), TIMEOUT)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 101 "), got
    return sock
