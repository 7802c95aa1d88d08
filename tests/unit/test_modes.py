"""The pure mode-string parser (server/modes.py), table-driven like Ergo's modes_test.go.

Channel mode classes follow CHANMODES=b,k,l,imnst plus the prefix modes ov (Modern IRC
"CHANMODES parameter"): A and B and prefix modes always take a parameter (A lists when it has
none), C takes one only when set, D never.
"""

from __future__ import annotations

import pytest

from relaychat.server.modes import ModeChange, parse_channel_modes, parse_user_modes

P = ModeChange  # short for the tables


CHANNEL_CASES: list[tuple[str, list[str], list[ModeChange], list[str]]] = [
    # modestring, params, expected changes, expected unknown letters
    ("", [], [], []),
    ("+", [], [], []),
    ("+-+", [], [], []),
    ("+n", [], [P(True, "n")], []),
    ("-n", [], [P(False, "n")], []),
    ("n", [], [P(True, "n")], []),  # no sign means "+"
    ("+imnst", [], [P(True, c) for c in "imnst"], []),
    ("+i-m+n", [], [P(True, "i"), P(False, "m"), P(True, "n")], []),
    ("+o", ["alice"], [P(True, "o", "alice")], []),
    ("-v", ["bob"], [P(False, "v", "bob")], []),
    ("+ov", ["alice", "bob"], [P(True, "o", "alice"), P(True, "v", "bob")], []),
    ("+o-o", ["a", "b"], [P(True, "o", "a"), P(False, "o", "b")], []),
    ("+o", [], [P(True, "o", None)], []),  # missing nick: the applier replies 461
    ("+k", ["key"], [P(True, "k", "key")], []),
    ("-k", ["key"], [P(False, "k", "key")], []),  # class B: a parameter when unset too
    ("-k", [], [P(False, "k", None)], []),
    ("+l", ["10"], [P(True, "l", "10")], []),
    ("-l", [], [P(False, "l")], []),
    ("-l", ["10"], [P(False, "l")], []),  # class C: no parameter when unset
    ("-l+k", ["key"], [P(False, "l"), P(True, "k", "key")], []),
    ("+l", [], [P(True, "l", None)], []),
    ("+b", [], [P(True, "b", None)], []),  # class A without a parameter: list it
    ("b", [], [P(True, "b", None)], []),
    ("-b", [], [P(False, "b", None)], []),
    ("+b", ["x!*@*"], [P(True, "b", "x!*@*")], []),
    ("+bb", ["a", "b"], [P(True, "b", "a"), P(True, "b", "b")], []),
    ("+bb", ["a"], [P(True, "b", "a"), P(True, "b", None)], []),
    (
        "+kl-o+v",
        ["key", "5", "alice", "bob"],
        [P(True, "k", "key"), P(True, "l", "5"), P(False, "o", "alice"), P(True, "v", "bob")],
        [],
    ),
    ("+n", ["extra"], [P(True, "n")], []),  # spare parameters are ignored
    ("+z", [], [], ["z"]),
    ("+zn", [], [P(True, "n")], ["z"]),
    ("+xyz", ["p"], [], ["x", "y", "z"]),
    ("+zo", ["alice"], [P(True, "o", "alice")], ["z"]),  # unknown letters take no parameter
    ("+O", [], [], ["O"]),  # case matters
    ("+ :", [], [], [" ", ":"]),
]


@pytest.mark.parametrize(("modestring", "params", "changes", "unknown"), CHANNEL_CASES)
def test_parse_channel_modes(
    modestring: str, params: list[str], changes: list[ModeChange], unknown: list[str]
) -> None:
    assert parse_channel_modes(modestring, params) == (changes, unknown)


def test_parse_channel_modes_does_not_consume_callers_params() -> None:
    params = ["alice", "bob"]
    parse_channel_modes("+ov", params)
    assert params == ["alice", "bob"]


def test_parse_channel_modes_accepts_a_tuple() -> None:
    assert parse_channel_modes("+v", ("bob",)) == ([P(True, "v", "bob")], [])


USER_CASES: list[tuple[str, list[ModeChange], list[str]]] = [
    ("", [], []),
    ("+i", [P(True, "i")], []),
    ("-i", [P(False, "i")], []),
    ("i", [P(True, "i")], []),
    ("+io", [P(True, "i"), P(True, "o")], []),
    ("+i-o", [P(True, "i"), P(False, "o")], []),
    ("+x", [], ["x"]),
    ("+xi-y", [P(True, "i")], ["x", "y"]),
    ("+I", [], ["I"]),
]


@pytest.mark.parametrize(("modestring", "changes", "unknown"), USER_CASES)
def test_parse_user_modes(modestring: str, changes: list[ModeChange], unknown: list[str]) -> None:
    assert parse_user_modes(modestring, "io") == (changes, unknown)


def test_parse_user_modes_known_letters_are_the_callers() -> None:
    assert parse_user_modes("+iw", "iw") == ([P(True, "i"), P(True, "w")], [])


def test_mode_change_is_frozen() -> None:
    change = ModeChange(True, "o", "alice")
    with pytest.raises(AttributeError):
        change.mode = "v"  # type: ignore[misc]
    assert change == ModeChange(adding=True, mode="o", param="alice")
    assert ModeChange(False, "n").param is None
