"""WHO (RFC 2812 §3.6.1, Modern IRC) with WHOX (https://ircv3.net/specs/extensions/whox).

Rules:
1. What can be looked up is: ``WHO #channel`` lists its members, ``WHO <nick>`` is one dict
   lookup.
2. Any other mask scans the registered users, cheaply: the mask's longest literal part must be
   in the user's :attr:`~relaychat.server.state.User.who_text` (its folded ``nick!user@host``
   and realname, kept up to date by the user) before the mask is matched against those of the
   nick, the host, the realname and the username (``who_fields``) that hold it (or, for a mask
   with ``!`` or ``@``, against the whole ``nick!user@host``). A mask matching this server's
   name matches everyone. At most ``limits.who_results`` users are listed; when more matched,
   the 315 says so.
6. Bounded for everyone else: a scan examines :data:`WHO_PART` users per part, as a streamed
   answer (``server/pending.py``, like LIST): the next part only once the asker's output has
   drained, other clients served between parts, the asker's later commands held meanwhile. So
   however many users are connected, one WHO holds the event loop for at most one part; the
   whole scan costs one pass over the users taken when it began (a user who left meanwhile is
   skipped).
3. Visibility: an invisible (+i) user is listed only to itself, to operators and to users
   sharing a channel with it; a secret channel's members only to its members.
4. Flags: ``H``/``G`` (here/gone), ``*`` for an operator, ``B`` for a bot (ISUPPORT ``BOT``),
   then the channel prefixes (all of them with multi-prefix).
5. WHOX: ``WHO <mask> [o]%<fields>[,<token>]`` answers 354 with exactly the standard fields
   asked for, always in the order ``t c u i h s n f d l a o r`` whatever order they were asked
   in: token, channel (``*`` outside ``WHO #channel``), username, IP (only to the user itself
   and to operators, else ``255.255.255.255``), host, server, nick, flags, hop count ``0``,
   idle seconds, account (``0`` for none), op level ``n/a``, realname.
"""

from __future__ import annotations

import re

from relaychat.protocol import numerics as N
from relaychat.protocol.message import Message
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.isupport import BOT_MODE
from relaychat.server.masks import folded_matcher, longest_literal, match_mask
from relaychat.server.state import Channel, User

__all__ = ["WHO_PART", "who_flags"]

#: Users examined per part of a WHO scan (rule 6): about 0.5 ms of the loop when every one of
#: them must be matched (benchmarks/who_bench.py).
WHO_PART = 1000

#: WHOX fields in the order of the reply.
_WHOX_ORDER = "tcuihsnfdlaor"
_TOKEN_RE = re.compile(r"[0-9]{1,3}\Z")


def who_flags(target: User, channel: Channel | None, multi: bool) -> str:
    """The WHO flags of ``target`` (rule 4)."""
    flags = "G" if target.away is not None else "H"
    if target.is_oper:
        flags += "*"
    if BOT_MODE in target.modes:
        flags += BOT_MODE
    if channel is not None:
        flags += channel.members[target].prefixes(multi)
    return flags


class _Reply:
    """How one WHO request answers: a 352 per user, or a 354 with the WHOX fields."""

    __slots__ = ("asker", "core", "fields", "multi", "out", "token")

    def __init__(self, core: ServerCore, asker: User, out: Replies, fields: str | None, token: str):
        self.core = core
        self.asker = asker
        self.out = out
        self.fields = fields
        self.token = token
        self.multi = "multi-prefix" in asker.caps

    def line(self, target: User, channel: Channel | None) -> None:
        core, flags = self.core, who_flags(target, channel, self.multi)
        if self.fields is None:
            self.out.numeric(
                N.RPL_WHOREPLY,
                channel.name if channel is not None else "*",
                target.username,
                target.host,
                target.server or core.name,
                target.nick,
                flags,
                text=f"0 {target.realname}",
            )
            return
        params: list[str] = []
        for field in _WHOX_ORDER:
            if field not in self.fields:
                continue
            if field == "t":
                params.append(self.token)
            elif field == "c":
                params.append(channel.name if channel is not None else "*")
            elif field == "u":
                params.append(target.username)
            elif field == "i":
                shown = target is self.asker or self.asker.is_oper
                params.append(target.ip if shown else "255.255.255.255")
            elif field == "h":
                params.append(target.host)
            elif field == "s":
                params.append(target.server or core.name)
            elif field == "n":
                params.append(target.nick)
            elif field == "f":
                params.append(flags)
            elif field == "d":
                params.append("0")
            elif field == "l":
                params.append(str(max(0, int(core.now - target.last_active))))
            elif field == "a":
                params.append(target.account or "0")
            elif field == "o":
                params.append("n/a")
            else:  # "r", always last
                params.append(target.realname)
        if params:
            *middle, last = params
            self.out.numeric(N.RPL_WHOSPCRPL, *middle, text=last)
        else:
            self.out.numeric(N.RPL_WHOSPCRPL)


@command("WHO")
def who(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """WHO [<mask> [o][%<fields>[,<token>]]]

    Users matching a nick, channel or mask; with %fields, WHOX replies (354) with those fields.
    """
    mask = msg.param(0) or "*"
    flags, pct, whox = msg.param(1).partition("%")
    only_opers = "o" in flags
    fields: str | None = None
    token = "0"
    if pct:
        fields, _, given = whox.partition(",")
        if _TOKEN_RE.match(given):
            token = given
    reply = _Reply(core, user, out, fields, token)
    if mask.startswith("#"):
        _channel(core, user, mask, only_opers, reply)
        out.numeric(N.RPL_ENDOFWHO, mask)
        return
    exact = core.find_user(mask)
    if exact is not None:
        if not only_opers or exact.is_oper:
            reply.line(exact, None)
        out.numeric(N.RPL_ENDOFWHO, mask)
        return
    scan = _Scan(core, user, mask, only_opers, reply)
    core.stream(user, out, scan.part)


def _channel(core: ServerCore, user: User, name: str, only_opers: bool, reply: _Reply) -> None:
    channel = core.find_channel(name)
    inside = channel is not None and user in channel.members
    if channel is None or ("s" in channel.modes and not inside):
        return
    # Seen from outside, invisible members are hidden unless they share a channel (rule 3).
    shared = None if inside or user.is_oper else set(core.neighbours(user))
    for member in channel.members:
        if only_opers and not member.is_oper:
            continue
        if shared is not None and "i" in member.modes and member not in shared:
            continue
        reply.line(member, channel)


class _Scan:
    """A WHO scan of the registered users, in parts (rules 2, 3 and 6)."""

    __slots__ = (
        "core",
        "everyone",
        "found",
        "limit",
        "literal",
        "mask",
        "matcher",
        "only_opers",
        "position",
        "reply",
        "shared",
        "user",
        "users",
        "whole",
    )

    def __init__(
        self, core: ServerCore, user: User, mask: str, only_opers: bool, reply: _Reply
    ) -> None:
        self.core = core
        self.user = user
        self.mask = mask
        self.only_opers = only_opers
        self.reply = reply
        self.everyone = mask in ("*", "0") or match_mask(mask, core.name)
        self.matcher = folded_matcher(mask)
        self.literal = "" if self.everyone else longest_literal(mask)
        self.whole = "!" in mask or "@" in mask
        self.shared: set[User] | None = None
        self.limit = core.config.limits.who_results
        self.found = 0
        self.users = list(core.users.values())  # as they are now
        self.position = 0

    def part(self, out: Replies) -> bool:
        """List the matches among the next :data:`WHO_PART` users; ``True`` once the 315 is
        sent (the list is done, or cut at ``limits.who_results``)."""
        self.reply.out = out
        users, user, literal, matcher = self.users, self.user, self.literal, self.matcher
        end = min(self.position + WHO_PART, len(users))
        for index in range(self.position, end):
            other = users[index]
            if other.quitting or not other.registered or (self.only_opers and not other.is_oper):
                continue
            if not self.everyone:
                text = other.who_text
                if literal not in text:
                    continue
                if self.whole:
                    if not matcher.match(text.partition("\n")[0]):
                        continue
                else:
                    # Only a field holding the literal can match: most are ruled out here.
                    for field in other.who_fields:
                        if literal in field and matcher.match(field):
                            break
                    else:
                        continue
            if "i" in other.modes and other is not user and not user.is_oper:
                if self.shared is None:
                    self.shared = set(self.core.neighbours(user))
                if other not in self.shared:
                    continue
            if self.found >= self.limit:
                out.numeric(
                    N.RPL_ENDOFWHO,
                    self.mask,
                    text=f"End of WHO list (only the first {self.limit} matches: narrow the mask)",
                )
                return True
            self.found += 1
            self.reply.line(other, None)
        self.position = end
        if end < len(users):
            return False
        out.numeric(N.RPL_ENDOFWHO, self.mask)
        return True
