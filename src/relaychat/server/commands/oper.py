"""Operator commands: OPER, KILL and WALLOPS (RFC 2812 §3.1.4, §3.7.1, §4.7).

OPER checks its argon2 hash on the worker, never on the event loop; the connection's later lines
wait for the answer (``server/pending.py``). An unknown operator name costs the same work as a
wrong password. Failed attempts are counted per connection and per address group; past
``throttle.oper_failures`` the next attempts get 464 with the seconds to wait, at no cost, after
a tarpit of ``throttle.tarpit`` seconds.
"""

from __future__ import annotations

from relaychat.passwords import verify_nothing, verify_password
from relaychat.protocol import numerics as N
from relaychat.protocol.message import Message
from relaychat.server.audit import audit
from relaychat.server.commands.params import fit
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.masks import match_mask
from relaychat.server.state import User
from relaychat.server.throttle import retry_text, seconds

__all__: list[str] = []


@command("OPER", min_params=2)
def oper(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """OPER <name> <password>

    Become an IRC operator.
    """
    name, password = msg.params[0], msg.params[1]
    opers = core.config.opers
    if not opers:
        out.numeric(N.ERR_PASSWDMISMATCH)
        audit(core, user, "OPER-FAILED", "o", target=name)
        return
    lockout = core.throttles.oper
    keys = (("ip", user.ip_group), ("connection", user.id))
    wait = max(lockout.wait(key, core.now) for key in keys)
    if wait > 0:
        core.ratelog.info(
            "OPER refused: locked out",
            "OPER from %s refused: too many failures (%d s to wait)",
            user.ip_group,
            seconds(wait),
            now=core.now,
        )

        def refuse(replies: Replies) -> None:
            left = max(lockout.wait(key, core.now) for key in keys)
            replies.numeric(
                N.ERR_PASSWDMISMATCH,
                text=f"Password incorrect (too many failed attempts: {retry_text(left)})",
            )

        core.tarpit(user, out, wait, refuse)
        return
    hashes = [entry.password_hash for entry in opers if entry.name == name]

    def job() -> bool:
        if not hashes:
            return verify_nothing(password)
        return any(verify_password(h, password) for h in hashes)

    def then(ok: bool | None, replies: Replies) -> None:
        if not ok:
            for key in keys:
                lockout.failure(key, core.now)
            replies.numeric(N.ERR_PASSWDMISMATCH)
            # Never the password: only who tried which name (server/audit.py).
            audit(core, user, "OPER-FAILED", "o", target=name)
            return
        lockout.success(keys[1])
        replies.numeric(N.RPL_YOUREOPER)
        if not user.is_oper:
            core.set_oper(user, True)
            user.oper_name = name
            replies.add(Message("MODE", (user.nick, "+o"), user.prefix))
            audit(core, user, "OPER", "o", target=name)

    def busy(replies: Replies) -> None:
        replies.numeric(
            N.ERR_PASSWDMISMATCH,
            text="Password not checked: the server is busy; try again in "
            f"{seconds(core.worker.retry_after())} s",
        )

    core.offload(user, out, job, then, busy=busy)


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
    """REHASH

    Read the configuration file again and apply what can change while running.
    """
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
