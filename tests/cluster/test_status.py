"""``relaychat cluster status`` and the command line of a node: what an operator sees."""

from __future__ import annotations

import asyncio
import json
import sys

from tests.cluster.conftest import Network
from tests.cluster.support import free_port, needs_nats
from tests.harness import TIMEOUT, LineClient, scratch_dir

pytestmark = needs_nats


async def relaychat(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relaychat",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 6 * TIMEOUT)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_status_lists_nodes_users_and_lag(network: Network) -> None:
    n1, n2 = await network(2)
    clients = []
    for srv, nick in ((n1, "alice"), (n1, "bob"), (n2, "carol")):
        host, port = srv.addresses[0]
        c = await LineClient.open(host, port)
        await c.register(nick)
        await c.send("JOIN #s")
        await c.expect(rf" 366 {nick} #s ")
        clients.append(c)
    await asyncio.sleep(1.2)  # a heartbeat or two, carrying the user counts
    url, prefix = network.nats.url, network.prefix
    code, out, err = await relaychat(
        "cluster", "status", "--cluster", url, "--cluster-prefix", prefix
    )
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:4]}
    assert rows["n1"][1] == "n1.test" and rows["n1"][2] == "2" and rows["n1"][-1] == "alive"
    assert rows["n2"][1] == "n2.test" and rows["n2"][2] == "1"
    assert "3 users, 1 channels" in out.splitlines()[0]
    code, out, _ = await relaychat(
        "cluster", "status", "--cluster", url, "--cluster-prefix", prefix, "--json"
    )
    report = json.loads(out)
    assert [n["node"] for n in report["nodes"]] == ["n1", "n2"]
    assert report["memberships"] == 3 and report["nicks"] == 3
    assert all(isinstance(n["lag_ms"], float) for n in report["nodes"])
    for c in clients:
        await c.close()


async def test_unreachable_nats_is_one_line_and_an_exit_code() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    code, out, err = await relaychat("cluster", "status", "--cluster", url)
    assert code == 3 and out == ""
    assert err.startswith(f"relaychat: cluster: cannot connect to NATS at {url}: ")
    assert len(err.strip().splitlines()) == 1
    code, out, err = await relaychat(
        "serve",
        "--cluster",
        url,
        "--port",
        "0",
        "--plain-port",
        "0",
        "--http-port",
        "0",
        "--data-dir",
        scratch_dir(),
    )
    assert code == 2
    assert err.strip().splitlines() == [
        line for line in err.strip().splitlines() if line.startswith("relaychat: cluster:")
    ]


async def test_a_node_name_in_use_is_refused(network: Network) -> None:
    await network(1)
    code, _, err = await relaychat(
        "serve",
        "--cluster",
        network.nats.url,
        "--cluster-prefix",
        network.prefix,
        "--cluster-node-name",
        "n1",
        "--port",
        "0",
        "--plain-port",
        "0",
        "--http-port",
        "0",
        "--data-dir",
        scratch_dir(),
    )
    assert code == 2
    assert "node name n1 is in use by a running node" in err
