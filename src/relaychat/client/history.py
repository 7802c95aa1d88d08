"""Resume after a reconnect, pure: remember the last message seen per target, fetch what was
missed with IRCv3 ``CHATHISTORY AFTER``, and let each message through exactly once.

Spec: https://ircv3.net/specs/extensions/chathistory (capability ``draft/chathistory``; replies
come in a ``chathistory`` batch whose messages carry ``msgid`` and ``time`` tags).

Rules:
- Every message id seen (live or fetched) is remembered, up to ``max_seen`` (oldest forgotten
  first); a message whose id was seen is a duplicate and is not delivered again.
- So is every idempotency key seen (the ``+relaychat.dev/idem`` tag), per channel (or for
  private messages), up to ``max_seen``: a sender that wrote a message again after a drop, to a
  server that does not deduplicate, gives it a new msgid but the same key.
- Resuming a target asks for the messages after the last id seen there, or after the last
  server time seen on the connection when no id is known; with neither, nothing is asked.
- While a target is being resumed, its live messages are held back, and let through after the
  fetched ones, so that a reader sees each conversation in order (a message relayed between
  the JOIN and the CHATHISTORY comes live *and* in the batch: it is delivered once, in place).
- A full page (``limit`` messages) asks for the next page, at most ``max_pages`` times.
- A backlog (the last messages of a channel joined for the first time in the session) is asked
  with ``CHATHISTORY LATEST`` once per channel, never for one being resumed or already read;
  live messages are held back meanwhile, like a resume.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from relaychat.protocol.message import Message

__all__ = ["BATCH_TYPES", "HISTORY_CAPS", "Closed", "History"]

#: The batch types a CHATHISTORY reply may use (the draft name first appeared with the prefix).
BATCH_TYPES = frozenset({"chathistory", "draft/chathistory"})
#: The capabilities that offer CHATHISTORY (the draft name first, as servers offer it today).
HISTORY_CAPS = frozenset({"draft/chathistory", "chathistory"})


@dataclass(slots=True)
class _Batch:
    target: str
    messages: list[Message] = field(default_factory=list)


class Closed(NamedTuple):
    """What the end of a chathistory batch gives (see :meth:`History.close_batch`)."""

    #: The batch's messages not seen before, in order.
    fresh: list[Message]
    #: The command for the next page, or ``None`` when the target is caught up.
    next: Message | None
    #: Live messages held back while the target was resumed, now to deliver (in order).
    held: list[Message]


class History:
    """What this client has seen, across every connection of one session.

    Args:
        fold: casefolding for target keys.
        max_seen: how many message ids to remember for deduplication.
        limit: messages per CHATHISTORY page.
        max_pages: pages fetched per target per reconnect.
    """

    __slots__ = (
        "_backlogged",
        "_batches",
        "_held",
        "_pages",
        "fold",
        "last",
        "last_time",
        "limit",
        "max_pages",
        "max_seen",
        "seen",
        "seen_keys",
    )

    def __init__(
        self,
        fold: Callable[[str], str] = str.lower,
        *,
        max_seen: int = 4096,
        limit: int = 100,
        max_pages: int = 10,
    ) -> None:
        self.fold = fold
        self.max_seen = max_seen
        self.limit = limit
        self.max_pages = max_pages
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.seen_keys: OrderedDict[str, None] = OrderedDict()
        #: Folded targets being resumed -> their live messages held back meanwhile.
        self._held: dict[str, list[Message]] = {}
        self.last: dict[str, tuple[str, str]] = {}  # folded target -> (target, last msgid)
        self.last_time: str | None = None
        self._batches: dict[str, _Batch] = {}
        self._pages: dict[str, int] = {}
        self._backlogged: set[str] = set()

    # --- live traffic ------------------------------------------------------------------------

    def first_sight(self, msgid: str | None) -> bool:
        """Remember ``msgid``; returns ``False`` when it was seen before (a duplicate)."""
        if not msgid:
            return True
        if msgid in self.seen:
            self.seen.move_to_end(msgid)
            return False
        self.seen[msgid] = None
        if len(self.seen) > self.max_seen:
            self.seen.popitem(last=False)
        return True

    def first_key(self, scope: str, key: str) -> bool:
        """Remember idempotency ``key`` in ``scope`` (a folded channel, or "" for private
        messages); returns ``False`` when it was seen there before (a duplicate)."""
        seen = self.seen_keys
        entry = f"{scope} {key}"
        if entry in seen:
            seen.move_to_end(entry)
            return False
        seen[entry] = None
        if len(seen) > self.max_seen:
            seen.popitem(last=False)
        return True

    def hold(self, target: str, msg: Message) -> bool:
        """Hold live ``msg`` back if ``target`` is being resumed; returns whether it was held."""
        held = self._held.get(self.fold(target))
        if held is None or len(held) >= self.max_seen:
            return False
        held.append(msg)
        return True

    def release_all(self) -> list[Message]:
        """Stop holding back (the server refused a resume): every held message, in order."""
        out = [m for held in self._held.values() for m in held]
        self._held.clear()
        return out

    def note(self, target: str, msgid: str | None, time: str | None) -> None:
        """Record the newest message of a conversation (``target``: channel or other nick)."""
        if msgid:
            self.last[self.fold(target)] = (target, msgid)
        if time and (self.last_time is None or time > self.last_time):
            self.last_time = time

    # --- resuming ----------------------------------------------------------------------------

    def resume(self, targets: Iterable[str], limit: int | None = None) -> list[Message]:
        """The CHATHISTORY commands to send after a reconnect.

        Args:
            targets: the conversations to resume (channels rejoined, private partners).
            limit: the server's page limit (ISUPPORT ``CHATHISTORY``), when it gave one.

        Returns:
            One ``CHATHISTORY AFTER`` per target that has an id or a time to start from.
        """
        if limit:
            self.limit = min(self.limit, limit)
        self._pages.clear()
        out: list[Message] = []
        for target in targets:
            known = self.last.get(self.fold(target))
            if known is not None:
                anchor = f"msgid={known[1]}"
            elif self.last_time is not None:
                anchor = f"timestamp={self.last_time}"
            else:
                continue
            out.append(Message("CHATHISTORY", ("AFTER", target, anchor, str(self.limit))))
            self._held.setdefault(self.fold(target), [])
        return out

    def backlog(self, target: str, count: int) -> Message | None:
        """The ``CHATHISTORY LATEST`` for a channel just joined, or ``None`` when it was asked
        before in this session, is being resumed, or has messages seen already."""
        key = self.fold(target)
        if count <= 0 or key in self._backlogged or key in self._held or key in self.last:
            return None
        self._backlogged.add(key)
        self._held[key] = []
        self._pages[key] = self.max_pages  # the latest page only: no paging after it
        return Message("CHATHISTORY", ("LATEST", target, "*", str(min(count, self.limit))))

    def open_batch(self, ref: str, target: str) -> None:
        """A ``BATCH +ref chathistory <target>`` arrived."""
        self._batches[ref] = _Batch(target)

    def owns(self, ref: str | None) -> bool:
        """Whether ``ref`` is an open chathistory batch."""
        return ref is not None and ref in self._batches

    def add(self, ref: str, msg: Message) -> None:
        """A message of batch ``ref``."""
        self._batches[ref].messages.append(msg)

    def close_batch(self, ref: str) -> Closed:
        """``BATCH -ref`` arrived.

        Returns:
            The batch's PRIVMSG/NOTICE messages not seen before (now remembered), in order; the
            command for the next page when this one was full (else ``None``); and, when the
            target is caught up, the live messages held back meanwhile.
        """
        batch = self._batches.pop(ref, None)
        if batch is None:
            return Closed([], None, [])
        fresh: list[Message] = []
        last_id: str | None = None
        for msg in batch.messages:
            msgid = msg.tags.get("msgid")
            if msgid:
                last_id = msgid
            if msg.command not in ("PRIVMSG", "NOTICE"):
                continue
            if self.first_sight(msgid):
                fresh.append(msg)
        key = self.fold(batch.target)
        if last_id is not None:
            self.last[key] = (batch.target, last_id)
        for msg in batch.messages:
            self.note(batch.target, None, msg.tags.get("time"))
        nxt: Message | None = None
        pages = self._pages.get(key, 0) + 1
        self._pages[key] = pages
        if len(batch.messages) >= self.limit and last_id is not None and pages < self.max_pages:
            nxt = Message(
                "CHATHISTORY", ("AFTER", batch.target, f"msgid={last_id}", str(self.limit))
            )
        held = self._held.pop(key, []) if nxt is None else []
        return Closed(fresh, nxt, held)

    def abandon(self) -> None:
        """The connection dropped: forget half-received batches (and what was held back: it
        is fetched again, after the last message delivered)."""
        self._batches.clear()
        self._held.clear()
