"""Who is uploading: ``Authorization: Basic`` (account and password) or ``Bearer`` (a token from
``TOKEN GENERATE FILEHOST``, ``server/authtokens.py``).

Rules:
1. A password is checked by the accounts' worker (argon2 runs in a thread, never on the event
   loop), exactly as a SASL PLAIN login is; an unknown account costs the same argon2 work as a
   wrong password and gets the same answer, so the answer does not tell which accounts exist.
2. Failures (a wrong password, an unknown or used token) are the server's failed logins
   (``server/throttle.py``, the ``[throttle]`` section): the same tables and keys as SASL, so
   failures here and over IRC add up. Per address group (``throttle.login_failures``), and for
   a password also per account from that group and per account from everywhere
   (``throttle.account_failures``, ``throttle.account_failures_total``); a locked-out address
   (or account) is refused (429 with ``Retry-After``) without a password being checked. A
   success forgets the account's failures from that address, as a SASL login does.
3. Every refusal is a :class:`~relaychat.web.http.Response` with one line saying why: 401 with
   ``WWW-Authenticate`` (Basic and Bearer challenges when nothing usable was sent; the one of
   the scheme used otherwise, so a browser's ``fetch`` with a bad token does not pop up a
   password dialog), 429 when locked out, 503 when the worker is busy or accounts are off.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass

from relaychat.accounts.store import AccountStoreError
from relaychat.passwords import verify_nothing, verify_password
from relaychat.protocol.casemap import irc_lower
from relaychat.server.accounts import service_of
from relaychat.server.authtokens import tokens_of
from relaychat.server.core import ServerCore
from relaychat.server.throttle import seconds
from relaychat.web.http import Response

__all__ = ["Identity", "UploadAuth"]

log = logging.getLogger("relaychat.web")

REALM = "relaychat uploads"
_BASIC = ("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
_BEARER = ("WWW-Authenticate", f'Bearer realm="{REALM}"')
_BEARER_BAD = ("WWW-Authenticate", f'Bearer realm="{REALM}", error="invalid_token"')


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated uploader.

    Attributes:
        account: the account, as it is spelled.
    """

    account: str


class UploadAuth:
    """Checks the ``Authorization`` of uploads for one server.

    Args:
        core: the server's core (its account service and tokens).
        clock: the time (for the lock-outs and the tokens' expiry).
    """

    def __init__(self, core: ServerCore, clock: Callable[[], float]) -> None:
        self.core = core
        self.clock = clock

    def _locked(self, group: str, account: str | None, now: float) -> Response | None:
        """The 429 for a login from ``group`` (to ``account``, folded) while it is locked out."""
        wait = self.core.throttles.login_wait(group, account, now)
        if wait <= 0:
            return None
        self.core.ratelog.info(
            "upload login refused: locked out",
            "upload login from %s refused: too many failed logins (%d s to wait)",
            group,
            seconds(wait),
            now=now,
        )
        return Response.text(
            429,
            f"Too many failed logins from your address; try again in {seconds(wait)} seconds",
            headers=(("Retry-After", str(seconds(wait))),),
        )

    async def authenticate(self, header: str | None, ip: str) -> Identity | Response:
        """The account ``header`` proves, or the refusal to send (rule 3)."""
        now = self.clock()
        group = self.core.throttles.group(ip)
        locked = self._locked(group, None, now)
        if locked is not None:
            return locked
        scheme, _, credentials = (header or "").strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer" and credentials:
            return self._token(credentials, group, now)
        if scheme == "basic" and credentials:
            return await self._password(credentials, group, now)
        return Response.text(
            401,
            "Log in to upload: HTTP Basic with your account and password, or "
            "Bearer with a token from TOKEN GENERATE FILEHOST",
            headers=(_BASIC, _BEARER),
        )

    def _token(self, token: str, group: str, now: float) -> Identity | Response:
        tokens = tokens_of(self.core)
        grant = tokens.take(token, now, service="FILEHOST") if tokens is not None else None
        if grant is None:
            self.core.throttles.login_failed(group, None, now)
            return Response.text(
                401,
                "The token is unknown, used or expired; get a new one with TOKEN GENERATE FILEHOST",
                headers=(_BEARER_BAD,),
            )
        self.core.throttles.login_succeeded(group, irc_lower(grant.account))
        return Identity(grant.account)

    async def _password(self, credentials: str, group: str, now: float) -> Identity | Response:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return Response.text(
                401, "Malformed Basic credentials (base64 of account:password)", headers=(_BASIC,)
            )
        name, sep, password = decoded.partition(":")
        if not sep or not name or not password:
            return Response.text(
                401, "Basic credentials must be account:password", headers=(_BASIC,)
            )
        svc = service_of(self.core)
        if svc is None:
            return Response.text(503, "Accounts are not available on this server")
        folded = irc_lower(name)
        locked = self._locked(group, folded, now)
        if locked is not None:
            return locked
        try:
            account = svc.store.get(name)
        except AccountStoreError as exc:
            log.error("upload login for %s: %s", name, exc)
            return Response.text(503, "The account store is unavailable; try again later")
        hashed = account.password_hash if account is not None else None

        def job() -> bool:
            if hashed is None:
                return verify_nothing(password)  # as long as a wrong password (rule 1)
            return verify_password(hashed, password)

        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()

        def done(ok: bool | None, now: float) -> None:
            if not answer.done():
                answer.set_result(bool(ok))

        if not svc.worker.submit(job, done):
            return Response.text(
                503,
                "The server is busy checking passwords; try again in a moment",
                headers=(("Retry-After", "1"),),
            )
        ok = await answer
        now = self.clock()
        if not ok or account is None:
            self.core.throttles.login_failed(group, folded, now)
            return Response.text(401, "Wrong account name or password", headers=(_BASIC,))
        self.core.throttles.login_succeeded(group, folded)
        return Identity(account.name)
