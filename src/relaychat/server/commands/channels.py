"""Channel operations: JOIN, PART, TOPIC, NAMES, LIST, KICK, INVITE (RFC 2812 §3.2)."""

from __future__ import annotations

import re

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.chanlists import is_excepted, is_invexed, is_quieted
from relaychat.server.commands import metadata
from relaychat.server.commands.history import replay_on_join
from relaychat.server.commands.markread import send_on_join as send_read_marker
from relaychat.server.commands.params import fit
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.masks import match_mask
from relaychat.server.state import Channel, User

__all__ = [
    "LIST_PART",
    "is_banned",
    "refusal",
    "send_names",
    "send_topic",
    "targets",
    "valid_channel",
]

# RFC 2812 §1.3 / §2.3.1: any octet except NUL, BELL, CR, LF, space, comma and colon.
_CHAN_BAD = re.compile(r"[\x00\x07\r\n ,:]")


def valid_channel(name: str, channellen: int) -> bool:
    """Whether ``name`` is a well-formed channel name for this server (``#`` channels only)."""
    return 1 < len(name) <= channellen and name[0] == "#" and _CHAN_BAD.search(name) is None


def is_banned(channel: Channel, user: User) -> bool:
    """Whether a ban mask of ``channel`` matches ``user`` and no exception (``+e``) does."""
    if not channel.bans:
        return False
    if not any(match_mask(mask, user.prefix) for mask, _, _ in channel.bans):
        return False
    return not is_excepted(channel, user)


def refusal(channel: Channel, user: User) -> str | None:
    """Why ``user`` may not speak in ``channel`` (PRIVMSG, NOTICE, TAGMSG, multiline), or
    ``None`` when it may."""
    member = channel.members.get(user)
    if member is None and "n" in channel.modes:
        return "Cannot send to channel (no external messages)"
    if member is not None and (member.op or member.voice):
        return None
    if "m" in channel.modes:
        return "Cannot send to channel (+m)"
    if channel.bans and is_banned(channel, user):
        return "Cannot send to channel (you are banned)"
    if channel.quiets and is_quieted(channel, user):  # +q (server/chanlists.py)
        return "Cannot send to channel (you are quieted)"
    return None


def send_names(
    core: ServerCore, user: User, channel: Channel, out: Replies, *, end: bool = True
) -> None:
    """353 lines for ``channel`` (split to fit 512 bytes) and, unless not ``end``, 366.

    RFC 2812 §3.2.5: a user sees the nicknames visible to it, so seen from outside the channel,
    invisible (+i) members are left out unless they share another channel with ``user``.
    """
    symbol = "@" if "s" in channel.modes else "="
    multi = "multi-prefix" in user.caps
    full = "userhost-in-names" in user.caps
    shared = None if user in channel.members else set(core.neighbours(user))
    head = len(core.name) + len(user.nick) + len(channel.name) + 20
    room = 510 - head
    line: list[str] = []
    size = 0
    for member, ms in channel.members.items():
        if shared is not None and "i" in member.modes and member not in shared:
            continue
        entry = ms.prefixes(multi) + (member.prefix if full else member.nick)
        if line and size + len(entry) + 1 > room:
            out.numeric(N.RPL_NAMREPLY, symbol, channel.name, text=" ".join(line))
            line, size = [], 0
        line.append(entry)
        size += len(entry) + 1
    if line:
        out.numeric(N.RPL_NAMREPLY, symbol, channel.name, text=" ".join(line))
    if end:
        out.numeric(N.RPL_ENDOFNAMES, channel.name)


def send_topic(core: ServerCore, channel: Channel, out: Replies) -> None:
    """332 and 333, or 331 when no topic is set."""
    if channel.topic:
        out.numeric(N.RPL_TOPIC, channel.name, text=channel.topic)
        out.numeric(N.RPL_TOPICWHOTIME, channel.name, channel.topic_by, str(channel.topic_time))
    else:
        out.numeric(N.RPL_NOTOPIC, channel.name)


def targets(core: ServerCore, raw: str, out: Replies, *, quiet: bool = False) -> list[str]:
    """Split a comma list of targets: each once whatever its case (rfc1459 casemapping), empty
    ones skipped, those over MAXTARGETS refused with 407 (silently when ``quiet``: NOTICE)."""
    if "," not in raw:
        return [raw] if raw else []
    names = list({irc_lower(n): n for n in raw.split(",") if n}.values())
    limit = core.config.limits.maxtargets
    if len(names) > limit:
        if not quiet:
            for extra in names[limit:]:
                out.numeric(N.ERR_TOOMANYTARGETS, extra, text=f"Too many targets (at most {limit})")
        names = names[:limit]
    return names


@command("JOIN", min_params=1)
def join(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """JOIN <channel>{,<channel>} [<key>{,<key>}] | JOIN 0

    Join channels (with their keys); JOIN 0 leaves every channel.
    """
    if msg.params[0] == "0":
        for joined in list(user.channels.values()):
            _part(core, user, joined, user.nick, out)
        return
    keys = msg.param(1).split(",")
    lim = core.config.limits
    # JOIN and PART are bounded by CHANLIMIT, not MAXTARGETS: clients auto-join many at once.
    for i, name in enumerate(n for n in msg.params[0].split(",") if n):
        key = keys[i] if i < len(keys) else ""
        if not valid_channel(name, lim.channellen):
            if name.startswith("#"):
                out.numeric(N.ERR_BADCHANMASK, name)
            else:
                out.numeric(N.ERR_NOSUCHCHANNEL, name)
            continue
        channel = core.find_channel(name)
        if channel is not None and user in channel.members:
            continue
        if len(user.channels) >= lim.chanlimit:
            out.numeric(N.ERR_TOOMANYCHANNELS, name)
            continue
        creating = channel is None
        if channel is None:
            channel = Channel(name, core.now)
            core.channels[channel.key] = channel
        else:
            # An invite is the user's, not the nick's: it follows NICK changes and is not
            # inherited by the next holder of the nick (see ``invite``).
            invited = user.key in channel.invites and channel.key in user.invited
            if is_banned(channel, user) and not invited:
                out.numeric(N.ERR_BANNEDFROMCHAN, channel.name)
                continue
            if "i" in channel.modes and not invited and not is_invexed(channel, user):
                out.numeric(N.ERR_INVITEONLYCHAN, channel.name)
                continue
            if channel.password is not None and key != channel.password:
                out.numeric(N.ERR_BADCHANNELKEY, channel.name)
                continue
            if channel.limit is not None and len(channel.members) >= channel.limit:
                out.numeric(N.ERR_CHANNELISFULL, channel.name)
                continue
        core.add_member(channel, user, op=creating)
        user.invite(channel.key, False)
        event = core.event(
            user,
            "JOIN",
            channel.name,
            ext_params=(channel.name, user.account or "*", user.realname),
        )
        core.broadcast(channel, event, skip=user)
        out.relay(event)
        send_read_marker(core, user, channel.name, out)  # draft/read-marker: before 366
        if user.away is not None:
            # away-notify: members learn at once that the newcomer is away.
            away = core.event(user, "AWAY", user.away)
            for member in channel.members:
                if member is not user and "away-notify" in member.caps:
                    member.send(away.data(member))
        if channel.topic:
            send_topic(core, channel, out)
        send_names(core, user, channel, out)
        replay_on_join(core, user, channel, out)
        metadata.on_join(core, user, channel, out)


def _part(core: ServerCore, user: User, channel: Channel, reason: str, out: Replies) -> None:
    overhead = len(user.prefix.encode()) + len(channel.name.encode()) + 9  # ": PART  :"
    params = (channel.name, fit(reason, overhead)) if reason else (channel.name,)
    event = core.event(user, "PART", *params)
    core.broadcast(channel, event, skip=user)
    out.relay(event)
    core.remove_member(channel, user)


@command("PART", min_params=1)
def part(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """PART <channel>{,<channel>} [<reason>]

    Leave channels.
    """
    reason = msg.param(1)[: core.config.limits.kicklen]
    for name in [n for n in msg.params[0].split(",") if n]:
        channel = core.find_channel(name)
        if channel is None:
            out.numeric(N.ERR_NOSUCHCHANNEL, name)
        elif user not in channel.members:
            out.numeric(N.ERR_NOTONCHANNEL, channel.name)
        else:
            _part(core, user, channel, reason, out)


@command("TOPIC", min_params=1)
def topic(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """TOPIC <channel> [<topic>]

    Show a channel's topic, or set it.
    """
    name = msg.params[0]
    channel = core.find_channel(name)
    if channel is None:
        out.numeric(N.ERR_NOSUCHCHANNEL, name)
        return
    member = channel.members.get(user)
    if len(msg.params) < 2:
        if member is None and "s" in channel.modes:
            out.numeric(N.ERR_NOTONCHANNEL, channel.name)
            return
        send_topic(core, channel, out)
        return
    if member is None:
        out.numeric(N.ERR_NOTONCHANNEL, channel.name)
        return
    if "t" in channel.modes and not member.op:
        out.numeric(N.ERR_CHANOPRIVSNEEDED, channel.name)
        return
    channel.topic = msg.params[1][: core.config.limits.topiclen]
    channel.topic_by = user.prefix
    channel.topic_time = int(core.now)
    event = core.event(user, "TOPIC", channel.name, channel.topic)
    core.broadcast(channel, event, skip=user)
    out.relay(event)


@command("NAMES")
def names(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """NAMES [<channel>{,<channel>}]

    Who is in the channels.
    """
    if not msg.params:
        # Listing every channel of the network is refused by design; say where the list ends.
        out.numeric(N.RPL_ENDOFNAMES, "*")
        return
    names = targets(core, msg.params[0], out)
    if len(names) == 1:
        channel = core.find_channel(names[0])
        if channel is None or ("s" in channel.modes and user not in channel.members):
            out.numeric(N.RPL_ENDOFNAMES, names[0])
        else:
            send_names(core, user, channel, out)
        return
    # RFC 1459/2812 §3.2.5 and Modern IRC: for a list, the 353s of each visible channel, then
    # one 366 naming the list as given.
    for name in names:
        channel = core.find_channel(name)
        if channel is not None and ("s" not in channel.modes or user in channel.members):
            send_names(core, user, channel, out, end=False)
    out.numeric(N.RPL_ENDOFNAMES, msg.params[0])


#: Channels examined per part of a streamed LIST (``server/pending.py``): each part is sent
#: when the client's output has drained, so a LIST of thousands of channels never fills the
#: send queue, and other clients are served between parts.
LIST_PART = 100


@command("LIST")
def list_(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """LIST [<channel>{,<channel>}]

    The channels, their sizes and topics (a long list comes in parts, as the client reads).
    """
    if msg.params and msg.params[0]:
        names = targets(core, msg.params[0], out)  # MAXTARGETS, as for PRIVMSG (407 past it)
        out.numeric(N.RPL_LISTSTART, "Channel")
        for name in names:
            channel = core.find_channel(name)
            if channel is not None:
                _list_line(channel, user, out)
        out.numeric(N.RPL_LISTEND)
        return
    out.numeric(N.RPL_LISTSTART, "Channel")
    keys = list(core.channels)  # the names as they are now; later parts skip those gone
    position = 0

    def part(replies: Replies) -> bool:
        nonlocal position
        end = min(position + LIST_PART, len(keys))
        while position < end:
            channel = core.channels.get(keys[position])
            position += 1
            if channel is not None:
                _list_line(channel, user, replies)
        if position < len(keys):
            return False
        replies.numeric(N.RPL_LISTEND)
        return True

    core.stream(user, out, part)


def _list_line(channel: Channel, user: User, out: Replies) -> None:
    """322 for ``channel``, unless it is secret (+s) and ``user`` is not in it."""
    if "s" in channel.modes and user not in channel.members:
        return
    out.numeric(N.RPL_LIST, channel.name, str(len(channel.members)), text=channel.topic)


@command("KICK", min_params=2)
def kick(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """KICK <channel>{,<channel>} <nick>{,<nick>} [<reason>]

    Remove users from a channel (channel operators); one channel for all nicks, or a channel
    per nick.
    """
    reason = (msg.param(2) or user.nick)[: core.config.limits.kicklen]
    chans = [c for c in msg.params[0].split(",") if c]
    if len(chans) == 1:
        pairs = [(chans[0], nick) for nick in targets(core, msg.params[1], out)]
    else:
        # RFC 2812 §3.2.8: one channel for every nick, or as many channels as nicks, paired.
        nicks = [n for n in msg.params[1].split(",") if n]
        if len(nicks) != len(chans):
            out.numeric(N.ERR_NEEDMOREPARAMS, "KICK", text="One channel, or one channel per nick")
            return
        pairs = list(zip(chans, nicks, strict=True))
        limit = core.config.limits.maxtargets
        for _, extra in pairs[limit:]:
            out.numeric(N.ERR_TOOMANYTARGETS, extra, text=f"Too many targets (at most {limit})")
        pairs = pairs[:limit]
    refused: set[str] = set()  # channels already answered with an error: once is enough
    for name, nick in pairs:
        if irc_lower(name) not in refused and not _kick(core, user, name, nick, reason, out):
            refused.add(irc_lower(name))


def _kick(core: ServerCore, user: User, name: str, nick: str, reason: str, out: Replies) -> bool:
    """One KICK of ``nick`` from ``name``; ``False`` when ``user`` may kick no one there (the
    error was sent), e.g. after kicking itself."""
    channel = core.find_channel(name)
    if channel is None:
        out.numeric(N.ERR_NOSUCHCHANNEL, name)
        return False
    member = channel.members.get(user)
    if member is None:
        out.numeric(N.ERR_NOTONCHANNEL, channel.name)
        return False
    if not member.op:
        out.numeric(N.ERR_CHANOPRIVSNEEDED, channel.name)
        return False
    target = core.find_user(nick)
    if target is None:
        out.numeric(N.ERR_NOSUCHNICK, nick)
        return True
    if target not in channel.members:
        out.numeric(N.ERR_USERNOTINCHANNEL, target.nick, channel.name)
        return True
    overhead = len(user.prefix.encode()) + len(channel.name.encode()) + len(target.nick) + 10
    event = core.event(user, "KICK", channel.name, target.nick, fit(reason, overhead))
    core.broadcast(channel, event, skip=user)
    out.relay(event)
    core.remove_member(channel, target)
    return target is not user


@command("INVITE", min_params=2)
def invite(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """INVITE <nick> <channel>

    Invite a user to a channel.
    """
    nick, name = msg.params[0], msg.params[1]
    target = core.find_user(nick)
    if target is None:
        out.numeric(N.ERR_NOSUCHNICK, nick)
        return
    channel = core.find_channel(name)
    if channel is None:
        # RFC 2812 §3.2.7 allows inviting to a channel nobody is in, but it must be a name
        # someone could join.
        if not valid_channel(name, core.config.limits.channellen):
            out.numeric(N.ERR_NOSUCHCHANNEL, name)
            return
    else:
        member = channel.members.get(user)
        if member is None:
            out.numeric(N.ERR_NOTONCHANNEL, channel.name)
            return
        if target in channel.members:
            out.numeric(N.ERR_USERONCHANNEL, target.nick, channel.name)
            return
        if "i" in channel.modes and not member.op:
            out.numeric(N.ERR_CHANOPRIVSNEEDED, channel.name)
            return
        channel.invites.add(target.key)
        target.invite(channel.key)
        name = channel.name
    out.numeric(N.RPL_INVITING, target.nick, name)
    if target.away is not None:
        out.numeric(N.RPL_AWAY, target.nick, text=target.away)
    event = core.event(user, "INVITE", target.nick, name)
    target.send(event.data(target))
    if channel is not None:
        # invite-notify: the channel's operators who asked for it see the invite too.
        for other, ms in channel.members.items():
            if ms.op and other is not user and "invite-notify" in other.caps:
                other.send(event.data(other))
