"""The asyncio edge over real sockets: limits, keepalive, containment, shutdown."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest

from relaychat.server import core as server_core
from relaychat.server.listeners import Server
from tests.harness import TIMEOUT, LineClient

MakeServer = Callable[..., Any]


async def connect(srv: Server, nick: str | None = None) -> LineClient:
    host, port = srv.addresses[0]
    client = await LineClient.open(host, port)
    if nick:
        await client.register(nick)
    return client


async def test_overlong_line_gets_417_and_connection_lives(server: Server) -> None:
    c = await connect(server, "alice")
    await c.send("PRIVMSG alice :" + "x" * 600)
    await c.expect(r" 417 alice :Input line was too long")
    await c.send("@" + "a=" + "b" * 9000 + " PING :x")
    await c.expect(r" 417 alice ")
    # A line far longer than any limit is discarded up to its end; the next one works.
    c.writer.write(b"PRIVMSG alice :" + b"y" * 100_000 + b"\r\nPING :still-here\r\n")
    await c.expect(r"PONG \S+ :?still-here")
    await c.close()


async def test_invalid_utf8_is_refused_never_relayed(server: Server) -> None:
    """UTF8ONLY (https://ircv3.net/specs/extensions/utf8-only): the line is refused with
    FAIL INVALID_UTF8 and its sender lives on; nothing of it reaches anyone."""
    a = await connect(server, "alice")
    b = await connect(server, "bob")
    b.writer.write(b"PRIVMSG alice :caf\xe9 \xff\r\n")
    await b.expect(r"^:\S+ FAIL PRIVMSG INVALID_UTF8 :")
    await b.send("PRIVMSG alice :café, in UTF-8")
    await a.expect(r"PRIVMSG alice :café, in UTF-8$")
    assert not any("caf\u00e9 \u00ff" in line for line in a.seen)
    await a.close()
    await b.close()


async def test_ping_timeout_drops_silent_client(make_server: MakeServer) -> None:
    srv = await make_server(ping_interval=0.2, ping_timeout=0.3)
    watcher = await connect(srv, "watcher")
    silent = await connect(srv, "silent")
    for c, n in ((watcher, "watcher"), (silent, "silent")):
        await c.send("JOIN #k")
        await c.expect(rf" 366 {n} #k ")

    async def watch() -> str:
        # The watcher answers its PINGs, so it stays, and sees the silent client's QUIT.
        while True:
            line = await watcher.readline()
            if line.startswith("PING"):
                await watcher.send("PONG " + line.split()[1])
            elif " QUIT " in line:
                return line

    watching = asyncio.create_task(watch())
    await silent.expect(r"^PING ")
    lines = await silent.closed()
    assert any(
        line.startswith("ERROR :Closing Link:") and "Ping timeout" in line for line in lines
    ), lines
    quit_line = await asyncio.wait_for(watching, TIMEOUT)
    assert quit_line.startswith(":silent!") and "Ping timeout: " in quit_line
    await watcher.close()


async def test_registration_timeout(make_server: MakeServer) -> None:
    srv = await make_server(registration_timeout=0.2)
    c = await connect(srv)
    await c.send("NICK lazy")
    lines = await c.closed()
    assert any("Registration timed out" in line for line in lines), lines


async def test_sendq_drops_non_reader_others_unaffected(make_server: MakeServer) -> None:
    srv = await make_server(limits={"sendq": 64 * 1024})
    host, port = srv.addresses[0]
    # A client that never reads: tiny receive buffer so the server's queue fills.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    sock.send(b"NICK stuck\r\nUSER stuck 0 * :stuck\r\nJOIN #flood\r\n")
    talker = await connect(srv, "talker")
    reader = await connect(srv, "reader")
    for c, n in ((talker, "talker"), (reader, "reader")):
        await c.send("JOIN #flood")
        await c.expect(rf" 366 {n} #flood ")
    assert srv.core.find_user("stuck") is not None
    received: list[str] = []
    quit_lines: list[str] = []

    async def read_all() -> None:
        # The reader keeps reading while the talker floods: it must get every message, in order.
        while True:
            line = await reader.readline()
            if " PRIVMSG #flood :" in line:
                received.append(line.split(" :", 1)[1].split(" ", 1)[0])
            elif line.startswith(":stuck!") and " QUIT " in line:
                quit_lines.append(line)
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
        # Pace the talker by the reader, which must never fall behind by a sendq's worth.
        for _ in range(1000):
            if len(received) >= sent - 40 or reading.done():
                break
            await asyncio.sleep(0.001)
        dropped = srv.core.find_user("stuck") is None
        # Memory stays bounded: the stuck client's queue never passes its sendq by much.
        for conn in srv.connections:
            if conn.user is not None and conn.user.nick == "stuck" and conn.transport:
                assert conn.out_size + conn.transport.get_write_buffer_size() < 64 * 1024 + 8192
    assert dropped, "the non-reading client was never dropped"
    await asyncio.wait_for(reading, TIMEOUT)
    assert "SendQ exceeded" in quit_lines[0]
    await talker.send("PRIVMSG #flood :last")
    await reader.expect(r"PRIVMSG #flood :?last$")
    # Every message sent before the drop reached the reader, in order; none was lost.
    before_quit = len(received)
    assert received == [str(i) for i in range(before_quit)]
    assert before_quit > 0
    sock.close()
    await talker.close()
    await reader.close()


async def test_flood_is_throttled_then_dropped(make_server: MakeServer) -> None:
    srv = await make_server(limits={"flood_rate": 100.0, "flood_burst": 5, "recvq": 2048})
    polite = await connect(srv, "polite")
    # 40 lines at once: throttled (not dropped), every one answered, in order.
    polite.writer.write(b"".join(b"PING :%d\r\n" % i for i in range(40)))
    for i in range(40):
        await polite.expect(rf"PONG \S+ :?{i}$")
    flooder = await connect(srv, "flooder")
    flooder.writer.write(b"PRIVMSG polite :spam spam spam spam spam\r\n" * 2000)
    lines = await flooder.closed()
    assert any("Excess Flood" in line for line in lines), lines[-3:]
    await polite.send("PING :alive")
    await polite.expect("alive")


async def test_connection_limits(make_server: MakeServer) -> None:
    srv = await make_server(limits={"max_per_ip": 2})
    a = await connect(srv, "a1")
    b = await connect(srv, "b1")
    c = await connect(srv)
    lines = await c.closed()
    assert lines == ["ERROR :Too many connections from your host"]
    await a.close()
    await b.close()


async def test_handler_exception_is_contained(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    cmd = server_core.COMMANDS["TIME"]
    monkeypatch.setitem(
        server_core.COMMANDS,
        "TIME",
        type(cmd)(cmd.name, boom, cmd.min_params, cmd.pre_registration, cmd.oper, cmd.help),
    )
    a = await connect(server, "alice")
    b = await connect(server, "bob")
    await a.send("TIME")
    await a.expect(r" 400 alice TIME :Internal error")
    await a.send("PRIVMSG bob :still fine")
    await b.expect(r"PRIVMSG bob :still fine")
    await a.close()
    await b.close()


async def test_graceful_shutdown(make_server: MakeServer) -> None:
    srv = await make_server()
    host, port = srv.addresses[0]
    clients = [await connect(srv, f"u{i}") for i in range(5)]
    await srv.stop()
    for c in clients:
        lines = await c.closed()
        assert lines[-1] == "ERROR :Server shutting down"
    with pytest.raises(OSError):
        await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)


async def test_ipv6_and_several_listeners(make_server: MakeServer) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no ::1 on this machine")
    srv = await make_server(host="127.0.0.1,::1")
    addrs = srv.addresses
    assert {a[0] for a in addrs} == {"127.0.0.1", "::1"}
    for host, port in addrs:
        c = await LineClient.open(host, port)
        await c.register("v6" if ":" in host else "v4")
        await c.send("WHOIS " + ("v6" if ":" in host else "v4"))
        m = await c.expect(r" 311 \S+ \S+ \S+ (\S+) ")
        assert m.group(1) in ("127.0.0.1", "0::1")
        await c.close()


async def test_quit_reason_reaches_channel(server: Server) -> None:
    a = await connect(server, "alice")
    b = await connect(server, "bob")
    for c, n in ((a, "alice"), (b, "bob")):
        await c.send("JOIN #q")
        await c.expect(rf" 366 {n} #q ")
    await a.send("QUIT :see you")
    lines = await a.closed()
    assert lines[-1] == "ERROR :Closing Link: 127.0.0.1 (Quit: see you)"
    await b.expect(r"^:alice!~alice@127\.0\.0\.1 QUIT :Quit: see you$")
    await b.close()


async def test_accepted_sockets_have_keepalive_and_nodelay(server: Server) -> None:
    """Every client socket has TCP keepalive (60 s idle, 15 s interval, 4 probes) and
    TCP_NODELAY: set on the listener and inherited on Linux, set per connection elsewhere."""
    c = await connect(server, "alice")
    (conn,) = server.connections
    assert conn.transport is not None
    sock = conn.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    if hasattr(socket, "TCP_KEEPIDLE"):
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 15
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
    await c.close()
