"""Outgoing text, pure: splitting to fit a line, the bounded outbox, and pacing.

Rules:
- A text becomes lines that each fit in one IRC line *as the server relays it*, that is with
  the ``:nick!user@host`` prefix the server adds (RFC 1459 §2.3: 512 bytes with CR-LF). Splits
  fall between characters, never inside one, and at a space when one is near the end.
- The outbox holds lines not yet written. It is bounded; :meth:`Outbox.put` is all-or-nothing,
  so a caller always knows exactly which lines were refused.
- Pacing is a token bucket over *every* line the client writes, so the client never sends
  faster than the server's flood limit and is never dropped for flooding.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from relaychat.client.errors import OutboxFull
from relaychat.client.events import Outgoing
from relaychat.protocol.message import MAX_BODY_BYTES

__all__ = ["Outbox", "TokenBucket", "split_text", "text_budget"]

#: RFC 2812 §1.2.1 leaves host names to 63 bytes; a server may show an address or a cloak.
DEFAULT_HOST_LEN = 63
#: "~" plus a 10-character ident, as most servers (and relaychat) allow.
DEFAULT_USER_LEN = 11


def text_budget(
    command: str,
    target: str,
    *,
    nick_len: int,
    user_len: int = DEFAULT_USER_LEN,
    host_len: int = DEFAULT_HOST_LEN,
) -> int:
    """How many bytes of text fit in one line once the server has added its prefix.

    The relayed line is ``:nick!user@host COMMAND target :text`` and must fit in 510 bytes.

    Args:
        command: ``PRIVMSG`` or ``NOTICE``.
        target: the channel or nick.
        nick_len, user_len, host_len: the lengths to allow for the prefix parts (be generous
            when unknown: the nick may change before the line is written).

    Returns:
        The number of bytes of UTF-8 text per line (at least 1).
    """
    overhead = 1 + nick_len + 1 + user_len + 1 + host_len + 1  # ":nick!user@host "
    overhead += len(command) + 1 + len(target.encode("utf-8")) + 2  # "PRIVMSG #c :"
    return max(1, MAX_BODY_BYTES - overhead)


def split_text(text: str, max_bytes: int) -> list[str]:
    """Split ``text`` into lines of at most ``max_bytes`` UTF-8 bytes each.

    Line breaks in ``text`` start new lines (IRC cannot carry them); empty lines and NUL bytes
    are dropped. A long line is cut at the last space in its second half when there is one (the
    space is dropped), otherwise at the last whole character that fits.

    Args:
        text: any text.
        max_bytes: the byte budget per line, e.g. from :func:`text_budget`.

    Returns:
        The lines, in order; joined with spaces/newlines they give back the text.

    Raises:
        ValueError: ``max_bytes`` is below 4 (one character may need 4 bytes).
    """
    if max_bytes < 4:
        raise ValueError("max_bytes must be at least 4")
    out: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.replace("\0", "")
        while len(line.encode("utf-8")) > max_bytes:
            head = _fit(line, max_bytes)
            space = head.rfind(" ")
            if space > len(head) // 2:
                out.append(head[:space])
                line = line[space + 1 :]
            else:
                out.append(head)
                line = line[len(head) :]
        if line:
            out.append(line)
    return out


def _fit(line: str, max_bytes: int) -> str:
    """The longest prefix of ``line`` whose UTF-8 form fits in ``max_bytes``."""
    encoded = line.encode("utf-8")[: max_bytes + 1]
    cut = max_bytes
    # A byte 0b10xxxxxx continues a character: back up to the start of the character at ``cut``.
    while cut > 0 and (encoded[cut] & 0xC0) == 0x80:
        cut -= 1
    return encoded[:cut].decode("utf-8")


class TokenBucket:
    """Client-side pacing: ``burst`` lines at once, then ``rate`` lines per second.

    Args:
        rate: lines per second refilled; ``0`` turns pacing off.
        burst: the most tokens held.
        now: the current time (the bucket starts full).
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.tokens = self.burst
        self.stamp = now

    def reset(self, now: float) -> None:
        """Fill the bucket (a new connection starts with a fresh allowance at the server)."""
        self.tokens = self.burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def ready(self, now: float) -> bool:
        """Whether a line may be written now."""
        if self.rate == 0:
            return True
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> None:
        """Count one line written. Urgent lines may take the bucket below zero."""
        if self.rate == 0:
            return
        self._refill(now)
        self.tokens -= 1.0

    def wait(self, now: float) -> float:
        """Seconds until :meth:`ready` is true (0 when it is now)."""
        if self.ready(now):
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Outbox:
    """Lines accepted from the user and not yet written, in order; at most ``capacity``.

    Args:
        capacity: the most lines held.
    """

    __slots__ = ("_queue", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._queue: deque[Outgoing] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def __iter__(self) -> Iterator[Outgoing]:
        return iter(self._queue)

    def put(self, items: tuple[Outgoing, ...]) -> None:
        """Queue every line of ``items``, or none of them.

        Raises:
            OutboxFull: not all of ``items`` fit; none were queued (they are in ``unsent``).
        """
        if len(self._queue) + len(items) > self.capacity:
            raise OutboxFull(items, self.capacity)
        self._queue.extend(items)

    def push_front(self, items: Iterable[Outgoing]) -> None:
        """Put lines back at the head, in their order (lines to send again after a drop).

        These may take the outbox over its capacity for a while: they were accepted already.
        """
        self._queue.extendleft(reversed(list(items)))

    def pop(self) -> Outgoing:
        """Take the oldest line (the outbox must not be empty)."""
        return self._queue.popleft()

    def take(self, ids: Iterable[int]) -> tuple[Outgoing, ...]:
        """Take the lines whose id is in ``ids`` out, in order; the others keep theirs."""
        wanted = set(ids)
        taken = tuple(item for item in self._queue if item.id in wanted)
        if taken:
            self._queue = deque(item for item in self._queue if item.id not in wanted)
        return taken

    def drain(self) -> tuple[Outgoing, ...]:
        """Take every line out (on give-up or close) and return them in order."""
        items = tuple(self._queue)
        self._queue.clear()
        return items
