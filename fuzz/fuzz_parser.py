#!/usr/bin/env python3
"""atheris entry point: the parser (``protocol/``) on arbitrary bytes.

Invariants: ``parse_bytes`` either returns a message or raises a ``ProtocolError`` (never anything
else); a parsed message serialises, and parses back to an equal message; the line buffer never
returns a line longer than its bound, and splitting the same bytes at any point gives the same
lines; tags round-trip through escape/unescape.
"""

from __future__ import annotations

import contextlib
import sys

try:
    import atheris

    _instrument = atheris.instrument_imports
except ImportError:  # the fallback engine (fuzz/fallback.py) runs the same targets
    atheris = None
    _instrument = contextlib.nullcontext  # type: ignore[assignment]

with _instrument(include=["relaychat"]):  # type: ignore[call-arg]
    from relaychat.errors import ProtocolError
    from relaychat.protocol.lines import LineBuffer, Overlong
    from relaychat.protocol.message import MAX_LINE_BYTES, parse, parse_bytes
    from relaychat.protocol.tags import escape_value, unescape_value


def check_bytes(data: bytes) -> None:
    """The parser invariants on one input (raises AssertionError on a finding)."""
    try:
        msg = parse_bytes(data)
    except ProtocolError:
        msg = None
    if msg is not None:
        # Text level: a line that was not UTF-8 was read as latin-1, and its UTF-8 form may be
        # longer than the byte limit, which is not the parser's to keep (the server's replies
        # are cut to fit where they are built).
        wire = msg.serialize()
        again = parse(wire)
        assert again == msg, (data, wire, msg, again)
    cut = data[0] % (len(data) + 1) if data else 0
    whole, split = LineBuffer(MAX_LINE_BYTES), LineBuffer(MAX_LINE_BYTES)
    a = whole.feed(data)
    b = split.feed(data[:cut]) + split.feed(data[cut:])
    assert a == b, (data, cut, a, b)
    for item in a:
        if not isinstance(item, Overlong):
            assert len(item) <= MAX_LINE_BYTES and b"\n" not in item, item
    text = data.decode("utf-8", "replace")
    assert unescape_value(escape_value(text)) == text, text


def main() -> None:
    assert atheris is not None, "atheris is not installed: pip install atheris"
    atheris.Setup(sys.argv, check_bytes)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
