"""`relaychat chat --plain`: the terminal client speaking raw lines, driven by Textual's pilot.

Against (a) relaychat's own plain-text listener, with an IRC user on the other side, and (b) a
server written like the sockets tutorial's (``recv(1024)``, replies without a newline), which
goes away and comes back: the status line follows, as in IRC mode.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from textual.pilot import Pilot
from textual.widgets import OptionList, Static

from relaychat.client.plain import PlainClient
from relaychat.server.listeners import Server
from relaychat.tui.app import ChatApp
from relaychat.tui.model import SERVER, Kind, LinkState
from tests.e2e.test_tui import screen_log, status_line, submit, texts, until
from tests.harness import TIMEOUT, LineClient

FAST: dict[str, Any] = dict(backoff_initial=0.05, backoff_max=0.2, connect_timeout=1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def plain_chat(port: int, **settings: Any) -> AsyncIterator[tuple[ChatApp, Pilot[int]]]:
    """The app in plain mode for 127.0.0.1:``port``, connected, on a headless screen."""
    link = PlainClient("127.0.0.1", port, nick="alice", pause=0.1, **{**FAST, **settings})
    app = ChatApp(link)
    async with app.run_test(size=(100, 24)) as pilot:
        await until(pilot, lambda: app.status.state is LinkState.CONNECTED, "connected")
        try:
            yield app, pilot
        finally:
            await link.close(timeout=1.0)


def service_lines(app: ChatApp) -> list[str]:
    """The lines the service sent (not the user's, not the client's own news)."""
    buf = app.state.buffers[SERVER]
    return [line.text for line in buf.lines if line.kind is Kind.MESSAGE and not line.own]


def topic_bar(app: ChatApp) -> str:
    content = app.query_one("#topic", Static).content
    return str(getattr(content, "plain", content))


async def test_plain_mode_chats_through_relaychats_plain_listener(
    make_server: Callable[..., Any],
) -> None:
    srv: Server = await make_server(plain_port=free_port(), plain_pause=0.2)
    ((_, plain_port),) = srv.addresses_of("plain")
    bob = await LineClient.open(*srv.addresses[0])
    await bob.register("bob")
    await bob.send("JOIN #lobby")
    await bob.expect(r" 366 bob #lobby ")
    async with plain_chat(plain_port) as (app, pilot):
        # One buffer (the service), no lists; the status line says where and how.
        assert [w.display for w in app.query(OptionList)] == [False, False]
        assert status_line(app).startswith(f"[plain] 127.0.0.1:{plain_port}  connected")
        assert topic_bar(app).startswith(f"relaychat - plain text with 127.0.0.1:{plain_port}")
        await until(
            pilot, lambda: any("Welcome to" in t for t in service_lines(app)), "the welcome"
        )
        guest = (await bob.expect(r"^:(guest\d+)!\S+ JOIN #lobby$")).group(1)
        await submit(pilot, "hello from the terminal")
        await bob.expect(rf"^:{guest}!\S+ PRIVMSG #lobby :hello from the terminal$")
        mine = app.state.buffers[SERVER].lines[-1]
        assert (mine.text, mine.own) == ("hello from the terminal", True)
        await bob.send("PRIVMSG #lobby :hi, plain ünicode")
        await until(pilot, lambda: "bob: hi, plain ünicode" in service_lines(app), "bob's line")
        await until(pilot, lambda: "bob: hi, plain ünicode" in screen_log(app), "drawn")
        # The service's own commands are just text: /nick is the plain listener's, sent raw
        # with //; IRC commands of the client are refused with a reason.
        await submit(pilot, "//nick plainpal")
        await bob.expect(rf"^:{guest}!\S+ NICK :?plainpal$")
        await submit(pilot, "/join #elsewhere")
        last = app.state.buffers[SERVER].lines[-1]
        assert last.kind is Kind.ERROR
        assert last.text.startswith("/join is an IRC command, and 127.0.0.1:")
        await submit(pilot, "/frobnicate")
        assert texts(app.state.buffers[SERVER])[-1] == "unknown command /frobnicate (try /help)"
        await submit(pilot, "/help")
        assert "  /quit - disconnect and leave relaychat" in texts(app.state.buffers[SERVER])
        await submit(pilot, "/quit")
        await bob.expect(r"^:plainpal!\S+ QUIT ")
        await until(pilot, lambda: not app.is_running, "the app to end")
        assert app.return_code == 0
    await bob.close()


def tutorial_server(listener: socket.socket, replies: list[str]) -> None:
    """The sockets tutorial's server loop, its human replaced by an echo.

    Two changes, both marked: the listening socket is made by the test (bound with
    SO_REUSEADDR, to come back on the same port at once), and ``bye`` is compared without the
    newline our client (like netcat) ends lines with.
    """
    server_socket = listener
    conn, _addr = server_socket.accept()
    while True:
        data = conn.recv(1024).decode()
        if not data or data.strip().lower() == "bye":  # (changed: .strip())
            break
        replies.append(data)
        reply = f"You said: {data.strip()}"  # (changed: the human's input("You: "))
        conn.send(reply.encode())
    conn.close()
    server_socket.close()


def listen(port: int) -> socket.socket:
    server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server_socket.bind(("127.0.0.1", port))
    server_socket.listen(1)
    server_socket.settimeout(TIMEOUT)  # a bounded wait for the client
    return server_socket


async def test_plain_mode_with_the_tutorial_server_follows_it_away_and_back() -> None:
    port = free_port()
    got: list[str] = []
    serving = asyncio.ensure_future(asyncio.to_thread(tutorial_server, listen(port), got))
    async with plain_chat(port) as (app, pilot):
        await submit(pilot, "hello tutorial")
        await until(pilot, lambda: "You said: hello tutorial" in service_lines(app), "a reply")
        assert got == ["hello tutorial\n"]
        reply = app.state.buffers[SERVER].lines[-1]
        assert (reply.nick, reply.kind) == ("127.0.0.1", Kind.MESSAGE)  # no newline, still a line
        await until(
            pilot, lambda: "<127.0.0.1> You said: hello tutorial" in screen_log(app), "drawn"
        )

        await submit(pilot, "bye")  # the tutorial's server ends: the service goes away
        await asyncio.wait_for(serving, TIMEOUT)
        await until(pilot, lambda: "  reconnecting " in status_line(app), "reconnecting")
        assert "(attempt " in status_line(app)
        await submit(pilot, "said while away")  # waits in the outbox, sent once back

        serving = asyncio.ensure_future(asyncio.to_thread(tutorial_server, listen(port), got))
        await until(pilot, lambda: app.status.state is LinkState.CONNECTED, "connected again")
        assert "  connected" in status_line(app)
        await until(pilot, lambda: "You said: said while away" in service_lines(app), "the rest")
        errors = [line.text for line in app.state.buffers[SERVER].lines if line.kind is Kind.ERROR]
        assert errors == ["disconnected: the service closed the connection"]  # nothing lost
        await submit(pilot, "/quit")
        await until(pilot, lambda: not app.is_running, "the app to end")
    await asyncio.wait_for(serving, TIMEOUT)  # our close ended its loop (recv gave b"")
