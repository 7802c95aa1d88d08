"""What the client tells its user: events, as frozen, slotted values that check themselves.

Don't subclass these. Every event derives from :class:`Event`, so ``@client.on(Event)`` sees all.

Chat events (from the server): :class:`Message`, :class:`Ctcp`, :class:`Join`, :class:`Part`,
:class:`Kick`, :class:`Quit`, :class:`NickChange`, :class:`Topic`, :class:`ErrorReply`.
Link events (from the client itself): :class:`Connected`, :class:`Disconnected`,
:class:`Reconnecting`, :class:`GaveUp`.

:class:`Outgoing` is not an event: it is one line the user asked to send, as reported back in
:attr:`Disconnected.unconfirmed`, :attr:`GaveUp.unsent` and the ``unsent`` of the exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from relaychat.protocol.message import Message as IrcMessage

__all__ = [
    "Connected",
    "Ctcp",
    "Disconnected",
    "ErrorReply",
    "Event",
    "GaveUp",
    "Join",
    "Kick",
    "Message",
    "NickChange",
    "Outgoing",
    "Part",
    "Quit",
    "Reconnecting",
    "Topic",
]


def _need(value: str, name: str) -> None:
    if not value:
        raise ValueError(f"{name} must not be empty")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One line the user asked to send (a long text becomes several).

    Attributes:
        id: unique within the client, increasing in the order of sending.
        command: ``PRIVMSG``, ``NOTICE`` or ``TAGMSG``.
        target: a channel or a nick.
        text: the text of this line (never more than fits in one line; "" for TAGMSG).
        key: its idempotency key (random, 128 bits), the same every time the line is written:
            a server with ``relaychat.dev/idempotency`` relays it once, and receivers built on
            this library drop a second copy.
        tags: client-only tags (``+name``, value) to send with it (a TAGMSG needs one).
    """

    id: int
    command: str
    target: str
    text: str
    key: str = ""
    tags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.command not in ("PRIVMSG", "NOTICE", "TAGMSG"):
            raise ValueError(f"command must be PRIVMSG, NOTICE or TAGMSG, not {self.command!r}")
        _need(self.target, "target")
        if self.command == "TAGMSG":
            if self.text:
                raise ValueError("a TAGMSG has no text")
            if not self.tags:
                raise ValueError("a TAGMSG needs client-only tags")
        else:
            _need(self.text, "text")
        if any(c in self.text for c in "\r\n\0"):
            raise ValueError("text must not hold CR, LF or NUL")
        for name, _ in self.tags:
            if not name.startswith("+") or len(name) < 2 or any(c in name for c in " ;=@"):
                raise ValueError(f"{name!r} is not a client-only tag name (+name)")

    def to_message(self, tags: dict[str, str] | None = None) -> IrcMessage:
        """The IRC message for this line, with its own tags and ``tags``."""
        params = (self.target,) if self.command == "TAGMSG" else (self.target, self.text)
        all_tags = dict(self.tags)
        if tags:
            all_tags.update(tags)
        return IrcMessage(self.command, params, tags=all_tags)


class Event:
    """Base class of every event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Message(Event):
    """A PRIVMSG or NOTICE received.

    Attributes:
        sender: the nick (or server name) it came from.
        target: the channel, or our own nick for a private message.
        text: the text.
        reply_to: where an answer goes: the channel, or the sender of a private message.
        notice: ``True`` for a NOTICE.
        prefix: the full source (``nick!user@host``) when the server gave one.
        msgid: the server's message id (IRCv3 ``msgid`` tag), when it gave one.
        time: the server's timestamp (IRCv3 ``server-time`` tag), when it gave one.
        history: ``True`` when fetched with CHATHISTORY after a reconnect (missed live).
        tags: every IRCv3 tag of the message.
    """

    sender: str
    target: str
    text: str
    reply_to: str = ""
    notice: bool = False
    prefix: str | None = None
    msgid: str | None = None
    time: str | None = None
    history: bool = False
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _need(self.target, "target")
        if not self.reply_to:
            object.__setattr__(self, "reply_to", self.target)


@dataclass(frozen=True, slots=True)
class Ctcp(Event):
    """A CTCP request (in a PRIVMSG) or reply (in a NOTICE) received live, other than ACTION.

    It comes instead of a :class:`Message` (an ACTION stays a :class:`Message`); CTCPs replayed
    from the server's history come as :class:`Message` events, never as this (an old DCC offer
    must not look new). :mod:`relaychat.client.dcc` handles ``DCC``.

    Attributes:
        sender: the nick it came from.
        target: our nick, or a channel.
        command: the CTCP command, upper-cased (``DCC``, ``VERSION``, ``PING``...).
        args: what follows the command.
        reply: ``True`` when it came in a NOTICE (a CTCP reply).
        prefix: the full source (``nick!user@host``) when the server gave one.
        time: the server's timestamp (IRCv3 ``server-time``), when it gave one.
    """

    sender: str
    target: str
    command: str
    args: str = ""
    reply: bool = False
    prefix: str | None = None
    time: str | None = None

    def __post_init__(self) -> None:
        _need(self.sender, "sender")
        _need(self.target, "target")
        _need(self.command, "command")


@dataclass(frozen=True, slots=True)
class Join(Event):
    """Someone joined a channel; ``own`` when it is us."""

    nick: str
    channel: str
    prefix: str | None = None
    own: bool = False

    def __post_init__(self) -> None:
        _need(self.nick, "nick")
        _need(self.channel, "channel")


@dataclass(frozen=True, slots=True)
class Part(Event):
    """Someone left a channel; ``own`` when it is us."""

    nick: str
    channel: str
    reason: str = ""
    own: bool = False

    def __post_init__(self) -> None:
        _need(self.nick, "nick")
        _need(self.channel, "channel")


@dataclass(frozen=True, slots=True)
class Kick(Event):
    """``by`` kicked ``nick`` out of ``channel``; ``own`` when we were kicked."""

    channel: str
    nick: str
    by: str
    reason: str = ""
    own: bool = False

    def __post_init__(self) -> None:
        _need(self.nick, "nick")
        _need(self.channel, "channel")


@dataclass(frozen=True, slots=True)
class Quit(Event):
    """Someone sharing a channel with us disconnected."""

    nick: str
    reason: str = ""

    def __post_init__(self) -> None:
        _need(self.nick, "nick")


@dataclass(frozen=True, slots=True)
class NickChange(Event):
    """``old`` is now called ``new``; ``own`` when it is us."""

    old: str
    new: str
    own: bool = False

    def __post_init__(self) -> None:
        _need(self.old, "old")
        _need(self.new, "new")


@dataclass(frozen=True, slots=True)
class Topic(Event):
    """A channel's topic, as set (``setter`` given) or as told on join (``setter`` None)."""

    channel: str
    topic: str
    setter: str | None = None

    def __post_init__(self) -> None:
        _need(self.channel, "channel")


@dataclass(frozen=True, slots=True)
class ErrorReply(Event):
    """An error numeric no request was waiting for (e.g. 404 when a channel refused a message).

    Attributes:
        code: the three digits.
        params: the parameters after our nick (often the target first).
        text: the server's explanation (the last parameter).
    """

    code: str
    params: tuple[str, ...] = ()
    text: str = ""

    def __post_init__(self) -> None:
        if not (len(self.code) == 3 and self.code.isdigit()):
            raise ValueError(f"code must be three digits, not {self.code!r}")


@dataclass(frozen=True, slots=True)
class Connected(Event):
    """Registration completed: the client can chat as ``nick`` on ``server``."""

    nick: str
    server: str = ""

    def __post_init__(self) -> None:
        _need(self.nick, "nick")


@dataclass(frozen=True, slots=True)
class Disconnected(Event):
    """The connection ended.

    Attributes:
        reason: why (``"EOF"``, ``"ping timeout"``, the server's ERROR text...).
        unconfirmed: lines written to this connection that the server had not confirmed when it
            dropped, and that are given up: they may or may not have arrived
            (``delivery="at_most_once"``).
        resending: lines written and not confirmed that will be written again, with the same
            idempotency key, on the next connection (``exactly_once``, ``at_least_once``).
    """

    reason: str
    unconfirmed: tuple[Outgoing, ...] = ()
    resending: tuple[Outgoing, ...] = ()

    def __post_init__(self) -> None:
        _need(self.reason, "reason")


@dataclass(frozen=True, slots=True)
class Reconnecting(Event):
    """The client will try again in ``delay`` seconds (``attempt`` counts from 1)."""

    attempt: int
    delay: float
    reason: str = ""

    def __post_init__(self) -> None:
        if self.attempt < 1:
            raise ValueError("attempt counts from 1")
        if self.delay < 0:
            raise ValueError("delay must not be negative")


@dataclass(frozen=True, slots=True)
class GaveUp(Event):
    """The client stopped reconnecting; ``unsent`` is every line that was never sent."""

    reason: str
    unsent: tuple[Outgoing, ...] = ()

    def __post_init__(self) -> None:
        _need(self.reason, "reason")
