"""draft/read-marker, draft/multiline, draft/message-redaction and +typing over real sockets,
with the SQLite history store: two (or more) connections, and each record checked in the file
the moment a client received what it carries (nothing is delivered before it is stored).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relaychat.protocol.message import Message, parse
from relaychat.server.listeners import Server
from tests.harness import LineClient, free_config

PASSWORD = "correct-horse-battery"
MakeServer = Callable[..., Any]
BASE = ("message-tags", "batch", "echo-message", "server-time", "labeled-response")


async def connect(server: Server, nick: str, *caps: str, password: str | None = None) -> LineClient:
    """A registered client with ``caps`` ACKed (``password``: ``PASS account:password``)."""
    host, port = server.addresses[0]
    c = await LineClient.open(host, port)
    offered = await c.cap_ls()
    assert set(caps) <= set(offered), set(caps) - set(offered)
    if password is not None:
        await c.send(f"PASS {password}")
    await c.send(f"NICK {nick}")
    await c.send(f"USER {nick} 0 * :{nick}")
    if caps:
        await c.send("CAP REQ :" + " ".join(caps))
        await c.expect(r"CAP \S+ ACK ")
    await c.send("CAP END")
    await c.expect(r" 001 ")
    await c.expect(r" (376|422) ")
    return c


async def join(c: LineClient, nick: str, channel: str) -> list[Message]:
    """JOIN; return what came up to and including the 366."""
    start = len(c.seen)
    await c.send(f"JOIN {channel}")
    await c.expect(rf" 366 {nick} {channel} ")
    return [parse(line) for line in c.seen[start:]]


async def sync(c: LineClient, token: str) -> list[Message]:
    """PING and read up to the PONG; return what came before it."""
    start = len(c.seen)
    await c.send(f"PING :{token}")
    await c.expect(rf"PONG \S+ :?{token}$")
    return [parse(line) for line in c.seen[start:-1]]


async def read_until(c: LineClient, pattern: str) -> list[Message]:
    start = len(c.seen)
    await c.expect(pattern)
    return [parse(line) for line in c.seen[start:]]


def rows(data_dir: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the history file on its own connection: what is committed, nothing else."""
    db = sqlite3.connect(data_dir / "history.db")
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


async def test_read_marker_syncs_two_connections_of_one_account(
    make_server: MakeServer, tmp_path: Path
) -> None:
    config = free_config(data_dir=str(tmp_path))
    server: Server = await make_server(config)
    phone = await connect(server, "alice", "draft/read-marker")
    await phone.send(f"REGISTER * * {PASSWORD}")
    await phone.expect(r" 900 alice ")
    laptop = await connect(server, "alice_", "draft/read-marker", password=f"alice:{PASSWORD}")
    assert any(" 900 alice_ " in line for line in laptop.seen)
    stranger = await connect(server, "eve", "draft/read-marker")
    clients = [phone, laptop, stranger]
    try:
        joined = await join(phone, "alice", "#room")
        cmds = [m.command for m in joined]
        assert cmds.index("JOIN") < cmds.index("MARKREAD") < cmds.index("366")
        assert joined[cmds.index("MARKREAD")].params == ("#room", "*")
        ts = "2024-05-01T12:00:00.000Z"
        await phone.send(f"MARKREAD #room timestamp={ts}")
        await phone.expect(rf"MARKREAD #room timestamp={ts}$")
        got = await laptop.expect(rf"MARKREAD #room timestamp={ts}$")
        assert got.string.startswith(f":{server.core.name} ")
        # Committed before anyone heard of it.
        assert rows(tmp_path, "SELECT owner, target FROM read_markers") == [("alice", "#room")]
        # Older: nothing moves, only the setter is answered.
        await laptop.send("MARKREAD #room timestamp=2020-01-01T00:00:00.000Z")
        await laptop.expect(rf"MARKREAD #room timestamp={ts}$")
        assert not any(m.command == "MARKREAD" for m in await sync(phone, "p1"))
        assert not any(m.command == "MARKREAD" for m in await sync(stranger, "s1"))
    finally:
        for c in clients:
            await c.close()
    await server.stop()
    # A restart: the marker is the account's, on disk.
    again: Server = await make_server(config)
    c = await connect(again, "alice", "draft/read-marker", password=f"alice:{PASSWORD}")
    try:
        joined = await join(c, "alice", "#room")
        assert [m.params for m in joined if m.command == "MARKREAD"] == [
            ("#room", f"timestamp={ts}")
        ]
    finally:
        await c.close()


async def test_multiline_with_and_without_the_capability(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server: Server = await make_server(free_config(data_dir=str(tmp_path)))
    alice = await connect(server, "alice", *BASE, "draft/multiline")
    bob = await connect(server, "bob", *BASE, "draft/multiline", "draft/chathistory")
    carol = await connect(server, "carol", *BASE)
    dave = await connect(server, "dave")
    clients = [alice, bob, carol, dave]
    try:
        for c, nick in ((alice, "alice"), (bob, "bob"), (carol, "carol"), (dave, "dave")):
            await join(c, nick, "#ml")
        for c in clients:
            await sync(c, "joined")  # the others' JOIN lines read: what follows is the batch
        for line in (
            "@label=m1;+draft/reply=x BATCH +42 draft/multiline #ml",
            "@batch=42 PRIVMSG #ml :first line",
            "@batch=42 PRIVMSG #ml :",
            "@batch=42 PRIVMSG #ml :a long one split ",
            "@batch=42;draft/multiline-concat PRIVMSG #ml :in two",
            "BATCH -42",
        ):
            await alice.send(line)
        echo = await read_until(alice, r" BATCH -\S+$")
        assert echo[0].tags["label"] == "m1" and echo[0].params[1:] == ("draft/multiline", "#ml")
        msgid = echo[0].tags["msgid"]
        got = await read_until(bob, r" BATCH -\S+$")
        assert [m.command for m in got] == ["BATCH"] + ["PRIVMSG"] * 4 + ["BATCH"]
        assert got[0].tags["msgid"] == msgid and "draft/multiline-concat" in got[4].tags
        # Stored (one row, its concat flags) before bob read a byte of it.
        assert rows(tmp_path, "SELECT msgid, text, lines FROM messages WHERE key = '#ml'") == [
            (msgid, "first line\n\na long one split \nin two", "0001")
        ]
        fallback = await read_until(carol, r"PRIVMSG #ml :in two$")
        assert [m.params[1] for m in fallback] == ["first line", "a long one split ", "in two"]
        assert [m.tags.get("msgid") for m in fallback] == [msgid, None, None]
        plain = await read_until(dave, r"PRIVMSG #ml :in two$")
        assert [m.tags for m in plain] == [{}, {}, {}]
        # History: the same message, as a batch inside the chathistory batch.
        await bob.send("CHATHISTORY LATEST #ml * 10")
        replay = await read_until(bob, r"^:\S+ BATCH -\S+$")
        kinds = [(m.command, m.params[1] if len(m.params) > 1 else "") for m in replay]
        assert kinds[0] == ("BATCH", "chathistory") and kinds[1] == ("BATCH", "draft/multiline")
        assert [m.params[1] for m in replay if m.command == "PRIVMSG"] == [
            "first line",
            "",
            "a long one split ",
            "in two",
        ]
        # Limits: the cap's values, over the wire.
        lim = server.config.limits
        await alice.send("BATCH +big draft/multiline #ml")
        for _ in range(lim.multiline_max_lines + 1):
            await alice.send("@batch=big PRIVMSG #ml :x")
        await alice.send("BATCH -big")
        await alice.expect(rf"FAIL BATCH MULTILINE_MAX_LINES {lim.multiline_max_lines} :")
        assert not any(m.command == "PRIVMSG" for m in await sync(bob, "b1"))
    finally:
        for c in clients:
            await c.close()


async def test_redaction_seen_by_another_member_and_in_chathistory(
    make_server: MakeServer, tmp_path: Path
) -> None:
    config = free_config(data_dir=str(tmp_path))
    server: Server = await make_server(config)
    red = "draft/message-redaction"
    alice = await connect(server, "alice", *BASE, red)
    bob = await connect(server, "bob", *BASE, red, "draft/chathistory")
    carol = await connect(server, "carol", *BASE, "draft/chathistory")
    clients = [alice, bob, carol]
    try:
        for c, nick in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            await join(c, nick, "#red")
        for c in clients:
            await sync(c, "joined")
        await alice.send("PRIVMSG #red :keep this")
        await alice.send("PRIVMSG #red :oops, wrong channel")
        echo = parse((await alice.expect(r"PRIVMSG #red :oops")).string)
        msgid = echo.tags["msgid"]
        await bob.expect(r"PRIVMSG #red :oops")
        await alice.send(f"@label=r1 REDACT #red {msgid} :wrong channel")
        mine = parse((await alice.expect(r" REDACT ")).string)
        assert mine.tags["label"] == "r1" and mine.params == ("#red", msgid, "wrong channel")
        got = parse((await bob.expect(r" REDACT ")).string)
        assert got.source is not None and got.source.startswith("alice!")
        assert got.params == ("#red", msgid, "wrong channel")
        # In the file before bob saw the REDACT: the REDACT row, and the message emptied.
        assert rows(tmp_path, "SELECT redacted, text FROM messages WHERE msgid = ?", msgid) == [
            (1, "")
        ]
        assert rows(tmp_path, "SELECT count(*) FROM messages WHERE redacts = ?", msgid) == [(1,)]
        assert not any(m.command == "REDACT" for m in await sync(carol, "c1"))
        await bob.send("CHATHISTORY LATEST #red * 10")
        history = await read_until(bob, r"^:\S+ BATCH -\S+$")
        assert [(m.command, m.params[1]) for m in history[1:-1]] == [
            ("PRIVMSG", "keep this"),
            ("REDACT", msgid),
        ]
        await carol.send("CHATHISTORY LATEST #red * 10")
        history = await read_until(carol, r"^:\S+ BATCH -\S+$")
        assert [(m.command, m.params[1]) for m in history[1:-1]] == [("PRIVMSG", "keep this")]
        # bob may not redact alice's message; the channel operator (alice) could.
        keep = next(m for m in history if m.command == "PRIVMSG").tags["msgid"]
        await bob.send(f"REDACT #red {keep}")
        await bob.expect(rf"FAIL REDACT REDACT_FORBIDDEN #red {keep} :")
    finally:
        for c in clients:
            await c.close()
    await server.stop()
    again: Server = await make_server(config)
    c = await connect(again, "bob", "batch", "message-tags", "draft/chathistory", red)
    try:
        await join(c, "bob", "#red")
        await c.send("CHATHISTORY LATEST #red * 10")
        history = await read_until(c, r"^:\S+ BATCH -\S+$")
        assert [(m.command, m.params[1]) for m in history[1:-1]] == [
            ("PRIVMSG", "keep this"),
            ("REDACT", msgid),
        ]
    finally:
        await c.close()


async def test_typing_is_relayed_rate_bound_and_never_stored(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server: Server = await make_server(free_config(data_dir=str(tmp_path)))
    alice = await connect(server, "alice", "message-tags")
    bob = await connect(server, "bob", "message-tags", "batch", "draft/chathistory")
    clients = [alice, bob]
    try:
        for c, nick in ((alice, "alice"), (bob, "bob")):
            await join(c, nick, "#t")
        for c in clients:
            await sync(c, "joined")
        for value in ("active", "active", "active", "done"):
            await alice.send(f"@+typing={value} TAGMSG #t")
        await alice.send("@+typing=active TAGMSG bob")
        await alice.send("PRIVMSG #t :sent")
        seen = await read_until(bob, r"PRIVMSG #t :sent$")
        assert [(m.params[0], m.tags["+typing"]) for m in seen if m.command == "TAGMSG"] == [
            ("#t", "active"),
            ("#t", "done"),
            ("bob", "active"),
        ]
        await bob.send("CHATHISTORY LATEST #t * 10")
        history = await read_until(bob, r"^:\S+ BATCH -\S+$")
        assert [m.command for m in history] == ["BATCH", "PRIVMSG", "BATCH"]
        assert rows(tmp_path, "SELECT command FROM messages") == [("PRIVMSG",)]
        late = await connect(server, "late")
        clients.append(late)
        replay = await join(late, "late", "#t")
        assert "TAGMSG" not in [m.command for m in replay]
    finally:
        for c in clients:
            await c.close()
