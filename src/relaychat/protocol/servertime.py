"""IRCv3 server-time values (https://ircv3.net/specs/extensions/server-time), pure.

The format is ``YYYY-MM-DDThh:mm:ss.sssZ`` in UTC. The server writes it on relayed messages and
in history; CHATHISTORY reads it back from ``timestamp=`` references.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

__all__ = ["format_server_time", "parse_server_time"]

_TIMESTAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z\Z")


# Hot path: every relayed message carries a time tag. The ``YYYY-MM-DDThh:mm:ss`` part changes
# once a second, so the last second formatted is kept and only the milliseconds are added
# (strftime + gmtime cost ~1 µs; this ~0.15 µs). A race between threads can only make both
# compute the same value.
_last: tuple[int, str] = (-1, "")


def format_server_time(ms: int) -> str:
    """``ms`` (epoch milliseconds) as a server-time value."""
    global _last
    secs, rest = divmod(ms, 1000)
    cached_secs, head = _last
    if cached_secs != secs:
        head = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(secs))
        _last = (secs, head)
    return f"{head}{rest:03d}Z"


def parse_server_time(text: str) -> int | None:
    """A server-time value as epoch milliseconds, or ``None`` when it is not one."""
    m = _TIMESTAMP.match(text)
    if m is None:
        return None
    try:
        y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
        moment = datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
    except ValueError:  # 2024-02-30 and the like
        return None
    frac = (m.group(7) or "").ljust(3, "0")[:3]
    return int(moment.timestamp()) * 1000 + int(frac)
