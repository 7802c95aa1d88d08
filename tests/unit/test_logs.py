"""Server logs (relaychat/logs.py): JSON lines, and no secret in any line."""

from __future__ import annotations

import json
import logging

import pytest

from relaychat.logs import JsonFormatter, RedactFilter, redact


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("< PASS hunter2", "< PASS <redacted>"),
        ("< pass :hunter 2", "< pass <redacted> 2"),
        ("< OPER root hunter2", "< OPER root <redacted>"),
        ("< AUTHENTICATE AGFsaWNlAGh1bnRlcjI=", "< AUTHENTICATE <redacted>"),
        ("< REGISTER alice * hunter2", "< REGISTER alice * <redacted>"),
        ("< VERIFY alice 12345", "< VERIFY alice <redacted>"),
        ("hash $argon2id$v=19$m=65536,t=3,p=4$abc$def here", "hash <redacted hash> here"),
        ("password=hunter2, token: abc", "password=<redacted>, token: <redacted>"),
        ("alice joined #passwords", "alice joined #passwords"),
    ],
)
def test_redact(text: str, clean: str) -> None:
    assert redact(text) == clean


def test_filter_and_json_formatter() -> None:
    record = logging.LogRecord(
        "relaychat.server", logging.INFO, __file__, 1, "line %s", ("PASS s3cret",), None
    )
    assert RedactFilter().filter(record)
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "line PASS <redacted>"
    assert data["level"] == "INFO" and data["logger"] == "relaychat.server"
    assert data["time"].endswith("Z") and "T" in data["time"]
