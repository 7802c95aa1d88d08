"""The client's backlog on first join (pure ``History.backlog``): asked once per channel per
session, never for a channel being resumed or whose messages were seen; live lines wait."""

from __future__ import annotations

from relaychat.client.history import History
from relaychat.protocol.message import Message


def test_asked_once_per_channel_with_the_page_limit() -> None:
    h = History(limit=20)
    ask = h.backlog("#Chan", 50)
    assert ask == Message("CHATHISTORY", ("LATEST", "#Chan", "*", "20"))
    assert h.backlog("#chan", 50) is None  # the same channel, folded
    assert h.backlog("#other", 0) is None  # no backlog wanted


def test_not_for_a_channel_being_resumed_or_already_read() -> None:
    h = History()
    h.note("#seen", "m1", "2026-12-06T10:00:00.000Z")
    assert h.backlog("#seen", 10) is None
    h.resume(["#resumed"])  # an AFTER by timestamp holds #resumed's live lines
    assert h.backlog("#resumed", 10) is None


def test_live_lines_wait_for_the_backlog_and_a_full_page_asks_no_more() -> None:
    h = History(limit=2)
    h.backlog("#c", 2)
    live = Message("PRIVMSG", ("#c", "live"), tags={"msgid": "m3"}, source="a!u@h")
    assert h.hold("#c", live)
    h.open_batch("b1", "#c")
    for i in (2, 3):  # the live line came in the page too
        h.add("b1", Message("PRIVMSG", ("#c", f"t{i}"), tags={"msgid": f"m{i}"}, source="a!u@h"))
    closed = h.close_batch("b1")
    assert [m.params[1] for m in closed.fresh] == ["t2", "t3"]
    assert closed.next is None
    assert closed.held == [live]  # delivered by the caller only if its msgid is new: it is not
    assert not h.first_sight("m3")
