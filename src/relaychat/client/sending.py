"""What a client session sends: the user's lines and requests, paced, written and settled.

Part of the sans-I/O client (:mod:`relaychat.client.protocol`): :class:`Sending` is the base of
:class:`~relaychat.client.protocol.ClientProtocol`, holding the methods that queue the user's
lines (``send_text``, ``send_tags``), requests (``request``, ``join``, ``part``, ``quit``),
write them as pacing allows (the token bucket, the in-flight window, idempotency keys, labels)
and settle their outcomes. The state they use is set up by ``ClientProtocol.__init__`` and
``connection_made``; the attributes are declared here for the type checker.

Rules (those of ``protocol.py``, for this half):
1. Nothing here reads the clock or touches a socket: every method takes ``now``; bytes go to
   ``_out`` for the caller's ``data_to_send``.
2. Every line handed over ends in exactly one outcome (``_settle`` reports it, once).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from relaychat.client.config import ClientConfig
from relaychat.client.errors import ClientClosed
from relaychat.client.events import ErrorReply, Event, Outgoing
from relaychat.client.guarantee import IDEM_TAG, DeliveryState
from relaychat.client.keepalive import Keepalive
from relaychat.client.outbox import Outbox
from relaychat.client.requests import (
    Confirmed,
    Dropped,
    LineRejected,
    Outcome,
    Repeated,
    RequestDone,
    RequestLost,
    Tracker,
    Unconfirmed,
)
from relaychat.protocol.bucket import TokenBucket
from relaychat.protocol.message import Message as IrcMessage
from relaychat.protocol.text import split_text, text_budget

__all__ = ["Sending", "check_target", "error_reply"]

log = logging.getLogger("relaychat.client")


def error_reply(msg: IrcMessage) -> ErrorReply:
    """The :class:`ErrorReply` event for an error numeric."""
    return ErrorReply(msg.command, msg.params[1:-1], msg.param(len(msg.params) - 1))


class Sending:
    """The sending half of a client session (see the module docstring)."""

    # Set by ClientProtocol.__init__ / connection_made (declared for the type checker).
    config: ClientConfig
    debug: bool
    closed: bool
    connected: bool
    ready: bool
    dead: str | None
    nick: str
    wanted_nick: str
    caps: set[str]
    isupport: dict[str, str]
    channels: dict[str, tuple[str, str]]
    outbox: Outbox
    delivery: DeliveryState
    tracker: Tracker
    bucket: TokenBucket
    keepalive: Keepalive
    _fold: Callable[[str], str]
    _new_key: Callable[[], str]
    _next_id: int
    _internal: dict[int, str]
    _events: list[Event]
    _outcomes: list[Outcome]
    _out: list[bytes]
    _control: deque[tuple[int, IrcMessage]]
    _user_len: int
    _host_len: int

    # --- the user's requests ----------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def send_text(
        self, target: str, text: str, now: float, *, notice: bool = False
    ) -> tuple[Outgoing, ...]:
        """Queue ``text`` for ``target``, split into lines that fit.

        Returns:
            The lines queued (each will end in exactly one outcome).

        Raises:
            ValueError: the target is malformed or the text is empty.
            OutboxFull: the outbox has no room for all the lines; none were queued.
            ClientClosed: the session is over.
        """
        if self.closed:
            raise ClientClosed()
        check_target(target)
        command = "NOTICE" if notice else "PRIVMSG"
        nick_len = max(len(self.nick), len(self.wanted_nick)) + 3  # room for nick_ fallbacks
        budget = text_budget(
            command, target, nick_len=nick_len, user_len=self._user_len, host_len=self._host_len
        )
        pieces = split_text(text, budget)
        if not pieces:
            raise ValueError("nothing to send")
        first = self._next_id
        items = tuple(
            Outgoing(first + i, command, target, piece, self._new_key())
            for i, piece in enumerate(pieces)
        )
        self.outbox.put(items)
        self._next_id += len(items)
        self._pump(now)
        return items

    def send_tags(self, target: str, tags: dict[str, str], now: float) -> Outgoing:
        """Queue a TAGMSG of client-only ``tags`` (``{"+typing": "active"}``) for ``target``.

        Returns:
            The line queued (it ends in exactly one outcome, like a message).

        Raises:
            ValueError: the target is malformed, or a tag name is not ``+name``.
            OutboxFull: the outbox has no room.
            ClientClosed: the session is over.
        """
        if self.closed:
            raise ClientClosed()
        check_target(target)
        item = Outgoing(
            self._next_id, "TAGMSG", target, "", self._new_key(), tuple(sorted(tags.items()))
        )
        self.outbox.put((item,))
        self._next_id += 1
        self._pump(now)
        return item

    def request(self, command: str, *params: str, now: float) -> int:
        """Send a command and collect its reply (see :mod:`relaychat.client.requests`).

        Returns:
            The request id; its :class:`RequestDone` or :class:`RequestLost` comes in
            :meth:`outcomes`.

        Raises:
            ClientClosed: not connected and registered (wait for readiness first).
        """
        if not self.ready or self.dead:
            raise ClientClosed("not connected")
        rid = self._new_id()
        self._control.append((rid, IrcMessage(command.upper(), params)))
        self._pump(now)
        return rid

    def join(self, channel: str, now: float, key: str = "") -> int | None:
        """Join ``channel`` now and after every reconnect.

        Returns:
            The id of the JOIN request when connected, else ``None`` (joined once ready).
        """
        self.channels[self._fold(channel)] = (channel, key)
        if not self.ready or self.dead:
            return None
        return self.request("JOIN", *((channel, key) if key else (channel,)), now=now)

    def forget_channel(self, channel: str) -> None:
        """Stop rejoining ``channel`` (after a refused JOIN, or a PART)."""
        self.channels.pop(self._fold(channel), None)

    def part(self, channel: str, now: float, reason: str = "") -> int | None:
        """Leave ``channel`` and stop rejoining it; returns the PART request id when connected."""
        self.forget_channel(channel)
        if not self.ready or self.dead:
            return None
        return self.request("PART", *((channel, reason) if reason else (channel,)), now=now)

    def quit(self, reason: str, now: float) -> None:
        """Write QUIT now (the server then closes the connection)."""
        if self.connected:
            self._urgent(IrcMessage("QUIT", (reason,) if reason else ()), now)

    def is_channel(self, name: str) -> bool:
        """Whether ``name`` is a channel on this server (ISUPPORT CHANTYPES)."""
        return name[:1] in self.isupport.get("CHANTYPES", "#&")

    @property
    def busy(self) -> bool:
        """Whether lines are queued or unconfirmed."""
        return bool(len(self.outbox) or self.tracker.inflight)

    # --- writing ----------------------------------------------------------------------------

    def _emit(self, msg: IrcMessage) -> None:
        if self.debug:
            log.debug("> %s", msg.serialize())
        self._out.append(msg.to_bytes())

    def _urgent(self, msg: IrcMessage, now: float) -> None:
        self.bucket.take(now)
        self._emit(msg)

    def _ping(self, token: str, now: float) -> None:
        self._urgent(IrcMessage("PING", (token,)), now)
        self.keepalive.sent(token, now)

    def _pump(self, now: float) -> None:
        """Write what pacing allows: control lines first, then the outbox; then ask to confirm."""
        if not self.ready or self.dead:
            return
        cfg = self.config
        tracker, bucket = self.tracker, self.bucket
        while bucket.ready(now):
            if self._control:
                rid, msg = self._control.popleft()
                if rid:
                    self._write_request(rid, msg, now)
                else:
                    self._urgent(msg, now)
            elif len(self.outbox) and tracker.inflight < cfg.max_inflight:
                self._write_line(self.outbox.pop(), now)
            else:
                break
        if tracker.open_items and (
            not len(self.outbox)
            or tracker.inflight >= cfg.max_inflight
            or now - tracker.opened_at >= cfg.ack_delay
        ):
            token = tracker.close()
            if token:
                self._ping(token, now)
        probe = tracker.probe_due(now, cfg.ack_delay)
        if probe is not None and probe <= now:  # is the oldest labeled line's answer coming?
            self._ping(tracker.keepalive(), now)

    def _write_line(self, item: Outgoing, now: float) -> None:
        """Write one user line: with its key (message-tags), labeled when the server can."""
        tags: dict[str, str] = {}
        if "message-tags" in self.caps:
            tags[IDEM_TAG] = item.key
        elif item.command == "TAGMSG":
            self._settle([LineRejected(item, "message-tags", "the server has no message-tags")])
            return
        labeled = "labeled-response" in self.caps
        if labeled:
            tags["label"] = self.tracker.labeled_line(item, now)
        self._urgent(item.to_message(tags), now)
        if not labeled:
            self.tracker.add_item(item, now)
        if self.delivery.wrote(item, now):
            self._outcomes.append(Repeated((item,)))

    def _write_request(self, rid: int, msg: IrcMessage, now: float) -> None:
        if "labeled-response" in self.caps:
            label = self.tracker.labeled(rid, msg.command)
            self._urgent(IrcMessage(msg.command, msg.params, tags={"label": label}), now)
            return
        token = self.tracker.close()
        if token:
            self._ping(token, now)
        self._urgent(msg, now)
        self._ping(self.tracker.request(rid, msg.command), now)

    def _settle(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            if isinstance(outcome, Confirmed | Unconfirmed | Dropped):
                self.delivery.settled(outcome.items)
            elif isinstance(outcome, LineRejected):
                self.delivery.settled((outcome.item,))
            if isinstance(outcome, RequestDone | RequestLost) and outcome.id in self._internal:
                channel = self._internal.pop(outcome.id)
                if isinstance(outcome, RequestDone) and (err := outcome.reply.error) is not None:
                    log.warning("could not rejoin %s: %s", channel, err.serialize())
                    self.forget_channel(channel)
                    if err.command.isdigit():
                        self._events.append(error_reply(err))
                continue
            self._outcomes.append(outcome)


def check_target(target: str) -> None:
    """Raise ValueError unless ``target`` is one channel or nick."""
    if not target or " " in target or target[0] == ":" or any(c in target for c in "\r\n\0,"):
        raise ValueError(f"{target!r} is not a valid target")
