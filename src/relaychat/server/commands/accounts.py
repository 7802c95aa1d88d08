"""Accounts: REGISTER and VERIFY, CERT (AUTHENTICATE is in ``commands/sasl.py``).

- REGISTER / VERIFY: https://ircv3.net/specs/extensions/account-registration. Without
  ``accounts.email_verification`` an account is active as soon as REGISTER succeeds and the
  client is logged in to it. With it, REGISTER needs an e-mail address, runs
  ``accounts.mail_command`` to send a code (``accounts/verification.py``) and answers
  ``REGISTER VERIFICATION_REQUIRED``; ``VERIFY <account> <code>`` activates the account and logs
  in. Verification asked for with no mail command configured is refused (``FAIL REGISTER
  TEMPORARILY_UNAVAILABLE``), never silently skipped.
- Registration is rate-limited per address group and for the whole server
  (``throttle.register_*``); wrong VERIFY codes count as failed logins.
- CERT LIST | ADD [<fingerprint>] | DEL <fingerprint>: relaychat's own, to choose which TLS
  client certificates log in to your account with SASL EXTERNAL. REGISTER from a connection with
  a client certificate adds it at once.

The state of each connection and the store are the
:class:`~relaychat.server.accounts.AccountService`'s; handlers here only speak the protocol.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from relaychat.accounts.scram import ScramCredentials, ScramError, derive_credentials
from relaychat.accounts.store import Account, AccountStoreError, normalize_certfp
from relaychat.accounts.verification import (
    MailError,
    code_hash,
    code_matches,
    new_code,
    send_code,
)
from relaychat.passwords import hash_password
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.accounts import AccountService, locked_out, service_of
from relaychat.server.commands.registration import valid_nick
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.state import User
from relaychat.server.throttle import retry_text, seconds

__all__ = ["MAX_CERTS", "MAX_PASSWORD_BYTES"]

log = logging.getLogger("relaychat.accounts")

#: The longest password, in UTF-8 bytes (the account-registration spec's advice).
MAX_PASSWORD_BYTES = 300
#: The most certificate fingerprints one account may have.
MAX_CERTS = 10
_EMAIL_RE = re.compile(r"[^@\s-][^@\s]*@[^@\s]+\.[^@\s]+\Z")


def _show(text: str, limit: int = 64) -> str:
    """Client input quoted in a reply's text, cut so the line stays short."""
    return text if len(text) <= limit else text[:limit] + "..."


# --- REGISTER / VERIFY ---------------------------------------------------------------------------


@command("REGISTER", min_params=3, pre_registration=True)
def register(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """REGISTER <account> <email|*> <password>

    Create an account (* for the account: your nick); see VERIFY.
    """
    raw, email, password = msg.params[0], msg.params[1], msg.params[2]

    def fail(code: str, text: str, context: str = raw) -> None:
        out.standard("FAIL", "REGISTER", code, context, text=text)

    svc = service_of(core)
    cfg = core.config.accounts
    if svc is None or not cfg.registration:
        fail("TEMPORARILY_UNAVAILABLE", "Account registration is turned off on this server")
        return
    if not user.registered and not svc.before_connect():
        why = "with the server password" if core.config.password else "first"
        out.standard(
            "FAIL",
            "REGISTER",
            "COMPLETE_CONNECTION_REQUIRED",
            text=f"Finish connecting ({why}) before you register an account",
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
        # "*" is the current nick; a client whose NICK was refused (in use: perhaps by the
        # account's owner) is answered about the nick it asked for (issue 11, fix 11).
        name = user.nick if user.nick != "*" else user.wanted_nick
        if not name:
            fail("NEED_NICK", "Send NICK first, or give the account name instead of *", "*")
            return
    error = _check_registration(core, svc, user, name, email, password)
    if error is None and user.nick == "*" and raw == "*":
        error = ("NEED_NICK", f"Your nick {name} was not set; send NICK again first")
    if error is not None:
        fail(error[0], error[1], name)
        return
    if cfg.email_verification:
        if not cfg.mail_command:
            fail(
                "TEMPORARILY_UNAVAILABLE",
                "Accounts here need a verified e-mail address, and this server cannot send "
                "e-mail now (no mail command is configured); ask its operator",
                name,
            )
            return
        if email == "*":
            fail(
                "INVALID_EMAIL",
                "Give your e-mail address: a code to verify it will be sent there",
                name,
            )
            return
    wait = core.throttles.register_wait(user.ip_group, core.now)
    if wait > 0:
        core.ratelog.info(
            "registration refused: rate limit",
            "REGISTER from %s refused: too many registrations (%d s to wait)",
            user.ip_group,
            seconds(wait),
            now=core.now,
        )
        fail(
            "TEMPORARILY_UNAVAILABLE",
            f"Too many accounts were registered just now; try again in {seconds(wait)} seconds",
            name,
        )
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

    def busy(replies: Replies) -> None:
        text = svc.busy_text().capitalize()
        replies.standard("FAIL", "REGISTER", "TEMPORARILY_UNAVAILABLE", name, text=text)

    svc.run(user, out, job, then, account=irc_lower(name), busy=busy)


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
    shortest = core.config.accounts.min_password_length
    if len(password) < shortest:
        return "WEAK_PASSWORD", f"A password needs at least {shortest} characters"
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
    """The completion of REGISTER, once the password is hashed: store, then log in (or send
    the verification code)."""

    def fail(code: str, text: str) -> None:
        out.standard("FAIL", "REGISTER", code, name, text=text)

    if result is None:
        fail("TEMPORARILY_UNAVAILABLE", "Internal error while hashing the password")
        return
    if isinstance(result, ScramError):
        fail("UNACCEPTABLE_PASSWORD", f"This password cannot be used: {result.reason}")
        return
    password_hash, creds = result
    verify = core.config.accounts.email_verification
    code = new_code() if verify else None
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
            verify_hash=None if code is None else code_hash(code),
            confirmed=False,
        )
        created = svc.store.create(account)
    except AccountStoreError as exc:
        log.error("REGISTER %s: %s", name, exc)
        fail("TEMPORARILY_UNAVAILABLE", "The account could not be saved; try again later")
        return
    if not created:
        fail("ACCOUNT_EXISTS", f"The account {name} was registered by someone else just now")
        return
    svc.state(user).registered = irc_lower(name)
    log.info("connection #%d (%s) registered the account %s", user.id, user.nick, name)
    if code is not None:
        _send_code(core, svc, user, account, code, out)
        return
    text = (
        f"Account {name} registered, and you are logged in to it. It is active now: "
        "this server sends no verification email."
    )
    if fps:
        text += " Your TLS client certificate logs in to it too (SASL EXTERNAL)."
    out.add(Message("REGISTER", ("SUCCESS", name, text), core.name))
    svc.log_in(user, account, out)


def _send_code(
    core: ServerCore, svc: AccountService, user: User, account: Account, code: str, out: Replies
) -> None:
    """Run the mail command for a new account's code; answer VERIFICATION_REQUIRED, or undo."""
    command = core.config.accounts.mail_command
    email = account.email or ""
    name = account.name

    def job() -> str:
        try:
            send_code(command, email=email, account=name, code=code)
        except MailError as exc:
            return exc.reason
        return ""

    def then(error: str | None, replies: Replies) -> None:
        if error == "":
            text = (
                f"A code was sent to {email}; send VERIFY {name} <code> to activate the "
                "account (from this or another connection)"
            )
            replies.add(Message("REGISTER", ("VERIFICATION_REQUIRED", name, text), core.name))
            return
        log.error("REGISTER %s: the verification e-mail was not sent: %s", name, error)
        _undo(svc, name)
        replies.standard(
            "FAIL",
            "REGISTER",
            "TEMPORARILY_UNAVAILABLE",
            name,
            text="The verification e-mail could not be sent; try again later",
        )

    def busy(replies: Replies) -> None:
        _undo(svc, name)
        text = svc.busy_text().capitalize()
        replies.standard("FAIL", "REGISTER", "TEMPORARILY_UNAVAILABLE", name, text=text)

    svc.run(user, out, job, then, busy=busy)


def _undo(svc: AccountService, name: str) -> None:
    try:
        svc.store.delete(name)
    except AccountStoreError as exc:
        log.error("REGISTER %s: could not undo: %s", name, exc)


@command("VERIFY", min_params=2, pre_registration=True)
def verify(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """VERIFY <account> <code>

    Confirm a new account with the code REGISTER sent to its e-mail address.
    """
    name, code = msg.params[0], msg.params[1]

    def fail(reason: str, text: str, context: str = name) -> None:
        out.standard("FAIL", "VERIFY", reason, context, text=text)

    svc = service_of(core)
    if svc is None or not core.config.accounts.registration:
        fail("TEMPORARILY_UNAVAILABLE", "Account registration is turned off on this server")
        return
    if not user.registered and not svc.before_connect():
        out.standard(
            "FAIL",
            "VERIFY",
            "COMPLETE_CONNECTION_REQUIRED",
            text="Finish connecting before you verify an account",
        )
        return
    if user.account is not None:
        fail(
            "ALREADY_AUTHENTICATED",
            f"You are already logged in to the account {user.account}",
            user.account,
        )
        return
    if not core.config.accounts.email_verification:
        fail(
            "INVALID_CODE",
            "There is nothing to verify: accounts on this server are active as soon as "
            "REGISTER succeeds (no email is sent)",
        )
        return
    folded = irc_lower(name)
    wait = locked_out(core, user, folded)
    if wait > 0:

        def refuse(replies: Replies) -> None:
            left = core.throttles.login_wait(user.ip_group, folded, core.now)
            replies.standard(
                "FAIL",
                "VERIFY",
                "TEMPORARILY_UNAVAILABLE",
                name,
                text=f"Too many wrong codes; {retry_text(left)}",
            )

        core.tarpit(user, out, wait, refuse)
        return
    try:
        account = svc.store.get(name)
    except AccountStoreError as exc:
        log.error("VERIFY %s: %s", name, exc)
        fail("TEMPORARILY_UNAVAILABLE", "The account store is unavailable; try again later")
        return
    expiry = core.config.accounts.unconfirmed_expiry_days * 86400
    if (
        account is None
        or account.verify_hash is None
        or not code_matches(account.verify_hash, code)
        or (expiry and account.created < core.now - expiry)
    ):
        core.throttles.login_failed(user.ip_group, folded, core.now)
        fail("INVALID_CODE", "That code is wrong or has expired (or the account is verified)")
        return
    try:
        svc.store.mark_verified(account.name)
    except AccountStoreError as exc:
        log.error("VERIFY %s: %s", name, exc)
        fail("TEMPORARILY_UNAVAILABLE", "The account store is unavailable; try again later")
        return
    text = f"Account {account.name} is verified, and you are logged in to it"
    out.add(Message("VERIFY", ("SUCCESS", account.name, text), core.name))
    svc.log_in(user, account, out)


# --- CERT ----------------------------------------------------------------------------------------


@command("CERT", min_params=1)
def cert(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """CERT <LIST|ADD|DEL> [<fingerprint>]

    List, add or remove the TLS client certificates that log in to your account.
    """
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
