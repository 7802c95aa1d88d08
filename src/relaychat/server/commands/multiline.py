"""Multiline messages: a client ``BATCH`` of PRIVMSG or NOTICE lines (IRCv3 draft/multiline).

Spec: https://ircv3.net/specs/extensions/multiline (and client-batch). The capability's value
carries the limits: ``draft/multiline=max-bytes=<limits.multiline_max_bytes>,max-lines=<...>``.

Rules:
1. ``BATCH +<ref> draft/multiline <target>`` opens the connection's one batch (``User.batch``);
   its client-only tags are the message's tags (at most 4094 bytes, as message-tags says), its
   ``label`` labels the answer (the answer comes at ``BATCH -<ref>``, so opening a batch is
   never answered by itself).
2. Lines are ``@batch=<ref>[;draft/multiline-concat] PRIVMSG|NOTICE <target> :<text>``: all
   the same verb, all to the batch's target. The content counted against ``max-bytes`` is the
   text of every line plus one byte for each line break (a concat line adds none); more than
   ``max-lines`` lines or ``max-bytes`` bytes fail the batch at once. Memory is bounded by the
   limits; closing the connection drops the batch with the user.
3. A broken rule answers one ``FAIL BATCH <code> ... :<text>`` (``MULTILINE_MAX_BYTES <limit>``,
   ``MULTILINE_MAX_LINES <limit>``, ``MULTILINE_INVALID_TARGET <batch target> <line target>``,
   ``MULTILINE_INVALID``), labeled when the batch was; the batch's other lines and its
   ``BATCH -`` are then dropped quietly.
4. At ``BATCH -<ref>`` the message goes where a PRIVMSG to the target would (same checks and
   numerics: 401, 403, 404), with one msgid for the whole batch. It is stored in history as ONE
   record (its lines joined by LF, one concat flag per line) before anyone is sent a byte: the
   edge holds the bytes until the group commit (``server/listeners.py``).
5. Recipients with ``draft/multiline`` and ``batch`` get it as a batch: the ``BATCH +`` line
   carries the msgid, time, account and client tags; the lines carry ``batch`` and the concat
   tag. Others get the lines one by one, blank lines left out, the first with the msgid and
   every one with time, account and client tags. With ``echo-message`` the sender gets its own
   copy, the label (if any) on the ``BATCH +`` line.
6. History replay (CHATHISTORY, replay on JOIN) sends a stored multiline message the same way:
   a ``draft/multiline`` batch nested in the ``chathistory`` batch, or the lines one by one.
7. Idempotency keys (``relaychat.dev/idempotency``, docs/delivery.md): the key is a client-only
   tag of the ``BATCH +`` line, checked at ``BATCH -``. A new key is stored with the message in
   one step; a key relayed within the window relays nothing again and gets the first answer
   (the echo batch, same msgid and time; ``commands/idempotency.py``); a malformed key is
   ``FAIL BATCH INVALID_IDEMPOTENCY_KEY <target>``.

How a multiline message is written on the wire (rules 5 and 6) is ``server/multiline.py``.
"""

from __future__ import annotations

from typing import Any

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.ctcp import is_ctcp_not_action
from relaychat.protocol.message import Message
from relaychat.server.commands.channels import refusal
from relaychat.server.commands.idempotency import keyed_first
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.idempotency import CAP as IDEM_CAP
from relaychat.server.idempotency import TAG as IDEM_TAG
from relaychat.server.idempotency import sender_of
from relaychat.server.isupport import BOT_MODE
from relaychat.server.multiline import BATCH_TYPE, CAP, CONCAT, Multiline
from relaychat.server.state import ClientBatch, User
from relaychat.store.base import StoredMessage, conversation_key, stored_tags
from relaychat.store.keys import KeyRecord

__all__ = ["collect"]

#: message-tags: the client-only tags of one message take at most 4094 bytes.
_MAX_CLIENT_TAG_BYTES = 4094


# --- BATCH + / lines / BATCH - ------------------------------------------------------------------


def _fail(out: Replies, batch: ClientBatch, code: str, *context: str, text: str) -> None:
    """Rule 3: one FAIL (labeled like the batch), then the batch only waits for its end."""
    if batch.label is not None and out.label is None:
        out.label = batch.label
    batch.label = None
    batch.failed = True
    batch.lines.clear()
    out.standard("FAIL", "BATCH", code, *context, text=text)


@command("BATCH", min_params=1)
def batch_(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """BATCH +<ref> draft/multiline <target> | BATCH -<ref>

    Open or close a batch of PRIVMSG or NOTICE lines sent as one message (draft/multiline).
    """
    ref = msg.params[0]
    if ref[:1] == "+" and len(ref) > 1:
        _open(core, user, msg, out, ref[1:])
    elif ref[:1] == "-" and len(ref) > 1:
        _close(core, user, out, ref[1:])
    else:
        out.standard("FAIL", "BATCH", "MULTILINE_INVALID", text="Expected BATCH +<ref> or -<ref>")


def _open(core: ServerCore, user: User, msg: Message, out: Replies, ref: str) -> None:
    label, out.label = out.label, None  # rule 1: answered at BATCH -
    new = ClientBatch(ref, msg.param(2), label=label)
    old, user.batch = user.batch, new
    why = None
    if CAP not in user.caps:
        why = f"Negotiate {CAP} before sending a multiline batch"
    elif msg.param(1) != BATCH_TYPE:
        why = f"Unsupported batch type {msg.param(1) or '(none)'}"
    elif "batch" in msg.tags:
        why = "Batches cannot be nested"
    elif old is not None and not old.failed:
        why = f"Batch {old.ref} is still open"
    elif not new.target:
        why = "A multiline batch needs a target"
    tags = {k: v for k, v in msg.tags.items() if k[:1] == "+"}
    if why is None and sum(len(k) + len(v) + 2 for k, v in tags.items()) > _MAX_CLIENT_TAG_BYTES:
        why = f"Client-only tags take at most {_MAX_CLIENT_TAG_BYTES} bytes"
    if why is not None:
        _fail(out, new, "MULTILINE_INVALID", text=why)
        return
    new.tags = tags or None


def collect(core: ServerCore, user: User, msg: Message, out: Replies, verb: str) -> None:
    """A line with a ``batch`` tag (rule 2): add it to the open batch, or refuse it.

    Called by PRIVMSG, NOTICE and TAGMSG for every line that carries a ``batch`` tag.
    """
    out.label = None  # a line of a batch is never answered by itself
    ref = msg.tags["batch"]
    batch = user.batch
    if batch is None or batch.ref != ref:
        if batch is not None and not batch.failed:
            _fail(out, batch, "MULTILINE_INVALID", text=f"Line for batch {ref} inside {batch.ref}")
        elif batch is None:
            out.standard("FAIL", "BATCH", "MULTILINE_INVALID", text=f"No open batch {ref}")
        return
    if batch.failed:
        return
    if verb == "TAGMSG" or (batch.verb and verb != batch.verb):
        _fail(out, batch, "MULTILINE_INVALID", text="A batch holds only PRIVMSG or only NOTICE")
        return
    target = msg.param(0)
    if irc_lower(target) != irc_lower(batch.target):
        _fail(
            out,
            batch,
            "MULTILINE_INVALID_TARGET",
            batch.target,
            target,
            text="Invalid multiline target",
        )
        return
    text = msg.param(1)
    concat = CONCAT in msg.tags
    if concat and not text:
        _fail(out, batch, "MULTILINE_INVALID", text="A concatenated line cannot be blank")
        return
    lim = core.config.limits
    if len(batch.lines) >= lim.multiline_max_lines:
        limit = str(lim.multiline_max_lines)
        _fail(out, batch, "MULTILINE_MAX_LINES", limit, text="Multiline batch max-lines exceeded")
        return
    size = (
        batch.size + len(text.encode("utf-8", "replace")) + (0 if concat or not batch.lines else 1)
    )
    if size > lim.multiline_max_bytes:
        limit = str(lim.multiline_max_bytes)
        _fail(out, batch, "MULTILINE_MAX_BYTES", limit, text="Multiline batch max-bytes exceeded")
        return
    batch.verb = verb
    batch.size = size
    batch.lines.append((text, concat))


def _close(core: ServerCore, user: User, out: Replies, ref: str) -> None:
    batch = user.batch
    if batch is None or batch.ref != ref:
        out.standard("FAIL", "BATCH", "MULTILINE_INVALID", text=f"No open batch {ref}")
        return
    user.batch = None
    if batch.label is not None and out.label is None:
        out.label = batch.label
    if batch.failed:
        return
    if not batch.lines:
        out.standard("FAIL", "BATCH", "MULTILINE_INVALID", text="Empty multiline batch")
        return
    if not any(text for text, _ in batch.lines):
        out.standard(
            "FAIL",
            "BATCH",
            "MULTILINE_INVALID",
            text="Invalid multiline batch with blank lines only",
        )
        return
    key: str | None = None
    if core.keys is not None and batch.tags and IDEM_CAP in user.caps:
        key = batch.tags.get(IDEM_TAG)
        if key is not None and not keyed_first(core, user, key, "BATCH", batch.target, out):
            return  # rule 7: a repeat gets the first answer again
    _deliver(core, user, batch, out, key)


# --- delivery (rules 4 and 5) --------------------------------------------------------------------


def _deliver(
    core: ServerCore, user: User, batch: ClientBatch, out: Replies, key: str | None
) -> None:
    verb, target = batch.verb, batch.target
    quiet = verb == "NOTICE"
    if "," in target or (target[:1] in ("@", "+") and target[1:2] == "#"):
        out.standard(
            "FAIL",
            "BATCH",
            "MULTILINE_INVALID",
            text="A multiline batch goes to one nick or channel",
        )
        return
    user.last_active = core.now
    if target[:1] == "#":
        channel = core.find_channel(target)
        if channel is None:
            if not quiet:
                out.numeric(N.ERR_NOSUCHCHANNEL, target)
            return
        why = refusal(channel, user)
        if why is not None:
            if not quiet:
                out.numeric(N.ERR_CANNOTSENDTOCHAN, channel.name, text=why)
            return
        fields = _fields(core, user, batch, channel.name)
        message = Multiline(**fields)
        later = _store(core, user, batch, message, channel.key, idem=key)
        if core.backplane is not None:  # through the network, in the channel's one order
            core.backplane.channel_special(channel, message.event, user, multiline=fields)
        else:
            for member in channel.members:
                if member is not user:
                    member.send(message.data(member))
        _recorded(core, later)
        if "echo-message" in user.caps:
            out.raw(message.data(user))
        return
    dest = core.find_user(target)
    if dest is None:
        if not quiet:
            out.numeric(N.ERR_NOSUCHNICK, target)
        return
    message = _message(core, user, batch, dest.nick)
    conv = conversation_key(user.nick, dest.nick)
    later = _store(core, user, batch, message, conv, to_account=dest.account, idem=key)
    if dest is user:
        # As for PRIVMSG: a message to oneself is delivered (unlabeled), and with echo-message
        # echoed too (the labeled reply), each batch with its own reference.
        user.send(_message(core, user, batch, dest.nick, msgid=message.event.msgid).data(user))
        if "echo-message" in user.caps:
            out.raw(message.data(user))
    else:
        dest.send(message.data(dest))
        if "echo-message" in user.caps:
            out.raw(message.data(user))
    _recorded(core, later)
    if verb == "PRIVMSG" and dest.away is not None:
        out.numeric(N.RPL_AWAY, dest.nick, text=dest.away)


def _recorded(core: ServerCore, later: KeyRecord | None) -> None:
    """Hand a key's record to a store of keys apart from history, after the relay."""
    if later is not None and core.keys is not None:
        core.keys.record(later, (), core.now)


def _message(
    core: ServerCore, user: User, batch: ClientBatch, shown: str, *, msgid: str | None = None
) -> Multiline:
    """The message to send (``msgid``: another copy of that one, with a new batch reference)."""
    return Multiline(**_fields(core, user, batch, shown, msgid=msgid))


def _fields(
    core: ServerCore, user: User, batch: ClientBatch, shown: str, *, msgid: str | None = None
) -> dict[str, Any]:
    """What makes the message (``Multiline(**fields)``); JSON-able but for ``ref``."""
    return {
        "source": user.prefix,
        "verb": batch.verb,
        "target": shown,
        "lines": batch.lines,
        "time": core.time_tag(),
        "msgid": msgid or core.new_msgid(),
        "account": user.account,
        "client_tags": batch.tags,
        "ref": core.new_batch_id(),
        "bot": BOT_MODE in user.modes,
    }


def _store(
    core: ServerCore,
    user: User,
    batch: ClientBatch,
    message: Multiline,
    key: str,
    to_account: str | None = None,
    idem: str | None = None,
) -> KeyRecord | None:
    """Rule 4: one history record, before a byte is sent; with an idempotency key (rule 7) the
    key's record and the message go to the store in one step. A store of keys apart from
    history (``KeyIndex.with_history`` false) gets the key's record after the message was
    relayed: it is returned, for :func:`_recorded`."""
    history = core.history
    stored: list[StoredMessage] = []
    if history is not None and not is_ctcp_not_action(batch.lines[0][0]):
        # (CTCP other than ACTION is relayed live only, as for PRIVMSG.)
        stored.append(
            StoredMessage(
                msgid=message.event.msgid,
                time=core.now,
                key=key,
                source=user.prefix,
                account=user.account,
                command=batch.verb,
                target=message.target,
                text="\n".join(text for text, _ in batch.lines),
                tags=stored_tags(batch.tags, bot=message.event.bot),
                to_account=to_account,
                multiline=tuple(concat for _, concat in batch.lines),
            )
        )
    if idem is not None and core.keys is not None:
        text = "\n".join(text for text, _ in batch.lines)
        record = KeyRecord(
            sender_of(user),
            idem,
            core.now,
            user.prefix,
            batch.verb,
            text,
            batch.tags or {},
            ((message.target, message.event.msgid),),
        )
        if core.keys.with_history:
            core.keys.record(record, stored, core.now)
            return None
        if stored and history is not None:
            history.append(stored[0])
        return record  # keys kept apart (a cluster's): recorded once the message is relayed
    if stored and history is not None:
        history.append(stored[0])
    return None
