"""IRCv3 capabilities over real sockets: negotiation (CAP LS 302 / REQ / ACK / END) and the
observable effect of each one on the wire."""

from __future__ import annotations

import re
from typing import Any

from relaychat.protocol.message import parse
from relaychat.server.listeners import Server
from tests.harness import LineClient

TIME_RX = r"time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


async def capable(server: Server, nick: str, *caps: str) -> LineClient:
    """A client that negotiated ``caps`` (all must be ACKed) and registered."""
    host, port = server.addresses[0]
    c = await LineClient.open(host, port)
    offered = await c.cap_ls()
    assert set(caps) <= set(offered), set(caps) - set(offered)
    await c.send(f"NICK {nick}")
    await c.send(f"USER {nick} 0 * :{nick} real")
    if caps:
        await c.send("CAP REQ :" + " ".join(caps))
        ack = await c.expect(r"CAP \S+ (ACK|NAK) :?(.*)$")
        assert ack.group(1) == "ACK" and set(ack.group(2).split()) == set(caps)
    await c.send("CAP END")
    await c.expect(r" 001 ")
    await c.expect(r" (376|422) ")
    return c


async def join(c: LineClient, nick: str, channel: str) -> None:
    await c.send(f"JOIN {channel}")
    await c.expect(rf" 366 {nick} {channel} ")


async def test_server_time_message_tags_msgid_echo(server: Server) -> None:
    alice = await capable(server, "alice", "echo-message", "message-tags", "server-time")
    bob = await capable(server, "bob", "message-tags", "server-time")
    carol = await capable(server, "carol")
    for c, n in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        await join(c, n, "#v3")
    await alice.send("@+draft/react=👍 PRIVMSG #v3 :tagged hello")
    echo = parse((await alice.expect(r"PRIVMSG #v3 :tagged hello$")).string)
    got = parse((await bob.expect(r"PRIVMSG #v3 :tagged hello$")).string)
    plain = await carol.expect(r"PRIVMSG #v3 :tagged hello$")
    assert re.search(TIME_RX, got.string if hasattr(got, "string") else bob.seen[-1])
    assert got.tags["msgid"] == echo.tags["msgid"]
    assert got.tags["+draft/react"] == "👍"
    assert plain.string.startswith(":alice!")  # no tags for a client that asked for none
    # TAGMSG reaches message-tags clients only.
    await alice.send("@+typing=active TAGMSG #v3")
    typing = parse((await bob.expect(r"TAGMSG #v3$")).string)
    assert typing.tags["+typing"] == "active"
    await carol.send("PING :after")
    await carol.expect(r"PONG \S+ :?after$")
    assert not any("TAGMSG" in line for line in carol.seen)
    for c in (alice, bob, carol):
        await c.close()


async def test_labeled_response_batch_and_ack(server: Server) -> None:
    alice = await capable(server, "alice", "labeled-response", "batch")
    await alice.send("@label=w1 WHOIS alice")
    start = parse((await alice.expect(r"BATCH \+\S+ labeled-response$")).string)
    assert start.tags == {"label": "w1"}
    ref = start.params[0][1:]
    inner = await alice.expect(r" 311 alice alice ")
    assert inner.string.startswith(f"@batch={ref} ")
    await alice.expect(rf"BATCH -{ref}$")
    await alice.send("@label=p1 PRIVMSG alice :note to self")
    # A message to oneself without echo-message: delivered unlabeled, and the label gets ACK
    # (labeled-response: only an echo-message echo of a message to oneself carries the label).
    await alice.expect(r"^:alice!\S+ PRIVMSG alice :note to self$")
    await alice.expect(r"^@label=p1 :\S+ ACK$")
    await alice.send("@label=a1 AWAY")
    await alice.expect(r"^@label=a1 :\S+ 305 ")
    await alice.close()


async def test_join_related_caps(server: Server) -> None:
    watcher = await capable(
        server,
        "watcher",
        "extended-join",
        "away-notify",
        "multi-prefix",
        "userhost-in-names",
        "invite-notify",
        "setname",
        "chghost",
        "account-notify",
        "account-tag",
        "cap-notify",
    )
    await join(watcher, "watcher", "#j")
    newcomer = await capable(server, "newbie", "setname")
    await newcomer.send("AWAY :not here")
    await newcomer.expect(r" 306 ")
    await join(newcomer, "newbie", "#j")
    await watcher.expect(r"^:newbie!~newbie@127\.0\.0\.1 JOIN #j \* :newbie real$")
    await watcher.expect(r"^:newbie!\S+ AWAY :not here$")
    await newcomer.send("SETNAME :New Name")
    await newcomer.expect(r"SETNAME :New Name$")
    await watcher.expect(r"^:newbie!\S+ SETNAME :New Name$")
    await watcher.send("NAMES #j")
    names = await watcher.expect(r" 353 watcher = #j :(.*)$")
    assert set(names.group(1).split()) == {
        "@watcher!~watcher@127.0.0.1",
        "newbie!~newbie@127.0.0.1",
    }
    await watcher.send("CAP LIST")
    listed = await watcher.expect(r"CAP watcher LIST :(.*)$")
    assert "cap-notify" in listed.group(1).split()
    for c in (watcher, newcomer):
        await c.close()


async def test_standard_replies_explain_limits(make_server: Any) -> None:
    srv = await make_server(limits={"flood_rate": 20.0, "flood_burst": 3, "recvq": 65536})
    c = await capable(srv, "alice", "standard-replies")
    await c.send("PRIVMSG alice :" + "x" * 600)
    await c.expect(r" 417 alice ")
    await c.expect(r"FAIL \* INPUT_TOO_LONG :Line of \d+ bytes dropped: at most 512 bytes")
    c.writer.write(b"".join(b"PING :%d\r\n" % i for i in range(10)))
    await c.expect(r"WARN \* FLOOD_THROTTLED :You are sending too fast")
    await c.expect(r"PONG \S+ :?9$")  # delayed, not dropped
    await c.close()
    plain = await capable(srv, "bob")
    await plain.send("PRIVMSG bob :" + "y" * 600)
    await plain.expect(r" 417 bob ")
    await plain.send("PING :next")
    await plain.expect(r"PONG \S+ :?next$")
    assert not any("FAIL" in line for line in plain.seen)
    await plain.close()
