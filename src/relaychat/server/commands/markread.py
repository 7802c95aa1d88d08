"""Read markers: ``MARKREAD`` (IRCv3 draft/read-marker).

Spec: https://ircv3.net/specs/extensions/read-marker. A read marker is the time of the last
message a user has read in one conversation, shared by all the user's clients.

Rules:
1. Whose: a logged-in connection's markers are its account's, kept in the history store (so
   they outlive the connection and a restart; ``store/base.py`` rule 8); a connection that is not
   logged in keeps its own in memory (``User.read_markers``), gone when it closes. Both are bounded
   by ``history.max_read_markers``, the oldest forgotten first.
2. Never backwards: a ``MARKREAD`` set to a time at or before the kept one changes nothing and
   is answered with the kept time; a time in the future is taken as now.
3. When a marker moves, every connection of the account that has ``draft/read-marker`` is told
   (``MARKREAD <target> timestamp=...`` from the server); the setter is always answered. Markers
   are never shown to anyone else.
4. On JOIN, a client with ``draft/read-marker`` gets the channel's marker (or ``*``) right after
   its JOIN line, so before the NAMES list ends (366), as the spec requires.
5. Like every record of the store, a new marker is answered only once it is committed (the edge
   holds the bytes until the group commit, ``server/listeners.py``).
6. Errors are standard replies: ``FAIL MARKREAD NEED_MORE_PARAMS``, ``INVALID_PARAMS`` (a bad
   target or timestamp), ``INTERNAL_ERROR`` (the store failed).
7. Logging in: the spec gives markers to "the user", shared by all its clients, and says
   nothing of a login; here the user is the account once logged in. The markers the connection
   set before logging in are carried to the account, each by rule 2 (the later time wins, so
   none moves backwards), then dropped from the connection. Every marker of the account that
   moved is sent to the account's connections with the capability (rule 3), and the connection
   that logged in is sent the account's marker of every target whose marker it knew (its own
   ones, and its channels': it was sent those on JOIN) when the account's differs. Logging out
   starts the connection afresh with no markers (what it knew was the account's).

The capability is offered with history only (``listeners.py``); without a store the command is
unknown.
"""

from __future__ import annotations

import logging
import re

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.protocol.servertime import format_server_time, parse_server_time
from relaychat.server.commands.registration import valid_nick
from relaychat.server.core import ACCOUNT_HOOKS, Replies, ServerCore, command
from relaychat.server.state import User

__all__ = ["CAP", "marker_line", "send_on_join"]

log = logging.getLogger("relaychat.server")

#: The capability name (draft: the spec is a work in progress).
CAP = "draft/read-marker"
#: A channel name as JOIN accepts it (``channels.valid_channel``; not imported: JOIN imports us).
_CHANNEL = re.compile(r"#[^\x00\x07\r\n ,:]+\Z")


def _owner(user: User) -> str | None:
    """The store owner of ``user``'s markers: its folded account, or ``None`` (rule 1)."""
    return irc_lower(user.account) if user.account is not None else None


def _kept(core: ServerCore, user: User, key: str) -> int | None:
    owner = _owner(user)
    if owner is None:
        return (user.read_markers or {}).get(key)
    assert core.history is not None
    return core.history.read_marker(owner, key)


def _keep(core: ServerCore, user: User, key: str, ms: int) -> None:
    owner = _owner(user)
    if owner is not None:
        assert core.history is not None
        core.history.set_read_marker(owner, key, ms)
        return
    markers = user.read_markers
    if markers is None:
        markers = user.read_markers = {}
    markers[key] = ms
    if len(markers) > core.config.history.max_read_markers:
        del markers[min(markers, key=lambda t: (markers[t], t))]


def marker_line(core: ServerCore, target: str, ms: int | None) -> bytes:
    """``:server MARKREAD <target> <timestamp=...|*>``."""
    value = "*" if ms is None else "timestamp=" + format_server_time(ms)
    return Message("MARKREAD", (target, value), core.name).to_bytes()


def _target_key(core: ServerCore, target: str) -> str | None:
    """The folded key of a well-formed channel or nick ``target``, else ``None``."""
    lim = core.config.limits
    if target[:1] == "#":
        ok = len(target) <= lim.channellen and _CHANNEL.match(target) is not None
        return irc_lower(target) if ok else None
    return irc_lower(target) if valid_nick(target, lim.nicklen) else None


@command("MARKREAD")
def markread(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """MARKREAD <target> [timestamp=YYYY-MM-DDThh:mm:ss.sssZ]

    Set or ask how far you have read a channel or conversation (draft/read-marker).
    """
    if core.history is None or core.config.history.max_read_markers <= 0:
        out.numeric(N.ERR_UNKNOWNCOMMAND, "MARKREAD")
        return
    target = msg.param(0)
    if not target:
        out.standard("FAIL", "MARKREAD", "NEED_MORE_PARAMS", text="Missing parameters")
        return
    key = _target_key(core, target)
    if key is None:
        out.standard(
            "FAIL", "MARKREAD", "INVALID_PARAMS", target, text="Not a channel or a nickname"
        )
        return
    ms: int | None = None
    if len(msg.params) > 1:
        raw = msg.params[1]
        kind, _, value = raw.partition("=")
        ms = parse_server_time(value) if kind == "timestamp" else None
        if ms is None:
            out.standard(
                "FAIL",
                "MARKREAD",
                "INVALID_PARAMS",
                raw,
                text="Expected timestamp=YYYY-MM-DDThh:mm:ss.sssZ",
            )
            return
        ms = min(ms, int(core.now * 1000))  # rule 2: not in the future
    try:
        kept = _kept(core, user, key)
        moved = ms is not None and (kept is None or ms > kept)
        if moved:
            assert ms is not None
            _keep(core, user, key, ms)
            kept = ms
    except Exception:
        log.exception("MARKREAD %s failed (connection #%d)", target, user.id)
        out.standard(
            "FAIL",
            "MARKREAD",
            "INTERNAL_ERROR",
            target,
            text="The read timestamp could not be set",
        )
        return
    line = marker_line(core, target, kept)
    out.raw(line)
    if moved and user.account is not None:  # rule 3
        for other in core.sessions.get(user.account, ()):
            if other is not user and other.registered and CAP in other.caps:
                other.send(line)


def send_on_join(core: ServerCore, user: User, channel_name: str, out: Replies) -> None:
    """Rule 4: the channel's marker for a client with the capability, after its JOIN line.

    A store failure is logged and skipped: it must not spoil the JOIN.
    """
    if CAP not in user.caps or core.history is None:
        return
    try:
        kept = _kept(core, user, irc_lower(channel_name))
    except Exception:
        log.exception("read marker on JOIN %s failed (connection #%d)", channel_name, user.id)
        return
    out.raw(marker_line(core, channel_name, kept))


def _on_account(core: ServerCore, user: User) -> None:
    """Rule 7: carry ``user``'s own markers to the account it logged in to."""
    own, user.read_markers = user.read_markers or {}, None
    account = user.account
    if account is None or core.history is None or core.config.history.max_read_markers <= 0:
        return
    # What this connection was told: its own markers, and on JOIN its channels' (or *).
    known: dict[str, int | None] = dict(own)
    for key in user.channels:
        known.setdefault(key, None)
    if not known:
        return
    shown = {key: channel.name for key, channel in user.channels.items()}
    moved: dict[str, int] = {}
    told: dict[str, int | None] = {}
    try:
        for key, was in known.items():
            kept = _kept(core, user, key)
            if key in own and (kept is None or own[key] > kept):
                _keep(core, user, key, own[key])
                moved[key] = kept = own[key]
            if kept != was:
                told[key] = kept
    except Exception:  # the login stands; the markers stay as the store has them
        log.exception("read markers at login failed (connection #%d)", user.id)
        return
    if user.registered and CAP in user.caps:
        for key, ms in told.items():
            if key not in moved:
                user.send(marker_line(core, shown.get(key, key), ms))
    for key, ms in moved.items():
        line = marker_line(core, shown.get(key, key), ms)
        for other in core.sessions.get(account, ()):
            if other.registered and CAP in other.caps:
                other.send(line)


ACCOUNT_HOOKS.append(_on_account)
