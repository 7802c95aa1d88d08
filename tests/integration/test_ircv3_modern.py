"""The modern IRCv3 set over real sockets, between two (or three) connections: MONITOR,
draft/metadata-2 notifications, the bot tag, RENAME with and without the cap, UTF8ONLY and
the client tag limit; and a check that docs/ircv3.md names every capability and ISUPPORT
token the running server advertises."""

from __future__ import annotations

import re
from pathlib import Path

from relaychat.protocol.message import parse
from relaychat.server.listeners import Server
from tests.harness import LineClient
from tests.integration.test_ircv3 import capable, join

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ircv3.md"


async def test_monitor_online_offline_and_nick_change(server: Server) -> None:
    alice = await capable(server, "alice")
    await alice.send("MONITOR + bob")
    await alice.expect(r" 731 alice :?bob$")
    bob = await capable(server, "bob")
    await alice.expect(r" 730 alice :?bob!\S+@\S+$")
    await bob.send("NICK robert")
    await alice.expect(r" 731 alice :?bob$")
    await bob.send("NICK BOB")
    await alice.expect(r" 730 alice :?BOB!")
    await bob.send("QUIT :bye")
    await alice.expect(r" 731 alice :?BOB$")
    await alice.send("MONITOR L")
    await alice.expect(r" 732 alice :?bob$")
    await alice.expect(r" 733 alice ")
    await alice.close()
    await bob.close()


async def test_extended_monitor_away(server: Server) -> None:
    alice = await capable(server, "alice", "extended-monitor", "away-notify")
    bob = await capable(server, "bob")
    await alice.send("MONITOR + bob")
    await alice.expect(r" 730 alice ")
    await bob.send("AWAY :lunch")
    await alice.expect(r"^:bob!\S+ AWAY :?lunch$")
    await alice.close()
    await bob.close()


async def test_metadata_subscription_notification(server: Server) -> None:
    foo = await capable(server, "foo", "draft/metadata-2", "batch")
    bar = await capable(server, "bar", "draft/metadata-2", "batch")
    await join(foo, "foo", "#chan")
    await join(bar, "bar", "#chan")
    await bar.send("METADATA * SUB display-name avatar")
    await bar.expect(r" 770 bar display-name avatar$")
    await foo.send("METADATA * SET display-name :Foo The First")
    await foo.expect(r" 761 foo foo display-name \* :Foo The First$")
    got = parse((await bar.expect(r" METADATA foo display-name ")).string)
    assert got.params == ("foo", "display-name", "*", "Foo The First")
    await bar.send("METADATA foo GET display-name")
    await bar.expect(r"BATCH \+\S+ metadata foo$")
    await bar.expect(r" 761 bar foo display-name \* :Foo The First$")
    await foo.close()
    await bar.close()


async def test_bot_tag_seen_by_another_client(server: Server) -> None:
    bot = await capable(server, "robot")
    user = await capable(server, "human", "message-tags")
    plain = await capable(server, "plain")
    for c, n in ((bot, "robot"), (user, "human"), (plain, "plain")):
        await join(c, n, "#chan")
    await bot.send("MODE robot +B")
    await bot.expect(r"MODE robot :?\+B$")
    await bot.send("PRIVMSG #chan :beep boop")
    tagged = parse((await user.expect(r"PRIVMSG #chan :beep boop$")).string)
    assert "bot" in tagged.tags and tagged.tags["bot"] == ""
    untagged = await plain.expect(r"PRIVMSG #chan :beep boop$")
    assert untagged.string.startswith(":robot!")
    await user.send("WHOIS robot")
    await user.expect(r" 335 human robot :")
    for c in (bot, user, plain):
        await c.close()


async def test_rename_with_and_without_the_cap(server: Server) -> None:
    op = await capable(server, "op", "draft/channel-rename")
    modern = await capable(server, "modern", "draft/channel-rename")
    old = await capable(server, "old")
    for c, n in ((op, "op"), (modern, "modern"), (old, "old")):
        await join(c, n, "#boaring")
    await op.send("RENAME #boaring #boring :Typo fix")
    await op.expect(r"^:op!\S+ RENAME #boaring #boring :Typo fix$")
    await modern.expect(r"^:op!\S+ RENAME #boaring #boring :Typo fix$")
    await old.expect(r"^:old!\S+ PART #boaring :Typo fix$")
    await old.expect(r"^:old!\S+ JOIN :?#boring$")
    await old.expect(r" 353 old = #boring :")
    await old.expect(r" 366 old #boring ")
    await old.send("PRIVMSG #boring :hello")
    await modern.expect(r"^:old!\S+ PRIVMSG #boring :hello$")
    for c in (op, modern, old):
        await c.close()


async def test_utf8only_and_the_client_tag_limit(server: Server) -> None:
    alice = await capable(server, "alice", "message-tags")
    bob = await capable(server, "bob")
    await join(alice, "alice", "#a")
    await join(bob, "bob", "#a")
    alice.writer.write(b"PRIVMSG #a :caf\xe9\r\n")
    await alice.expect(r"^:\S+ FAIL PRIVMSG INVALID_UTF8 :")
    await alice.send("@+x=%s TAGMSG #a" % ("y" * 4100))
    await alice.expect(r" 417 alice ")
    await alice.send("PRIVMSG #a :after")
    seen = await bob.expect(r"PRIVMSG #a :after$")
    assert not any("caf" in line for line in bob.seen), seen
    await alice.close()
    await bob.close()


async def test_docs_name_every_capability_and_token(server: Server) -> None:
    host, port = server.addresses[0]
    c = await LineClient.open(host, port)
    caps = list(await c.cap_ls())
    await c.send("CAP END")
    await c.send("NICK docs")
    await c.send("USER docs 0 * :docs")
    tokens: list[str] = []
    while True:
        line = await c.readline()
        msg = parse(line)
        if msg.command == "005":
            tokens += [t.split("=")[0] for t in msg.params[1:-1]]
        if msg.command in ("376", "422"):
            break
    await c.close()
    text = DOCS.read_text()
    assert "sasl" in caps and "draft/chathistory" in caps  # the real server's extras too
    missing = [n for n in caps + tokens if not re.search(rf"\| `{re.escape(n)}` \|", text)]
    assert not missing, f"docs/ircv3.md lacks a row for: {missing}"
