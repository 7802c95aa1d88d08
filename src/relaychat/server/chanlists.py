"""Channel list modes besides bans: ban exceptions ``+e``, invite exceptions ``+I`` and quiets
``+q``, as modern servers have them (ISUPPORT ``EXCEPTS``, ``INVEX``, ``MAXLIST``).

- ``+e <mask>``: a matching user is not banned (``+b``) nor quieted (``+q``).
- ``+I <mask>``: a matching user may join an invite-only (``+i``) channel without an invite.
- ``+q <mask>``: a matching user may join but not speak (unless voiced or an operator).

Every list is shaped like ``Channel.bans``: ``(mask, set by, set at)``; masks are normalised
to ``nick!user@host`` like bans. The four lists share one bound, ``limits.maxbans``
(``MAXLIST=beIq:N``). Listing: 348/349 (``e``), 346/347 (``I``), 728/729 (``q``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.numerics import safe_param
from relaychat.server.masks import match_mask, normalize_ban_mask
from relaychat.server.modes import ModeChange
from relaychat.server.state import Channel, User

if TYPE_CHECKING:
    from relaychat.server.core import Replies, ServerCore

__all__ = [
    "EXTRA_LISTS",
    "apply_list",
    "is_excepted",
    "is_invexed",
    "is_quieted",
    "list_entries",
    "send_list",
]

#: The list modes this module handles (``b`` stays in ``commands/modes.py``).
EXTRA_LISTS = "eIq"

_LISTS: dict[str, tuple[str, N.Numeric, N.Numeric]] = {
    "e": ("excepts", N.RPL_EXCEPTLIST, N.RPL_ENDOFEXCEPTLIST),
    "I": ("invexes", N.RPL_INVITELIST, N.RPL_ENDOFINVITELIST),
    "q": ("quiets", N.RPL_QUIETLIST, N.RPL_ENDOFQUIETLIST),
}


def _entries(channel: Channel, mode: str) -> list[tuple[str, str, int]]:
    entries: list[tuple[str, str, int]] = getattr(channel, _LISTS[mode][0])
    return entries


def list_entries(channel: Channel) -> int:
    """How many entries all the channel's list modes hold together (``b``, ``e``, ``I``, ``q``)."""
    return len(channel.bans) + len(channel.excepts) + len(channel.invexes) + len(channel.quiets)


def _matches(entries: list[tuple[str, str, int]], user: User) -> bool:
    return any(match_mask(mask, user.prefix) for mask, _, _ in entries)


def is_excepted(channel: Channel, user: User) -> bool:
    """Whether a ``+e`` mask of ``channel`` matches ``user``."""
    return bool(channel.excepts) and _matches(channel.excepts, user)


def is_invexed(channel: Channel, user: User) -> bool:
    """Whether a ``+I`` mask of ``channel`` matches ``user``."""
    return bool(channel.invexes) and _matches(channel.invexes, user)


def is_quieted(channel: Channel, user: User) -> bool:
    """Whether ``user`` is quieted in ``channel``: a ``+q`` mask matches and no ``+e`` does."""
    return (
        bool(channel.quiets) and _matches(channel.quiets, user) and not is_excepted(channel, user)
    )


def send_list(core: ServerCore, channel: Channel, mode: str, out: Replies) -> None:
    """The entries of list ``mode`` and its end numeric."""
    _, item, end = _LISTS[mode]
    for mask, setter, when in _entries(channel, mode):
        if mode == "q":
            out.numeric(item, channel.name, "q", mask, setter, str(when))
        else:
            out.numeric(item, channel.name, mask, setter, str(when))
    if mode == "q":
        out.numeric(end, channel.name, "q")
    else:
        out.numeric(end, channel.name)


def apply_list(
    core: ServerCore, channel: Channel, user: User, change: ModeChange, out: Replies
) -> ModeChange | None:
    """Add or remove one mask of list ``change.mode``; what to announce, or ``None``."""
    param = change.param
    assert param is not None
    if safe_param(param) != param:
        out.numeric(N.ERR_INVALIDMODEPARAM, channel.name, change.mode, "*", text="Invalid mask")
        return None
    mask = normalize_ban_mask(param)
    entries = _entries(channel, change.mode)
    folded = [irc_lower(m) for m, _, _ in entries]
    key = irc_lower(mask)
    if change.adding:
        if key in folded:
            return None
        if list_entries(channel) >= core.config.limits.maxbans:
            out.numeric(N.ERR_BANLISTFULL, channel.name, mask, text="Channel list is full")
            return None
        entries.append((mask, user.prefix, int(core.now)))
        return ModeChange(True, change.mode, mask)
    if key not in folded:
        return None
    removed = entries.pop(folded.index(key))
    return ModeChange(False, change.mode, removed[0])
