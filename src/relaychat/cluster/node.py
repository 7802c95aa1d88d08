"""One relaychat process as a node of a cluster: the :class:`~relaychat.server.backplane.Backplane`
of its core, over NATS JetStream (see docs/cluster.md).

Rules:
1. The core does not know it is clustered: this node wraps the command table
   (``commands.py``), receives the core's channel traffic (:meth:`ClusterNode.channel_event`)
   and its departures (:meth:`ClusterNode.user_left`), mirrors the other nodes' users and the
   channels into it (``mirror.py``) and writes this node's state (``sync.py``).
2. Heartbeats: every ``cluster.heartbeat`` seconds the node writes its record to the nodes
   bucket. A node not heard from for ``cluster.node_timeout`` is dead: every node shows its
   users leaving (QUIT ``*.net *.split``) to its own users, and the live node with the lowest
   name marks it dead and deletes its keys, which frees its users' nicks.
3. NATS away: the node keeps its users and serves them alone (channel traffic is delivered
   locally, not stored), tells them with a NOTICE, and accepts no new registration. After
   ``cluster.node_timeout`` it shows the other nodes' users leaving (they show its users
   leaving too). When NATS is back it re-reads the whole state (``Mirror.resync``), re-claims
   its users' nicks (a user whose nick was taken meanwhile is renamed), rewrites its users and
   memberships, re-announces the memberships the others lost, and deletes its stale keys.
4. A node stopping cleanly deletes its heartbeat first: the others show its users leaving at
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import nats.errors
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from relaychat import __version__
from relaychat.cluster import commands
from relaychat.cluster.accounts import ClusterAccounts
from relaychat.cluster.feeds import Feeds
from relaychat.cluster.history import ClusterHistory
from relaychat.cluster.jet import ClusterError, Jet
from relaychat.cluster.mirror import SPLIT_REASON, Mirror
from relaychat.cluster.names import Names, hexname, unhex
from relaychat.cluster.peer import Link, RemotePeer, decode_batch
from relaychat.cluster.sync import Sync
from relaychat.cluster.wire import dumps, stored_to_json, user_record
from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.core import Replies
from relaychat.server.relay import Relay
from relaychat.server.state import Channel, User

if TYPE_CHECKING:
    from relaychat.accounts.service import AccountService
    from relaychat.server.connection import Hub

__all__ = ["ClusterNode", "default_node_name"]

log = logging.getLogger("relaychat.cluster")

#: Seconds between the node's maintenance passes (sync sweep, history index eviction).
MAINTENANCE = 5.0


def default_node_name() -> str:
    """``<host>-<pid>``, cut to the characters a node name may hold."""
    host = socket.gethostname().split(".")[0] or "node"
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{host}-{os.getpid()}")[:64]


@dataclass(slots=True)
class NodeState:
    """What this node knows of another: when it was last heard from, and its record."""

    seen: float
    record: dict[str, Any] = field(default_factory=dict)


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
        self.mirror = Mirror(self)
        self.accounts = ClusterAccounts(self)
        self.sync = Sync(self)
        self.feeds = Feeds(self)
        self.links: dict[tuple[str, str], Link] = {}
        self.nodes: dict[str, NodeState] = {}
        self.isolated = False
        self.started = time.time()
        self._isolated_at = 0.0
        self._split_off = False  # the other nodes' users were shown leaving
        self._since = time.monotonic()  # since when liveness can be judged
        self._quiet = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._watchers: list[KeyValue.KeyWatcher] = []
        self._watch_tasks: list[asyncio.Task[None]] = []
        self._recovering: asyncio.Task[None] | None = None
        self._reassert_wanted = False
        self._closing = False

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the cluster: connect, read the state, start heartbeats. Before any listener.

        Raises:
            ClusterError: NATS cannot be reached or used, or the node name is in use.
        """
        await self.jet.connect(disconnected=self._disconnected, reconnected=self._reconnected)
        try:
            await self._check_name()
            nc = self.jet.nc
            assert nc is not None
            await nc.subscribe(
                self.names.node_subject(self.name, self.incarnation), cb=self._on_link
            )
            await nc.subscribe(self.names.private_feed(), cb=self._on_private)
            self.mirror.on_lost = self._lost
            await self._watch()
            for key in list(self.mirror.keys_of.get(self.name, ())):
                self.jet.kv_delete(self.names.state_bucket, key)  # an earlier run's leftovers
            self.mirror.keys_of.pop(self.name, None)
            await self.jet.settled()
        except ClusterError:
            self._closing = True
            await self.jet.close()
            raise
        except (nats.errors.Error, TimeoutError) as exc:
            self._closing = True
            await self.jet.close()
            raise ClusterError(f"cannot read the cluster state: {exc}") from None
        core = self.core
        core.backplane = self
        if self.history is not None:
            core.history = self.history
        commands.register(core, self)
        self.heartbeat()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._heartbeat_loop()),
            loop.create_task(self._liveness_loop()),
            loop.create_task(self._maintenance_loop()),
        ]
        log.info(
            "cluster: node %s joined %s (%d other nodes, %d remote users)",
            self.name,
            self.config.cluster.url,
            len([n for n in self.nodes if n != self.name]),
            len(self.mirror.remote),
        )

    async def _check_name(self) -> None:
        stored = await self.jet.kv_get(self.names.nodes_bucket, self.name)
        if stored is None or stored.value is None:
            return
        record = json.loads(stored.value)
        age = time.time() - float(record.get("hb", 0))
        if not record.get("dead") and age < self.config.cluster.node_timeout:
            raise ClusterError(
                f"node name {self.name} is in use by a running node (heard {age:.0f} s ago); "
                "give each node its own cluster.node_name"
            )

    def use_accounts(self, service: AccountService | None) -> None:
        """Make the accounts service read and write the network's accounts, not a local file."""
        if service is not None:
            service.store.close()
            service.store = self.accounts

    def leave(self) -> None:
        """Stopping: tell the others now (rule 4). Call before the core shuts down."""
        self._closing = True
        self.jet.kv_delete(self.names.nodes_bucket, self.name)

    async def close(self) -> None:
        """Stop the tasks and watches, wait briefly for the outbox, close the connection."""
        self._closing = True
        for task in (*self._tasks, *self._watch_tasks):
            task.cancel()
        if self._recovering is not None:
            self._recovering.cancel()
        await self._stop_watchers()
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

    def incarnation_of(self, node: str) -> str | None:
        """The incarnation the nodes bucket gives for ``node``, if known."""
        state = self.nodes.get(node)
        inc = state.record.get("inc") if state is not None else None
        return str(inc) if inc is not None else None

    def silent(self, node: str) -> bool:
        """Whether ``node`` missed its last two heartbeats (or is not known alive)."""
        state = self.nodes.get(node)
        if state is None:
            return True
        return time.monotonic() - state.seen > 2 * self.config.cluster.heartbeat

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
        payload = {
            "h": stored_to_json(message),
            "u": peer.uid,
            "g": peer.incarnation,
            "b": data.decode("utf-8", "replace"),
        }
        subject = self.names.private_subject(message.key, peer.node)
        self.jet.publish_js(subject, dumps(payload))
        return True

    async def _on_private(self, msg: Msg) -> None:
        try:
            data = json.loads(msg.data)
            if data.get("g") != self.incarnation:
                return  # for an earlier process of this node
            user = self.core.connections.get(int(data["u"]))
            text = str(data["b"])
        except (ValueError, KeyError, TypeError):
            return
        if user is not None and not user.quitting:
            user.send(text.encode("utf-8"))

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

    async def _watch(self) -> None:
        """(Re)start the watches: nodes first (incarnations), then the state, resynchronised."""
        js = self.jet.js
        nodes_kv = await js.key_value(self.names.nodes_bucket)
        state_kv = await js.key_value(self.names.state_bucket)
        nodes_w = await nodes_kv.watch(">")
        async for entry in nodes_w:
            if entry is None:
                break
            self._node_entry(entry.key, _value(entry), first=True)
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
                    self._node_entry(entry.key, _value(entry))
                elif bucket == "accounts":
                    self.accounts.apply(entry.key, _value(entry), int(entry.revision or 0))
                else:
                    self.core.now = time.time()
                    self.mirror.apply(entry.key, _value(entry), int(entry.revision or 0))
            except Exception:
                log.exception("cluster: %s entry %s could not be applied", bucket, entry.key)

    async def _stop_watchers(self) -> None:
        for task in self._watch_tasks:
            task.cancel()
        self._watch_tasks = []
        for watcher in self._watchers:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]
        self._watchers = []

    def _wanted(self, key: str) -> bool:
        """Whether this node's state needs ``key`` (one of its user, claim or member keys)."""
        core = self.core
        kind, _, rest = key.partition(".")
        try:
            if kind == "n":
                nick_key = unhex(rest)
                return any(c[0] == nick_key for c in self.sync.claims.values())
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

    def _lost(self, key: str) -> None:
        """Someone deleted a key this node needs: it thought this node dead. Reassert."""
        if self._wanted(key):
            self._schedule_reassert()

    def _schedule_reassert(self) -> None:
        if self._closing or self.isolated:
            return
        self._reassert_wanted = True
        if self._recovering is None:
            self._recovering = asyncio.get_running_loop().create_task(self._reassert_soon())

    async def _reassert_soon(self) -> None:
        try:
            while self._reassert_wanted and not self.isolated:
                self._reassert_wanted = False
                await asyncio.sleep(0.05)  # let the rest of the clean-up arrive first
                await self._reassert()
        finally:
            self._recovering = None

    # --- heartbeats and liveness (rule 2) ------------------------------------------------------

    def heartbeat(self) -> None:
        """Write this node's record to the nodes bucket."""
        core = self.core
        record = {
            "inc": self.incarnation,
            "srv": core.name,
            "hb": time.time(),
            "started": self.started,
            "users": sum(1 for u in core.connections.values() if u.registered),
            "channels": len(self.feeds.subs),
            "ack_ms": round(self.jet.ack_latency * 1000, 2),
            "version": __version__,
        }
        self.jet.kv_put(self.names.nodes_bucket, self.name, dumps(record))

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.cluster.heartbeat)
            if not self.isolated:
                self.heartbeat()

    def _node_entry(self, name: str, value: bytes | None, *, first: bool = False) -> None:
        if name == self.name:
            if value is not None and not first:
                record = json.loads(value)
                if record.get("dead") and record.get("inc") == self.incarnation:
                    log.warning("cluster: another node declared this one dead; reasserting")
                    self.heartbeat()
                    self._schedule_reassert()
            return
        if value is None:
            if name in self.nodes:
                log.info("cluster: node %s left", name)
                self._node_gone(name)
            return
        record = json.loads(value)
        old = self.nodes.get(name)
        if record.get("dead"):
            if old is not None and old.record.get("inc") == record.get("inc"):
                self._node_gone(name)
            return
        if old is not None and old.record.get("inc") != record.get("inc"):
            log.info("cluster: node %s restarted", name)
            self._node_gone(name)
        self.nodes[name] = NodeState(time.monotonic(), record)

    def _node_gone(self, name: str) -> None:
        """Show the users of node ``name`` leaving, and forget the node."""
        self.nodes.pop(name, None)
        self.core.now = time.time()
        gone = self.mirror.drop_node(name, show=True)
        for key in [k for k in self.links if k[0] == name]:
            self.links.pop(key).closed = True
        if gone:
            log.warning("cluster: node %s is gone; %d of its users split off", name, len(gone))

    def _declare_dead(self, name: str, state: NodeState | None) -> None:
        log.warning("cluster: node %s missed its heartbeats: declared dead", name)
        self._node_gone(name)
        alive = sorted([self.name, *self.nodes])
        if alive[0] != self.name:
            return  # the lowest-named live node cleans up
        inc = state.record.get("inc") if state is not None else None
        self.jet.kv_put(
            self.names.nodes_bucket,
            name,
            dumps({"dead": True, "inc": inc, "by": self.name, "hb": 0}),
        )
        for key in sorted(self.mirror.keys_of.pop(name, ())):
            self.jet.kv_delete(self.names.state_bucket, key)

    async def _liveness_loop(self) -> None:
        cl = self.config.cluster
        while True:
            await asyncio.sleep(min(1.0, cl.heartbeat / 2))
            now = time.monotonic()
            if self.isolated:
                if not self._split_off and now - self._isolated_at > cl.node_timeout:
                    self._split_off = True
                    self.notice_all(
                        "*** This server is still cut off from the network: users of other "
                        "servers are shown leaving until it is back"
                    )
                    for name in list(self.nodes):
                        self._node_gone(name)
                continue
            for name, state in list(self.nodes.items()):
                if now - state.seen > cl.node_timeout:
                    self._declare_dead(name, state)
            if now - self._since > cl.node_timeout:
                # Keys of nodes that never heartbeat since we started (long dead, not cleaned).
                for name in [n for n in self.mirror.keys_of if n not in self.nodes]:
                    if name != self.name and self.mirror.keys_of.get(name):
                        self._declare_dead(name, None)

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

    # --- NATS away and back (rule 3) -----------------------------------------------------------

    async def _disconnected(self) -> None:
        if self.isolated or self._closing:
            return
        self.isolated = True
        self._isolated_at = time.monotonic()
        self._split_off = False
        self.jet.disconnected()
        self.feeds.forget_positions()
        if self.history is not None:
            self.history.stale()
        log.warning("cluster: lost NATS; serving local users only")
        self.notice_all(
            "*** This server lost contact with the rest of the network: you can reach users of "
            "this server only, and messages are not kept, until it is back"
        )

    async def _reconnected(self) -> None:
        if self._closing:
            return
        log.info("cluster: NATS is back; resynchronising")
        if self._recovering is not None:
            self._recovering.cancel()
        self._recovering = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        try:
            for state in self.nodes.values():
                state.seen = time.monotonic()
            self._since = time.monotonic()
            await self._stop_watchers()
            for attempt in range(1, 61):
                try:
                    await self._watch()
                    break
                except (nats.errors.Error, TimeoutError) as exc:  # JetStream electing leaders
                    log.info("cluster: state not readable yet (attempt %d): %s", attempt, exc)
                    await asyncio.sleep(0.5)
            self.isolated = False
            self.heartbeat()
            self._reassert_wanted = False
            await self._reassert()
            self.notice_all("*** This server is back in touch with the network")
            while self._reassert_wanted and not self.isolated:  # lost keys meanwhile
                self._reassert_wanted = False
                await asyncio.sleep(0.05)
                await self._reassert()
        finally:
            self._recovering = None

    async def _reassert(self) -> None:
        """Make the state bucket say what this node's users are (rule 3).

        Only what the bucket lacks or has wrong is written (``Mirror.own``); memberships it
        lacked are announced to the other nodes as JOINs (they had shown the users leaving).
        """
        core, sync, mirror = self.core, self.sync, self.mirror
        names = self.names
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
            user_key = names.user_key(self.name, user.id)
            keep.add(user_key)
            record = user_record(user, core.name, self.incarnation)
            sync.users[user.id] = record
            if mirror.own.get(user_key) != dumps(record):
                self.jet.kv_put(names.state_bucket, user_key, dumps(record))
            for chan_key in user.channels:
                member = names.member_key(chan_key, self.name, user.id)
                keep.add(member)
                if member not in mirror.own:
                    self.jet.kv_put(names.state_bucket, member, b"1")
                    announce.append((user, chan_key))
            sync.members[user.id] = set(user.channels)
        for chan_key, channel in list(core.channels.items()):
            if any(m.server is None for m in channel.members):
                sync.channel_changed(chan_key)  # writes it only if the bucket differs
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    await self.feeds.ensure(chan_key)
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
            self.feeds.publish(joined, event, user, others_only=True)
        for key in set(mirror.own) - keep:
            self.jet.kv_delete(names.state_bucket, key)
        for nick_key, (holder_text, revision) in list(mirror.claims.items()):
            held = any(c[0] == nick_key for c in sync.claims.values())
            if holder_text.startswith(self.name + "/") and not held:
                self.jet.kv_delete(names.state_bucket, names.nick_key(nick_key), last=revision)

    async def _rename(self, user: User) -> None:
        """``user``'s nick was taken while NATS was away: give it a Guest nick."""
        core = self.core
        for _ in range(5):
            guest = commands.guest_nick(core)
            revision = await self.sync.claim(user, irc_lower(guest))
            if revision is None:
                continue
            if user.quitting:
                self.sync.release(irc_lower(guest), revision)
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
            self.sync.claims[user.id] = (user.key, revision)
            self.after_command(user, Message("NICK", (guest,)))
            return
        core.disconnect(user, "Nick lost during a network split")

    def stats(self) -> dict[str, Any]:
        """Numbers for status and tests."""
        return {
            "node": self.name,
            "nodes": sorted(self.nodes),
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
