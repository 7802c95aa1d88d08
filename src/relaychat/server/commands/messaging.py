"""Messages between users: PRIVMSG, NOTICE (RFC 2812 §3.3) and AWAY (§4.1).

PRIVMSG is the hot path: one dict lookup per target, one serialisation per target, the same
bytes to every member.
"""

from __future__ import annotations

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.commands.channels import is_banned
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
    targets = params[0].split(",") if "," in params[0] else (params[0],)
    limit = core.config.limits.maxtargets
    for i, target in enumerate(targets):
        if i >= limit:
            if not notice:
                out.numeric(
                    N.ERR_TOOMANYTARGETS, target, text=f"Too many targets (at most {limit})"
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
                    out.numeric(N.ERR_NOSUCHCHANNEL, name)
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
            data = Message(verb, (shown, text), user.prefix).to_bytes()
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
                    out.numeric(N.ERR_NOSUCHNICK, target)
                continue
            dest.peer.send(Message(verb, (dest.nick, text), user.prefix).to_bytes())
            if not notice and dest.away is not None:
                out.numeric(N.RPL_AWAY, dest.nick, text=dest.away)


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
