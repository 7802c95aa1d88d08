"""The IRC client as a state machine, sans I/O: bytes and time in; bytes, events, outcomes out.

Rules:
1. No sockets, no tasks, no clock: every method that depends on time takes ``now``. The asyncio
   layer (:mod:`relaychat.client.connection`) only moves bytes and sleeps until
   :meth:`ClientProtocol.next_deadline`.
2. One object lives for a whole *session*: the wanted nick, the channels to rejoin, the outbox
   and the history survive reconnects. Everything per connection is reset in
   :meth:`ClientProtocol.connection_made`.
3. The protocol decides when a link is dead (:attr:`dead`) and whether retrying is pointless
   (:attr:`fatal`); the connection layer closes the socket and reconnects.
4. Every line the user handed over ends in exactly one outcome: confirmed, rejected,
   unconfirmed (the link dropped after writing it) or dropped (never written).
5. Delivery (``guarantee.py``, docs/delivery.md): every line carries an idempotency key. The
   guarantee is decided on each connection once registered (:attr:`guarantee`); lines written
   and not confirmed when a link drops are written again with the same key, or reported as
   maybe delivered, as it says.

Using it: call :meth:`connection_made`, then feed :meth:`receive_data` and :meth:`tick`; after
each call write :meth:`data_to_send`, deliver :meth:`events_received`, settle
:meth:`outcomes`, and close the link if :attr:`dead` is set; finally :meth:`connection_lost`.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable

from relaychat.client.config import ClientConfig
from relaychat.client.errors import ClientClosed
from relaychat.client.events import (
    Connected,
    Disconnected,
    Event,
    GaveUp,
    Outgoing,
)
from relaychat.client.guarantee import IDEM_TAG, DeliveryState, new_key
from relaychat.client.history import HISTORY_CAPS, History
from relaychat.client.keepalive import Keepalive
from relaychat.client.outbox import Outbox
from relaychat.client.requests import (
    Dropped,
    Outcome,
    RequestLost,
    Tracker,
    Unconfirmed,
    is_error,
)
from relaychat.client.sending import Sending, error_reply
from relaychat.errors import InputTooLong, ProtocolError
from relaychat.protocol.bucket import TokenBucket
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.lines import LineBuffer, Overlong
from relaychat.protocol.message import MAX_LINE_BYTES, decode_line, parse, parse_bytes
from relaychat.protocol.message import Message as IrcMessage
from relaychat.protocol.text import DEFAULT_HOST_LEN, DEFAULT_USER_LEN

__all__ = ["HANDLERS", "IDEM_TAG", "WANTED_CAPS", "ClientProtocol", "fallback_nick", "nick_of"]

#: Every server-command handler, by command: ``(protocol, message, now) -> None``. The handlers
#: live in ``client/handlers.py``, which fills this table when ``relaychat.client`` is imported.
HANDLERS: dict[str, Callable[[ClientProtocol, IrcMessage, float], None]] = {}


def nick_of(source: str | None) -> str:
    """The nick part of a message source (``nick!user@host``)."""
    return (source or "").split("!", 1)[0]


log = logging.getLogger("relaychat.client")

#: Capabilities the client asks for when offered (IRCv3). ``labeled-response`` needs ``batch``.
WANTED_CAPS = (
    "batch",
    "message-tags",
    "server-time",
    "labeled-response",
    "draft/chathistory",
    "chathistory",
)
#: Numerics in the error range that are a normal part of registration (422: no MOTD).
_NOT_ERRORS = frozenset({"422"})
#: Seconds to wait after 001 for the end of the MOTD before starting anyway.
BURST_WAIT = 2.0
_COMMAND = re.compile(r"(?:[A-Za-z]+|[0-9]{3})\Z")


def fallback_nick(base: str, attempt: int, nicklen: int = 30) -> str:
    """The nick to try after ``attempt`` refusals: ``nick_``, ``nick__``, ``nick___``, ``nick1``...

    Args:
        base: the wanted nick.
        attempt: how many nicks were refused so far (1 for the first fallback).
        nicklen: the longest nick the server takes; the base is shortened to fit.

    Returns:
        The candidate nick.
    """
    suffix = "_" * attempt if attempt <= 3 else str(attempt - 3)
    return base[: max(1, nicklen - len(suffix))] + suffix


class ClientProtocol(Sending):
    """One client session, sans I/O.

    What the user hands over (lines, requests, joins) and how it is paced, written and settled
    is :class:`~relaychat.client.sending.Sending`'s; this class is the link, the clock and what
    the server sends.

    Args:
        config: the settings (host, port and TLS are the connection layer's business).
        now: the current time.
        keys: makes each line's idempotency key (:func:`new_key`; injectable for tests).
    """

    def __init__(
        self, config: ClientConfig, now: float, *, keys: Callable[[], str] = new_key
    ) -> None:
        self.config = config
        self._new_key = keys
        self.debug = log.isEnabledFor(logging.DEBUG)
        self._fold: Callable[[str], str] = irc_lower
        # Session state: survives reconnects.
        self.wanted_nick = config.nick
        self.channels: dict[str, tuple[str, str]] = {}  # folded -> (name, key)
        for name in config.channels:
            self.channels[irc_lower(name)] = (name, "")
        self.history = History(
            lambda s: self._fold(s),
            max_seen=config.seen_msgids,
            limit=config.history_limit,
            max_pages=config.history_pages,
        )
        self.outbox = Outbox(config.outbox_size)
        self.delivery = DeliveryState(
            config.delivery,
            resend_unconfirmed=config.resend_unconfirmed,
            account=config.sasl is not None,
        )
        self._own_nicks: set[str] = set()
        self._next_id = 1
        self._internal: dict[int, str] = {}  # request id -> channel, for rejoins
        self._events: list[Event] = []
        self._outcomes: list[Outcome] = []
        self._out: list[bytes] = []
        self.fatal = False
        #: Seconds the server's ERROR asked us to wait before connecting again (0: none).
        self.retry_after = 0.0
        self.closed = False
        # Connection state: reset by connection_made.
        self.connected = False
        self.registered = False
        self.ready = False
        self.dead: str | None = None
        self.nick = config.nick
        self.server = ""
        self.caps: set[str] = set()
        self.isupport: dict[str, str] = {}
        self.joined: dict[str, str] = {}
        self.keepalive = Keepalive(interval=config.ping_interval, timeout=config.ping_timeout)
        self.bucket = TokenBucket(config.pace_rate, config.pace_burst, now)
        self.tracker = Tracker(lambda s: self._fold(s))
        self._control: deque[tuple[int, IrcMessage]] = deque()  # (request id or 0, line)
        self._lines = LineBuffer(MAX_LINE_BYTES)
        self._offered: dict[str, str] = {}
        self._ls_more: list[str] = []
        self._cap_pending = 0
        self._sasl_started = False
        self._nick_tries = 0
        self._garbage = 0
        self._idem_sent = False
        self._connected_at = now
        self._registered_at = now
        self._user_len = DEFAULT_USER_LEN
        self._host_len = DEFAULT_HOST_LEN

    # --- what the caller takes after every call ---------------------------------------------

    def data_to_send(self) -> bytes:
        """The bytes to write now (empty when there are none); the caller must write them all."""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def events_received(self) -> list[Event]:
        """The events produced since the last call, in order."""
        events, self._events = self._events, []
        return events

    def outcomes(self) -> list[Outcome]:
        """What became of lines and requests since the last call (for the callers waiting)."""
        out, self._outcomes = self._outcomes, []
        return out

    # --- the link ---------------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        """A new connection is open: start registration (CAP LS 302, PASS, NICK, USER).

        Raises:
            ClientClosed: the session was closed or gave up.
        """
        if self.closed:
            raise ClientClosed()
        cfg = self.config
        self.connected = True
        self.registered = self.ready = self._sasl_started = False
        self.dead = None
        self.retry_after = 0.0
        self.nick = self.wanted_nick
        self.server = ""
        self.caps = set()
        self.isupport = {}
        self.joined = {}
        self._fold = irc_lower
        self._offered, self._ls_more, self._cap_pending = {}, [], 0
        self._nick_tries = self._garbage = 0
        self.delivery.connection_made()
        self._idem_sent = False
        self._connected_at = now
        self._lines = LineBuffer(MAX_LINE_BYTES)
        self.keepalive.start(now)
        self.bucket.reset(now)
        self.tracker = Tracker(lambda s: self._fold(s))
        self._control.clear()
        self._urgent(IrcMessage("CAP", ("LS", "302")), now)
        if cfg.password:
            self._urgent(IrcMessage("PASS", (cfg.password,)), now)
        self._urgent(IrcMessage("NICK", (self.nick,)), now)
        self._urgent(IrcMessage("USER", (cfg.username, "0", "*", cfg.realname)), now)

    def connection_lost(self, reason: str, now: float) -> None:
        """The connection ended (for any reason). Settles what was in flight.

        Lines written and not confirmed are reported in :class:`Disconnected` (or queued again
        with ``resend_unconfirmed``); pending requests fail.
        """
        if not self.connected:
            return
        self.connected = self.registered = self.ready = False
        self.dead = self.dead or reason
        items, lost = self.tracker.lost(reason)
        self._settle(lost)
        for rid, _ in self._control:
            if rid:
                self._settle([RequestLost(rid, reason)])
        self._control.clear()
        self.history.abandon()
        self._out.clear()
        unconfirmed: tuple[Outgoing, ...] = ()
        resending: tuple[Outgoing, ...] = ()
        if items and self.delivery.resends:
            resending = tuple(items)
            self.outbox.push_front(items)
        elif items:
            unconfirmed = tuple(items)
            self._settle([Unconfirmed(unconfirmed, reason)])
        self._events.append(Disconnected(reason, unconfirmed, resending))

    def give_up(self, reason: str, *, announce: bool = True) -> tuple[Outgoing, ...]:
        """End the session: every line still queued is dropped (reported in :class:`GaveUp`).

        Args:
            reason: why, for the outcomes and the event.
            announce: emit :class:`GaveUp` (not wanted for a plain close).

        Returns:
            The lines that were never sent.
        """
        self.closed = True
        items = self.outbox.drain()
        if items:
            self._settle([Dropped(items, reason)])
        if announce:
            self._events.append(GaveUp(reason, items))
        return items

    def mark_dead(self, reason: str, *, fatal: bool = False) -> None:
        """Declare the link dead (the connection layer then closes it); the first reason wins."""
        self._die(reason, fatal=fatal)

    def _die(self, reason: str, *, fatal: bool = False) -> None:
        if self.dead is None:
            self.dead = reason
            log.info("connection is dead: %s", reason)
        self.fatal = self.fatal or fatal

    # --- time -------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Run the timers: registration deadline, keepalive, dead-peer detection, pacing."""
        if not self.connected or self.dead:
            return
        if not self.registered:
            if now - self._connected_at >= self.config.registration_timeout:
                self._die("registration timed out")
                return
        elif not self.ready and now - self._registered_at >= BURST_WAIT:
            self._become_ready(now)
        if self.keepalive.dead(now):
            self._die("ping timeout: no PONG in %g s" % self.config.ping_timeout)
            return
        if self.registered and self.keepalive.ping_due(now):
            self._ping(self.tracker.keepalive(), now)
        self._pump(now)

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`tick` must next run (``None`` when not connected)."""
        if not self.connected or self.dead:
            return None
        times = [self.keepalive.deadline()]
        if not self.registered:
            times.append(self._connected_at + self.config.registration_timeout)
        elif not self.ready:
            times.append(self._registered_at + BURST_WAIT)
        else:
            writable = len(self.outbox) and self.tracker.inflight < self.config.max_inflight
            if self._control or writable:  # (a full window waits for a PONG, not the clock)
                times.append(now + self.bucket.wait(now))
            if self.tracker.open_items:
                times.append(self.tracker.opened_at + self.config.ack_delay)
            probe = self.tracker.probe_due(now, self.config.ack_delay)
            if probe is not None:
                times.append(probe)
        return min(times)

    # --- reading ----------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the connection; handles every complete line."""
        if not self.connected or self.dead:
            return
        self.keepalive.received(now)
        for item in self._lines.feed(data):
            msg = self._parse(item)
            if msg is None:
                self._garbage += 1
                if self._garbage >= self.config.max_garbage_lines:
                    self._die("the server sent garbage (%d bad lines)" % self._garbage)
                    return
                continue
            self._garbage = 0
            self._handle(msg, now)
            if self.dead:
                return
        self._pump(now)

    def _parse(self, item: bytes | Overlong) -> IrcMessage | None:
        if isinstance(item, Overlong) or b"\0" in item:
            return None
        try:
            try:
                msg = parse_bytes(item)
            except InputTooLong:  # be lenient with a server's slightly long lines
                msg = parse(decode_line(item))
        except ProtocolError:
            return None
        return msg if _COMMAND.match(msg.command) else None

    def _handle(self, msg: IrcMessage, now: float) -> None:
        if self.debug:
            log.debug("< %s", msg.serialize())
        consumed = False
        if self.registered:
            label = self.tracker.label_of(msg) if "labeled-response" in self.caps else None
            if label is not None:
                line = self.tracker.is_line(label)
                self._settle(self.tracker.labeled_reply(label, msg, now))
                if line:
                    self.keepalive.lag = self.tracker.lag  # (the round trip of a line)
                    if not self._echo_to_self(msg):
                        return  # the answer to a line we wrote: its Delivery says it all
                consumed = True
            elif self.history.owns(msg.tags.get("batch")):
                self.history.add(msg.tags["batch"], msg)
                return
            elif self._reply_like(msg):
                consumed = self.tracker.reply(msg)
        handler = HANDLERS.get(msg.command)
        if handler is not None:
            handler(self, msg, now)
        if (
            self.registered
            and not consumed
            and is_error(msg)
            and msg.command.isdigit()
            and msg.command not in _NOT_ERRORS
        ):
            self._events.append(error_reply(msg))

    def _echo_to_self(self, msg: IrcMessage) -> bool:
        """Whether ``msg`` (the echo of a line we wrote) went to our own nick: it is then also
        a message received (one msgid: the separate delivery, if any, is a duplicate)."""
        return msg.command in ("PRIVMSG", "NOTICE") and self._own(msg.param(0))

    def _reply_like(self, msg: IrcMessage) -> bool:
        cmd = msg.command
        if cmd.isdigit() or cmd in ("FAIL", "WARN", "NOTE"):
            return True
        if cmd in ("PING", "PONG", "BATCH", "PRIVMSG", "NOTICE"):
            return False
        return self._fold(nick_of(msg.source)) == self._fold(self.nick)

    def _own(self, nick: str) -> bool:
        return self._fold(nick) == self._fold(self.nick)

    def _become_ready(self, now: float) -> None:
        if self.ready:
            return
        self.ready = True
        self._decide_guarantee(now)
        if self.dead:
            return
        self._events.append(Connected(self.nick, self.server))
        for name, key in list(self.channels.values()):
            rid = self._new_id()
            self._internal[rid] = name
            self._control.append((rid, IrcMessage("JOIN", (name, key) if key else (name,))))
        if self.caps & HISTORY_CAPS and "batch" in self.caps:
            targets = [name for name, _ in self.channels.values()]
            targets += [t for t, _ in self.history.last.values() if not self.is_channel(t)]
            limit = self.isupport.get("CHATHISTORY", "")
            for line in self.history.resume(targets, int(limit) if limit.isdigit() else None):
                self._control.append((0, line))
        self._pump(now)

    @property
    def guarantee(self) -> str | None:
        """The delivery guarantee on this (or the last) connection (``guarantee.py``)."""
        return self.delivery.guarantee

    def _decide_guarantee(self, now: float) -> None:
        """Decide the guarantee of the connection just registered; give up the lines waiting
        to be written again that it cannot cover (``guarantee.py`` rule 2)."""
        fatal = self.delivery.decide(self.caps)
        if fatal is not None:
            self._die(fatal, fatal=True)
            return
        ids, reason = self.delivery.cannot_resend(self.outbox, now)
        if ids:
            self._settle([Unconfirmed(self.outbox.take(ids), reason)])
