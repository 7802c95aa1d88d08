"""draft/multiline in memory (commands/multiline.py, server/multiline.py).

Spec: https://ircv3.net/specs/extensions/multiline. The examples are the spec's, with the
recipients irctest uses: one with the capability, one with the same caps but not multiline.
"""

from __future__ import annotations

import pytest

from relaychat.protocol.message import parse
from relaychat.store import MemoryHistory
from tests.harness import CoreHarness
from tests.unit.core_support import SERVER, src
from tests.unit.v3_support import BASE, ML, batches, client, make

CONCAT = "draft/multiline-concat"


@pytest.fixture
def h() -> CoreHarness:
    """alice and bob with multiline, carol with the same caps but not multiline, dave with
    none; all in #test (alice is its operator)."""
    h = make()
    client(h, "alice", *BASE, ML)
    client(h, "bob", *BASE, ML)
    client(h, "carol", *BASE)
    client(h, "dave")
    for nick in ("alice", "bob", "carol", "dave"):
        h.send(nick, "JOIN #test")
    h.clear()
    return h


def send_batch(
    h: CoreHarness, nick: str, *lines: str, head: str = "BATCH +123 draft/multiline #test"
) -> None:
    h.send(nick, head)
    for line in lines:
        h.send(nick, line)
    h.send(nick, "BATCH -123")


def spec_example(h: CoreHarness) -> None:
    send_batch(
        h,
        "alice",
        "@batch=123 PRIVMSG #test hello",
        "@batch=123 PRIVMSG #test :",
        "@batch=123 privmsg #test :how is ",
        f"@batch=123;{CONCAT} PRIVMSG #test :everyone?",
        head="@label=xyz;+client-only-tag BATCH +123 draft/multiline #test",
    )


def fails(h: CoreHarness, nick: str) -> list[list[str]]:
    return [list(m.params) for m in h.messages(nick) if m.command == "FAIL"]


class TestDelivery:
    def test_echo_is_one_labeled_batch_with_one_msgid(self, h: CoreHarness) -> None:
        spec_example(h)
        echo = batches(h.lines("alice"))
        start, *inner, end = echo
        assert start.command == "BATCH" and start.params[1:] == ("draft/multiline", "#test")
        assert start.tags["label"] == "xyz"
        assert start.tags["msgid"] and start.tags["time"]
        assert start.tags["+client-only-tag"] == ""
        ref = start.params[0][1:]
        assert end.command == "BATCH" and end.params == ("-" + ref,)
        assert [m.params for m in inner] == [
            ("#test", "hello"),
            ("#test", ""),
            ("#test", "how is "),
            ("#test", "everyone?"),
        ]
        for m in inner:
            assert m.command == "PRIVMSG" and m.tags.get("batch") == ref
            assert "msgid" not in m.tags and "time" not in m.tags and "label" not in m.tags
        assert [CONCAT in m.tags for m in inner] == [False, False, False, True]

    def test_capable_member_gets_the_batch(self, h: CoreHarness) -> None:
        spec_example(h)
        msgid = batches(h.lines("alice"))[0].tags["msgid"]
        start, *inner, end = batches(h.lines("bob"))
        assert start.source == src("alice")
        assert start.tags["msgid"] == msgid and "label" not in start.tags
        assert len(inner) == 4 and inner[3].tags.get(CONCAT) == ""
        assert end.params == ("-" + start.params[0][1:],)

    def test_fallback_line_by_line_without_blank_lines(self, h: CoreHarness) -> None:
        spec_example(h)
        msgid = batches(h.lines("alice"))[0].tags["msgid"]
        got = batches(h.lines("carol"))
        assert [m.params for m in got] == [
            ("#test", "hello"),
            ("#test", "how is "),
            ("#test", "everyone?"),
        ]
        assert [m.tags.get("msgid") for m in got] == [msgid, None, None]
        times = {m.tags["time"] for m in got}
        assert len(times) == 1
        assert all(m.tags["+client-only-tag"] == "" for m in got)
        assert not any(CONCAT in m.tags or "batch" in m.tags for m in got)

    def test_fallback_to_a_client_without_tags(self, h: CoreHarness) -> None:
        spec_example(h)
        assert h.lines("dave") == [
            f":{src('alice')} PRIVMSG #test :hello",
            f":{src('alice')} PRIVMSG #test :how is ",
            f":{src('alice')} PRIVMSG #test :everyone?",
        ]

    def test_labeled_without_echo_gets_ack_at_the_end(self) -> None:
        h = make()
        client(h, "alice", "batch", "labeled-response", ML)
        h.send("alice", "JOIN #test")
        h.clear()
        h.send("alice", "@label=L1 BATCH +b draft/multiline #test")
        h.send("alice", "@batch=b PRIVMSG #test :one")
        assert h.lines("alice") == []  # opening a batch and its lines are not answered
        h.send("alice", "BATCH -b")
        assert h.lines("alice") == [f"@label=L1 :{SERVER} ACK"]

    def test_other_commands_go_on_while_a_batch_is_open(self, h: CoreHarness) -> None:
        h.send("alice", "BATCH +123 draft/multiline #test")
        h.send("alice", "@batch=123 PRIVMSG #test :one")
        h.send("alice", "PING :still here")
        assert [m.command for m in h.messages("alice")] == ["PONG"]
        h.send("alice", "BATCH -123")
        assert [m.command for m in h.messages("bob")] == ["BATCH", "PRIVMSG", "BATCH"]

    def test_notice_batch(self, h: CoreHarness) -> None:
        send_batch(h, "alice", "@batch=123 NOTICE #test :a", "@batch=123 NOTICE #test :b")
        assert [m.command for m in batches(h.lines("carol"))] == ["NOTICE", "NOTICE"]

    def test_private_message_and_away(self, h: CoreHarness) -> None:
        h.send("carol", "AWAY :lunch")
        h.clear()
        h.send("alice", "BATCH +p draft/multiline carol")
        h.send("alice", "@batch=p PRIVMSG carol :one")
        h.send("alice", "@batch=p PRIVMSG carol :two")
        h.send("alice", "BATCH -p")
        assert [m.params for m in batches(h.lines("carol"))] == [("carol", "one"), ("carol", "two")]
        echo = batches(h.lines("alice"))
        assert [m.command for m in echo] == ["BATCH", "PRIVMSG", "PRIVMSG", "BATCH", "301"]
        assert h.lines("bob") == []

    def test_to_oneself_arrives_twice_with_echo(self, h: CoreHarness) -> None:
        """Issue 11 fix 7's parity: the delivery, then the echo (labeled), one msgid, two
        batch references."""
        send_batch(
            h,
            "alice",
            "@batch=123 PRIVMSG alice :me",
            head="@label=L9 BATCH +123 draft/multiline alice",
        )
        got = batches(h.lines("alice"))
        assert [m.command for m in got] == ["BATCH", "PRIVMSG", "BATCH"] * 2
        delivery, echo = got[0], got[3]
        assert "label" not in delivery.tags and echo.tags["label"] == "L9"
        assert delivery.tags["msgid"] == echo.tags["msgid"]
        assert delivery.params[0] != echo.params[0]  # each batch has its own reference
        assert [m.params for m in got if m.command == "PRIVMSG"] == [("alice", "me")] * 2
        h.send("alice", "CAP REQ draft/chathistory")
        h.lines("alice")
        h.send("alice", "CHATHISTORY LATEST alice * 10")  # kept once, as the one msgid
        kept = batches(h.lines("alice"))
        heads = [m for m in kept if m.command == "BATCH" and m.params[1:2] == (ML,)]
        assert [m.tags["msgid"] for m in heads] == [echo.tags["msgid"]]

    def test_to_oneself_without_echo_once_and_ack(self) -> None:
        h = make()
        client(h, "alice", "batch", "labeled-response", "message-tags", ML)
        h.clear()
        send_batch(
            h,
            "alice",
            "@batch=123 PRIVMSG alice :me",
            head="@label=L9 BATCH +123 draft/multiline alice",
        )
        got = batches(h.lines("alice"))
        assert [m.command for m in got] == ["BATCH", "PRIVMSG", "BATCH", "ACK"]
        assert "label" not in got[0].tags and got[3].tags["label"] == "L9"

    def test_unknown_targets_and_refusals_are_the_privmsg_numerics(self, h: CoreHarness) -> None:
        send_batch(
            h, "alice", "@batch=123 PRIVMSG nobody :x", head="BATCH +123 draft/multiline nobody"
        )
        assert h.numerics("alice") == ["401"]
        send_batch(
            h, "alice", "@batch=123 PRIVMSG #none :x", head="BATCH +123 draft/multiline #none"
        )
        assert h.numerics("alice") == ["403"]
        h.send("alice", "MODE #test +m")
        h.clear()
        send_batch(h, "bob", "@batch=123 PRIVMSG #test :x")
        assert h.numerics("bob") == ["404"]
        assert h.lines("carol") == []
        send_batch(h, "bob", "@batch=123 NOTICE #test :x")
        assert h.lines("bob") == []  # NOTICE: never an automatic reply

    def test_bytes_and_lines_at_the_limits_pass(self) -> None:
        h = make(limits={"multiline_max_bytes": 10, "multiline_max_lines": 3})
        client(h, "alice", *BASE, ML)
        client(h, "bob", *BASE)
        for nick in ("alice", "bob"):
            h.send(nick, "JOIN #t")
        h.clear()
        # 4 + 1 (line break) + 3 + 2 (concat: no break) = 10 bytes, 3 lines: exactly the limits.
        h.send("alice", "BATCH +x draft/multiline #t")
        h.send("alice", "@batch=x PRIVMSG #t :abcd")
        h.send("alice", "@batch=x PRIVMSG #t :efg")
        h.send("alice", f"@batch=x;{CONCAT} PRIVMSG #t :hi")
        h.send("alice", "BATCH -x")
        assert [m.params[1] for m in batches(h.lines("bob"))] == ["abcd", "efg", "hi"]


class TestErrors:
    """Spec "Errors": FAIL BATCH MULTILINE_* and nothing delivered."""

    def small(self) -> CoreHarness:
        h = make(limits={"multiline_max_bytes": 10, "multiline_max_lines": 3})
        client(h, "alice", *BASE, ML)
        client(h, "bob", *BASE, ML)
        for nick in ("alice", "bob"):
            h.send(nick, "JOIN #t")
        h.clear()
        return h

    def test_max_lines(self) -> None:
        h = self.small()
        h.send("alice", "@label=big BATCH +x draft/multiline #t")
        for _ in range(5):
            h.send("alice", "@batch=x PRIVMSG #t :a")
        h.send("alice", "BATCH -x")
        msgs = h.messages("alice")
        assert [(m.tags.get("label"), m.params) for m in msgs] == [
            ("big", ("BATCH", "MULTILINE_MAX_LINES", "3", "Multiline batch max-lines exceeded"))
        ]
        assert h.lines("bob") == []

    def test_max_bytes_counts_line_breaks(self) -> None:
        h = self.small()
        h.send("alice", "BATCH +x draft/multiline #t")
        h.send("alice", "@batch=x PRIVMSG #t :abcde")
        h.send("alice", "@batch=x PRIVMSG #t :abcd")  # 5 + 1 + 4 = 10: still fits
        assert h.lines("alice") == []
        h.send("alice", "@batch=x PRIVMSG #t :z")  # + 1 + 1 = 12
        assert fails(h, "alice") == [
            ["BATCH", "MULTILINE_MAX_BYTES", "10", "Multiline batch max-bytes exceeded"]
        ]
        h.send("alice", "BATCH -x")
        assert h.lines("alice") == [] and h.lines("bob") == []

    def test_a_failed_batch_keeps_nothing(self) -> None:
        """Memory bound: past a limit the batch holds no lines; its end is all it waits for."""
        h = self.small()
        h.send("alice", "BATCH +x draft/multiline #t")
        for _ in range(50):
            h.send("alice", "@batch=x PRIVMSG #t :abc")
        batch = h.users["alice"].batch
        assert batch is not None and batch.failed and batch.lines == []
        assert len(fails(h, "alice")) == 1
        h.send("alice", "BATCH -x")
        assert h.users["alice"].batch is None

    def test_open_batch_is_bounded_while_it_lasts(self) -> None:
        h = self.small()
        h.send("alice", "BATCH +x draft/multiline #t")
        for _ in range(3):
            h.send("alice", "@batch=x PRIVMSG #t :ab")
        batch = h.users["alice"].batch
        assert batch is not None and len(batch.lines) == 3 and batch.size == 8
        h.send("alice", "QUIT")  # closing the connection drops it with the user
        assert h.users["alice"].id not in h.core.connections

    def test_invalid_target(self, h: CoreHarness) -> None:
        h.send("alice", "BATCH +456 draft/multiline #test")
        h.send("alice", "@batch=456 PRIVMSG #bar hello")
        h.send("alice", "@batch=456 PRIVMSG #test again")
        h.send("alice", "BATCH -456")
        assert fails(h, "alice") == [
            ["BATCH", "MULTILINE_INVALID_TARGET", "#test", "#bar", "Invalid multiline target"]
        ]
        assert h.lines("bob") == []

    def test_target_compares_without_case(self, h: CoreHarness) -> None:
        send_batch(h, "alice", "@batch=123 PRIVMSG #TEST :x")
        assert [m.command for m in h.messages("bob")] == ["BATCH", "PRIVMSG", "BATCH"]

    @pytest.mark.parametrize(
        ("lines", "why"),
        [
            (["@batch=123 PRIVMSG #test :hi", f"@batch=123;{CONCAT} PRIVMSG #test :"], "blank"),
            (["@batch=123 PRIVMSG #test :", "@batch=123 PRIVMSG #test :"], "blank lines only"),
            (["@batch=123 PRIVMSG #test :a", "@batch=123 NOTICE #test :b"], "only PRIVMSG"),
            (["@batch=123 PRIVMSG #test :a", "@batch=999 PRIVMSG #test :b"], "batch 999"),
            (["@batch=123 TAGMSG #test"], "only PRIVMSG"),
            ([], "Empty"),
        ],
    )
    def test_invalid(self, h: CoreHarness, lines: list[str], why: str) -> None:
        send_batch(h, "alice", *lines)
        got = fails(h, "alice")
        assert len(got) == 1 and got[0][:2] == ["BATCH", "MULTILINE_INVALID"], got
        assert why in got[0][-1]
        assert h.lines("bob") == []
        assert h.users["alice"].batch is None

    @pytest.mark.parametrize(
        "head",
        [
            "BATCH +1 example.com/other #test",
            "@batch=outer BATCH +1 draft/multiline #test",
            "BATCH +1 draft/multiline",
        ],
    )
    def test_bad_openings(self, h: CoreHarness, head: str) -> None:
        h.send("alice", head)
        h.send("alice", "@batch=1 PRIVMSG #test :x")  # dropped quietly: the batch failed
        h.send("alice", "BATCH -1")
        got = fails(h, "alice")
        assert [f[:2] for f in got] == [["BATCH", "MULTILINE_INVALID"]]
        assert h.lines("bob") == []

    def test_opening_with_tags_over_4094_bytes_is_417(self, h: CoreHarness) -> None:
        """A client's tags over 4094 bytes are refused when the line is read (message-tags),
        so no batch opens."""
        h.send("alice", "@+big=" + "x" * 4100 + " BATCH +1 draft/multiline #test")
        assert h.numerics("alice") == ["417"]
        assert h.users["alice"].batch is None

    def test_reference_without_sign(self, h: CoreHarness) -> None:
        h.send("alice", "BATCH 1 draft/multiline #test")
        assert fails(h, "alice") == [
            ["BATCH", "MULTILINE_INVALID", "Expected BATCH +<ref> or -<ref>"]
        ]

    def test_without_the_capability(self, h: CoreHarness) -> None:
        send_batch(h, "carol", "@batch=123 PRIVMSG #test :x")
        got = fails(h, "carol")
        assert len(got) == 1 and "draft/multiline" in got[0][-1]
        assert h.lines("bob") == []

    def test_second_opening_fails_both(self, h: CoreHarness) -> None:
        h.send("alice", "BATCH +a draft/multiline #test")
        h.send("alice", "@batch=a PRIVMSG #test :x")
        h.send("alice", "BATCH +b draft/multiline #test")
        h.send("alice", "@batch=b PRIVMSG #test :y")
        h.send("alice", "BATCH -b")
        assert len(fails(h, "alice")) == 1
        assert h.lines("bob") == []

    def test_end_without_opening_and_line_without_batch(self, h: CoreHarness) -> None:
        h.send("alice", "BATCH -nothing")
        h.send("alice", "@batch=nothing PRIVMSG #test :x")
        assert [f[1] for f in fails(h, "alice")] == ["MULTILINE_INVALID", "MULTILINE_INVALID"]
        assert h.lines("bob") == []


class TestHistory:
    """Stored as ONE message, replayed as a batch (or line by line)."""

    def test_stored_as_one_record(self, h: CoreHarness) -> None:
        spec_example(h)
        msgid = batches(h.lines("alice"))[0].tags["msgid"]
        store = h.core.history
        assert isinstance(store, MemoryHistory)
        (entry,) = store.query("#test", limit=10)
        m = entry.message
        assert m.msgid == msgid and m.command == "PRIVMSG" and m.target == "#test"
        assert m.text == "hello\n\nhow is \neveryone?"
        assert m.multiline == (False, False, False, True)
        assert m.tags == {"+client-only-tag": ""}

    def test_chathistory_nests_the_batch(self, h: CoreHarness) -> None:
        spec_example(h)
        msgid = batches(h.lines("alice"))[0].tags["msgid"]
        client(h, "erin", *BASE, ML, "draft/chathistory")
        h.send("erin", "JOIN #test")
        h.clear()
        h.send("erin", "CHATHISTORY LATEST #test * 10")
        outer, start, *inner, end, close = batches(h.lines("erin"))
        ref = outer.params[0][1:]
        assert outer.params[1:] == ("chathistory", "#test")
        assert start.params[1:] == ("draft/multiline", "#test")
        assert start.tags["batch"] == ref and start.tags["msgid"] == msgid
        inner_ref = start.params[0][1:]
        assert [m.tags["batch"] for m in inner] == [inner_ref] * 4
        assert [m.params[1] for m in inner] == ["hello", "", "how is ", "everyone?"]
        assert CONCAT in inner[3].tags
        assert end.params == ("-" + inner_ref,) and end.tags == {"batch": ref}
        assert close.params == ("-" + ref,)

    def test_chathistory_without_multiline_sends_lines(self, h: CoreHarness) -> None:
        spec_example(h)
        msgid = batches(h.lines("alice"))[0].tags["msgid"]
        client(h, "erin", *BASE, "draft/chathistory")
        h.send("erin", "JOIN #test")
        h.clear()
        h.send("erin", "CHATHISTORY LATEST #test * 10")
        outer, *inner, close = batches(h.lines("erin"))
        ref = outer.params[0][1:]
        assert close.params == ("-" + ref,)
        assert [m.params[1] for m in inner] == ["hello", "how is ", "everyone?"]
        assert [m.tags.get("msgid") for m in inner] == [msgid, None, None]
        assert all(m.tags["batch"] == ref for m in inner)

    def test_replay_on_join_stamps_each_line(self) -> None:
        h = make(replay_lines=5)
        client(h, "alice", *BASE, ML)
        h.send("alice", "JOIN #r")
        send_batch(
            h,
            "alice",
            "@batch=123 PRIVMSG #r :first",
            "@batch=123 PRIVMSG #r :second",
            head="BATCH +123 draft/multiline #r",
        )
        client(h, "zed")
        h.clear()
        h.send("zed", "JOIN #r")
        replay = [m for m in h.messages("zed") if m.command == "PRIVMSG"]
        assert [m.params[1][11:] for m in replay] == ["first", "second"]
        assert all(m.params[1].startswith("[") for m in replay)


def test_cap_value_carries_the_limits() -> None:
    h = make(limits={"multiline_max_bytes": 40000, "multiline_max_lines": 10})
    h.open("c")
    h.send("c", "CAP LS 302")
    words = " ".join(parse(line).params[-1] for line in h.lines("c")).split()
    assert "draft/multiline=max-bytes=40000,max-lines=10" in words


def test_one_msgid_per_batch_across_recipients(h: CoreHarness) -> None:
    spec_example(h)
    ids = {
        batches(h.lines("alice"))[0].tags["msgid"],
        batches(h.lines("bob"))[0].tags["msgid"],
        batches(h.lines("carol"))[0].tags["msgid"],
    }
    assert len(ids) == 1
