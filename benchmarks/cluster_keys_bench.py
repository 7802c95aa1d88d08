"""What exactly-once costs on a cluster node: keyed against unkeyed channel messages.

Usage (from the repository root, with the virtualenv's python; about 30 seconds):

    .venv/bin/python benchmarks/cluster_keys_bench.py [--messages 2000]

One sender writes messages one at a time to a channel on one node of a two-node cluster (a
scratch ``nats-server -js``), waiting for each echo (``echo-message``), with and without an
idempotency key (``+relaychat.dev/idem``), then the same against a single process. Reported:
the round trip per message (median, p99) and the CPU per message (``/proc``): the relaychat
processes (both nodes) and NATS apart. A keyed message on a cluster first claims its key in the
network's bucket (``cluster/idem.py``): one more NATS round trip before it is relayed.
All traffic stays on 127.0.0.1; every run is bounded by ``--messages``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from cluster_bench import Nats

CAPS = "message-tags echo-message labeled-response relaychat.dev/idempotency"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sender(port: int, keyed: bool, count: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def expect(word: str) -> str:
        while True:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode()
            if not line:
                raise ConnectionError("closed")
            if word in line:
                return line

    writer.write(f"CAP REQ :{CAPS}\r\nIDEM TOKEN\r\nCAP END\r\n".encode())
    writer.write(b"NICK bench\r\nUSER bench 0 * :bench\r\nJOIN #keys\r\n")
    await expect(" 366 ")
    times = []
    for i in range(count):
        tag = f"@+relaychat.dev/idem={secrets.token_urlsafe(16)} " if keyed else ""
        started = time.perf_counter()
        writer.write(f"{tag}PRIVMSG #keys :message {i}\r\n".encode())
        await expect(f":message {i}\r")
        times.append(time.perf_counter() - started)
    writer.close()
    return times


def run(
    label: str, port: int, pids: list[int], keyed: bool, count: int, nats: int = 0
) -> dict[str, float]:
    before = [cpu_seconds(p) for p in (*pids, *([nats] if nats else []))]
    times = asyncio.run(sender(port, keyed, count))
    after = [cpu_seconds(p) for p in (*pids, *([nats] if nats else []))]
    used = [b - a for a, b in zip(before, after, strict=True)]
    times.sort()
    row = {
        "median_ms": round(1000 * statistics.median(times), 3),
        "p99_ms": round(1000 * times[int(0.99 * (len(times) - 1))], 3),
        "cpu_us_per_msg": round(1e6 * sum(used[: len(pids)]) / count, 1),
        "nats_us_per_msg": round(1e6 * sum(used[len(pids) :]) / count, 1),
    }
    print(
        f"{label:<34}{row['median_ms']:>10.3f}{row['p99_ms']:>10.3f}"
        f"{row['cpu_us_per_msg']:>12.1f}{row['nats_us_per_msg']:>12.1f}"
    )
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=2000)
    args = p.parse_args()
    print(f"{'':<34}{'median ms':>10}{'p99 ms':>10}{'CPU us/msg':>12}{'NATS us/msg':>12}")
    nats = Nats(1)
    prefix = "k" + secrets.token_hex(4)
    nodes = []
    try:
        for name in ("ka", "kb"):
            extra = ["--cluster", nats.url, "--cluster-prefix", prefix]
            extra += ["--cluster-node-name", name, "--server-name", f"{name}.bench"]
            nodes.append(servers.start(servers.builtin_specs(extra)["relaychat"], cpu=0))
        pids = [n.pid for n in nodes]
        for keyed in (False, True):
            label = f"cluster node, {'keyed' if keyed else 'no key'}"
            run(label, nodes[0].port, pids, keyed, args.messages, nats.proc.pid)
    finally:
        for node in nodes:
            node.stop()
        nats.stop()
    single = servers.start(servers.builtin_specs([])["relaychat"], cpu=0)
    try:
        for keyed in (False, True):
            label = f"single process, {'keyed' if keyed else 'no key'}"
            run(label, single.port, [single.pid], keyed, args.messages)
    finally:
        single.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
