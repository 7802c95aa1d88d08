"""Mode strings, pure: ``"+o-v+l", ["alice", "bob", "10"]`` -> changes and unknown letters.

Channel modes follow the ISUPPORT classes of :data:`~relaychat.server.isupport.CHANMODES`:
A (a list: ``b``; no parameter means "show the list"), B (always a parameter: ``k``),
C (a parameter when set: ``l``), D (a flag: ``imnst``), and the prefix modes ``ov``
(always a nick). Nothing here looks at server state: ``commands/modes.py`` applies the changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relaychat.server.isupport import CHANMODES

__all__ = ["ModeChange", "parse_channel_modes", "parse_user_modes"]

_LIST, _ALWAYS, _WHEN_SET, _FLAGS = CHANMODES
_PREFIX = "ov"


@dataclass(frozen=True, slots=True)
class ModeChange:
    """One mode letter being set or unset.

    Attributes:
        adding: ``True`` for ``+``, ``False`` for ``-``.
        mode: the letter.
        param: its parameter, or ``None`` when it takes none or none was given.
    """

    adding: bool
    mode: str
    param: str | None = None


def parse_channel_modes(
    modestring: str, params: Sequence[str]
) -> tuple[list[ModeChange], list[str]]:
    """Split a channel mode string into changes.

    Returns:
        ``(changes, unknown)``: the changes in order, and the letters that are not channel modes.
    """
    changes: list[ModeChange] = []
    unknown: list[str] = []
    args = list(params)
    adding = True
    for ch in modestring:
        if ch == "+":
            adding = True
        elif ch == "-":
            adding = False
        elif ch in _LIST or ch in _PREFIX or ch in _ALWAYS:
            changes.append(ModeChange(adding, ch, args.pop(0) if args else None))
        elif ch in _WHEN_SET:
            param = args.pop(0) if adding and args else None
            changes.append(ModeChange(adding, ch, param))
        elif ch in _FLAGS:
            changes.append(ModeChange(adding, ch))
        else:
            unknown.append(ch)
    return changes, unknown


def parse_user_modes(modestring: str, known: str) -> tuple[list[ModeChange], list[str]]:
    """Split a user mode string (no mode takes a parameter) into changes and unknown letters."""
    changes: list[ModeChange] = []
    unknown: list[str] = []
    adding = True
    for ch in modestring:
        if ch == "+":
            adding = True
        elif ch == "-":
            adding = False
        elif ch in known:
            changes.append(ModeChange(adding, ch))
        else:
            unknown.append(ch)
    return changes, unknown
