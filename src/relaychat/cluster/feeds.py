"""Channel traffic between nodes: published once per event, delivered in stream order.

Rules:
1. Every channel event (PRIVMSG, NOTICE, TAGMSG, JOIN, PART, KICK, MODE, TOPIC...) is published
   once, by the node it happened on, to the channel's subject in the channels stream: ``.m``
   when it is a message kept as history (the record rides along), ``.e`` otherwise.
   Events published one after the other to one subject in one loop turn travel as one stream
   message (``jet.py`` rule 5); everything below applies to each of them, in order.
2. JetStream republishes each one after storing it, with its stream sequence and the previous
   sequence of its subject. A node subscribes to a channel's republished subjects while it has
   members there, and delivers each event to them in that order, its own events included, so
   every member on every node sees one order. A gap in the sequences (a message dropped on the
   way) is filled from the stream before the next event is delivered.
3. A node's own event is not sent to its sender again (the sender got its copy as a reply);
   an event marked "for the others" (re-announced after NATS came back) is not delivered on
   the node that sent it.
4. A KICK names its target's node and id: that node takes its user out of the channel when the
   KICK arrives, after delivering it (so the kicked user sees it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from relaychat.cluster.base import Node
from relaychat.cluster.peer import RemotePeer
from relaychat.cluster.wire import channel_payload, dumps, read_channel, stored_to_json
from relaychat.protocol.message import parse_bytes
from relaychat.server.multiline import Multiline
from relaychat.server.relay import Relay
from relaychat.server.state import Channel, User

__all__ = ["MAX_FILL", "Feeds", "deliver_special"]

log = logging.getLogger("relaychat.cluster")

#: Most missing events fetched to fill one gap; a longer gap is skipped (and logged).
MAX_FILL = 500


def deliver_special(
    channel: Channel,
    event: Relay,
    skip: User | None,
    *,
    cap: str = "",
    multiline: dict[str, Any] | None = None,
) -> None:
    """Send a ``Backplane.channel_special`` event to this node's members of ``channel`` except
    ``skip``: those with capability ``cap`` (when given), or the multiline message
    ``Multiline(**multiline)`` as each member takes it."""
    message = None
    if multiline is not None:
        ref = multiline["ref"]
        message = Multiline(**{**multiline, "ref": ref.encode() if isinstance(ref, str) else ref})
    for member in list(channel.members):
        if member is skip or member.server is not None or (cap and cap not in member.caps):
            continue
        member.send(message.data(member) if message is not None else event.data(member))


class Feeds:
    """Channel subscriptions and channel traffic of one node (see the module rules)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.core = node.core
        self.subs: dict[str, Subscription] = {}
        self._starting: dict[str, asyncio.Future[None]] = {}
        #: The last sequence delivered per (channel key, "m" or "e").
        self.last: dict[tuple[str, str], int] = {}
        #: Events delivered and events published (for status and metrics).
        self.received = 0
        self.published = 0

    # --- publishing (rules 1 and 4) ------------------------------------------------------------

    def publish(
        self,
        channel: Channel,
        event: Relay,
        skip: User | None,
        *,
        status: str = "",
        tagmsg: bool = False,
        others_only: bool = False,
        cap: str = "",
        multiline: dict[str, Any] | None = None,
    ) -> None:
        """Publish one channel event (see :meth:`ClusterNode.channel_event` and
        :meth:`ClusterNode.channel_special`)."""
        node = self.node
        history = node.history
        stored = history.take(event.msgid) if history is not None else None
        data: dict[str, Any] = {
            "n": node.name,
            "g": node.incarnation,
            "s": skip.id if skip is not None and skip.server is None else 0,
            "t": event.time,
            "i": event.msgid,
        }
        if event.ext_line is not None:
            data["x"] = event.ext_line.decode("utf-8", "replace")
        if event.account:
            data["a"] = event.account
        if event.client_tags:
            data["c"] = event.client_tags
        if status:
            data["st"] = status
        if tagmsg:
            data["tg"] = 1
        if others_only:
            data["ro"] = 1
        if cap:
            data["cp"] = cap
        if multiline is not None:
            ref = multiline["ref"]
            data["ml"] = {**multiline, "ref": ref.decode() if isinstance(ref, bytes) else ref}
        if b" KICK " in event.line[:600]:
            target = self._kicked(event.line)
            if target is not None:
                data["k"] = target
        record = dumps(stored_to_json(stored)) if stored is not None else b""
        subject = node.names.channel_subject(channel.key, "m" if stored is not None else "e")
        node.jet.publish_merged(subject, channel_payload(data, event.line, record))
        self.published += 1

    def _kicked(self, line: bytes) -> list[Any] | None:
        try:
            msg = parse_bytes(line.rstrip(b"\r\n"))
        except Exception:
            return None
        if msg.command != "KICK" or len(msg.params) < 2:
            return None
        target = self.core.find_user(msg.params[1])
        if target is None:
            return None
        peer = target.peer
        if isinstance(peer, RemotePeer):
            return [peer.node, peer.uid]
        return [self.node.name, target.id]

    # --- subscriptions (rule 2) ----------------------------------------------------------------

    async def ensure(self, chan_key: str) -> None:
        """Subscribe to ``chan_key``'s traffic (returns once the server has the subscription)."""
        if chan_key in self.subs:
            return
        starting = self._starting.get(chan_key)
        if starting is not None:
            await starting
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._starting[chan_key] = future
        try:
            nc = self.node.jet.nc
            assert nc is not None

            async def on_message(msg: Msg) -> None:
                await self._on_message(chan_key, msg)

            sub = await nc.subscribe(
                self.node.names.channel_feed(chan_key),
                cb=on_message,
                pending_msgs_limit=100_000,
                pending_bytes_limit=256 * 1024 * 1024,
            )
            await nc.flush(timeout=5)
            self.subs[chan_key] = sub
        finally:
            del self._starting[chan_key]
            future.set_result(None)

    def want(self, chan_key: str) -> None:
        """Subscribe to ``chan_key`` soon, if not yet (a local user is in it)."""
        if chan_key not in self.subs and chan_key not in self._starting and self.node.jet.connected:
            asyncio.get_running_loop().create_task(self._ensure_quietly(chan_key))

    async def _ensure_quietly(self, chan_key: str) -> None:
        try:
            await self.ensure(chan_key)
        except (nats.errors.Error, TimeoutError):
            log.warning("cluster: cannot subscribe to %s (retried later)", chan_key)

    def local_members(self, chan_key: str) -> bool:
        """Whether some user of this node is in ``chan_key``."""
        channel = self.core.channels.get(chan_key)
        return channel is not None and any(m.server is None for m in channel.members)

    def check(self, chan_key: str) -> None:
        """Unsubscribe from ``chan_key`` when no user of this node is in it any more."""
        if self.local_members(chan_key):
            return
        sub = self.subs.pop(chan_key, None)
        self.last.pop((chan_key, "m"), None)
        self.last.pop((chan_key, "e"), None)
        if self.node.history is not None:
            self.node.history.unfeed(chan_key)
        if sub is not None:
            asyncio.get_running_loop().create_task(self._unsubscribe(sub))

    async def _unsubscribe(self, sub: Subscription) -> None:
        try:
            await sub.unsubscribe()
        except nats.errors.Error:
            pass

    def forget_positions(self) -> None:
        """NATS was away: sequences seen before do not tell gaps any more."""
        self.last.clear()

    # --- receiving (rules 2-4) -----------------------------------------------------------------

    async def _on_message(self, chan_key: str, msg: Msg) -> None:
        headers = msg.headers or {}
        try:
            seq = int(headers["Nats-Sequence"])
            prev = int(headers.get("Nats-Last-Sequence", "0"))
            subject = headers.get("Nats-Subject", "")
        except (KeyError, ValueError):
            return
        kind = subject[-1:]
        last = self.last.get((chan_key, kind))
        if last is not None:
            if seq <= last:
                return  # seen already
            if prev > last:
                last = await self._fill(chan_key, kind, subject, last, seq)
        try:
            self._handle(chan_key, seq, prev, msg.data)
        except Exception:
            log.exception("cluster: event %d of %s could not be delivered", seq, chan_key)
        self.last[(chan_key, kind)] = seq

    async def _fill(self, chan_key: str, kind: str, subject: str, last: int, upto: int) -> int:
        """Fetch and deliver the events of ``subject`` between ``last`` and ``upto``."""
        js = self.node.jet.js
        stream = self.node.names.channels_stream
        count = 0
        while count < MAX_FILL:
            try:
                raw = await js.get_msg(
                    stream, seq=last + 1, next=True, subject=subject, direct=True
                )
            except (nats.errors.Error, TimeoutError):
                break
            seq = int(raw.seq or 0)
            if seq <= last or seq >= upto:
                break
            try:
                self._handle(chan_key, seq, last, raw.data or b"")
            except Exception:
                log.exception("cluster: event %d of %s could not be delivered", seq, chan_key)
            last = seq
            count += 1
        else:
            log.warning(
                "cluster: more than %d events of %s were missed; skipped", MAX_FILL, subject
            )
        return last

    def _handle(self, chan_key: str, seq: int, prev: int, payload: bytes) -> None:
        events = read_channel(payload)
        history = self.node.history
        records = [record for _, _, record in events if record]
        if history is not None and records:
            history.feed(chan_key, seq, prev, records)
        for data, line, _ in events:
            try:
                self._deliver(chan_key, data, line)
            except Exception:  # one bad event must not cost the others of its message
                log.exception("cluster: an event of %d of %s could not be delivered", seq, chan_key)

    def _deliver(self, chan_key: str, data: dict[str, Any], line: bytes) -> None:
        node = self.node
        mine = data.get("n") == node.name and data.get("g") == node.incarnation
        core = self.core
        channel = core.channels.get(chan_key)
        if channel is None or not line or (mine and data.get("ro")):
            return  # (no line: a history record alone, such as a redaction's)
        ext = data.get("x")
        event = Relay(
            line,
            time=str(data["t"]),
            msgid=str(data["i"]),
            account=data.get("a"),
            client_tags=data.get("c"),
            ext_line=ext.encode("utf-8") if ext is not None else None,
        )
        skip = core.connections.get(int(data.get("s") or 0)) if mine else None
        self.received += 1
        multiline = data.get("ml")
        cap = data.get("cp")
        if multiline is not None or cap:
            deliver_special(channel, event, skip, cap=str(cap or ""), multiline=multiline)
        else:
            core.deliver_local(
                channel, event, skip, status=str(data.get("st", "")), tagmsg=bool(data.get("tg"))
            )
        kicked = data.get("k")
        if kicked and not mine and kicked[0] == node.name:
            target = core.connections.get(int(kicked[1]))
            if target is not None and target in channel.members:
                core.remove_member(channel, target)
                node.sync.memberships(target)
