"""Command handlers, one module per family; importing this package fills the command table."""

from relaychat.server.commands import (
    accounts,
    channels,
    history,
    info,
    ircv3,
    messaging,
    modes,
    oper,
    registration,
)

__all__ = [
    "accounts",
    "channels",
    "history",
    "info",
    "ircv3",
    "messaging",
    "modes",
    "oper",
    "registration",
]
