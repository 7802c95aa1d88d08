"""The core's bookkeeping: lookups, channel membership, the MONITOR index, the sessions of each
account and the counts LUSERS shows (a base of :class:`~relaychat.server.core.ServerCore`).

Rules:
1. State only: nothing here sends a line except the MONITOR offline notice (731), and nothing
   reads a clock or touches a socket.
2. Every index is kept in step with what it indexes, so no lookup is a scan: a channel without
   members ceases to exist, a MONITOR entry without watchers is removed, an account without a
   logged-in connection leaves :attr:`Bookkeeping.sessions`.
"""

from __future__ import annotations

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.server.state import Channel, User

__all__ = ["Bookkeeping"]


class Bookkeeping:
    """Who is where, and the indexes kept beside it (a base of
    :class:`~relaychat.server.core.ServerCore`, which sets these attributes)."""

    name: str
    users: dict[str, User]
    channels: dict[str, Channel]
    monitors: dict[str, dict[User, None]]
    sessions: dict[str, dict[User, None]]
    invisible_count: int
    oper_count: int

    # --- lookups and membership ------------------------------------------------------------------

    def find_user(self, nick: str) -> User | None:
        """The registered user holding ``nick``, any case."""
        user = self.users.get(irc_lower(nick))
        return user if user is not None and user.registered else None

    def find_channel(self, name: str) -> Channel | None:
        """The channel called ``name``, any case."""
        return self.channels.get(irc_lower(name))

    def add_member(self, channel: Channel, user: User, *, op: bool = False) -> None:
        """Put ``user`` in ``channel`` (state only)."""
        from relaychat.server.state import Membership

        channel.members[user] = Membership(op=op)
        channel.invalidate()
        user.channels[channel.key] = channel
        channel.invites.discard(user.key)

    def remove_member(self, channel: Channel, user: User) -> None:
        """Take ``user`` out of ``channel`` (state only); an empty channel ceases to exist."""
        user.channels.pop(channel.key, None)
        self._remove_member(channel, user)

    def _remove_member(self, channel: Channel, user: User) -> None:
        channel.members.pop(user, None)
        channel.invalidate()
        if not channel.members:
            self.channels.pop(channel.key, None)

    # --- MONITOR (the index; the command is commands/monitor.py) ---------------------------------

    def monitor_offline(self, user: User, key: str, nick: str) -> None:
        """Tell the users monitoring ``key`` that ``nick`` is gone (731 RPL_MONOFFLINE)."""
        for watcher in self.monitors.get(key, ()):
            if watcher is not user:
                watcher.send(
                    N.reply(self.name, watcher.nick, N.RPL_MONOFFLINE, text=nick).to_bytes()
                )

    def unmonitor_all(self, user: User) -> None:
        """Empty ``user``'s MONITOR list (MONITOR C, or when it leaves)."""
        watched = user.monitoring
        if not watched:
            return
        for key in watched:
            others = self.monitors.get(key)
            if others is not None:
                others.pop(user, None)
                if not others:
                    del self.monitors[key]
        watched.clear()

    def _forget_session(self, user: User) -> None:
        """Take ``user`` out of :attr:`sessions` (logging out, or leaving)."""
        if user.account is None:
            return
        others = self.sessions.get(user.account)
        if others is not None:
            others.pop(user, None)
            if not others:
                del self.sessions[user.account]

    def set_invisible(self, user: User, on: bool) -> None:
        """Give or take user mode +i, keeping the count for LUSERS."""
        self.invisible_count += _counted_mode(user, "i", on)

    def set_oper(self, user: User, on: bool) -> None:
        """Give or take user mode +o, keeping the count for LUSERS."""
        self.oper_count += _counted_mode(user, "o", on)


def _counted_mode(user: User, mode: str, on: bool) -> int:
    """Set or clear ``user``'s ``mode``; returns how the number of users with it changed."""
    if on == (mode in user.modes):
        return 0
    user.set_mode(mode, on)
    return 1 if on else -1
