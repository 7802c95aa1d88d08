"""The command table: verb -> handler and the checks every command shares.

Handlers have one signature, ``(core, user, msg, out) -> None``, and register with
:func:`command`. The shared checks (registered yet? enough parameters? operator?) run once in
:meth:`ServerCore.handle` before any handler, so no handler repeats them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relaychat.protocol.message import Message
    from relaychat.server.core import Replies, ServerCore
    from relaychat.server.state import User

__all__ = ["COMMANDS", "Command", "Handler", "command"]

Handler = Callable[["ServerCore", "User", "Message", "Replies"], None]


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command.

    Attributes:
        name: the verb, upper case.
        handler: the function that carries it out.
        min_params: fewer parameters get 461 ERR_NEEDMOREPARAMS.
        pre_registration: usable before registration completes (else 451 ERR_NOTREGISTERED).
        oper: only for IRC operators (else 481 ERR_NOPRIVILEGES).
        help: one line for HELP and the docs.
    """

    name: str
    handler: Handler
    min_params: int
    pre_registration: bool
    oper: bool
    help: str


COMMANDS: dict[str, Command] = {}


def command(
    name: str, *, min_params: int = 0, pre_registration: bool = False, oper: bool = False
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``name``.

    The first line of the handler's docstring is its syntax and becomes its help line.
    """

    def register(fn: Handler) -> Handler:
        if name in COMMANDS:
            raise RuntimeError(f"command {name} registered twice")
        doc = (fn.__doc__ or name).strip().splitlines()[0]
        COMMANDS[name] = Command(name, fn, min_params, pre_registration, oper, doc)
        return fn

    return register
