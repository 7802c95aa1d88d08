"""Issue 11's last polish over real sockets, with the SQLite store: metadata and read markers
shared by the connections of one account, and what history keeps of a bot and of CTCP."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relaychat.protocol.message import parse
from relaychat.server.listeners import Server
from tests.harness import free_config
from tests.integration.test_ircv3_history import PASSWORD, connect, join, rows, sync

MakeServer = Callable[..., Any]
META = ("draft/metadata-2", "batch")
TS = "2024-05-01T12:00:00.000Z"


async def test_metadata_set_on_one_connection_is_live_on_the_other(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server: Server = await make_server(free_config(data_dir=str(tmp_path)))
    phone = await connect(server, "alice", *META)
    await phone.send(f"REGISTER * * {PASSWORD}")
    await phone.expect(r" 900 alice ")
    laptop = await connect(server, "alice_", *META, password=f"alice:{PASSWORD}")
    try:
        await laptop.send("METADATA * SUB avatar")
        await laptop.expect(r" 770 alice_ :?avatar$")
        await phone.send("METADATA * SET avatar :https://example.org/a.png")
        await phone.expect(r" 761 alice alice avatar \* :?https://example.org/a.png$")
        await laptop.expect(r"^:\S+ METADATA alice_ avatar \* :?https://example.org/a.png$")
        await laptop.send("METADATA * GET avatar")
        await laptop.expect(r" 761 alice_ alice_ avatar \* :?https://example.org/a.png$")
        assert not any(m.command == "METADATA" for m in await sync(phone, "p1"))
    finally:
        await phone.close()
        await laptop.close()


async def test_read_marker_set_before_login_is_carried_to_the_account(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server: Server = await make_server(free_config(data_dir=str(tmp_path)))
    laptop = await connect(server, "alice", "draft/read-marker")
    phone = None
    try:
        await join(laptop, "alice", "#room")
        await laptop.send(f"MARKREAD #room timestamp={TS}")
        await laptop.expect(rf"MARKREAD #room timestamp={TS}$")
        assert rows(tmp_path, "SELECT owner FROM read_markers") == []  # the connection's
        await laptop.send(f"REGISTER * * {PASSWORD}")  # logs in: the marker goes to the account
        await laptop.expect(r" 900 alice ")
        await sync(laptop, "l1")
        assert rows(tmp_path, "SELECT owner, target FROM read_markers") == [("alice", "#room")]
        phone = await connect(server, "alice_", "draft/read-marker", password=f"alice:{PASSWORD}")
        joined = await join(phone, "alice_", "#room")
        assert [m.params for m in joined if m.command == "MARKREAD"] == [
            ("#room", f"timestamp={TS}")
        ]
    finally:
        await laptop.close()
        if phone is not None:
            await phone.close()


async def test_history_keeps_the_bot_tag_and_no_ctcp(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server: Server = await make_server(free_config(data_dir=str(tmp_path)))
    caps = ("message-tags", "batch", "server-time", "draft/chathistory")
    bot = await connect(server, "bot", *caps)
    reader = await connect(server, "reader", *caps)
    try:
        await bot.send("MODE bot +B")
        await bot.expect(r" MODE bot :?\+B$")
        await join(bot, "bot", "#r")
        await join(reader, "reader", "#r")
        await bot.send("PRIVMSG #r :beep")
        await bot.send("PRIVMSG reader :\x01DCC SEND f.txt 2130706433 5000 3\x01")
        await bot.send("PRIVMSG reader :\x01ACTION waves\x01")
        await reader.expect("ACTION waves")
        await sync(bot, "b1")
        kept = rows(tmp_path, "SELECT text, tags FROM messages ORDER BY seq")
        assert [text for text, _ in kept] == ["beep", "\x01ACTION waves\x01"]
        assert all(json.loads(tags) == {"bot": ""} for _, tags in kept)
        await reader.send("CHATHISTORY LATEST #r * 10")
        got = await reader.expect(r"^@\S+ :bot!\S+ PRIVMSG #r :beep$")
        assert parse(got.string).tags["bot"] == ""
    finally:
        await bot.close()
        await reader.close()
