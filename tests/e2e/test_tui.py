"""The terminal client (`relaychat chat`) driven by Textual's headless pilot, against the real
server in the test's event loop. Another user is a raw :class:`LineClient`, so what the app sends
is checked on the wire, not only on screen."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, OptionList, RichLog, Static

from relaychat.client import Client
from relaychat.server.listeners import Server
from relaychat.tui.app import ChatApp
from relaychat.tui.model import Buffer, Kind, LinkState
from tests.harness import TIMEOUT, LineClient

FAST: dict[str, Any] = dict(
    ping_interval=5.0,
    ping_timeout=5.0,
    backoff_initial=0.05,
    backoff_max=0.2,
    connect_timeout=1.0,
    ack_delay=0.02,
    pace_rate=200.0,
    pace_burst=50,
    request_timeout=TIMEOUT,
)


@asynccontextmanager
async def chat(
    server: Server, nick: str = "alice", size: tuple[int, int] = (100, 30), **settings: Any
) -> AsyncIterator[tuple[ChatApp, Pilot[int]]]:
    """The app for ``nick``, connected, on a headless screen of ``size``."""
    host, port = server.addresses[0]
    client = Client(host, port, nick=nick, **{**FAST, **settings})
    app = ChatApp(client, lag_interval=0.5)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.status.state is LinkState.CONNECTED, "connected")
        try:
            yield app, pilot
        finally:
            await client.close(timeout=1.0)


async def until(pilot: Pilot[int], cond: Callable[[], object], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def bob_in(server: Server, *channels: str) -> LineClient:
    bob = await LineClient.open(*server.addresses[0])
    await bob.register("bob")
    for channel in channels:
        await bob.send(f"JOIN {channel}")
        await bob.expect(f" 366 bob {channel} ")
    return bob


async def type_line(pilot: Pilot[int], text: str) -> None:
    """Type ``text`` key by key, then Enter (slow: about 0.1 s a key in the pilot)."""
    await pilot.press(*text, "enter")


async def submit(pilot: Pilot[int], text: str) -> None:
    """Put ``text`` on the input line and press Enter."""
    pilot.app.query_one("#input", Input).value = text
    await pilot.press("enter")


def texts(buf: Buffer | None) -> list[str]:
    assert buf is not None
    return [line.text for line in buf.lines]


def screen_log(app: ChatApp) -> str:
    """The text of the buffer on screen, as drawn."""
    (log,) = [w for w in app.query(RichLog) if w.display]
    return "\n".join(strip.text for strip in log.lines)


def status_line(app: ChatApp) -> str:
    content = app.query_one("#status", Static).content
    return str(getattr(content, "plain", content))


async def test_typing_a_message_shows_it_and_sends_it(server: Server) -> None:
    bob = await bob_in(server, "#chat")
    async with chat(server, channels=("#chat",)) as (app, pilot):
        await until(pilot, lambda: app.state.current == "#chat", "#chat on screen")
        await until(pilot, lambda: "bob" in app.state.buffers["#chat"].members, "NAMES")
        await type_line(pilot, "hello bob")
        await bob.expect(r"^:alice!\S+ PRIVMSG #chat :hello bob$")
        line = app.state.buffers["#chat"].lines[-1]
        assert (line.nick, line.text, line.own) == ("alice", "hello bob", True)
        await until(pilot, lambda: "<alice> hello bob" in screen_log(app), "the line drawn")
        # Up recalls the line; `//` sends a line that starts with a slash.
        await pilot.press("up")
        assert app.query_one("#input", Input).value == "hello bob"
        await pilot.press("down")  # back to the (empty) draft
        assert app.query_one("#input", Input).value == ""
        await submit(pilot, "//slash is not a command")
        await bob.expect(r"PRIVMSG #chat :/slash is not a command$")
        # The nick list shows prefixes: bob joined first, so he is the channel operator.
        nicks = app.query_one("#nicks", OptionList)
        shown = [str(nicks.get_option_at_index(i).prompt) for i in range(nicks.option_count)]
        assert shown == ["@bob", "alice"]
    await bob.close()


async def test_a_message_from_another_client_appears_in_the_right_buffer(
    server: Server,
) -> None:
    bob = await bob_in(server, "#a", "#b")
    async with chat(server, channels=("#a", "#b")) as (app, pilot):
        await until(pilot, lambda: app.state.buffers.get("#b", None) is not None, "#b")
        await until(pilot, lambda: app.state.buffers["#b"].joined, "both channels joined")
        app.show("#a")
        await bob.send("PRIVMSG #b :news for b")
        await bob.send("PRIVMSG #b :alice: are you there?")
        await bob.send("PRIVMSG alice :a secret")
        await until(pilot, lambda: app.state.get("bob") is not None, "the private message")
        await until(pilot, lambda: len(texts(app.state.get("#b"))) >= 3, "the lines in #b")
        b = app.state.buffers["#b"]
        assert texts(b)[-2:] == ["news for b", "alice: are you there?"]
        assert (b.unread, b.highlight) == (2, True)  # named: highlighted
        assert [line.text for line in app.state.buffers["#a"].lines if line.nick == "bob"] == []
        query = app.state.buffers["bob"]
        assert texts(query) == ["a secret"] and query.highlight  # a private message highlights
        labels = app.query_one("#buffers", OptionList)
        shown = [str(labels.get_option_at_index(i).prompt) for i in range(labels.option_count)]
        assert shown == ["1 (server)", "2 #a", "3 #b (2) !", "4 bob (1) !"]
        # Showing the buffer clears its markers; Ctrl+N walks the buffer list.
        await pilot.press("ctrl+n")
        assert app.state.current == "#b" and (b.unread, b.highlight) == (0, False)
        await until(pilot, lambda: "alice: are you there?" in screen_log(app), "#b drawn")
        await pilot.click("#buffers", offset=(3, 3))  # a click on "4 bob"
        assert app.state.current == "bob"
        await until(pilot, lambda: "a secret" in screen_log(app), "the query drawn")
    await bob.close()


async def test_join_opens_a_buffer_and_part_close_leave_it(server: Server) -> None:
    bob = await bob_in(server)
    async with chat(server) as (app, pilot):
        await submit(pilot, "/join #new")
        await until(pilot, lambda: app.state.current == "#new", "#new on screen")
        await until(pilot, lambda: app.state.buffers["#new"].nicks() == [("@", "alice")], "NAMES")
        topic = app.query_one("#topic", Static).content
        assert str(getattr(topic, "plain", topic)).startswith("#new (1)")
        await submit(pilot, "/topic all things new")
        await until(pilot, lambda: app.state.buffers["#new"].topic == "all things new", "topic")
        await bob.send("JOIN #new")
        await until(pilot, lambda: "bob" in app.state.buffers["#new"].members, "bob's join")
        await submit(pilot, "/part")
        await until(pilot, lambda: not app.state.buffers["#new"].joined, "the part")
        await bob.expect(r"^:alice!\S+ PART #new")
        await submit(pilot, "/close")
        await until(pilot, lambda: "#new" not in app.state.buffers, "the buffer closed")
        assert app.state.current == "server buffer"
        await submit(pilot, "/join nohash")  # a missing # is added
        await until(pilot, lambda: app.state.current == "#nohash", "#nohash")
    await bob.close()


async def test_status_line_follows_the_connection(make_server: Callable[..., Any]) -> None:
    srv: Server = await make_server()
    port = srv.addresses[0][1]
    async with chat(srv, channels=("#c",)) as (app, pilot):
        assert status_line(app).startswith("[alice] ")
        await until(pilot, lambda: "connected (lag " in status_line(app), "the lag")
        await srv.stop()
        await until(pilot, lambda: "  reconnecting " in status_line(app), "reconnecting")
        assert "(attempt " in status_line(app)
        await submit(pilot, "said while away")  # queued, sent once back
        await make_server(port=port)
        await until(pilot, lambda: app.status.state is LinkState.CONNECTED, "connected again")
        assert "  connected" in status_line(app)
        await until(pilot, lambda: app.state.buffers["#c"].joined, "the rejoin")
        assert not [line for line in app.state.buffers["#c"].lines if line.kind is Kind.ERROR]


async def test_commands(server: Server) -> None:
    bob = await bob_in(server, "#c")
    async with chat(server, channels=("#c",)) as (app, pilot):
        await until(pilot, lambda: "bob" in members(app, "#c"), "bob in the nick list")
        # Tab completes nicks (with ": " at the start of a line), commands and channels.
        await pilot.press("b", "tab")
        box = app.query_one("#input", Input)
        assert box.value == "bob: "
        await pilot.press(*"hi", "enter")
        await bob.expect(r"PRIVMSG #c :bob: hi$")
        await pilot.press("/", "w", "h", "o", "tab")
        assert box.value == "/whois "
        box.value += "bob"
        await pilot.press("enter")
        await until(
            pilot, lambda: any("bob is ~bob@" in t for t in texts(app.state.get("#c"))), "whois"
        )
        await submit(pilot, "/me waves")
        await bob.expect("PRIVMSG #c :\x01ACTION waves\x01$")
        assert app.state.buffers["#c"].lines[-1].kind is Kind.ACTION
        await submit(pilot, "/msg bob psst")
        await bob.expect(r"PRIVMSG bob :psst$")
        await submit(pilot, "/query bob hello you")
        await bob.expect(r"PRIVMSG bob :hello you$")
        assert app.state.current == "bob" and texts(app.state.get("bob")) == ["psst", "hello you"]
        await submit(pilot, "/nick alicia")
        await until(pilot, lambda: app.state.nick == "alicia", "the new nick")
        await bob.expect(r"^:alice!\S+ NICK :?alicia$")
        await submit(pilot, "/away lunch")
        away = "marked as being away"
        await until(pilot, lambda: away in " ".join(texts(app.state.get("bob"))), "the away reply")
        await submit(pilot, "/quote PRIVMSG bob :raw line")
        await bob.expect(r"PRIVMSG bob :raw line$")
        await submit(pilot, "/frobnicate")
        assert app.state.buffers["bob"].lines[-1].text == "unknown command /frobnicate (try /help)"
        await submit(pilot, "/join")
        assert app.state.buffers["bob"].lines[-1].text.startswith("usage: /join <#channel>")
        await submit(pilot, "/help")
        assert any(t.startswith("  /quote <raw IRC line>") for t in texts(app.state.get("bob")))
        await submit(pilot, "/quit bye now")
        await bob.expect(r"^:alicia!\S+ QUIT :(Quit: )?bye now$")
        await until(pilot, lambda: not app.is_running, "the app to end")
        assert app.return_code == 0
    await bob.close()


def members(app: ChatApp, name: str) -> dict[str, tuple[str, str]]:
    buf = app.state.get(name)
    return buf.members if buf is not None else {}


async def test_screenshot(server: Server, tmp_path: Path) -> None:
    """A lively screen, exported as SVG. `RELAYCHAT_SCREENSHOT=docs/chat.svg` keeps it (that is
    how the README's picture is made)."""
    others = {
        nick: await LineClient.open(*server.addresses[0]) for nick in ("bob", "carol", "dave")
    }
    async with chat(server, size=(100, 20), channels=("#lobby", "#dev")) as (app, pilot):
        await until(pilot, lambda: app.state.current == "#lobby", "#lobby")
        await until(pilot, lambda: bool(members(app, "#dev")), "#dev joined")
        await submit(pilot, "/topic Welcome to #lobby - be kind, stay curious")
        for nick, client in others.items():
            await client.register(nick)
            await client.send("JOIN #lobby")
        await others["bob"].send("JOIN #dev")
        await until(pilot, lambda: len(members(app, "#lobby")) == 4, "everyone in #lobby")
        script = [
            ("bob", "#lobby", "morning all!"),
            ("alice", "#lobby", "hi bob, how was the trip?"),
            ("bob", "#lobby", "great - the train had wifi the whole way"),
            ("carol", "#lobby", "\x01ACTION waves from the office\x01"),
            ("dave", "#lobby", "alice: did you push the release notes?"),
            ("alice", "#lobby", "dave: yes, they are in docs/ - reviews welcome"),
            ("bob", "#dev", "build 1432 is green"),
            ("carol", "alice", "lunch at 1?"),
        ]
        for nick, target, text in script:
            if nick == "alice":
                await submit(pilot, text)
            else:
                await others[nick].send(f"PRIVMSG {target} :{text}")
            buf = "carol" if target == "alice" else target
            shown = text.removeprefix("\x01ACTION ").rstrip("\x01")
            await until(pilot, lambda b=buf, t=shown: t in all_texts(app, b), shown)
        await until(pilot, lambda: "lag" in status_line(app), "the lag")
        path = Path(os.environ.get("RELAYCHAT_SCREENSHOT") or tmp_path / "chat.svg")
        app.save_screenshot(path.name, str(path.parent))
        svg = path.read_text()
        assert svg.startswith("<svg") and "lobby" in svg and "lunch" not in svg
    for client in others.values():
        await client.close()


def all_texts(app: ChatApp, name: str) -> list[str]:
    buf = app.state.get(name)
    return [line.text for line in buf.lines] if buf is not None else []
