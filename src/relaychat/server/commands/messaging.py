"""Messages between users: PRIVMSG, NOTICE (RFC 2812 §3.3) and AWAY (§4.1).

PRIVMSG is the hot path: one dict lookup per target, one serialisation per target, the same
bytes to every member.
"""

from __future__ import annotations

from collections.abc import Iterable

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.commands.channels import is_banned
from relaychat.server.commands.params import fit, safe
from relaychat.server.core import Replies, ServerCore
from relaychat.server.registry import command
from relaychat.server.state import User

__all__: list[str] = []


def _deliver(core: ServerCore, user: User, msg: Message, out: Replies, notice: bool) -> None:
    verb = msg.command
    params = msg.params
    if not params or not params[0]:
        if not notice:
            out.numeric(N.ERR_NORECIPIENT, text=f"No recipient given ({verb})")
        return
    if len(params) < 2 or not params[1]:
        if not notice:
            out.numeric(N.ERR_NOTEXTTOSEND)
        return
    text = params[1]
    user.last_active = core.now
    if "," in params[0]:
        # Each target once, whatever its case (RFC 1459 casemapping).
        targets: Iterable[str] = {irc_lower(t): t for t in params[0].split(",")}.values()
    else:
        targets = (params[0],)
    limit = core.config.limits.maxtargets
    i = 0
    for target in targets:
        if not target:
            continue
        i += 1
        if i > limit:
            if not notice:
                out.numeric(
                    N.ERR_TOOMANYTARGETS, safe(target), text=f"Too many targets (at most {limit})"
                )
            continue
        # STATUSMSG: "@#chan" reaches the channel's operators, "+#chan" its voiced and operators.
        status = ""
        name = target
        if target[:1] in ("@", "+") and target[1:2] == "#":
            status, name = target[0], target[1:]
        if name[:1] == "#":
            channel = core.channels.get(irc_lower(name))
            if channel is None:
                if not notice:
                    out.numeric(N.ERR_NOSUCHCHANNEL, safe(name))
                continue
            member = channel.members.get(user)
            if member is None and "n" in channel.modes:
                if not notice:
                    out.numeric(
                        N.ERR_CANNOTSENDTOCHAN,
                        channel.name,
                        text="Cannot send to channel (no external messages)",
                    )
                continue
            if not (member is not None and (member.op or member.voice)):
                if "m" in channel.modes:
                    if not notice:
                        out.numeric(
                            N.ERR_CANNOTSENDTOCHAN, channel.name, text="Cannot send to channel (+m)"
                        )
                    continue
                if channel.bans and is_banned(channel, user):
                    if not notice:
                        out.numeric(
                            N.ERR_CANNOTSENDTOCHAN,
                            channel.name,
                            text="Cannot send to channel (you are banned)",
                        )
                    continue
            shown = status + channel.name if status else channel.name
            data = _relay(verb, shown, text, user)
            if status:
                for other, ms in channel.members.items():
                    if other is not user and (ms.op or (status == "+" and ms.voice)):
                        other.peer.send(data)
            else:
                for other in channel.members:
                    if other is not user:
                        other.peer.send(data)
        else:
            dest = core.users.get(irc_lower(target))
            if dest is None or not dest.registered:
                if not notice:
                    out.numeric(N.ERR_NOSUCHNICK, safe(target))
                continue
            dest.peer.send(_relay(verb, dest.nick, text, user))
            if not notice and dest.away is not None:
                out.numeric(N.RPL_AWAY, dest.nick, text=dest.away)


def _relay(verb: str, target: str, text: str, user: User) -> bytes:
    """The relayed line, its text cut so that it fits in 512 bytes with the sender's prefix."""
    # ":prefix VERB target :text" -- the sender's own line had no prefix, so it may not fit.
    # The text always goes as a trailing parameter (with its colon), as naive clients expect.
    # Built directly rather than through Message: this is the hottest line in the server, and
    # every part is already valid (the parser refused CR, LF and NUL; names are validated).
    line = f":{user.prefix} {verb} {target} :{text}\r\n".encode("utf-8", "replace")
    if len(line) <= 512:
        return line
    overhead = len(user.prefix.encode()) + len(verb) + len(target.encode()) + 5
    return f":{user.prefix} {verb} {target} :{fit(text, overhead)}\r\n".encode("utf-8", "replace")


@command("PRIVMSG")
def privmsg(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """PRIVMSG <target>{,<target>} <text>"""
    _deliver(core, user, msg, out, notice=False)


@command("NOTICE")
def notice(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """NOTICE <target>{,<target>} <text>"""
    _deliver(core, user, msg, out, notice=True)


@command("AWAY")
def away(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """AWAY [<message>]"""
    text = msg.param(0)
    if text:
        user.away = text[: core.config.limits.awaylen]
        out.numeric(N.RPL_NOWAWAY)
    else:
        user.away = None
        out.numeric(N.RPL_UNAWAY)
