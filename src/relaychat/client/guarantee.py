"""Delivery guarantees, pure: which one holds on a connection, and which lines to write again.

Every line the client sends carries an idempotency key (:data:`IDEM_TAG`, made when the line is
queued: :func:`new_key`). What a drop costs depends on the server (docs/delivery.md):

- ``exactly_once``: the server offers :data:`IDEM_CAP`, and gave this session an identity
  (``IDEM TOKEN``) that it recognised again on this connection. A line written and not
  confirmed is written again with the same key: the server relays it only if it never did.
- ``at_least_once``: lines written and not confirmed are written again; the server may relay
  them twice (receivers built on this library drop the second copy by its key).
- ``at_most_once``: they are never written again, and are reported as maybe delivered.

Rules:
1. The user chooses (``ClientConfig.delivery``); ``auto`` takes ``exactly_once`` when the server
   offers it, else ``at_most_once`` (``at_least_once`` with ``resend_unconfirmed``). Asking for
   ``exactly_once`` from a server that cannot give it is fatal: the client does not quietly send
   under a weaker promise.
2. The guarantee is decided per connection, once registered (:meth:`DeliveryState.decide`); the
   lines waiting to be written again that it cannot cover are given up then, as maybe delivered:
   under ``exactly_once``, those first written longer ago than :data:`WINDOW_MARGIN` of the
   server's window (it may have forgotten their keys), or all of them when the server did not
   recognise our identity.
3. Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterable

from relaychat.client.events import Outgoing

__all__ = [
    "DEFAULT_WINDOW",
    "IDEM_CAP",
    "IDEM_TAG",
    "WINDOW_MARGIN",
    "DeliveryState",
    "new_key",
]

#: The server capability that deduplicates idempotency keys (relaychat's; docs/delivery.md).
IDEM_CAP = "relaychat.dev/idempotency"
#: The client-only tag that carries a line's idempotency key.
IDEM_TAG = "+relaychat.dev/idem"
#: A line first written longer ago than this share of the server's window is not written again
#: under ``exactly_once``: the server may have forgotten its key.
WINDOW_MARGIN = 0.9
#: The window assumed when the server's capability does not say.
DEFAULT_WINDOW = 600.0
#: Why the client refuses to go on when ``exactly_once`` was asked for and is not offered.
NOT_OFFERED = f"the server does not offer exactly-once delivery ({IDEM_CAP})"


def new_key() -> str:
    """A new 128-bit idempotency key: 22 characters of base64url.

    48 bits of milliseconds since the epoch, then 80 random bits. The time comes first so that
    one sender's keys sort in the order they were made: the server's key table (a B-tree by
    sender and key) then fills at its end instead of at random places, which costs a group
    commit several times less (docs/delivery.md). Unique without the time, too: 80 random bits.
    """
    stamp = (time.time_ns() // 1_000_000) & 0xFFFF_FFFF_FFFF
    raw = stamp.to_bytes(6, "big") + secrets.token_bytes(10)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class DeliveryState:
    """One session's delivery guarantee and identity (see the module rules).

    Args:
        mode: ``auto``, ``exactly_once``, ``at_least_once`` or ``at_most_once``.
        resend_unconfirmed: with ``auto``, fall back to ``at_least_once`` rather than
            ``at_most_once``.
        account: the session logs in to an account (SASL), which is then its identity.
    """

    __slots__ = (
        "_answered",
        "_asked",
        "_kept",
        "_written",
        "account",
        "guarantee",
        "mode",
        "resend_unconfirmed",
        "token",
        "window",
    )

    def __init__(self, mode: str, *, resend_unconfirmed: bool, account: bool) -> None:
        self.mode = mode
        self.resend_unconfirmed = resend_unconfirmed
        self.account = account
        #: The guarantee on this (or the last) connection; ``None`` until the first is decided
        #: when it is the server's to decide (``auto``).
        self.guarantee: str | None = None if mode == "auto" else mode
        #: The identity token the server gave, presented again on every connection.
        self.token: str | None = None
        #: The server's deduplication window, in seconds (from its capability's value).
        self.window = DEFAULT_WINDOW
        self._written: dict[int, float] = {}  # id -> first written, while its outcome is unknown
        self._asked = self._answered = self._kept = False

    # --- a connection ----------------------------------------------------------------------

    def connection_made(self) -> None:
        """A new connection: its identity is not known yet."""
        self._asked = self._answered = self._kept = False

    def want(self, offered: dict[str, str]) -> tuple[list[str], str | None]:
        """The capabilities to ask for, from those ``offered``; and a fatal reason, if any."""
        if IDEM_CAP in offered and "message-tags" in offered:
            for item in offered[IDEM_CAP].split(","):
                name, _, value = item.partition("=")
                if name == "window":
                    try:
                        self.window = max(1.0, float(value))
                    except ValueError:
                        pass
            return ([IDEM_CAP] if self.mode in ("auto", "exactly_once") else []), None
        return [], NOT_OFFERED if self.mode == "exactly_once" else None

    def token_request(self) -> tuple[str, ...]:
        """The parameters of the ``IDEM`` command to write before registering."""
        self._asked = True
        return ("TOKEN", self.token) if self.token else ("TOKEN",)

    def token_given(self, token: str) -> None:
        """The server answered ``IDEM TOKEN <token>``: our identity on this connection."""
        if not self._asked:
            return
        self._answered = True
        self._kept = self.token is None or token == self.token or self.account
        self.token = token

    def decide(self, caps: set[str]) -> str | None:
        """Set :attr:`guarantee` for the connection just registered (rule 1).

        Returns:
            ``None``, or why the client must give up (``exactly_once`` is not available).
        """
        if IDEM_CAP in caps and "message-tags" in caps and self._answered:
            self.guarantee = "exactly_once"
        elif self.mode == "exactly_once":
            return NOT_OFFERED
        elif self.mode == "at_least_once" or (self.mode == "auto" and self.resend_unconfirmed):
            self.guarantee = "at_least_once"
        else:
            self.guarantee = "at_most_once"
        return None

    # --- lines -----------------------------------------------------------------------------

    @property
    def resends(self) -> bool:
        """Whether lines unconfirmed at a drop are written again."""
        return self.guarantee in ("exactly_once", "at_least_once")

    def cannot_resend(self, queued: Iterable[Outgoing], now: float) -> tuple[list[int], str]:
        """Of the ``queued`` lines, those written before that this connection cannot write
        again (rule 2), and why."""
        again = [item.id for item in queued if item.id in self._written]
        if not again or self.guarantee == "at_least_once":
            return [], ""
        if self.guarantee == "exactly_once" and self._kept:
            horizon = now - self.window * WINDOW_MARGIN
            old = [i for i in again if self._written[i] < horizon]
            return old, "written before the server's deduplication window; it may have arrived"
        return again, "the server cannot recognise it as sent before; it may have arrived"

    def wrote(self, item: Outgoing, now: float) -> bool:
        """``item`` is being written; returns whether this is a repeat the server will not
        recognise (it may arrive twice)."""
        if item.id in self._written:
            return self.guarantee != "exactly_once"
        self._written[item.id] = now
        return False

    def settled(self, items: Iterable[Outgoing]) -> None:
        """These lines have their outcome: they are never written again."""
        for item in items:
            self._written.pop(item.id, None)
