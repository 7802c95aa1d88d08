"""Pairing what the client wrote with what the server answered, pure.

Theory of operation. A server handles one client's lines in order. So after writing some lines
the client writes ``PING <token>``; when ``PONG <token>`` comes back, everything the server had
to say about those lines has arrived. The lines between two PINGs form a *segment*:

- an **ack segment** holds user messages (PRIVMSG/NOTICE). Its PONG confirms them: the server
  processed them. An error numeric that arrives inside it (404 for a channel, 401 for a nick)
  is matched to its line by target when exactly one line of the segment went to that target.
- a **request segment** holds one command sent with :meth:`Tracker.request`. Every reply that
  arrives inside it (numerics, FAIL/WARN/NOTE, our own JOIN/PART/NICK...) is the reply.

When the server offers IRCv3 ``labeled-response``, requests carry a ``label`` tag instead and
their replies come back labeled (one message, an ``ACK``, or a ``labeled-response`` batch). So
do user messages then (:meth:`Tracker.labeled_line`): the answer to each is its echo (with
``echo-message``: the message as relayed, with its ``msgid``), an ``ACK``, or the refusal.

A labeled answer that never comes is noticed too: the server answers in order, so when the PONG
of a PING written after a labeled line arrives while the line is still unanswered, its answer
was lost on the way (an unreadable line): :meth:`Tracker.answers_lost` says so, and the link is
not to be trusted.

Rule: this module decides nothing about the link; it only records and matches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from relaychat.client.events import Outgoing
from relaychat.protocol.message import Message

__all__ = [
    "Confirmed",
    "Dropped",
    "LineRejected",
    "Outcome",
    "Repeated",
    "Reply",
    "RequestDone",
    "RequestLost",
    "Tracker",
    "Unconfirmed",
    "is_error",
]

#: Replies to PRIVMSG/NOTICE that mean the line was refused (RFC 2812 §3.3.1).
SEND_ERRORS = frozenset({"401", "403", "404", "407", "411", "412", "413", "414"})
#: The commands a user line may be (its echo has the same command).
LINE_COMMANDS = frozenset({"PRIVMSG", "NOTICE", "TAGMSG"})


def is_error(msg: Message) -> bool:
    """Whether ``msg`` is an error reply: a 4xx/5xx numeric or an IRCv3 ``FAIL``."""
    cmd = msg.command
    return cmd == "FAIL" or (len(cmd) == 3 and cmd.isdigit() and cmd[0] in "45")


@dataclass(frozen=True, slots=True)
class Reply:
    """What the server answered to one request.

    Attributes:
        command: the command that was sent.
        messages: every reply, in order.
    """

    command: str
    messages: tuple[Message, ...] = ()

    @property
    def error(self) -> Message | None:
        """The first error reply, or ``None``."""
        return next((m for m in self.messages if is_error(m)), None)

    @property
    def ok(self) -> bool:
        """Whether no error came back."""
        return self.error is None

    def numerics(self) -> list[str]:
        """The commands of the replies, in order (``["311", "312", "318"]``)."""
        return [m.command for m in self.messages]


# --- outcomes: what the connection layer must tell the callers --------------------------------


@dataclass(frozen=True, slots=True)
class Confirmed:
    """The server processed these lines.

    Attributes:
        items: the lines.
        msgids: the message id the server gave each line, in order, when it said (its echo);
            empty when it did not.
    """

    items: tuple[Outgoing, ...]
    msgids: tuple[str | None, ...] = ()


@dataclass(frozen=True, slots=True)
class LineRejected:
    """The server refused ``item`` with numeric ``code``."""

    item: Outgoing
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Unconfirmed:
    """These lines were written to a connection that dropped before confirming them."""

    items: tuple[Outgoing, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Repeated:
    """These lines were written again to a server that does not deduplicate them: they may
    arrive twice (``delivery="at_least_once"``)."""

    items: tuple[Outgoing, ...]


@dataclass(frozen=True, slots=True)
class Dropped:
    """These lines were never written and never will be (give-up or close)."""

    items: tuple[Outgoing, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class RequestDone:
    """Request ``id`` got its whole reply."""

    id: int
    reply: Reply


@dataclass(frozen=True, slots=True)
class RequestLost:
    """Request ``id`` will never be answered: the connection dropped."""

    id: int
    reason: str


Outcome = Confirmed | LineRejected | Unconfirmed | Repeated | Dropped | RequestDone | RequestLost


@dataclass(slots=True)
class _Segment:
    token: str | None = None
    items: list[Outgoing] = field(default_factory=list)
    request: int | None = None
    command: str = ""
    replies: list[Message] = field(default_factory=list)
    rejected: dict[int, tuple[str, str]] = field(default_factory=dict)


@dataclass(slots=True)
class _Labeled:
    request: int
    command: str
    replies: list[Message] = field(default_factory=list)


@dataclass(slots=True)
class _Line:
    item: Outgoing
    seq: int  # the label's number: lines and PINGs are numbered in the order written
    at: float
    replies: list[Message] = field(default_factory=list)


class Tracker:
    """Segments and labels of one connection.

    Args:
        fold: the casefolding of the server (for matching error targets).
    """

    __slots__ = (
        "_batches",
        "_fold",
        "_labels",
        "_lines",
        "_open",
        "_pinged",
        "_segments",
        "_seq",
        "lag",
        "opened_at",
    )

    def __init__(self, fold: Callable[[str], str] = str.lower) -> None:
        self._fold = fold
        self.opened_at = 0.0
        self._seq = 0
        self._segments: deque[_Segment] = deque()
        self._open: _Segment | None = None
        self._labels: dict[str, _Labeled] = {}
        self._lines: dict[str, _Line] = {}  # label -> user line awaiting its answer, in order
        self._pinged = 0  # the number of the newest PING token
        self._batches: dict[str, str] = {}  # batch reference -> label
        #: The round trip of the last labeled line answered (seconds), else ``None``.
        self.lag: float | None = None

    def _token(self) -> str:
        self._seq += 1
        return f"rc{self._seq}"

    def _ping_token(self) -> str:
        token = self._token()
        self._pinged = self._seq
        return token

    # --- writing ---------------------------------------------------------------------------

    def add_item(self, item: Outgoing, now: float) -> None:
        """Record a user line just written."""
        if self._open is None:
            self._open = _Segment()
            self._segments.append(self._open)
            self.opened_at = now
        self._open.items.append(item)

    @property
    def open_items(self) -> int:
        """User lines written since the last PING."""
        return len(self._open.items) if self._open is not None else 0

    @property
    def inflight(self) -> int:
        """User lines written and not yet confirmed."""
        return sum(len(s.items) for s in self._segments) + len(self._lines)

    def close(self) -> str | None:
        """End the open segment; returns the token to PING, or ``None`` if none was open."""
        seg = self._open
        if seg is None:
            return None
        self._open = None
        seg.token = self._ping_token()
        return seg.token

    def keepalive(self) -> str:
        """A token for a keepalive PING (it closes the open segment, if any)."""
        token = self.close()
        if token is not None:
            return token
        seg = _Segment(token=self._ping_token())
        self._segments.append(seg)
        return seg.token or ""

    def labeled_line(self, item: Outgoing, now: float) -> str:
        """Record user line ``item``, written now with a label; returns the label."""
        label = self._token()
        self._lines[label] = _Line(item, self._seq, now)
        return label

    def probe_due(self, now: float, delay: float) -> float | None:
        """When a PING should follow the oldest unanswered labeled line (to learn whether its
        answer was lost): ``delay`` after it was written, unless a PING already followed it.

        Returns:
            That time (``<= now``: now), or ``None`` when no PING is needed.
        """
        oldest = next(iter(self._lines.values()), None)
        if oldest is None or oldest.seq < self._pinged:
            return None
        return oldest.at + delay

    def answers_lost(self, token: str) -> bool:
        """Whether a labeled line written before the PING of ``token`` is still unanswered."""
        oldest = next(iter(self._lines.values()), None)
        if oldest is None or not token.startswith("rc") or not token[2:].isdigit():
            return False
        return oldest.seq < int(token[2:])

    def request(self, request: int, command: str) -> str:
        """Record request ``request``, written now; returns the token for the PING after it.

        The caller must first :meth:`close` the open segment (and write that PING).
        """
        assert self._open is None, "close the open segment first"
        seg = _Segment(token=self._ping_token(), request=request, command=command)
        self._segments.append(seg)
        return seg.token or ""

    def labeled(self, request: int, command: str) -> str:
        """Record a labeled request; returns its label."""
        label = self._token()
        self._labels[label] = _Labeled(request, command)
        return label

    # --- reading ---------------------------------------------------------------------------

    def pong(self, token: str) -> list[Outcome]:
        """The PONG for ``token`` arrived: settle its segment and every older one."""
        if not any(s.token == token for s in self._segments):
            return []
        out: list[Outcome] = []
        while self._segments:
            seg = self._segments.popleft()
            out.extend(self._settle(seg))
            if seg.token == token:
                break
        return out

    @staticmethod
    def _settle(seg: _Segment) -> list[Outcome]:
        if seg.request is not None:
            return [RequestDone(seg.request, Reply(seg.command, tuple(seg.replies)))]
        out: list[Outcome] = []
        ok = tuple(i for i in seg.items if i.id not in seg.rejected)
        if ok:
            out.append(Confirmed(ok))
        for item in seg.items:
            if item.id in seg.rejected:
                code, text = seg.rejected[item.id]
                out.append(LineRejected(item, code, text))
        return out

    def reply(self, msg: Message) -> bool:
        """Route a reply-like message (numeric, FAIL, our own echo) to the oldest segment.

        Returns:
            ``True`` when a request took it as part of its reply (do not report it elsewhere).
        """
        if not self._segments:
            return False
        seg = self._segments[0]
        if seg.request is not None:
            seg.replies.append(msg)
            return True
        if msg.command in SEND_ERRORS and len(msg.params) >= 2:
            fold = self._fold
            target = fold(msg.params[1])
            matches = [
                i for i in seg.items if fold(i.target) == target and i.id not in seg.rejected
            ]
            if len(matches) == 1:
                seg.rejected[matches[0].id] = (msg.command, msg.params[-1])
        return False

    def label_of(self, msg: Message) -> str | None:
        """The label ``msg`` answers (its ``label`` tag or its batch's), or ``None``."""
        label = msg.tags.get("label")
        if label is not None and (label in self._labels or label in self._lines):
            return label
        ref = msg.tags.get("batch")
        if ref is None and msg.command == "BATCH" and msg.param(0).startswith("-"):
            ref = msg.param(0)[1:]  # the end of a labeled batch carries no tag
        if ref is not None:
            return self._batches.get(ref)
        return None

    def is_line(self, label: str) -> bool:
        """Whether ``label`` is a user line's (else a request's)."""
        return label in self._lines

    def labeled_reply(self, label: str, msg: Message, now: float = 0.0) -> list[Outcome]:
        """Add ``msg`` to the reply of ``label``; returns the outcome once the reply is whole."""
        line = self._lines.get(label)
        pending = line if line is not None else self._labels[label]
        cmd = msg.command
        if cmd == "BATCH" and msg.params and msg.params[0].startswith("+"):
            self._batches[msg.params[0][1:]] = label
            return []
        if cmd == "BATCH" and msg.params and msg.params[0].startswith("-"):
            self._batches.pop(msg.params[0][1:], None)
            return self._finish(label)
        if cmd != "ACK":
            pending.replies.append(msg)
        if msg.tags.get("batch") in self._batches:
            return []
        return self._finish(label, now)

    def _finish(self, label: str, now: float = 0.0) -> list[Outcome]:
        line = self._lines.pop(label, None)
        if line is not None:
            self.lag = max(0.0, now - line.at)
            return [_line_outcome(line)]
        pending = self._labels.pop(label)
        return [RequestDone(pending.request, Reply(pending.command, tuple(pending.replies)))]

    # --- the end ---------------------------------------------------------------------------

    def lost(self, reason: str) -> tuple[list[Outgoing], list[Outcome]]:
        """The connection dropped.

        Returns:
            The user lines written and not confirmed, in order, and a :class:`RequestLost` for
            every pending request. The tracker is empty afterwards.
        """
        items: list[Outgoing] = []
        out: list[Outcome] = []
        for seg in self._segments:
            items.extend(seg.items)
            if seg.request is not None:
                out.append(RequestLost(seg.request, reason))
        for pending in self._labels.values():
            out.append(RequestLost(pending.request, reason))
        items.extend(line.item for line in self._lines.values())
        items.sort(key=lambda item: item.id)
        self._segments.clear()
        self._labels.clear()
        self._lines.clear()
        self._batches.clear()
        self._open = None
        return items, out


def _line_outcome(line: _Line) -> Outcome:
    """What the whole answer to a labeled user line means: its echo (the line was relayed,
    under that msgid), a refusal (an error numeric or ``FAIL``), or an ``ACK`` (relayed)."""
    item = line.item
    for msg in line.replies:
        if msg.command == item.command:
            return Confirmed((item,), (msg.tags.get("msgid"),))
    for msg in line.replies:
        if is_error(msg):
            code = msg.param(1) if msg.command == "FAIL" else msg.command
            return LineRejected(item, code, msg.param(len(msg.params) - 1))
    return Confirmed((item,))
