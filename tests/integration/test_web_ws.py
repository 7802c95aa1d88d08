"""IRC over WebSocket (IRCv3 websocket) on the HTTP port, with a plain WebSocket client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Opcode

from tests.harness import TIMEOUT
from tests.integration.tls_support import client_context, write_server_cert
from tests.integration.web_support import WsClient, masked, raw_ws, tcp_client, web_port, web_server

MakeServer = Callable[..., Any]


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["text.ircv3.net"], "text.ircv3.net"),
        (["binary.ircv3.net"], "binary.ircv3.net"),
        (["binary.ircv3.net", "text.ircv3.net"], "binary.ircv3.net"),
        (["text.ircv3.net", "binary.ircv3.net"], "text.ircv3.net"),
        (None, None),
    ],
)
async def test_subprotocols_in_the_clients_order_and_none(
    make_server: MakeServer, offered: list[str] | None, chosen: str | None
) -> None:
    srv = await web_server(make_server)
    ws = await WsClient.open(web_port(srv), offered)
    assert ws.ws.subprotocol == chosen
    await ws.send("NICK wsa")
    await ws.send("USER wsa 0 * :Web")
    first = await ws.recv()
    # binary.ircv3.net: binary messages; text or no subprotocol: text messages. No CR-LF.
    assert isinstance(first, bytes if chosen == "binary.ircv3.net" else str)
    text = first.decode() if isinstance(first, bytes) else first
    assert text.startswith(":relaychat.local 001 wsa ") and "\r" not in text and "\n" not in text
    await ws.close()


async def test_websocket_and_tcp_users_chat_in_a_channel(make_server: MakeServer) -> None:
    srv = await web_server(make_server)
    ws = await WsClient.open(web_port(srv))
    await ws.register("webby")
    bob = await tcp_client(srv, "bob")
    await ws.send("JOIN #room")
    await ws.expect(r" 366 webby #room ")
    await bob.send("JOIN #room")
    await ws.expect(r"^:bob!\S+ JOIN #room")
    await ws.send("PRIVMSG #room :hello from the browser")
    await bob.expect(r"^:webby!~webby@127\.0\.0\.1 PRIVMSG #room :hello from the browser$")
    await bob.send("PRIVMSG #room :hello from a terminal")
    await ws.expect(r"^:bob!\S+ PRIVMSG #room :hello from a terminal$")
    await bob.send("PRIVMSG webby :private")
    await ws.expect(r"^:bob!\S+ PRIVMSG webby :private$")
    # A WebSocket user is an ordinary user: caps, history, WHOIS.
    await ws.send("CAP REQ :draft/chathistory server-time message-tags batch")
    await ws.expect(r" CAP webby ACK ")
    await ws.send("CHATHISTORY LATEST #room * 10")
    await ws.expect(r"PRIVMSG #room :hello from the browser$")
    await ws.expect(r"PRIVMSG #room :hello from a terminal$")
    await bob.send("WHOIS webby")
    await bob.expect(r" 311 bob webby ~webby 127\.0\.0\.1 ")
    await ws.send("QUIT :closing the tab")
    await bob.expect(r"^:webby!\S+ QUIT :Quit: closing the tab$")


async def test_oversized_lines_get_417_as_over_tcp(make_server: MakeServer) -> None:
    srv = await web_server(make_server)
    ws = await WsClient.open(web_port(srv))
    await ws.register("big")
    tcp = await tcp_client(srv, "tcp")
    body = "PRIVMSG #x :" + "a" * 600  # over 510 bytes without tags
    for client in (ws, tcp):
        await client.send(body)
    await ws.expect(r" 417 big :Input line was too long")
    await tcp.expect(r" 417 tcp :Input line was too long")
    # Longer than any line with tags (8701 bytes), still within http.ws_max_message: 417 too.
    await ws.send("PRIVMSG #x :" + "b" * 10_000)
    await ws.expect(r" 417 big ")
    await ws.send("PING :still-here")
    await ws.expect(r"PONG \S+ :?still-here")


async def test_message_beyond_the_frame_limit_closes_with_1009(make_server: MakeServer) -> None:
    srv = await web_server(make_server, http_settings={"ws_max_message": 4096})
    ws = await WsClient.open(web_port(srv))
    await ws.register("huge")
    bob = await tcp_client(srv, "bob")
    await ws.send("JOIN #a")
    await bob.send("JOIN #a")
    await ws.expect(r"JOIN #a")
    await ws.send("PRIVMSG #a :" + "c" * 100_000)
    with pytest.raises(ConnectionClosed) as info:
        for _ in range(50):
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    await bob.expect(r"^:huge!\S+ QUIT :WebSocket error: ")


async def test_message_with_several_lines_is_refused_whole(make_server: MakeServer) -> None:
    srv = await web_server(make_server)
    ws = await WsClient.open(web_port(srv))
    await ws.register("multi")
    bob = await tcp_client(srv, "bob")
    await bob.send("JOIN #a")
    await bob.expect(" 366 ")
    await ws.send("JOIN #a\r\n")  # a trailing CR-LF is tolerated
    await bob.expect(r"^:multi!\S+ JOIN #a")
    await ws.send("PRIVMSG #a :one\r\nPRIVMSG #a :two")
    await ws.expect(r" 400 multi \* :A WebSocket message must hold one IRC line")
    await ws.send("PRIVMSG #a :after")
    line = await bob.readline()
    assert line.endswith("PRIVMSG #a :after"), line  # neither "one" nor "two" was carried out


async def test_binary_invalid_utf8_is_handled_as_over_tcp(make_server: MakeServer) -> None:
    srv = await web_server(make_server)
    binary = await WsClient.open(web_port(srv), ["binary.ircv3.net"])
    await binary.register("bin")
    text = await WsClient.open(web_port(srv), ["text.ircv3.net"])
    await text.register("txt")
    tcp = await tcp_client(srv, "tcp")
    for c, nick in ((binary, "bin"), (text, "txt"), (tcp, "tcp")):
        await c.send("JOIN #enc")
        await c.expect(rf" 366 {nick} #enc ")
    raw = b"PRIVMSG #enc :caf\xe9 \xff"  # latin-1, not UTF-8
    # The same bytes from a WebSocket and from TCP are refused the same way (UTF8ONLY).
    await binary.send(raw)
    await binary.expect(r"^:\S+ FAIL PRIVMSG INVALID_UTF8 :")
    tcp.writer.write(raw + b"\r\n")
    await tcp.expect(r"^:\S+ FAIL PRIVMSG INVALID_UTF8 :")
    # Nothing of them was relayed: the next valid line is the first anyone sees.
    await binary.send("PRIVMSG #enc :café")
    assert (await text.expect(r"^:bin!\S+ PRIVMSG #enc :(.*)$")).group(1) == "café"
    assert (await tcp.expect(r"^:bin!\S+ PRIVMSG #enc :(.*)$")).group(1) == "café"
    assert not any("\xff" in str(line) for line in [*text.seen, *tcp.seen])


async def test_invalid_utf8_in_a_text_message_closes_with_1007(make_server: MakeServer) -> None:
    srv = await web_server(make_server)
    ws = await WsClient.open(web_port(srv))
    await ws.register("bad")
    await ws.ws.send(b"PRIVMSG #a :\xff\xfe", text=True)  # a text frame that is not UTF-8
    with pytest.raises(ConnectionClosed) as info:
        for _ in range(50):
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1007


async def test_fragmented_messages_are_assembled(make_server: MakeServer) -> None:
    srv = await web_server(make_server)
    port = web_port(srv)
    sock = await raw_ws(port)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, masked(Opcode.TEXT, b"NICK fr", fin=False))
    await loop.sock_sendall(sock, masked(Opcode.CONT, b"ag", fin=True))
    await loop.sock_sendall(sock, masked(Opcode.TEXT, b"USER frag 0 * :frag"))
    got = b""
    while b" 001 frag " not in got:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), TIMEOUT)
        assert chunk
        got += chunk
    sock.close()


@pytest.mark.parametrize(
    ("allowed", "origin", "ok"),
    [
        ("", None, True),  # not a browser page: no Origin to check
        ("", "http://127.0.0.1:{port}", True),  # the same host as the request
        ("", "http://evil.example", False),
        ("https://chat.example.org", "https://chat.example.org", True),
        ("https://chat.example.org", "http://127.0.0.1:{port}", False),
        ("*", "http://anywhere.example", True),
    ],
)
async def test_origin_check(
    make_server: MakeServer, allowed: str, origin: str | None, ok: bool
) -> None:
    srv = await web_server(make_server, http_settings={"allowed_origins": allowed})
    port = web_port(srv)
    headers = {"Origin": origin.format(port=port)} if origin else None
    if ok:
        ws = await WsClient.open(port, additional_headers=headers, origin=None)
        await ws.register("origin")
        await ws.close()
    else:
        with pytest.raises(InvalidStatus) as info:
            await WsClient.open(port, additional_headers=headers, origin=None)
        assert info.value.response.status_code == 403


@pytest.mark.parametrize(
    ("proxies", "forwarded", "seen"),
    [
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
        ("127.0.0.0/8, 10.0.0.0/8", "198.51.100.1, 203.0.113.9, 10.1.2.3", "203.0.113.9"),
        ("", "203.0.113.7", "127.0.0.1"),  # no trusted proxy: the header is ignored
        ("10.0.0.0/8", "203.0.113.7", "127.0.0.1"),  # the peer is not a trusted proxy
        ("127.0.0.1", "not-an-ip", "127.0.0.1"),
    ],
)
async def test_x_forwarded_for_only_from_trusted_proxies(
    make_server: MakeServer, proxies: str, forwarded: str, seen: str
) -> None:
    srv = await web_server(make_server, http_settings={"trusted_proxies": proxies})
    ws = await WsClient.open(web_port(srv), additional_headers={"X-Forwarded-For": forwarded})
    await ws.register("proxied")
    await ws.send("JOIN #p")
    m = await ws.expect(r"^:proxied!~proxied@(\S+) JOIN #p")
    assert m.group(1) == seen
    assert srv.core.per_ip.get(seen) == 1  # per-IP limits count the real client


async def test_per_ip_limit_applies_to_websockets(make_server: MakeServer) -> None:
    srv = await web_server(make_server, limits={"max_per_ip": 1})
    first = await WsClient.open(web_port(srv))
    await first.register("one")
    second = await WsClient.open(web_port(srv))
    await second.expect(r"^ERROR :Too many connections from your host")


async def test_slow_websocket_reader_is_dropped_for_sendq(make_server: MakeServer) -> None:
    srv = await web_server(make_server, limits={"sendq": 64 * 1024})
    port = web_port(srv)
    stuck = await raw_ws(port, rcvbuf=4096)  # never reads
    loop = asyncio.get_running_loop()
    for line in (b"NICK stuck", b"USER stuck 0 * :stuck", b"JOIN #flood"):
        await loop.sock_sendall(stuck, masked(Opcode.TEXT, line))
    talker = await tcp_client(srv, "talker")
    reader = await WsClient.open(port)
    await reader.register("reader")
    for c in (talker, reader):
        await c.send("JOIN #flood")
    await reader.expect(r" 366 reader #flood ")
    await talker.expect(r" 366 talker #flood ")
    for _ in range(100):
        if srv.core.find_user("stuck") is not None:
            break
        await asyncio.sleep(0.01)
    received: list[str] = []
    quit_lines: list[str] = []

    async def read_all() -> None:
        while True:
            msg = await reader.recv()
            text = msg if isinstance(msg, str) else msg.decode()
            if " PRIVMSG #flood :" in text:
                received.append(text.split(" :", 1)[1].split(" ", 1)[0])
            elif text.startswith(":stuck!") and " QUIT " in text:
                quit_lines.append(text)
                return

    reading = asyncio.create_task(read_all())
    payload = "z" * 400
    sent = 0
    dropped = False
    while sent < 20_000 and not dropped:
        for _ in range(20):
            talker.writer.write(f"PRIVMSG #flood :{sent} {payload}\r\n".encode())
            sent += 1
        await talker.writer.drain()
        for _ in range(1000):  # the reader keeps up: it is never more than 40 behind
            if len(received) >= sent - 40 or reading.done():
                break
            await asyncio.sleep(0.001)
        dropped = srv.core.find_user("stuck") is None
    assert dropped, "the non-reading WebSocket client was never dropped"
    await asyncio.wait_for(reading, TIMEOUT)
    assert "SendQ exceeded" in quit_lines[0]
    assert received == [str(i) for i in range(len(received))] and received
    stuck.close()


async def test_keepalive_websocket_pong_counts_and_silence_times_out(
    make_server: MakeServer,
) -> None:
    # WebSocket pings on: the client library answers them, so it stays although it never
    # answers IRC PINGs.
    timing = {"ping_interval": 0.4, "ping_timeout": 0.4}
    srv = await web_server(make_server, http_settings={"ws_ping_interval": 0.2}, **timing)
    ws = await WsClient.open(web_port(srv))
    await ws.register("ponger")
    await asyncio.sleep(1.5)
    assert srv.core.find_user("ponger") is not None
    # WebSocket pings off: the IRC PING comes, and silence ends in a Ping timeout.
    quiet = await web_server(make_server, http_settings={"ws_ping_interval": 0.0}, **timing)
    ws2 = await WsClient.open(web_port(quiet))
    await ws2.register("silent")
    await ws2.expect(r"^PING :?relaychat\.local$")
    await ws2.expect(r"^ERROR :Closing Link: .*Ping timeout")
    # Answering the IRC PING keeps a client without WebSocket pings.
    ws3 = await WsClient.open(web_port(quiet))
    await ws3.register("answers")
    for _ in range(3):
        m = await ws3.expect(r"^PING :?(\S+)$")
        await ws3.send(f"PONG :{m.group(1)}")
    assert quiet.core.find_user("answers") is not None


async def test_wss_with_the_tls_certificate(make_server: MakeServer, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert, key = write_server_cert(ca, tmp_path)
    srv = await web_server(
        make_server, http_settings={"tls": True}, tls_cert=str(cert), tls_key=str(key)
    )
    ctx = client_context(ca)
    ws = await WsClient.open(web_port(srv), scheme="wss", ssl=ctx)
    await ws.register("secure")
    tcp = await tcp_client(srv, "plainbob")
    await tcp.send("WHOIS secure")
    await tcp.expect(r" 311 plainbob secure ")
    await ws.close()


@pytest.mark.parametrize("code", [1000, 1001])
async def test_a_page_that_leaves_quits_with_a_plain_reason(
    make_server: MakeServer, code: int
) -> None:
    """A browser closing its page sends 1001 (going away): a normal quit, not an error."""
    srv = await web_server(make_server)
    ws = await WsClient.open(web_port(srv))
    await ws.register("leaver")
    bob = await tcp_client(srv, "bob")
    await ws.send("JOIN #a")
    await bob.send("JOIN #a")
    await ws.expect(r":bob!\S+ JOIN #a")
    await ws.ws.close(code=code)
    await bob.expect(r"^:leaver!\S+ QUIT :Connection closed$")
