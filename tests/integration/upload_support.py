"""Helpers for the upload tests over real sockets (not itself a test module).

- :func:`upload_server` starts a server with an HTTP port and uploads on (``min_free = 0``:
  the tests must not depend on the machine's free space).
- :func:`account` registers an account over IRC and stays connected, logged in.
- :func:`exchange` speaks HTTP/1.1 by hand (``h11``), for requests a polite client would not
  make: a body sent without waiting, a chunked body that grows past a limit, a request whose
  answer comes before its body.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Callable, Iterable
from typing import Any

import h11

from relaychat.server.listeners import Server
from tests.harness import TIMEOUT, LineClient
from tests.integration.web_support import HttpAnswer, web_port, web_server

__all__ = [
    "PASSWORD",
    "account",
    "basic",
    "exchange",
    "path_of",
    "token",
    "upload_server",
    "web_port",
]

PASSWORD = "correct-horse-battery"
MakeServer = Callable[..., Any]


async def upload_server(make_server: MakeServer, **uploads: Any) -> Server:
    """A server with its HTTP port and uploads on, ``uploads`` settings changed."""
    settings = {"min_free": 0, **uploads}
    return await web_server(make_server, uploads=settings)


async def account(srv: Server, nick: str, password: str = PASSWORD) -> LineClient:
    """A registered IRC client over TCP, with an account ``nick`` it is logged in to."""
    host, port = srv.addresses[0]
    c = await LineClient.open(host, port)
    await c.register(nick)
    await c.send(f"REGISTER * * {password}")
    await c.expect(r" 900 ")
    return c


async def token(c: LineClient) -> tuple[str, str]:
    """``(upload URL, token)`` from ``TOKEN GENERATE FILEHOST``."""
    await c.send("TOKEN GENERATE FILEHOST")
    m = await c.expect(r"TOKEN GENERATE FILEHOST (\S+) :?(\S+)$")
    return m.group(1), m.group(2)


def basic(name: str, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


def headers_of(response: h11.Response) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in response.headers:
        name = key.decode().lower()
        text = value.decode("utf-8", "replace")
        out[name] = f"{out[name]}, {text}" if name in out else text
    return out


async def exchange(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | Iterable[bytes] = b"",
    *,
    send_body: bool = True,
) -> tuple[HttpAnswer, int]:
    """One request by hand; the body (bytes, or chunks sent chunked) is sent while watching
    for an early answer, and sending stops once one came.

    Returns:
        The answer, and how many body bytes were sent.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = h11.Connection(h11.CLIENT)
    fields = [("Host", f"127.0.0.1:{port}"), *headers.items()]
    if isinstance(body, bytes) and not any(k.lower() == "content-length" for k in headers):
        fields.append(("Content-Length", str(len(body))))
    if not isinstance(body, bytes):
        fields.append(("Transfer-Encoding", "chunked"))
    writer.write(conn.send(h11.Request(method=method, target=path, headers=fields)))

    async def answer() -> tuple[h11.Response, bytes]:
        head: h11.Response | None = None
        data = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                chunk = await reader.read(65536)
                if not chunk and head is not None:
                    return head, bytes(data)
                conn.receive_data(chunk)
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                data += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                assert head is not None
                return head, bytes(data)

    reading = asyncio.ensure_future(answer())
    sent = 0
    try:
        if send_body:
            parts = [body] if isinstance(body, bytes) else body
            for part in parts:
                if reading.done() or not part:
                    break
                try:
                    writer.write(conn.send(h11.Data(data=part)))
                    await writer.drain()
                except (OSError, h11.LocalProtocolError):
                    break
                sent += len(part)
                await asyncio.sleep(0)
            if not reading.done():
                try:
                    writer.write(conn.send(h11.EndOfMessage()))
                    await writer.drain()
                except (OSError, h11.LocalProtocolError):
                    pass
        head, data = await asyncio.wait_for(reading, TIMEOUT)
    finally:
        if not reading.done():
            reading.cancel()
        writer.close()
    return HttpAnswer(head.status_code, headers_of(head), data), sent


def path_of(url: str) -> str:
    """The path of an absolute URL on the test server."""
    m = re.match(r"https?://[^/]+(/.*)", url)
    assert m, url
    return m.group(1)
