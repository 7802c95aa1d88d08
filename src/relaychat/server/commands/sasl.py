"""SASL: AUTHENTICATE (https://ircv3.net/specs/extensions/sasl-3.1 and sasl-3.2).

Mechanisms: PLAIN (RFC 4616), SCRAM-SHA-256 (RFC 5802, RFC 7677) and EXTERNAL (RFC 4422
appendix A) with the TLS client certificate's fingerprint. Changing accounts is not supported: a
logged-in client gets 907.

Defences (``docs/security.md``):
- An unknown account and a wrong password get the same 904, after the same work (an argon2
  check against nothing for PLAIN, decoy SCRAM credentials for SCRAM), and count the same.
- Failed logins are counted per address group, per account name from that group, and per
  account name in all (``core.throttles``); past ``throttle.login_failures`` /
  ``throttle.account_failures`` / ``throttle.account_failures_total`` the next attempts get 904
  with the seconds to wait, without any argon2 work, after a tarpit of ``throttle.tarpit``
  seconds (so a client cannot cycle through refusals). Five failures on one connection close it.
- 905 is for one chunk over 400 bytes; a response whose chunks add up to more than the limit is
  a failed exchange, 904.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from relaychat.accounts.sasl import (
    MECHANISMS,
    SaslDataError,
    SaslTooLong,
    encode_chunks,
    parse_plain,
)
from relaychat.accounts.scram import ScramCredentials, ScramError, ScramServer, decoy_credentials
from relaychat.accounts.store import Account, AccountStoreError
from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.accounts import (
    LOGIN_FAILED,
    AccountService,
    SaslSession,
    locked_out,
    service_of,
)
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.state import User
from relaychat.server.throttle import retry_text

__all__ = ["MAX_SASL_FAILURES"]

log = logging.getLogger("relaychat.accounts")

#: Failed SASL attempts after which the connection is closed (sasl-3.2 allows it).
MAX_SASL_FAILURES = 5
#: Decoy SCRAM credentials are derived from this (per process; see ``decoy_credentials``).
_DECOY_SECRET = secrets.token_bytes(32)


def _show(text: str, limit: int = 64) -> str:
    """Client input quoted in a reply's text, cut so the line stays short."""
    return text if len(text) <= limit else text[:limit] + "..."


@command("AUTHENTICATE", min_params=1, pre_registration=True)
def authenticate(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """AUTHENTICATE <mechanism> | <base64 chunk> | + | *

    Log in to an account with SASL (PLAIN, SCRAM-SHA-256, EXTERNAL); * aborts.
    """
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


def _locked(
    core: ServerCore, svc: AccountService, user: User, name: str | None, out: Replies
) -> bool:
    """When a login from ``user`` to ``name`` (folded) is locked out: fail it, after the tarpit
    (``core.tarpit``), and return ``True``."""
    wait = locked_out(core, user, name)
    if wait <= 0:
        return False

    def refuse(replies: Replies) -> None:
        left = core.throttles.login_wait(user.ip_group, name, core.now)
        _fail(core, svc, user, replies, f"too many failed logins; {retry_text(left)}")

    svc.state(user).sasl = None
    core.tarpit(user, out, wait, refuse)
    return True


def _succeed(svc: AccountService, user: User, account: Account, out: Replies) -> None:
    svc.state(user).sasl = None
    svc.log_in(user, account, out)
    out.numeric(N.RPL_SASLSUCCESS)


def _verified(
    core: ServerCore, svc: AccountService, user: User, account: Account, out: Replies
) -> bool:
    """Whether ``account`` may log in (its e-mail is verified, when that was asked)."""
    if account.verify_hash is None:
        return True
    _fail(
        core,
        svc,
        user,
        out,
        f"the account {account.name} is not verified yet: send VERIFY {account.name} <code>",
    )
    return False


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
    name = irc_lower(authcid)
    if _locked(core, svc, user, name, out):
        return
    try:
        account = svc.store.get(authcid)
    except AccountStoreError as exc:
        log.error("SASL login for %s: %s", authcid, exc)
        _fail(core, svc, user, out, "the account store is unavailable")
        return
    svc.state(user).sasl = None

    def then(ok: bool | None, replies: Replies) -> None:
        if ok and account is not None:
            if _verified(core, svc, user, account, replies):
                _succeed(svc, user, account, replies)
        elif ok is None and account is not None:
            _fail(core, svc, user, replies, "internal error while checking the password")
        else:
            core.throttles.login_failed(user.ip_group, name, core.now)
            _fail(core, svc, user, replies, LOGIN_FAILED)

    def busy(replies: Replies) -> None:
        _fail(core, svc, user, replies, svc.busy_text())

    svc.run(user, out, svc.check_password(user, account, password), then, account=name, busy=busy)


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
    if _authzid_ok(core, svc, user, out, authzid, account.name) and _verified(
        core, svc, user, account, out
    ):
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
        folded = irc_lower(name)
        session.name = folded
        if locked_out(core, user, folded) > 0:
            raise _LockedOut(folded)
        try:
            account = svc.store.get(name)
        except AccountStoreError as exc:
            log.error("SASL SCRAM-SHA-256 for %s: %s", name, exc)
            raise ScramError("the account store is unavailable") from None
        session.account = account
        if account is None:  # an exchange like any other, failing at the proof
            return decoy_credentials(folded, _DECOY_SECRET)
        return account.scram

    try:
        if session.step == 1:
            session.scram = ScramServer(lookup)
            reply = session.scram.receive_first(data)
        elif session.step == 2 and session.scram is not None:
            try:
                reply = session.scram.receive_final(data)
            except ScramError as exc:
                if exc.reason != "wrong password":
                    raise
                core.throttles.login_failed(user.ip_group, session.name, core.now)
                raise ScramError(LOGIN_FAILED) from None
            if session.account is None:  # a decoy cannot be proven; never reached in practice
                raise ScramError(LOGIN_FAILED)
        else:
            # The server-final-message went as a challenge (IRC SASL has no "additional data
            # with success", RFC 4422 §5); the client answers it with an empty response.
            if data:
                _fail(core, svc, user, out, "expected an empty response after the server's proof")
                return
            assert session.account is not None
            if _verified(core, svc, user, session.account, out):
                _succeed(svc, user, session.account, out)
            return
    except _LockedOut as exc:
        _locked(core, svc, user, exc.name, out)
        return
    except ScramError as exc:
        _fail(core, svc, user, out, exc.reason)
        return
    for chunk in encode_chunks(reply):
        out.add(Message("AUTHENTICATE", (chunk,)))


class _LockedOut(ScramError):
    """The SCRAM user name is locked out (raised from the lookup, answered after the tarpit)."""

    def __init__(self, name: str) -> None:
        super().__init__("locked out")
        self.name = name


_STEPS: dict[
    str, Callable[[ServerCore, AccountService, User, SaslSession, bytes, Replies], None]
] = {"PLAIN": _plain, "EXTERNAL": _external, "SCRAM-SHA-256": _scram}
