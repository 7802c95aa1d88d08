"""The relaychat IRC server: a pure core (``core``, ``state``, ``commands``) and asyncio edges.

Importing this package fills the command table (``core.COMMANDS``) from ``commands``: the
core looks verbs up in that table and never imports the handlers itself, so the handlers may
import the core without an import loop.
"""

from relaychat.server import commands as _commands

__all__: list[str] = []

_ = _commands
