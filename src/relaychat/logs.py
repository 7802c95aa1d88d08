"""Server logging: plain text or one JSON object per line (``--log-format json``), secrets redacted.

Rules:
1. :func:`configure` is the one place the server's logging is set up (``relaychat serve``).
2. No secret reaches a log line: nothing logs a password, a token or a SASL payload in the
   first place, and :class:`RedactFilter` is the second line of defence: it masks the argument of
   ``PASS``, ``OPER``, ``AUTHENTICATE``, ``REGISTER``/``VERIFY`` and anything shaped like an
   argon2 hash or ``password=...`` in a record's message and arguments.
3. JSON records carry ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
   ``message``, and ``exception`` when there is one: one line each, for log shippers.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

__all__ = ["FORMATS", "JsonFormatter", "RedactFilter", "configure", "redact"]

#: The accepted values of ``log_format``.
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_SECRETS = re.compile(
    r"(?i)\b(PASS|OPER\s+\S+|AUTHENTICATE|REGISTER\s+\S+\s+\S+|VERIFY\s+\S+)\s+(:?\S+)"
    r"|(\$argon2[a-z]*\$[^\s\"']+)"
    r"|\b(password|passwd|secret|token)(\s*[=:]\s*)([^\s,;\"']+)"
)


def _mask(m: re.Match[str]) -> str:
    if m.group(1):
        return f"{m.group(1)} <redacted>"
    if m.group(3):
        return "<redacted hash>"
    return f"{m.group(4)}{m.group(5)}<redacted>"


def redact(text: str) -> str:
    """``text`` with anything that looks like a secret replaced by ``<redacted>``."""
    return _SECRETS.sub(_mask, text)


class RedactFilter(logging.Filter):
    """Masks secrets in every record (see :func:`redact`); installed on the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        data: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


def configure(level: str, fmt: str = "text") -> logging.Handler:
    """Log to stderr at ``level`` in ``fmt`` (``text`` or ``json``), secrets redacted.

    Returns:
        The handler installed on the root logger (replacing any earlier one of ours).
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_relaychat", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler()
    handler._relaychat = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
