"""IRCv3 message-tags: value escaping and the tag section (https://ircv3.net/specs/extensions/message-tags)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaychat.protocol.tags import escape_value, parse_tags, serialize_tags, unescape_value

# Any text a tag value may hold: everything but NUL (which no line may carry) and lone surrogates
# (which no UTF-8 line can carry), with the characters that need escaping drawn often.
tag_values = st.text(
    alphabet=st.one_of(
        st.sampled_from(";\\ \r\n:s=@"),
        st.characters(codec="utf-8", exclude_characters="\0"),
    )
)


class TestEscaping:
    """ "Escaping values": the five escapes, and tolerance on unescaping."""

    @pytest.mark.parametrize(
        ("raw", "escaped"),
        [
            (";", "\\:"),
            (" ", "\\s"),
            ("\\", "\\\\"),
            ("\r", "\\r"),
            ("\n", "\\n"),
            ("a;b c\\d\r\ne", "a\\:b\\sc\\\\d\\r\\ne"),
            ("plain", "plain"),
            ("", ""),
            ("=:@", "=:@"),
        ],
    )
    def test_escape_table(self, raw: str, escaped: str) -> None:
        assert escape_value(raw) == escaped
        assert unescape_value(escaped) == raw

    @pytest.mark.parametrize(
        ("escaped", "value"),
        [
            # "If a \ is followed by a character that isn't one of the escapes, the \ is dropped."
            ("value\\1", "value1"),
            ("\\b\\c", "bc"),
            # "If a lone \ comes at the end of the value, it MUST be dropped."
            ("value1\\", "value1"),
            ("\\", ""),
            ("\\\\\\", "\\"),
            ("\\\\s", "\\s"),
        ],
    )
    def test_unescape_is_tolerant(self, escaped: str, value: str) -> None:
        assert unescape_value(escaped) == value

    @given(tag_values)
    def test_round_trip(self, value: str) -> None:
        assert unescape_value(escape_value(value)) == value

    @given(tag_values)
    def test_escaped_value_holds_no_separator(self, value: str) -> None:
        escaped = escape_value(value)
        for ch in "; \r\n":
            assert ch not in escaped


class TestTagSection:
    def test_values_bare_keys_and_empty_values(self) -> None:
        assert parse_tags("a=b;c;d=;+e/f=g") == {"a": "b", "c": "", "d": "", "+e/f": "g"}

    def test_value_holds_equals_sign(self) -> None:
        assert parse_tags("a=b=c") == {"a": "b=c"}

    def test_last_duplicate_wins(self) -> None:
        assert parse_tags("a=1;b=2;a=3") == {"a": "3", "b": "2"}

    def test_empty_items_and_keys_are_skipped(self) -> None:
        assert parse_tags(";;a=1;;=x;") == {"a": "1"}
        assert parse_tags("") == {}

    def test_serialize_writes_empty_values_as_bare_keys(self) -> None:
        assert serialize_tags({"a": "", "b": "x y", "c": "1;2"}) == "a;b=x\\sy;c=1\\:2"

    @given(
        st.dictionaries(
            st.from_regex(r"\A\+?([a-z0-9.-]+/)?[A-Za-z0-9-]+\Z", fullmatch=True),
            tag_values,
            max_size=6,
        )
    )
    def test_section_round_trip(self, tags: dict[str, str]) -> None:
        assert parse_tags(serialize_tags(tags)) == tags
