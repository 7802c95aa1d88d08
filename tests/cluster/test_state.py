"""Channel state applies network-wide: modes, topic, operators, bans, keys, limits, invites, kicks;
and history said on one node reads the same from another."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from tests.cluster.support import needs_nats
from tests.harness import TIMEOUT, LineClient

pytestmark = needs_nats


async def client(srv: Any, nick: str, caps: str = "") -> LineClient:
    host, port = srv.addresses[0]
    c = await LineClient.open(host, port)
    if caps:
        await c.send(f"CAP REQ :{caps}")
        await c.expect(r" CAP \S+ ACK ")
        await c.send("CAP END")
    await c.register(nick)
    return c


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Retry ``check`` until it holds (state crosses nodes asynchronously)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2 * TIMEOUT
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never true: {what}")


async def asks(c: LineClient, line: str, answer: str, end: str) -> bool:
    """Send ``line``, read up to a reply matching ``end``; whether some line on the way (or
    that one) matched ``answer``."""
    start = len(c.seen)
    await c.send(line)
    await c.expect(end)
    return any(re.search(answer, seen) for seen in c.seen[start:])


async def test_modes_topic_ops_bans_and_kicks_apply_everywhere(
    network: Callable[..., Any],
) -> None:
    n1, n2, n3 = await network(3)
    alice = await client(n1, "alice")
    bob = await client(n2, "bob")
    carol = await client(n3, "carol")
    await alice.send("JOIN #ops")
    await alice.expect(r" 353 alice = #ops :?@alice$")
    for c, nick in ((bob, "bob"), (carol, "carol")):
        await c.send("JOIN #ops")
        await c.expect(rf" 366 {nick} #ops ")
    await alice.expect(r":carol!\S+ JOIN #ops")
    # Names and operator status seen from the third node.
    await until(
        lambda: asks(carol, "NAMES #ops", r" 353 carol = #ops :?.*@alice", r" 366 carol #ops "),
        "carol sees alice as operator",
    )
    # A mode set on node 1 shows on nodes 2 and 3 and holds there.
    await alice.send("MODE #ops +m")
    await bob.expect(r"^:alice!\S+ MODE #ops \+m$")
    await carol.expect(r"^:alice!\S+ MODE #ops \+m$")
    await until(
        lambda: asks(carol, "MODE #ops", r" 324 carol #ops \+mnt", r" 329 carol #ops "),
        "+m on node 3",
    )
    await carol.send("PRIVMSG #ops :may I?")
    await carol.expect(r" 404 carol #ops ")
    # Operator status given on node 1 to a user of node 2 lets it act on node 2.
    await alice.send("MODE #ops +o bob")
    await bob.expect(r"^:alice!\S+ MODE #ops \+o bob$")
    await until(
        lambda: asks(bob, "TOPIC #ops :set by bob", r"^:bob!\S+ TOPIC #ops", r" (482|TOPIC) "),
        "bob may set the topic",
    )
    await carol.expect(r"^:bob!\S+ TOPIC #ops :set by bob$")
    await until(
        lambda: asks(carol, "TOPIC #ops", r" 332 carol #ops :set by bob", r" 333 carol "),
        "topic on node 3",
    )
    # A ban set on node 2 applies on node 3.
    await alice.send("MODE #ops -m")
    await carol.expect(r"MODE #ops -m")
    await bob.send("MODE #ops +b carol!*@*")
    await carol.expect(r"^:bob!\S+ MODE #ops \+b carol!\*@\*$")
    await until(
        lambda: asks(
            carol, "PRIVMSG #ops :banned?\r\nPING :ban", r" 404 carol #ops ", r"PONG .*ban"
        ),
        "the ban holds on node 3",
    )
    # A kick from node 1 of a user of node 3: everyone sees it, the channel no longer has it.
    await alice.send("KICK #ops carol :out")
    await carol.expect(r"^:alice!\S+ KICK #ops carol :?out$")
    await bob.expect(r"^:alice!\S+ KICK #ops carol :?out$")
    await until(
        lambda: _not(asks(bob, "NAMES #ops", r" 353 bob = #ops :?.*carol", r" 366 bob #ops ")),
        "carol gone from #ops on node 2",
    )
    # Key and limit set on node 1 apply to a join on node 3.
    await alice.send("MODE #ops -b+kl carol!*@* sesame 5")
    await until(
        lambda: asks(carol, "JOIN #ops", r" 475 carol #ops ", r" (475|366) carol #ops "),
        "the key holds on node 3",
    )
    await carol.send("JOIN #ops sesame")
    await carol.expect(r" 366 carol #ops ")
    # Invite-only: an invitation from node 2 lets a user of node 3 in.
    await alice.send("MODE #ops -k+i sesame")
    await carol.send("PART #ops")
    await carol.expect(r"PART #ops")
    await until(
        lambda: asks(carol, "JOIN #ops", r" 473 carol #ops ", r" (473|366) carol #ops "),
        "+i holds on node 3",
    )
    await bob.send("INVITE carol #ops")
    await carol.expect(r"^:bob!\S+ INVITE carol #ops$")
    await until(
        lambda: asks(carol, "JOIN #ops", r" 366 carol #ops ", r" (473|366) carol #ops "),
        "the invitation lets carol in",
    )
    for c in (alice, bob, carol):
        await c.close()


async def _not(result: Awaitable[bool]) -> bool:
    return not await result


async def test_history_said_on_one_node_reads_from_another(network: Callable[..., Any]) -> None:
    n1, _, n3 = await network(3)
    alice = await client(n1, "alice", "message-tags server-time batch draft/chathistory")
    await alice.send("JOIN #h")
    await alice.expect(r" 366 alice #h ")
    msgids = []
    for i in range(5):
        await alice.send(f"@label=l{i} PRIVMSG #h :line {i}")
    carol = await client(n3, "carol", "message-tags server-time batch draft/chathistory")
    await carol.send("JOIN #h")
    await carol.expect(r" 366 carol #h ")
    await carol.send("CHATHISTORY LATEST #h * 10")
    await carol.expect(r"BATCH \+\S+ chathistory #h")
    for i in range(5):
        m = await carol.expect(rf"msgid=([^; ]+).* PRIVMSG #h :line {i}$")
        msgids.append(m.group(1))
    await carol.expect(r"BATCH -")
    assert len(set(msgids)) == 5
    # A plain client (no chathistory) joining on node 2 gets the replay.
    dave = await client(n3, "dave")
    await dave.send("JOIN #h")
    for i in range(5):
        await dave.expect(rf"PRIVMSG #h :\[\d\d:\d\d:\d\d\] line {i}$")
    # The same message found by msgid from the third node: AFTER the second gives the rest.
    await carol.send(f"CHATHISTORY AFTER #h msgid={msgids[1]} 10")
    await carol.expect(r"BATCH \+")
    for i in (2, 3, 4):
        await carol.expect(rf"PRIVMSG #h :line {i}$")
    await carol.expect(r"BATCH -")
    for c in (alice, carol, dave):
        await c.close()


async def test_one_order_for_every_member_on_every_node(network: Callable[..., Any]) -> None:
    nodes = await network(3)
    senders, watchers = [], []
    for i, srv in enumerate(nodes):
        s = await client(srv, f"talker{i}")
        w = await client(srv, f"watcher{i}")
        for c, nick in ((s, f"talker{i}"), (w, f"watcher{i}")):
            await c.send("JOIN #order")
            await c.expect(rf" 366 {nick} #order ")
        senders.append(s)
        watchers.append(w)
    # Everyone sees everyone before the burst.
    for w in watchers:
        await until(
            partial(asks, w, "NAMES #order", r" 353 \S+ = #order :?(\S+ ){5}\S+$", r" 366 "),
            "six members everywhere",
        )
    count = 40

    async def talk(i: int, s: LineClient) -> None:
        for n in range(count):
            s.writer.write(f"PRIVMSG #order :{i}-{n}\r\n".encode())
            if n % 8 == 0:
                await s.writer.drain()
                await asyncio.sleep(0)
        await s.writer.drain()

    await asyncio.gather(*(talk(i, s) for i, s in enumerate(senders)))
    seen: list[list[str]] = []
    for w in watchers:
        got: list[str] = []
        while len(got) < 3 * count:
            m = await w.expect(r" PRIVMSG #order :(\d+-\d+)$")
            got.append(m.group(1))
        seen.append(got)
    assert seen[0] == seen[1] == seen[2]
    for i in range(3):  # and each sender's own order is kept
        mine = [x for x in seen[0] if x.startswith(f"{i}-")]
        assert mine == [f"{i}-{n}" for n in range(count)]
    for c in (*senders, *watchers):
        await c.close()
