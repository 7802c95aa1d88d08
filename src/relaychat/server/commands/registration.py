"""Connection registration and keepalive: PASS, NICK, USER, PING, PONG, QUIT.

RFC 2812 §3.1 and IRCv3 capability negotiation (https://ircv3.net/specs/extensions/capability-negotiation).
A client without CAP registers as soon as it has sent NICK and USER; a client that sent
``CAP LS`` or ``CAP REQ`` first registers at ``CAP END``.

Defences (``docs/security.md``):
- The server password (``password``, an argon2 hash) is checked on the worker: registration waits
  for the answer, and the connection's later lines wait too (``server/pending.py``). Wrong
  passwords are counted per address group; past ``throttle.login_failures`` the next attempts
  are refused with the seconds to wait, without any argon2 work.
- An unregistered connection holds its nick against someone else only for ``throttle.nick_hold``
  seconds (a NICK without USER cannot squat a nick for the whole registration timeout).
"""

from __future__ import annotations

import functools
import re
import time

from relaychat.passwords import verify_password
from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower_kept
from relaychat.protocol.message import Message
from relaychat.server.accounts import protect_nick, service_of
from relaychat.server.commands import metadata, monitor
from relaychat.server.commands.bans import refuse_banned
from relaychat.server.commands.info import send_lusers, send_motd
from relaychat.server.commands.params import valid_nick
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.isupport import CHANMODES, USER_MODES
from relaychat.server.state import User, WhowasEntry
from relaychat.server.throttle import retry_text, seconds

__all__ = ["try_register", "valid_nick"]

_USERNAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


@command("PASS", min_params=1, pre_registration=True)
def pass_(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """PASS <password>

    The server password (or account:password to log in), sent before NICK and USER.
    """
    if user.registered:
        out.numeric(N.ERR_ALREADYREGISTERED)
        return
    user.pass_given = msg.params[0]


@command("NICK", pre_registration=True)
def nick(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """NICK <nickname>

    Choose or change your nickname.
    """
    new = msg.param(0)
    if not new:
        out.numeric(N.ERR_NONICKNAMEGIVEN)
        return
    if not valid_nick(new, core.config.limits.nicklen):
        out.numeric(N.ERR_ERRONEUSNICKNAME, new)
        return
    key = irc_lower_kept(new)  # kept in core.users: share the nick's string when equal
    if not user.registered:
        user.wanted_nick = new
    holder = core.users.get(key)
    if holder is not None and holder is not user and not _take_from(core, holder):
        out.numeric(N.ERR_NICKNAMEINUSE, new)
        return
    if new == user.nick:
        return
    if user.key and core.users.get(user.key) is user and user.key != key:
        del core.users[user.key]
    core.users[key] = user
    user.nick_since = core.now
    user.nick_tip = core.history_tip()
    if not user.registered:
        user.set_nick(new)
        try_register(core, user, out)
        return
    event = core.event(user, "NICK", new)
    core.whowas.appendleft(WhowasEntry(user, core.now))
    _move_invites(core, user, key)
    old_key, old_nick = user.key, user.nick
    user.set_nick(new)
    out.relay(event)
    for other in core.neighbours(user):
        other.send(event.data(other))
    monitor.nick_changed(core, user, old_key, old_nick)
    # Accounts: a registered nick taken by someone else is protected (server/accounts.py).
    protect_nick(core, user, out)


def _take_from(core: ServerCore, holder: User) -> bool:
    """Whether a nick held by ``holder`` may be taken from it: it is unregistered, has held the
    nick for ``throttle.nick_hold`` seconds and is not waiting for a login. The holder then has
    no nick (and is told so with 433); it registers once it sends another NICK."""
    hold = core.config.throttle.nick_hold
    if holder.registered or hold <= 0 or holder.busy or core.now - holder.nick_since < hold:
        return False
    core.users.pop(holder.key, None)
    nick = holder.nick
    holder.nick, holder.key = "*", ""
    holder.update_prefix()
    holder.send(
        N.reply(
            core.name, "*", N.ERR_NICKNAMEINUSE, nick, text="Nickname taken: you did not register"
        ).to_bytes()
    )
    return True


def _move_invites(core: ServerCore, user: User, new_key: str) -> None:
    """Carry ``user``'s pending invites over to its new folded nick."""
    for chan_key in list(user.invited):
        channel = core.channels.get(chan_key)
        if channel is None or user.key not in channel.invites:
            user.invite(chan_key, False)  # the channel ended, or -i cleared its invites
            continue
        channel.invites.discard(user.key)
        channel.invites.add(new_key)


@command("USER", min_params=4, pre_registration=True)
def user_(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """USER <username> <mode> <unused> <realname>

    Your username and realname, to register the connection.
    """
    if user.registered or user.username:
        out.numeric(N.ERR_ALREADYREGISTERED)
        return
    if not msg.params[0] or not msg.params[3]:
        # RFC 2812 §3.1.3 / Modern: every parameter is needed; an empty realname is none.
        out.numeric(N.ERR_NEEDMOREPARAMS, "USER")
        return
    name = _USERNAME_BAD.sub("", msg.params[0])[:10] or "user"
    user.username = "~" + name
    user.set_realname(msg.params[3][:100])
    try_register(core, user, out)


@functools.lru_cache(maxsize=4)
def _created(started: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))


def try_register(core: ServerCore, user: User, out: Replies) -> None:
    """Complete registration when NICK, USER and any CAP negotiation are done."""
    if user.registered or user.nick == "*" or not user.username or user.cap_negotiating:
        return
    cfg = core.config
    if cfg.password and not user.pass_checked:
        _check_server_password(core, user, out)
        return
    # Accounts: PASS <account>:<password> holds registration; the accounts call try_register
    # again when the check completes (server/accounts.py).
    accounts = service_of(core)
    if accounts is not None and accounts.hold_registration(user, out, try_register):
        return
    if core.bans.klines and refuse_banned(core, user, out):  # server/bans.py
        return
    user.registered = True
    core.registered_count += 1
    core.max_users = max(core.max_users, core.registered_count)
    name, nick = core.name, user.nick
    created = _created(core.started)
    out.numeric(N.RPL_WELCOME, text=f"Welcome to the {cfg.network} IRC Network {user.prefix}")
    out.numeric(
        N.RPL_YOURHOST, text=f"Your host is {name}, running version {core.version_string()}"
    )
    out.numeric(N.RPL_CREATED, text=f"This server was created {created}")
    out.numeric(
        N.RPL_MYINFO,
        name,
        core.version_string(),
        USER_MODES,
        "".join(sorted("".join(CHANMODES) + "ov")),
        "Ibeklovq",
    )
    tokens = core.isupport(user)
    for i in range(0, len(tokens), 13):
        out.numeric(N.RPL_ISUPPORT, *tokens[i : i + 13])
    send_lusers(core, out)
    send_motd(core, out)
    if user.modes:
        out.add(Message("MODE", (nick, "+" + "".join(sorted(user.modes))), user.prefix))
    metadata.on_registered(core, user, out)  # draft/metadata-2: its own keys
    protect_nick(core, user, out)  # accounts: warn a stranger registering with a protected nick
    monitor.announce_online(core, user)


def _check_server_password(core: ServerCore, user: User, out: Replies) -> None:
    """``password`` is set: check the client's PASS (on the worker for an argon2 hash), then
    register it, or refuse it."""
    throttles = core.throttles
    wait = throttles.server_password.wait(user.ip_group, core.now)
    if wait > 0:
        core.ratelog.info(
            "server password refused: locked out",
            "server password from %s refused: too many wrong ones (%d s to wait)",
            user.ip_group,
            seconds(wait),
            now=core.now,
        )

        def refuse(replies: Replies) -> None:
            left = throttles.server_password.wait(user.ip_group, core.now)
            _refuse(core, user, replies, f"Too many wrong passwords; {retry_text(left)}")

        core.tarpit(user, out, wait, refuse)
        return
    given, stored = user.pass_given or "", core.config.password

    def then(ok: bool | None, replies: Replies) -> None:
        if ok:
            user.pass_checked = True
            try_register(core, user, replies)
            return
        throttles.server_password.failure(user.ip_group, core.now)
        _refuse(core, user, replies, "Bad password")

    def busy(replies: Replies) -> None:
        _refuse(core, user, replies, "Server busy; try again in a moment")

    if not given or not stored.startswith("$argon2"):
        then(bool(given) and verify_password(stored, given), out)  # no hash: cheap
    else:
        core.offload(user, out, lambda: verify_password(stored, given), then, busy=busy)


def _refuse(core: ServerCore, user: User, out: Replies, reason: str) -> None:
    out.numeric(N.ERR_PASSWDMISMATCH)
    out.flush()
    core.disconnect(user, reason)


@command("PING", pre_registration=True)
def ping(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """PING <token>

    Ask the server for a PONG with the same token.
    """
    if not msg.params or not msg.params[0]:
        out.numeric(N.ERR_NOORIGIN)
        return
    out.add(Message("PONG", (core.name, msg.params[0]), core.name))


@command("PONG", pre_registration=True)
def pong(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """PONG <token>

    The answer to the server's PING.
    """
    # Any input proves the link is alive; ServerCore.handle has reset the keepalive already.


@command("QUIT", pre_registration=True)
def quit_(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """QUIT [<reason>]

    Leave the server, with a reason your channels see.
    """
    # No QUITLEN exists; KICKLEN bounds it so the QUIT and ERROR lines fit in 512 bytes.
    reason = msg.param(0)[: core.config.limits.kicklen]
    out.flush()
    core.disconnect(user, f"Quit: {reason}" if reason else "Client Quit")
