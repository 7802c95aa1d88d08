"""IRCv3 capabilities: what the server offers, and what each client's set means for its output.

https://ircv3.net/specs/extensions/capability-negotiation. ``CAP LS 302`` shows values;
``cap-notify`` is implied by 302. A client's caps are reduced to a small bit mask, its *tag
profile*, which decides which tags its copy of a relayed message carries (see ``relay.py``), so a
broadcast is serialised at most once per profile, not once per recipient.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from relaychat.config import Config

__all__ = [
    "ACCOUNT",
    "EXTJOIN",
    "MSGTAGS",
    "TIME",
    "metadata_value",
    "offered",
    "profile_of",
]

#: Tag-profile bits.
TIME = 1  # server-time: the time tag
MSGTAGS = 2  # message-tags: msgid and client-only tags, TAGMSG
ACCOUNT = 4  # account-tag
EXTJOIN = 8  # extended-join: JOIN carries account and realname

#: Every capability the server can offer, in CAP LS order.
_ALWAYS = (
    "account-notify",
    "account-tag",
    "away-notify",
    "batch",
    "cap-notify",
    "chghost",
    "draft/channel-rename",
    "echo-message",
    "extended-join",
    "extended-monitor",
    "invite-notify",
    "labeled-response",
    "message-tags",
    "multi-prefix",
    "server-time",
    "setname",
    "standard-replies",
    "userhost-in-names",
)


def offered(config: Config, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The capabilities this server offers, with their 302 values ("" for none).

    Args:
        config: the configuration (values such as SASL mechanisms depend on it).
        extra: capabilities contributed by optional parts (sasl, chathistory, ...), name -> value.
    """
    caps = dict.fromkeys(_ALWAYS, "")
    # draft/multiline (https://ircv3.net/specs/extensions/multiline): the limits are its value.
    lim = config.limits
    caps["draft/multiline"] = (
        f"max-bytes={lim.multiline_max_bytes},max-lines={lim.multiline_max_lines}"
    )
    caps["draft/metadata-2"] = metadata_value(config)
    if extra:
        caps.update(extra)
    return dict(sorted(caps.items()))


def metadata_value(config: Config) -> str:
    """The ``draft/metadata-2`` cap value: its limits (https://ircv3.net/specs/extensions/metadata)."""
    meta = config.metadata
    value = (
        f"max-subs={meta.max_subs},max-keys={meta.max_keys},max-value-bytes={meta.max_value_bytes}"
    )
    return "before-connect," + value if meta.before_connect else value


def profile_of(caps: AbstractSet[str]) -> int:
    """The tag profile for a client that has ``caps``."""
    profile = 0
    if "server-time" in caps:
        profile |= TIME
    if "message-tags" in caps:
        profile |= MSGTAGS
    if "account-tag" in caps:
        profile |= ACCOUNT
    if "extended-join" in caps:
        profile |= EXTJOIN
    return profile
