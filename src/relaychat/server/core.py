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

The core is one class, :class:`ServerCore`, written in parts: this module holds the command
table and the dispatch (rules 1 and 6), the state and the IRCv3 helpers; its bases hold the rest,
each with the attributes it uses declared and none importing this module:
``server/lifecycle.py`` (:class:`~relaychat.server.lifecycle.Lifecycle`: accept, ``tick``,
``disconnect``; rules 3 and 4), ``server/fanout.py``
(:class:`~relaychat.server.fanout.Fanout`: events, ``broadcast``, ``deliver``; rule 5),
``server/bookkeeping.py`` (:class:`~relaychat.server.bookkeeping.Bookkeeping`: lookups,
membership, MONITOR, sessions, LUSERS counts) and ``server/pending.py``
(:class:`~relaychat.server.pending.Pending`; rule 6).
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from relaychat import __version__
from relaychat.accounts.worker import InlineWorker, Worker
from relaychat.config import Config
from relaychat.errors import InputTooLong, InvalidUtf8, ProtocolError
from relaychat.protocol import numerics as N
from relaychat.protocol.message import MAX_CLIENT_TAGS_BYTES, Message
from relaychat.ratelog import RateLimitedLog
from relaychat.server.backplane import Backplane
from relaychat.server.bans import BanList
from relaychat.server.bookkeeping import Bookkeeping
from relaychat.server.caps import offered, profile_of
from relaychat.server.fanout import Fanout
from relaychat.server.idempotency import CAP as IDEMPOTENCY_CAP
from relaychat.server.idempotency import KeyIndex
from relaychat.server.isupport import isupport_tokens
from relaychat.server.lifecycle import Lifecycle
from relaychat.server.pending import MAX_WAITING, Held, Pending
from relaychat.server.replies import Replies, add_tag
from relaychat.server.state import Channel, User, WhowasEntry
from relaychat.server.throttle import Throttles
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


class ServerCore(Lifecycle, Fanout, Bookkeeping, Pending):
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
        self.batch_fanout = False
        self.batch_hook = None
        self._batch_channel = None
        self._batch_cache = None
        self._batch_lines = []
        self._batch_skips = []
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

    # --- IRCv3 helpers (events and their fan-out are fanout.py's) --------------------------------

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

    # --- commands (accept/disconnect/tick are lifecycle.py's) ------------------------------------

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

    def history_tip(self) -> Position:
        """The position of the newest message in history (or now, without history): what was
        relayed before this is "before" for a private-history reader (``User.nick_tip``)."""
        store = self.history
        if store is None:
            return (int(self.now * 1000), 0)
        return store.tip()

    def version_string(self) -> str:
        return f"relaychat-{__version__}"
