"""The plain-text listener: the sockets tutorial's own client chats with IRC users."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from relaychat.server.listeners import Server
from tests.harness import TIMEOUT, LineClient

MakeServer = Callable[..., Any]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def plain_server(make_server: MakeServer, **kwargs: Any) -> tuple[Server, int]:
    srv = await make_server(plain_port=free_port(), plain_pause=0.2, **kwargs)
    ((_, port),) = srv.addresses_of("plain")
    return srv, port


def tutorial_client(port: int, messages: list[str], replies_wanted: int) -> list[str]:
    """The tutorial's client, as written there: send text (no newline), recv(1024), 'bye'.

    Its user types each message at ``input()``; the pause between messages stands for that
    (text without a newline ends when the sender pauses: ``plain_pause``, 0.2 s here).
    """
    import time

    got: list[str] = []
    client_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client_socket.settimeout(TIMEOUT)
    client_socket.connect(("127.0.0.1", port))
    for message in messages:
        time.sleep(0.5)  # the human typing
        client_socket.send(message.encode())
        if message.lower() == "bye":
            break
        reply = client_socket.recv(1024).decode()
        got.append(reply)
    # Keep reading until the IRC user's answers arrived (the tutorial reads once per send).
    while sum(r.count("bob:") for r in got) < replies_wanted:
        got.append(client_socket.recv(1024).decode())
    time.sleep(0.5)
    client_socket.send(b"bye")
    got.append(client_socket.recv(1024).decode())
    client_socket.close()
    return got


async def test_tutorial_client_chats_with_irc_user(make_server: MakeServer) -> None:
    srv, port = await plain_server(make_server)
    host, irc_port = srv.addresses[0]
    bob = await LineClient.open(host, irc_port)
    await bob.register("bob")
    await bob.send("JOIN #lobby")
    await bob.expect(r" 366 bob #lobby ")

    async def answer() -> None:
        m = await bob.expect(r"^:(guest\d+)!~plain@127\.0\.0\.1 JOIN #lobby$")
        guest = m.group(1)
        await bob.expect(rf"^:{guest}!\S+ PRIVMSG #lobby :hello from a socket$")
        await bob.send("PRIVMSG #lobby :hi there, socket")
        await bob.expect(rf"^:{guest}!\S+ PRIVMSG #lobby :héllo ünicode$")
        await bob.send("PRIVMSG #lobby :got it")
        await bob.expect(rf"^:{guest}!\S+ QUIT :Quit: bye$")

    task = asyncio.create_task(answer())
    got = await asyncio.to_thread(
        tutorial_client, port, ["hello from a socket", "héllo ünicode"], replies_wanted=2
    )
    await asyncio.wait_for(task, TIMEOUT)
    text = "".join(got)
    assert "Welcome to relaychat! You are guest" in text
    assert "bob: hi there, socket" in text
    assert "bob: got it" in text
    assert text.rstrip().endswith("Goodbye!")
    await bob.close()


async def test_lines_multibyte_split_nick_and_several_clients(make_server: MakeServer) -> None:
    _, port = await plain_server(make_server)
    r1, w1 = await asyncio.open_connection("127.0.0.1", port)
    r2, w2 = await asyncio.open_connection("127.0.0.1", port)

    async def read_until(reader: asyncio.StreamReader, needle: str) -> str:
        seen = ""
        while needle not in seen:
            chunk = await asyncio.wait_for(reader.read(4096), TIMEOUT)
            assert chunk, f"closed before {needle!r}; saw {seen!r}"
            seen += chunk.decode()
        return seen

    await read_until(r1, "In #lobby")
    await read_until(r2, "In #lobby")
    w1.write(b"/nick ada\n")
    await read_until(r1, "You are now known as ada")
    await read_until(r2, "is now known as ada")
    # A multi-byte character split across two writes, with a newline: one message.
    data = "naïve café ☕\n".encode()
    w1.write(data[:3])
    await w1.drain()
    await asyncio.sleep(0.05)
    w1.write(data[3:])
    await read_until(r2, "ada: naïve café ☕")
    # Binary junk and an overlong line get clear errors; the connection lives on.
    w1.write(b"x" * 2000 + b"\n")
    await read_until(r1, "too long")
    w1.write(b"\xff\xfe binary\n")
    await read_until(r1, "not UTF-8")  # UTF8ONLY: never relayed as latin-1
    w1.write(b"after junk\n")
    seen = await read_until(r2, "ada: after junk")
    assert "binary" not in seen
    w2.write(b"/help\n")
    await read_until(r2, "/nick NAME")
    w1.write(b"BYE\n")
    tail = await read_until(r1, "Goodbye!")
    assert "Goodbye!" in tail
    assert await asyncio.wait_for(r1.read(), TIMEOUT) == b""
    await read_until(r2, "left (Quit: bye)")
    w2.close()


async def test_last_message_without_newline_before_close_is_delivered(
    make_server: MakeServer,
) -> None:
    srv, port = await plain_server(make_server)
    host, irc_port = srv.addresses[0]
    bob = await LineClient.open(host, irc_port)
    await bob.register("bob")
    await bob.send("JOIN #lobby")
    await bob.expect(r" 366 bob #lobby ")

    def send_and_close() -> None:
        # Closing with unread data makes the kernel reset the connection: still delivered.
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.recv(10)
            s.sendall(b"last words")

    await asyncio.to_thread(send_and_close)
    await bob.expect(r"PRIVMSG #lobby :last words$")
    await bob.close()


async def test_plain_port_zero_means_off(make_server: MakeServer) -> None:
    srv = await make_server()
    assert srv.addresses_of("plain") == []


async def test_plain_flooder_is_dropped_with_a_clear_line(make_server: MakeServer) -> None:
    _, port = await plain_server(
        make_server, limits={"flood_rate": 50.0, "flood_burst": 5, "recvq": 2048}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"spam spam spam spam spam spam\n" * 3000)
    seen = b""
    while chunk := await asyncio.wait_for(reader.read(65536), TIMEOUT):
        seen += chunk
    assert b"* Disconnected: Excess Flood" in seen
