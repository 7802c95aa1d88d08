"""Typing notifications: the ``+typing`` client-only tag on TAGMSG.

Spec: https://ircv3.net/specs/client-tags/typing. Clients send ``@+typing=active|paused|done
TAGMSG <target>`` and must not send one within 3 seconds of another for a target. relaychat
relays them like any TAGMSG (to channel members, or the other nick, that have message-tags) and
never stores them in history (TAGMSG is not history: ``messaging.py``).

Rule: a TAGMSG whose only client tag is ``+typing`` is dropped, quietly, when the same value went
to the same target from the same connection less than ``limits.typing_interval`` seconds
before (0: no limit). A change of value (``active`` -> ``done``) always goes through, so a
receiver never keeps showing a stale "typing..."; what a client can make the server fan out is
at most one notification per value per interval per target, plus its changes, which the flood
limit (``limits.flood_rate``) bounds like every line. The state is one entry per recent target
per connection, pruned as it grows past :data:`MAX_TRACKED`.
"""

from __future__ import annotations

from relaychat.protocol.casemap import irc_lower
from relaychat.server.state import User

__all__ = ["MAX_TRACKED", "TAG", "allow"]

#: The client-only tag.
TAG = "+typing"
#: Targets remembered per connection before the stale ones are pruned.
MAX_TRACKED = 32


def allow(user: User, target: str, tags: dict[str, str], now: float, interval: float) -> bool:
    """Whether a TAGMSG with ``tags`` from ``user`` to ``target`` should be relayed (the rule).

    Args:
        tags: the TAGMSG's client-only tags.
        now: the current time.
        interval: ``limits.typing_interval``.
    """
    if interval <= 0 or len(tags) != 1 or TAG not in tags:
        return True  # other client tags (a reaction, ...) are never dropped here
    value = tags[TAG]
    seen = user.typing
    if seen is None:
        seen = user.typing = {}
    key = irc_lower(target)
    last = seen.get(key)
    if last is not None and last[0] == value and now - last[1] < interval:
        return False
    if last is None and len(seen) >= MAX_TRACKED:
        for stale in [k for k, (_, when) in seen.items() if now - when >= interval]:
            del seen[stale]
        if len(seen) >= MAX_TRACKED:
            seen.clear()
    seen[key] = (value, now)
    return True
