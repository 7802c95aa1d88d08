"""A connection's life in the core: accepted (or refused by a limit), kept alive, disconnected
(a base of :class:`~relaychat.server.core.ServerCore`).

Rules:
1. :meth:`Lifecycle.accept` applies every connection limit (server full, connect rate, per
   address group, D-lines) before a :class:`~relaychat.server.state.User` exists; a refused peer
   is told why and closed.
2. Keepalive and registration deadlines are decided in :meth:`Lifecycle.tick`, called by the
   edge with the time.
3. Every disconnect goes through :meth:`Lifecycle.disconnect`: state is cleaned, channels see the
   QUIT, the reason is logged once, and the peer is closed. A bug in one step never leaves a
   ghost user behind.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from relaychat.config import Config
from relaychat.protocol.message import Message
from relaychat.ratelog import RateLimitedLog
from relaychat.server.bans import BanList
from relaychat.server.effects import Peer
from relaychat.server.fanout import Fanout
from relaychat.server.pending import Pending
from relaychat.server.state import User, WhowasEntry
from relaychat.server.throttle import Throttles, retry_text

__all__ = ["Lifecycle"]

log = logging.getLogger("relaychat.server")


class Lifecycle(Fanout, Pending):
    """Accept, keepalive, disconnect and shutdown (a base of
    :class:`~relaychat.server.core.ServerCore`, which sets these attributes)."""

    config: Config
    connections: dict[int, User]
    per_ip: dict[str, int]
    whowas: deque[WhowasEntry]
    registered_count: int
    wallops: dict[User, None]
    tick_hooks: list[Callable[[float], None]]
    bans: BanList
    throttles: Throttles
    ratelog: RateLimitedLog
    _next_id: int

    def accept(self, peer: Peer, ip: str, now: float) -> User | None:
        """A new connection from ``ip``.

        Returns:
            The new :class:`User`, or ``None`` when a limit refused it (the peer was told why and
            closed already).
        """
        lim = self.config.limits
        if len(self.connections) >= lim.max_clients:
            self.ratelog.warning(
                "refused: server full",
                "refused %s: server full (%d clients)",
                ip,
                lim.max_clients,
                now=now,
            )
            peer.close("Closing Link: %s (Server is full)" % ip)
            return None
        group = self.throttles.group(ip)
        wait = self.throttles.connect.take(group, now)
        if wait > 0:
            self.ratelog.warning(
                "refused: connecting too fast",
                "refused %s: %s connects faster than throttle.connect_per_minute",
                ip,
                group,
                now=now,
            )
            peer.close(f"Too many connections from your host ({retry_text(wait)})")
            return None
        count = self.per_ip.get(group, 0)
        if lim.max_per_ip and count >= lim.max_per_ip:
            self.ratelog.warning(
                "refused: too many connections from one address",
                "refused %s: %d connections from %s",
                ip,
                count,
                group,
                now=now,
            )
            peer.close("Too many connections from your host")
            return None
        dline = self.bans.dline_for(ip, now) if self.bans.dlines else None
        if dline is not None:
            self.ratelog.info(
                "refused: D-lined", "refused %s: D-lined (%s)", ip, dline.mask, now=now
            )
            peer.close(f"Banned: {dline.reason}")
            return None
        self.per_ip[group] = count + 1
        user = User(self._next_id, peer, ip, now)
        user.ip_group = group
        self._next_id += 1
        self.connections[user.id] = user
        return user

    def alive(self, user: User, now: float) -> None:
        """The transport saw ``user``'s peer answer (a WebSocket pong): it counts as input for
        the keepalive, as any line would."""
        user.last_seen = now
        user.ping_sent_at = None

    def throttled(self, user: User, rate: float) -> None:
        """The edge started delaying ``user``'s lines (flood control): tell a client that asked.

        Sent once per episode, as a standard reply, to clients with ``standard-replies``.
        """
        if "standard-replies" in user.caps and not user.quitting:
            text = f"You are sending too fast: your lines are delayed to {rate:g} per second"
            user.send(Message("WARN", ("*", "FLOOD_THROTTLED", text), self.name).to_bytes())

    def disconnect(
        self, user: User, reason: str, *, error: str | None = None, broadcast: bool = True
    ) -> None:
        """Remove ``user`` everywhere, tell its channels, log the reason once, close its peer.

        Args:
            reason: the QUIT reason its channels see, and the log line.
            error: the ``ERROR`` text the client itself gets (a Closing Link line by default).
            broadcast: send the QUIT to channels (not on server shutdown).
        """
        if user.quitting:
            return
        user.quitting = True
        if self.backplane is not None:
            try:
                self.backplane.user_left(user, reason)
            except Exception:  # the network's bookkeeping must not stop the local cleanup
                log.exception("backplane failed on the departure of connection #%d", user.id)
        try:
            if user.registered and broadcast:
                event = self.event(user, "QUIT", reason)
                for other in self.neighbours(user):
                    other.send(event.data(other))
        except Exception:  # a bug must not leave a ghost user behind: clean up regardless
            log.exception("QUIT broadcast failed for connection #%d", user.id)
        if user.registered:
            self.whowas.appendleft(WhowasEntry(user, self.now))
            self.registered_count -= 1
            try:
                if broadcast:
                    self.monitor_offline(user, user.key, user.nick)
            except Exception:  # a bug must not leave a ghost user behind
                log.exception("MONITOR offline notice failed for connection #%d", user.id)
        self.unmonitor_all(user)
        self.wallops.pop(user, None)
        for channel in user.channels.values():
            self._remove_member(channel, user)
        user.channels.clear()
        for key in user.invited:
            invited_to = self.channels.get(key)
            if invited_to is not None:
                invited_to.invites.discard(user.key)
        if user.key and self.users.get(user.key) is user:
            del self.users[user.key]
        if user.is_oper:
            self.oper_count -= 1
        self._forget_session(user)
        if "i" in user.modes:
            self.invisible_count -= 1
        self.connections.pop(user.id, None)
        count = self.per_ip.get(user.ip_group, 1) - 1
        if count > 0:
            self.per_ip[user.ip_group] = count
        else:
            self.per_ip.pop(user.ip_group, None)
        user.held = None
        user.stream = None
        if user.registered or user.account is not None:
            log.info("disconnect #%d %s from %s: %s", user.id, user.nick, user.ip, reason)
        else:  # connections that never registered: what a flood of them makes is counted
            self.ratelog.info(
                "unregistered connections closed",
                "disconnect #%d %s from %s before registering: %s",
                user.id,
                user.nick,
                user.ip,
                reason,
                now=self.now,
            )
        self.flush_batch()  # what a batch holds for it goes before its ERROR (fanout.py rule 4)
        user.peer.close(error if error is not None else f"Closing Link: {user.host} ({reason})")

    def tick(self, now: float) -> None:
        """Keepalive and deadlines: PING idle clients, drop silent and unregistered ones; send
        the deferred answers that are due."""
        self.now = now
        self.run_due(now)
        cfg = self.config
        interval, timeout = cfg.ping_interval, cfg.ping_timeout
        expired: list[tuple[User, str]] = []
        ping: bytes | None = None
        for user in self.connections.values():
            if not user.registered:
                if now - user.connected_at >= cfg.registration_timeout:
                    expired.append((user, "Registration timed out"))
                continue
            sent = user.ping_sent_at
            if sent is not None:
                if now - sent >= timeout:
                    expired.append((user, "Ping timeout: %d seconds" % round(now - user.last_seen)))
            elif now - user.last_seen >= interval:
                if ping is None:
                    ping = Message("PING", (self.name,)).to_bytes()
                user.ping_sent_at = now
                user.send(ping)
        for user, reason in expired:
            self.disconnect(user, reason)
        if self.bans:
            self.bans.expire(now)
        self.ratelog.flush(now)
        for hook in self.tick_hooks:
            try:
                hook(now)
            except Exception:  # pragma: no cover - a bug in a hook must not stop keepalive
                log.exception("tick hook %r failed", hook)

    def shutdown(self) -> None:
        """Close every connection with ``ERROR :Server shutting down``."""
        for user in list(self.connections.values()):
            self.disconnect(
                user, "Server shutting down", error="Server shutting down", broadcast=False
            )
