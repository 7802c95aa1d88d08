"""Two and three nodes of one network: clients on different nodes see one network."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

from tests.cluster.support import needs_nats
from tests.harness import LineClient

pytestmark = needs_nats


async def client(srv: Any, nick: str) -> LineClient:
    host, port = srv.addresses[0]
    c = await LineClient.open(host, port)
    await c.register(nick)
    return c


async def test_channel_and_private_chat_across_nodes(network: Callable[..., Any]) -> None:
    a, b = await network(2)
    alice = await client(a, "alice")
    bob = await client(b, "bob")
    await alice.send("JOIN #chat")
    await alice.expect(r" 366 alice #chat ")
    await bob.send("JOIN #chat")
    await bob.expect(r" 353 bob = #chat :.*alice")
    await alice.expect(r"^:bob!~bob@127\.0\.0\.1 JOIN #chat$")
    await bob.send("PRIVMSG #chat :hello alice")
    await alice.expect(r"^:bob!~bob@127\.0\.0\.1 PRIVMSG #chat :hello alice$")
    await alice.send("PRIVMSG bob :hi bob, privately")
    await bob.expect(r"^:alice!~alice@127\.0\.0\.1 PRIVMSG bob :hi bob, privately$")
    await alice.send("WHOIS bob")
    await alice.expect(r" 312 alice bob n2\.test ")
    await bob.send("QUIT :bye")
    await alice.expect(r"^:bob!~bob@127\.0\.0\.1 QUIT :Quit: bye$")
    await alice.close()


def plain(account: str, password: str) -> str:
    return base64.b64encode(f"\0{account}\0{password}".encode()).decode()


async def test_an_account_registered_on_one_node_logs_in_on_another(
    network: Callable[..., Any],
) -> None:
    n1, n2, n3 = await network(3)
    password = "correct-horse-battery"
    alice = await client(n1, "alice")
    await alice.send(f"REGISTER * * {password}")
    await alice.expect(r"REGISTER SUCCESS alice ")
    await alice.send("QUIT")
    await alice.closed()
    host, port = n2.addresses[0]
    again = await LineClient.open(host, port)
    await again.send("CAP REQ :sasl\r\nNICK ally\r\nUSER ally 0 * :ally")
    await again.expect(r" ACK :?sasl")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:  # the account reaches node 2 through the bucket's watch
        await again.send("AUTHENTICATE PLAIN")
        await again.expect(r"^AUTHENTICATE \+$")
        await again.send(f"AUTHENTICATE {plain('alice', password)}")
        m = await again.expect(r" (903|904) ")
        if m.group(1) == "903" or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert m.group(1) == "903"
    await again.send("CAP END")
    await again.expect(r" 001 ally ")
    # Node 3 sees the login, and refuses the name to someone else.
    carol = await client(n3, "carol")
    for _ in range(50):
        await carol.send("WHOIS ally")
        m = await carol.expect(r" (330 carol ally alice|318 carol ally) ")
        if m.group(1).startswith("330"):
            break
        await asyncio.sleep(0.1)
    assert m.group(1).startswith("330")
    await carol.send(f"REGISTER alice * {password}")
    await carol.expect(r"FAIL REGISTER ACCOUNT_EXISTS alice ")
    await again.close()
    await carol.close()


async def test_monitor_sees_users_of_other_nodes(network: Callable[..., Any]) -> None:
    n1, n2 = await network(2)
    alice = await client(n1, "alice")
    await alice.send("MONITOR + bob,bobby")
    await alice.expect(r" 731 alice :?bob,bobby")
    bob = await client(n2, "bob")
    await alice.expect(r" 730 alice :?bob!")
    await bob.send("NICK bobby")
    await alice.expect(r" 731 alice :?bob$")
    await alice.expect(r" 730 alice :?bobby!")
    await bob.send("QUIT")
    await alice.expect(r" 731 alice :?bobby$")
    await alice.close()


async def test_a_busy_channel_reads_the_same_on_every_node(network: Callable[..., Any]) -> None:
    """Bursts from two nodes at once, then a PART: every member, on either node, reads the
    channel's lines in one and the same order (coalesced per loop turn on each node,
    server/fanout.py rule 4), the PART after the parting user's last line."""
    a, b = await network(2)
    alice, bob = await client(a, "alice"), await client(a, "bob")
    carol, dave = await client(b, "carol"), await client(b, "dave")
    for c in (alice, bob, carol, dave):
        await c.send("JOIN #busy")
        await c.expect(r" 366 \w+ #busy ")
    for c in (alice, bob, carol):
        await c.expect(r"^:dave!\S+ JOIN #busy$")  # everyone is in, seen from both nodes

    async def burst(c: LineClient, nick: str) -> None:
        for i in range(40):
            c.writer.write(f"PRIVMSG #busy :{nick} {i}\r\n".encode())
        await c.writer.drain()

    await asyncio.gather(burst(alice, "alice"), burst(carol, "carol"))
    await carol.send("PART #busy :done")

    async def channel_lines(c: LineClient) -> list[str]:
        got: list[str] = []
        done = {"carol PART #busy done", "alice PRIVMSG #busy :alice 39"}
        while not done <= set(got):
            line = await c.readline()
            if " #busy" in line and (" PRIVMSG " in line or " PART " in line):
                nick, rest = line[1:].split("!", 1)[0], line.split(" ", 1)[1]
                got.append(f"{nick} {rest.replace('PART #busy :done', 'PART #busy done')}")
        return got

    views = {nick: await channel_lines(c) for nick, c in (("bob", bob), ("dave", dave))}
    assert views["bob"] == views["dave"], "the same order on both nodes"
    seen = views["bob"]
    carols = [m for m in seen if m.startswith("carol ")]
    assert carols == [f"carol PRIVMSG #busy :carol {i}" for i in range(40)] + [
        "carol PART #busy done"
    ]
    alices = [m for m in seen if m.startswith("alice ")]
    assert alices == [f"alice PRIVMSG #busy :alice {i}" for i in range(40)]
    for c in (alice, bob, carol, dave):
        await c.close()
