"""ServerCore: the IRC server as a state machine, with no sockets, no tasks and no clock.

Rules:
1. ``handle(user, msg, now)`` is the only way a client's command changes state. It never awaits,
   never raises to its caller and never reads the time: ``now`` is passed in.
2. Output goes to :class:`~relaychat.server.effects.Peer` objects as serialised bytes. A message
   for many recipients is serialised once.
3. Keepalive and registration deadlines are decided in ``tick(now)``, called by the edge.
4. Every disconnect goes through ``disconnect``: state is cleaned, channels see the QUIT, the reason
   is logged once, and the peer is closed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable

from relaychat import __version__
from relaychat.config import Config
from relaychat.errors import ProtocolError
from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.effects import Peer
from relaychat.server.registry import COMMANDS
from relaychat.server.state import Channel, User, WhowasEntry

__all__ = ["Replies", "ServerCore"]

log = logging.getLogger("relaychat.server")


class Replies:
    """Collects one command's replies to its sender; sent together in one write.

    Handlers add to it; :meth:`ServerCore.handle` flushes it after the handler returns.
    """

    __slots__ = ("core", "items", "user")

    def __init__(self, core: ServerCore, user: User) -> None:
        self.core = core
        self.user = user
        self.items: list[bytes] = []

    def numeric(self, numeric: N.Numeric, *params: str, text: str | None = None) -> None:
        """Add a numeric reply addressed to the sender."""
        msg = N.reply(self.core.name, self.user.nick, numeric, *params, text=text)
        self.items.append(msg.to_bytes())

    def add(self, msg: Message) -> None:
        """Add any message for the sender."""
        self.items.append(msg.to_bytes())

    def raw(self, data: bytes) -> None:
        """Add bytes already serialised (a broadcast the sender also gets)."""
        self.items.append(data)

    def flush(self) -> None:
        """Send everything collected, in one write."""
        if self.items:
            data = b"".join(self.items) if len(self.items) > 1 else self.items[0]
            self.items = []
            if not self.user.quitting:
                self.user.peer.send(data)


class ServerCore:
    """The whole server state and its transitions.

    Args:
        config: the configuration (read once; replace the core's ``config`` to rehash).
        now: the start time, for RPL_CREATED.
    """

    def __init__(self, config: Config, now: float) -> None:
        self.config = config
        self.name = config.server_name
        self.started = now
        self.now = now
        self.motd = config.motd_lines()
        self.users: dict[str, User] = {}  # folded nick -> user holding it
        self.channels: dict[str, Channel] = {}  # folded name -> channel
        self.connections: dict[int, User] = {}  # every connection, by id
        self.per_ip: dict[str, int] = {}
        self.whowas: deque[WhowasEntry] = deque(maxlen=config.limits.whowas)
        self.registered_count = 0
        self.oper_count = 0
        self.max_users = 0
        self._next_id = 1

    # --- connections ---------------------------------------------------------------------------

    def accept(self, peer: Peer, ip: str, now: float) -> User | None:
        """A new connection from ``ip``.

        Returns:
            The new :class:`User`, or ``None`` when a limit refused it (the peer was told why and
            closed already).
        """
        lim = self.config.limits
        if len(self.connections) >= lim.max_clients:
            log.warning("refused %s: server full (%d clients)", ip, lim.max_clients)
            peer.close("Closing Link: %s (Server is full)" % ip)
            return None
        count = self.per_ip.get(ip, 0)
        if lim.max_per_ip and count >= lim.max_per_ip:
            log.warning("refused %s: %d connections from that address", ip, count)
            peer.close("Closing Link: %s (Too many connections from your IP address)" % ip)
            return None
        self.per_ip[ip] = count + 1
        user = User(self._next_id, peer, ip, now)
        self._next_id += 1
        self.connections[user.id] = user
        return user

    def handle(self, user: User, msg: Message, now: float) -> None:
        """Carry out one command from ``user``. Never raises."""
        if user.quitting:
            return
        self.now = now
        # Any input proves the link is alive: it resets the keepalive.
        user.last_seen = now
        user.ping_sent_at = None
        cmd = COMMANDS.get(msg.command)
        out = Replies(self, user)
        if cmd is None:
            if user.registered:
                out.numeric(N.ERR_UNKNOWNCOMMAND, msg.command)
            else:
                out.numeric(N.ERR_NOTREGISTERED)
        elif not user.registered and not cmd.pre_registration:
            out.numeric(N.ERR_NOTREGISTERED)
        elif len(msg.params) < cmd.min_params:
            out.numeric(N.ERR_NEEDMOREPARAMS, msg.command)
        elif cmd.oper and not user.is_oper:
            out.numeric(N.ERR_NOPRIVILEGES)
        else:
            try:
                cmd.handler(self, user, msg, out)
            except Exception:
                log.exception(
                    "handler for %s failed (connection #%d, nick %s)",
                    msg.command,
                    user.id,
                    user.nick,
                )
                out.items.clear()
                out.numeric(
                    N.ERR_UNKNOWNERROR,
                    msg.command,
                    text="Internal error; the command was not carried out",
                )
        out.flush()

    def protocol_error(self, user: User, exc: ProtocolError, now: float) -> None:
        """Reply to a line that could not be parsed (e.g. 417 for one that was too long)."""
        self.now = now
        user.last_seen = now
        user.ping_sent_at = None
        if exc.numeric is not None and not user.quitting:
            num = N.BY_CODE[exc.numeric]
            user.peer.send(N.reply(self.name, user.nick, num).to_bytes())

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
        if user.registered:
            if broadcast:
                data = Message("QUIT", (reason,), user.prefix).to_bytes()
                for other in self.neighbours(user):
                    other.peer.send(data)
            self.whowas.appendleft(WhowasEntry(user, self.now))
            self.registered_count -= 1
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
        self.connections.pop(user.id, None)
        count = self.per_ip.get(user.ip, 1) - 1
        if count > 0:
            self.per_ip[user.ip] = count
        else:
            self.per_ip.pop(user.ip, None)
        log.info("disconnect #%d %s from %s: %s", user.id, user.nick, user.ip, reason)
        user.peer.close(error if error is not None else f"Closing Link: {user.host} ({reason})")

    def tick(self, now: float) -> None:
        """Keepalive and deadlines: PING idle clients, drop silent and unregistered ones."""
        self.now = now
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
                user.peer.send(ping)
        for user, reason in expired:
            self.disconnect(user, reason)

    def shutdown(self) -> None:
        """Close every connection with ``ERROR :Server shutting down``."""
        for user in list(self.connections.values()):
            self.disconnect(
                user, "Server shutting down", error="Server shutting down", broadcast=False
            )

    # --- helpers for handlers ------------------------------------------------------------------

    def neighbours(self, user: User) -> Iterable[User]:
        """Every other user sharing a channel with ``user``, each once."""
        chans = user.channels
        if not chans:
            return ()
        if len(chans) == 1:
            (only,) = chans.values()
            return [u for u in only.members if u is not user]
        seen: dict[User, None] = {}
        for channel in chans.values():
            for member in channel.members:
                seen[member] = None
        seen.pop(user, None)
        return seen.keys()

    def broadcast(self, channel: Channel, data: bytes, skip: User | None = None) -> None:
        """Send the same bytes to every member of ``channel`` except ``skip``."""
        for member in channel.members:
            if member is not skip:
                member.peer.send(data)

    def find_user(self, nick: str) -> User | None:
        """The registered user holding ``nick``, any case."""
        user = self.users.get(irc_lower(nick))
        return user if user is not None and user.registered else None

    def find_channel(self, name: str) -> Channel | None:
        """The channel called ``name``, any case."""
        return self.channels.get(irc_lower(name))

    def add_member(self, channel: Channel, user: User, *, op: bool = False) -> None:
        """Put ``user`` in ``channel`` (state only)."""
        from relaychat.server.state import Membership

        channel.members[user] = Membership(op=op)
        user.channels[channel.key] = channel
        channel.invites.discard(user.key)

    def remove_member(self, channel: Channel, user: User) -> None:
        """Take ``user`` out of ``channel`` (state only); an empty channel ceases to exist."""
        user.channels.pop(channel.key, None)
        self._remove_member(channel, user)

    def _remove_member(self, channel: Channel, user: User) -> None:
        channel.members.pop(user, None)
        if not channel.members:
            self.channels.pop(channel.key, None)

    def set_oper(self, user: User, on: bool) -> None:
        """Give or take user mode +o, keeping the count for LUSERS."""
        if on and "o" not in user.modes:
            user.modes.add("o")
            self.oper_count += 1
        elif not on and "o" in user.modes:
            user.modes.discard("o")
            self.oper_count -= 1

    def version_string(self) -> str:
        return f"relaychat-{__version__}"


# Register every command handler (the import fills COMMANDS).
from relaychat.server import commands as _commands  # noqa: E402

_ = _commands
