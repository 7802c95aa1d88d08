"""Queries about the server and its users: LUSERS, MOTD, VERSION, TIME, INFO, LINKS, HELP,
HELPOP, WHOIS, WHOWAS, ISON, USERHOST (RFC 2812 §3.4, §3.6; Modern IRC). WHO is ``who.py``."""

from __future__ import annotations

import time

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.backplane import Elsewhere
from relaychat.server.commands.params import number
from relaychat.server.core import COMMANDS, Replies, ServerCore, command
from relaychat.server.isupport import BOT_MODE
from relaychat.server.masks import match_mask
from relaychat.server.state import User

__all__ = ["send_lusers", "send_motd"]


def send_lusers(core: ServerCore, out: Replies) -> None:
    """RPL_LUSER* : how many users, operators, unknown connections and channels."""
    total = core.registered_count
    invisible = core.invisible_count
    unknown = len(core.connections) - total
    # On a cluster, the other nodes' users count too (``server/backplane.py``).
    far = core.backplane.elsewhere() if core.backplane is not None else Elsewhere(0, 0, 0, 0)
    everyone, hidden, opers = (
        total + far.users,
        invisible + far.invisible,
        core.oper_count + far.opers,
    )
    out.numeric(
        N.RPL_LUSERCLIENT,
        text=f"There are {everyone - hidden} users and {hidden} invisible on "
        f"{1 + far.servers} servers",
    )
    if opers:
        out.numeric(N.RPL_LUSEROP, str(opers))
    if unknown:
        out.numeric(N.RPL_LUSERUNKNOWN, str(unknown))
    if core.channels:
        out.numeric(N.RPL_LUSERCHANNELS, str(len(core.channels)))
    out.numeric(N.RPL_LUSERME, text=f"I have {total} clients and {far.servers} servers")
    out.numeric(
        N.RPL_LOCALUSERS,
        str(total),
        str(core.max_users),
        text=f"Current local users {total}, max {core.max_users}",
    )
    out.numeric(
        N.RPL_GLOBALUSERS,
        str(everyone),
        str(max(everyone, core.max_users)),
        text=f"Current global users {everyone}, max {max(everyone, core.max_users)}",
    )


def send_motd(core: ServerCore, out: Replies) -> None:
    """The message of the day, or 422 when there is none."""
    if not core.motd:
        out.numeric(N.ERR_NOMOTD)
        return
    out.numeric(N.RPL_MOTDSTART, text=f"- {core.name} Message of the day - ")
    for line in core.motd:
        out.numeric(N.RPL_MOTD, text=f"- {line}")
    out.numeric(N.RPL_ENDOFMOTD)


def _server_param_ok(core: ServerCore, msg: Message, index: int, out: Replies) -> bool:
    """A command naming a server other than this one gets 402."""
    target = msg.param(index)
    if target and not match_mask(target, core.name):
        out.numeric(N.ERR_NOSUCHSERVER, target)
        return False
    return True


@command("LUSERS")
def lusers(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """LUSERS

    How many users, operators and channels there are.
    """
    send_lusers(core, out)


@command("MOTD")
def motd(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """MOTD [<server>]

    The message of the day.
    """
    if _server_param_ok(core, msg, 0, out):
        send_motd(core, out)


@command("VERSION")
def version(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """VERSION [<server>]

    The server's version and its ISUPPORT tokens.
    """
    if not _server_param_ok(core, msg, 0, out):
        return
    out.numeric(N.RPL_VERSION, core.version_string() + ".", core.name, text="relaychat IRC server")
    tokens = core.isupport(user)
    for i in range(0, len(tokens), 13):
        out.numeric(N.RPL_ISUPPORT, *tokens[i : i + 13])


@command("TIME")
def time_(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """TIME [<server>]

    The server's time.
    """
    if _server_param_ok(core, msg, 0, out):
        stamp = time.strftime("%A %B %d %Y -- %H:%M:%S +00:00", time.gmtime(core.now))
        out.numeric(N.RPL_TIME, core.name, text=stamp)


@command("INFO")
def info(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """INFO [<server>]

    What this server is: its software, version and start time (371, then 374).
    """
    if not _server_param_ok(core, msg, 0, out):
        return
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(core.started))
    for line in (
        f"{core.version_string()}: real-time chat over persistent TCP sockets, in Python",
        "IRC (RFC 1459/2812) with IRCv3 capabilities; see docs/ircv3.md for the list",
        f"This server: {core.name}, network {core.config.network}, up since {started}",
        "Documentation: README.md and docs/ (docs/ircv3.md lists the IRCv3 support)",
    ):
        out.numeric(N.RPL_INFO, text=line)
    out.numeric(N.RPL_ENDOFINFO)


@command("LINKS")
def links(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """LINKS [[<server>] <mask>]

    The servers of this network: just this one (364, then 365).
    """
    mask = msg.params[-1] if msg.params else "*"
    if match_mask(mask, core.name):
        out.numeric(N.RPL_LINKS, core.name, core.name, text="0 relaychat IRC server")
    out.numeric(N.RPL_ENDOFLINKS, mask)


def _help(core: ServerCore, msg: Message, out: Replies) -> None:
    topic = msg.param(0).upper()
    if not topic:
        out.numeric(N.RPL_HELPSTART, "*", text="relaychat commands:")
        names = sorted(COMMANDS)
        for i in range(0, len(names), 10):
            out.numeric(N.RPL_HELPTXT, "*", text=" ".join(names[i : i + 10]))
        out.numeric(N.RPL_ENDOFHELP, "*", text="End of /HELP")
        return
    cmd = COMMANDS.get(topic)
    if cmd is None:
        out.numeric(N.ERR_HELPNOTFOUND, topic)
        return
    out.numeric(N.RPL_HELPSTART, topic, text=cmd.help)
    if cmd.summary:
        out.numeric(N.RPL_HELPTXT, topic, text=cmd.summary)
    if cmd.oper:
        out.numeric(N.RPL_HELPTXT, topic, text="Only for IRC operators.")
    out.numeric(N.RPL_ENDOFHELP, topic, text="End of /HELP")


@command("HELP")
def help_(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """HELP [<command>]

    The list of commands; with a command, its syntax and what it does (704, 705, 706).
    """
    _help(core, msg, out)


@command("HELPOP")
def helpop(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """HELPOP [<command>]

    The same as HELP (the name some clients use).
    """
    _help(core, msg, out)


@command("WHOIS", min_params=1)
def whois(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """WHOIS [<server>] <nick>

    Everything about a user: host, channels, account, idle time.
    """
    nick = msg.params[-1]
    target = core.find_user(nick)
    if target is None:
        out.numeric(N.ERR_NOSUCHNICK, nick)
        out.numeric(N.RPL_ENDOFWHOIS, nick)
        return
    out.numeric(
        N.RPL_WHOISUSER, target.nick, target.username, target.host, "*", text=target.realname
    )
    multi = "multi-prefix" in user.caps
    chans = [
        ch.members[target].prefixes(multi) + ch.name
        for ch in target.channels.values()
        if "s" not in ch.modes or user in ch.members
    ]
    if chans:
        out.numeric(N.RPL_WHOISCHANNELS, target.nick, text=" ".join(chans))
    out.numeric(N.RPL_WHOISSERVER, target.nick, target.server or core.name, text="relaychat")
    if target.away is not None:
        out.numeric(N.RPL_AWAY, target.nick, text=target.away)
    if target.is_oper:
        out.numeric(N.RPL_WHOISOPERATOR, target.nick)
    if BOT_MODE in target.modes:  # https://ircv3.net/specs/extensions/bot-mode
        out.numeric(N.RPL_WHOISBOT, target.nick)
    # Accounts and TLS client certificates (the fingerprint only to the user and opers).
    if target.account is not None:
        out.numeric(N.RPL_WHOISACCOUNT, target.nick, target.account)
    if target.certfp is not None and (user is target or user.is_oper):
        out.numeric(
            N.RPL_WHOISCERTFP,
            target.nick,
            text=f"has client certificate fingerprint {target.certfp}",
        )
    out.numeric(
        N.RPL_WHOISIDLE,
        target.nick,
        str(int(core.now - target.last_active)),
        str(int(target.connected_at)),
    )
    out.numeric(N.RPL_ENDOFWHOIS, target.nick)


@command("WHOWAS", min_params=1)
def whowas(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """WHOWAS <nick> [<count>]

    Who recently used a nick.
    """
    nick = msg.params[0]
    count = number(msg.param(1)) or 0  # 0: every entry
    found = 0
    key = irc_lower(nick)
    for entry in core.whowas:
        if irc_lower(entry.nick) == key:
            out.numeric(
                N.RPL_WHOWASUSER, entry.nick, entry.username, entry.host, "*", text=entry.realname
            )
            out.numeric(
                N.RPL_WHOISSERVER,
                entry.nick,
                core.name,
                text=time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(entry.when)),
            )
            found += 1
            if count and found >= count:
                break
    if not found:
        out.numeric(N.ERR_WASNOSUCHNICK, nick)
    out.numeric(N.RPL_ENDOFWHOWAS, nick)


@command("ISON", min_params=1)
def ison(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """ISON <nick> [<nick> ...]

    Which of the nicks are online.
    """
    present = []
    for param in msg.params:
        for nick in param.split():
            target = core.find_user(nick)
            if target is not None:
                present.append(target.nick)
    out.numeric(N.RPL_ISON, text=" ".join(present))


@command("USERHOST", min_params=1)
def userhost(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """USERHOST <nick> [<nick> ...] (at most 5)

    The user@host of up to five nicks.
    """
    replies = []
    nicks = [n for p in msg.params for n in p.split()][:5]
    for nick in nicks:
        target = core.find_user(nick)
        if target is not None:
            oper = "*" if target.is_oper else ""
            away = "-" if target.away is not None else "+"
            replies.append(f"{target.nick}{oper}={away}{target.username}@{target.host}")
    out.numeric(N.RPL_USERHOST, text=" ".join(replies))
