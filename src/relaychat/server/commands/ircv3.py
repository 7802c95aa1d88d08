"""IRCv3 commands: CAP negotiation, SETNAME and CHGHOST.

- CAP: https://ircv3.net/specs/extensions/capability-negotiation (302 values, multiline LS,
  cap-notify implied by 302). A client that sends ``CAP LS`` or ``CAP REQ`` before registering
  registers at ``CAP END``.
- SETNAME: https://ircv3.net/specs/extensions/setname
- CHGHOST: https://ircv3.net/specs/extensions/chghost (an operator command here).

AWAY, ACCOUNT, SETNAME and CHGHOST notifications also reach the users monitoring the user with
``extended-monitor`` (``ServerCore.watchers``).
"""

from __future__ import annotations

import re

from relaychat.protocol import numerics as N
from relaychat.protocol.message import Message
from relaychat.server.commands import metadata
from relaychat.server.commands.params import number
from relaychat.server.commands.registration import try_register
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.state import User

__all__ = ["REALNAME_MAX"]

#: The longest realname SETNAME accepts (announced as NAMELEN-free value on the cap).
REALNAME_MAX = 100
_HOST_RE = re.compile(r"[A-Za-z0-9.\-:/]+\Z")
_USER_RE = re.compile(r"~?[A-Za-z0-9_.\-]{1,10}\Z")


def _ls_lines(core: ServerCore, user: User) -> list[str]:
    caps = core.offered_caps()
    if user.cap_version >= 302:
        words = [f"{k}={v}" if v else k for k, v in caps.items()]
    else:
        words = list(caps)
    lines: list[str] = []
    current = ""
    for w in words:
        if current and len(current) + len(w) + 1 > 380:
            lines.append(current)
            current = w
        else:
            current = f"{current} {w}" if current else w
    lines.append(current)
    return lines


@command("CAP", min_params=1, pre_registration=True)
def cap(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """CAP <LS|LIST|REQ|END> [<version>|:<capabilities>]

    IRCv3 capability negotiation: list, request and end.
    """
    sub = msg.params[0].upper()
    target = user.nick
    if sub == "LS":
        if not user.registered:
            user.cap_negotiating = True
        version = number(msg.param(1))
        if version is not None:
            user.cap_version = max(user.cap_version, version)
        if user.cap_version >= 302:
            core.set_caps(user, user.caps | {"cap-notify"})
        lines = _ls_lines(core, user)
        for i, line in enumerate(lines):
            more = i < len(lines) - 1 and user.cap_version >= 302
            params = (target, "LS", "*", line) if more else (target, "LS", line)
            out.add(Message("CAP", params, core.name))
    elif sub == "LIST":
        out.add(Message("CAP", (target, "LIST", " ".join(sorted(user.caps))), core.name))
    elif sub == "REQ":
        if not user.registered:
            user.cap_negotiating = True
        wanted = msg.param(1).split()
        offered = core.offered_caps()
        names = [c[1:] if c.startswith("-") else c for c in wanted]
        # All or nothing; cap-notify cannot be disabled by a 302 client.
        ok = bool(wanted) and all(n in offered for n in names)
        if ok and user.cap_version >= 302 and "-cap-notify" in wanted:
            ok = False
        if ok:
            caps = set(user.caps)
            for c in wanted:
                if c.startswith("-"):
                    caps.discard(c[1:])
                else:
                    caps.add(c)
            had_metadata = metadata.CAP in user.caps
            core.set_caps(user, caps)
            out.add(Message("CAP", (target, "ACK", " ".join(wanted)), core.name))
            if metadata.CAP in caps and not had_metadata:
                metadata.on_cap_enabled(core, user, out)  # its own keys, once registered
        else:
            out.add(Message("CAP", (target, "NAK", msg.param(1)), core.name))
    elif sub == "END":
        if user.cap_negotiating:
            user.cap_negotiating = False
            try_register(core, user, out)
    else:
        out.numeric(N.ERR_INVALIDCAPCMD, msg.params[0])


@command("SETNAME", min_params=1)
def setname(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """SETNAME <realname>

    Change your realname (IRCv3 setname).
    """
    realname = msg.params[0]
    if not realname or len(realname) > REALNAME_MAX:
        out.standard(
            "FAIL",
            "SETNAME",
            "INVALID_REALNAME",
            text=f"Realname must be 1 to {REALNAME_MAX} characters",
        )
        return
    user.set_realname(realname)
    event = core.event(user, "SETNAME", realname)
    if "setname" in user.caps:
        out.relay(event)
    for other in core.watchers(user, "setname"):
        other.send(event.data(other))


@command("CHGHOST", min_params=3, oper=True)
def chghost(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """CHGHOST <nick> <username> <host>

    Change a user's username and host (IRCv3 chghost).
    """
    nick, username, host = msg.params[0], msg.params[1], msg.params[2]
    target = core.find_user(nick)
    if target is None:
        out.numeric(N.ERR_NOSUCHNICK, nick)
        return
    if not _USER_RE.match(username) or not _HOST_RE.match(host) or host.startswith(":"):
        out.standard("FAIL", "CHGHOST", "INVALID_PARAMS", nick, text="Invalid username or host")
        return
    event = core.event(target, "CHGHOST", username, host)
    target.username, target.host = username, host
    target.update_prefix()
    if "chghost" in target.caps:
        target.send(event.data(target))
    for other in core.watchers(target, "chghost"):
        other.send(event.data(other))
    out.add(Message("NOTICE", (user.nick, f"{target.nick} is now {target.prefix}"), core.name))
