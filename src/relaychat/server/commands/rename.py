"""RENAME: draft/channel-rename (https://ircv3.net/specs/extensions/channel-rename).

Rules:
1. A channel's operators rename it: ``RENAME <old> <new> [<reason>]``. Errors: 403 no such
   channel, 442 not on it, 482 not an operator; ``FAIL RENAME CHANNEL_NAME_IN_USE`` when the
   new name is another channel's, ``FAIL RENAME CANNOT_RENAME`` when it is not a valid channel
   name or is the same name. A change of case only is allowed (the spec says so).
2. Everything stays with the channel: members and their modes, modes, key, limit, bans,
   invites, topic and metadata. It is re-keyed in ``core.channels``, in each member's
   ``user.channels`` and in the pending invites.
3. Members with ``draft/channel-rename`` get ``:<renamer> RENAME <old> <new> :<reason>`` (the
   reason may be empty but is always there). The others get the spec's fallback, unless only
   the case changed: a PART of the old name (their own, with the reason) and a JOIN of the new
   one with its topic and NAMES, as if they had just joined.
4. History stays where it was said: the store keeps messages by channel name, so CHATHISTORY of
   the new name starts empty and the old name's messages stay under the old name (readable by
   whoever may read that name later). Carrying them over would mean rewriting stored rows
   (store changes), which is not done here.
"""

from __future__ import annotations

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.commands.channels import send_names, send_topic, valid_channel
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.state import Channel, User

__all__ = ["CAP"]

CAP = "draft/channel-rename"


@command("RENAME", min_params=2)
def rename(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """RENAME <channel> <new name> [<reason>]

    Rename a channel you operate; everything in it stays (draft/channel-rename).
    """
    old, new = msg.params[0], msg.params[1]
    reason = msg.param(2)[: core.config.limits.kicklen]
    channel = core.find_channel(old)
    if channel is None:
        out.numeric(N.ERR_NOSUCHCHANNEL, old)
        return
    member = channel.members.get(user)
    if member is None:
        out.numeric(N.ERR_NOTONCHANNEL, channel.name)
        return
    if not member.op:
        out.numeric(N.ERR_CHANOPRIVSNEEDED, channel.name)
        return
    if not valid_channel(new, core.config.limits.channellen) or new == channel.name:
        out.standard(
            "FAIL",
            "RENAME",
            "CANNOT_RENAME",
            channel.name,
            new,
            text="The new name must be a valid channel name other than the current one",
        )
        return
    taken = core.channels.get(irc_lower(new))
    if taken is not None and taken is not channel:
        out.standard(
            "FAIL",
            "RENAME",
            "CHANNEL_NAME_IN_USE",
            channel.name,
            new,
            text="Channel already exists",
        )
        return
    old_name, old_key = channel.name, channel.key
    _rekey(core, channel, new)
    event = core.event(user, "RENAME", old_name, channel.name, reason)
    case_only = old_key == channel.key
    for other in channel.members:
        mine = out if other is user else Replies(core, other)
        if CAP in other.caps:
            mine.relay(event)
        elif not case_only:
            _fallback(core, other, channel, old_name, reason, mine)
        if other is not user:
            mine.flush()


def _rekey(core: ServerCore, channel: Channel, new: str) -> None:
    """Give ``channel`` its new name everywhere it is looked up by name (rule 2)."""
    old_key = channel.key
    del core.channels[old_key]
    channel.name = new
    channel.key = irc_lower(new)
    core.channels[channel.key] = channel
    for member in channel.members:
        member.channels.pop(old_key, None)
        member.channels[channel.key] = channel
    for nick_key in channel.invites:
        invited = core.users.get(nick_key)
        if invited is not None and old_key in invited.invited:
            invited.invite(old_key, False)
            invited.invite(channel.key)


def _fallback(
    core: ServerCore, user: User, channel: Channel, old_name: str, reason: str, out: Replies
) -> None:
    """PART the old name, JOIN the new one, topic and NAMES: for a client without the cap."""
    part = (old_name, reason) if reason else (old_name,)
    out.relay(core.event(user, "PART", *part))
    ext = (channel.name, user.account or "*", user.realname)
    out.relay(core.event(user, "JOIN", channel.name, ext_params=ext))
    if channel.topic:
        send_topic(core, channel, out)
    send_names(core, user, channel, out)
