"""One relaychat process as a node of a cluster: the :class:`~relaychat.server.backplane.Backplane`
of its core, over NATS JetStream (see docs/cluster.md).

Rules:
1. The core does not know it is clustered: this node wraps the command table
   (``commands.py``), receives the core's channel traffic (:meth:`ClusterNode.channel_event`)
   and its departures (:meth:`ClusterNode.user_left`), mirrors the other nodes' users and the
   channels into it (``mirror.py``) and writes this node's state (``sync.py``).
2. Heartbeats and the death of other nodes are ``liveness.py``'s; NATS going away and coming
   back, and reasserting this node's state, are ``recovery.py``'s.
3. A node stopping cleanly deletes its heartbeat first: the others show its users leaving at
   once, rather than after the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import nats.errors
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from relaychat.cluster import commands
from relaychat.cluster.accounts import ClusterAccounts
from relaychat.cluster.bans import SharedBans
from relaychat.cluster.feeds import Feeds, deliver_special
from relaychat.cluster.history import ClusterHistory
from relaychat.cluster.idem import ClusterKeys
from relaychat.cluster.jet import ClusterError, Jet
from relaychat.cluster.liveness import Liveness
from relaychat.cluster.mirror import SPLIT_REASON, Mirror
from relaychat.cluster.names import Names, hexname, unhex
from relaychat.cluster.peer import Link, RemotePeer, decode_batch
from relaychat.cluster.recovery import Recovery
from relaychat.cluster.sync import Sync
from relaychat.cluster.wire import private_payload, stored_to_json
from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.backplane import Elsewhere
from relaychat.server.core import Replies
from relaychat.server.relay import Relay
from relaychat.server.state import Channel, User

if TYPE_CHECKING:
    from relaychat.server.accounts import AccountService
    from relaychat.server.connection import Hub

__all__ = ["ClusterNode", "default_node_name"]

log = logging.getLogger("relaychat.cluster")

#: Seconds between the node's maintenance passes (sync sweep, history index eviction).
MAINTENANCE = 5.0


def default_node_name() -> str:
    """``<host>-<pid>``, cut to the characters a node name may hold."""
    host = socket.gethostname().split(".")[0] or "node"
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{host}-{os.getpid()}")[:64]


class ClusterNode:
    """This process's part of a cluster (see the module rules).

    Args:
        server: the server (``listeners.Server``) whose core this node serves.
    """

    def __init__(self, server: Hub) -> None:
        self.server = server
        self.core = server.core
        self.config = server.config
        cl = self.config.cluster
        self.name = cl.node_name or default_node_name()
        self.incarnation = secrets.token_hex(4)
        self.names = Names(cl.prefix, self.name, self.incarnation)
        self.jet = Jet(self.config, self.names)
        self.history = (
            ClusterHistory(self.config, self.jet, self.names, self._locate)
            if self.config.history.enabled
            else None
        )
        #: Idempotency keys in the network's bucket (``idem.py``), when offered.
        self.keys = (
            ClusterKeys(self)
            if self.config.idempotency.enabled and self.config.history.enabled
            else None
        )
        self.bans = SharedBans(self)
        self.mirror = Mirror(self)
        self.accounts = ClusterAccounts(self)
        self.sync = Sync(self)
        self.feeds = Feeds(self)
        self.links: dict[tuple[str, str], Link] = {}
        self.liveness = Liveness(self)
        self.recovery = Recovery(self)
        #: Cut off from NATS (``recovery.py``): serving this node's users alone.
        self.isolated = False
        #: Stopping: nothing is reasserted or resynchronised any more.
        self.closing = False
        self.started = time.time()
        self._quiet = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._watchers: list[KeyValue.KeyWatcher] = []
        self._watch_tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the cluster: connect, read the state, start heartbeats. Before any listener.

        Raises:
            ClusterError: NATS cannot be reached or used, or the node name is in use.
        """
        recovery = self.recovery
        await self.jet.connect(disconnected=recovery.disconnected, reconnected=recovery.reconnected)
        try:
            await self.liveness.check_name()
            nc = self.jet.nc
            assert nc is not None
            await nc.subscribe(
                self.names.node_subject(self.name, self.incarnation), cb=self._on_link
            )
            await nc.subscribe(self.names.private_feed(), cb=self._on_private)
            self.mirror.on_lost = recovery.lost
            await self.watch()
            for key in list(self.mirror.keys_of.get(self.name, ())):
                self.jet.kv_delete(self.names.state_bucket, key)  # an earlier run's leftovers
            self.mirror.keys_of.pop(self.name, None)
            if self.keys is not None:
                await self.keys.start()
            await self.jet.settled()
        except ClusterError:
            self.closing = True
            await self.jet.close()
            raise
        except (nats.errors.Error, TimeoutError) as exc:
            self.closing = True
            await self.jet.close()
            raise ClusterError(f"cannot read the cluster state: {exc}") from None
        core = self.core
        core.backplane = self
        if self.history is not None:
            core.history = self.history
        if self.keys is not None:  # exactly-once: keys in the network's bucket
            core.enable_idempotency(self.keys)
            if core.keys is not None:
                core.keys.with_history = False  # messages go to the streams with their events
        commands.register(core, self)
        self.liveness.heartbeat()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.liveness.heartbeat_loop()),
            loop.create_task(self.liveness.loop()),
            loop.create_task(self._maintenance_loop()),
        ]
        log.info(
            "cluster: node %s joined %s (%d other nodes, %d remote users)",
            self.name,
            self.config.cluster.url,
            len(self.liveness.nodes),
            len(self.mirror.remote),
        )

    def use_accounts(self, service: AccountService | None) -> None:
        """Make the accounts service read and write the network's accounts, not a local file."""
        if service is not None:
            service.store.close()
            service.store = self.accounts

    def leave(self) -> None:
        """Stopping: tell the others now (rule 3). Call before the core shuts down."""
        self.closing = True
        self.jet.kv_delete(self.names.nodes_bucket, self.name)

    async def close(self) -> None:
        """Stop the tasks and watches, wait briefly for the outbox, close the connection."""
        self.closing = True
        for task in (*self._tasks, *self._watch_tasks):
            task.cancel()
        if self.recovery.task is not None:
            self.recovery.task.cancel()
        await self.stop_watchers()
        commands.unregister(self.core)
        await self.jet.close()

    # --- the Backplane (rule 1) ----------------------------------------------------------------

    def channel_event(
        self,
        channel: Channel,
        event: Relay,
        skip: User | None,
        *,
        status: str = "",
        tagmsg: bool = False,
    ) -> None:
        """Relay a channel event through the channels stream (local only while cut off)."""
        if self.isolated or not self.jet.connected:
            if self.history is not None:
                self.history.take(event.msgid)  # not stored: nowhere to store it
            self.core.deliver_local(channel, event, skip, status=status, tagmsg=tagmsg)
            return
        self.feeds.publish(channel, event, skip, status=status, tagmsg=tagmsg)

    def elsewhere(self) -> Elsewhere:
        """The other nodes' users (invisible, operators) and the live nodes, for LUSERS."""
        users = invisible = opers = 0
        for user in self.mirror.remote.values():
            if user.registered:
                users += 1
                invisible += "i" in user.modes
                opers += "o" in user.modes
        return Elsewhere(users, invisible, opers, len(self.liveness.nodes))

    def channel_special(
        self,
        channel: Channel,
        event: Relay,
        skip: User | None,
        *,
        cap: str = "",
        multiline: dict[str, Any] | None = None,
    ) -> None:
        """A REDACT (``cap``) or multiline message through the channels stream, like
        :meth:`channel_event` (local only while cut off)."""
        if self.isolated or not self.jet.connected:
            if self.history is not None:
                self.history.take(event.msgid)
            deliver_special(channel, event, skip, cap=cap, multiline=multiline)
            return
        self.feeds.publish(channel, event, skip, cap=cap, multiline=multiline)

    def user_left(self, user: User, reason: str) -> None:
        """A local user is leaving: delete its keys; settle its channels after."""
        if user.server is not None:
            return
        chans = self.sync.gone(user)
        if chans:
            asyncio.get_running_loop().call_soon(self._after_leaving, chans)

    def _after_leaving(self, chans: list[str]) -> None:
        for chan_key in set(chans):
            self.feeds.check(chan_key)
            self.sync.channel_changed(chan_key)

    def after_command(self, user: User, msg: Message) -> None:
        """Write what a command of a local user may have changed (``commands.py``)."""
        if user.server is not None or user.quitting:
            return
        sync = self.sync
        sync.user(user)
        sync.memberships(user)
        core = self.core
        for param in msg.params[:2]:
            if "#" not in param:
                continue
            for name in param.split(","):
                if name[:1] == "#":
                    key = irc_lower(name)
                    if key in core.channels or key in self.mirror.base:
                        sync.channel_changed(key)

    # --- helpers for the parts -----------------------------------------------------------------

    def is_quiet(self) -> bool:
        """Whether bytes for remote users are dropped (replaying locally, or cut off)."""
        return self._quiet > 0 or self.isolated

    @contextlib.contextmanager
    def quietly(self) -> Iterator[None]:
        """Within: what the core sends remote users stays here (each node tells its own)."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def link(self, node: str, incarnation: str) -> Link:
        """The link to a node process, made on first use."""
        link = self.links.get((node, incarnation))
        if link is None:
            mark = cast("Any", self.server.mark_dirty)
            link = Link(self.names.node_subject(node, incarnation), self.jet.publish, mark)
            self.links[(node, incarnation)] = link
        return link

    def notice_all(self, text: str) -> None:
        """A server NOTICE to every local registered user."""
        core = self.core
        for user in list(core.connections.values()):
            if user.registered and not user.quitting:
                user.send(Message("NOTICE", (user.nick, text), core.name).to_bytes())

    def cut_off(self, user: User, out: Replies) -> None:
        """Refuse a nick while NATS is away: 433 for a user, and no registration for others."""
        if user.registered:
            out.numeric(
                N.ERR_NICKNAMEINUSE,
                user.nick,
                text="Nick changes wait: this server is cut off from the network",
            )
            return
        out.flush()
        self.core.disconnect(
            user,
            "This server is cut off from the network",
            error="This server is cut off from the network; try another one or again shortly",
        )

    async def private_keys_of(self, nick_key: str) -> list[str]:
        """The private conversations of ``nick_key`` the private stream has (for TARGETS)."""
        names = self.names
        me = hexname(nick_key)
        keys: set[str] = set()
        for pattern in (f"{names.prefix}.p.{me}.*.*", f"{names.prefix}.p.*.{me}.*"):
            info = await self.jet.js.stream_info(names.private_stream, subjects_filter=pattern)
            for subject in (info.state.subjects or {}) if info.state else {}:
                parts = subject.split(".")
                with contextlib.suppress(ValueError, IndexError):
                    keys.add(f"{unhex(parts[-3])} {unhex(parts[-2])}")
        return sorted(keys)

    # --- private messages ----------------------------------------------------------------------

    def _locate(self, nick: str) -> tuple[str, int] | None:
        """(node, uid) of the user holding ``nick`` when it is on another node."""
        user = self.core.users.get(irc_lower(nick))
        peer = user.peer if user is not None else None
        return (peer.node, peer.uid) if isinstance(peer, RemotePeer) else None

    def send_private(self, peer: RemotePeer, data: bytes) -> bool:
        """Send ``data`` with the private message stashed for ``peer``'s user, if any: one
        publish, stored, then republished to its node (``history.py`` rule 3)."""
        history = self.history
        message = history.take_private(peer.node, peer.uid) if history is not None else None
        if message is None:
            return False
        payload = private_payload(peer.uid, peer.incarnation, data, stored_to_json(message))
        self.jet.publish_js(self.names.private_subject(message.key, peer.node), payload)
        return True

    async def _on_private(self, msg: Msg) -> None:
        raw = msg.data
        if raw[:3] != b"P1 ":
            return
        try:
            head = raw[3 : raw.index(b"\n")].split(b" ")
            uid, incarnation, size = int(head[0]), head[1].decode(), int(head[2])
        except (ValueError, IndexError):
            return
        if incarnation != self.incarnation:
            return  # for an earlier process of this node
        user = self.core.connections.get(uid)
        if user is not None and not user.quitting:
            start = raw.index(b"\n") + 1
            user.send(raw[start : start + size])

    # --- bytes from other nodes ----------------------------------------------------------------

    async def _on_link(self, msg: Msg) -> None:
        core = self.core
        for uid, data in decode_batch(msg.data):
            if uid == 0:
                self._request(data)
                continue
            user = core.connections.get(uid)
            if user is not None and not user.quitting:
                user.send(data)

    def _request(self, data: bytes) -> None:
        try:
            body = json.loads(data)
        except ValueError:
            return
        if "kill" in body:
            user = self.core.connections.get(int(body["kill"]))
            if user is not None and not user.quitting:
                self.core.now = time.time()
                self.core.disconnect(user, str(body.get("reason", "Killed")))

    # --- the state bucket ----------------------------------------------------------------------

    async def watch(self) -> None:
        """(Re)start the watches: nodes first (incarnations), then the state, resynchronised."""
        js = self.jet.js
        nodes_kv = await js.key_value(self.names.nodes_bucket)
        state_kv = await js.key_value(self.names.state_bucket)
        nodes_w = await nodes_kv.watch(">")
        async for entry in nodes_w:
            if entry is None:
                break
            self.liveness.entry(entry.key, _value(entry), first=True)
        accounts_kv = await js.key_value(self.names.accounts_bucket)
        accounts_w = await accounts_kv.watch(">")
        async for entry in accounts_w:
            if entry is None:
                break
            self.accounts.apply(entry.key, _value(entry), int(entry.revision or 0))
        state_w = await state_kv.watch(">")
        initial: list[tuple[str, bytes | None, int]] = []
        async for entry in state_w:
            if entry is None:
                break
            initial.append((entry.key, _value(entry), int(entry.revision or 0)))
        self.mirror.resync(initial)
        self._watchers = [nodes_w, accounts_w, state_w]
        loop = asyncio.get_running_loop()
        self._watch_tasks = [
            loop.create_task(self._follow(nodes_w, "nodes")),
            loop.create_task(self._follow(accounts_w, "accounts")),
            loop.create_task(self._follow(state_w, "state")),
        ]

    async def _follow(self, watcher: KeyValue.KeyWatcher, bucket: str) -> None:
        try:
            await self._follow_entries(watcher, bucket)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("cluster: the %s watch stopped", bucket)
        else:
            log.debug("cluster: the %s watch ended", bucket)

    async def _follow_entries(self, watcher: KeyValue.KeyWatcher, bucket: str) -> None:
        async for entry in watcher:
            if entry is None:
                continue
            try:
                if bucket == "nodes":
                    self.liveness.entry(entry.key, _value(entry))
                elif bucket == "accounts":
                    self.accounts.apply(entry.key, _value(entry), int(entry.revision or 0))
                else:
                    self.core.now = time.time()
                    self.mirror.apply(entry.key, _value(entry), int(entry.revision or 0))
            except Exception:
                log.exception("cluster: %s entry %s could not be applied", bucket, entry.key)

    async def stop_watchers(self) -> None:
        for task in self._watch_tasks:
            task.cancel()
        self._watch_tasks = []
        for watcher in self._watchers:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]
        self._watchers = []

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE)
            if self.isolated:
                continue
            try:
                self.sync.sweep()
                for chan_key, channel in list(self.core.channels.items()):
                    if any(m.server is None for m in channel.members):
                        self.feeds.want(chan_key)
                if self.history is not None:
                    self.history.evict_idle(time.monotonic())
            except Exception:  # pragma: no cover - a bug must not stop the maintenance
                log.exception("cluster: maintenance failed")

    def stats(self) -> dict[str, Any]:
        """Numbers for status and tests."""
        return {
            "node": self.name,
            "nodes": sorted(self.liveness.nodes),
            "remote_users": len(self.mirror.remote),
            "feeds": len(self.feeds.subs),
            "received": self.feeds.received,
            "published": self.feeds.published,
            "isolated": self.isolated,
            "failures": self.jet.failures,
            "split": SPLIT_REASON,
        }


def _value(entry: KeyValue.Entry) -> bytes | None:
    if entry.operation in ("DEL", "PURGE"):
        return None
    return entry.value or b""
