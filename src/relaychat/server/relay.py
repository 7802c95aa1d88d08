"""One event for many recipients, serialised at most once per tag profile.

A :class:`Relay` holds the line without tags and the tags the server attaches (``time``,
``msgid``, ``account``, ``bot`` for a sender in bot mode) plus the sender's client-only tags
(``+...``). Each recipient's copy
depends only on its tag profile (``caps.profile_of``): clients without tag capabilities get the
plain bytes with no work at all; the others share one serialisation per profile.
"""

from __future__ import annotations

from relaychat.protocol.tags import serialize_tags
from relaychat.server.caps import ACCOUNT, EXTJOIN, MSGTAGS, TIME
from relaychat.server.state import User

__all__ = ["Relay"]


class Relay:
    """A relayed event.

    Args:
        line: the wire line without tags, CR-LF included.
        time: the ``time`` tag value (server-time).
        msgid: the ``msgid`` tag value (message-ids).
        account: the sender's account, for ``account-tag``, or ``None``.
        client_tags: the sender's client-only tags (keys starting with ``+``).
        ext_line: the line for clients with extended-join (JOIN only).
        bot: the sender is in bot mode: clients with message-tags see a ``bot`` tag
            (https://ircv3.net/specs/extensions/bot-mode).
    """

    __slots__ = ("account", "bot", "cache", "client_tags", "ext_line", "line", "msgid", "time")

    def __init__(
        self,
        line: bytes,
        *,
        time: str,
        msgid: str,
        account: str | None = None,
        client_tags: dict[str, str] | None = None,
        ext_line: bytes | None = None,
        bot: bool = False,
    ) -> None:
        self.line = line
        self.bot = bot
        self.time = time
        self.msgid = msgid
        self.account = account
        self.client_tags = client_tags
        self.ext_line = ext_line
        self.cache: dict[int, bytes] = {}

    def data(self, user: User) -> bytes:
        """The bytes ``user`` receives."""
        profile = user.profile
        if not profile:
            return self.line
        cached = self.cache.get(profile)
        if cached is None:
            cached = self.cache[profile] = self._build(profile)
        return cached

    def tags_for(self, profile: int) -> dict[str, str]:
        """The tags a client of ``profile`` sees on this event."""
        tags: dict[str, str] = {}
        if profile & TIME:
            tags["time"] = self.time
        if profile & MSGTAGS:
            tags["msgid"] = self.msgid
        if profile & ACCOUNT and self.account:
            tags["account"] = self.account
        if profile & MSGTAGS:
            if self.bot:
                tags["bot"] = ""
            if self.client_tags:
                tags.update(self.client_tags)
        return tags

    def _build(self, profile: int) -> bytes:
        line = self.ext_line if profile & EXTJOIN and self.ext_line is not None else self.line
        tags = self.tags_for(profile)
        if not tags:
            return line
        return b"@" + serialize_tags(tags).encode("utf-8", "replace") + b" " + line
