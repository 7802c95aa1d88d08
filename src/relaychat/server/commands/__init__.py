"""Command handlers, one module per family; importing this package fills the command table."""

from relaychat.server.commands import channels, info, messaging, modes, oper, registration

__all__ = ["channels", "info", "messaging", "modes", "oper", "registration"]
