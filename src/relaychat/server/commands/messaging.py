"""Messages between users: PRIVMSG, NOTICE (RFC 2812 §3.3), TAGMSG (IRCv3 message-tags) and
AWAY (§4.1, with IRCv3 away-notify).

PRIVMSG is the hot path: one dict lookup per target, one serialisation per tag profile, the same
bytes to every member; the message is handed to history before anyone is sent it.

A message carrying an idempotency key (``server/idempotency.py``) from a sender that negotiated
``relaychat.dev/idempotency`` is relayed once: a repeat of its key gets the first answer again.
"""

from __future__ import annotations

from collections.abc import Callable

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.ctcp import is_ctcp_not_action
from relaychat.protocol.message import Message
from relaychat.server.caps import MSGTAGS
from relaychat.server.commands.channels import refusal, targets
from relaychat.server.commands.idempotency import keyed_first
from relaychat.server.commands.multiline import collect
from relaychat.server.commands.params import message_line
from relaychat.server.commands.typing_tag import allow as typing_allowed
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.idempotency import CAP, TAG, sender_of
from relaychat.server.relay import Relay
from relaychat.server.state import User
from relaychat.store.base import StoredMessage, conversation_key, stored_tags
from relaychat.store.keys import KeyRecord

__all__ = ["post_internal"]


def _client_tags(msg: Message) -> dict[str, str] | None:
    """The sender's client-only tags (``+...``), or ``None``.

    Their size needs no check here: a client's whole tag section is at most 4094 bytes, or the
    line was refused with 417 when it was read (``protocol.message.parse_from_client``).
    """
    tags = msg.tags
    if not tags:
        return None
    own = {k: v for k, v in tags.items() if k[:1] == "+"}
    return own or None


def _deliver(core: ServerCore, user: User, msg: Message, out: Replies, verb: str) -> None:
    quiet = verb == "NOTICE"  # RFC 2812 §3.3.2: NOTICE never gets an automatic reply
    tagmsg = verb == "TAGMSG"
    if msg.tags and "batch" in msg.tags:  # a line of a draft/multiline batch
        collect(core, user, msg, out, verb)
        return
    params = msg.params
    if not params or not params[0]:
        if not quiet:
            out.numeric(N.ERR_NORECIPIENT, text=f"No recipient given ({verb})")
        return
    if tagmsg:
        text = ""
    elif len(params) < 2 or not params[1]:
        if not quiet:
            out.numeric(N.ERR_NOTEXTTOSEND)
        return
    else:
        text = params[1]
    client_tags = _client_tags(msg)
    if tagmsg and client_tags is None:
        return  # nothing to relay
    key: str | None = None
    if core.keys is not None and msg.tags and CAP in user.caps:
        key = msg.tags.get(TAG)
        if key is not None and not keyed_first(core, user, key, verb, params[0], out):
            return
    user.last_active = core.now
    echo = "echo-message" in user.caps
    history = core.history
    typing_interval = core.config.limits.typing_interval
    # With a key, what is relayed is remembered, and stored with the key in one step.
    sent: list[tuple[str, str]] = []
    keep: list[StoredMessage] = []
    store: Callable[[StoredMessage], None] | None = history.append if history is not None else None
    if key is not None and core.keys is not None and core.keys.with_history:
        store = keep.append  # keys live with history: a key and its messages in one step
    if is_ctcp_not_action(text):
        store = None  # relayed live only: never kept (a DCC offer carries an address)
    for target in targets(core, params[0], out, quiet=quiet):
        if tagmsg and not typing_allowed(
            user, target, client_tags or {}, core.now, typing_interval
        ):
            continue  # +typing again too soon: dropped quietly (commands/typing_tag.py)
        # STATUSMSG: "@#chan" reaches the channel's operators, "+#chan" its voiced and operators.
        status = ""
        name = target
        if target[:1] in ("@", "+") and target[1:2] == "#":
            status, name = target[0], target[1:]
        if name[:1] == "#":
            channel = core.channels.get(irc_lower(name))
            if channel is None:
                if not quiet:
                    out.numeric(N.ERR_NOSUCHCHANNEL, name)
                continue
            why = refusal(channel, user)
            if why is not None:
                if not quiet:
                    out.numeric(N.ERR_CANNOTSENDTOCHAN, channel.name, text=why)
                continue
            shown = status + channel.name if status else channel.name
            event = _event(core, user, verb, shown, text, client_tags)
            # TAGMSG (typing notifications...) is not history: it would push messages out.
            if store is not None and history is not None and not status and not tagmsg:
                store(_stored(core, user, event, channel.key, verb, shown, text))
            if key is not None:
                sent.append((shown, event.msgid))
            core.deliver(channel, event, user, status=status, tagmsg=tagmsg)
            if echo:
                out.relay(event)
        else:
            dest = core.users.get(irc_lower(target))
            if dest is None or not dest.registered:
                if not quiet:
                    out.numeric(N.ERR_NOSUCHNICK, target)
                continue
            event = _event(core, user, verb, dest.nick, text, client_tags)
            if store is not None and history is not None and not tagmsg:
                conv = conversation_key(user.nick, dest.nick)
                store(
                    _stored(core, user, event, conv, verb, dest.nick, text, to_account=dest.account)
                )
            if key is not None:
                sent.append((dest.nick, event.msgid))
            if dest is user:
                # A message to oneself: the delivery, and with echo-message also the echo; both
                # carry one msgid, as history keeps it once. labeled-response: only the echo
                # carries the label (no echo: the delivery is unlabeled, and the label gets ACK).
                if not tagmsg or user.profile & MSGTAGS:
                    user.send(event.data(user))
                    if echo:
                        out.relay(event)
            else:
                if not tagmsg or dest.profile & MSGTAGS:
                    dest.send(event.data(dest))
                if echo:
                    out.relay(event)
            if verb == "PRIVMSG" and dest.away is not None:
                out.numeric(N.RPL_AWAY, dest.nick, text=dest.away)
    if key is not None and sent and core.keys is not None:
        record = KeyRecord(
            sender_of(user), key, core.now, user.prefix, verb, text, client_tags or {}, tuple(sent)
        )
        core.keys.record(record, keep, core.now)


def _event(
    core: ServerCore,
    user: User,
    verb: str,
    target: str,
    text: str,
    client_tags: dict[str, str] | None,
) -> Relay:
    """The relayed message, its text cut so that it fits in 512 bytes with the sender's prefix
    (``params.message_line``)."""
    core.messages_relayed += 1
    return core.relay(user, message_line(user.prefix, verb, target, text), client_tags=client_tags)


def _stored(
    core: ServerCore,
    user: User,
    event: Relay,
    key: str,
    verb: str,
    target: str,
    text: str,
    to_account: str | None = None,
) -> StoredMessage:
    return StoredMessage(
        msgid=event.msgid,
        time=core.now,
        key=key,
        source=user.prefix,
        account=user.account,
        command=verb,
        target=target,
        text=text,
        tags=stored_tags(event.client_tags, bot=event.bot),
        to_account=to_account,
    )


def post_internal(core: ServerCore, sender: User, channel_name: str, text: str) -> str | None:
    """Relay ``text`` to a channel from an internal sender (a webhook's bot), like a PRIVMSG.

    The sender is a :class:`User` the server made, in no channel and holding no nick in
    ``core.users``; its modes (``+B``) and prefix shape the relayed line as any user's would. The
    message gets a msgid and time, goes to history, and is serialised once for every member.
    Channel modes are not checked: whoever configured the hook chose the channel.

    Args:
        channel_name: the channel; it must exist (have members): nothing creates it here.
        text: one line of text (no CR, LF or NUL); cut to fit 512 bytes as any message is.

    Returns:
        The message's msgid, or ``None`` when the channel does not exist (nothing was sent).
    """
    channel = core.channels.get(irc_lower(channel_name))
    if channel is None:
        return None
    event = _event(core, sender, "PRIVMSG", channel.name, text, None)
    if core.history is not None:
        core.history.append(
            _stored(core, sender, event, channel.key, "PRIVMSG", channel.name, text)
        )
    core.broadcast(channel, event)
    return event.msgid


@command("PRIVMSG")
def privmsg(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """PRIVMSG <target>{,<target>} <text>

    Send a message to users or channels.
    """
    _deliver(core, user, msg, out, "PRIVMSG")


@command("NOTICE")
def notice(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """NOTICE <target>{,<target>} <text>

    Send a notice: like PRIVMSG, but never answered automatically.
    """
    _deliver(core, user, msg, out, "NOTICE")


@command("TAGMSG", min_params=1)
def tagmsg(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """TAGMSG <target>{,<target>} (client-only tags only; IRCv3 message-tags)

    Send only client tags (typing notifications, reactions) to users or channels.
    """
    _deliver(core, user, msg, out, "TAGMSG")


@command("AWAY")
def away(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """AWAY [<message>]

    Mark yourself away with a message; without one, back.
    """
    text = msg.param(0)
    if text:
        user.away = text[: core.config.limits.awaylen]
        out.numeric(N.RPL_NOWAWAY)
        event = core.event(user, "AWAY", user.away)
    else:
        user.away = None
        out.numeric(N.RPL_UNAWAY)
        event = core.event(user, "AWAY")
    # away-notify: who shares a channel, and who monitors it with extended-monitor.
    for other in core.watchers(user, "away-notify"):
        other.send(event.data(other))
