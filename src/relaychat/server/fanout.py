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
"""

from __future__ import annotations

from collections.abc import Iterable

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
            own = skip.send if skip is not None else None
            for send in sends:
                if send is not own:
                    send(line)
        for other in tagged:
            if other is not skip and (not tagmsg or other.profile & MSGTAGS):
                other.send(event.data(other))

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
