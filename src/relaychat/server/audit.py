"""Operator audit: what opers do (KILL, K/D-lines and their removal, REHASH, mode overrides, OPER)
is recorded as one JSON object per line in ``audit.log`` under the data directory, and told to
opers who asked for it with user mode ``+s`` and a server notice mask.

Rules:
1. :func:`audit` is pure: it builds the record, hands it to ``core.audit_sink`` (set by the edge,
   which appends it to the file; ``None`` in memory) and sends the server notice. It never reads
   the clock (``core.now``) and never touches a file itself.
2. Records and notices never hold a secret: no password, token or SASL payload is ever passed in.
3. Snomask letters: ``b`` bans (K-line, D-line and their removal), ``k`` kills, ``o`` operator
   (OPER, failed OPER, mode overrides), ``r`` rehash. ``+s`` without a mask means all of them.

:class:`AuditLog` is the edge's sink: append-only, mode 0600, one ``write`` per record.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relaychat.protocol import numerics as N
from relaychat.protocol.message import Message
from relaychat.protocol.servertime import format_server_time

if TYPE_CHECKING:
    from relaychat.server.core import Replies, ServerCore
    from relaychat.server.state import User

__all__ = ["SNOMASKS", "AuditLog", "audit", "set_snomask", "snotice"]

log = logging.getLogger("relaychat.audit")

#: Every server notice mask letter, and what it carries.
SNOMASKS = {"b": "bans", "k": "kills", "o": "operator actions", "r": "rehash"}


def snotice(core: ServerCore, letter: str, text: str) -> None:
    """Send ``*** Notice -- text`` to every oper with ``+s`` and ``letter`` in its snomask."""
    for user in core.connections.values():
        if "s" in user.modes and letter in user.snomask and not user.quitting:
            user.send(Message("NOTICE", (user.nick, f"*** Notice -- {text}"), core.name).to_bytes())


def audit(
    core: ServerCore,
    actor: User | str,
    action: str,
    letter: str,
    *,
    target: str = "",
    reason: str = "",
    **extra: Any,
) -> None:
    """Record an operator action and tell the opers watching ``letter``.

    Args:
        actor: the oper who did it, or a name for a non-IRC actor (``admin`` socket).
        action: the verb (``KILL``, ``KLINE``, ``UNDLINE``, ``REHASH``, ``MODE``...).
        letter: the snomask letter (see :data:`SNOMASKS`).
        target: what it was done to (a nick, a mask, a channel).
        reason: the reason given, if any.
        extra: more fields for the record (JSON-serialisable, never a secret).
    """
    if isinstance(actor, str):
        who, oper, shown = actor, None, actor
    else:
        who, oper, shown = actor.prefix, actor.oper_name, actor.nick
    record: dict[str, Any] = {
        "time": format_server_time(int(core.now * 1000)),
        "actor": who,
        "oper": oper,
        "action": action,
        "target": target,
    }
    if reason:
        record["reason"] = reason
    record.update(extra)
    sink = core.audit_sink
    if sink is not None:
        try:
            sink(record)
        except Exception:  # the audit file failing must not stop the action; say so loudly
            log.exception("could not write the audit record for %s", action)
    text = f"{shown} {action}"
    if target:
        text += f" {target}"
    details = " ".join(f"{k}={v}" for k, v in extra.items() if v not in (None, ""))
    if details:
        text += f" [{details}]"
    if reason:
        text += f" ({reason})"
    snotice(core, letter, text)


def set_snomask(core: ServerCore, user: User, adding: bool, mask: str, out: Replies) -> bool:
    """User mode ``+s [<mask>]`` / ``-s``: server notices for opers. Returns whether ``+s``
    itself changed (the caller announces the MODE); 008 tells the mask."""
    if adding and not user.is_oper:
        out.numeric(N.ERR_NOPRIVILEGES)
        return False
    if not adding:
        had = "s" in user.modes
        user.set_mode("s", False)
        user.snomask = ""
        return had
    letters = _apply_mask(user.snomask, mask)
    if not letters:
        letters = "".join(sorted(SNOMASKS))
    changed = "s" not in user.modes
    user.set_mode("s", True)
    user.snomask = letters
    out.numeric(N.RPL_SNOMASK, "+" + letters, text="Server notice mask")
    return changed


def _apply_mask(current: str, mask: str) -> str:
    """``+bk-o`` style edits of a snomask (a bare ``bk`` sets exactly those)."""
    if not mask:
        return current
    if mask[0] not in "+-":
        return "".join(sorted(set(mask) & set(SNOMASKS)))
    letters = set(current)
    adding = True
    for ch in mask:
        if ch in "+-":
            adding = ch == "+"
        elif ch in SNOMASKS:
            (letters.add if adding else letters.discard)(ch)
    return "".join(sorted(letters))


class AuditLog:
    """The edge's audit sink: appends each record as one JSON line to ``path`` (mode 0600).

    Raises (at construction):
        OSError: the file cannot be opened for appending.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def __call__(self, record: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
