"""Server bans and STATS: KLINE, UNKLINE, DLINE, UNDLINE (as Solanum/Hybrid spell them), STATS.

The model is ``server/bans.py``. A new ban applies at once: every connection it matches is
closed with ``ERROR :Banned: <reason>`` (its channels see ``K-lined``/``D-lined``). K-lines are
checked again when a client registers (:func:`refuse_banned`), D-lines when a connection is
accepted (``ServerCore.accept``). Every change is audited (``server/audit.py``, snomask ``b``).
"""

from __future__ import annotations

import time

from relaychat.protocol import numerics as N
from relaychat.protocol.message import Message
from relaychat.server.audit import audit
from relaychat.server.bans import (
    Ban,
    BanError,
    human_duration,
    normalize_dline,
    normalize_kline,
    parse_duration,
)
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.state import User

__all__ = ["add_ban", "close_banned", "refuse_banned", "remove_ban"]

#: The longest ban reason kept.
REASON_MAX = 200
DEFAULT_REASON = "No reason given"


def refuse_banned(core: ServerCore, user: User, out: Replies) -> bool:
    """At registration: a K-lined client gets 465 and is closed. Returns whether it was."""
    ban = core.bans.kline_for(user.username, user.host, user.ip, core.now)
    if ban is None:
        return False
    out.numeric(N.ERR_YOUREBANNEDCREEP, text=f"You are banned from this server: {ban.reason}")
    out.flush()
    core.disconnect(user, "K-lined", error=f"Banned: {ban.reason}")
    return True


def _kline_target(core: ServerCore, mask: str) -> str:
    """A nick of someone online stands for ``*@<their host>``, as on other servers."""
    if "@" not in mask and "." not in mask and ":" not in mask and "/" not in mask:
        target = core.find_user(mask)
        if target is not None:
            return f"*@{target.ip}"
    return mask


def add_ban(
    core: ServerCore,
    actor: User | str,
    kind: str,
    mask: str,
    *,
    duration: int | None = None,
    reason: str = "",
) -> tuple[Ban, int]:
    """Set a ban and apply it at once.

    Args:
        actor: the oper (or ``"admin"``) setting it.
        kind: ``"K"`` or ``"D"``.
        mask: ``user@host`` (or an online nick) for K, an address or network for D.
        duration: seconds until it expires; ``None`` for a permanent ban.
        reason: shown to whoever it bans.

    Returns:
        The ban, and how many connections it closed.

    Raises:
        BanError: the mask is not valid or too wide.
    """
    normal = normalize_kline(_kline_target(core, mask)) if kind == "K" else normalize_dline(mask)
    reason = (reason or DEFAULT_REASON)[:REASON_MAX]
    setter = actor if isinstance(actor, str) else actor.prefix
    now = core.now
    ban = Ban(kind, normal, reason, setter, now, now + duration if duration else None)
    core.bans.add(ban)
    audit(
        core,
        actor,
        f"{kind}LINE",
        "b",
        target=normal,
        reason=reason,
        duration=duration or None,
    )
    return ban, close_banned(core, ban)


def close_banned(core: ServerCore, ban: Ban) -> int:
    """Close every connection ``ban`` (already in ``core.bans``) matches; returns how many
    (a ban set here, or on another node of a cluster: ``cluster/bans.py``)."""
    kind, reason, now = ban.kind, ban.reason, core.now
    hit = []
    for other in list(core.connections.values()):
        if other.quitting:
            continue
        if kind == "D":
            matched = core.bans.dline_for(other.ip, now) is ban
        else:
            matched = bool(other.username) and (
                core.bans.kline_for(other.username, other.host, other.ip, now) is ban
            )
        if matched:
            hit.append(other)
    for other in hit:
        if other.registered:
            other.send(
                N.reply(
                    core.name,
                    other.nick,
                    N.ERR_YOUREBANNEDCREEP,
                    text=f"You are banned from this server: {reason}",
                ).to_bytes()
            )
        core.disconnect(other, f"{kind}-lined", error=f"Banned: {reason}")
    return len(hit)


def remove_ban(core: ServerCore, actor: User | str, kind: str, mask: str) -> Ban | None:
    """Lift a ban (audited); ``None`` when there was none on ``mask``."""
    ban = core.bans.remove(kind, mask)
    if ban is not None:
        audit(core, actor, f"UN{kind}LINE", "b", target=ban.mask)
    return ban


def _notice(core: ServerCore, user: User, out: Replies, text: str) -> None:
    out.add(Message("NOTICE", (user.nick, text), core.name))


def _set(core: ServerCore, user: User, msg: Message, out: Replies, kind: str) -> None:
    params = list(msg.params)
    duration = parse_duration(params[0]) if len(params) > 1 else None
    if duration is not None:
        params.pop(0)
    mask = params[0]
    reason = params[1] if len(params) > 1 else ""
    try:
        ban, closed = add_ban(core, user, kind, mask, duration=duration, reason=reason)
    except BanError as exc:
        out.standard("FAIL", msg.command, "INVALID_MASK", mask, text=exc.reason)
        return
    lasting = "permanently" if duration is None else f"for {human_duration(duration)}"
    _notice(
        core,
        user,
        out,
        f"{kind}-line on {ban.mask} set {lasting} ({ban.reason}); {closed} connection(s) closed",
    )


def _unset(core: ServerCore, user: User, msg: Message, out: Replies, kind: str) -> None:
    mask = msg.params[0]
    if kind == "K":
        mask = _kline_target(core, mask)
    ban = remove_ban(core, user, kind, mask)
    if ban is None:
        out.standard("FAIL", msg.command, "NO_SUCH_BAN", mask, text=f"No {kind}-line on {mask}")
        return
    _notice(core, user, out, f"{kind}-line on {ban.mask} removed")


@command("KLINE", min_params=1, oper=True)
def kline(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """KLINE [<duration>] <user@host|nick> [<reason>]

    Ban a user@host mask from the server, for a duration in seconds or for good.
    """
    _set(core, user, msg, out, "K")


@command("UNKLINE", min_params=1, oper=True)
def unkline(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """UNKLINE <user@host>

    Lift a K-line.
    """
    _unset(core, user, msg, out, "K")


@command("DLINE", min_params=1, oper=True)
def dline(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """DLINE [<duration>] <ip|cidr> [<reason>]

    Ban an address or network from connecting, for a duration in seconds or for good.
    """
    _set(core, user, msg, out, "D")


@command("UNDLINE", min_params=1, oper=True)
def undline(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """UNDLINE <ip|cidr>

    Lift a D-line.
    """
    _unset(core, user, msg, out, "D")


@command("STATS", min_params=1)
def stats(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """STATS <k|d|u>

    Server statistics: K-lines (k), D-lines (d) or uptime (u).
    """
    query = msg.params[0][:1]
    now = core.now
    if query in ("k", "K", "d", "D"):
        if not user.is_oper:
            out.numeric(N.ERR_NOPRIVILEGES)
            return
        if query in "kK":
            for ban in sorted(core.bans.klines.values(), key=lambda b: b.set_at):
                if ban.active(now):
                    username, _, host = ban.mask.rpartition("@")
                    out.numeric(N.RPL_STATSKLINE, "K", host, "*", username, text=ban.describe(now))
        else:
            for ban in sorted(core.bans.dlines.values(), key=lambda b: b.set_at):
                if ban.active(now):
                    out.numeric(N.RPL_STATSDLINE, "D", ban.mask, text=ban.describe(now))
    elif query == "u":
        up = int(now - core.started)
        days, rest = divmod(up, 86_400)
        text = f"Server Up {days} days {time.strftime('%H:%M:%S', time.gmtime(rest))}"
        out.numeric(N.RPL_STATSUPTIME, text=text)
    out.numeric(N.RPL_ENDOFSTATS, query or "*")
