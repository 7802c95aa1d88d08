"""This node's part of the shared state: its users, their nicks and memberships, and the
channels they change, written to the state bucket.

Rules:
1. A node writes its own users' records (``u.<node>.<uid>``), nick claims (``n.<nick>``) and
   memberships (``m.<chan>.<node>.<uid>``): one writer per key. Channel records (``c.<chan>``)
   have many writers, so they are written compare-and-set on the revision last read: a node
   that lost the race re-reads, applies its own delta to the newer record and writes again.
2. A nick is claimed before anyone is told it was taken: a create (revision 0) that fails when
   another holder has it, so two nodes can never both accept one nick (the loser gets 433).
   Nobody else releases a claim while its node lives.
3. Writes go through the node's ordered outbox (``jet.py``), so they count for the durability
   barrier: a message that names a user reaches other nodes after that user's record.
4. Everything here is re-derived from the core's state (``user``, ``members``, ``channel_changed``
   compare with what was written), so calling it again is harmless; a periodic pass
   (:meth:`Sync.sweep`) catches changes made outside commands (an account login completing).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from relaychat.cluster.base import Node
from relaychat.cluster.jet import WRONG_LAST_SEQUENCE, Ack
from relaychat.cluster.wire import apply, diff, dumps, user_record
from relaychat.server.state import Channel, User

__all__ = ["Sync"]

log = logging.getLogger("relaychat.cluster")

Record = dict[str, Any]


class Sync:
    """Writes this node's state to KV (see the module rules)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.core = node.core
        self.jet = node.jet
        self.mirror = node.mirror
        self.bucket = node.names.state_bucket
        #: What was written per local user id: its record, its channels, its nick claim.
        self.users: dict[int, Record] = {}
        self.members: dict[int, set[str]] = {}
        self.claims: dict[int, tuple[str, int]] = {}
        self._writing: set[str] = set()
        self._again: set[str] = set()

    def holder(self, user: User) -> str:
        """How a nick claim names ``user``: ``<node>/<incarnation>/<uid>``."""
        return f"{self.node.name}/{self.node.incarnation}/{user.id}"

    # --- users and memberships -----------------------------------------------------------------

    def user(self, user: User, *, force: bool = False) -> None:
        """Write ``user``'s record when it changed (a registered local user)."""
        if not user.registered or user.quitting or user.server is not None:
            return
        record = user_record(user, self.core.name, self.node.incarnation)
        if force or self.users.get(user.id) != record:
            self.users[user.id] = record
            key = self.node.names.user_key(self.node.name, user.id)
            self.jet.kv_put(self.bucket, key, dumps(record))

    def memberships(self, user: User, *, force: bool = False) -> None:
        """Write ``user``'s channel memberships where they changed."""
        if not user.registered or user.quitting or user.server is not None:
            return
        now = set(user.channels)
        before = self.members.get(user.id, set())
        if now == before and not force:
            return
        names = self.node.names
        for chan_key in now - before if not force else now:
            key = names.member_key(chan_key, self.node.name, user.id)
            self.jet.kv_put(self.bucket, key, b"1")
            self.node.feeds.want(chan_key)
        for chan_key in before - now:
            self.jet.kv_delete(self.bucket, names.member_key(chan_key, self.node.name, user.id))
            self.node.feeds.check(chan_key)
        self.members[user.id] = now

    def gone(self, user: User) -> list[str]:
        """``user`` left: delete its record, memberships and claim; returns its channels."""
        names, bucket = self.node.names, self.bucket
        if self.users.pop(user.id, None) is not None:
            self.jet.kv_delete(bucket, names.user_key(self.node.name, user.id))
        chans = self.members.pop(user.id, set())
        for chan_key in chans:
            self.jet.kv_delete(bucket, names.member_key(chan_key, self.node.name, user.id))
        claim = self.claims.pop(user.id, None)
        if claim is not None:
            self.release(*claim)
        return [*chans, *user.channels]

    def sweep(self) -> None:
        """Write whatever changed outside commands (rule 4)."""
        for user in list(self.core.connections.values()):
            if user.registered and not user.quitting:
                self.user(user)
                self.memberships(user)

    # --- nick claims (rule 2) ------------------------------------------------------------------

    async def claim(self, user: User, nick_key: str) -> int | None:
        """Claim ``nick_key`` for ``user`` network-wide.

        Returns:
            The claim's revision, or ``None`` when someone else holds the nick (or NATS did
            not answer: then nobody may take it).
        """
        holder = self.holder(user).encode()
        key = self.node.names.nick_key(nick_key)
        for _ in range(3):
            ack = await self.jet.kv_write(self.bucket, key, holder, last=0)
            if ack.ok:
                return ack.seq
            if ack.code != WRONG_LAST_SEQUENCE:
                return None
            stored = await self.jet.kv_get(self.bucket, key)
            if stored is not None and stored.value == holder:
                return stored.revision
            if stored is not None and stored.value is not None:
                return None
            last = stored.revision if stored is not None else 0  # over a deletion marker
            ack = await self.jet.kv_write(self.bucket, key, holder, last=last)
            if ack.ok:
                return ack.seq
            if ack.code != WRONG_LAST_SEQUENCE:
                return None
        return None

    def release(self, nick_key: str, revision: int) -> None:
        """Give up a claim (only the revision we wrote: never someone's newer claim)."""
        self.jet.kv_delete(self.bucket, self.node.names.nick_key(nick_key), last=revision)

    # --- channels (rule 1) ---------------------------------------------------------------------

    def channel_changed(self, chan_key: str) -> None:
        """Write ``chan_key``'s record if this node changed it (or delete it, ended)."""
        if chan_key in self._writing:
            self._again.add(chan_key)
            return
        self._write(chan_key)

    def _write(self, chan_key: str) -> None:
        channel = self.core.channels.get(chan_key)
        base = self.mirror.base.get(chan_key)
        key = self.node.names.chan_key(chan_key)
        if channel is None or not channel.members:
            if base is None:
                return
            self._writing.add(chan_key)
            self.jet.kv_delete(
                self.bucket, key, last=base[1], done=lambda ack: self._written(chan_key, None, ack)
            )
            return
        now = self.mirror.record_of(channel)
        if base is None:
            record, last = now, 0
        else:
            delta = diff(base[0], now)
            if not delta:
                return
            record, last = apply(base[0], delta), base[1]
        self._writing.add(chan_key)
        self.jet.kv_put(
            self.bucket,
            key,
            dumps(record),
            last=last,
            done=lambda ack: self._written(chan_key, record, ack),
        )

    def _written(self, chan_key: str, record: Record | None, ack: Ack) -> None:
        if ack.ok:
            base = self.mirror.base.get(chan_key)
            if record is None:
                if base is not None and base[1] < ack.seq:
                    del self.mirror.base[chan_key]
            elif base is None or base[1] < ack.seq:
                self.mirror.base[chan_key] = (record, ack.seq)
        elif ack.code == WRONG_LAST_SEQUENCE:
            asyncio.get_running_loop().create_task(self._reread(chan_key))
            return
        else:
            log.warning("cluster: channel %s not written: %s", chan_key, ack.error)
        self._done(chan_key)

    def _done(self, chan_key: str) -> None:
        self._writing.discard(chan_key)
        if chan_key in self._again:
            self._again.discard(chan_key)
            self._write(chan_key)

    async def _reread(self, chan_key: str) -> None:
        """Lost a compare-and-set: take the newer record, keep our delta on it, write again."""
        try:
            stored = await self.jet.kv_get(self.bucket, self.node.names.chan_key(chan_key))
        except Exception:
            log.warning("cluster: channel %s could not be re-read", chan_key, exc_info=True)
            self._writing.discard(chan_key)
            return
        channel = self.core.channels.get(chan_key)
        base = self.mirror.base.get(chan_key)
        delta: Record = {}
        if channel is not None and base is not None:
            delta = diff(base[0], self.mirror.record_of(channel))
        if stored is None or stored.value is None:
            self.mirror.base.pop(chan_key, None)
        else:
            record = json.loads(stored.value)
            self.mirror.base[chan_key] = (record, stored.revision)
            if channel is not None:
                self.mirror.set_channel(channel, apply(record, delta) if delta else record)
        self._writing.discard(chan_key)
        self._write(chan_key)

    async def ensure_channel(self, chan_key: str, name: str, creator: User) -> bool:
        """Make sure ``chan_key`` has a record before ``creator`` joins it.

        Returns:
            ``True`` when this call created it (``creator`` is its operator); ``False`` when
            it existed (its record is now in the mirror, and the channel in the core).
        """
        record: Record = {
            "name": name,
            "created": int(self.core.now),
            "modes": "nt",
            "key": None,
            "limit": None,
            "topic": "",
            "topic_by": "",
            "topic_time": 0,
            "bans": [],
            "invites": [],
            "ops": [self.mirror.ident(creator)],
            "voices": [],
        }
        key = self.node.names.chan_key(chan_key)
        last = 0
        for _ in range(3):
            ack = await self.jet.kv_write(self.bucket, key, dumps(record), last=last)
            if ack.ok:
                self.mirror.base[chan_key] = (record, ack.seq)
                return True
            if ack.code != WRONG_LAST_SEQUENCE:
                return True  # not connected: the channel is local for now
            stored = await self.jet.kv_get(self.bucket, key)
            if stored is None:
                continue
            if stored.value is None:
                last = stored.revision
                continue
            found = json.loads(stored.value)
            self.mirror.base[chan_key] = (found, stored.revision)
            channel = self.core.channels.get(chan_key)
            if channel is None:
                channel = Channel(str(found.get("name", name)), self.core.now)
                self.core.channels[chan_key] = channel
            self.mirror.set_channel(channel, found)
            return False
        return False
