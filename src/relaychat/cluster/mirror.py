"""The other nodes' users and the network's channels, kept in this node's core from the KV
watch (the read cache: no shared state is read from NATS on the path of a message).

Rules:
1. A user of another node is a core :class:`User` with ``server`` set and a
   :class:`~relaychat.cluster.peer.RemotePeer`, registered, holding its nick in ``core.users``
   but absent from ``core.connections`` (this node's connections only). Its id is negative.
2. Entries of the watch are applied in the bucket's order. Users, channels and memberships
   change silently: the lines that announce them (JOIN, MODE, NICK, QUIT...) reach this node's
   users from the node where they happened. Two exceptions make lines here: a node that dies
   (its users QUIT with ``*.net *.split``), and a resynchronisation after NATS was away (what
   changed meanwhile is shown as JOIN and QUIT, :meth:`Mirror.resync`).
3. A channel's state is its KV record plus this node's changes not written yet: a record that
   arrives is applied with the local delta on top (``wire.diff``/``wire.apply``), so a change
   made here is never undone by an older one from elsewhere.
4. This node's own keys (its users, claims, memberships) are its own business (``sync.py``);
   the mirror only notices when someone else deleted them (``on_lost``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from relaychat.cluster.base import Node
from relaychat.cluster.names import unhex
from relaychat.cluster.peer import RemotePeer
from relaychat.cluster.wire import apply, channel_record, diff
from relaychat.server.caps import profile_of
from relaychat.server.commands import monitor
from relaychat.server.state import Channel, User, WhowasEntry

__all__ = ["SPLIT_REASON", "Mirror"]

log = logging.getLogger("relaychat.cluster")

#: The QUIT reason of the users of a node that died (classic IRC's hidden netsplit).
SPLIT_REASON = "*.net *.split"

Record = dict[str, Any]


class Mirror:
    """Applies the state bucket to the core (see the module rules).

    Args:
        node: the node this mirror belongs to.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.core = node.core
        #: Users of other nodes, by (node, uid).
        self.remote: dict[tuple[str, int], User] = {}
        #: Channel records as last read from KV: folded name -> (record, revision).
        self.base: dict[str, tuple[Record, int]] = {}
        #: Nick claims: folded nick -> (holder "<node>/<incarnation>/<uid>", revision).
        self.claims: dict[str, tuple[str, int]] = {}
        #: Memberships waiting for their user's record: (node, uid) -> channel keys.
        self.pending: dict[tuple[str, int], set[str]] = {}
        #: Every state key known per node (what a dead node's clean-up deletes).
        self.keys_of: dict[str, set[str]] = {}
        #: This node's own user and membership keys as the bucket has them, with their values
        #: (a reassertion rewrites only what differs: rewriting equal values would hide them
        #: from another node's resynchronisation running at the same moment).
        self.own: dict[str, bytes] = {}
        #: Called with a key of this node that someone else deleted.
        self.on_lost: Callable[[str], None] = lambda key: None
        self._next_id = -1

    # --- the watch -----------------------------------------------------------------------------

    def apply(self, key: str, value: bytes | None, revision: int) -> None:
        """Apply one entry of the state bucket (``value`` ``None``: deleted)."""
        kind, _, rest = key.partition(".")
        try:
            if kind == "u":
                self._user(rest, value, key)
            elif kind == "m":
                self._member(rest, value, key)
            elif kind == "c":
                self._channel(unhex(rest), value, revision)
            elif kind == "n":
                self._claim(unhex(rest), value, revision, key)
            elif kind == "b":
                self.node.bans.entry(rest, value)
            elif kind == "r":
                owner, _, target = rest.partition(".")
                if value is not None and self.node.history is not None:
                    self.node.history.set_read_marker_quietly(unhex(owner), unhex(target), value)
        except (ValueError, KeyError, TypeError):
            log.warning("cluster: ignoring a malformed state entry %s", key, exc_info=True)

    def _own(self, key: str, value: bytes | None) -> None:
        if value is None:
            if self.own.pop(key, None) is not None:
                self.on_lost(key)
        else:
            self.own[key] = value

    def _track(self, node: str, key: str, present: bool) -> None:
        keys = self.keys_of.setdefault(node, set())
        if present:
            keys.add(key)
        else:
            keys.discard(key)

    def _user(self, rest: str, value: bytes | None, key: str) -> None:
        node, _, uid_text = rest.partition(".")
        uid = int(uid_text)
        self._track(node, key, value is not None)
        if node == self.node.name:
            self._own(key, value)
            return
        user = self.remote.get((node, uid))
        if value is None:
            if user is not None:
                # Its node said the QUIT itself, unless it stopped answering: then another node
                # is cleaning up after it, and this node shows the split (rule 2).
                self.drop(user, SPLIT_REASON, show=self.node.liveness.silent(node))
            return
        record = json.loads(value)
        known = self.node.liveness.incarnation_of(node)
        if known is not None and record.get("inc") != known:
            return  # a record of an earlier process of that node: stale
        if user is None:
            self.add_user(node, uid, record)
        else:
            self.update_user(user, record)

    def add_user(self, node: str, uid: int, record: Record) -> User:
        """Make the user ``uid`` of ``node`` known here (rule 1)."""
        core = self.core
        link = self.node.link(node, str(record.get("inc", "")))
        peer = RemotePeer(
            node,
            str(record.get("inc", "")),
            uid,
            link,
            self.node.is_quiet,
            self.node.send_private,
        )
        user = User(self._next_id, peer, "", float(record.get("t", core.now)))
        self._next_id -= 1
        user.ip = f"{node}/{uid}"  # never a local address: per-IP counts stay local
        user.server = str(record.get("srv") or node)
        user.registered = True
        user.last_seen = float("inf")
        self.remote[(node, uid)] = user
        self.update_user(user, record, new=True)
        for chan_key in self.pending.pop((node, uid), ()):
            self._join(chan_key, user)
        if core.users.get(user.key) is user:
            monitor.announce_online(core, user)  # this node's MONITOR lists (730)
        return user

    def update_user(self, user: User, record: Record, *, new: bool = False) -> None:
        """Bring a remote user in line with its record (a nick change re-keys it)."""
        core = self.core
        user.username = str(record.get("user", ""))
        user.realname = str(record.get("real", ""))
        user.host = str(record.get("host", user.host))
        user.account = record.get("acct")
        user.away = record.get("away")
        user.modes = frozenset(str(record.get("modes", "")))
        caps = frozenset(record.get("caps") or ())
        if caps != user.caps:
            user.caps = caps
            user.profile = profile_of(caps)
            for channel in user.channels.values():
                channel.invalidate()
        nick = str(record.get("nick", "*"))
        if new or nick != user.nick:
            if not new:
                if core.users.get(user.key) is user:
                    del core.users[user.key]
                core.whowas.appendleft(WhowasEntry(user, core.now))
                old_key, old_nick = user.key, user.nick
            user.set_nick(nick)
            holder = core.users.get(user.key)
            if holder is None or holder.server is not None:
                core.users[user.key] = user
            else:  # a local user holds it: the claims will settle who keeps it
                log.warning("cluster: %s of %s is also held here", nick, user.server)
            if not new:
                for channel in core.channels.values():
                    if old_key in channel.invites:
                        channel.invites.discard(old_key)
                        channel.invites.add(user.key)
                monitor.nick_changed(core, user, old_key, old_nick)
        else:
            user.update_prefix()

    def drop(self, user: User, reason: str, *, show: bool) -> None:
        """Forget a remote user; ``show``: its channels here see it QUIT (rule 2)."""
        peer = user.peer
        assert isinstance(peer, RemotePeer)
        self.remote.pop((peer.node, peer.uid), None)
        if user.quitting:
            return
        core = self.core
        user.modes = frozenset()  # remote users count in neither the operator nor invisible totals
        core.registered_count += 1  # disconnect() takes one off; remote users never counted
        if not show and core.users.get(user.key) is user:
            core.monitor_offline(user, user.key, user.nick)  # the QUIT came from its node
        with self.node.quietly():
            core.disconnect(user, reason, broadcast=show)

    def drop_node(self, node: str, *, show: bool) -> list[User]:
        """Forget every user of ``node``; returns them (before they were dropped)."""
        gone = [u for (n, _), u in list(self.remote.items()) if n == node]
        for user in gone:
            self.drop(user, SPLIT_REASON, show=show)
        return gone

    def _claim(self, nick_key: str, value: bytes | None, revision: int, key: str) -> None:
        old = self.claims.get(nick_key)
        if old is not None:
            self._track(old[0].split("/", 1)[0], key, False)
        if value is None:
            self.claims.pop(nick_key, None)
            if old is not None and old[0].startswith(self.node.name + "/"):
                self.on_lost(key)
            return
        holder = value.decode()
        self.claims[nick_key] = (holder, revision)
        self._track(holder.split("/", 1)[0], key, True)

    # --- channels (rule 3) ---------------------------------------------------------------------

    def ident(self, user: User) -> str:
        """``<node>/<uid>``: how channel records name a member."""
        peer = user.peer
        if isinstance(peer, RemotePeer):
            return peer.ident
        return f"{self.node.name}/{user.id}"

    def record_of(self, channel: Channel) -> Record:
        return channel_record(channel, self.ident)

    def _channel(self, chan_key: str, value: bytes | None, revision: int) -> None:
        core = self.core
        base = self.base.get(chan_key)
        if value is None:
            self.base.pop(chan_key, None)
            channel = core.channels.get(chan_key)
            if channel is None:
                return
            if any(m.server is None for m in channel.members):
                self.node.sync.channel_changed(chan_key)  # still ours: write it again
            elif not channel.members:
                core.channels.pop(chan_key, None)
            return
        if base is not None and base[1] >= revision:
            return  # ours, or older than what we know
        record = json.loads(value)
        channel = core.channels.get(chan_key)
        if channel is None:
            channel = Channel(str(record.get("name", chan_key)), core.now)
            core.channels[chan_key] = channel
            delta: Record = {}
        else:
            delta = diff(base[0], self.record_of(channel)) if base is not None else {}
        self.base[chan_key] = (record, revision)
        self.set_channel(channel, apply(record, delta) if delta else record)

    def set_channel(self, channel: Channel, record: Record) -> None:
        """Make ``channel`` say what ``record`` says."""
        channel.created = int(record.get("created", channel.created))
        channel.modes = set(str(record.get("modes", "")))
        channel.password = record.get("key")
        channel.limit = record.get("limit")
        channel.topic = str(record.get("topic", ""))
        channel.topic_by = str(record.get("topic_by", ""))
        channel.topic_time = int(record.get("topic_time", 0))
        channel.bans = [(str(b[0]), str(b[1]), int(b[2])) for b in record.get("bans") or ()]
        invites = set(record.get("invites") or ())
        for nick_key in invites - channel.invites:
            invited = self.core.users.get(nick_key)
            if invited is not None and invited.server is None:
                invited.invite(channel.key)
        channel.invites = invites
        ops, voices = set(record.get("ops") or ()), set(record.get("voices") or ())
        for member, ms in channel.members.items():
            ident = self.ident(member)
            ms.op = ident in ops
            ms.voice = ident in voices

    def _member(self, rest: str, value: bytes | None, key: str) -> None:
        chan_hex, node, uid_text = rest.split(".")
        uid = int(uid_text)
        chan_key = unhex(chan_hex)
        self._track(node, key, value is not None)
        if node == self.node.name:
            self._own(key, value)
            return
        user = self.remote.get((node, uid))
        if value is None:
            waiting = self.pending.get((node, uid))
            if waiting is not None:
                waiting.discard(chan_key)
            channel = self.core.channels.get(chan_key)
            if user is not None and channel is not None and user in channel.members:
                self.core.remove_member(channel, user)
            return
        if user is None:
            self.pending.setdefault((node, uid), set()).add(chan_key)
            return
        self._join(chan_key, user)

    def _join(self, chan_key: str, user: User) -> bool:
        """Put a remote user in a channel (state only); ``False`` when it was in already."""
        core = self.core
        channel = core.channels.get(chan_key)
        if channel is None:
            base = self.base.get(chan_key)
            name = str(base[0].get("name", chan_key)) if base is not None else chan_key
            channel = Channel(name, core.now)
            core.channels[chan_key] = channel
            if base is not None:
                self.set_channel(channel, base[0])
        if user in channel.members:
            return False
        core.add_member(channel, user)
        base = self.base.get(chan_key)
        if base is not None:
            ident = self.ident(user)
            ms = channel.members[user]
            ms.op = ident in (base[0].get("ops") or ())
            ms.voice = ident in (base[0].get("voices") or ())
        return True

    # --- resynchronisation (rule 2) ------------------------------------------------------------

    def resync(self, entries: Iterable[tuple[str, bytes | None, int]]) -> None:
        """Make the mirror match a fresh read of the whole bucket, showing what changed.

        Used at start (nothing to show: no users yet) and after NATS came back: remote users
        gone meanwhile QUIT, new ones JOIN the channels they are in, for this node's users.
        """
        fresh_users: dict[tuple[str, int], Record] = {}
        fresh_members: dict[tuple[str, int], set[str]] = {}
        others: list[tuple[str, bytes | None, int]] = []
        own: dict[str, bytes] = {}
        self.keys_of.clear()
        for key, value, revision in entries:
            if value is None:
                continue
            kind, _, rest = key.partition(".")
            if kind == "u":
                node, _, uid = rest.partition(".")
                if node != self.node.name:
                    fresh_users[(node, int(uid))] = json.loads(value)
                else:
                    own[key] = value
                self._track(node, key, True)
            elif kind == "m":
                chan_hex, node, uid = rest.split(".")
                if node != self.node.name:
                    fresh_members.setdefault((node, int(uid)), set()).add(unhex(chan_hex))
                else:
                    own[key] = value
                self._track(node, key, True)
            else:
                others.append((key, value, revision))
        self.claims.clear()
        self.own = own
        self.node.bans.resync({key for key, _, _ in others if key.startswith("b.")})
        for key, value, revision in others:
            if key.startswith("c."):
                self.base.pop(unhex(key[2:]), None)  # re-read whole, newer or not
            self.apply(key, value, revision)
        for ident, user in list(self.remote.items()):
            if ident not in fresh_users:
                self.drop(user, SPLIT_REASON, show=True)
        for ident, record in fresh_users.items():
            known = self.remote.get(ident)
            if known is None:
                user = self.add_user(ident[0], ident[1], record)
            else:
                user = known
                self.update_user(user, record)
            wanted = fresh_members.get(ident, set())
            for chan_key in list(user.channels):
                if chan_key not in wanted:
                    channel = user.channels[chan_key]
                    self._show(channel, user, "PART")
                    self.core.remove_member(channel, user)
            for chan_key in wanted:
                if self._join(chan_key, user):
                    self._show(self.core.channels[chan_key], user, "JOIN")
        self.pending.clear()

    def _show(self, channel: Channel, user: User, verb: str) -> None:
        """Tell this node's members of ``channel`` that ``user`` joined or left it."""
        core = self.core
        if verb == "JOIN":
            event = core.event(
                user,
                "JOIN",
                channel.name,
                ext_params=(channel.name, user.account or "*", user.realname),
            )
        else:
            event = core.event(user, "PART", channel.name, SPLIT_REASON)
        core.deliver_local(channel, event, None)
