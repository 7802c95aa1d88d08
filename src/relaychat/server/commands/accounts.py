"""Accounts: AUTHENTICATE (SASL), REGISTER and VERIFY, CERT.

- SASL: https://ircv3.net/specs/extensions/sasl-3.1 and sasl-3.2. Mechanisms: PLAIN (RFC 4616),
  SCRAM-SHA-256 (RFC 5802, RFC 7677) and EXTERNAL (RFC 4422 appendix A) with the TLS client
  certificate's fingerprint. Changing accounts is not supported: a logged-in client gets 907.
- REGISTER / VERIFY: https://ircv3.net/specs/extensions/account-registration. The server sends
  no email, so an account is active as soon as REGISTER succeeds and the client is logged in to
  it; VERIFY has nothing to verify.
- CERT LIST | ADD [<fingerprint>] | DEL <fingerprint>: relaychat's own, to choose which TLS
  client certificates log in to your account with SASL EXTERNAL. REGISTER from a connection with
  a client certificate adds it at once.

The state of each connection's exchange, the store and the password worker are the
:class:`~relaychat.accounts.service.AccountService`'s; handlers here only speak the protocol.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from relaychat.accounts.sasl import (
    MECHANISMS,
    SaslDataError,
    SaslTooLong,
    encode_chunks,
    parse_plain,
)
from relaychat.accounts.scram import (
    ScramCredentials,
    ScramError,
    ScramServer,
    derive_credentials,
)
from relaychat.accounts.service import AccountService, SaslSession, service_of
from relaychat.accounts.store import Account, AccountStoreError, normalize_certfp
from relaychat.passwords import hash_password, verify_password
from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.commands.registration import valid_nick
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.state import User

__all__ = ["MAX_CERTS", "MAX_SASL_FAILURES", "MIN_PASSWORD"]

log = logging.getLogger("relaychat.accounts")

#: Failed SASL attempts after which the connection is closed (sasl-3.2 allows it).
MAX_SASL_FAILURES = 5
#: The shortest password REGISTER accepts, in characters.
MIN_PASSWORD = 8
#: The longest, in UTF-8 bytes (the account-registration spec's advice).
MAX_PASSWORD_BYTES = 300
#: The most certificate fingerprints one account may have.
MAX_CERTS = 10
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")


def _show(text: str, limit: int = 64) -> str:
    """Client input quoted in a reply's text, cut so the line stays short."""
    return text if len(text) <= limit else text[:limit] + "..."


# --- SASL ----------------------------------------------------------------------------------------


@command("AUTHENTICATE", min_params=1, pre_registration=True)
def authenticate(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """AUTHENTICATE <mechanism> | <base64 chunk> | + | *"""
    svc = service_of(core)
    if svc is None:
        out.numeric(N.ERR_SASLFAIL, text="SASL authentication failed: this server has no accounts")
        return
    if "sasl" not in user.caps:
        out.numeric(
            N.ERR_SASLFAIL,
            text="SASL authentication failed: request the sasl capability first (CAP REQ sasl)",
        )
        return
    conn = svc.state(user)
    arg = msg.params[0]
    if conn.busy:
        out.numeric(
            N.ERR_SASLFAIL,
            text="SASL authentication failed: a login for this connection is still being checked",
        )
        return
    if arg == "*":
        conn.sasl = None
        out.numeric(N.ERR_SASLABORTED)
        return
    session = conn.sasl
    if session is None:
        _start(core, svc, user, arg, out)
        return
    try:
        data = session.buffer.feed(arg)
    except SaslTooLong as exc:
        _fail(core, svc, user, out, str(exc), numeric=N.ERR_SASLTOOLONG)
        return
    except SaslDataError as exc:
        _fail(core, svc, user, out, str(exc))
        return
    if data is None:
        return  # a 400-byte chunk: the rest follows
    session.step += 1
    _STEPS[session.mechanism](core, svc, user, session, data, out)


def _start(core: ServerCore, svc: AccountService, user: User, mech: str, out: Replies) -> None:
    """``AUTHENTICATE <mechanism>``: begin an exchange (the mechanisms are client-first)."""
    if user.account is not None:
        out.numeric(N.ERR_SASLALREADY)
        return
    mech = mech.upper()
    available = svc.mechanisms(user)
    if mech not in available:
        out.numeric(N.RPL_SASLMECHS, ",".join(available))
        if mech == "EXTERNAL" and svc.external:
            reason = "EXTERNAL needs a TLS connection with a client certificate"
        elif mech == "EXTERNAL" or mech in MECHANISMS:
            reason = f"{mech} is not available on this server"
        else:
            reason = f"the mechanism {_show(mech, 32)} is not supported"
        out.numeric(N.ERR_SASLFAIL, text=f"SASL authentication failed: {reason}")
        return
    svc.state(user).sasl = SaslSession(mech)
    out.add(Message("AUTHENTICATE", ("+",)))


def _fail(
    core: ServerCore,
    svc: AccountService,
    user: User,
    out: Replies,
    reason: str,
    *,
    numeric: N.Numeric = N.ERR_SASLFAIL,
) -> None:
    """End the exchange with 904 (or 905); too many failures close the connection."""
    conn = svc.state(user)
    conn.sasl = None
    conn.failures += 1
    prefix = (
        "SASL message too long" if numeric is N.ERR_SASLTOOLONG else "SASL authentication failed"
    )
    out.numeric(numeric, text=f"{prefix}: {reason}")
    if conn.failures >= MAX_SASL_FAILURES:
        out.flush()
        core.disconnect(user, "Too many SASL authentication failures")


def _succeed(svc: AccountService, user: User, account: Account, out: Replies) -> None:
    svc.state(user).sasl = None
    svc.log_in(user, account, out)
    out.numeric(N.RPL_SASLSUCCESS)


def _lookup(
    core: ServerCore, svc: AccountService, user: User, out: Replies, name: str
) -> Account | None:
    """The account called ``name``; on failure the exchange fails with the reason."""
    try:
        account = svc.store.get(name)
    except AccountStoreError as exc:
        log.error("SASL login for %s: %s", name, exc)
        _fail(core, svc, user, out, "the account store is unavailable")
        return None
    if account is None:
        _fail(core, svc, user, out, f"there is no account named {_show(name)}")
    return account


def _authzid_ok(
    core: ServerCore, svc: AccountService, user: User, out: Replies, authzid: str, name: str
) -> bool:
    if authzid and irc_lower(authzid) != irc_lower(name):
        _fail(core, svc, user, out, "you may only log in as yourself (authzid must be empty)")
        return False
    return True


def _plain(
    core: ServerCore,
    svc: AccountService,
    user: User,
    session: SaslSession,
    data: bytes,
    out: Replies,
) -> None:
    """PLAIN: ``authzid NUL authcid NUL password``; argon2 checks it in the worker."""
    try:
        authzid, authcid, password = parse_plain(data)
    except SaslDataError as exc:
        _fail(core, svc, user, out, str(exc))
        return
    if not _authzid_ok(core, svc, user, out, authzid, authcid):
        return
    account = _lookup(core, svc, user, out, authcid)
    if account is None:
        return
    svc.state(user).sasl = None

    def then(ok: bool | None, replies: Replies) -> None:
        if ok:
            _succeed(svc, user, account, replies)
        elif ok is None:
            _fail(core, svc, user, replies, "internal error while checking the password")
        else:
            _fail(core, svc, user, replies, "wrong password")

    started = svc.run(user, out, lambda: verify_password(account.password_hash, password), then)
    if not started:
        out.numeric(
            N.ERR_SASLFAIL, text="SASL authentication failed: the server is busy; try again soon"
        )


def _external(
    core: ServerCore,
    svc: AccountService,
    user: User,
    session: SaslSession,
    data: bytes,
    out: Replies,
) -> None:
    """EXTERNAL: the TLS client certificate names the account; the response is the authzid."""
    fp = user.certfp
    if fp is None:
        _fail(core, svc, user, out, "you have no TLS client certificate")
        return
    try:
        account = svc.store.by_certfp(fp)
    except AccountStoreError as exc:
        log.error("SASL EXTERNAL for %s: %s", fp, exc)
        _fail(core, svc, user, out, "the account store is unavailable")
        return
    if account is None:
        _fail(
            core,
            svc,
            user,
            out,
            f"your certificate {fp} is not registered to any account "
            "(log in another way, then send CERT ADD)",
        )
        return
    authzid = data.decode("utf-8", "replace")
    if _authzid_ok(core, svc, user, out, authzid, account.name):
        _succeed(svc, user, account, out)


def _scram(
    core: ServerCore,
    svc: AccountService,
    user: User,
    session: SaslSession,
    data: bytes,
    out: Replies,
) -> None:
    """SCRAM-SHA-256: client-first, client-final, then an empty response (RFC 5802 §5)."""

    def lookup(name: str) -> ScramCredentials:
        try:
            account = svc.store.get(name)
        except AccountStoreError as exc:
            log.error("SASL SCRAM-SHA-256 for %s: %s", name, exc)
            raise ScramError("the account store is unavailable") from None
        if account is None:
            raise ScramError(f"there is no account named {_show(name)}")
        session.account = account
        return account.scram

    try:
        if session.step == 1:
            session.scram = ScramServer(lookup)
            reply = session.scram.receive_first(data)
        elif session.step == 2 and session.scram is not None:
            reply = session.scram.receive_final(data)
        else:
            # The server-final-message went as a challenge (IRC SASL has no "additional data
            # with success", RFC 4422 §5); the client answers it with an empty response.
            if data:
                _fail(core, svc, user, out, "expected an empty response after the server's proof")
                return
            assert session.account is not None
            _succeed(svc, user, session.account, out)
            return
    except ScramError as exc:
        _fail(core, svc, user, out, exc.reason)
        return
    for chunk in encode_chunks(reply):
        out.add(Message("AUTHENTICATE", (chunk,)))


_STEPS: dict[
    str, Callable[[ServerCore, AccountService, User, SaslSession, bytes, Replies], None]
] = {"PLAIN": _plain, "EXTERNAL": _external, "SCRAM-SHA-256": _scram}


# --- REGISTER / VERIFY ---------------------------------------------------------------------------


@command("REGISTER", min_params=3, pre_registration=True)
def register(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """REGISTER <account> <email|*> <password>"""
    raw, email, password = msg.params[0], msg.params[1], msg.params[2]

    def fail(code: str, text: str, context: str = raw) -> None:
        out.standard("FAIL", "REGISTER", code, context, text=text)

    svc = service_of(core)
    if svc is None or not core.config.accounts.registration:
        fail("TEMPORARILY_UNAVAILABLE", "Account registration is turned off on this server")
        return
    if not user.registered and core.config.password:
        out.standard(
            "FAIL",
            "REGISTER",
            "COMPLETE_CONNECTION_REQUIRED",
            text="Finish connecting (with the server password) before you register an account",
        )
        return
    if user.account is not None:
        fail(
            "ALREADY_AUTHENTICATED",
            f"You are already logged in to the account {user.account}",
            user.account,
        )
        return
    name = raw
    if name == "*":
        if user.nick == "*":
            fail("NEED_NICK", "Send NICK first, or give the account name instead of *", "*")
            return
        name = user.nick
    error = _check_registration(core, svc, user, name, email, password)
    if error is not None:
        fail(error[0], error[1], name)
        return
    if svc.state(user).busy:
        fail("TEMPORARILY_UNAVAILABLE", "Wait until your login or registration in progress ends")
        return
    certfp = user.certfp

    def job() -> tuple[str, ScramCredentials] | ScramError:
        try:
            creds = derive_credentials(password)  # first: it refuses what SASLprep refuses
        except ScramError as exc:
            return exc
        return hash_password(password), creds

    def then(result: tuple[str, ScramCredentials] | ScramError | None, replies: Replies) -> None:
        _finish_registration(core, svc, user, name, email, certfp, result, replies)

    if not svc.run(user, out, job, then):
        fail("TEMPORARILY_UNAVAILABLE", "The server is busy; try again in a moment")


def _check_registration(
    core: ServerCore, svc: AccountService, user: User, name: str, email: str, password: str
) -> tuple[str, str] | None:
    """Why ``name``/``email``/``password`` cannot be registered, as (code, text), or ``None``."""
    nicklen = core.config.limits.nicklen
    if not valid_nick(name, nicklen):
        return (
            "BAD_ACCOUNT_NAME",
            f"An account name is a nick: 1 to {nicklen} letters, digits or []\\`_^{{|}}-, "
            "not starting with a digit or -",
        )
    if irc_lower(name).startswith("guest"):
        return "BAD_ACCOUNT_NAME", "Names starting with Guest are kept for renamed users"
    try:
        taken = svc.store.owner_of_nick(name) is not None or svc.store.get(name) is not None
    except AccountStoreError as exc:
        log.error("REGISTER %s: %s", name, exc)
        return "TEMPORARILY_UNAVAILABLE", "The account store is unavailable; try again later"
    if taken:
        return (
            "ACCOUNT_EXISTS",
            f"The account {name} is registered already; log in to it, or choose another name",
        )
    holder = core.users.get(irc_lower(name))
    if holder is not None and holder is not user:
        return (
            "BAD_ACCOUNT_NAME",
            f"The nick {name} is in use by someone else; an account protects its name as a nick",
        )
    if email != "*" and not _EMAIL_RE.match(email):
        return "INVALID_EMAIL", f"{_show(email)} is not an email address; send * to give none"
    if len(password) < MIN_PASSWORD:
        return "WEAK_PASSWORD", f"A password needs at least {MIN_PASSWORD} characters"
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        return "UNACCEPTABLE_PASSWORD", f"A password is at most {MAX_PASSWORD_BYTES} bytes"
    if irc_lower(password) == irc_lower(name):
        return "WEAK_PASSWORD", "The password must not be the account name"
    return None


def _finish_registration(
    core: ServerCore,
    svc: AccountService,
    user: User,
    name: str,
    email: str,
    certfp: str | None,
    result: tuple[str, ScramCredentials] | ScramError | None,
    out: Replies,
) -> None:
    """The completion of REGISTER, once the password is hashed: store, then log in."""

    def fail(code: str, text: str) -> None:
        out.standard("FAIL", "REGISTER", code, name, text=text)

    if result is None:
        fail("TEMPORARILY_UNAVAILABLE", "Internal error while hashing the password")
        return
    if isinstance(result, ScramError):
        fail("UNACCEPTABLE_PASSWORD", f"This password cannot be used: {result.reason}")
        return
    password_hash, creds = result
    try:
        fps = (certfp,) if certfp and svc.store.by_certfp(certfp) is None else ()
        account = Account(
            name=name,
            nick=name,
            password_hash=password_hash,
            scram=creds,
            email=None if email == "*" else email,
            created=core.now,
            certfps=fps,
        )
        created = svc.store.create(account)
    except AccountStoreError as exc:
        log.error("REGISTER %s: %s", name, exc)
        fail("TEMPORARILY_UNAVAILABLE", "The account could not be saved; try again later")
        return
    if not created:
        fail("ACCOUNT_EXISTS", f"The account {name} was registered by someone else just now")
        return
    log.info("connection #%d (%s) registered the account %s", user.id, user.nick, name)
    text = (
        f"Account {name} registered, and you are logged in to it. It is active now: "
        "this server sends no verification email."
    )
    if fps:
        text += " Your TLS client certificate logs in to it too (SASL EXTERNAL)."
    out.add(Message("REGISTER", ("SUCCESS", name, text), core.name))
    svc.log_in(user, account, out)


@command("VERIFY", min_params=2, pre_registration=True)
def verify(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """VERIFY <account> <code>"""
    name = msg.params[0]
    if service_of(core) is None or not core.config.accounts.registration:
        out.standard(
            "FAIL",
            "VERIFY",
            "TEMPORARILY_UNAVAILABLE",
            name,
            text="Account registration is turned off on this server",
        )
    elif user.account is not None:
        out.standard(
            "FAIL",
            "VERIFY",
            "ALREADY_AUTHENTICATED",
            user.account,
            text=f"You are already logged in to the account {user.account}",
        )
    else:
        out.standard(
            "FAIL",
            "VERIFY",
            "INVALID_CODE",
            name,
            text="There is nothing to verify: accounts on this server are active as soon as "
            "REGISTER succeeds (no email is sent)",
        )


# --- CERT ----------------------------------------------------------------------------------------


@command("CERT", min_params=1)
def cert(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """CERT <LIST|ADD|DEL> [<fingerprint>]"""
    sub = msg.params[0].upper()

    def fail(code: str, text: str, *context: str) -> None:
        out.standard("FAIL", "CERT", code, *context, text=text)

    def notice(text: str) -> None:
        out.add(Message("NOTICE", (user.nick, text), core.name))

    svc = service_of(core)
    if svc is None:
        fail("TEMPORARILY_UNAVAILABLE", "This server has no accounts")
        return
    account_name = user.account
    if account_name is None:
        fail("ACCOUNT_REQUIRED", "Log in to your account first")
        return
    if sub not in ("LIST", "ADD", "DEL"):
        fail(
            "UNKNOWN_SUBCOMMAND",
            "Use CERT LIST, CERT ADD [<fingerprint>] or CERT DEL <fingerprint>",
            msg.params[0],
        )
        return
    try:
        account = svc.store.get(account_name)
        if account is None:
            fail("ACCOUNT_REQUIRED", f"The account {account_name} no longer exists")
        elif sub == "LIST":
            if not account.certfps:
                notice(f"The account {account.name} has no client certificates (CERT ADD adds one)")
            for listed in account.certfps:
                notice(f"Client certificate of {account.name}: {listed}")
        else:
            fp = _cert_fingerprint(user, sub, msg.param(1), fail)
            if fp is not None:
                _cert_change(core, svc, account, sub, fp, fail, notice)
    except AccountStoreError as exc:
        log.error("CERT %s for %s: %s", sub, account_name, exc)
        fail("TEMPORARILY_UNAVAILABLE", "The account store is unavailable; try again later")


def _cert_fingerprint(user: User, sub: str, given: str, fail: Callable[..., None]) -> str | None:
    """The fingerprint CERT ADD/DEL is about: the one given, else the connection's own."""
    if given:
        fp = normalize_certfp(given)
        if fp is None:
            fail(
                "INVALID_FINGERPRINT",
                "A fingerprint is the certificate's SHA-256: 64 hex digits (colons allowed)",
                given,
            )
        return fp
    if sub == "DEL":
        fail("NEED_FINGERPRINT", "Name the fingerprint to remove (see CERT LIST)")
        return None
    if user.certfp is None:
        fail(
            "NO_CERTIFICATE",
            "You are not connected with a TLS client certificate; give its fingerprint",
        )
    return user.certfp


def _cert_change(
    core: ServerCore,
    svc: AccountService,
    account: Account,
    sub: str,
    fp: str,
    fail: Callable[..., None],
    notice: Callable[[str], None],
) -> None:
    """CERT ADD or DEL of ``fp`` on ``account``.

    Raises:
        AccountStoreError: the store failed.
    """
    if sub == "DEL":
        if svc.store.remove_certfp(account.name, fp):
            notice(f"Removed client certificate {fp} from the account {account.name}")
        else:
            fail("NOT_FOUND", "That fingerprint is not on your account", fp)
        return
    if len(account.certfps) >= MAX_CERTS and fp not in account.certfps:
        fail("TOO_MANY", f"An account can have at most {MAX_CERTS} client certificates", fp)
        return
    owner = svc.store.add_certfp(account.name, fp, core.now)
    if owner is None:
        notice(
            f"Added client certificate {fp} to the account {account.name}: "
            "SASL EXTERNAL with it logs you in"
        )
    elif irc_lower(owner) == irc_lower(account.name):
        notice(f"The client certificate {fp} is on the account {account.name} already")
    else:
        fail("FINGERPRINT_IN_USE", "That certificate logs in to another account", fp)
