"""Server state: users, channels and membership, keyed by casefolded name.

Rules:
1. Everything that says who is connected, who is in which channel and with which modes lives here.
2. Lookups are dict lookups by folded key (``irc_lower``); nothing scans all users on a hot path.
3. Nothing here sends anything: the command handlers decide what to tell whom.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relaychat.protocol.casemap import irc_lower, irc_lower_kept
from relaychat.server.effects import Peer

if TYPE_CHECKING:
    from relaychat.errors import ProtocolError
    from relaychat.protocol.message import Message

__all__ = ["Channel", "ClientBatch", "Membership", "MetaState", "User", "WhowasEntry"]

_EMPTY: frozenset[str] = frozenset()


@dataclass(slots=True)
class ClientBatch:
    """A ``draft/multiline`` batch a client has opened and not closed yet (one per connection).

    Bounded by the ``draft/multiline`` limits: a line past ``limits.multiline_max_lines`` or
    ``limits.multiline_max_bytes`` fails the batch, which then keeps no lines and only waits for
    its ``BATCH -`` (its remaining lines are dropped quietly). Closing the connection drops it.

    Attributes:
        ref: the client's reference tag.
        target: the target named on ``BATCH +``.
        tags: the client-only tags of the ``BATCH +`` line (the message's tags).
        label: the ``label`` of the ``BATCH +`` line (labeled-response), for the reply.
        verb: ``PRIVMSG`` or ``NOTICE``, from the first line.
        lines: each line's text and whether it carries ``draft/multiline-concat``.
        size: the bytes counted against ``max-bytes`` so far.
        failed: a limit or rule was broken; the lines are gone.
    """

    ref: str
    target: str
    tags: dict[str, str] | None = None
    label: str | None = None
    verb: str = ""
    lines: list[tuple[str, bool]] = field(default_factory=list)
    size: int = 0
    failed: bool = False


if TYPE_CHECKING:
    from relaychat.protocol.message import Message

__all__ = ["Channel", "Membership", "User", "WhowasEntry"]


class User:
    """One connection, registered or not."""

    __slots__ = (
        "account",
        "away",
        "batch",
        "busy",
        "cap_negotiating",
        "cap_version",
        "caps",
        "certfp",
        "channels",
        "connected_at",
        "held",
        "held_size",
        "host",
        "id",
        "idem_id",
        "invited",
        "ip",
        "ip_group",
        "key",
        "last_active",
        "last_seen",
        "meta",
        "modes",
        "monitoring",
        "nick",
        "nick_since",
        "nick_tip",
        "oper_name",
        "pass_checked",
        "pass_given",
        "peer",
        "ping_sent_at",
        "prefix",
        "profile",
        "quitting",
        "read_markers",
        "realname",
        "registered",
        "send",
        "send_direct",
        "send_held",
        "server",
        "snomask",
        "stream",
        "typing",
        "username",
        "wanted_nick",
        "who_fields",
        "who_text",
    )

    def __init__(self, uid: int, peer: Peer, ip: str, now: float) -> None:
        self.id = uid
        self.peer = peer
        #: ``peer.send``, bound once: it is called for every recipient of every message.
        self.send_direct: Callable[[bytes], None] = peer.send
        #: What the core calls to send to this user: ``send_direct``, or ``send_held`` while a
        #: channel's coalesced messages wait for it (``server/fanout.py``, rule 4).
        self.send: Callable[[bytes], None] = self.send_direct
        #: The core's "flush the waiting channel messages, then send" for this user (made once).
        self.send_held: Callable[[bytes], None] | None = None
        self.ip = ip
        #: The address group per-IP limits count this connection under (server/throttle.py).
        self.ip_group = ip
        # A host starting with ':' would break the message grammar (IPv6 "::1").
        self.host = "0" + ip if ip.startswith(":") else ip
        self.nick = "*"
        self.key = ""  # irc_lower(nick) once a nick is set
        self.username = ""
        self.realname = ""
        self.prefix = "*"
        self.registered = False
        self.pass_given: str | None = None
        self.pass_checked = False  # the server password was verified (server/commands)
        #: The last nick asked for before registering, even if refused (REGISTER *).
        self.wanted_nick = ""
        #: When the current nick was taken, and the history position then (private history
        #: relayed to this nick before that is someone else's: commands/history.py).
        self.nick_since = now
        self.nick_tip: tuple[int, int] = (0, 0)
        self.cap_negotiating = False
        self.cap_version = 0
        # caps, modes and invited are frozensets, replaced and never changed in place: an idle
        # connection shares the one empty frozenset instead of holding three empty sets (216
        # bytes each; docs/benchmarks.md, W2 memory per connection).
        self.caps: frozenset[str] = _EMPTY
        self.profile = 0  # tag profile derived from caps (server/caps.py)
        self.account: str | None = None  # the account logged in to, if any
        self.idem_id: str | None = None  # sender identity for idempotency keys, when no account
        self.certfp: str | None = None  # SHA-256 of the TLS client certificate, hex
        self.modes: frozenset[str] = _EMPTY
        self.channels: dict[str, Channel] = {}
        # Folded names of channels this user was invited to; an invite counts only while both
        # this set and the channel's ``invites`` hold it (see commands/channels.py).
        self.invited: frozenset[str] = _EMPTY
        self.away: str | None = None
        self.oper_name: str | None = None
        self.connected_at = now
        self.last_seen = now  # any input: drives keepalive
        self.last_active = now  # last PRIVMSG/NOTICE: drives WHOIS idle time
        self.ping_sent_at: float | None = None
        self.quitting = False
        #: The draft/multiline batch being received, if any (commands/multiline.py).
        self.batch: ClientBatch | None = None
        #: Read markers of a connection not logged in: folded target -> ms (commands/markread.py).
        self.read_markers: dict[str, int] | None = None
        #: The last +typing relayed per folded target: (value, when) (commands/typing_tag.py).
        self.typing: dict[str, tuple[str, float]] | None = None
        #: MONITOR: the nicks this user watches, folded -> as given (``None`` until it asks).
        self.monitoring: dict[str, str] | None = None
        #: draft/metadata-2: its keys, subscriptions and rate (``None`` until it uses any).
        self.meta: MetaState | None = None
        self.who_text = ""
        self.who_fields: tuple[str, ...] = ()
        #: The server holding this user's connection when it is another node of a cluster
        #: (relaychat.cluster mirrors such users); ``None``: this server.
        self.server: str | None = None
        self.snomask = ""  # server notice mask letters, with user mode +s (server/audit.py)
        # server/pending.py: a command still running; the lines that came after it, held.
        self.busy = False
        self.held: deque[Message | ProtocolError] | None = None
        self.held_size = 0
        #: A streamed answer in progress: (next part, open labeled batch reference).
        self.stream: tuple[Callable[[Any], bool], bytes | None] | None = None

    def set_nick(self, nick: str) -> None:
        """Set the nick and everything derived from it."""
        self.nick = nick
        self.key = irc_lower_kept(nick)
        self.update_prefix()

    def set_realname(self, realname: str) -> None:
        """Set the realname (USER, SETNAME) and what WHO matches it with."""
        self.realname = realname
        self.update_prefix()

    def update_prefix(self) -> None:
        """Recompute ``nick!user@host``, the source of everything this user sends, and what WHO
        matches masks with (``commands/who.py``): :attr:`who_text`, the folded prefix and
        realname, where a mask's literal part must be found before anything is matched, and
        :attr:`who_fields`, the folded nick, host, realname and username."""
        self.prefix = f"{self.nick}!{self.username or '*'}@{self.host}"
        self.who_text = irc_lower(f"{self.prefix}\n{self.realname}")
        self.who_fields = (
            self.key or irc_lower_kept(self.nick),
            irc_lower_kept(self.host),
            irc_lower_kept(self.realname),
            irc_lower_kept(self.username),
        )

    def set_mode(self, mode: str, on: bool) -> None:
        """Give (``on``) or take user mode ``mode``; the core's LUSERS counters are the caller's
        (:meth:`ServerCore.set_invisible`, :meth:`ServerCore.set_oper`)."""
        self.modes = self.modes | {mode} if on else self.modes - {mode}

    def invite(self, key: str, on: bool = True) -> None:
        """Remember (``on``) or forget an invitation to the channel folded as ``key``."""
        self.invited = self.invited | {key} if on else self.invited - {key}

    @property
    def is_oper(self) -> bool:
        return "o" in self.modes

    def __repr__(self) -> str:
        return f"<User #{self.id} {self.nick}>"


class MetaState:
    """A connection's draft/metadata-2 state (``commands/metadata.py`` owns its meaning).

    Attributes:
        values: its own keys, key -> value (mirrored to its account when logged in).
        subs: the keys it subscribed to.
        tokens: SET/CLEAR it may still send now (``metadata.set_burst``, refilled with time).
        refilled: when ``tokens`` was last refilled (the core's clock).
    """

    __slots__ = ("refilled", "subs", "tokens", "values")

    def __init__(self, tokens: float, now: float) -> None:
        self.values: dict[str, str] = {}
        self.subs: set[str] = set()
        self.tokens = tokens
        self.refilled = now


class Membership:
    """A user's modes in one channel."""

    __slots__ = ("op", "voice")

    def __init__(self, op: bool = False, voice: bool = False) -> None:
        self.op = op
        self.voice = voice

    def prefixes(self, multi: bool = False) -> str:
        """``@``/``+`` for NAMES and WHO: all with multi-prefix, else the highest."""
        if multi:
            return ("@" if self.op else "") + ("+" if self.voice else "")
        return "@" if self.op else "+" if self.voice else ""


class Channel:
    """One channel; exists while it has members."""

    __slots__ = (
        "_fanout",
        "bans",
        "created",
        "excepts",
        "invexes",
        "invites",
        "key",
        "limit",
        "members",
        "metadata",
        "modes",
        "name",
        "password",
        "quiets",
        "topic",
        "topic_by",
        "topic_time",
    )

    def __init__(self, name: str, now: float) -> None:
        self.name = name
        self.key = irc_lower(name)
        self.members: dict[User, Membership] = {}
        self.modes: set[str] = {"n", "t"}
        self.password: str | None = None  # +k
        self.limit: int | None = None  # +l
        self.bans: list[tuple[str, str, int]] = []  # (mask, set by, set at)
        self.invites: set[str] = set()  # folded nicks invited (see User.invited)
        # The other list modes, shaped like ``bans`` (server/chanlists.py): +e, +I, +q.
        self.excepts: list[tuple[str, str, int]] = []
        self.invexes: list[tuple[str, str, int]] = []
        self.quiets: list[tuple[str, str, int]] = []
        self.topic = ""
        self.topic_by = ""
        self.topic_time = 0
        self.metadata: dict[str, str] = {}  # draft/metadata-2, set by its operators
        self.created = int(now)
        self._fanout: tuple[list[Callable[[bytes], None]], list[User], list[User]] | None = None

    def fanout(self) -> tuple[list[Callable[[bytes], None]], list[User]]:
        """``(sends, tagged)``: the send functions of this server's members without tag
        capabilities (they all get the same bytes), and those with some (a copy per tag profile).

        Cached; :meth:`invalidate` whenever membership or a member's capabilities change.
        """
        cached = self._fanout
        if cached is None:
            cached = self._build_fanout()
        return cached[0], cached[1]

    def plain_members(self) -> list[User]:
        """This server's members without tag capabilities: whose sends :meth:`fanout` lists,
        in the same order (cached with it)."""
        cached = self._fanout
        if cached is None:
            cached = self._build_fanout()
        return cached[2]

    def _build_fanout(self) -> tuple[list[Callable[[bytes], None]], list[User], list[User]]:
        # Members connected to another server of a cluster get channel traffic from it.
        local = [m for m in self.members if m.server is None]
        plain = [m for m in local if not m.profile]
        sends: list[Callable[[bytes], None]] = [m.send_direct for m in plain]
        tagged = [m for m in local if m.profile]
        self._fanout = (sends, tagged, plain)
        return self._fanout

    def invalidate(self) -> None:
        """Forget the cached :meth:`fanout` (membership or a member's caps changed)."""
        self._fanout = None

    def mode_string(self, show_key: bool) -> tuple[str, ...]:
        """The channel's modes as MODE parameters (``+ntkl``, key, limit)."""
        flags = "".join(sorted(self.modes))
        params: list[str] = []
        if self.password is not None:
            flags += "k"
            params.append(self.password if show_key else "*")
        if self.limit is not None:
            flags += "l"
            params.append(str(self.limit))
        return ("+" + flags, *params)

    def __repr__(self) -> str:
        return f"<Channel {self.name} ({len(self.members)})>"


class WhowasEntry:
    """What WHOWAS remembers of a nick that left or changed."""

    __slots__ = ("host", "nick", "realname", "username", "when")

    def __init__(self, user: User, when: float) -> None:
        self.nick = user.nick
        self.username = user.username
        self.host = user.host
        self.realname = user.realname
        self.when = when
