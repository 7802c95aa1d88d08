"""``relaychat cluster status``: the nodes of a network, their users, and how far behind they are.

Reads the network's buckets and streams from NATS (it needs no node to answer) and prints one
line per node: its server name, users, channels it follows, when it was last heard from, the
round trip of its last JetStream write (its lag), how long it has run, and whether it is alive.
``--json`` prints the same as one JSON object. Exit codes: 0 shown, 2 bad settings, 3 NATS
could not be reached or holds no such network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

__all__ = ["add_parser", "collect", "render"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``cluster status`` to the ``relaychat`` command."""
    cluster = sub.add_parser(
        "cluster",
        help="look at a cluster of relaychat nodes (docs/cluster.md)",
        description="Commands about a relaychat cluster on NATS JetStream.",
    )
    verbs = cluster.add_subparsers(dest="cluster_command", metavar="VERB")
    status = verbs.add_parser(
        "status",
        help="nodes, users per node, lag",
        description="Print the nodes of the network, their users and their lag, read from "
        "NATS. Settings as for `relaychat serve` (--config, RELAYCHAT_CLUSTER__*, flags).",
    )
    status.add_argument("--config", metavar="FILE", help="the servers' TOML configuration file")
    status.add_argument("--cluster", dest="url", metavar="URLS", help="NATS URLs (cluster.url)")
    status.add_argument("--cluster-prefix", dest="prefix", help="the network's cluster.prefix")
    status.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for NATS")
    status.set_defaults(handler=_status)
    cluster.set_defaults(handler=lambda args: _usage(cluster))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _status(args: argparse.Namespace) -> int:
    from relaychat.config import load_config
    from relaychat.errors import ConfigError

    overrides = {"cluster.url": args.url, "cluster.prefix": args.prefix}
    try:
        config = load_config(file=args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"relaychat: configuration error: {exc}", file=sys.stderr)
        return 2
    if not config.cluster.url:
        print("relaychat: no cluster: give --cluster URL (or cluster.url)", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(asyncio.wait_for(collect(config), args.timeout))
    except TimeoutError:
        print(f"relaychat: NATS at {config.cluster.url} did not answer", file=sys.stderr)
        return 3
    except Exception as exc:  # one line for the operator, whatever NATS said
        print(f"relaychat: {exc}", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0


async def collect(config: Any) -> dict[str, Any]:
    """Read the network's state from NATS.

    Raises:
        ClusterError: NATS unreachable, or no such network there.
    """
    import nats.errors
    import nats.js.errors

    from relaychat.cluster.jet import ClusterError, Jet
    from relaychat.cluster.names import Names

    names = Names(config.cluster.prefix, "status", "0")
    jet = Jet(config, names)

    async def nothing() -> None:
        return None

    await jet.connect_only(disconnected=nothing, reconnected=nothing)
    js = jet.js
    try:
        try:
            nodes_kv = await js.key_value(names.nodes_bucket)
            state_kv = await js.key_value(names.state_bucket)
        except nats.js.errors.BucketNotFoundError:
            raise ClusterError(
                f"no network {config.cluster.prefix!r} on {config.cluster.url}"
            ) from None
        now = time.time()
        nodes: list[dict[str, Any]] = []
        for name in await _keys(nodes_kv):
            try:
                entry = await nodes_kv.get(name)
            except nats.js.errors.KeyNotFoundError:
                continue
            record = json.loads(entry.value or b"{}")
            age = now - float(record.get("hb", 0))
            if record.get("dead"):
                state = f"dead (declared by {record.get('by', '?')})"
            elif age > config.cluster.node_timeout:
                state = "silent (missed heartbeats)"
            else:
                state = "alive"
            nodes.append(
                {
                    "node": name,
                    "server": record.get("srv", ""),
                    "users": record.get("users"),
                    "channels": record.get("channels"),
                    "heard_s": round(age, 1) if record.get("hb") else None,
                    "lag_ms": record.get("ack_ms"),
                    "up_s": round(now - float(record["started"]))
                    if record.get("started")
                    else None,
                    "version": record.get("version"),
                    "state": state,
                }
            )
        keys = await _keys(state_kv)
        per_node: dict[str, int] = {}
        streams: dict[str, int | None] = {}
        for key in keys:
            if key.startswith("u."):
                name = key.split(".")[1]
                per_node[name] = per_node.get(name, 0) + 1
        for row in nodes:
            row["user_records"] = per_node.pop(row["node"], 0)
        for stream in (names.channels_stream, names.private_stream):
            try:
                info = await js.stream_info(stream)
                streams[stream] = info.state.messages if info.state else 0
            except nats.errors.Error:
                streams[stream] = None
        return {
            "network": config.cluster.prefix,
            "nats": config.cluster.url,
            "nodes": sorted(nodes, key=lambda n: n["node"]),
            "orphan_user_records": per_node,
            "users": sum(1 for k in keys if k.startswith("u.")),
            "nicks": sum(1 for k in keys if k.startswith("n.")),
            "channels": sum(1 for k in keys if k.startswith("c.")),
            "memberships": sum(1 for k in keys if k.startswith("m.")),
            "history": streams,
        }
    finally:
        await jet.close()


async def _keys(kv: Any) -> list[str]:
    import nats.js.errors

    try:
        return sorted(await kv.keys())
    except nats.js.errors.NoKeysError:
        return []


def render(report: dict[str, Any]) -> str:
    """The report as a table."""
    lines = [
        f"network {report['network']} on {report['nats']}: {len(report['nodes'])} nodes, "
        f"{report['users']} users, {report['channels']} channels"
    ]
    head = (
        f"{'node':<16}{'server':<22}{'users':>6}{'chans':>6}{'heard':>9}{'lag':>10}{'up':>9}  state"
    )
    lines.append(head)
    for n in report["nodes"]:
        heard = f"{n['heard_s']:.1f}s" if n["heard_s"] is not None else "-"
        lag = f"{n['lag_ms']:.1f}ms" if n["lag_ms"] is not None else "-"
        up = _duration(n["up_s"]) if n["up_s"] is not None else "-"
        users = n["users"] if n["users"] is not None else n["user_records"]
        chans = n["channels"] if n["channels"] is not None else "-"
        lines.append(
            f"{n['node']:<16}{n['server']:<22}{users:>6}{chans:>6}{heard:>9}{lag:>10}{up:>9}  "
            f"{n['state']}"
        )
    for node, count in sorted(report["orphan_user_records"].items()):
        lines.append(f"{node:<16}{'(no heartbeat)':<22}{count:>6}  stale records of a dead node")
    hist = report["history"]
    lines.append(
        "history: "
        + ", ".join(
            f"{name} {count if count is not None else '?'} messages" for name, count in hist.items()
        )
        + f"; nicks {report['nicks']}, memberships {report['memberships']}"
    )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}"
