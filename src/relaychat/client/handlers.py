"""The client's command handlers: one function per IRC command, registered in a table.

Each handler has the same signature, ``(protocol, message, now) -> None``, and its syntax on the
first docstring line. Handlers may touch the protocol's state (they are part of it, kept apart
only to keep each module small); they never do I/O.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

from relaychat.client.events import Ctcp, Join, Kick, Message, NickChange, Part, Quit, Topic
from relaychat.client.guarantee import IDEM_CAP, IDEM_TAG
from relaychat.client.history import BATCH_TYPES, HISTORY_CAPS
from relaychat.client.protocol import (
    HANDLERS,
    WANTED_CAPS,
    ClientProtocol,
    fallback_nick,
    nick_of,
)
from relaychat.protocol.casemap import ascii_lower, irc_lower
from relaychat.protocol.ctcp import parse_ctcp
from relaychat.protocol.message import Message as IrcMessage

__all__ = ["deliver", "negotiate", "negotiated", "next_nick"]

_SASL_FAILED = ("902", "904", "905", "906", "908")

Handler = Callable[[ClientProtocol, IrcMessage, float], None]


def _on(*commands: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for c in commands:
            HANDLERS[c] = fn
        return fn

    return register


@_on("PING")
def _ping(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """PING <token>: answer at once, whatever the pacing."""
    p._urgent(IrcMessage("PONG", msg.params or (p.server or "relaychat",)), now)


@_on("PONG")
def _pong(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """PONG <server> <token>"""
    token = msg.param(len(msg.params) - 1)
    if p.keepalive.answered(token, now):
        if p.tracker.answers_lost(token):  # the server answers in order: this one never will
            p._die("the answer to a message was lost (an unreadable line from the server)")
            return
        p._settle(p.tracker.pong(token))


#: How a server says when to come back ("... (try again in 12 seconds)").
_RETRY_AFTER = re.compile(r"try again in (\d{1,6}) seconds?")


@_on("ERROR")
def _error(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """ERROR <reason>: the server is closing the link."""
    reason = msg.param(0, "closing link")
    wait = _RETRY_AFTER.search(reason)
    if wait is not None:
        p.retry_after = float(wait.group(1))
    p._die("server error: " + reason)


@_on("CAP")
def _cap(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """CAP <target> <LS|ACK|NAK|NEW|DEL> [*] :<caps> (IRCv3 capability negotiation)"""
    sub = msg.param(1).upper()
    caps = msg.param(len(msg.params) - 1)
    if sub == "LS" and not p.registered:
        if msg.param(2) == "*" and len(msg.params) > 3:  # 302: more lines follow
            p._ls_more.append(caps)
            return
        for word in " ".join([*p._ls_more, caps]).split():
            name, _, value = word.partition("=")
            p._offered[name] = value
        p._ls_more = []
        negotiate(p, now)
    elif sub in ("ACK", "NAK"):
        words = caps.split()
        if sub == "NAK" and len(words) > 1 and not p.registered:
            # All or nothing: one of them was refused. Ask for each on its own.
            for word in words:
                p._urgent(IrcMessage("CAP", ("REQ", word)), now)
            p._cap_pending += len(words)
        for word in words:
            if sub == "ACK":
                if word.startswith("-"):
                    p.caps.discard(word[1:])
                else:
                    p.caps.add(word)
            elif word == "sasl" and p.config.sasl is not None and len(words) == 1:
                p._die("the server refused SASL", fatal=True)
                return
        p._cap_pending = max(0, p._cap_pending - 1)
        negotiated(p, now)
    elif sub == "DEL":
        p.caps.difference_update(caps.split())


@_on("AUTHENTICATE")
def _authenticate(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """AUTHENTICATE + : send the SASL PLAIN payload in chunks of 400 bytes."""
    if msg.param(0) != "+" or p.config.sasl is None:
        return
    account, password = p.config.sasl
    payload = base64.b64encode(f"{account}\0{account}\0{password}".encode()).decode()
    chunks = [payload[i : i + 400] for i in range(0, len(payload), 400)]
    if not chunks or len(chunks[-1]) == 400:
        chunks.append("+")
    for chunk in chunks:
        p._urgent(IrcMessage("AUTHENTICATE", (chunk,)), now)


@_on("903")
def _sasl_ok(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """903 RPL_SASLSUCCESS: finish capability negotiation."""
    p._urgent(IrcMessage("CAP", ("END",)), now)


@_on(*_SASL_FAILED)
def _sasl_failed(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """904 ERR_SASLFAIL and friends: retrying cannot help."""
    p._die(f"SASL authentication failed: {msg.param(len(msg.params) - 1)}", fatal=True)


@_on("001")
def _welcome(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """001 RPL_WELCOME <nick> :Welcome ... <nick>!<user>@<host>"""
    p.registered = True
    p._registered_at = now
    p.nick = msg.param(0) or p.nick
    p.server = msg.source or ""
    p._own_nicks.add(p._fold(p.nick))
    last = msg.param(len(msg.params) - 1).rsplit(" ", 1)[-1]
    if "!" in last and "@" in last:
        user, _, host = last.split("!", 1)[1].partition("@")
        p._user_len, p._host_len = len(user), len(host)


@_on("005")
def _isupport(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """005 RPL_ISUPPORT <nick> <token>... :are supported by this server"""
    for token in msg.params[1:-1]:
        key, _, value = token.partition("=")
        p.isupport[key.upper()] = value
        if key.upper() == "CASEMAPPING":
            p._fold = ascii_lower if value == "ascii" else irc_lower


@_on("376", "422")
def _end_of_motd(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """376 RPL_ENDOFMOTD / 422 ERR_NOMOTD: the welcome burst is over."""
    if p.registered:
        p._become_ready(now)


@_on("433", "437")
def _nick_taken(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """433 ERR_NICKNAMEINUSE / 437 ERR_UNAVAILRESOURCE: try the next fallback nick."""
    if not p.registered:
        next_nick(p, now, msg.param(len(msg.params) - 1))


@_on("432")
def _nick_erroneous(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """432 ERR_ERRONEUSNICKNAME: fatal for the wanted nick, else try the next fallback."""
    if p.registered:
        return
    if p._nick_tries == 0:
        p._die(f"the server refuses the nick {p.nick!r}", fatal=True)
    else:
        next_nick(p, now, "erroneous nickname")


@_on("464", "465")
def _refused(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """464 ERR_PASSWDMISMATCH / 465 ERR_YOUREBANNEDCREEP: retrying cannot help."""
    p._die(f"refused by the server: {msg.param(len(msg.params) - 1)}", fatal=True)


@_on("IDEM")
def _idem(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """IDEM TOKEN <token>: our identity for idempotency keys on this server."""
    if msg.param(0).upper() == "TOKEN" and msg.param(1):
        p.delivery.token_given(msg.param(1))


@_on("FAIL")
def _fail(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """FAIL <command> <code> [<context>...] :<description> (IRCv3 standard replies)"""
    command = msg.param(0).upper()
    if command == "IDEM":
        p.caps.discard(IDEM_CAP)  # no identity: no exactly-once on this connection
    elif command == "CHATHISTORY":  # a resume refused: what was held back goes through now
        for held in p.history.release_all():
            deliver(p, held, history=False, hold=False)


@_on("PRIVMSG", "NOTICE")
def _privmsg(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """PRIVMSG|NOTICE <target> <text>"""
    if len(msg.params) < 2:
        return
    deliver(p, msg, history=False)


def deliver(p: ClientProtocol, msg: IrcMessage, *, history: bool, hold: bool = True) -> None:
    """Turn a PRIVMSG/NOTICE into a :class:`Message` event, unless its msgid or its
    idempotency key was seen; a live one is held back while its conversation is resumed."""
    sender = nick_of(msg.source)
    target, text = msg.params[0], msg.params[1]
    msgid, time = msg.tags.get("msgid"), msg.tags.get("time")
    bare = target.lstrip("@+")  # STATUSMSG: "@#chan"
    channel = p.is_channel(bare)
    reply_to = bare if channel else sender
    if not history:
        if hold and reply_to and p.history.hold(reply_to, msg):
            return  # delivered after the history being fetched for it
        if not p.history.first_sight(msgid):
            return
    key = msg.tags.get(IDEM_TAG)
    if key and not p.history.first_key(p._fold(bare) if channel else "", key):
        return  # written again by its sender, and relayed again by a server that could not tell
    if not history:
        p.history.note(reply_to, msgid, time)
        ctcp = parse_ctcp(text) if text[:1] == "\x01" else None
        if ctcp is not None and ctcp[0] != "ACTION" and sender:
            p._events.append(Ctcp(sender, target, *ctcp, msg.command == "NOTICE", msg.source, time))
            return
    elif p._fold(sender) in p._own_nicks:
        return  # our own line, played back: we never delivered it as an event
    p._events.append(
        Message(
            sender,
            target,
            text,
            reply_to=reply_to or target,
            notice=msg.command == "NOTICE",
            prefix=msg.source,
            msgid=msgid,
            time=time,
            history=history,
            tags=dict(msg.tags),
        )
    )


@_on("BATCH")
def _batch(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """BATCH +<ref> <type> [<params>] | BATCH -<ref> (IRCv3 batch)"""
    ref = msg.param(0)
    if ref.startswith("+") and msg.param(1) in BATCH_TYPES:
        p.history.open_batch(ref[1:], msg.param(2))
    elif ref.startswith("-") and p.history.owns(ref[1:]):
        fresh, nxt, held = p.history.close_batch(ref[1:])
        for m in fresh:
            if len(m.params) >= 2:
                deliver(p, m, history=True)
        for m in held:
            deliver(p, m, history=False, hold=False)
        if nxt is not None:
            p._control.append((0, nxt))
            p._pump(now)


@_on("JOIN")
def _join(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """JOIN <channel>"""
    nick, channel = nick_of(msg.source), msg.param(0)
    own = p._own(nick)
    if own:
        p.joined[p._fold(channel)] = channel
        if msg.source and "@" in msg.source:
            user, _, host = msg.source.split("!", 1)[-1].partition("@")
            p._user_len, p._host_len = len(user), len(host)
    if nick and channel:
        p._events.append(Join(nick, channel, msg.source, own))
    if own and channel and p.config.backlog and p.caps & HISTORY_CAPS and "batch" in p.caps:
        ask = p.history.backlog(channel, p.config.backlog)
        if ask is not None:
            p._control.append((0, ask))
            p._pump(now)


@_on("PART")
def _part(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """PART <channel> [<reason>]"""
    nick, channel = nick_of(msg.source), msg.param(0)
    own = p._own(nick)
    if own:
        p.joined.pop(p._fold(channel), None)
        p.forget_channel(channel)
    if nick and channel:
        p._events.append(Part(nick, channel, msg.param(1), own))


@_on("KICK")
def _kick(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """KICK <channel> <nick> [<reason>]"""
    channel, nick = msg.param(0), msg.param(1)
    own = p._own(nick)
    if own:
        p.joined.pop(p._fold(channel), None)
        p.forget_channel(channel)
    if nick and channel:
        p._events.append(Kick(channel, nick, nick_of(msg.source), msg.param(2), own))


@_on("QUIT")
def _quit(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """QUIT [<reason>]"""
    nick = nick_of(msg.source)
    if nick:
        p._events.append(Quit(nick, msg.param(0)))


@_on("NICK")
def _nick(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """NICK <new>"""
    old, new = nick_of(msg.source), msg.param(0)
    if not (old and new):
        return
    own = p._own(old)
    if own:
        p.nick = p.wanted_nick = new
        p._own_nicks.add(p._fold(new))
    p._events.append(NickChange(old, new, own))


@_on("TOPIC")
def _topic(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """TOPIC <channel> <topic>"""
    if msg.param(0):
        p._events.append(Topic(msg.param(0), msg.param(1), nick_of(msg.source)))


@_on("332")
def _topic_reply(p: ClientProtocol, msg: IrcMessage, now: float) -> None:
    """332 RPL_TOPIC <nick> <channel> :<topic>"""
    if len(msg.params) >= 3:
        p._events.append(Topic(msg.params[1], msg.params[2], None))


# --- registration and capabilities ------------------------------------------------------


def negotiate(p: ClientProtocol, now: float) -> None:
    """Ask for the capabilities wanted among those offered (CAP LS is complete)."""
    offered = p._offered
    wanted = [c for c in WANTED_CAPS if c in offered]
    if "labeled-response" in wanted and "batch" not in offered:
        wanted.remove("labeled-response")
    if "labeled-response" in wanted and "echo-message" in offered:
        wanted.append("echo-message")  # the answer to a labeled line is then its echo
    more, fatal = p.delivery.want(offered)
    if fatal is not None:
        p._die(fatal, fatal=True)
        return
    wanted += more
    if p.config.sasl is not None:
        mechs = offered.get("sasl")
        if mechs is None or (mechs and "PLAIN" not in mechs.split(",")):
            p._die("the server does not offer SASL PLAIN", fatal=True)
            return
        wanted.append("sasl")
    if wanted:  # one line, so registration leaves the pacing budget for the JOINs after it
        p._urgent(IrcMessage("CAP", ("REQ", " ".join(wanted))), now)
    p._cap_pending = 1 if wanted else 0
    negotiated(p, now)


def negotiated(p: ClientProtocol, now: float) -> None:
    """Every CAP REQ is answered: IDEM TOKEN, SASL, then CAP END."""
    if p._cap_pending > 0 or p.registered:
        return
    if IDEM_CAP in p.caps and not p._idem_sent:
        p._idem_sent = True  # (before CAP END: the answer comes before 001)
        p._urgent(IrcMessage("IDEM", p.delivery.token_request()), now)
    if p.config.sasl is not None and "sasl" in p.caps and not p._sasl_started:
        p._sasl_started = True
        p._urgent(IrcMessage("AUTHENTICATE", ("PLAIN",)), now)
        return
    p._urgent(IrcMessage("CAP", ("END",)), now)


def next_nick(p: ClientProtocol, now: float, refused: str) -> None:
    """The nick was refused during registration: try the next fallback."""
    p._nick_tries += 1
    if p._nick_tries > p.config.nick_attempts:
        p._die(f"no free nickname after {p._nick_tries} tries ({refused})", fatal=True)
        return
    nicklen = int(p.isupport.get("NICKLEN", "30") or 30)
    p.nick = fallback_nick(p.wanted_nick, p._nick_tries, nicklen)
    p._urgent(IrcMessage("NICK", (p.nick,)), now)
