"""The input line's history and tab completion, pure."""

from __future__ import annotations

from relaychat.tui.editing import Completer, InputHistory


class TestHistory:
    def test_up_and_down_walk_the_lines_and_restore_the_draft(self) -> None:
        h = InputHistory()
        for line in ("one", "two", "two", "  ", "three"):
            h.add(line)
        assert len(h) == 3  # the repeat and the blank line were skipped
        assert [h.previous("dra"), h.previous(""), h.previous(""), h.previous("")] == [
            "three",
            "two",
            "one",
            "one",  # (stays at the oldest)
        ]
        assert [h.next(), h.next(), h.next(), h.next()] == ["two", "three", "dra", "dra"]

    def test_bounded(self) -> None:
        h = InputHistory(size=2)
        for line in ("a", "b", "c"):
            h.add(line)
        assert [h.previous(""), h.previous("")] == ["c", "b"]

    def test_empty(self) -> None:
        h = InputHistory()
        assert h.previous("typed") == "typed" and h.next() == "typed"


NICKS = ["bob", "Bobby", "alice", "carol"]


class TestCompletion:
    def test_a_nick_first_on_the_line_gets_a_colon(self) -> None:
        c = Completer()
        assert c.complete("al", 2, nicks=NICKS) == ("alice: ", 7)

    def test_a_nick_later_on_the_line_gets_a_space(self) -> None:
        c = Completer()
        assert c.complete("hi car", 6, nicks=NICKS) == ("hi carol ", 9)

    def test_tab_again_cycles_through_the_matches(self) -> None:
        c = Completer()
        first = c.complete("bo", 2, nicks=NICKS)
        assert first == ("bob: ", 5)
        second = c.complete(*first, nicks=NICKS)
        assert second == ("Bobby: ", 7)
        assert c.complete(*second, nicks=NICKS) == ("bob: ", 5)

    def test_an_edit_starts_a_new_completion(self) -> None:
        c = Completer()
        text, cursor = c.complete("bo", 2, nicks=NICKS) or ("", 0)
        assert c.complete(text + "x", cursor + 1, nicks=NICKS) is None

    def test_commands_only_as_the_first_word(self) -> None:
        c = Completer()
        assert c.complete("/jo", 3, commands=["join", "help"]) == ("/join ", 6)
        assert c.complete("say /jo", 7, commands=["join"], nicks=NICKS) is None

    def test_channels(self) -> None:
        c = Completer()
        assert c.complete("/join #de", 9, channels=["#dev", "#a"]) == ("/join #dev ", 11)

    def test_text_after_the_cursor_is_kept(self) -> None:
        c = Completer()
        assert c.complete("hi al and bob", 5, nicks=NICKS) == ("hi alice  and bob", 9)

    def test_no_match(self) -> None:
        assert Completer().complete("zz", 2, nicks=NICKS) is None
