"""IDEM: the sender identity behind idempotency keys (``relaychat.dev/idempotency``).

A client not logged in to an account needs an identity that outlives its connection, so that a
message it sends again after a reconnect is recognised (``server/idempotency.py`` rule 1). It
asks for one with ``IDEM TOKEN`` and presents it again on every later connection with
``IDEM TOKEN <token>``, before registering; the server answers ``IDEM TOKEN <token>`` with the
token in force on this connection.

It also holds what PRIVMSG, NOTICE, TAGMSG and a ``draft/multiline`` batch share about keys:
:func:`keyed_first` (is this key new?) and :func:`first_answer` (the answer a repeat gets again:
the echo of every copy, a multiline message as a multiline batch).
"""

from __future__ import annotations

import logging

from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.protocol.servertime import format_server_time
from relaychat.server.commands.params import message_line
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.idempotency import CAP, MAX_KEY_LEN, sender_of, valid_key
from relaychat.server.isupport import BOT_MODE
from relaychat.server.multiline import Multiline
from relaychat.server.relay import Relay
from relaychat.server.state import User
from relaychat.store.base import conversation_key
from relaychat.store.keys import KeyRecord

__all__ = ["first_answer", "keyed_first"]

log = logging.getLogger("relaychat.server")


def keyed_first(
    core: ServerCore, user: User, key: str, command: str, target: str, out: Replies
) -> bool:
    """Whether a message with idempotency ``key`` is to be relayed: the key is valid and new.

    A bad key is refused with ``FAIL <command> INVALID_IDEMPOTENCY_KEY <target>``; a key
    relayed within the window gets :func:`first_answer` (and the message is not relayed).
    """
    if not valid_key(key):
        text = f"Idempotency key must be 1 to {MAX_KEY_LEN} characters of A-Z a-z 0-9 - _"
        out.standard("FAIL", command, "INVALID_IDEMPOTENCY_KEY", target, text=text)
        return False
    assert core.keys is not None
    done = core.keys.lookup(sender_of(user), key, core.now)
    if done is None:
        return True
    first_answer(core, user, done, out)
    return False


def first_answer(core: ServerCore, user: User, done: KeyRecord, out: Replies) -> None:
    """The answer a repeated key gets again: with echo-message, the echo of every copy relayed
    (same msgid, same time; a multiline message as a multiline batch, or line by line to a
    client without the capability); without it nothing, which labeled-response makes ``ACK``.
    """
    if "echo-message" not in user.caps:
        return
    stamp = format_server_time(int(done.time * 1000))
    bot = BOT_MODE in user.modes
    tags = done.tags or None
    for shown, msgid in done.sent:
        lines = _multiline_lines(core, done, shown, msgid)
        if lines is None:
            line = message_line(done.source, done.command, shown, done.text)
            out.relay(
                Relay(
                    line, time=stamp, msgid=msgid, account=user.account, client_tags=tags, bot=bot
                )
            )
            continue
        message = Multiline(
            source=done.source,
            verb=done.command,
            target=shown,
            lines=lines,
            time=stamp,
            msgid=msgid,
            account=user.account,
            client_tags=tags,
            ref=core.new_batch_id(),
            bot=bot,
        )
        out.raw(message.data(user))


def _multiline_lines(
    core: ServerCore, done: KeyRecord, shown: str, msgid: str
) -> list[tuple[str, bool]] | None:
    """The lines (and concat flags) of a multiline message a key relayed, or ``None`` for a
    one-line message. The flags come from history (the message was stored with its key); if
    retention dropped it, a text of several lines is taken as lines without concatenation."""
    flags: tuple[bool, ...] | None = None
    history = core.history
    if history is not None:
        nick = done.source.split("!", 1)[0]
        key = irc_lower(shown) if shown[:1] == "#" else conversation_key(nick, shown)
        try:
            entry = history.message(key, msgid)
        except Exception:  # the store's trouble: answer from the record alone
            log.exception("looking up %s in history failed", msgid)
            entry = None
        if entry is not None:
            flags = entry.message.multiline
    texts = done.text.split("\n")
    if flags is None or len(flags) != len(texts):
        if len(texts) == 1:
            return None
        flags = (False,) * len(texts)
    return list(zip(texts, flags, strict=True))


@command("IDEM", min_params=1, pre_registration=True)
def idem(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """IDEM TOKEN [<token>]

    Get the identity behind your messages' idempotency keys, or present it again after a
    reconnect (relaychat.dev/idempotency; docs/delivery.md).
    """
    keys = core.keys
    sub = msg.params[0].upper()
    if keys is None:
        out.standard("FAIL", "IDEM", "DISABLED", text="Idempotency keys are off on this server")
        return
    if CAP not in user.caps:
        out.standard("FAIL", "IDEM", "NEED_CAP", CAP, text=f"Request the {CAP} capability first")
        return
    if sub != "TOKEN":
        out.standard("FAIL", "IDEM", "UNKNOWN_SUBCOMMAND", sub, text="Only IDEM TOKEN exists")
        return
    presented = msg.param(1)
    sender = keys.redeem(presented) if presented else None
    if sender is not None:
        token = presented
    else:
        if presented:
            out.standard(
                "WARN",
                "IDEM",
                "INVALID_TOKEN",
                text="That token was not issued by this server (or has been forgotten); "
                "messages sent under it are not recognised: here is a new one",
            )
        sender, token = keys.issue()
    user.idem_id = sender
    out.add(Message("IDEM", ("TOKEN", token), core.name))
