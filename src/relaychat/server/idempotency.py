"""Exactly-once relaying, pure: idempotency keys, sender identities and their tokens.

A client that negotiated :data:`CAP` tags each PRIVMSG, NOTICE or TAGMSG with a random key
(client-only tag :data:`TAG`). The server remembers ``(sender, key)`` for ``window`` seconds; a
message whose key it already relayed is not relayed again: the sender gets the first answer
again (its echo, same msgid, same time), so it can tell "arrived" from "lost" after any drop.

Rules:
1. The sender is an identity, not a nick or a connection: ``a:<account>`` when logged in, else
   ``t:<id>`` where ``<id>`` comes from a token the server issued (``IDEM TOKEN``,
   ``commands/idempotency.py``) and the client presents again after a reconnect. A token is
   ``<id>.<mac>``: 128 random bits and their HMAC-SHA256 under the store's secret, so a client
   cannot make up another's identity, and a token from another server (or from before the
   history was wiped) is refused. A connection with neither gets an identity of its own.
2. :class:`KeyIndex` keeps the recent keys in memory, at most ``max_keys``, oldest forgotten
   first, and forgets keys older than the window. The store (``store/keys.py``) is the source of
   truth: the index is filled from it at start, and asked on a miss whenever the index may be
   missing a key of the window (after it had to forget one early).
3. A key and the messages it relayed go to the store in one call, so one group commit covers
   both (``store/keys.py`` rule 1), and the answer to a repeat waits for that commit like any
   relayed bytes.
4. Nothing here touches a socket or reads the clock: ``now`` is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Sequence

from relaychat.server.state import User
from relaychat.store.base import StoredMessage
from relaychat.store.keys import KeyRecord, KeyStore

__all__ = ["CAP", "MAX_KEY_LEN", "TAG", "KeyIndex", "sender_of", "valid_key"]

#: The capability; its value is ``window=<seconds>,keylen=<most characters of a key>``.
CAP = "relaychat.dev/idempotency"
#: The client-only tag carrying a message's key.
TAG = "+relaychat.dev/idem"
#: The longest key accepted (a random 128-bit key is 22 characters of base64url).
MAX_KEY_LEN = 64
_KEY = re.compile(r"[A-Za-z0-9_-]{1,%d}\Z" % MAX_KEY_LEN)
_ID_BYTES = 16
_MAC_BYTES = 16

log = logging.getLogger("relaychat.server")


def valid_key(key: str) -> bool:
    """Whether ``key`` is 1 to :data:`MAX_KEY_LEN` characters of ``A-Z a-z 0-9 - _``."""
    return _KEY.match(key) is not None


def sender_of(user: User) -> str:
    """``user``'s identity for its keys (rule 1): its account, its token's, or its own."""
    if user.account is not None:
        return f"a:{user.account}"
    if user.idem_id is None:
        user.idem_id = f"c:{_b64(secrets.token_bytes(_ID_BYTES))}"
    return user.idem_id


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class KeyIndex:
    """The server's memory of recent keys, backed by a :class:`KeyStore` (see the rules).

    Args:
        store: where records are kept (the history store).
        window: seconds a key is remembered.
        max_keys: the most keys held in memory.
        now: the current time (keys of the last ``window`` are loaded from the store).
    """

    __slots__ = (
        "_gap_until",
        "_index",
        "_secret",
        "max_keys",
        "repeats",
        "store",
        "window",
        "with_history",
    )

    def __init__(self, store: KeyStore, *, window: float, max_keys: int, now: float) -> None:
        self.store = store
        #: Whether ``store`` is the history store too: the messages a key relayed are then
        #: handed to it with the key, in one step (rule 3). A cluster keeps keys apart
        #: (``cluster/idem.py``): its messages go to history on their own.
        self.with_history = True
        self.window = window
        self.max_keys = max_keys
        self._secret = store.key_secret()
        #: ``"sender key"`` -> time relayed, oldest first.
        self._index: OrderedDict[str, float] = OrderedDict()
        #: The newest time of a key in the store that the index may not hold.
        self._gap_until = float("-inf")
        #: How many repeats were answered (not relayed again) since start.
        self.repeats = 0
        recent = store.recent_keys(now - window, max_keys + 1)
        if len(recent) > max_keys:
            self._gap_until = recent[max_keys][2]
            recent = recent[:max_keys]
        for sender, key, at in reversed(recent):
            self._index[f"{sender} {key}"] = at

    @property
    def cap_value(self) -> str:
        """The capability's CAP LS 302 value."""
        return f"window={self.window:g},keylen={MAX_KEY_LEN}"

    def __len__(self) -> int:
        return len(self._index)

    # --- identities ------------------------------------------------------------------------

    def issue(self) -> tuple[str, str]:
        """A new identity: returns ``(sender, token)``."""
        ident = _b64(secrets.token_bytes(_ID_BYTES))
        return f"t:{ident}", f"{ident}.{self._mac(ident)}"

    def redeem(self, token: str) -> str | None:
        """The sender a token stands for, or ``None`` when this server did not issue it."""
        ident, dot, mac = token.partition(".")
        if not dot or len(ident) > 64 or not hmac.compare_digest(mac, self._mac(ident)):
            return None
        return f"t:{ident}"

    def _mac(self, ident: str) -> str:
        digest = hmac.new(self._secret, ident.encode("ascii", "replace"), hashlib.sha256)
        return _b64(digest.digest()[:_MAC_BYTES])

    # --- keys --------------------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        index, cutoff = self._index, now - self.window
        while index and next(iter(index.values())) < cutoff:
            index.popitem(last=False)

    def lookup(self, sender: str, key: str, now: float) -> KeyRecord | None:
        """The record of ``(sender, key)`` if it was relayed within the window, else ``None``."""
        since = now - self.window
        at = self._index.get(f"{sender} {key}")
        if (at is not None and at >= since) or (at is None and self._gap_until >= since):
            found = self.store.recall_key(sender, key, since)
            if found is not None:
                self.repeats += 1
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("repeat of key %s from %s not relayed again", key, sender)
            return found
        return None

    def learn(self, record: KeyRecord, now: float) -> None:
        """Note ``record``, which the store holds already (another server of a cluster relayed
        it: ``cluster/idem.py``), so that :meth:`lookup` asks the store for it."""
        self._note(f"{record.sender} {record.key}", record.time, now)

    def record(self, record: KeyRecord, messages: Sequence[StoredMessage], now: float) -> None:
        """Remember ``record``; hand it to the store with the ``messages`` it relayed."""
        self.store.append_keyed(record, messages)
        self._note(f"{record.sender} {record.key}", record.time, now)

    def _note(self, entry: str, at: float, now: float) -> None:
        index = self._index
        index.pop(entry, None)
        index[entry] = at
        self._expire(now)
        while len(index) > self.max_keys:
            _, dropped = index.popitem(last=False)
            self._gap_until = max(self._gap_until, dropped)
