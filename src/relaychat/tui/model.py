"""What the terminal client shows, pure: buffers, their lines, members and markers.

Rules:
1. No Textual and no I/O here. :class:`ChatState` takes the client library's events
   (:mod:`relaychat.client.events`) and what the user typed, and records lines in buffers; the
   app (:mod:`relaychat.tui.app`) draws what changed.
2. Buffers are keyed by the casefolded name (rfc1459), so ``#Chat`` and ``#chat`` are one.
3. A buffer that is not on screen counts its unread messages; a message that names the user,
   or any private message, also sets its highlight marker. Showing the buffer clears both.
4. Plain mode (``plain=True``, a raw line service instead of IRC): every line, received or
   sent, goes to the server buffer, which stands for the service.
"""

from __future__ import annotations

import re
import time as _time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from relaychat.client.events import (
    Connected,
    Ctcp,
    Disconnected,
    ErrorReply,
    Event,
    GaveUp,
    Join,
    Kick,
    Message,
    NickChange,
    Part,
    Quit,
    Reconnecting,
    Topic,
)
from relaychat.client.plain import LineReceived
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.ctcp import parse_ctcp

__all__ = [
    "SERVER",
    "Buffer",
    "BufferKind",
    "ChatState",
    "Kind",
    "Line",
    "LinkState",
    "LinkStatus",
    "parse_time",
    "split_prefix",
]

#: The key and name of the server buffer (a space cannot occur in a nick or channel name).
SERVER = "server buffer"
#: Membership prefixes, highest rank first (ISUPPORT PREFIX of most servers).
PREFIXES = "~&@%+"


class Kind(Enum):
    """What a line is; the app draws each kind its own way."""

    MESSAGE = "message"
    ACTION = "action"
    NOTICE = "notice"
    JOIN = "join"
    PART = "part"
    NICK = "nick"
    TOPIC = "topic"
    INFO = "info"
    ERROR = "error"
    OFFER = "offer"  # a file offered by DCC: counts as unread, and as a highlight


class BufferKind(Enum):
    """What a buffer holds: the server's messages, a channel, or a private conversation."""

    SERVER = "server"
    CHANNEL = "channel"
    QUERY = "query"
    TRANSFERS = "transfers"  # the DCC file transfers (drawn as a table, not as lines)


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a buffer.

    Attributes:
        time: when it happened (the server's time when it gave one), local time zone.
        kind: how to draw it.
        nick: who said it ("" for info and errors).
        text: the text (CTCP ACTION markers removed).
        own: written by the user of this client.
        highlight: it names the user (or it is a private message).
        history: fetched from the server's history after a reconnect.
    """

    time: datetime
    kind: Kind
    nick: str
    text: str
    own: bool = False
    highlight: bool = False
    history: bool = False


@dataclass(slots=True, eq=False)
class Buffer:
    """A channel, a private conversation, or the server's messages.

    Attributes:
        name: as shown (the channel's or the other nick's spelling).
        kind: server, channel or query.
        lines: the scrollback, oldest first (bounded).
        topic: the channel's topic.
        members: casefolded nick -> (nick, prefix) for channels.
        joined: for a channel, whether the user is in it right now.
        unread: messages arrived while it was not on screen.
        highlight: one of them named the user.
    """

    name: str
    kind: BufferKind
    lines: deque[Line]
    topic: str = ""
    members: dict[str, tuple[str, str]] = field(default_factory=dict)
    joined: bool = False
    unread: int = 0
    highlight: bool = False

    def nicks(self) -> list[tuple[str, str]]:
        """The members as (prefix, nick), highest rank first, then by name."""

        def rank(item: tuple[str, str]) -> tuple[int, str]:
            nick, prefix = item
            first = prefix[:1]
            return (PREFIXES.index(first) if first else len(PREFIXES), irc_lower(nick))

        return [(p, n) for n, p in sorted(self.members.values(), key=rank)]


class LinkState(Enum):
    """The connection's state, as the status line tells it."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"


@dataclass(slots=True)
class LinkStatus:
    """The connection's state and what goes with it (the status line is built from this).

    Attributes:
        state: connecting, connected, reconnecting or disconnected.
        reason: why it is not connected (the last failure).
        attempt: the reconnect attempt (counts from 1).
        retry_at: when the next attempt starts (monotonic seconds).
        lag: the last round-trip time to the server, in seconds (``None``: not measured).
    """

    state: LinkState = LinkState.CONNECTING
    reason: str = ""
    attempt: int = 0
    retry_at: float = 0.0
    lag: float | None = None

    def text(self, now: float) -> str:
        """The status line's words, e.g. ``connected (lag 12 ms)``.

        Args:
            now: the monotonic clock (for the reconnect countdown).
        """
        if self.state is LinkState.CONNECTED:
            if self.lag is None:
                return "connected"
            return f"connected (lag {self.lag * 1000:.0f} ms)"
        if self.state is LinkState.RECONNECTING:
            left = self.retry_at - now
            when = f"in {left:.0f} s" if left >= 1 else f"in {left:.1f} s" if left > 0 else "now"
            tail = f": {self.reason}" if self.reason else ""
            return f"reconnecting {when} (attempt {self.attempt}){tail}"
        if self.state is LinkState.DISCONNECTED:
            return f"disconnected ({self.reason or 'closed'})"
        return "connecting"


def split_prefix(entry: str, prefixes: str = PREFIXES) -> tuple[str, str]:
    """Split a NAMES entry (``@+alice`` or ``@alice!u@h``) into (prefixes, nick)."""
    bare = entry.lstrip(prefixes)
    return entry[: len(entry) - len(bare)], bare.split("!", 1)[0]


def parse_time(value: str | None, default: Callable[[], float] = _time.time) -> datetime:
    """The local time of an IRCv3 ``server-time`` tag (``2024-05-01T12:00:00.000Z``).

    Args:
        value: the tag's value, or ``None``.
        default: the clock to use when there is no (valid) tag.
    """
    if value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone()
        except ValueError:
            pass
    return datetime.fromtimestamp(default()).astimezone()


#: The kinds of line that count as unread when they arrive in a buffer not on screen.
_COUNTED = frozenset({Kind.MESSAGE, Kind.ACTION, Kind.NOTICE, Kind.OFFER})


def _action(text: str) -> str | None:
    """The text of a CTCP ACTION (``\\x01ACTION waves\\x01``), else ``None``."""
    if text.startswith("\x01ACTION ") or text == "\x01ACTION\x01":
        return text[8:].rstrip("\x01")
    return None


class ChatState:
    """Every buffer of one chat session, and which one is on screen.

    Args:
        nick: the user's nick (updated from the events).
        is_channel: whether a name is a channel (the client's ISUPPORT CHANTYPES).
        scrollback: lines kept per buffer.
        clock: wall-clock time, for lines without a server time.
        plain: a plain line service, not IRC (see rule 4).
    """

    def __init__(
        self,
        nick: str,
        *,
        is_channel: Callable[[str], bool] = lambda name: name[:1] in "#&",
        scrollback: int = 2000,
        clock: Callable[[], float] = _time.time,
        plain: bool = False,
    ) -> None:
        self.nick = nick
        self.plain = plain
        self.is_channel = is_channel
        self.scrollback = scrollback
        self.clock = clock
        self.buffers: dict[str, Buffer] = {}
        self.current = SERVER
        self._touched: list[Buffer] = []
        self._mention: tuple[str, re.Pattern[str]] | None = None
        self.add_buffer(SERVER, BufferKind.SERVER)

    # --- buffers -----------------------------------------------------------------------------

    @staticmethod
    def key(name: str) -> str:
        """The buffer key of a channel or nick."""
        return SERVER if name == SERVER else irc_lower(name)

    def get(self, name: str) -> Buffer | None:
        """The buffer of ``name``, if it is open."""
        return self.buffers.get(self.key(name))

    def add_buffer(self, name: str, kind: BufferKind | None = None) -> Buffer:
        """Open the buffer of ``name`` (a channel or a nick), or return it when it is open."""
        buf = self.get(name)
        if buf is None:
            if kind is None:
                kind = BufferKind.CHANNEL if self.is_channel(name) else BufferKind.QUERY
            buf = Buffer(name, kind, deque(maxlen=self.scrollback))
            self.buffers[self.key(name)] = buf
        return buf

    def close_buffer(self, name: str) -> bool:
        """Close a buffer (never the server buffer); returns whether one was closed."""
        key = self.key(name)
        if key == SERVER or key not in self.buffers:
            return False
        order = list(self.buffers)
        del self.buffers[key]
        if self.current == key:
            self.current = order[max(0, order.index(key) - 1)]
        return True

    def switch(self, name: str) -> Buffer | None:
        """Show the buffer of ``name``: it becomes current, its markers are cleared."""
        buf = self.get(name)
        if buf is not None:
            self.current = self.key(name)
            buf.unread = 0
            buf.highlight = False
        return buf

    def cycle(self, step: int) -> Buffer:
        """Show the next (``step`` 1) or previous (-1) buffer, wrapping around."""
        order = list(self.buffers)
        index = (order.index(self.current) + step) % len(order)
        buf = self.buffers[order[index]]
        self.switch(buf.name)
        return buf

    @property
    def current_buffer(self) -> Buffer:
        """The buffer on screen."""
        return self.buffers[self.current]

    def channels(self) -> list[str]:
        """The names of the channel buffers, in order."""
        return [b.name for b in self.buffers.values() if b.kind is BufferKind.CHANNEL]

    # --- lines -------------------------------------------------------------------------------

    def add_line(
        self,
        buf: Buffer,
        kind: Kind,
        text: str,
        *,
        nick: str = "",
        own: bool = False,
        highlight: bool = False,
        when: str | None = None,
        history: bool = False,
    ) -> Line:
        """Append a line to ``buf``, counting it as unread when the buffer is not on screen."""
        line = Line(parse_time(when, self.clock), kind, nick, text, own, highlight, history)
        buf.lines.append(line)
        if buf not in self._touched:
            self._touched.append(buf)
        shown = self.buffers.get(self.current) is buf
        if not shown and kind in _COUNTED and not own:
            buf.unread += 1
            buf.highlight = buf.highlight or highlight
        return line

    def info(self, text: str, buf: Buffer | None = None, kind: Kind = Kind.INFO) -> Line:
        """Append an info (or error) line to ``buf``, by default the buffer on screen."""
        return self.add_line(buf or self.current_buffer, kind, text)

    def mentions(self, text: str) -> bool:
        """Whether ``text`` names the user (the nick as a whole word, any case)."""
        if self._mention is None or self._mention[0] != self.nick:
            word = r"[\w\[\]\\`^{|}-]"  # what may be part of a nick
            rx = re.compile(f"(?<!{word}){re.escape(self.nick)}(?!{word})", re.IGNORECASE)
            self._mention = (self.nick, rx)
        return bool(self._mention[1].search(text))

    def own_message(self, target: str, text: str, *, action: bool = False) -> Line:
        """Record a message the user sent to ``target`` (its buffer is opened if needed)."""
        buf = self.add_buffer(target)
        kind = Kind.ACTION if action else Kind.MESSAGE
        return self.add_line(buf, kind, text, nick=self.nick, own=True)

    # --- events ------------------------------------------------------------------------------

    def apply(self, event: Event) -> list[Buffer]:
        """Record a client event; returns the buffers that got lines (see :meth:`take_touched`).

        Link events (connected, reconnecting...) only get lines in the server buffer here; the
        status line is :class:`LinkStatus`'s business.
        """
        handler = _APPLY.get(type(event))
        if handler is not None:
            handler(self, event)
        return self.take_touched()

    def take_touched(self) -> list[Buffer]:
        """The buffers that got lines since the last call (the app then draws them)."""
        touched, self._touched = self._touched, []
        return touched

    def _on_message(self, ev: Message) -> None:
        if not self.is_channel(ev.reply_to) and (
            not ev.prefix or "!" not in ev.prefix or ev.reply_to in ("*", "")
        ):
            buf = self.buffers[SERVER]  # the server's own notices
        elif irc_lower(ev.sender) == irc_lower(self.nick) and not self.is_channel(ev.reply_to):
            buf = self.add_buffer(ev.target)  # our own line, played back from history
        else:
            buf = self.add_buffer(ev.reply_to)
        own = irc_lower(ev.sender) == irc_lower(self.nick)
        action = _action(ev.text)
        ctcp = parse_ctcp(ev.text) if action is None else None
        if ctcp is not None:  # (live CTCPs come as Ctcp events; these are from history)
            self.add_line(buf, Kind.INFO, f"{ev.sender} sent a CTCP {ctcp[0]}", when=ev.time)
            return
        if ev.notice:
            kind, text = Kind.NOTICE, ev.text
        elif action is not None:
            kind, text = Kind.ACTION, action
        else:
            kind, text = Kind.MESSAGE, ev.text
        private = buf.kind is BufferKind.QUERY
        highlight = not own and (private or self.mentions(text))
        self.add_line(
            buf,
            kind,
            text,
            nick=ev.sender,
            own=own,
            highlight=highlight,
            when=ev.time,
            history=ev.history,
        )

    def _on_ctcp(self, ev: Ctcp) -> None:
        if ev.command == "DCC":
            return  # file transfer: relaychat.tui.dcc shows what the DCC manager makes of it
        buf = self.buffers[SERVER] if self.is_channel(ev.target) else self.add_buffer(ev.sender)
        what = "reply" if ev.reply else "request"
        self.add_line(buf, Kind.INFO, f"{ev.sender} sent a CTCP {ev.command} {what}", when=ev.time)

    def _on_join(self, ev: Join) -> None:
        buf = self.add_buffer(ev.channel, BufferKind.CHANNEL)
        if ev.own:
            buf.name = ev.channel
            buf.joined = True
            buf.members.clear()
            self.add_line(buf, Kind.JOIN, f"you joined {ev.channel}", nick=ev.nick, own=True)
        else:
            self.add_line(buf, Kind.JOIN, f"{ev.nick} joined {ev.channel}", nick=ev.nick)
        buf.members[irc_lower(ev.nick)] = (ev.nick, "")

    def _on_part(self, ev: Part) -> None:
        buf = self.get(ev.channel)
        if buf is None:
            return
        reason = f" ({ev.reason})" if ev.reason else ""
        if ev.own:
            buf.joined = False
            buf.members.clear()
            self.add_line(buf, Kind.PART, f"you left {ev.channel}{reason}", own=True)
        else:
            buf.members.pop(irc_lower(ev.nick), None)
            self.add_line(buf, Kind.PART, f"{ev.nick} left{reason}", nick=ev.nick)

    def _on_kick(self, ev: Kick) -> None:
        buf = self.get(ev.channel)
        if buf is None:
            return
        reason = f" ({ev.reason})" if ev.reason else ""
        if ev.own:
            buf.joined = False
            buf.members.clear()
            self.add_line(buf, Kind.PART, f"{ev.by} kicked you out{reason}", highlight=True)
        else:
            buf.members.pop(irc_lower(ev.nick), None)
            self.add_line(buf, Kind.PART, f"{ev.by} kicked {ev.nick}{reason}", nick=ev.nick)

    def _on_quit(self, ev: Quit) -> None:
        key = irc_lower(ev.nick)
        reason = f" ({ev.reason})" if ev.reason else ""
        for buf in self._buffers_of(key):
            buf.members.pop(key, None)
            self.add_line(buf, Kind.PART, f"{ev.nick} quit{reason}", nick=ev.nick)

    def _on_nick(self, ev: NickChange) -> None:
        old, new = irc_lower(ev.old), irc_lower(ev.new)
        touched = self._buffers_of(old)
        if ev.own:
            self.nick = ev.new
            touched = [*touched, *(b for b in [self.buffers[SERVER]] if b not in touched)]
        for buf in touched:
            if old in buf.members:
                prefix = buf.members.pop(old)[1]
                buf.members[new] = (ev.new, prefix)
            who = "you are" if ev.own else f"{ev.old} is"
            self.add_line(buf, Kind.NICK, f"{who} now known as {ev.new}", nick=ev.new)
        query = self.buffers.get(old)
        if query is not None and query.kind is BufferKind.QUERY and new not in self.buffers:
            query.name = ev.new
            self.buffers = {(new if k == old else k): b for k, b in self.buffers.items()}
            if self.current == old:
                self.current = new

    def _buffers_of(self, key: str) -> list[Buffer]:
        """The channel buffers ``key`` is a member of, and the query with ``key``."""
        out = [b for b in self.buffers.values() if key in b.members]
        query = self.buffers.get(key)
        if query is not None and query.kind is BufferKind.QUERY:
            out.append(query)
        return out

    def _on_topic(self, ev: Topic) -> None:
        buf = self.add_buffer(ev.channel, BufferKind.CHANNEL)
        buf.topic = ev.topic
        if ev.setter:
            text = f"{ev.setter} changed the topic to: {ev.topic}"
            self.add_line(buf, Kind.TOPIC, text, nick=ev.setter)
        elif ev.topic:
            self.add_line(buf, Kind.TOPIC, f"topic: {ev.topic}")

    def _on_error(self, ev: ErrorReply) -> None:
        first = ev.params[0] if ev.params else ""
        buf = self.get(first) if first else None
        detail = " ".join([*ev.params, ev.text]).strip()
        self.info(f"{ev.code} {detail}", buf, Kind.ERROR)

    def _on_connected(self, ev: Connected) -> None:
        self.nick = ev.nick
        server = f" to {ev.server}" if ev.server else ""
        as_nick = "" if self.plain else f" as {ev.nick}"
        self.info(f"connected{server}{as_nick}", self.buffers[SERVER])

    def _on_line(self, ev: LineReceived) -> None:
        highlight = self.mentions(ev.text)
        self.add_line(
            self.buffers[SERVER], Kind.MESSAGE, ev.text, nick=ev.sender, highlight=highlight
        )

    def _on_disconnected(self, ev: Disconnected) -> None:
        for buf in self.buffers.values():
            if buf.kind is BufferKind.CHANNEL and buf.joined:
                buf.joined = False
                buf.members.clear()
        lost, again = len(ev.unconfirmed), len(ev.resending)
        extra = f"; {lost} line(s) may not have arrived" if lost else ""
        extra += f"; {again} line(s) will be sent again" if again else ""
        self.info(f"disconnected: {ev.reason}{extra}", self.buffers[SERVER], Kind.ERROR)

    def _on_reconnecting(self, ev: Reconnecting) -> None:
        text = f"reconnecting in {ev.delay:.1f} s (attempt {ev.attempt})"
        self.info(f"{text}: {ev.reason}" if ev.reason else text, self.buffers[SERVER])

    def _on_gave_up(self, ev: GaveUp) -> None:
        self.info(f"gave up: {ev.reason}", self.buffers[SERVER], Kind.ERROR)

    # --- replies -----------------------------------------------------------------------------

    def set_names(self, channel: str, entries: Iterable[str]) -> Buffer | None:
        """Replace a channel's member list with the entries of its NAMES reply."""
        buf = self.get(channel)
        if buf is None:
            return None
        buf.members = {}
        for entry in entries:
            prefix, nick = split_prefix(entry)
            if nick:
                buf.members[irc_lower(nick)] = (nick, prefix)
        return buf


_APPLY: dict[type[Event], Callable[[ChatState, Any], None]] = {
    Message: ChatState._on_message,
    Ctcp: ChatState._on_ctcp,
    Join: ChatState._on_join,
    Part: ChatState._on_part,
    Kick: ChatState._on_kick,
    Quit: ChatState._on_quit,
    NickChange: ChatState._on_nick,
    Topic: ChatState._on_topic,
    ErrorReply: ChatState._on_error,
    Connected: ChatState._on_connected,
    Disconnected: ChatState._on_disconnected,
    Reconnecting: ChatState._on_reconnecting,
    GaveUp: ChatState._on_gave_up,
    LineReceived: ChatState._on_line,
}
