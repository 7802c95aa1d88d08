"""Which nodes are alive: heartbeats in the nodes bucket, and what happens when one stops.

Rules:
1. Every ``cluster.heartbeat`` seconds a node writes its record (incarnation, server name,
   users, lag) to the nodes bucket; every node watches the bucket and notes when it last heard
   from each other node, by its own clock.
2. A node not heard from for ``cluster.node_timeout`` is dead: each node shows its users
   leaving (QUIT ``*.net *.split``) to its own users; the live node with the lowest name marks
   it dead in the bucket (the others split at once when they read that) and deletes its keys,
   which frees its users' nicks. A node that left cleanly deleted its record: the same, at once.
3. A record with a new incarnation under a known name is a restart: the old process's users split.
4. Judging is paused while this node is cut off from NATS, and starts afresh when it is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from relaychat import __version__
from relaychat.cluster.base import Node
from relaychat.cluster.jet import ClusterError
from relaychat.cluster.wire import dumps

__all__ = ["Liveness", "NodeState"]

log = logging.getLogger("relaychat.cluster")


@dataclass(slots=True)
class NodeState:
    """What this node knows of another: when it was last heard from, and its record."""

    seen: float
    record: dict[str, Any] = field(default_factory=dict)


class Liveness:
    """Heartbeats and the judging of other nodes (see the module rules)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.nodes: dict[str, NodeState] = {}
        #: Since when (monotonic) other nodes can be judged: start, or NATS coming back.
        self.since = time.monotonic()

    def incarnation_of(self, name: str) -> str | None:
        """The incarnation the nodes bucket gives for node ``name``, if known."""
        state = self.nodes.get(name)
        inc = state.record.get("inc") if state is not None else None
        return str(inc) if inc is not None else None

    def silent(self, name: str) -> bool:
        """Whether node ``name`` missed its last two heartbeats (or is not known alive)."""
        state = self.nodes.get(name)
        if state is None:
            return True
        return time.monotonic() - state.seen > 2 * self.node.config.cluster.heartbeat

    def restart_clock(self) -> None:
        """NATS is back: every node gets a fresh timeout (rule 4)."""
        now = time.monotonic()
        for state in self.nodes.values():
            state.seen = now
        self.since = now

    async def check_name(self) -> None:
        """Refuse to start under the name of a node that is alive.

        Raises:
            ClusterError: the name was heard from within the node timeout.
        """
        node = self.node
        stored = await node.jet.kv_get(node.names.nodes_bucket, node.name)
        if stored is None or stored.value is None:
            return
        record = json.loads(stored.value)
        age = time.time() - float(record.get("hb", 0))
        if not record.get("dead") and age < node.config.cluster.node_timeout:
            raise ClusterError(
                f"node name {node.name} is in use by a running node (heard {age:.0f} s ago); "
                "give each node its own cluster.node_name"
            )

    # --- this node's heartbeat (rule 1) --------------------------------------------------------

    def heartbeat(self) -> None:
        """Write this node's record to the nodes bucket."""
        node = self.node
        core = node.core
        record = {
            "inc": node.incarnation,
            "srv": core.name,
            "hb": time.time(),
            "started": node.started,
            "users": sum(1 for u in core.connections.values() if u.registered),
            "channels": len(node.feeds.subs),
            "ack_ms": round(node.jet.ack_latency * 1000, 2),
            "version": __version__,
        }
        node.jet.kv_put(node.names.nodes_bucket, node.name, dumps(record))

    async def heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.node.config.cluster.heartbeat)
            if not self.node.isolated:
                self.heartbeat()

    # --- the other nodes (rules 2 and 3) -------------------------------------------------------

    def entry(self, name: str, value: bytes | None, *, first: bool = False) -> None:
        """One entry of the nodes bucket (``value`` ``None``: deleted)."""
        node = self.node
        if name == node.name:
            if value is not None and not first:
                record = json.loads(value)
                if record.get("dead") and record.get("inc") == node.incarnation:
                    log.warning("cluster: another node declared this one dead; reasserting")
                    self.heartbeat()
                    node.recovery.schedule()
            return
        if value is None:
            if name in self.nodes:
                log.info("cluster: node %s left", name)
                self.gone(name)
            return
        record = json.loads(value)
        old = self.nodes.get(name)
        if record.get("dead"):
            if old is not None and old.record.get("inc") == record.get("inc"):
                self.gone(name)
            return
        if old is not None and old.record.get("inc") != record.get("inc"):
            log.info("cluster: node %s restarted", name)
            self.gone(name)
        self.nodes[name] = NodeState(time.monotonic(), record)

    def gone(self, name: str) -> None:
        """Show the users of node ``name`` leaving, and forget the node."""
        node = self.node
        self.nodes.pop(name, None)
        node.core.now = time.time()
        left = node.mirror.drop_node(name, show=True)
        for key in [k for k in node.links if k[0] == name]:
            node.links.pop(key).closed = True
        if left:
            log.warning("cluster: node %s is gone; %d of its users split off", name, len(left))

    def declare_dead(self, name: str, state: NodeState | None) -> None:
        node = self.node
        log.warning("cluster: node %s missed its heartbeats: declared dead", name)
        self.gone(name)
        alive = sorted([node.name, *self.nodes])
        if alive[0] != node.name:
            return  # the lowest-named live node cleans up
        inc = state.record.get("inc") if state is not None else None
        node.jet.kv_put(
            node.names.nodes_bucket,
            name,
            dumps({"dead": True, "inc": inc, "by": node.name, "hb": 0}),
        )
        # Users first: a node that reads a user's deletion before its memberships' shows the
        # QUIT in its channels (memberships first would take it out of them quietly).
        keys = node.mirror.keys_of.pop(name, ())
        for key in sorted(keys, key=lambda k: (not k.startswith("u."), k)):
            node.jet.kv_delete(node.names.state_bucket, key)

    async def loop(self) -> None:
        cl = self.node.config.cluster
        while True:
            await asyncio.sleep(min(1.0, cl.heartbeat / 2))
            now = time.monotonic()
            if self.node.isolated:
                self.node.recovery.cut_off_for(now)
                continue
            for name, state in list(self.nodes.items()):
                if now - state.seen > cl.node_timeout:
                    self.declare_dead(name, state)
            if now - self.since > cl.node_timeout:
                # Keys of nodes that never heartbeat since we started (long dead, not cleaned).
                keys_of = self.node.mirror.keys_of
                for name in [n for n in keys_of if n not in self.nodes]:
                    if name != self.node.name and keys_of.get(name):
                        self.declare_dead(name, None)
