"""Operator commands: OPER, KILL and WALLOPS (RFC 2812 §3.1.4, §3.7.1, §4.7)."""

from __future__ import annotations

from relaychat.passwords import verify_password
from relaychat.protocol import numerics as N
from relaychat.protocol.message import Message
from relaychat.server.audit import audit
from relaychat.server.commands.params import fit
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.masks import match_mask
from relaychat.server.state import User

__all__: list[str] = []


@command("OPER", min_params=2)
def oper(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """OPER <name> <password>

    Become an IRC operator.
    """
    name, password = msg.params[0], msg.params[1]
    for entry in core.config.opers:
        if entry.name == name and verify_password(entry.password_hash, password):
            out.numeric(N.RPL_YOUREOPER)
            if not user.is_oper:
                core.set_oper(user, True)
                user.oper_name = name
                out.add(Message("MODE", (user.nick, "+o"), user.prefix))
                audit(core, user, "OPER", "o", target=name)
            return
    out.numeric(N.ERR_PASSWDMISMATCH)
    # Never the password: only who tried which name (server/audit.py).
    audit(core, user, "OPER-FAILED", "o", target=name)


@command("KILL", min_params=2, oper=True)
def kill(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """KILL <nick> <reason>

    Disconnect a user.
    """
    nick, reason = msg.params[0], msg.params[1]
    target = core.find_user(nick)
    if target is None:
        if match_mask(nick, core.name):
            out.numeric(N.ERR_CANTKILLSERVER)
        else:
            out.numeric(N.ERR_NOSUCHNICK, nick)
        return
    out.flush()
    audit(core, user, "KILL", "k", target=target.prefix, reason=reason)
    core.disconnect(target, f"Killed ({user.nick} ({reason}))")


@command("WALLOPS", min_params=1, oper=True)
def wallops(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """WALLOPS <text>

    Send a message to every user with user mode +w (operators only).
    """
    text = msg.params[0]
    if not text:
        out.numeric(N.ERR_NEEDMOREPARAMS, "WALLOPS")
        return
    overhead = len(user.prefix.encode()) + len("WALLOPS") + 5
    line = Message("WALLOPS", (fit(text, overhead),), user.prefix).to_bytes()
    for other in core.wallops:
        other.send(line)


@command("REHASH", oper=True)
def rehash(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """REHASH"""
    hook = core.rehash_hook
    if hook is None:
        out.standard("FAIL", "REHASH", "CANNOT_RELOAD", text="This server cannot reload")
        return
    name, error = hook()
    audit(core, user, "REHASH", "r", target=name, result="refused" if error else "ok")
    if error is not None:
        # One clear line; the running configuration stays.
        out.standard(
            "FAIL",
            "REHASH",
            "INVALID_CONFIG",
            text=f"Reload refused, the running configuration stays: {error}",
        )
        return
    out.numeric(N.RPL_REHASHING, name, text="Rehashing")
