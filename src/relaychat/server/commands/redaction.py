"""Message redaction: ``REDACT`` (IRCv3 draft/message-redaction).

Spec: https://ircv3.net/specs/extensions/message-redaction. Redaction is cosmetic, as the spec
says: whoever received a message keeps it; what changes is what clients with the capability show
and what history returns from now on.

Rules:
1. Who may redact: in a channel, the message's sender, the channel's operators, and IRC
   operators (who need not be in the channel); in a private conversation, its sender. The
   sender is the same account when the message was sent logged in, otherwise the same
   connection (the same ``nick!user@host`` since the connection started): a nick alone is not
   an identity.
2. ``history.redact_window`` seconds (0: no limit) bounds how long senders may redact their own
   messages; channel and IRC operators are not bound by it.
3. What can be redacted: a PRIVMSG or NOTICE kept in history, in the conversation named by
   ``<target>`` (TAGMSG is never stored, so it cannot be). An id that is unknown, already
   redacted, deleted by retention, or from another conversation gets ``UNKNOWN_MSGID`` alike.
4. Relay: the ``REDACT`` (with its own msgid, time and account tags) goes to the channel's
   members, or to the other party, that have ``draft/message-redaction``, and back to the
   redactor (labeled). Clients without the capability are sent nothing.
5. History: the ``REDACT`` is stored as a record of its own and the message's text and tags
   are dropped. ``CHATHISTORY`` never returns a redacted message; to clients with the
   capability it returns the ``REDACT`` records in the span of each page, not counted in its
   limit (so a client that resumes learns what was redacted while it was away). Like every
   record, it is committed before anyone is sent the ``REDACT``.
6. Errors are standard replies: ``FAIL REDACT INVALID_TARGET <target>``, ``UNKNOWN_MSGID
   <target> <msgid>``, ``REDACT_FORBIDDEN <target> <msgid>``, ``REDACT_WINDOW_EXPIRED <target>
   <msgid> <window>``.

The capability is offered with history only (``listeners.py``); without a store the command is
unknown.
"""

from __future__ import annotations

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.protocol.servertime import format_server_time
from relaychat.server.commands.params import fit
from relaychat.server.commands.registration import valid_nick
from relaychat.server.core import Replies, ServerCore, add_tag, command
from relaychat.server.relay import Relay
from relaychat.server.state import User
from relaychat.store.base import Entry, StoredMessage, conversation_key

__all__ = ["CAP", "history_line"]

#: The capability name (draft: the spec is a work in progress).
CAP = "draft/message-redaction"
_REDACTABLE = frozenset({"PRIVMSG", "NOTICE"})


def _own(user: User, entry: Entry) -> bool:
    """Whether ``user`` sent the message of ``entry`` (rule 1)."""
    m = entry.message
    if m.account is not None:
        return user.account is not None and irc_lower(m.account) == irc_lower(user.account)
    return m.source == user.prefix and entry.time_ms >= int(user.connected_at * 1000)


@command("REDACT", min_params=2)
def redact(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """REDACT <target> <msgid> [<reason>]

    Take back a message you sent (or, as a channel operator, one sent to the channel).
    """
    store = core.history
    if store is None:
        out.numeric(N.ERR_UNKNOWNCOMMAND, "REDACT")
        return
    target, msgid = msg.params[0], msg.params[1]
    channel = core.find_channel(target) if target[:1] == "#" else None
    member = channel.members.get(user) if channel is not None else None
    if target[:1] == "#":
        if channel is None or (member is None and not user.is_oper):
            out.standard(
                "FAIL",
                "REDACT",
                "INVALID_TARGET",
                target,
                text=f"You cannot delete messages from {target}",
            )
            return
        key, shown, dest = channel.key, channel.name, None
    else:
        if not valid_nick(target, core.config.limits.nicklen):
            out.standard(
                "FAIL",
                "REDACT",
                "INVALID_TARGET",
                target,
                text=f"You cannot delete messages from {target}",
            )
            return
        dest = core.find_user(target)
        key = conversation_key(user.nick, target)
        shown = dest.nick if dest is not None else target
    entry = store.message(key, msgid)
    if entry is None or entry.message.redacted or entry.message.command not in _REDACTABLE:
        out.standard(
            "FAIL",
            "REDACT",
            "UNKNOWN_MSGID",
            shown,
            msgid,
            text="This message does not exist or is too old",
        )
        return
    moderator = user.is_oper or (member is not None and member.op)
    if not moderator and not _own(user, entry):
        out.standard(
            "FAIL",
            "REDACT",
            "REDACT_FORBIDDEN",
            shown,
            msgid,
            text="You are not authorised to delete this message",
        )
        return
    window = core.config.history.redact_window
    if not moderator and window > 0 and core.now * 1000 - entry.time_ms > window * 1000:
        out.standard(
            "FAIL",
            "REDACT",
            "REDACT_WINDOW_EXPIRED",
            shown,
            msgid,
            f"{window:g}",
            text=f"You can no longer delete this message (after {window:g} seconds)",
        )
        return
    overhead = len(user.prefix.encode()) + len(shown.encode()) + len(msgid.encode()) + 12
    reason = fit(msg.param(2), overhead)
    event = core.event(user, "REDACT", shown, msgid, *((reason,) if reason else ()))
    other = entry.message
    store.append(
        StoredMessage(
            msgid=event.msgid,
            time=core.now,
            key=key,
            source=user.prefix,
            account=user.account,
            command="REDACT",
            target=shown,
            text=reason,
            to_account=dest.account if dest is not None else other.to_account,
            redacts=msgid,
        )
    )
    if channel is not None:
        if core.backplane is not None:  # through the network, in the channel's one order
            core.backplane.channel_special(channel, event, user, cap=CAP)
        else:
            for peer in channel.members:
                if peer is not user and CAP in peer.caps:
                    peer.send(event.data(peer))
    elif dest is not None and dest is not user and CAP in dest.caps:
        dest.send(event.data(dest))
    if CAP in user.caps:
        out.relay(event)


def history_line(entry: Entry, user: User, outer: bytes | None) -> bytes:
    """A stored ``REDACT`` as ``user`` gets it from CHATHISTORY, inside batch ``outer``."""
    m = entry.message
    assert m.redacts is not None
    params = (m.target, m.redacts, m.text) if m.text else (m.target, m.redacts)
    raw = Message("REDACT", params, m.source).to_bytes()
    line = Relay(raw, time=format_server_time(entry.time_ms), msgid=m.msgid, account=m.account)
    data = line.data(user)
    return add_tag(data, b"batch=" + outer) if outer is not None else data
