"""A node cut off from NATS, and coming back: local-only service, then resynchronisation.

Rules:
1. While NATS is away the node keeps its users and serves them alone: channel traffic is
   delivered locally and not stored, new registrations are refused, nick changes get 433, and a
   NOTICE tells every user. After ``cluster.node_timeout`` it shows the other nodes' users
   leaving (they show this node's users leaving too).
2. When NATS is back the node re-reads the whole state (``Mirror.resync``: what changed
   meanwhile is shown as JOIN and QUIT), then reasserts its own: it re-claims its users' nicks
   (a user whose nick was taken meanwhile is renamed ``Guest<digits>``), writes the records and
   memberships the bucket lacks or has wrong, announces the memberships it lacked to the other
   nodes as JOINs, and deletes its keys of users who left meanwhile.
3. The same reassertion runs whenever another node deleted keys this node still needs (it was
   thought dead); losses that arrive during one run another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import nats.errors

from relaychat.cluster import commands
from relaychat.cluster.base import Node
from relaychat.cluster.names import unhex
from relaychat.cluster.wire import dumps, user_record
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.core import Replies
from relaychat.server.state import User

__all__ = ["Recovery"]

log = logging.getLogger("relaychat.cluster")


class Recovery:
    """NATS away and back, and reassertion of this node's state (see the module rules)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        #: The resynchronisation or reassertion running, if any.
        self.task: asyncio.Task[None] | None = None
        self._wanted = False
        self._isolated_at = 0.0
        self._split_off = False

    # --- NATS away (rule 1) --------------------------------------------------------------------

    async def disconnected(self) -> None:
        node = self.node
        if node.isolated or node.closing:
            return
        node.isolated = True
        self._isolated_at = time.monotonic()
        self._split_off = False
        node.jet.disconnected()
        node.feeds.forget_positions()
        if node.history is not None:
            node.history.stale()
        log.warning("cluster: lost NATS; serving local users only")
        node.notice_all(
            "*** This server lost contact with the rest of the network: you can reach users of "
            "this server only, and messages are not kept, until it is back"
        )

    def cut_off_for(self, now: float) -> None:
        """Called while cut off: after the node timeout, the other nodes' users split off."""
        node = self.node
        if self._split_off or now - self._isolated_at <= node.config.cluster.node_timeout:
            return
        self._split_off = True
        node.notice_all(
            "*** This server is still cut off from the network: users of other servers are "
            "shown leaving until it is back"
        )
        for name in list(node.liveness.nodes):
            node.liveness.gone(name)

    # --- NATS back (rule 2) --------------------------------------------------------------------

    async def reconnected(self) -> None:
        if self.node.closing:
            return
        log.info("cluster: NATS is back; resynchronising")
        if self.task is not None:
            self.task.cancel()
        self.task = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        node = self.node
        try:
            node.liveness.restart_clock()
            await node.stop_watchers()
            for attempt in range(1, 61):
                try:
                    await node.watch()
                    break
                except (nats.errors.Error, TimeoutError) as exc:  # JetStream electing leaders
                    log.info("cluster: state not readable yet (attempt %d): %s", attempt, exc)
                    await asyncio.sleep(0.5)
            node.isolated = False
            node.liveness.heartbeat()
            self._wanted = False
            await self.reassert()
            node.notice_all("*** This server is back in touch with the network")
            while self._wanted and not node.isolated:  # keys lost meanwhile
                self._wanted = False
                await asyncio.sleep(0.05)
                await self.reassert()
        finally:
            self.task = None

    # --- keys lost (rule 3) --------------------------------------------------------------------

    def needed(self, key: str) -> bool:
        """Whether this node's state needs ``key`` (one of its user, claim or member keys)."""
        node = self.node
        core = node.core
        kind, _, rest = key.partition(".")
        try:
            if kind == "n":
                nick_key = unhex(rest)
                return any(c[0] == nick_key for c in node.sync.claims.values())
            if kind == "u":
                user = core.connections.get(int(rest.rsplit(".", 1)[1]))
                return user is not None and user.registered and not user.quitting
            if kind == "m":
                chan_hex, _, uid = rest.split(".")
                user = core.connections.get(int(uid))
                return user is not None and not user.quitting and unhex(chan_hex) in user.channels
        except (ValueError, IndexError):
            return False
        return False

    def lost(self, key: str) -> None:
        """Someone deleted a key this node needs: it thought this node dead. Reassert."""
        if self.needed(key):
            self.schedule()

    def schedule(self) -> None:
        """Reassert this node's state soon (again, if one is running)."""
        node = self.node
        if node.closing or node.isolated:
            return
        self._wanted = True
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._soon())

    async def _soon(self) -> None:
        try:
            while self._wanted and not self.node.isolated:
                self._wanted = False
                await asyncio.sleep(0.05)  # let the rest of the clean-up arrive first
                await self.reassert()
        finally:
            self.task = None

    async def reassert(self) -> None:
        """Make the state bucket say what this node's users are (rule 2).

        Only what the bucket lacks or has wrong is written (``Mirror.own``): rewriting equal
        values would hide them from another node resynchronising at the same moment.
        """
        node = self.node
        core, sync, mirror, names = node.core, node.sync, node.mirror, node.names
        keep: set[str] = set()
        announce: list[tuple[User, str]] = []
        for user in list(core.connections.values()):
            if not user.registered or user.quitting:
                continue
            holder = mirror.claims.get(user.key)
            if holder is None or holder[0] != sync.holder(user):
                revision = await sync.claim(user, user.key)
                if revision is None:
                    await self._rename(user)
                    continue
                sync.claims[user.id] = (user.key, revision)
            else:
                sync.claims[user.id] = (user.key, holder[1])
            user_key = names.user_key(node.name, user.id)
            keep.add(user_key)
            record = user_record(user, core.name, node.incarnation)
            sync.users[user.id] = record
            if mirror.own.get(user_key) != dumps(record):
                node.jet.kv_put(names.state_bucket, user_key, dumps(record))
            for chan_key in user.channels:
                member = names.member_key(chan_key, node.name, user.id)
                keep.add(member)
                if member not in mirror.own:
                    node.jet.kv_put(names.state_bucket, member, b"1")
                    announce.append((user, chan_key))
            sync.members[user.id] = set(user.channels)
        for chan_key, channel in list(core.channels.items()):
            if any(m.server is None for m in channel.members):
                sync.channel_changed(chan_key)  # writes it only if the bucket differs
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    await node.feeds.ensure(chan_key)
        for user, chan_key in announce:
            joined = core.channels.get(chan_key)
            if joined is None or user.quitting:
                continue
            event = core.event(
                user,
                "JOIN",
                joined.name,
                ext_params=(joined.name, user.account or "*", user.realname),
            )
            node.feeds.publish(joined, event, user, others_only=True)
        for key in set(mirror.own) - keep:
            node.jet.kv_delete(names.state_bucket, key)
        for nick_key, (holder_text, revision) in list(mirror.claims.items()):
            held = any(c[0] == nick_key for c in sync.claims.values())
            if holder_text.startswith(node.name + "/") and not held:
                node.jet.kv_delete(names.state_bucket, names.nick_key(nick_key), last=revision)

    async def _rename(self, user: User) -> None:
        """``user``'s nick was taken while NATS was away: give it a Guest nick."""
        node = self.node
        core = node.core
        for _ in range(5):
            guest = commands.guest_nick(core)
            revision = await node.sync.claim(user, irc_lower(guest))
            if revision is None:
                continue
            if user.quitting:
                node.sync.release(irc_lower(guest), revision)
                return
            old = user.nick
            out = Replies(core, user)
            commands.ORIGINAL["NICK"](core, user, Message("NICK", (guest,)), out)
            out.add(
                Message(
                    "NOTICE",
                    (user.nick, f"*** Your nick {old} was taken while this server was cut off"),
                    core.name,
                )
            )
            out.flush()
            node.sync.claims[user.id] = (user.key, revision)
            node.after_command(user, Message("NICK", (guest,)))
            return
        core.disconnect(user, "Nick lost during a network split")
