"""How the core's traffic goes out: relayed events (their time, msgid and account tags) and
their delivery to channels (a base of :class:`~relaychat.server.core.ServerCore`).

Rules:
1. An event is serialised once (:class:`~relaychat.server.relay.Relay`); every plain recipient
   gets the same bytes, the others one serialisation per tag profile.
2. Channel traffic goes out through :meth:`Fanout.broadcast` and :meth:`Fanout.deliver`: to this
   server's members (:meth:`Fanout.deliver_local`, the hot loop of the server), or, when a
   backplane joins this core to others (``server/backplane.py``), to the members on every node
   in the network's order.
3. No clock is read: the time tag is the core's ``now``.
4. Coalesced fan-out (``batch_fanout``, set by the network edge): the plain members' lines of
   one channel in one loop turn wait in one batch, and each member gets them joined, in one
   ``send`` at the end of the turn (:meth:`Fanout.flush_batch`), instead of one ``send`` per
   message. Every member sees exactly the bytes and order it would have seen one by one: while
   a batch waits, each of its members' ``send`` is ``send_held`` (flush the batch, then send),
   and the batch is flushed before any other fan-out, when the channel's membership or tag
   profiles change, and before a connection closes. One batch at a time (a message to another
   channel flushes it), so the order across channels is kept too. On a cluster the same holds
   for the events a node delivers from the channels stream (``cluster/feeds.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

from relaychat.protocol.message import Message
from relaychat.protocol.servertime import format_server_time
from relaychat.server.backplane import Backplane
from relaychat.server.bookkeeping import Bookkeeping
from relaychat.server.caps import MSGTAGS
from relaychat.server.isupport import BOT_MODE
from relaychat.server.relay import Relay
from relaychat.server.state import Channel, User

__all__ = ["Fanout"]


class Fanout(Bookkeeping):
    """Relayed events and their fan-out (a base of :class:`~relaychat.server.core.ServerCore`,
    which sets these attributes)."""

    now: float
    backplane: Backplane | None
    _msgid_prefix: str
    _msgid_counter: int
    _batch_counter: int
    _time_cache: tuple[int, str]
    #: Rule 4: coalesce channel fan-out per loop turn (the edge sets it and ``batch_hook``).
    batch_fanout: bool
    #: Called when a batch opens: the edge makes sure :meth:`flush_batch` runs this turn.
    batch_hook: Callable[[], None] | None
    _batch_channel: Channel | None
    #: The batch channel's cached fan-out when it opened: ``(sends, tagged, plain members)``.
    _batch_cache: tuple[list[Callable[[bytes], None]], list[User], list[User]] | None
    _batch_lines: list[bytes]
    _batch_skips: list[User | None]

    # --- events ----------------------------------------------------------------------------------

    def new_msgid(self) -> str:
        """A new message id (message-ids), unique across restarts."""
        self._msgid_counter += 1
        return f"{self._msgid_prefix}{self._msgid_counter:x}"

    def new_batch_id(self) -> bytes:
        """A new batch reference tag."""
        self._batch_counter += 1
        return b"b%x" % self._batch_counter

    def time_tag(self) -> str:
        """``now`` as a server-time value: ``YYYY-MM-DDThh:mm:ss.sssZ`` (cached per ``now``)."""
        # Cached per millisecond (the tag's resolution), not per ``now``: the edge passes a new
        # ``now`` with every read, and a busy server reads thousands of times a millisecond.
        ms = int(self.now * 1000)
        cached_at, text = self._time_cache
        if cached_at != ms:
            text = format_server_time(ms)
            self._time_cache = (ms, text)
        return text

    def event(
        self,
        user: User,
        command: str,
        *params: str,
        client_tags: dict[str, str] | None = None,
        ext_params: tuple[str, ...] | None = None,
        msgid: str | None = None,
    ) -> Relay:
        """A relayed event from ``user``: its line, time, msgid and account tags.

        Args:
            ext_params: the parameters for clients with extended-join, when they differ.
            msgid: reuse this id (a message stored in history keeps one id everywhere).
        """
        line = Message(command, params, user.prefix).to_bytes()
        ext = Message(command, ext_params, user.prefix).to_bytes() if ext_params else None
        return self.relay(user, line, client_tags=client_tags, ext_line=ext, msgid=msgid)

    def relay(
        self,
        user: User,
        line: bytes,
        *,
        client_tags: dict[str, str] | None = None,
        ext_line: bytes | None = None,
        msgid: str | None = None,
    ) -> Relay:
        """A relayed event from ``user`` whose line is already serialised: now's time, a new
        msgid (or ``msgid``), ``user``'s account and, for a bot, the ``bot`` tag."""
        return Relay(
            line,
            time=self.time_tag(),
            msgid=msgid or self.new_msgid(),
            account=user.account,
            client_tags=client_tags,
            ext_line=ext_line,
            bot=BOT_MODE in user.modes,
        )

    # --- channel traffic (rule 2) ----------------------------------------------------------------

    def neighbours(self, user: User) -> Iterable[User]:
        """Every other user sharing a channel with ``user``, each once."""
        chans = user.channels
        if not chans:
            return ()
        if len(chans) == 1:
            (only,) = chans.values()
            return [u for u in only.members if u is not user]
        seen: dict[User, None] = {}
        for channel in chans.values():
            for member in channel.members:
                seen[member] = None
        seen.pop(user, None)
        return seen.keys()

    def broadcast(self, channel: Channel, event: Relay, skip: User | None = None) -> None:
        """Send ``event`` to every member of ``channel`` except ``skip`` (rule 2)."""
        if self.backplane is not None:
            self.backplane.channel_event(channel, event, skip)
        else:
            self.deliver_local(channel, event, skip)

    def deliver(
        self,
        channel: Channel,
        event: Relay,
        sender: User,
        *,
        status: str = "",
        tagmsg: bool = False,
    ) -> None:
        """A PRIVMSG, NOTICE or TAGMSG from ``sender`` to ``channel``'s members (rule 2).

        Args:
            status: ``"@"``: to its operators only; ``"+"``: to its voiced and operators.
            tagmsg: a TAGMSG: only members with ``message-tags`` get it.
        """
        if self.backplane is not None:
            self.backplane.channel_event(channel, event, sender, status=status, tagmsg=tagmsg)
        else:
            self.deliver_local(channel, event, sender, status=status, tagmsg=tagmsg)

    def deliver_local(
        self,
        channel: Channel,
        event: Relay,
        skip: User | None,
        *,
        status: str = "",
        tagmsg: bool = False,
    ) -> None:
        """Send ``event`` to this server's members of ``channel`` except ``skip``.

        The hot loop of the server: one call per plain member, the same bytes for all; one
        serialisation per tag profile for the others. ``status`` and ``tagmsg`` as in
        :meth:`deliver`.
        """
        line = event.line
        if self._batch_channel is not None and (
            status
            or tagmsg
            or channel is not self._batch_channel
            or channel._fanout is not self._batch_cache
        ):
            self.flush_batch()
        if self._batch_channel is not None or (self.batch_fanout and not status and not tagmsg):
            if self._batch_channel is None:
                self._open_batch(channel, line, skip)
            else:
                self._batch_lines.append(line)
                self._batch_skips.append(skip)
            for other in channel.fanout()[1]:
                if other is not skip:
                    other.send(event.data(other))
            return
        if status:
            for other, ms in channel.members.items():
                if other is skip or other.server is not None:
                    continue
                if ms.op or (status == "+" and ms.voice):
                    if not other.profile:
                        if not tagmsg:
                            other.send(line)
                    elif not tagmsg or other.profile & MSGTAGS:
                        other.send(event.data(other))
            return
        sends, tagged = channel.fanout()
        if not tagmsg:
            own = skip.send_direct if skip is not None else None
            for send in sends:
                if send is not own:
                    send(line)
        for other in tagged:
            if other is not skip and (not tagmsg or other.profile & MSGTAGS):
                other.send(event.data(other))

    def _open_batch(self, channel: Channel, line: bytes, skip: User | None) -> None:
        """Rule 4: start a batch for ``channel`` with ``line``; hold its plain members."""
        channel.fanout()  # builds the cache if it is not there
        self._batch_channel = channel
        self._batch_cache = channel._fanout
        self._batch_lines = [line]
        self._batch_skips = [skip]
        for member in channel.plain_members():
            hold = member.send_held
            if hold is None:
                hold = member.send_held = partial(self._send_after_batch, member)
            member.send = hold
        if self.batch_hook is not None:
            self.batch_hook()

    def _send_after_batch(self, user: User, data: bytes) -> None:
        """``user.send`` while a batch holds it: the batch first, then ``data``."""
        self.flush_batch()
        user.send(data)

    def flush_batch(self) -> None:
        """Rule 4: send the waiting batch, if any, to its members (one ``send`` each) and
        release them. The edge calls this at the end of every loop turn, before the commit."""
        cache = self._batch_cache
        if self._batch_channel is None or cache is None:
            return
        self._batch_channel = None
        self._batch_cache = None
        lines = self._batch_lines
        skips = self._batch_skips
        sends, _, held = cache
        for member in held:
            member.send = member.send_direct
        self._batch_lines = []
        self._batch_skips = []
        data = b"".join(lines) if len(lines) > 1 else lines[0]
        own: dict[Callable[[bytes], None], bytes] = {}
        for skip in skips:
            if skip is not None and skip.send_direct not in own:
                own[skip.send_direct] = b"".join(
                    ln for ln, sk in zip(lines, skips, strict=True) if sk is not skip
                )
        if not own:
            for send in sends:
                send(data)
            return
        for send in sends:
            mine = own.get(send, data)
            if mine:
                send(mine)

    def watchers(self, user: User, cap: str) -> list[User]:
        """Who hears of ``user``'s changes under ``cap`` (``away-notify``, ``account-notify``,
        ``setname``, ``chghost``, ``draft/metadata-2``): the users sharing a channel with it and
        having ``cap``, and those monitoring it with ``extended-monitor`` and ``cap``
        (https://ircv3.net/specs/extensions/extended-monitor). Each once, never ``user``."""
        found = [other for other in self.neighbours(user) if cap in other.caps]
        monitoring = self.monitors.get(user.key)
        if monitoring:
            seen = set(found)
            for other in monitoring:
                if (
                    other is not user
                    and other not in seen
                    and cap in other.caps
                    and "extended-monitor" in other.caps
                ):
                    found.append(other)
        return found
