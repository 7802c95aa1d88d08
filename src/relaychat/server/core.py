"""ServerCore: the IRC server as a state machine, with no sockets, no tasks and no clock.

Rules:
1. ``handle(user, msg, now)`` is the only way a client's command changes state. It never awaits,
   never raises to its caller and never reads the time: ``now`` is passed in.
2. Output goes to :class:`~relaychat.server.effects.Peer` objects as serialised bytes. A message
   for many recipients is serialised once.
3. Keepalive and registration deadlines are decided in ``tick(now)``, called by the edge.
4. Every disconnect goes through ``disconnect``: state is cleaned, channels see the QUIT, the reason
   is logged once, and the peer is closed.
5. Channel traffic goes out through ``broadcast`` and ``deliver``: to this server's members, or,
   when a backplane joins this core to others (``server/backplane.py``), to the members on every
   node in the network's order.
6. A command that needs an answer from outside the core (a network-wide nick claim, a password
   check on the worker, a long answer sent in parts) holds its user: the user's next commands
   wait, in order, until it is done (``server/pending.py``: :meth:`~ServerCore.hold` and
   :meth:`~ServerCore.release`, or ``offload``/``stream``/``defer``).
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from relaychat import __version__
from relaychat.accounts.worker import InlineWorker, Worker
from relaychat.config import Config
from relaychat.errors import InputTooLong, InvalidUtf8, ProtocolError
from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import MAX_CLIENT_TAGS_BYTES, Message
from relaychat.protocol.servertime import format_server_time
from relaychat.ratelog import RateLimitedLog
from relaychat.server.backplane import Backplane
from relaychat.server.bans import BanList
from relaychat.server.caps import MSGTAGS, offered, profile_of
from relaychat.server.effects import Peer
from relaychat.server.idempotency import CAP as IDEMPOTENCY_CAP
from relaychat.server.idempotency import KeyIndex
from relaychat.server.isupport import BOT_MODE, isupport_tokens
from relaychat.server.pending import MAX_WAITING, Held, Pending
from relaychat.server.relay import Relay
from relaychat.server.replies import Replies, add_tag
from relaychat.server.state import Channel, User, WhowasEntry
from relaychat.server.throttle import Throttles, retry_text
from relaychat.store.base import HistoryStore, Position
from relaychat.store.keys import KeyStore

__all__ = [
    "ACCOUNT_HOOKS",
    "COMMANDS",
    "MAX_WAITING",
    "Command",
    "Handler",
    "Replies",
    "ServerCore",
    "add_tag",
    "command",
]

log = logging.getLogger("relaychat.server")


# --- the command table ---------------------------------------------------------------------------
# Handlers have one signature, ``(core, user, msg, out) -> None``, and register with
# :func:`command` (the modules of ``server/commands``, imported by ``relaychat.server``). The shared
# checks (registered yet? enough parameters? operator?) run once in :meth:`ServerCore.handle`
# before any handler, so no handler repeats them.

Handler = Callable[["ServerCore", User, Message, "Replies"], None]

#: Called as ``hook(core, user)`` after ``user`` logged in to an account or out of one
#: (:meth:`ServerCore.set_account`); command modules that keep per-account state register here
#: when imported, as they register their commands.
ACCOUNT_HOOKS: list[Callable[[ServerCore, User], None]] = []


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command.

    Attributes:
        name: the verb, upper case.
        handler: the function that carries it out.
        min_params: fewer parameters get 461 ERR_NEEDMOREPARAMS.
        pre_registration: usable before registration completes (else 451 ERR_NOTREGISTERED).
        oper: only for IRC operators (else 481 ERR_NOPRIVILEGES).
        help: one line for HELP and the docs: the syntax.
        summary: what it does, in a sentence or two (HELP shows it after the syntax).
    """

    name: str
    handler: Handler
    min_params: int
    pre_registration: bool
    oper: bool
    help: str
    summary: str = ""


COMMANDS: dict[str, Command] = {}


def command(
    name: str, *, min_params: int = 0, pre_registration: bool = False, oper: bool = False
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``name``.

    The first line of the handler's docstring is its syntax and becomes its help line; the
    paragraph after it, if any, is its summary.
    """

    def register(fn: Handler) -> Handler:
        if name in COMMANDS:
            raise RuntimeError(f"command {name} registered twice")
        lines = [line.strip() for line in (fn.__doc__ or name).strip().splitlines()]
        summary: list[str] = []
        if len(lines) > 2 and not lines[1]:
            for line in lines[2:]:
                if not line:
                    break
                summary.append(line)
        COMMANDS[name] = Command(
            name, fn, min_params, pre_registration, oper, lines[0], " ".join(summary)
        )
        return fn

    return register


class ServerCore(Pending):
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
        self.per_ip: dict[str, int] = {}  # connections per address group (throttle.ip_group)
        self.whowas: deque[WhowasEntry] = deque(maxlen=config.limits.whowas)
        self.registered_count = 0
        self.oper_count = 0
        self.invisible_count = 0  # registered users with +i, for LUSERS without a scan
        #: MONITOR: folded nick -> the users watching it (an ordered set); see commands/monitor.py.
        self.monitors: dict[str, dict[User, None]] = {}
        #: Users with user mode +w, who receive WALLOPS.
        self.wallops: dict[User, None] = {}
        self.max_users = 0
        #: PRIVMSG/NOTICE/TAGMSG relayed, once per target (for /metrics; a plain int on purpose).
        self.messages_relayed = 0
        self._next_id = 1
        #: Where relayed messages are kept (store/base.py); ``None`` keeps no history.
        self.history: HistoryStore | None = None
        #: Idempotency keys (server/idempotency.py); ``None`` until enable_idempotency.
        self.keys: KeyIndex | None = None
        #: Called by ``tick(now)`` after keepalive: optional parts' timers (nick protection...).
        self.tick_hooks: list[Callable[[float], None]] = []
        #: Optional parts the edge attaches, by name (``"accounts"``: the accounts glue's
        #: service, ``server/accounts.py``); the core never looks inside. Kept here, not in a
        #: module-level table, so a core and its parts are freed together.
        self.parts: dict[str, object] = {}
        #: Capabilities contributed by optional parts (sasl, chathistory), name -> 302 value.
        self.extra_caps: dict[str, str] = {}
        #: ISUPPORT tokens contributed by optional parts, per user (uploads: the upload URL).
        self.isupport_hooks: list[Callable[[User], list[str]]] = []
        #: The connections logged in to each account (for draft/read-marker's sync), by account.
        self.sessions: dict[str, dict[User, None]] = {}
        #: The network beyond this process (``server/backplane.py``); ``None``: this process
        #: is the whole network.
        self.backplane: Backplane | None = None
        # msgids: a random prefix per process and a counter, unique across restarts.
        self._msgid_prefix = secrets.token_hex(5)
        self._msgid_counter = 0
        self._batch_counter = 0
        self._time_cache = (-1, "")
        self._isupport: tuple[Config, list[str]] | None = None  # see isupport()
        #: K-lines and D-lines (server/bans.py); the edge loads them and saves on change.
        self.bans = BanList()
        #: Where audit records go (server/audit.py); the edge appends them to audit.log.
        self.audit_sink: Callable[[dict[str, Any]], None] | None = None
        #: Re-reads the configuration (the edge's; server/reload.py): returns what was read and
        #: ``None``, or the one-line reason it was refused.
        self.rehash_hook: Callable[[], tuple[str, str | None]] | None = None
        #: Where slow jobs (password hashes, mail) run: the edge sets a ThreadWorker; in memory
        #: they run at once.
        self.worker: Worker = InlineWorker(lambda: self.now)
        #: Rate limits and failure lock-outs (server/throttle.py), by address group and account.
        self.throttles = Throttles(config.throttle)
        #: Repeated log lines a client can cause (refusals, throttles): one per cause per interval.
        self.ratelog = RateLimitedLog(log, config.throttle.log_interval)
        #: Deferred answers (server/pending.py), and how the edge is asked to tick by a time.
        self._deferred: list[Any] = []
        self._deferred_seq = itertools.count()
        self.wakeup: Callable[[float], None] = lambda when: None

    # --- IRCv3 helpers -------------------------------------------------------------------------

    def offered_caps(self) -> dict[str, str]:
        """Every capability offered now, with its CAP LS 302 value."""
        return offered(self.config, self.extra_caps)

    def enable_idempotency(self, store: KeyStore) -> None:
        """Deduplicate keyed messages (``relaychat.dev/idempotency``), keeping keys in ``store``
        (the history store: keys live with the messages they relayed)."""
        cfg = self.config.idempotency
        self.keys = KeyIndex(store, window=cfg.window, max_keys=cfg.max_keys, now=self.now)
        self.extra_caps[IDEMPOTENCY_CAP] = self.keys.cap_value

    def isupport(self, user: User) -> list[str]:
        """Every 005 token for ``user``, in a stable order (the config's and the hooks')."""
        config = self.config
        cached = self._isupport
        if cached is None or cached[0] is not config:  # once per configuration (rehash)
            cached = self._isupport = (config, isupport_tokens(config))
        tokens = list(cached[1])
        for hook in self.isupport_hooks:
            tokens += hook(user)
        return sorted(tokens)

    def set_caps(self, user: User, caps: AbstractSet[str]) -> None:
        """Replace ``user``'s capabilities and recompute its tag profile."""
        user.caps = frozenset(caps)
        profile = profile_of(caps)
        if profile != user.profile:
            user.profile = profile
            for channel in user.channels.values():
                channel.invalidate()

    def new_msgid(self) -> str:
        """A new message id (message-ids), unique across restarts."""
        self._msgid_counter += 1
        return f"{self._msgid_prefix}{self._msgid_counter:x}"

    def new_batch_id(self) -> bytes:
        """A new batch reference tag."""
        self._batch_counter += 1
        return b"b%x" % self._batch_counter

    def time_tag(self) -> str:
        """``now`` as a server-time value: ``YYYY-MM-DDThh:mm:ss.sssZ`` (cached per ``now``)."""
        # Cached per millisecond (the tag's resolution), not per ``now``: the edge passes a new
        # ``now`` with every read, and a busy server reads thousands of times a millisecond.
        ms = int(self.now * 1000)
        cached_at, text = self._time_cache
        if cached_at != ms:
            text = format_server_time(ms)
            self._time_cache = (ms, text)
        return text

    def event(
        self,
        user: User,
        command: str,
        *params: str,
        client_tags: dict[str, str] | None = None,
        ext_params: tuple[str, ...] | None = None,
        msgid: str | None = None,
    ) -> Relay:
        """A relayed event from ``user``: its line, time, msgid and account tags.

        Args:
            ext_params: the parameters for clients with extended-join, when they differ.
            msgid: reuse this id (a message stored in history keeps one id everywhere).
        """
        line = Message(command, params, user.prefix).to_bytes()
        ext = Message(command, ext_params, user.prefix).to_bytes() if ext_params else None
        return self.relay(user, line, client_tags=client_tags, ext_line=ext, msgid=msgid)

    def relay(
        self,
        user: User,
        line: bytes,
        *,
        client_tags: dict[str, str] | None = None,
        ext_line: bytes | None = None,
        msgid: str | None = None,
    ) -> Relay:
        """A relayed event from ``user`` whose line is already serialised: now's time, a new
        msgid (or ``msgid``), ``user``'s account and, for a bot, the ``bot`` tag."""
        return Relay(
            line,
            time=self.time_tag(),
            msgid=msgid or self.new_msgid(),
            account=user.account,
            client_tags=client_tags,
            ext_line=ext_line,
            bot=BOT_MODE in user.modes,
        )

    # --- connections ---------------------------------------------------------------------------

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

    def handle(self, user: User, msg: Message, now: float) -> None:
        """Carry out one command from ``user``, or hold it while an earlier one is pending
        (``server/pending.py``). Never raises."""
        if user.quitting:
            return
        self.now = now
        # Any input proves the link is alive: it resets the keepalive.
        user.last_seen = now
        user.ping_sent_at = None
        if user.busy or user.held:
            self._hold(user, msg)
            return
        self._command(user, msg)

    def _dispatch(self, user: User, item: Held, now: float) -> None:
        """A held line's turn (``Pending._replay``)."""
        self.now = now
        if isinstance(item, ProtocolError):
            self._protocol_error(user, item)
        else:
            self._command(user, item)

    def _command(self, user: User, msg: Message) -> None:
        cmd = COMMANDS.get(msg.command)
        label = msg.tags.get("label") if msg.tags and "labeled-response" in user.caps else None
        out = Replies(self, user, label)
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
        if user.quitting:
            return
        self.now = now
        user.last_seen = now
        user.ping_sent_at = None
        if user.busy or user.held:
            self._hold(user, exc)
            return
        self._protocol_error(user, exc)

    def _protocol_error(self, user: User, exc: ProtocolError) -> None:
        if user.quitting:
            return
        if isinstance(exc, InvalidUtf8):
            # https://ircv3.net/specs/extensions/utf8-only: the line is refused, never relayed.
            text = "Message rejected: your IRC software must use UTF-8 encoding on this network"
            fail = Message("FAIL", (N.safe_param(exc.command), "INVALID_UTF8", text), self.name)
            user.send(fail.to_bytes())
            return
        if exc.numeric is not None:
            num = N.BY_CODE[exc.numeric]
            if num.text is None:  # no fixed text (400 ERR_UNKNOWNERROR): say what was wrong
                user.send(N.reply(self.name, user.nick, num, "*", text=exc.detail).to_bytes())
            else:
                user.send(N.reply(self.name, user.nick, num).to_bytes())
            if isinstance(exc, InputTooLong) and "standard-replies" in user.caps:
                # standard-replies: say which limit was hit, and that the line was dropped.
                if exc.limit == MAX_CLIENT_TAGS_BYTES:
                    text = (
                        f"Line dropped: its tags take {exc.size} bytes; a client may send "
                        f"at most {MAX_CLIENT_TAGS_BYTES - 2} bytes of IRCv3 tags"
                    )
                else:
                    text = (
                        f"Line of {exc.size} bytes dropped: at most 512 bytes per line, "
                        f"plus {MAX_CLIENT_TAGS_BYTES - 2} for IRCv3 tags"
                    )
                user.send(Message("FAIL", ("*", "INPUT_TOO_LONG", text), self.name).to_bytes())

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

    def broadcast(self, channel: Channel, event: Relay, skip: User | None = None) -> None:
        """Send ``event`` to every member of ``channel`` except ``skip`` (rule 5)."""
        if self.backplane is not None:
            self.backplane.channel_event(channel, event, skip)
        else:
            self.deliver_local(channel, event, skip)

    def deliver(
        self,
        channel: Channel,
        event: Relay,
        sender: User,
        *,
        status: str = "",
        tagmsg: bool = False,
    ) -> None:
        """A PRIVMSG, NOTICE or TAGMSG from ``sender`` to ``channel``'s members (rule 5).

        Args:
            status: ``"@"``: to its operators only; ``"+"``: to its voiced and operators.
            tagmsg: a TAGMSG: only members with ``message-tags`` get it.
        """
        if self.backplane is not None:
            self.backplane.channel_event(channel, event, sender, status=status, tagmsg=tagmsg)
        else:
            self.deliver_local(channel, event, sender, status=status, tagmsg=tagmsg)

    def deliver_local(
        self,
        channel: Channel,
        event: Relay,
        skip: User | None,
        *,
        status: str = "",
        tagmsg: bool = False,
    ) -> None:
        """Send ``event`` to this server's members of ``channel`` except ``skip``.

        The hot loop of the server: one call per plain member, the same bytes for all; one
        serialisation per tag profile for the others. ``status`` and ``tagmsg`` as in
        :meth:`deliver`.
        """
        line = event.line
        if status:
            for other, ms in channel.members.items():
                if other is skip or other.server is not None:
                    continue
                if ms.op or (status == "+" and ms.voice):
                    if not other.profile:
                        if not tagmsg:
                            other.send(line)
                    elif not tagmsg or other.profile & MSGTAGS:
                        other.send(event.data(other))
            return
        sends, tagged = channel.fanout()
        if not tagmsg:
            own = skip.send if skip is not None else None
            for send in sends:
                if send is not own:
                    send(line)
        for other in tagged:
            if other is not skip and (not tagmsg or other.profile & MSGTAGS):
                other.send(event.data(other))

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
        channel.invalidate()
        user.channels[channel.key] = channel
        channel.invites.discard(user.key)

    def remove_member(self, channel: Channel, user: User) -> None:
        """Take ``user`` out of ``channel`` (state only); an empty channel ceases to exist."""
        user.channels.pop(channel.key, None)
        self._remove_member(channel, user)

    def _remove_member(self, channel: Channel, user: User) -> None:
        channel.members.pop(user, None)
        channel.invalidate()
        if not channel.members:
            self.channels.pop(channel.key, None)

    def set_account(self, user: User, account: str | None) -> None:
        """Log ``user`` in to ``account`` (or out, with ``None``); tell who asked (account-notify).

        The 900/901 numerics to the user themselves are the caller's (SASL, REGISTER, ...).
        Then every :data:`ACCOUNT_HOOKS` entry runs (metadata loads the account's keys).
        """
        if user.account == account:
            return
        self._forget_session(user)
        user.account = account
        if account is not None:
            self.sessions.setdefault(account, {})[user] = None
        if user.registered:
            event = self.event(user, "ACCOUNT", account or "*")
            for other in self.watchers(user, "account-notify"):
                other.send(event.data(other))
        for hook in ACCOUNT_HOOKS:
            try:
                hook(self, user)
            except Exception:  # a bug in a hook must not undo the login
                log.exception("account hook %r failed for connection #%d", hook, user.id)

    def watchers(self, user: User, cap: str) -> list[User]:
        """Who hears of ``user``'s changes under ``cap`` (``away-notify``, ``account-notify``,
        ``setname``, ``chghost``, ``draft/metadata-2``): the users sharing a channel with it and
        having ``cap``, and those monitoring it with ``extended-monitor`` and ``cap``
        (https://ircv3.net/specs/extensions/extended-monitor). Each once, never ``user``."""
        found = [other for other in self.neighbours(user) if cap in other.caps]
        monitoring = self.monitors.get(user.key)
        if monitoring:
            seen = set(found)
            for other in monitoring:
                if (
                    other is not user
                    and other not in seen
                    and cap in other.caps
                    and "extended-monitor" in other.caps
                ):
                    found.append(other)
        return found

    # --- MONITOR (the index; the command is commands/monitor.py) -------------------------------

    def monitor_offline(self, user: User, key: str, nick: str) -> None:
        """Tell the users monitoring ``key`` that ``nick`` is gone (731 RPL_MONOFFLINE)."""
        for watcher in self.monitors.get(key, ()):
            if watcher is not user:
                watcher.send(
                    N.reply(self.name, watcher.nick, N.RPL_MONOFFLINE, text=nick).to_bytes()
                )

    def unmonitor_all(self, user: User) -> None:
        """Empty ``user``'s MONITOR list (MONITOR C, or when it leaves)."""
        watched = user.monitoring
        if not watched:
            return
        for key in watched:
            others = self.monitors.get(key)
            if others is not None:
                others.pop(user, None)
                if not others:
                    del self.monitors[key]
        watched.clear()

    def _forget_session(self, user: User) -> None:
        """Take ``user`` out of :attr:`sessions` (logging out, or leaving)."""
        if user.account is None:
            return
        others = self.sessions.get(user.account)
        if others is not None:
            others.pop(user, None)
            if not others:
                del self.sessions[user.account]

    def set_invisible(self, user: User, on: bool) -> None:
        """Give or take user mode +i, keeping the count for LUSERS."""
        if on and "i" not in user.modes:
            user.set_mode("i", True)
            self.invisible_count += 1
        elif not on and "i" in user.modes:
            user.set_mode("i", False)
            self.invisible_count -= 1

    def set_oper(self, user: User, on: bool) -> None:
        """Give or take user mode +o, keeping the count for LUSERS."""
        if on and "o" not in user.modes:
            user.set_mode("o", True)
            self.oper_count += 1
        elif not on and "o" in user.modes:
            user.set_mode("o", False)
            self.oper_count -= 1

    def history_tip(self) -> Position:
        """The position of the newest message in history (or now, without history): what was
        relayed before this is "before" for a private-history reader (``User.nick_tip``)."""
        store = self.history
        if store is None:
            return (int(self.now * 1000), 0)
        return store.tip()

    def version_string(self) -> str:
        return f"relaychat-{__version__}"
