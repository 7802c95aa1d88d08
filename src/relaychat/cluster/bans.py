"""Server bans on every node: K-lines and D-lines in the state bucket (``server/bans.py``).

Rules:
1. A ban lives in the state bucket at ``b.<kind>.<mask as hex>`` (its JSON: the ``Ban``'s
   fields). A node writes what changed in its ``BanList`` (KLINE, DLINE, UNKLINE, UNDLINE by an
   oper or the admin socket, and expiry): the last write wins.
2. Every node applies the bucket's bans as they arrive: a new ban closes this node's matching
   connections at once, as on the node where it was set; a deleted one is lifted here too. Each
   node's ``bans.json`` keeps a copy (the edge saves the list on every change), which is what a
   node alone would use.
3. At start, after the node's ``bans.json`` is loaded, the bans the network lacks are added to
   it (a node brought into a network brings its bans), and the network's are applied here.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict

from relaychat.cluster.base import Node
from relaychat.cluster.names import hexname, unhex
from relaychat.cluster.wire import dumps
from relaychat.server.bans import Ban, BanList
from relaychat.server.commands.bans import close_banned

__all__ = ["SharedBans"]

log = logging.getLogger("relaychat.cluster")

Ident = tuple[str, str]


class SharedBans:
    """This node's part of the network's ban list (see the module rules)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.core = node.core
        #: The network's bans as the bucket has them.
        self.network: dict[Ident, Ban] = {}
        #: What this node's list and the bucket agree on (written, or read).
        self.written: dict[Ident, Ban] = {}
        self.attached = False

    @staticmethod
    def key(kind: str, mask: str) -> str:
        return f"b.{kind}.{hexname(mask)}"

    def entry(self, rest: str, value: bytes | None) -> None:
        """One ``b.`` entry of the state bucket (``rest``: after ``b.``; ``None``: deleted).

        Raises:
            ValueError, KeyError, TypeError: a malformed entry.
        """
        kind, _, hexmask = rest.partition(".")
        ident = (kind, unhex(hexmask))
        bans = self.core.bans
        if value is None:
            self.network.pop(ident, None)
            self.written.pop(ident, None)
            if self.attached and ident[1] in _table(bans, kind):
                bans.remove(kind, ident[1])
            return
        ban = Ban(**json.loads(value))
        if (ban.kind, ban.mask) != ident:
            raise ValueError("a ban under another key")
        self.network[ident] = ban
        if self.attached:
            self.written[ident] = ban
            self._apply(ban)

    def resync(self, present: set[str]) -> None:
        """A fresh read of the whole bucket holds the ban keys ``present``: the bans lifted
        meanwhile (while NATS was away) are lifted here too; the others arrive as entries."""
        for kind, mask in [i for i in self.network if self.key(*i) not in present]:
            self.entry(f"{kind}.{hexname(mask)}", None)

    def _apply(self, ban: Ban) -> None:
        core = self.core
        if _table(core.bans, ban.kind).get(ban.mask) == ban:
            return
        core.now = time.time()
        if not ban.active(core.now):
            return
        core.bans.add(ban)
        closed = close_banned(core, ban)
        log.info("cluster: %s-line on %s from the network; %d closed", ban.kind, ban.mask, closed)

    def attach(self) -> None:
        """Share the core's ban list (loaded from ``bans.json``) with the network (rule 3).
        Call after the edge set its ``on_change`` (``Operations.prepare``)."""
        bans = self.core.bans
        saver = bans.on_change

        def changed(changed_bans: BanList) -> None:
            if saver is not None:
                saver(changed_bans)
            self.sync()

        bans.on_change = changed
        self.attached = True
        for ident, ban in list(self.network.items()):
            self.written[ident] = ban
            self._apply(ban)
        self.sync()

    def sync(self) -> None:
        """Write to the bucket what changed in this node's list (rule 1)."""
        if not self.attached:
            return
        node = self.node
        now = {(b.kind, b.mask): b for b in self.core.bans.all()}
        for ident, ban in now.items():
            if self.written.get(ident) != ban:
                self.written[ident] = ban
                node.jet.kv_put(node.names.state_bucket, self.key(*ident), dumps(asdict(ban)))
        for ident in [i for i in self.written if i not in now]:
            del self.written[ident]
            node.jet.kv_delete(node.names.state_bucket, self.key(*ident))


def _table(bans: BanList, kind: str) -> dict[str, Ban]:
    return bans.klines if kind == "K" else bans.dlines
