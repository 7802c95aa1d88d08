"""Network-wide operations: K-lines and D-lines set on one node apply on every node (and are
lifted everywhere), LUSERS counts the whole network, multiline messages and redactions follow
the channel's one order."""

from __future__ import annotations

import asyncio
import json

import pytest

from relaychat.config import Oper
from relaychat.passwords import hash_password
from relaychat.server.listeners import Server
from tests.cluster.conftest import Network
from tests.cluster.support import needs_nats
from tests.harness import TIMEOUT, LineClient

pytestmark = needs_nats

PASSWORD = "oper-secret-5120"


@pytest.fixture(scope="module")
def opers() -> tuple[Oper, ...]:
    return (Oper("root", hash_password(PASSWORD)),)


async def client(srv: Server, nick: str, source: str = "127.0.0.1") -> LineClient:
    c = await LineClient.open(*srv.addresses[0], local_addr=(source, 0))
    await c.register(nick)
    return c


async def until(check: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2 * TIMEOUT
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_klines_and_dlines_apply_on_every_node(
    network: Network, opers: tuple[Oper, ...]
) -> None:
    n1, n2 = await network(2, opers=opers)
    op = await client(n1, "op")
    await op.send(f"OPER root {PASSWORD}")
    await op.expect(r" 381 op ")
    victim = await client(n2, "victim")
    far = await client(n2, "far", source="127.0.0.2")
    # A K-line set on node 1 closes the matching user of node 2 at once...
    await op.send("KLINE 1h ~victim@127.0.0.1 :spamming")
    await op.expect(r"NOTICE op :K-line on ~victim@127\.0\.0\.1 set for 1h")
    lines = await victim.closed()
    assert any("ERROR :Banned: spamming" in line for line in lines), lines
    # ...and node 2 refuses it at registration from then on, and keeps it in bans.json.
    again = await LineClient.open(*n2.addresses[0])
    await again.send("NICK victim\r\nUSER victim 0 * :v")
    await again.expect(r" 465 \S+ :You are banned from this server: spamming")
    await again.closed()
    saved = json.loads((n2.config.data_path() / "bans.json").read_text())
    assert "~victim@127.0.0.1" in json.dumps(saved)
    # Lifted on node 2 (by an oper there): lifted on node 1 too.
    op2 = await client(n2, "op2")
    await op2.send(f"OPER root {PASSWORD}")
    await op2.expect(r" 381 op2 ")
    await op2.send("UNKLINE ~victim@127.0.0.1")
    await op2.expect(r"K-line on ~victim@127\.0\.0\.1 removed")
    await until(lambda: not n1.core.bans.klines, "the K-line lifted on node 1")
    back = await client(n1, "victim")
    # A D-line from node 1 closes a connection from that address on node 2, and refuses new ones.
    await op.send("DLINE 127.0.0.2 :bad network")
    await op.expect(r"NOTICE op :D-line on 127\.0\.0\.2/32 set permanently")
    lines = await far.closed()
    assert any("Banned: bad network" in line for line in lines), lines
    refused = await LineClient.open(*n2.addresses[0], local_addr=("127.0.0.2", 0))
    assert any("bad network" in line for line in await refused.closed())
    await op.send("UNDLINE 127.0.0.2")
    await op.expect(r"D-line on 127\.0\.0\.2/32 removed")
    await until(lambda: not n2.core.bans.dlines, "the D-line lifted on node 2")
    (await client(n2, "far", source="127.0.0.2")).writer.close()
    for c in (op, op2, back):
        await c.close()


async def test_a_node_starting_later_applies_the_networks_bans(
    network: Network, opers: tuple[Oper, ...]
) -> None:
    (n1,) = await network(1, opers=opers)
    op = await client(n1, "op")
    await op.send(f"OPER root {PASSWORD}")
    await op.expect(r" 381 op ")
    await op.send("KLINE ~late@127.0.0.1 :not welcome")
    await op.expect(r"K-line on ~late@127\.0\.0\.1 set permanently")
    (n2,) = await network(1)
    late = await LineClient.open(*n2.addresses[0])
    await late.send("NICK late\r\nUSER late 0 * :l")
    await late.expect(r" 465 \S+ :You are banned from this server: not welcome")
    await op.close()


async def test_lusers_counts_the_network(network: Network) -> None:
    n1, n2, n3 = await network(3)
    alice = await client(n1, "alice")
    bob = await client(n2, "bob")
    carol = await client(n3, "carol")
    await carol.send("MODE carol +i")
    await carol.expect(r"MODE carol :?\+i")

    async def counts() -> str:
        await alice.send("LUSERS")
        m = await alice.expect(r" 251 alice :(.*)$")
        await alice.expect(r" 266 alice ")
        return m.group(1)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2 * TIMEOUT
    while (got := await counts()) != "There are 2 users and 1 invisible on 3 servers":
        assert loop.time() < deadline, got
        await asyncio.sleep(0.05)
    await alice.send("LUSERS")
    await alice.expect(r" 255 alice :I have 1 clients and 2 servers$")
    await alice.expect(r" 266 alice 3 3 :Current global users 3, max 3$")
    for c in (alice, bob, carol):
        await c.close()


async def capable(srv: Server, nick: str, caps: str) -> LineClient:
    c = await LineClient.open(*srv.addresses[0])
    await c.send(f"CAP REQ :{caps}")
    await c.expect(r" CAP \S+ ACK ")
    await c.send("CAP END")
    await c.register(nick)
    await c.send("JOIN #ml")
    await c.expect(rf" 366 {nick} #ml ")
    return c


async def test_multiline_and_redact_travel_in_the_channels_order(network: Network) -> None:
    n1, n2 = await network(2)
    caps = "batch message-tags echo-message draft/multiline draft/message-redaction"
    alice = await capable(n1, "alice", caps)
    modern = await capable(n2, "modern", caps)
    plain = await capable(n2, "plain", "message-tags")
    await alice.send("BATCH +b1 draft/multiline #ml")
    await alice.send("@batch=b1 PRIVMSG #ml :line one")
    await alice.send("@batch=b1 PRIVMSG #ml :line two")
    await alice.send("BATCH -b1")
    await alice.send("PRIVMSG #ml :after")
    m = await alice.expect(r"msgid=([^; ]+)\S* :alice!\S+ PRIVMSG #ml :after$")
    after = m.group(1)
    # A multiline-capable member of the other node gets the batch whole, then what followed.
    start = len(modern.seen)
    await modern.expect(r"PRIVMSG #ml :after$")
    got = [line.split(" ", 1)[1] if line.startswith("@") else line for line in modern.seen[start:]]
    got = [g for g in got if g.startswith(":alice!")]  # (plain's JOIN may come first)
    assert [g.split(" ", 2)[1] for g in got] == ["BATCH", "PRIVMSG", "PRIVMSG", "BATCH", "PRIVMSG"]
    assert got[0].endswith(" draft/multiline #ml") and got[2].endswith(":line two")
    # One without the capability gets the lines one by one, in the same place.
    start = len(plain.seen)
    await plain.expect(r"PRIVMSG #ml :after$")
    texts = [line.rsplit(":", 1)[1] for line in plain.seen[start:] if " PRIVMSG " in line]
    assert texts == ["line one", "line two", "after"]
    # A redaction reaches the capable members of the other node, and them only.
    await alice.send(f"REDACT #ml {after} :oops")
    await modern.expect(rf":alice!\S+ REDACT #ml {after} :?oops$")
    await alice.send("PRIVMSG #ml :fence")
    start = len(plain.seen)
    await plain.expect(r"PRIVMSG #ml :fence$")
    assert not any("REDACT" in line for line in plain.seen[start:])
    for c in (alice, modern, plain):
        await c.close()


async def test_a_nick_taken_later_does_not_read_its_former_owners_private_history(
    network: Network,
) -> None:
    n1, n2 = await network(2)
    alice = await client(n1, "alice")
    bob = await client(n2, "bob")
    # (node 1 learns of bob through the state bucket's watch: not in the same instant)
    await until(lambda: n1.core.find_user("bob") is not None, "bob known on node 1")
    await alice.send("PRIVMSG bob :for bob's eyes only")
    await bob.expect(r"PRIVMSG bob :for bob's eyes only$")
    await bob.send("QUIT")
    await bob.closed()
    for srv in (n1, n2):  # the next "bob", on either node
        await until(lambda srv=srv: srv.core.find_user("bob") is None, "bob gone")
        other = await LineClient.open(*srv.addresses[0])
        await other.send("CAP REQ :draft/chathistory batch server-time message-tags")
        await other.expect(r" ACK ")
        await other.send("CAP END")
        await other.register("bob")
        await other.send("CHATHISTORY LATEST alice * 10")
        await other.expect(r"BATCH \+\S+ chathistory alice")
        start = len(other.seen)
        await other.expect(r"BATCH -")
        assert not any("eyes only" in line for line in other.seen[start:]), other.seen
        await other.send("QUIT")
        await other.closed()
    await alice.close()
