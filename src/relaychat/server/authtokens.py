"""Short-lived tokens a logged-in IRC session gets for an external service (IRCv3
``draft/authtoken``): ``TOKEN GENERATE FILEHOST`` gives one that ``POST /upload`` takes as
``Authorization: Bearer <token>``, so a client (the web client, ``relaychat chat``) uploads
without sending its password again.

Rules:
1. Pure and clock-injected: no sockets, no time reads; the TOKEN command (``commands/token.py``)
   and the HTTP edge (``web/uploads.py``) call in with ``now``.
2. A token is 32 random bytes (URL-safe base64, 43 characters); only its SHA-256 is kept, so a
   memory dump shows no usable token and a lookup is a dict lookup on a digest.
3. A token is good for one use (:meth:`AuthTokens.take` removes it) and for ``ttl`` seconds;
   it names the account, the service and the URL it was made for, and is refused for another.
4. Bounded: each account holds at most ``per_account`` live tokens (making one more forgets its
   oldest) and the table at most ``max_tokens`` (then the oldest token of all goes); expired
   tokens are swept by :meth:`AuthTokens.sweep` (the core's tick).
5. Services are registered by the optional part that serves them (uploads register
   ``FILEHOST``); without any, ``TOKEN GENERATE`` answers ``UNKNOWN_SERVICE``.
"""

from __future__ import annotations

import hashlib
import secrets
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relaychat.protocol.casemap import irc_lower

if TYPE_CHECKING:
    from relaychat.server.core import ServerCore
    from relaychat.server.state import User

__all__ = ["AuthTokens", "Grant", "Service", "attach_tokens", "tokens_of"]

#: Live tokens one account may hold.
PER_ACCOUNT = 8
#: Live tokens in all.
MAX_TOKENS = 100_000


@dataclass(frozen=True, slots=True)
class Service:
    """An external service tokens are made for.

    Attributes:
        key: its service key, upper case (``FILEHOST``).
        description: one line for ``TOKEN SERVICELIST``.
        url_for: the service's URL as ``user`` should use it (it may depend on the address the
            user reached the server at), or ``None`` when the service is not offered to it.
    """

    key: str
    description: str
    url_for: Callable[[User], str | None]


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid token stands for.

    Attributes:
        account: the account it was made for.
        nick: the nick of the session that asked for it.
        service: its service key.
        url: the service URL it was made for.
        expires: when it stops being valid (the clock of ``now``).
    """

    account: str
    nick: str
    service: str
    url: str
    expires: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class AuthTokens:
    """The live tokens of one server (rules 2-4).

    Args:
        ttl: seconds a token stays valid.
        per_account: live tokens one account may hold.
        max_tokens: live tokens in all.
    """

    def __init__(
        self, *, ttl: float, per_account: int = PER_ACCOUNT, max_tokens: int = MAX_TOKENS
    ) -> None:
        self.ttl = ttl
        self.per_account = per_account
        self.max_tokens = max_tokens
        self.services: dict[str, Service] = {}
        self._grants: OrderedDict[str, Grant] = OrderedDict()  # digest -> grant, oldest first
        self._by_account: dict[str, deque[str]] = {}  # folded account -> digests, oldest first

    def __len__(self) -> int:
        return len(self._grants)

    def add_service(self, service: Service) -> None:
        """Offer tokens for ``service`` (rule 5)."""
        self.services[service.key.upper()] = service

    def issue(self, account: str, nick: str, service: str, url: str, now: float) -> str:
        """A new token for ``account`` to use once at ``service``'s ``url`` within ``ttl``.

        Returns:
            The token; only its digest is kept (rule 2).
        """
        token = secrets.token_urlsafe(32)
        digest = _digest(token)
        key = irc_lower(account)
        mine = self._by_account.setdefault(key, deque())
        while len(mine) >= self.per_account:
            self._grants.pop(mine.popleft(), None)
        while len(self._grants) >= self.max_tokens:
            old, grant = self._grants.popitem(last=False)
            self._forget(irc_lower(grant.account), old)
        grant = Grant(account, nick, service.upper(), url, now + self.ttl)
        self._grants[digest] = grant
        mine.append(digest)
        return token

    def take(self, token: str, now: float, *, service: str, url: str | None = None) -> Grant | None:
        """Use ``token`` up (rule 3).

        Args:
            token: as the client gave it.
            now: the time.
            service: the service it is presented to; a token made for another is refused.
            url: the URL it must have been made for (``TOKEN VALIDATE``); ``None``: any.

        Returns:
            What it stands for, or ``None`` when it is unknown, used, expired or for another
            service or URL (it is used up in every case but unknown).
        """
        digest = _digest(token)
        grant = self._grants.pop(digest, None)
        if grant is None:
            return None
        self._forget(irc_lower(grant.account), digest)
        if grant.expires <= now or grant.service != service.upper():
            return None
        if url is not None and url != grant.url:
            return None
        return grant

    def sweep(self, now: float) -> None:
        """Forget expired tokens (the core's tick hook).

        Tokens are kept in the order they were made, all with the same ``ttl``, so the expired
        ones are at the front: the cost is the number swept.
        """
        grants = self._grants
        while grants:
            digest, grant = next(iter(grants.items()))
            if grant.expires > now:
                break
            del grants[digest]
            self._forget(irc_lower(grant.account), digest)

    def _forget(self, key: str, digest: str) -> None:
        mine = self._by_account.get(key)
        if mine is None:
            return
        try:
            mine.remove(digest)
        except ValueError:
            pass
        if not mine:
            del self._by_account[key]


_TOKENS: weakref.WeakKeyDictionary[ServerCore, AuthTokens] = weakref.WeakKeyDictionary()


def tokens_of(core: ServerCore) -> AuthTokens | None:
    """The tokens of ``core``, or ``None`` when no service offers any."""
    return _TOKENS.get(core)


def attach_tokens(core: ServerCore, *, ttl: float) -> AuthTokens:
    """The tokens of ``core``, made (and swept on its tick) when first asked for."""
    tokens = _TOKENS.get(core)
    if tokens is None:
        tokens = _TOKENS[core] = AuthTokens(ttl=ttl)
        core.tick_hooks.append(tokens.sweep)
    return tokens
