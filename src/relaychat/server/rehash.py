"""Swapping the configuration of a running core (REHASH, SIGHUP, ``relaychat reload``): pure.

Rules:
1. A rehash replaces the whole frozen :class:`~relaychat.config.Config` (DESIGN.md); nothing is
   patched field by field. :func:`apply_config` is the core's half: the MOTD, the WHOWAS bound,
   the capabilities offered. The edge's half (reading the file, TLS, listeners, connections'
   limits) is ``server/reload.py``.
2. When the capabilities offered change, clients with ``cap-notify`` are told with ``CAP NEW`` /
   ``CAP DEL`` (https://ircv3.net/specs/extensions/capability-negotiation#cap-notify), and a
   capability deleted is taken off every client that had it.
3. A few settings only change at a restart (:data:`RESTART_ONLY`): :func:`keep_restart_only`
   carries the running values over and names what was kept.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import TYPE_CHECKING, Any

from relaychat.config import Config
from relaychat.protocol.message import Message

if TYPE_CHECKING:
    from relaychat.server.core import ServerCore

__all__ = ["RESTART_ONLY", "apply_config", "keep_restart_only"]

#: Settings a running server keeps until it restarts (where data lives, what it is called,
#: whether a history store is open, and the HTTP port, which ``server/reload.py`` does not move).
RESTART_ONLY = ("data_dir", "server_name", "history.enabled", "http.port", "http.tls")


def keep_restart_only(old: Config, new: Config) -> tuple[Config, list[str]]:
    """``new`` with the :data:`RESTART_ONLY` settings of ``old``; and the keys that differed."""
    kept: list[str] = []
    top: dict[str, object] = {}
    sections: dict[str, Any] = {}
    for key in RESTART_ONLY:
        section, _, name = key.rpartition(".")
        if section and not hasattr(old, section):
            continue  # a section this build does not have
        if section:
            before = getattr(old, section)
            after = sections.get(section, getattr(new, section))
            if getattr(before, name) != getattr(after, name):
                kept.append(key)
                sections[section] = dataclasses.replace(after, **{name: getattr(before, name)})
        elif getattr(old, key) != getattr(new, key):
            kept.append(key)
            top[key] = getattr(old, key)
    if kept:
        new = dataclasses.replace(new, **top, **sections)  # type: ignore[arg-type]
    return new, kept


def apply_config(core: ServerCore, new: Config) -> tuple[list[str], list[str]]:
    """Make ``new`` the core's configuration (already validated, restart-only keys kept).

    Returns:
        The capabilities added and deleted (already announced to cap-notify clients).
    """
    before = core.offered_caps()
    old = core.config
    core.config = new
    core.motd = new.motd_lines()
    if new.limits.whowas != old.limits.whowas:
        # Newest first (appendleft): keep the newest entries.
        keep = list(core.whowas)[: new.limits.whowas]
        core.whowas = deque(keep, maxlen=new.limits.whowas)
    # Account registration is offered as a capability only while it is allowed, with the keys
    # the settings give it (server/accounts.py).
    if "sasl" in core.extra_caps:  # accounts are attached
        from relaychat.server.accounts import registration_cap

        value = registration_cap(new)
        if value is None:
            core.extra_caps.pop("draft/account-registration", None)
        else:
            core.extra_caps["draft/account-registration"] = value
    # Throttles take the new settings and keep what they remember (server/throttle.py).
    core.throttles.reconfigure(new.throttle)
    core.ratelog.interval = new.throttle.log_interval
    history = core.history
    if history is not None:  # retention reads these live (store/sqlite_retention.py)
        for name in ("max_age_days", "max_per_target"):
            if hasattr(history, name):
                setattr(history, name, getattr(new.history, name))
    after = core.offered_caps()
    added = [c for c, v in after.items() if before.get(c) != v]
    deleted = [c for c in before if c not in after]
    if added or deleted:
        _notify_caps(core, added, deleted, after)
    return added, deleted


def _notify_caps(
    core: ServerCore, added: list[str], deleted: list[str], offered: dict[str, str]
) -> None:
    for user in list(core.connections.values()):
        if user.quitting:
            continue
        if deleted and user.caps & set(deleted):
            core.set_caps(user, user.caps - set(deleted))
        if "cap-notify" not in user.caps:
            continue
        lines = []
        if deleted:
            lines.append(Message("CAP", (user.nick, "DEL", " ".join(deleted)), core.name))
        if added:
            words = [
                f"{c}={offered[c]}" if offered[c] and user.cap_version >= 302 else c for c in added
            ]
            lines.append(Message("CAP", (user.nick, "NEW", " ".join(words)), core.name))
        user.send(b"".join(m.to_bytes() for m in lines))
