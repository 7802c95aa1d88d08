"""Client libraries nobody here wrote, against the real server over loopback.

Each test lets a library register, join a channel and exchange messages with another client, then
asserts on what the *library* parsed (its nick, target and text), and drives one error path that
the library handles itself. Libraries:

- ``irc`` (jaraco): its synchronous select() reactor runs in a thread; the asyncio variant
  ``irc.client_aio`` runs in the test's loop.
- ``pydle``: asyncio, with IRCv3 CAP negotiation and fallback nicknames.
- ``bottom``: asyncio, a thin rfc2812 parser.

Every wait is bounded by ``TIMEOUT``; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import bottom  # type: ignore[import-untyped]
import irc.client  # type: ignore[import-untyped]
import irc.client_aio  # type: ignore[import-untyped]
import pydle  # type: ignore[import-untyped]
import pytest

from relaychat.server.listeners import Server
from tests.harness import TIMEOUT, LineClient

Event = tuple[Any, ...]


class Events:
    """What a library reported, in order; waits scan everything recorded so far.

    ``record`` runs on the test's loop; other threads use ``record_threadsafe``.
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.items: list[Event] = []
        self._changed = asyncio.Event()

    def record(self, *event: Any) -> None:
        self.items.append(event)
        self._changed.set()

    def record_threadsafe(self, *event: Any) -> None:
        self.loop.call_soon_threadsafe(self.record, *event)

    def find(self, *prefix: Any) -> Event | None:
        for event in self.items:
            if event[: len(prefix)] == prefix:
                return event
        return None

    async def wait_for(self, *prefix: Any, timeout: float = TIMEOUT) -> Event:
        """The first event starting with ``prefix``, waiting for it if need be."""
        deadline = self.loop.time() + timeout
        while True:
            found = self.find(*prefix)
            if found is not None:
                return found
            self._changed.clear()
            remaining = deadline - self.loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                raise AssertionError(f"no event {prefix!r}; saw {self.items[-10:]!r}") from None


@pytest.fixture
async def clients() -> AsyncIterator[list[LineClient]]:
    """LineClients opened by a test; closed at the end whatever happens."""
    opened: list[LineClient] = []
    yield opened
    for client in opened:
        await client.close()


async def line_client(server: Server, opened: list[LineClient], nick: str) -> LineClient:
    host, port = server.addresses[0]
    client = await LineClient.open(host, port)
    opened.append(client)
    await client.register(nick)
    return client


# --- irc (jaraco), synchronous reactor in a thread ---------------------------------------------


class ReactorThread:
    """Runs an ``irc.client.Reactor`` loop in a thread until stopped.

    Everything the library does (connect, handlers, sends) happens in that thread; the test
    asks for actions with :meth:`call`, which the reactor's own scheduler runs there.
    """

    def __init__(self, events: Events) -> None:
        self.events = events
        self.reactor = irc.client.Reactor()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="irc-reactor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call(self, func: Callable[[], object]) -> None:
        self.reactor.scheduler.execute_after(0, func)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                # select() with a short timeout, so that a stop request is seen promptly.
                self.reactor.process_once(timeout=0.05)
        except Exception as exc:  # surfaced to the test through the event log
            self.events.record_threadsafe("reactor-crashed", repr(exc))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join, TIMEOUT)
        assert not self._thread.is_alive(), "the irc reactor thread did not stop"
        self.reactor.disconnect_all("test over")


async def test_irc_reactor_in_a_thread(server: Server, clients: list[LineClient]) -> None:
    host, port = server.addresses[0]
    alice = await line_client(server, clients, "alice")
    await alice.send("JOIN #lib")
    await alice.expect(r" 366 alice #lib ")

    events = Events()
    rt = ReactorThread(events)
    rec = events.record_threadsafe

    def on_welcome(conn: Any, ev: Any) -> None:
        rec("welcome", conn.get_nickname(), ev.target)
        conn.join("#lib")

    def on_join(conn: Any, ev: Any) -> None:
        rec("join", ev.source.nick, ev.target)

    def on_pubmsg(conn: Any, ev: Any) -> None:
        rec("pubmsg", ev.source.nick, ev.target, ev.arguments[0])
        if ev.arguments[0] == "ping: bot":
            conn.privmsg(ev.target, f"pong {ev.source.nick}: all good")

    def on_privmsg(conn: Any, ev: Any) -> None:
        rec("privmsg", ev.source.nick, ev.target, ev.arguments[0])

    def on_nicknameinuse(conn: Any, ev: Any) -> None:
        rec("nicknameinuse", ev.arguments[0])
        conn.nick(ev.arguments[0] + "_")

    for name, handler in [
        ("welcome", on_welcome),
        ("join", on_join),
        ("pubmsg", on_pubmsg),
        ("privmsg", on_privmsg),
        ("nicknameinuse", on_nicknameinuse),
    ]:
        rt.reactor.add_global_handler(name, handler)

    first = rt.reactor.server()
    second = rt.reactor.server()
    rt.start()
    try:
        rt.call(lambda: first.connect(host, port, "ircbot", ircname="jaraco irc"))
        assert await events.wait_for("welcome", "ircbot") == ("welcome", "ircbot", "ircbot")
        await alice.expect(r"^:ircbot!~?ircbot@127\.0\.0\.1 JOIN #lib$")
        await events.wait_for("join", "ircbot", "#lib")

        # Channel chat both ways; the library's parse of the source, target and text.
        await alice.send("PRIVMSG #lib :ping: bot")
        assert await events.wait_for("pubmsg") == ("pubmsg", "alice", "#lib", "ping: bot")
        await alice.expect(r"^:ircbot!\S+ PRIVMSG #lib :pong alice: all good$")

        # A private message with a leading colon and spaces in the text.
        await alice.send("PRIVMSG ircbot ::) two  spaces ")
        assert await events.wait_for("privmsg") == (
            "privmsg",
            "alice",
            "ircbot",
            ":) two  spaces ",
        )

        # Error path: the same nick on a second connection gets 433; the handler picks another.
        rt.call(lambda: second.connect(host, port, "ircbot", ircname="second"))
        assert await events.wait_for("nicknameinuse") == ("nicknameinuse", "ircbot")
        assert await events.wait_for("welcome", "ircbot_") == ("welcome", "ircbot_", "ircbot_")
        await alice.expect(r"^:ircbot_!\S+ JOIN #lib$")
        assert events.find("reactor-crashed") is None
    finally:
        await rt.stop()
    await alice.expect(r"^:ircbot!\S+ QUIT :Quit: test over$")


# --- irc.client_aio, in the test's loop --------------------------------------------------------


async def test_irc_client_aio(server: Server, clients: list[LineClient]) -> None:
    host, port = server.addresses[0]
    bob = await line_client(server, clients, "bob")
    events = Events()
    reactor = irc.client_aio.AioReactor(loop=asyncio.get_running_loop())

    def on_welcome(conn: Any, ev: Any) -> None:
        events.record("welcome", ev.target)
        conn.join("#aio")

    def on_namreply(conn: Any, ev: Any) -> None:
        events.record("names", ev.arguments[1], tuple(ev.arguments[2].split()))

    def on_pubmsg(conn: Any, ev: Any) -> None:
        events.record("pubmsg", ev.source.nick, ev.target, ev.arguments[0])

    def on_nosuchnick(conn: Any, ev: Any) -> None:
        events.record("nosuchnick", ev.arguments[0], ev.arguments[1])

    def on_disconnect(conn: Any, ev: Any) -> None:
        events.record("disconnect")

    for name, handler in [
        ("welcome", on_welcome),
        ("namreply", on_namreply),
        ("pubmsg", on_pubmsg),
        ("nosuchnick", on_nosuchnick),
        ("disconnect", on_disconnect),
    ]:
        reactor.add_global_handler(name, handler)

    conn = reactor.server()
    await asyncio.wait_for(conn.connect(host, port, "aiobot"), TIMEOUT)
    try:
        await events.wait_for("welcome", "aiobot")
        assert await events.wait_for("names", "#aio") == ("names", "#aio", ("@aiobot",))
        await bob.send("JOIN #aio")
        await bob.expect(r" 366 bob #aio ")
        await bob.send("PRIVMSG #aio :\u00e9t\u00e9: caf\u00e9 \U0001f600")
        assert await events.wait_for("pubmsg") == (
            "pubmsg",
            "bob",
            "#aio",
            "\u00e9t\u00e9: caf\u00e9 \U0001f600",
        )
        conn.privmsg("#aio", "seen it")
        await bob.expect(r"^:aiobot!\S+ PRIVMSG #aio :seen it$")

        # Error path: a message to nobody comes back as 401, parsed by the library.
        conn.privmsg("nobody", "hello?")
        assert await events.wait_for("nosuchnick") == (
            "nosuchnick",
            "nobody",
            "No such nick/channel",
        )
        conn.quit("done")
        await events.wait_for("disconnect")
        await bob.expect(r"^:aiobot!\S+ QUIT :Quit: done$")
    finally:
        conn.disconnect()


# --- pydle ---------------------------------------------------------------------------------------


class PydleBot(pydle.Client):  # type: ignore[misc]
    """A pydle client that reports what it sees to an :class:`Events` log."""

    def __init__(self, events: Events, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events = events

    async def on_connect(self) -> None:
        await super().on_connect()
        self.events.record("connect")

    async def on_nick_change(self, old: str, new: str) -> None:
        await super().on_nick_change(old, new)
        self.events.record("nick", old, new)

    async def on_join(self, channel: str, user: str) -> None:
        await super().on_join(channel, user)
        self.events.record("join", channel, user)

    async def on_channel_message(self, target: str, by: str, message: str) -> None:
        await super().on_channel_message(target, by, message)
        self.events.record("channel", target, by, message)

    async def on_private_message(self, target: str, by: str, message: str) -> None:
        await super().on_private_message(target, by, message)
        self.events.record("private", target, by, message)

    async def on_quit(self, user: str, message: str | None = None) -> None:
        await super().on_quit(user, message)
        self.events.record("quit", user, message)

    async def on_disconnect(self, expected: bool) -> None:
        # pydle's default reconnects after an unexpected disconnect; a test never wants that.
        self.events.record("disconnect", expected)


async def test_pydle(server: Server, clients: list[LineClient]) -> None:
    host, port = server.addresses[0]
    # Error path first: "pyd" is taken, so pydle must fall back to its next nickname.
    holder = await line_client(server, clients, "pyd")
    events = Events()
    bot = PydleBot(events, "pyd", fallback_nicknames=["pyd2"], realname="pydle bot")
    await asyncio.wait_for(bot.connect(host, port, tls=False), TIMEOUT)
    try:
        await events.wait_for("connect")
        # pydle learns its nick from 001 and reports it as a NICK change from its placeholder.
        await events.wait_for("nick", "<unregistered>", "pyd2")
        assert bot.nickname == "pyd2"

        await asyncio.wait_for(bot.join("#py"), TIMEOUT)
        await events.wait_for("join", "#py", "pyd2")
        await holder.send("JOIN #py")
        await holder.expect(r" 366 pyd #py ")
        await events.wait_for("join", "#py", "pyd")
        assert set(bot.channels["#py"]["users"]) == {"pyd", "pyd2"}
        assert "pyd2" in bot.channels["#py"]["modes"].get("o", [])

        await holder.send("PRIVMSG #py :hello pyd2: how are you?")
        assert await events.wait_for("channel") == (
            "channel",
            "#py",
            "pyd",
            "hello pyd2: how are you?",
        )
        await holder.send("PRIVMSG pyd2 :psst")
        assert await events.wait_for("private") == ("private", "pyd2", "pyd", "psst")

        await asyncio.wait_for(bot.message("#py", "fine, thanks: and you?"), TIMEOUT)
        await holder.expect(r"^:pyd2!\S+ PRIVMSG #py :fine, thanks: and you\?$")

        # The other side leaves: pydle sees the QUIT and forgets the user.
        await holder.send("QUIT :gone fishing")
        assert await events.wait_for("quit") == ("quit", "pyd", "Quit: gone fishing")
        assert set(bot.channels["#py"]["users"]) == {"pyd2"}
    finally:
        await asyncio.wait_for(bot.disconnect(expected=True), TIMEOUT)
    await events.wait_for("disconnect", True)


class PydleWatcher(PydleBot):
    """pydle's own MONITOR support (``MonitoringSupport``) reporting presence changes."""

    async def on_user_online(self, nickname: str) -> None:
        await super().on_user_online(nickname)
        self.events.record("online", nickname)

    async def on_user_offline(self, nickname: str) -> None:
        await super().on_user_offline(nickname)
        self.events.record("offline", nickname)

    async def on_raw_354(self, message: Any) -> None:
        await super().on_raw_354(message)
        self.events.record("whox", message.params[4])


async def test_pydle_monitor_and_whox(server: Server, clients: list[LineClient]) -> None:
    """pydle reads ISUPPORT MONITOR and WHOX itself: its MONITOR calls work, and the WHOX
    it sends on JOIN (``%tnurha``) fills in the members' realnames and accounts."""
    host, port = server.addresses[0]
    events = Events()
    bot = PydleWatcher(events, "watcher", realname="pydle watcher")
    await asyncio.wait_for(bot.connect(host, port, tls=False), TIMEOUT)
    try:
        await events.wait_for("connect")
        assert await bot.monitor("bob") is True  # pydle saw MONITOR= in 005
        bob = await line_client(server, clients, "bob")
        assert await events.wait_for("online") == ("online", "bob")
        await bob.send("JOIN #mon")
        await bob.expect(r" 366 bob #mon ")
        await asyncio.wait_for(bot.join("#mon"), TIMEOUT)
        await events.wait_for("join", "#mon", "watcher")
        await events.wait_for("whox", "bob")
        assert bot.users["bob"]["realname"] == "bob"
        assert bot.users["bob"]["username"] == "~bob"
        await bob.send("QUIT :bye")
        assert await events.wait_for("offline") == ("offline", "bob")
    finally:
        await asyncio.wait_for(bot.disconnect(expected=True), TIMEOUT)
    await events.wait_for("disconnect", True)


# --- bottom --------------------------------------------------------------------------------------


def make_bottom(host: str, port: int) -> Any:
    client = bottom.Client(host, port, ssl=False, loop=asyncio.get_running_loop())
    # bottom 2.2 builds asyncio.Event(loop=...), which Python 3.10 removed; bottom 3 (Python
    # 3.12+) fixes it. This shim replaces only that factory; parsing and I/O stay bottom's own.
    client._events = collections.defaultdict(asyncio.Event)
    return client


async def test_bottom(server: Server, clients: list[LineClient]) -> None:
    host, port = server.addresses[0]
    carol = await line_client(server, clients, "carol")
    await carol.send("JOIN #bot")
    await carol.expect(r" 366 carol #bot ")
    # The nick bottom asks for first is taken. bottom has no event for 433, so a raw-line
    # handler (bottom's extension point, using bottom's own line splitter) picks another nick.
    taken = await line_client(server, clients, "btm")

    events = Events()
    client = make_bottom(host, port)

    async def on_connect(**kwargs: Any) -> None:
        client.send("NICK", nick="btm")
        client.send("USER", user="btm", realname="bottom bot")

    async def on_raw(next_handler: Callable[[str], Any], message: str) -> None:
        _prefix, command, params = bottom.unpack.split_line(message)
        if command == "433":
            events.record("433", params[1])
            client.send("NICK", nick=params[1] + "2")
        await next_handler(message)

    async def on_ping(message: str, **kwargs: Any) -> None:
        client.send("PONG", message=message)

    async def on_welcome(message: str, **kwargs: Any) -> None:
        events.record("welcome", message)
        client.send("JOIN", channel="#bot")

    async def on_join(nick: str, channel: str, **kwargs: Any) -> None:
        events.record("join", nick, channel)

    async def on_privmsg(nick: str, target: str, message: str, **kwargs: Any) -> None:
        events.record("privmsg", nick, target, message)
        if message.startswith("echo "):
            client.send("PRIVMSG", target=target, message=message[5:])

    async def on_disconnect(**kwargs: Any) -> None:
        events.record("disconnect")

    client.raw_handlers.insert(0, on_raw)
    client.on("CLIENT_CONNECT", on_connect)
    client.on("PING", on_ping)
    client.on("RPL_WELCOME", on_welcome)
    client.on("JOIN", on_join)
    client.on("PRIVMSG", on_privmsg)
    client.on("CLIENT_DISCONNECT", on_disconnect)

    await asyncio.wait_for(client.connect(), TIMEOUT)
    try:
        assert await events.wait_for("433") == ("433", "btm")
        welcome = await events.wait_for("welcome")
        assert "btm2" in welcome[1]
        assert await events.wait_for("join", "btm2") == ("join", "btm2", "#bot")
        await carol.expect(r"^:btm2!\S+ JOIN #bot$")

        await carol.send("PRIVMSG #bot :echo hello: world")
        assert await events.wait_for("privmsg", "carol") == (
            "privmsg",
            "carol",
            "#bot",
            "echo hello: world",
        )
        await carol.expect(r"^:btm2!\S+ PRIVMSG #bot :hello: world$")

        await taken.send("PRIVMSG btm2 :direct")
        assert await events.wait_for("privmsg", "btm") == ("privmsg", "btm", "btm2", "direct")

        client.send("QUIT", message="bye now")
        await events.wait_for("disconnect")
        await carol.expect(r"^:btm2!\S+ QUIT :Quit: bye now$")
    finally:
        await client.disconnect()


# --- three libraries in one channel --------------------------------------------------------------


async def test_three_libraries_talk_to_each_other(server: Server) -> None:
    """pydle, bottom and irc.client_aio in one channel: each parses the other two's lines."""
    host, port = server.addresses[0]
    seen: dict[str, Events] = {name: Events() for name in ("pydle", "bottom", "aio")}

    bot = PydleBot(seen["pydle"], "p1", realname="pydle")

    bt = make_bottom(host, port)

    async def bt_connect(**kwargs: Any) -> None:
        bt.send("NICK", nick="b1")
        bt.send("USER", user="b1", realname="bottom")

    async def bt_welcome(**kwargs: Any) -> None:
        bt.send("JOIN", channel="#mix")

    async def bt_join(nick: str, channel: str, **kwargs: Any) -> None:
        seen["bottom"].record("join", nick, channel)

    async def bt_privmsg(nick: str, target: str, message: str, **kwargs: Any) -> None:
        seen["bottom"].record("msg", nick, target, message)

    bt.on("CLIENT_CONNECT", bt_connect)
    bt.on("RPL_WELCOME", bt_welcome)
    bt.on("JOIN", bt_join)
    bt.on("PRIVMSG", bt_privmsg)

    reactor = irc.client_aio.AioReactor(loop=asyncio.get_running_loop())
    reactor.add_global_handler("welcome", lambda c, e: c.join("#mix"))
    reactor.add_global_handler(
        "join", lambda c, e: seen["aio"].record("join", e.source.nick, e.target)
    )
    reactor.add_global_handler(
        "namreply",
        lambda c, e: seen["aio"].record("names", e.arguments[1], set(e.arguments[2].split())),
    )
    reactor.add_global_handler(
        "pubmsg",
        lambda c, e: seen["aio"].record("msg", e.source.nick, e.target, e.arguments[0]),
    )
    aio = reactor.server()

    # They come in one after the other, so who sees which JOIN is known.
    await asyncio.wait_for(bot.connect(host, port, tls=False), TIMEOUT)
    try:
        await seen["pydle"].wait_for("connect")
        await asyncio.wait_for(bot.join("#mix"), TIMEOUT)
        await seen["pydle"].wait_for("join", "#mix", "p1")

        await asyncio.wait_for(bt.connect(), TIMEOUT)
        await seen["bottom"].wait_for("join", "b1", "#mix")
        await seen["pydle"].wait_for("join", "#mix", "b1")

        await asyncio.wait_for(aio.connect(host, port, "a1"), TIMEOUT)
        await seen["aio"].wait_for("join", "a1", "#mix")
        assert await seen["aio"].wait_for("names", "#mix") == ("names", "#mix", {"@p1", "b1", "a1"})
        await seen["bottom"].wait_for("join", "a1", "#mix")
        await seen["pydle"].wait_for("join", "#mix", "a1")
        assert set(bot.channels["#mix"]["users"]) == {"p1", "b1", "a1"}

        await asyncio.wait_for(bot.message("#mix", "from pydle: hi all"), TIMEOUT)
        bt.send("PRIVMSG", target="#mix", message="from bottom :) hi")
        # (No trailing space: bottom strips every line it reads, trailing parameter included.)
        aio.privmsg("#mix", "from aio:  two  spaces")

        lines = {
            "p1": "from pydle: hi all",
            "b1": "from bottom :) hi",
            "a1": "from aio:  two  spaces",
        }
        for nick, text in lines.items():
            if nick != "b1":
                assert await seen["bottom"].wait_for("msg", nick) == ("msg", nick, "#mix", text)
            if nick != "a1":
                assert await seen["aio"].wait_for("msg", nick) == ("msg", nick, "#mix", text)
        for nick in ("b1", "a1"):
            assert await seen["pydle"].wait_for("channel", "#mix", nick) == (
                "channel",
                "#mix",
                nick,
                lines[nick],
            )
    finally:
        aio.disconnect("bye")
        await bt.disconnect()
        await asyncio.wait_for(bot.disconnect(expected=True), TIMEOUT)
