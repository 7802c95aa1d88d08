"""Wildcard masks (server/masks.py): matching with rfc1459 casefolding, and ban-mask completion.

RFC 2812 §2.5: ``*`` matches any run of characters (none included), ``?`` exactly one.
"""

from __future__ import annotations

import time

import pytest

from relaychat.server.masks import match_mask, normalize_ban_mask

MATCH_CASES: list[tuple[str, str, bool]] = [
    # mask, text, matches
    ("", "", True),
    ("", "a", False),
    ("*", "", True),
    ("*", "anything at all", True),
    ("**", "x", True),
    ("abc", "abc", True),
    ("abc", "abcd", False),
    ("abc", "ab", False),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("?", "", False),
    ("???", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ba", False),
    ("*a", "ba", True),
    ("*a", "ab", False),
    ("a*b", "ab", True),
    ("a*b", "axxxb", True),
    ("a*b", "axxxbc", False),
    ("a*b*c", "abc", True),
    ("a*b*c", "aXbYbZc", True),
    ("a*b*c", "acb", False),
    ("*ab*ab*", "abab", True),
    ("*ab*ab*", "aba", False),
    ("*aa*", "aXa", False),
    ("a*?", "a", False),
    ("a*?", "ab", True),
    ("*?*?*", "x", False),
    ("*?*?*", "xy", True),
    # Regex metacharacters are literal.
    ("a.c", "abc", False),
    ("a.c", "a.c", True),
    ("a+b", "a+b", True),
    ("(x)", "(x)", True),
    ("a\\*b", "a\\zzb", True),
    ("[ab]", "[ab]", True),
    ("[ab]", "a", False),
    # rfc1459 casefolding on both sides: A-Z and []\~ fold to a-z and {}|^.
    ("ALICE", "alice", True),
    ("alice", "ALICE", True),
    ("[x]", "{X}", True),
    ("{x}", "[x]", True),
    ("a\\b", "A|B", True),
    ("a~", "A^", True),
    ("É", "é", False),  # only ASCII and []\~ fold
    # Real ban masks against user prefixes.
    ("bob!*@*", "bob!~bob@127.0.0.1", True),
    ("bob!*@*", "bobby!~bob@127.0.0.1", False),
    ("*!*@127.0.0.*", "bob!~bob@127.0.0.1", True),
    ("*!*@127.0.0.*", "bob!~bob@127.0.1.1", False),
    ("*!~b?b@*", "x!~bob@h", True),
    ("*!*@*", "x!y@z", True),
    # Newlines are ordinary characters for "?" and "*".
    ("a?b", "a\nb", True),
    ("a*b", "a\n\nb", True),
]


@pytest.mark.parametrize(("mask", "text", "expected"), MATCH_CASES)
def test_match_mask(mask: str, text: str, expected: bool) -> None:
    assert match_mask(mask, text) is expected


@pytest.mark.parametrize(
    ("mask", "text"),
    [
        ("*a" * 30 + "*b", "a" * 500),
        ("*?" * 60 + "x", "y" * 500),
        ("a*a*a*a*a*a*a*a*a*a*a*a*c", "a" * 500 + "b"),
    ],
)
def test_hostile_masks_are_fast(mask: str, text: str) -> None:
    """A mask with many stars must not backtrack exponentially (any client can send one)."""
    start = time.perf_counter()
    assert not match_mask(mask, text)
    assert time.perf_counter() - start < 0.5


NORMALIZE_CASES: list[tuple[str, str]] = [
    ("bob", "bob!*@*"),
    ("[bob]", "[bob]!*@*"),
    ("*", "*!*@*"),
    ("", "*!*@*"),
    ("example.org", "*!*@example.org"),
    ("*.example.org", "*!*@*.example.org"),
    ("2001:db8::1", "*!*@2001:db8::1"),
    ("user@host", "*!user@host"),
    ("@host", "*!*@host"),
    ("user@", "*!user@*"),
    ("@", "*!*@*"),
    ("nick!user", "nick!user@*"),
    ("nick!", "nick!*@*"),
    ("!user", "*!user@*"),
    ("!", "*!*@*"),
    ("nick!user@host", "nick!user@host"),
    ("!@", "*!*@*"),
    ("n!u@h@x", "n!u@h@x"),
]


@pytest.mark.parametrize(("mask", "expected"), NORMALIZE_CASES)
def test_normalize_ban_mask(mask: str, expected: str) -> None:
    assert normalize_ban_mask(mask) == expected


@pytest.mark.parametrize("mask", [m for _, m in NORMALIZE_CASES])
def test_normalize_is_idempotent(mask: str) -> None:
    assert normalize_ban_mask(mask) == mask
