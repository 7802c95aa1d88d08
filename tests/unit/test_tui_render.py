"""How lines, buffers and replies look, and the commands that need no server."""

from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import Any

from relaychat.client import Delivery
from relaychat.protocol.message import parse
from relaychat.tui.commands import COMMANDS, describe, run_input
from relaychat.tui.model import Buffer, BufferKind, ChatState, Kind, Line
from relaychat.tui.render import buffer_label, line_text, nick_colour, strip_formatting

NOON = datetime(2024, 5, 1, 12, 30)


def line(kind: Kind, text: str, nick: str = "bob", **kw: Any) -> str:
    return line_text(Line(NOON, kind, nick, text, **kw)).plain


def test_each_kind_of_line() -> None:
    assert line(Kind.MESSAGE, "hello") == "12:30 <bob> hello"
    assert line(Kind.ACTION, "waves") == "12:30 * bob waves"
    assert line(Kind.NOTICE, "note") == "12:30 -bob- note"
    assert line(Kind.JOIN, "bob joined #a") == "12:30 --> bob joined #a"
    assert line(Kind.PART, "bob left") == "12:30 <-- bob left"
    assert line(Kind.ERROR, "404 #a Cannot send") == "12:30 !!! 404 #a Cannot send"
    assert line(Kind.INFO, "connected") == "12:30 --- connected"


def test_network_text_is_not_markup_and_loses_irc_formatting() -> None:
    assert line(Kind.MESSAGE, "[bold]not markup[/bold]") == "12:30 <bob> [bold]not markup[/bold]"
    assert strip_formatting("\x02bold\x02 \x0304,12red\x03 \x1ditalic\x0f") == "bold red italic"
    assert strip_formatting("\x0399 and \x033,") == " and ,"  # "\x0399": colour 99


def test_nick_colours_are_stable_and_ignore_case() -> None:
    assert nick_colour("Alice") == nick_colour("alice") == nick_colour("ALICE")
    assert len({nick_colour(n) for n in ("alice", "bob", "carol", "dave", "eve", "mallory")}) > 2


def test_buffer_labels_show_unread_and_highlight() -> None:
    buf = Buffer("#chat", BufferKind.CHANNEL, deque(), joined=True)
    assert buffer_label(2, buf, current=False).plain == "2 #chat"
    buf.unread, buf.highlight = 3, True
    assert buffer_label(2, buf, current=False).plain == "2 #chat (3) !"
    server = Buffer("server buffer", BufferKind.SERVER, deque())
    assert buffer_label(1, server, current=True).plain == "1 (server)"


def test_describe_replies() -> None:
    whois = parse(":srv 311 me bob ~bob host.example * :Bob Smith")
    assert describe(whois) == "bob is ~bob@host.example (Bob Smith)"
    assert describe(parse(":srv 319 me bob :@#a #b")) == "bob is in @#a #b"
    assert describe(parse(":srv 401 me nobody :No such nick/channel")) == (
        "nobody: No such nick/channel"
    )
    assert describe(parse(":srv 305 me :You are no longer marked as being away")) == (
        "You are no longer marked as being away"
    )
    assert describe(parse(":srv FAIL CHATHISTORY INVALID_PARAMS :bad")) == (
        "FAIL CHATHISTORY INVALID_PARAMS: bad"
    )
    assert describe(parse(":bob!u@h INVITE me #c")) == ":bob!u@h INVITE me #c"


class FakeClient:
    """Only what the commands below touch."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def is_channel(self, name: str) -> bool:
        return name.startswith("#")

    async def send(self, target: str, text: str) -> Delivery:
        self.sent.append((target, text))
        return Delivery(())


class FakeUI:
    def __init__(self) -> None:
        self.client: Any = FakeClient()
        self.state = ChatState("alice")
        self.tracked: list[str] = []
        self.redraws = 0

    def redraw(self) -> None:
        self.redraws += 1

    def show(self, name: str) -> None:
        self.state.switch(name)

    def switch_on_join(self, channel: str) -> None:
        pass

    def track_delivery(self, delivery: Delivery, target: str) -> None:
        self.tracked.append(target)

    async def quit(self, reason: str) -> None:
        pass


async def test_run_input_errors_become_lines() -> None:
    ui = FakeUI()
    await run_input(ui, "/nope")
    await run_input(ui, "/msg")
    await run_input(ui, "hello?")  # the server buffer is not a conversation
    got = [(ln.kind, ln.text) for ln in ui.state.current_buffer.lines]
    assert got == [
        (Kind.ERROR, "unknown command /nope (try /help)"),
        (Kind.ERROR, "usage: /msg <nick|#channel> <text>"),
        (Kind.ERROR, "this is the server buffer: /join a channel or /query a nick first"),
    ]
    assert ui.redraws == 3 and ui.client.sent == []


async def test_query_me_and_double_slash() -> None:
    ui = FakeUI()
    await run_input(ui, "/query bob hi there")
    await run_input(ui, "/me waves")
    await run_input(ui, "//not a command")
    assert ui.state.current == "bob"
    assert ui.client.sent == [
        ("bob", "hi there"),
        ("bob", "\x01ACTION waves\x01"),
        ("bob", "/not a command"),
    ]
    kinds = [ln.kind for ln in ui.state.buffers["bob"].lines]
    assert kinds == [Kind.MESSAGE, Kind.ACTION, Kind.MESSAGE] and ui.tracked == ["bob"] * 3


def test_every_command_has_syntax_and_help() -> None:
    names = {cmd.name for cmd in COMMANDS.values()}
    wanted = "join part msg query me nick topic names whois away close quit help quote"
    assert set(wanted.split()) <= names
    for cmd in COMMANDS.values():
        assert cmd.help and cmd.run


def test_readme_lists_every_chat_command() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Chatting from the terminal", 1)[1].split("\n## ", 1)[0]
    for name in {cmd.name for cmd in COMMANDS.values()}:
        assert f"`/{name}" in section, name
    for flag in ("--json", "--no-join", "--timeout", "--notice", "--tls-ca", "--config"):
        assert flag in section, flag
