"""Command handlers, one module per family; importing this package fills the command table."""

from relaychat.server.commands import (
    accounts,
    channels,
    history,
    info,
    ircv3,
    markread,
    messaging,
    modes,
    multiline,
    oper,
    redaction,
    registration,
    typing_tag,
)

__all__ = [
    "accounts",
    "channels",
    "history",
    "info",
    "ircv3",
    "markread",
    "messaging",
    "modes",
    "multiline",
    "oper",
    "redaction",
    "registration",
    "typing_tag",
]
