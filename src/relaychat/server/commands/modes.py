"""MODE for channels and users (RFC 2812 §3.1.5, §3.2.3); parsing is in ``server/modes.py``."""

from __future__ import annotations

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.protocol.numerics import safe_param
from relaychat.server.audit import audit, set_snomask
from relaychat.server.chanlists import EXTRA_LISTS, apply_list, list_entries, send_list
from relaychat.server.commands.params import number
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.isupport import USER_MODES
from relaychat.server.masks import normalize_ban_mask
from relaychat.server.modes import ModeChange, parse_channel_modes, parse_user_modes
from relaychat.server.state import Channel, User

__all__: list[str] = []


@command("MODE", min_params=1)
def mode(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """MODE <channel|nick> [<modes> [<params>...]]

    Show or change a channel's modes (+b +i +k +l +m +n +o +s +t +v) or your own (+B bot, +i
    invisible, +w wallops).
    """
    target = msg.params[0]
    if target.startswith("#"):
        _channel_mode(core, user, msg, out)
    else:
        _user_mode(core, user, msg, out)


def _user_mode(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    target = msg.params[0]
    if irc_lower(target) != user.key:
        if core.find_user(target) is None:
            out.numeric(N.ERR_NOSUCHNICK, target)
        else:
            out.numeric(N.ERR_USERSDONTMATCH)
        return
    if len(msg.params) < 2:
        out.numeric(N.RPL_UMODEIS, "+" + "".join(sorted(user.modes)))
        return
    changes, unknown = parse_user_modes(msg.params[1], USER_MODES)
    applied: list[ModeChange] = []
    for change in changes:
        if change.mode == "i":
            if change.adding != ("i" in user.modes):
                core.set_invisible(user, change.adding)
                applied.append(change)
        elif change.mode == "o" and not change.adding and user.is_oper:
            # Only OPER gives +o; anyone may drop it.
            core.set_oper(user, False)
            user.oper_name = None
            applied.append(change)
            if "s" in user.modes:  # server notices are for opers only
                user.set_mode("s", False)
                user.snomask = ""
                applied.append(ModeChange(False, "s"))
        elif change.mode == "s" and set_snomask(core, user, change.adding, msg.param(2), out):
            applied.append(change)  # server notices, with a snomask (server/audit.py)
        elif change.mode in "Bw" and change.adding != (change.mode in user.modes):
            # +B: a bot (IRCv3 bot-mode); +w: receives WALLOPS (core.wallops).
            if change.adding:
                user.set_mode(change.mode, True)
            else:
                user.set_mode(change.mode, False)
            if change.mode == "w":
                if change.adding:
                    core.wallops[user] = None
                else:
                    core.wallops.pop(user, None)
            applied.append(change)
    if unknown:
        out.numeric(N.ERR_UMODEUNKNOWNFLAG)
    if applied:
        out.add(Message("MODE", (user.nick, _render(applied)[0]), user.prefix))


def _render(changes: list[ModeChange]) -> tuple[str, list[str]]:
    """``[+o alice, +v bob, -k]`` -> ``("+ov-k", ["alice", "bob", "*"])``."""
    text = ""
    sign = ""
    params: list[str] = []
    for c in changes:
        s = "+" if c.adding else "-"
        if s != sign:
            text += s
            sign = s
        text += c.mode
        if c.param is not None:
            params.append(c.param)
    return text, params


def _channel_mode(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    name = msg.params[0]
    channel = core.find_channel(name)
    if channel is None:
        out.numeric(N.ERR_NOSUCHCHANNEL, name)
        return
    member = channel.members.get(user)
    if len(msg.params) < 2:
        out.numeric(
            N.RPL_CHANNELMODEIS, channel.name, *channel.mode_string(show_key=member is not None)
        )
        out.numeric(N.RPL_CREATIONTIME, channel.name, str(channel.created))
        return
    changes, unknown = parse_channel_modes(msg.params[1], msg.params[2:])
    for letter in unknown:
        out.numeric(
            N.ERR_UNKNOWNMODE, letter, text=f"is unknown mode char to me for {channel.name}"
        )
    applied: list[ModeChange] = []
    denied = False
    override = False
    with_param = 0
    for change in changes:
        if change.mode in EXTRA_LISTS and change.param is None:  # +e +I +q (chanlists.py)
            send_list(core, channel, change.mode, out)
            continue
        if change.mode == "b" and change.param is None:
            for mask, setter, when in channel.bans:
                out.numeric(N.RPL_BANLIST, channel.name, mask, setter, str(when))
            out.numeric(N.RPL_ENDOFBANLIST, channel.name)
            continue
        if member is None or not member.op:
            if not user.is_oper:
                denied = True
                continue
            override = True  # an IRC operator acting without channel privileges: audited

        if change.param is not None:
            with_param += 1
            if with_param > core.config.limits.modes:
                continue
        result = _apply(core, channel, user, change, out)
        if result is not None:
            applied.append(result)
    if denied:
        # Modern IRC "MODE": without the privileges, 482 -- whether a member or not.
        out.numeric(N.ERR_CHANOPRIVSNEEDED, channel.name)
    if applied:
        text, params = _render(applied)
        event = core.event(user, "MODE", channel.name, text, *params)
        core.broadcast(channel, event, skip=user)
        out.relay(event)
        if override:
            audit(core, user, "MODE", "o", target=channel.name, override=" ".join((text, *params)))


def _apply(
    core: ServerCore, channel: Channel, user: User, change: ModeChange, out: Replies
) -> ModeChange | None:
    """Apply one change; return what to announce, or ``None`` when nothing changed."""
    m, adding, param = change.mode, change.adding, change.param
    if m in "ov":
        if param is None:
            out.numeric(N.ERR_NEEDMOREPARAMS, "MODE", text=f"Mode +{m} needs a nickname")
            return None
        target = core.find_user(param)
        if target is None:
            out.numeric(N.ERR_NOSUCHNICK, param)
            return None
        ms = channel.members.get(target)
        if ms is None:
            out.numeric(N.ERR_USERNOTINCHANNEL, target.nick, channel.name)
            return None
        if (ms.op if m == "o" else ms.voice) == adding:
            return None
        if m == "o":
            ms.op = adding
        else:
            ms.voice = adding
        return ModeChange(adding, m, target.nick)
    if m == "k":
        if not adding:
            if channel.password is None:
                return None
            channel.password = None
            return ModeChange(False, "k", "*")
        if param is None:
            out.numeric(N.ERR_NEEDMOREPARAMS, "MODE", text="Mode +k needs a key")
            return None
        # The key must be usable in "JOIN <channel> <key>" and as a middle parameter of 324:
        # RFC 2812 §2.3.1 (1 to 23 characters, no space); Modern IRC: ERR_INVALIDMODEPARAM.
        if not param or safe_param(param) != param or "," in param or len(param) > 23:
            out.numeric(
                N.ERR_INVALIDMODEPARAM,
                channel.name,
                "k",
                "*",
                text="Invalid key: 1 to 23 characters, without spaces or commas",
            )
            return None
        channel.password = param
        return ModeChange(True, "k", param)
    if m == "l":
        if not adding:
            if channel.limit is None:
                return None
            channel.limit = None
            return ModeChange(False, "l")
        limit = number(param or "")
        if not limit:
            out.numeric(
                N.ERR_INVALIDMODEPARAM,
                channel.name,
                "l",
                param or "",
                text="Invalid limit: a positive number is needed",
            )
            return None
        channel.limit = limit
        return ModeChange(True, "l", str(channel.limit))
    if m in EXTRA_LISTS:
        return apply_list(core, channel, user, change, out)
    if m == "b":
        assert param is not None
        if safe_param(param) != param:
            out.numeric(N.ERR_INVALIDMODEPARAM, channel.name, "b", "*", text="Invalid ban mask")
            return None
        mask = normalize_ban_mask(param)
        # Masks compare casefolded, as nicks do (rfc1459): -b bar!*@* removes BAR!*@*.
        folded = irc_lower(mask)
        index = next((i for i, ban in enumerate(channel.bans) if irc_lower(ban[0]) == folded), None)
        if adding:
            if index is not None:
                return None
            if list_entries(channel) >= core.config.limits.maxbans:  # MAXLIST=beIq
                out.numeric(N.ERR_BANLISTFULL, channel.name, mask)
                return None
            channel.bans.append((mask, user.prefix, int(core.now)))
            return ModeChange(True, "b", mask)
        if index is None:
            return None
        stored = channel.bans.pop(index)[0]
        return ModeChange(False, "b", stored)
    # A flag mode (imnst).
    if (m in channel.modes) == adding:
        return None
    if adding:
        channel.modes.add(m)
    else:
        channel.modes.discard(m)
        if m == "i":
            channel.invites.clear()
    return ModeChange(adding, m)
