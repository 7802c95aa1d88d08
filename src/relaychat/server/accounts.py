"""Accounts attached to a running :class:`~relaychat.server.core.ServerCore`.

The ``relaychat.accounts`` package is pure (store, SASL, SCRAM, the worker, verification codes)
and knows nothing of the server; this module is the glue the account commands
(``commands/sasl.py``, ``commands/accounts.py``, PASS in ``commands/registration.py``) call.

Rules:
1. One :class:`AccountService` per core (:func:`service_of`); it owns the account store, each
   connection's login state and the nick-protection timers. Its state lives here, keyed by
   connection id, because :class:`User` is the core's.
2. Nothing slow runs on the core's thread: an argon2 hash or check goes to the worker through
   :meth:`AccountService.run` (``core.offload``); the command finishes in the completion, and the
   connection's later lines wait for it (``server/pending.py``).
3. A login to an account that does not exist looks exactly like a wrong password: the same
   reply, after the same argon2 work (``passwords.verify_nothing``), counted against the same
   lock-outs (``core.throttles``: per address group and per account name).
4. Time comes from the core (``core.now``), set by the tick or by the worker's completion.
5. Entries of closed connections are swept on the next tick; unconfirmed accounts expire there
   too (``accounts.unconfirmed_expiry_days``, ``accounts/store.py`` rule 7).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import TypeVar

from relaychat.accounts.sasl import MECHANISMS, ChunkBuffer
from relaychat.accounts.scram import ScramServer
from relaychat.accounts.store import Account, AccountStore, AccountStoreError
from relaychat.accounts.worker import Worker
from relaychat.config import Config
from relaychat.passwords import verify_nothing, verify_password
from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.core import COMMANDS, Replies, ServerCore
from relaychat.server.state import User
from relaychat.server.throttle import retry_text, seconds

__all__ = [
    "LOGIN_FAILED",
    "AccountService",
    "ConnState",
    "Resume",
    "SaslSession",
    "locked_out",
    "protect_nick",
    "registration_cap",
    "service_of",
]

log = logging.getLogger("relaychat.accounts")

T = TypeVar("T")

#: How registration is finished once a login check completes (``try_register``).
Resume = Callable[[ServerCore, User, Replies], None]

#: The one reason given for an unknown account and for a wrong password (rule 3).
LOGIN_FAILED = "invalid account name or password"

#: Seconds between two expiry passes over unconfirmed accounts.
EXPIRY_EVERY = 60.0

#: The key of the accounts service in ``ServerCore.parts``.
PART = "accounts"


def registration_cap(config: Config) -> str | None:
    """The ``draft/account-registration`` value ``config`` offers, or ``None`` (not offered).

    "before-connect" only when allowed and no server password is set (registering must not
    bypass it); "email-required" when REGISTER sends a code to verify.
    """
    cfg = config.accounts
    if not cfg.registration:
        return None
    keys = ["custom-account-name"]
    if cfg.email_verification:
        keys.append("email-required")
    if cfg.register_before_connect and not config.password:
        keys.insert(0, "before-connect")
    return ",".join(keys)


def service_of(core: ServerCore) -> AccountService | None:
    """The accounts attached to ``core``, or ``None`` when it has none."""
    svc = core.parts.get(PART)
    return svc if isinstance(svc, AccountService) else None


def protect_nick(core: ServerCore, user: User, out: Replies) -> None:
    """After ``user`` took a nick: warn it (in ``out``) if the nick is another account's.

    A no-op on a core without accounts.
    """
    svc = service_of(core)
    if svc is not None:
        svc.check_nick(user, out)


def locked_out(core: ServerCore, user: User, name: str | None) -> float:
    """Seconds a login from ``user`` to account ``name`` (folded) is still locked out for
    (``0.0``: it may be tried); a lock-out is logged (rate-limited)."""
    wait = core.throttles.login_wait(user.ip_group, name, core.now)
    if wait > 0:
        core.ratelog.info(
            "login refused: locked out",
            "login from %s refused: too many failed logins (%d s to wait)",
            user.ip_group,
            seconds(wait),
            now=core.now,
        )
    return wait


class SaslSession:
    """One SASL exchange in progress on a connection.

    Attributes:
        mechanism: ``PLAIN``, ``SCRAM-SHA-256`` or ``EXTERNAL``.
        buffer: the client's response being reassembled from chunks.
        scram: the SCRAM exchange, for SCRAM-SHA-256.
        account: the account the exchange is about, once known (``None`` for an unknown name).
        name: the folded account name the client gave, once known (for the lock-outs).
        step: how many client responses were handled.
    """

    __slots__ = ("account", "buffer", "mechanism", "name", "scram", "step")

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self.buffer = ChunkBuffer()
        self.scram: ScramServer | None = None
        self.account: Account | None = None
        self.name: str | None = None
        self.step = 0


class ConnState:
    """What the accounts know about one connection.

    Attributes:
        sasl: the SASL exchange in progress.
        failures: failed SASL attempts so far.
        registered: the account this connection registered (its first login does not confirm
            the account; a later login does).
    """

    __slots__ = ("failures", "registered", "sasl")

    def __init__(self) -> None:
        self.sasl: SaslSession | None = None
        self.failures = 0
        self.registered: str | None = None


class AccountService:
    """Accounts for one core: store, login state, nick protection.

    Args:
        core: the core to serve.
        store: where accounts are kept.
        worker: where password hashing runs (becomes the core's worker).
        external: offer SASL EXTERNAL (the server has a TLS listener asking for certificates).
    """

    def __init__(
        self, core: ServerCore, store: AccountStore, worker: Worker, *, external: bool
    ) -> None:
        self.core = core
        self.store = store
        core.worker = worker
        self.external = external
        self.conns: dict[int, ConnState] = {}
        self.guards: dict[int, tuple[float, str]] = {}  # connection id -> (deadline, folded nick)
        self._next_expiry = core.now

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

    @property
    def worker(self) -> Worker:
        """Where password hashing runs (the core's worker)."""
        return self.core.worker

    def attach(self) -> None:
        """Offer the capabilities, start the timer and become :func:`service_of` the core."""
        core = self.core
        core.extra_caps["sasl"] = ",".join(
            m for m in MECHANISMS if m != "EXTERNAL" or self.external
        )
        value = registration_cap(core.config)
        if value is not None:
            core.extra_caps["draft/account-registration"] = value
        core.tick_hooks.append(self.tick)
        core.parts[PART] = self

    def before_connect(self) -> bool:
        """Whether REGISTER and VERIFY are accepted before the connection has registered."""
        cfg = self.core.config
        return cfg.accounts.register_before_connect and not cfg.password

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
        account: str | None = None,
        busy: Callable[[Replies], None] | None = None,
    ) -> bool:
        """Run ``job`` on the worker, then ``then(result, replies)`` (``core.offload``).

        Args:
            resume: registration to finish after ``then`` (or after ``busy``).
            account: the folded account name the job is about.
            busy: the refusal when the worker is too busy, sent after a wait (``offload``).

        Returns:
            ``False`` when the worker is too busy and no ``busy`` was given.
        """
        core = self.core

        def finish(result: T | None, replies: Replies) -> None:
            then(result, replies)
            if resume is not None and not user.quitting:
                resume(core, user, replies)

        def refused(replies: Replies) -> None:
            assert busy is not None
            busy(replies)
            if resume is not None and not user.quitting:
                resume(core, user, replies)

        return core.offload(
            user, out, job, finish, account=account, busy=None if busy is None else refused
        )

    def busy_text(self) -> str:
        """Why a command that needs the worker was refused, and for how long."""
        return f"the server is busy; try again in {seconds(self.worker.retry_after())} seconds"

    # --- login ---------------------------------------------------------------------------------

    def log_in(self, user: User, account: Account, out: Replies) -> None:
        """Log ``user`` in to ``account``: 900, account-notify, and nick protection rechecked.

        A login other than the registering connection's own confirms the account (it no
        longer expires).
        """
        self.core.set_account(user, account.name)
        self.core.throttles.login_succeeded(user.ip_group, irc_lower(account.name))
        out.numeric(
            N.RPL_LOGGEDIN,
            user.prefix,
            account.name,
            text=f"You are now logged in as {account.name}",
        )
        log.info("connection #%d (%s) logged in as %s", user.id, user.nick, account.name)
        if not account.confirmed and self.state(user).registered != irc_lower(account.name):
            try:
                self.store.confirm(account.name)
            except AccountStoreError as exc:
                log.error("confirming account %s: %s", account.name, exc)
        self.check_nick(user, out)

    def check_password(
        self, user: User, account: Account | None, password: str
    ) -> Callable[[], bool]:
        """The worker job that checks ``password`` for ``account``: for an unknown account it
        takes as long and fails (rule 3)."""
        if account is None:
            return lambda: verify_nothing(password)
        hashed = account.password_hash
        return lambda: verify_password(hashed, password)

    def hold_registration(self, user: User, out: Replies, resume: Resume) -> bool:
        """Called by ``try_register`` when the client is otherwise ready to register.

        A SASL exchange still waiting for the client is aborted (906, sasl-3.1);
        ``PASS account:password`` (with no server password set) starts a login.

        Args:
            user: the client about to register.
            out: the replies of the command that completed registration.
            resume: what to call to register it once the login check is done.

        Returns:
            ``True`` to wait: ``resume(core, user, replies)`` will be called later.
        """
        conn = self.conns.get(user.id)
        if conn is not None and conn.sasl is not None:
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
        if not name or not password:
            self.notice(out, user, f"Login failed: {LOGIN_FAILED}")
            return False
        core = self.core
        folded = irc_lower(name)
        wait = locked_out(core, user, folded)
        if wait > 0:

            def refuse(replies: Replies) -> None:
                left = core.throttles.login_wait(user.ip_group, folded, core.now)
                self.notice(
                    replies,
                    user,
                    f"Login failed: too many failed logins; {retry_text(left)}; "
                    "you are connected without an account",
                )
                resume(core, user, replies)

            core.tarpit(user, out, wait, refuse)
            return True
        try:
            account = self.store.get(name)
        except AccountStoreError as exc:
            log.error("PASS login for %s: %s", name, exc)
            self.notice(out, user, "Login failed: the account store is unavailable")
            return False

        def then(ok: bool | None, replies: Replies) -> None:
            if ok and account is not None and account.verify_hash is None:
                self.log_in(user, account, replies)
                return
            if ok and account is not None:
                text = f"the account {account.name} is not verified yet (VERIFY)"
            else:
                core.throttles.login_failed(user.ip_group, folded, core.now)
                text = LOGIN_FAILED
            self.notice(
                replies, user, f"Login failed: {text}; you are connected without an account"
            )

        def busy(replies: Replies) -> None:
            self.notice(replies, user, f"Login failed: {self.busy_text()}")

        job = self.check_password(user, account, password)
        return self.run(user, out, job, then, resume=resume, account=folded, busy=busy)

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
        """The core's tick hook: rename users whose grace ran out; forget closed connections;
        now and then, delete expired unconfirmed accounts."""
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
        if now >= self._next_expiry:
            self._next_expiry = now + EXPIRY_EVERY
            self.expire(now)

    def expire(self, now: float) -> list[str]:
        """Delete the unconfirmed accounts older than ``accounts.unconfirmed_expiry_days`` that
        nobody is logged in to; return their names."""
        days = self.core.config.accounts.unconfirmed_expiry_days
        if days <= 0:
            return []
        in_use = {irc_lower(u.account) for u in self.core.connections.values() if u.account}
        try:
            gone = self.store.expire(now - days * 86400, in_use)
        except AccountStoreError as exc:
            log.error("expiring unconfirmed accounts: %s", exc)
            return []
        if gone:
            log.info("deleted %d unconfirmed accounts: %s", len(gone), ", ".join(gone))
        return gone

    def _rename(self, user: User, owner: str) -> None:
        """Give ``user`` a Guest nick, through the NICK command so everyone sees it."""
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
