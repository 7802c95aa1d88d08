"""MONITOR: presence notifications (https://ircv3.net/specs/extensions/monitor), and
extended-monitor (https://ircv3.net/specs/extensions/extended-monitor).

Rules:
1. The index is ``core.monitors`` (folded nick -> the users watching it); each user's own list
   is ``user.monitoring`` (folded -> as given). Both change together, here and in
   ``ServerCore.unmonitor_all``; a notice is one dict lookup, never a scan of all users.
2. A nick is online while a registered user holds it: 730 RPL_MONONLINE (``nick!user@host``)
   when it comes (registration, a NICK to it), 731 RPL_MONOFFLINE when it goes (the core, on
   QUIT and every other disconnect; a NICK away from it). A change of case is neither.
3. A list holds at most ``limits.monitor`` nicks (ISUPPORT ``MONITOR=``); the targets past it
   get 734 ERR_MONLISTFULL. Targets must be valid nicks: masks are ignored (the spec forbids
   monitoring them).
4. extended-monitor: AWAY, ACCOUNT, SETNAME and CHGHOST reach watchers that have it (and the
   matching cap) through ``ServerCore.watchers``; here, an away target added or coming online
   is followed by its AWAY (with away-notify), and its draft/metadata-2 keys the watcher
   subscribed to.
"""

from __future__ import annotations

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.commands.metadata import user_keys_for
from relaychat.server.commands.params import pack, valid_nick
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.state import User

__all__ = ["announce_online", "nick_changed"]

#: Room for the targets of one 73x line: 512 less the server name, nick and numeric overhead.
_ROOM = 400


def _extended(core: ServerCore, watcher: User, target: User) -> bytes:
    """What an extended-monitor watcher learns when ``target`` comes online or is added."""
    if "extended-monitor" not in watcher.caps:
        return b""
    away = b""
    if target.away is not None and "away-notify" in watcher.caps:
        away = core.event(target, "AWAY", target.away).data(watcher)
    return away + user_keys_for(core, watcher, target)


def announce_online(core: ServerCore, user: User) -> None:
    """``user`` now holds its nick as a registered user: tell who monitors it (730)."""
    watchers = core.monitors.get(user.key)
    if not watchers:
        return
    for watcher in list(watchers):
        if watcher is user:
            continue
        line = N.reply(core.name, watcher.nick, N.RPL_MONONLINE, text=user.prefix).to_bytes()
        watcher.send(line + _extended(core, watcher, user))


def nick_changed(core: ServerCore, user: User, old_key: str, old_nick: str) -> None:
    """After NICK: offline for the old nick and online for the new one, unless only the case
    changed (rule 2)."""
    if old_key == user.key:
        return
    core.monitor_offline(user, old_key, old_nick)
    announce_online(core, user)


@command("MONITOR", min_params=1)
def monitor(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """MONITOR <+|-> <nick>{,<nick>} | MONITOR <C|L|S>

    Watch nicks: 730/731 when they come online or leave; C clears, L lists, S shows the status.
    """
    op = msg.params[0].upper()
    if op in ("+", "-"):
        if len(msg.params) < 2 or not msg.params[1]:
            out.numeric(N.ERR_NEEDMOREPARAMS, "MONITOR")
            return
        names = [n for n in msg.params[1].split(",") if n]
        if op == "+":
            _add(core, user, names, out)
        else:
            _remove(core, user, names)
    elif op == "C":
        core.unmonitor_all(user)
    elif op == "L":
        listed = list(user.monitoring.values()) if user.monitoring else []
        for chunk in pack(listed, _ROOM):
            out.numeric(N.RPL_MONLIST, text=chunk)
        out.numeric(N.RPL_ENDOFMONLIST)
    elif op == "S":
        _status(core, user, list(user.monitoring.values()) if user.monitoring else [], out)
    else:
        out.standard(
            "FAIL", "MONITOR", "INVALID_PARAMS", msg.params[0], text="Use MONITOR + - C L or S"
        )


def _add(core: ServerCore, user: User, names: list[str], out: Replies) -> None:
    limit = core.config.limits.monitor
    nicklen = core.config.limits.nicklen
    watched = user.monitoring
    if watched is None:
        watched = user.monitoring = {}
    added: list[str] = []
    refused: list[str] = []
    for name in names:
        if not valid_nick(name, nicklen):
            continue  # a mask or junk: never monitored (rule 3)
        key = irc_lower(name)
        if key in watched:
            continue
        if len(watched) >= limit:
            refused.append(name)
            continue
        watched[key] = name
        core.monitors.setdefault(key, {})[user] = None
        added.append(name)
    if refused:
        for chunk in pack(refused, _ROOM - 10):
            out.numeric(N.ERR_MONLISTFULL, str(limit), chunk)
    _status(core, user, added, out)


def _remove(core: ServerCore, user: User, names: list[str]) -> None:
    watched = user.monitoring
    if not watched:
        return
    for name in names:
        key = irc_lower(name)
        if watched.pop(key, None) is None:
            continue
        others = core.monitors.get(key)
        if others is not None:
            others.pop(user, None)
            if not others:
                del core.monitors[key]


def _status(core: ServerCore, user: User, names: list[str], out: Replies) -> None:
    """730 for the online ones of ``names`` (with their AWAY and keys, rule 4), 731 for the rest."""
    online: list[User] = []
    offline: list[str] = []
    for name in names:
        found = core.find_user(name)
        if found is None:
            offline.append(name)
        else:
            online.append(found)
    for chunk in pack([u.prefix for u in online], _ROOM):
        out.numeric(N.RPL_MONONLINE, text=chunk)
    for chunk in pack(offline, _ROOM):
        out.numeric(N.RPL_MONOFFLINE, text=chunk)
    for target in online:
        extra = _extended(core, user, target)
        if extra:
            out.raw(extra)
