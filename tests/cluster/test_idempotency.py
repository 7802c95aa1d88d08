"""Exactly-once on a cluster: an idempotency key is relayed once, whichever node its repeats
reach, after a node restart too; bad keys are refused as on one process (``cluster/idem.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import nats
import pytest

from relaychat.server.idempotency import CAP
from relaychat.server.listeners import Server
from tests.cluster.conftest import Network
from tests.cluster.support import NatsServer, needs_nats, node_config
from tests.cluster.test_failures import _healed
from tests.e2e.test_send_exactly_once import FAST_SEND
from tests.faultproxy import FaultProxy
from tests.harness import TIMEOUT, LineClient

pytestmark = needs_nats

CAPS = f"message-tags echo-message labeled-response server-time {CAP}"


async def sender(srv: Server, nick: str, token: str = "") -> tuple[LineClient, str]:
    """A client with the idempotency capability and its identity token."""
    c = await LineClient.open(*srv.addresses[0])
    await c.send(f"CAP REQ :{CAPS}")
    await c.expect(r" CAP \S+ ACK ")
    await c.send(f"IDEM TOKEN {token}".strip())
    m = await c.expect(r"^:\S+ IDEM TOKEN (\S+)$")
    await c.send("CAP END")
    await c.register(nick)
    return c, m.group(1)


async def member(srv: Server, nick: str, channel: str) -> LineClient:
    c = await LineClient.open(*srv.addresses[0])
    await c.register(nick)
    await c.send(f"JOIN {channel}")
    await c.expect(rf" 366 {nick} {channel} ")
    return c


async def keyed(c: LineClient, key: str, label: str, target: str, text: str) -> tuple[str, str]:
    """Send a keyed PRIVMSG; returns the echo's (msgid, time)."""
    await c.send(f"@+relaychat.dev/idem={key};label={label} PRIVMSG {target} :{text}")
    m = await c.expect(rf"^@(\S*label={label}\S*) :\S+ PRIVMSG {target} :{text}$")
    tags = dict(t.partition("=")[::2] for t in m.group(1).split(";"))
    return tags["msgid"], tags["time"]


async def received(c: LineClient, pattern: str, fence: str) -> int:
    """How many lines matching ``pattern`` ``c`` read before the line matching ``fence``."""
    start = len(c.seen)
    await c.expect(fence)
    return sum(1 for line in c.seen[start:] if pattern in line)


async def test_a_repeat_on_another_node_or_after_a_restart_is_not_relayed_again(
    network: Network,
) -> None:
    n1, n2 = await network(2)
    offered = await (await LineClient.open(*n1.addresses[0])).cap_ls()
    assert offered.get(CAP) == "window=600,keylen=64"
    reader = await member(n2, "reader", "#once")
    alice, token = await sender(n1, "alice")
    await alice.send("JOIN #once")
    await alice.expect(r" 366 alice #once ")
    first = await keyed(alice, "k-channel-1", "a1", "#once", "hello")
    deadline = time.monotonic() + TIMEOUT  # node 1 learns of reader through a watch
    while n1.core.find_user("reader") is None:
        assert time.monotonic() < deadline, "node 1 never learnt of reader"
        await asyncio.sleep(0.01)
    private = await keyed(alice, "k-private-1", "a2", "reader", "psst")
    await reader.expect(r"PRIVMSG #once :hello$")
    await reader.expect(r"PRIVMSG reader :psst$")
    await alice.send("QUIT")
    await alice.closed()

    # The client reconnects to the other node with its token and writes both lines again.
    again, same = await sender(n2, "alice_", token)
    assert same == token
    await again.send("JOIN #once")
    await again.expect(r" 366 alice_ #once ")
    assert await keyed(again, "k-channel-1", "b1", "#once", "hello") == first
    assert await keyed(again, "k-private-1", "b2", "reader", "psst") == private
    await keyed(again, "k-fence-1", "b3", "#once", "fence one")
    assert await received(reader, ":hello", r"PRIVMSG #once :fence one$") == 0
    assert not any(":psst" in line for line in reader.seen[-3:])
    await again.close()

    # The node that relayed them restarts (same name): it remembers nothing, the bucket does.
    await n1.stop()
    n1b = Server(node_config(network.nats.url, network.prefix, "n1"))
    await n1b.start()
    network.started.append(n1b)
    third, _ = await sender(n1b, "alice__", token)
    await third.send("JOIN #once")
    await third.expect(r" 366 alice__ #once ")
    assert await keyed(third, "k-channel-1", "c1", "#once", "hello") == first
    assert await keyed(third, "k-private-1", "c2", "reader", "psst") == private
    await keyed(third, "k-fence-2", "c3", "#once", "fence two")
    assert await received(reader, "psst", r"PRIVMSG #once :fence two$") == 0
    assert sum(":hello" in line for line in reader.seen) == 1
    await third.close()
    await reader.close()


async def test_bad_keys_are_refused_as_on_one_process(network: Network) -> None:
    n1, n2 = await network(2)
    reader = await member(n2, "reader", "#bad")
    alice, _ = await sender(n1, "alice")
    await alice.send("JOIN #bad")
    await alice.expect(r" 366 alice #bad ")
    for bad in ("x" * 65, "sp%ce", "dot.ted"):
        await alice.send(f"@+relaychat.dev/idem={bad};label=z PRIVMSG #bad :refused")
        await alice.expect(r"label=z .* FAIL PRIVMSG INVALID_IDEMPOTENCY_KEY #bad :")
    await keyed(alice, "good-key", "y", "#bad", "accepted")
    assert await received(reader, ":refused", r"PRIVMSG #bad :accepted$") == 0
    await alice.close()
    await reader.close()


async def test_one_key_sent_at_once_to_two_nodes_is_relayed_once(network: Network) -> None:
    n1, n2 = await network(2)
    reader = await member(n1, "reader", "#race")
    one, token = await sender(n1, "one")
    two, _ = await sender(n2, "two", token)  # one identity, two connections
    for c, nick in ((one, "one"), (two, "two")):
        await c.send("JOIN #race")
        await c.expect(rf" 366 {nick} #race ")
    rounds = 25
    for i in range(rounds):
        line = f"@+relaychat.dev/idem=race-{i};label=r{i} PRIVMSG #race :round {i}\r\n"
        one.writer.write(line.encode())
        two.writer.write(line.encode())
        await asyncio.gather(one.writer.drain(), two.writer.drain())
        ids = []
        for c in (one, two):
            m = await c.expect(rf"^@\S*msgid=([^; ]+)\S* :\S+ PRIVMSG #race :round {i}$")
            ids.append(m.group(1))
        assert ids[0] == ids[1], (i, ids)
    await one.send("PRIVMSG #race :done")
    await reader.expect(r"PRIVMSG #race :done$")
    got = Counter(line.rsplit(":", 1)[1] for line in reader.seen if "PRIVMSG #race :round" in line)
    assert got == Counter(f"round {i}" for i in range(rounds))
    for c in (one, two, reader):
        await c.close()


async def test_a_claim_left_by_a_dead_node_is_resolved_from_the_streams(
    network: Network,
) -> None:
    """A node that claimed a key and died before recording it: the next node looks in the
    streams; a message found there is the answer, else the message is relayed now."""
    n1, n2 = await network(2)
    reader = await member(n2, "reader", "#dead")
    alice, token = await sender(n1, "alice")
    await alice.send("JOIN #dead")
    await alice.expect(r" 366 alice #dead ")
    relayed = await keyed(alice, "died-after", "d1", "#dead", "stored")
    await reader.expect(r"PRIVMSG #dead :stored$")
    await alice.send("WHOIS alice")
    m = await alice.expect(r" 311 alice alice (\S+) (\S+) ")
    source = f"alice!{m.group(1)}@{m.group(2)}"
    sender_id = n1.core.users["alice"].idem_id
    assert sender_id is not None
    nc = await nats.connect(network.nats.url)
    kv = await nc.jetstream().key_value(f"{network.prefix}-idem")
    for key in ("died-after", "died-before"):  # as a dead node's claim would be
        claim = {"p": 1, "n": "ghost", "g": "0", "t": time.time() - 1, "src": source}
        claim["to"] = "#dead"
        await kv.put(f"{sender_id.encode().hex()}.{key}", json.dumps(claim).encode())
    await nc.close()
    await alice.close()
    again, _ = await sender(n2, "alice2", token)
    await again.send("JOIN #dead")
    await again.expect(r" 366 alice2 #dead ")
    # Relayed before the node died: the stream has it, the echo is the first one.
    assert await keyed(again, "died-after", "e1", "#dead", "stored") == relayed
    # Never relayed: relayed now, once.
    await keyed(again, "died-before", "e2", "#dead", "lost")
    await keyed(again, "died-before", "e3", "#dead", "lost")
    await keyed(again, "fence", "e4", "#dead", "fence")
    await reader.expect(r"PRIVMSG #dead :fence$")
    assert sum(":stored" in line for line in reader.seen) == 1
    assert sum(":lost" in line for line in reader.seen) == 1
    assert n2.cluster is not None and n2.cluster.keys is not None
    assert (n2.cluster.keys.taken_over, n2.cluster.keys.adopted) == (1, 1)
    await again.close()
    await reader.close()


@pytest.fixture
def fast_env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "client.toml"
    config.write_text(FAST_SEND)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")}
    env["RELAYCHAT_CLIENT_CONFIG"] = str(config)
    return env


async def test_relaychat_send_to_a_node_is_exactly_once_across_nodes(
    network: Network, fast_env: dict[str, str]
) -> None:
    """`relaychat send` writes a line to node 1; it is relayed, its confirmation is lost, the
    link resets, and the client's next connection lands on node 2: relayed once, exit 0."""
    n1, n2 = await network(2)
    reader = await member(n2, "reader", "#send")
    proxy = await FaultProxy(n1.addresses[0]).start()
    host, port = proxy.address
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "relaychat", "send"),
        *(f"{host}:{port}", "#send", "--delivery", "exactly-once"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=fast_env,
    )
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"zero\n")
        await reader.expect(r"PRIVMSG #send :zero$")
        await asyncio.sleep(0.2)  # its confirmation too
        proxy.deafen()
        proc.stdin.write(b"one\n")
        await reader.expect(r"PRIVMSG #send :one$")
        proxy.upstream = n2.addresses[0]  # the next connection reaches the other node
        proxy.reset()
        proc.stdin.close()
        _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT * 3)
        assert (proc.returncode, err.decode()) == (0, "")
        fence = await member(n1, "fence", "#send")
        await fence.send("PRIVMSG #send :fence")
        await reader.expect(r"PRIVMSG #send :fence$")  # the stream's order: all before it
        await fence.close()
        got = Counter(line.rsplit(":", 1)[1] for line in reader.seen if "PRIVMSG #send :" in line)
        assert got == Counter({"zero": 1, "one": 1, "fence": 1})
        # Node 2 answered the repeat of "one" from node 1's record.
        assert n2.cluster is not None and n2.cluster.keys is not None
        assert n2.cluster.keys.adopted >= 1
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proxy.stop()
        await reader.close()


async def test_a_node_cut_off_from_nats_refuses_keyed_messages(own_nats: NatsServer) -> None:
    srv = Server(node_config(own_nats.url, "cutoff", "n1"))
    await srv.start()
    try:
        alice, _ = await sender(srv, "alice")
        await alice.send("JOIN #cut")
        await alice.expect(r" 366 alice #cut ")
        own_nats.stop()
        await alice.expect(r"NOTICE alice :\*\*\* This server lost contact")
        # A key cannot be claimed: the line is refused (not relayed), not risked twice.
        await alice.send("@+relaychat.dev/idem=cut-1;label=x PRIVMSG #cut :while away")
        await alice.expect(r"label=x .*FAIL PRIVMSG TEMPORARILY_UNAVAILABLE #cut :")
        own_nats.start()
        await _healed([srv])
        msgid, _ = await keyed(alice, "cut-1", "y", "#cut", "while away")
        assert await keyed(alice, "cut-1", "z", "#cut", "while away") == (msgid, _)
        await alice.close()
    finally:
        await srv.stop()


async def multiline(c: LineClient, key: str, ref: str, target: str) -> str:
    """Send a keyed two-line batch; returns the msgid of its echo batch."""
    await c.send(f"@+relaychat.dev/idem={key} BATCH +{ref} draft/multiline {target}")
    await c.send(f"@batch={ref} PRIVMSG {target} :first of {key}")
    await c.send(f"@batch={ref} PRIVMSG {target} :second of {key}")
    await c.send(f"BATCH -{ref}")
    m = await c.expect(rf"^@\S*msgid=([^; ]+)\S* :\S+ BATCH \+\S+ draft/multiline {target}$")
    await c.expect(r" BATCH -")
    return m.group(1)


async def test_a_keyed_multiline_batch_repeated_on_another_node_is_relayed_once(
    network: Network,
) -> None:
    n1, n2 = await network(2)
    reader = await member(n2, "reader", "#ml")
    caps = "batch draft/multiline"
    alice = await LineClient.open(*n1.addresses[0])
    await alice.send(f"CAP REQ :{CAPS} {caps}\r\nIDEM TOKEN")
    token = (await alice.expect(r"^:\S+ IDEM TOKEN (\S+)$")).group(1)
    await alice.send("CAP END")
    await alice.register("alice")
    await alice.send("JOIN #ml")
    await alice.expect(r" 366 alice #ml ")
    first = await multiline(alice, "batch-key-1", "r1", "#ml")
    await alice.close()
    again = await LineClient.open(*n2.addresses[0])
    await again.send(f"CAP REQ :{CAPS} {caps}\r\nIDEM TOKEN {token}")
    await again.expect(rf"^:\S+ IDEM TOKEN {token}$")
    await again.send("CAP END")
    await again.register("alice2")
    await again.send("JOIN #ml")
    await again.expect(r" 366 alice2 #ml ")
    assert await multiline(again, "batch-key-1", "r2", "#ml") == first
    await keyed(again, "fence-ml", "f", "#ml", "fence")
    await reader.expect(r"PRIVMSG #ml :fence$")
    assert sum("first of batch-key-1" in line for line in reader.seen) == 1
    assert n2.cluster is not None and n2.cluster.keys is not None
    assert n2.cluster.keys.adopted == 1  # node 1's record, read from the bucket
    await again.close()
    await reader.close()
