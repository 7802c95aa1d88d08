"""Accounts attached to a running :class:`~relaychat.server.core.ServerCore`.

Rules:
1. One :class:`AccountService` per core (:func:`service_of`); it owns the account store, the
   worker that hashes passwords, each connection's login state and the nick-protection timers.
   Its state lives here, keyed by connection id, because :class:`User` is the core's.
2. Nothing slow runs on the core's thread: an argon2 hash or check goes to the worker through
   :meth:`AccountService.run`, and the command finishes in the completion with a fresh
   ``Replies`` (which also answers the command's ``label``). While one is in flight the
   connection is *busy*, and registration waits for it (:meth:`~AccountService.hold_registration`).
3. Time comes from the core (``core.now``), set by the tick or by the worker's completion.
4. Entries of closed connections are swept on the next tick.
"""

from __future__ import annotations

import logging
import secrets
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from relaychat.accounts.sasl import MECHANISMS, ChunkBuffer
from relaychat.accounts.scram import ScramServer
from relaychat.accounts.store import Account, AccountStore, AccountStoreError
from relaychat.accounts.worker import Worker
from relaychat.passwords import verify_password
from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.core import COMMANDS

if TYPE_CHECKING:
    from relaychat.server.core import Replies, ServerCore
    from relaychat.server.state import User

__all__ = ["AccountService", "ConnState", "Resume", "SaslSession", "protect_nick", "service_of"]

log = logging.getLogger("relaychat.accounts")

T = TypeVar("T")

#: How registration is finished once a login check completes (``try_register``).
Resume = Callable[["ServerCore", "User", "Replies"], None]

_SERVICES: weakref.WeakKeyDictionary[ServerCore, AccountService] = weakref.WeakKeyDictionary()


def service_of(core: ServerCore) -> AccountService | None:
    """The accounts attached to ``core``, or ``None`` when it has none."""
    return _SERVICES.get(core)


def protect_nick(core: ServerCore, user: User, out: Replies) -> None:
    """After ``user`` took a nick: warn it (in ``out``) if the nick is another account's.

    A no-op on a core without accounts.
    """
    svc = _SERVICES.get(core)
    if svc is not None:
        svc.check_nick(user, out)


class SaslSession:
    """One SASL exchange in progress on a connection.

    Attributes:
        mechanism: ``PLAIN``, ``SCRAM-SHA-256`` or ``EXTERNAL``.
        buffer: the client's response being reassembled from chunks.
        scram: the SCRAM exchange, for SCRAM-SHA-256.
        account: the account the exchange is about, once known.
        step: how many client responses were handled.
    """

    __slots__ = ("account", "buffer", "mechanism", "scram", "step")

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self.buffer = ChunkBuffer()
        self.scram: ScramServer | None = None
        self.account: Account | None = None
        self.step = 0


class ConnState:
    """What the accounts know about one connection.

    Attributes:
        sasl: the SASL exchange in progress.
        busy: a password hash or check is running for it (registration waits).
        resume: registration to finish when ``busy`` ends.
        failures: failed SASL attempts so far.
    """

    __slots__ = ("busy", "failures", "resume", "sasl")

    def __init__(self) -> None:
        self.sasl: SaslSession | None = None
        self.busy = False
        self.resume: Resume | None = None
        self.failures = 0


class AccountService:
    """Accounts for one core: store, worker, login state, nick protection.

    Args:
        core: the core to serve.
        store: where accounts are kept.
        worker: where password hashing runs.
        external: offer SASL EXTERNAL (the server has a TLS listener asking for certificates).
    """

    def __init__(
        self, core: ServerCore, store: AccountStore, worker: Worker, *, external: bool
    ) -> None:
        self.core = core
        self.store = store
        self.worker = worker
        self.external = external
        self.conns: dict[int, ConnState] = {}
        self.guards: dict[int, tuple[float, str]] = {}  # connection id -> (deadline, folded nick)

    @classmethod
    def open(cls, core: ServerCore, worker: Worker, *, external: bool) -> AccountService:
        """Open ``accounts.db`` under the core's data directory and attach to the core.

        Raises:
            AccountStoreError: the database exists but cannot be opened.
        """
        store = AccountStore.open(core.config.data_path() / "accounts.db")
        svc = cls(core, store, worker, external=external)
        svc.attach()
        return svc

    def attach(self) -> None:
        """Offer the capabilities, start the timer and become :func:`service_of` the core."""
        core = self.core
        core.extra_caps["sasl"] = ",".join(
            m for m in MECHANISMS if m != "EXTERNAL" or self.external
        )
        if core.config.accounts.registration:
            # No mail server: REGISTER completes at once, so no "email-required" key, and
            # VERIFY is never needed. "before-connect" only when no server password is set
            # (registering must not bypass it).
            keys = ["custom-account-name"]
            if not core.config.password:
                keys.insert(0, "before-connect")
            core.extra_caps["draft/account-registration"] = ",".join(keys)
        core.tick_hooks.append(self.tick)
        _SERVICES[core] = self

    # --- per-connection state ------------------------------------------------------------------

    def state(self, user: User) -> ConnState:
        """``user``'s account state, created when first needed."""
        conn = self.conns.get(user.id)
        if conn is None:
            conn = self.conns[user.id] = ConnState()
        return conn

    def mechanisms(self, user: User) -> list[str]:
        """The SASL mechanisms ``user`` can use (EXTERNAL needs a client certificate)."""
        return [m for m in MECHANISMS if m != "EXTERNAL" or (self.external and user.certfp)]

    def run(
        self,
        user: User,
        out: Replies,
        job: Callable[[], T],
        then: Callable[[T | None, Replies], None],
        *,
        resume: Resume | None = None,
    ) -> bool:
        """Run ``job`` on the worker, then ``then(result, replies)`` on the core's thread.

        ``replies`` is a fresh ``Replies`` that carries ``out``'s label (the command's answer
        comes from the completion). The connection is busy meanwhile; registration held for it
        is finished after ``then``. Nothing happens if the client has left by then.

        Args:
            user: whose command this is.
            out: the command's replies; add nothing to it after this call.
            job: the slow part (argon2), run on the worker; it must not touch the core.
            then: the rest of the command; gets ``None`` when ``job`` raised.
            resume: registration to finish after ``then`` (``try_register``).

        Returns:
            ``False`` when the worker is too busy: nothing was started, tell the client.
        """
        from relaychat.server.core import Replies

        conn = self.state(user)
        if resume is not None:
            conn.resume = resume
        label = out.label
        core = self.core

        def done(result: T | None, now: float) -> None:
            conn.busy = False
            pending, conn.resume = conn.resume, None
            if user.quitting:
                return
            core.now = now
            replies = Replies(core, user, label)
            then(result, replies)
            if pending is not None and not user.quitting:
                pending(core, user, replies)
            replies.flush()

        conn.busy = True
        if not self.worker.submit(job, done):
            conn.busy = False
            conn.resume = None
            return False
        out.label = None  # answered by the completion
        return True

    # --- login ---------------------------------------------------------------------------------

    def log_in(self, user: User, account: Account, out: Replies) -> None:
        """Log ``user`` in to ``account``: 900, account-notify, and nick protection rechecked."""
        self.core.set_account(user, account.name)
        out.numeric(
            N.RPL_LOGGEDIN,
            user.prefix,
            account.name,
            text=f"You are now logged in as {account.name}",
        )
        log.info("connection #%d (%s) logged in as %s", user.id, user.nick, account.name)
        self.check_nick(user, out)

    def hold_registration(self, user: User, out: Replies, resume: Resume) -> bool:
        """Called by ``try_register`` when the client is otherwise ready to register.

        A login being checked holds registration until it completes; a SASL exchange still
        waiting for the client is aborted (906, sasl-3.1); ``PASS account:password`` (with no
        server password set) starts a login.

        Args:
            user: the client about to register.
            out: the replies of the command that completed registration.
            resume: what to call to register it once the login check is done.

        Returns:
            ``True`` to wait: ``resume(core, user, replies)`` will be called later.
        """
        conn = self.conns.get(user.id)
        if conn is not None:
            if conn.busy:
                conn.resume = resume
                return True
            if conn.sasl is not None:
                conn.sasl = None
                out.numeric(
                    N.ERR_SASLABORTED,
                    text="SASL authentication aborted: registration completed before it ended",
                )
        given = user.pass_given
        if given and not self.core.config.password and user.account is None:
            user.pass_given = None
            return self._pass_login(user, given, out, resume)
        return False

    def _pass_login(self, user: User, given: str, out: Replies, resume: Resume) -> bool:
        """``PASS <account>:<password>`` (or ``PASS <password>`` for the account named as the
        nick) logs in at registration."""
        name, sep, password = given.partition(":")
        if not sep:
            name, password = user.nick, given
        try:
            account = self.store.get(name) if name and password else None
        except AccountStoreError as exc:
            log.error("PASS login for %s: %s", name, exc)
            self.notice(out, user, "Login failed: the account store is unavailable")
            return False
        if account is None:
            self.notice(
                out,
                user,
                f"Login failed: there is no account named {name}; "
                "you are connected without an account",
            )
            return False

        def then(ok: bool | None, replies: Replies) -> None:
            if ok:
                self.log_in(user, account, replies)
            else:
                self.notice(
                    replies,
                    user,
                    f"Login failed for account {account.name}: wrong password; "
                    "you are connected without an account",
                )

        started = self.run(
            user,
            out,
            lambda: verify_password(account.password_hash, password),
            then,
            resume=resume,
        )
        if not started:
            self.notice(out, user, "Login failed: the server is busy; try again in a moment")
        return started

    def notice(self, out: Replies, user: User, text: str) -> None:
        """A server NOTICE to ``user`` about its account."""
        out.add(Message("NOTICE", (user.nick, text), self.core.name))

    # --- nick protection -----------------------------------------------------------------------

    def check_nick(self, user: User, out: Replies) -> None:
        """Start or cancel nick protection for ``user``'s current nick.

        A registered user holding a nick that is another account's is told at once and renamed
        when ``accounts.nick_grace`` seconds pass without a login to that account.
        """
        if not user.registered or user.quitting:
            return
        owner = self.store.owner_of_nick(user.nick)
        if owner is None or (
            user.account is not None and irc_lower(user.account) == irc_lower(owner)
        ):
            self.guards.pop(user.id, None)
            return
        guard = self.guards.get(user.id)
        if guard is not None and guard[1] == user.key:
            return  # warned already
        grace = self.core.config.accounts.nick_grace
        self.guards[user.id] = (self.core.now + grace, user.key)
        text = (
            f"The nick {user.nick} is registered to the account {owner}. Log in to it within "
            f"{grace:g} seconds (SASL, or PASS {owner}:<password> when connecting), or change "
            "your nick; otherwise you will be renamed."
        )
        self.notice(out, user, text)

    def tick(self, now: float) -> None:
        """The core's tick hook: rename users whose grace ran out; forget closed connections."""
        due = [uid for uid, (deadline, _) in self.guards.items() if deadline <= now]
        for uid in due:
            _, key = self.guards.pop(uid)
            user = self.core.connections.get(uid)
            if user is None or user.quitting or user.key != key:
                continue
            owner = self.store.owner_of_nick(key)
            if owner is None or (user.account and irc_lower(user.account) == irc_lower(owner)):
                continue
            self._rename(user, owner)
        gone = [uid for uid in self.conns if uid not in self.core.connections]
        for uid in gone:
            del self.conns[uid]
        for uid in [uid for uid in self.guards if uid not in self.core.connections]:
            del self.guards[uid]

    def _rename(self, user: User, owner: str) -> None:
        """Give ``user`` a Guest nick, through the NICK command so everyone sees it."""
        from relaychat.server.core import Replies

        old = user.nick
        guest = self.guest_nick()
        out = Replies(self.core, user)
        COMMANDS["NICK"].handler(self.core, user, Message("NICK", (guest,)), out)
        self.notice(
            out,
            user,
            f"You are now {user.nick}: the nick {old} is registered to the account {owner} "
            "and you did not log in to it in time.",
        )
        out.flush()
        log.info("connection #%d renamed %s -> %s (nick of account %s)", user.id, old, guest, owner)

    def guest_nick(self) -> str:
        """A free ``Guest<digits>`` nick that fits NICKLEN.

        Raises:
            RuntimeError: every such nick is taken (10,000 of them at the least).
        """
        digits = max(1, min(5, self.core.config.limits.nicklen - 5))
        users = self.core.users
        for _ in range(100):
            nick = f"Guest{secrets.randbelow(10**digits):0{digits}d}"
            if irc_lower(nick) not in users:
                return nick
        for n in range(10**digits):  # nearly full: look at them all, once
            nick = f"Guest{n:0{digits}d}"
            if irc_lower(nick) not in users:
                return nick
        raise RuntimeError("no free Guest nick")
