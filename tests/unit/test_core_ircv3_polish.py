"""Issue 11, the last polish, in memory: labeled multiline batches and nested batches, the
``bot`` tag kept in history, CTCP kept out of history, metadata and read markers across the
connections of one account, idempotency keys on multiline batches, HELP for every command."""

from __future__ import annotations

from pathlib import Path

from relaychat.protocol.message import Message
from relaychat.protocol.servertime import parse_server_time
from relaychat.server.accounts import AccountService
from relaychat.server.core import COMMANDS
from relaychat.store.sqlite import SqliteHistory
from tests.harness import CoreHarness, free_config
from tests.unit.accounts_support import add_account, plain, sasl_client
from tests.unit.accounts_support import harness as accounts_harness
from tests.unit.core_support import SERVER
from tests.unit.v3_support import BASE, ML, batches, client, make


def nested_ok(got: list[Message]) -> None:
    """Every line is in at most one batch, every batch opened before use and closed once; a
    batch's BATCH lines carry the batch enclosing it (batch spec, nested batches)."""
    open_: dict[str, str | None] = {}
    for m in got:
        outer = m.tags.get("batch")
        if m.command == "BATCH" and m.params[0][:1] == "+":
            assert outer is None or outer in open_, m
            open_[m.params[0][1:]] = outer
        elif m.command == "BATCH":
            ref = m.params[0][1:]
            assert open_.pop(ref) == outer, m
        else:
            assert outer is None or outer in open_, m
    assert not open_


class TestLabeledMultiline:
    def test_label_on_the_echo_batch(self) -> None:
        h = make()
        client(h, "alice", *BASE, ML)
        client(h, "bob", *BASE, ML)
        h.send("alice", "JOIN #t")
        h.send("bob", "JOIN #t")
        h.clear()
        h.send("alice", "@label=L1;+x=y BATCH +b draft/multiline #t")
        h.send("alice", "@batch=b PRIVMSG #t :one")
        h.send("alice", "@batch=b PRIVMSG #t :two")
        h.send("alice", "BATCH -b")
        got = batches(h.lines("alice"))
        assert [m.command for m in got] == ["BATCH", "PRIVMSG", "PRIVMSG", "BATCH"]
        assert got[0].tags["label"] == "L1" and got[0].params[1] == ML
        assert sum("label" in m.tags for m in got) == 1
        nested_ok(got)
        assert all("label" not in m.tags for m in batches(h.lines("bob")))

    def test_away_reply_nests_the_echo_in_a_labeled_response_batch(self) -> None:
        """The answer is two messages (the echo batch and 301): a labeled-response batch holds
        them; the multiline batch's BATCH lines carry the outer reference, its lines only the
        inner one."""
        h = make()
        client(h, "alice", *BASE, ML)
        client(h, "carol", *BASE)
        h.send("carol", "AWAY :lunch")
        h.clear()
        h.send("alice", "@label=L2 BATCH +b draft/multiline carol")
        h.send("alice", "@batch=b PRIVMSG carol :one")
        h.send("alice", "@batch=b PRIVMSG carol :two")
        h.send("alice", "BATCH -b")
        got = batches(h.lines("alice"))
        assert [m.command for m in got] == ["BATCH"] * 2 + ["PRIVMSG"] * 2 + ["BATCH", "301"] + [
            "BATCH"
        ]
        outer, inner = got[0].params[0][1:], got[1].params[0][1:]
        assert got[0].params[1:] == ("labeled-response",) and got[0].tags["label"] == "L2"
        assert got[1].params[1:] == (ML, "carol") and got[1].tags["batch"] == outer
        assert [m.tags["batch"] for m in got[2:4]] == [inner, inner]
        assert got[4].params == ("-" + inner,) and got[4].tags["batch"] == outer
        assert got[5].tags["batch"] == outer
        assert got[6].params == ("-" + outer,) and "batch" not in got[6].tags
        assert sum("label" in m.tags for m in got) == 1
        nested_ok(got)

    def test_fallback_lines_in_a_labeled_answer_are_each_in_the_batch(self) -> None:
        """A multiline message to a client without the cap comes line by line: in a labeled
        answer of several messages each of those lines is in the labeled-response batch."""
        h = make(replay_lines=5)
        client(h, "alice", "batch", "labeled-response", "message-tags", "echo-message", ML)
        client(h, "dave", "batch", "labeled-response")
        h.send("alice", "JOIN #t")
        h.send("alice", "BATCH +b draft/multiline #t")
        h.send("alice", "@batch=b PRIVMSG #t :one")
        h.send("alice", "@batch=b PRIVMSG #t :two")
        h.send("alice", "BATCH -b")
        h.clear()
        h.send("dave", "@label=J JOIN #t")  # JOIN, names, then the replay, in one answer
        got = batches(h.lines("dave"))
        assert got[0].tags["label"] == "J" and got[0].params[1] == "labeled-response"
        texts = [m for m in got if m.command == "PRIVMSG"]
        assert [m.params[1][-3:] for m in texts] == ["one", "two"]
        assert all(m.tags.get("batch") == got[0].params[0][1:] for m in got[1:-1])
        nested_ok(got)


class TestHelpForEveryCommand:
    """HELP/HELPOP: every command of the table has its syntax and a short text, so a new
    command without help fails here."""

    def test_every_command_has_a_syntax_and_a_summary(self) -> None:
        assert len(COMMANDS) > 50
        for name, cmd in COMMANDS.items():
            assert cmd.help.split()[0] == name, (name, cmd.help)
            assert cmd.summary and cmd.summary.endswith("."), name
            assert cmd.summary != cmd.help, name

    def test_help_answers_each_of_them(self) -> None:
        h = CoreHarness(free_config())
        h.connect("nick")
        h.send("nick", "HELP")
        listed = " ".join(m.params[-1] for m in h.messages("nick") if m.command == "705").split()
        assert sorted(listed) == sorted(COMMANDS)
        for name, cmd in COMMANDS.items():
            h.send("nick", f"HELPOP {name.lower()}")
            got = h.messages("nick")
            assert [m.command for m in got[:2]] == ["704", "705"], name
            assert got[0].params[1:] == (name, cmd.help)
            assert got[1].params[1:] == (name, cmd.summary)
            assert got[-1].command == "706"


def bot_room(h: CoreHarness) -> None:
    """``bot`` (+B) and ``reader`` (history caps) and ``plain`` (no tags) in #r."""
    client(h, "bot", *BASE, ML)
    client(h, "reader", *BASE, ML, "draft/chathistory")
    client(h, "plain", "batch", "draft/chathistory")
    h.send("bot", "MODE bot +B")
    for nick in ("bot", "reader", "plain"):
        h.send(nick, "JOIN #r")
    h.clear()


class TestBotTagInHistory:
    """bot-mode: "the bot message tag ... on messages from bots"; a message keeps it in
    history, so CHATHISTORY replays it as it was relayed."""

    def send_both(self, h: CoreHarness) -> None:
        h.send("bot", "PRIVMSG #r :beep")
        h.send("bot", "BATCH +m draft/multiline #r")
        h.send("bot", "@batch=m PRIVMSG #r :two")
        h.send("bot", "@batch=m PRIVMSG #r :lines")
        h.send("bot", "BATCH -m")
        h.send("reader", "PRIVMSG #r :human")

    def check(self, h: CoreHarness) -> None:
        live = [m for m in batches(h.lines("reader")) if m.command in ("PRIVMSG", "BATCH")]
        assert [(m.command, "bot" in m.tags) for m in live] == [
            ("PRIVMSG", True),
            ("BATCH", True),  # the multiline batch carries the message's tags
            ("PRIVMSG", False),
            ("PRIVMSG", False),
            ("BATCH", False),
            ("PRIVMSG", False),  # its own, echoed
        ]
        h.clear()
        h.send("reader", "CHATHISTORY LATEST #r * 10")
        got = batches(h.lines("reader"))
        tagged = {m.params[1]: "bot" in m.tags for m in got if m.command == "PRIVMSG"}
        assert tagged == {"beep": True, "human": False, "two": False, "lines": False}
        heads = [m for m in got if m.command == "BATCH" and m.params[1:2] == (ML,)]
        assert len(heads) == 1 and heads[0].tags["bot"] == ""
        h.send("plain", "CHATHISTORY LATEST #r * 10")
        assert not any("bot" in m.tags for m in batches(h.lines("plain")))

    def test_in_memory(self) -> None:
        h = make()
        bot_room(h)
        self.send_both(h)
        self.check(h)

    def test_in_sqlite(self, tmp_path: Path) -> None:
        h = make(history=False)
        h.core.history = SqliteHistory(tmp_path / "history.db", maintenance_interval=None)
        h.core.extra_caps["draft/chathistory"] = ""
        try:
            bot_room(h)
            self.send_both(h)
            h.core.history.commit_pending()
            self.check(h)
        finally:
            h.core.history.close()

    def test_private_and_not_after_minus_b(self) -> None:
        h = make()
        bot_room(h)
        h.send("bot", "PRIVMSG reader :psst")
        h.send("bot", "MODE bot -B")
        h.send("bot", "PRIVMSG reader :me again")
        h.clear()
        h.send("reader", "CHATHISTORY LATEST bot * 10")
        got = [m for m in batches(h.lines("reader")) if m.command == "PRIVMSG"]
        assert [(m.params[1], "bot" in m.tags) for m in got] == [
            ("psst", True),
            ("me again", False),
        ]


class TestCtcpNotInHistory:
    """CTCP other than ACTION (a DCC offer carries an IP address and a port; a VERSION request
    would be answered again) is relayed live and never kept; ACTION is kept."""

    def test_private_and_channel(self) -> None:
        h = make()
        client(h, "alice", *BASE, ML, "draft/chathistory")
        client(h, "bob", *BASE, "draft/chathistory")
        h.send("alice", "JOIN #c")
        h.send("bob", "JOIN #c")
        h.clear()
        offer = "\x01DCC SEND notes.txt 2130706433 5000 12\x01"
        for line in (
            f"PRIVMSG bob :{offer}",
            "PRIVMSG bob :\x01VERSION\x01",
            "PRIVMSG bob :\x01ACTION waves\x01",
            "PRIVMSG bob :plain",
            "PRIVMSG #c :\x01PING 123\x01",
            "PRIVMSG #c :\x01ACTION nods\x01",
            "NOTICE bob :\x01VERSION relaychat\x01",
            "PRIVMSG bob :\x01broken",
        ):
            h.send("alice", line)
        h.send("alice", "BATCH +m draft/multiline bob")
        h.send("alice", "@batch=m PRIVMSG bob :\x01DCC CHAT chat 2130706433 5001")
        h.send("alice", "@batch=m PRIVMSG bob :second\x01")
        h.send("alice", "BATCH -m")
        live = [m.params[1] for m in batches(h.lines("bob")) if m.command in ("PRIVMSG", "NOTICE")]
        assert offer in live and "\x01VERSION\x01" in live  # relayed live
        h.send("bob", "CHATHISTORY LATEST alice * 20")
        h.send("bob", "CHATHISTORY LATEST #c * 20")
        kept = [m.params[1] for m in batches(h.lines("bob")) if m.command in ("PRIVMSG", "NOTICE")]
        assert kept == ["\x01ACTION waves\x01", "plain", "\x01ACTION nods\x01"]


def account_conn(h: CoreHarness, conn: str, nick: str, account: str, *caps: str) -> None:
    """Register ``conn`` as ``nick``, logged in to ``account`` with SASL PLAIN, with ``caps``."""
    sasl_client(h, conn, nick=nick)
    if caps:
        h.send(conn, "CAP REQ :" + " ".join(caps))
    h.send(conn, "AUTHENTICATE PLAIN")
    h.send(conn, "AUTHENTICATE " + plain(account))
    h.send(conn, "CAP END")
    assert h.users[conn].registered and h.users[conn].account == account
    h.lines(conn)


class TestMetadataAcrossConnections:
    """metadata-2 (rule 7 of commands/metadata.py): a logged-in user's keys are its account's;
    a change made on one connection is made, and told, on the account's other connections."""

    def room(self) -> tuple[CoreHarness, AccountService]:
        h, svc = accounts_harness()
        add_account(svc, "jilles")
        caps = ("draft/metadata-2", "batch")
        account_conn(h, "one", "j1", "jilles", *caps)
        account_conn(h, "two", "j2", "jilles", *caps)
        for conn in ("one", "two"):
            h.send(conn, "METADATA * SUB avatar")
        client(h, "w", "draft/metadata-2", "batch")
        h.send("w", "METADATA * SUB avatar")
        h.send("w", "JOIN #c")
        h.send("two", "JOIN #c")
        h.clear()
        return h, svc

    def test_set_is_seen_live_by_the_other_connection_and_its_watchers(self) -> None:
        h, svc = self.room()
        h.send("one", "METADATA * SET avatar :a.png")
        assert h.lines("one") == [f":{SERVER} 761 j1 j1 avatar * a.png"]
        assert h.lines("two") == [f":{SERVER} METADATA j2 avatar * a.png"]
        assert h.lines("w") == [f":{SERVER} METADATA j2 avatar * a.png"]
        h.send("w", "METADATA j2 GET avatar")
        assert any(" 761 w j2 avatar * a.png" in line for line in h.lines("w"))
        assert svc.store.metadata("jilles") == {"avatar": "a.png"}
        h.send("one", "METADATA * SET avatar :a.png")  # no change: nobody is told
        assert h.lines("two") == [] and h.lines("w") == []

    def test_delete_and_clear_too(self) -> None:
        h, svc = self.room()
        h.send("one", "METADATA * SET avatar :a.png")
        h.send("one", "METADATA * SET color :red")
        h.clear()
        h.send("one", "METADATA * SET avatar")
        assert h.numerics("one") == ["766"]
        assert h.lines("two") == [f":{SERVER} METADATA j2 avatar *"]
        h.send("two", "METADATA * CLEAR")
        assert h.lines("one") == []  # subscribed to avatar only, which is gone already
        assert h.users["one"].meta is not None and h.users["one"].meta.values == {}
        assert svc.store.metadata("jilles") == {}

    def test_keys_brought_at_login_reach_the_connections_already_in(self) -> None:
        h, svc = self.room()
        h.send("one", "METADATA * SET avatar :old.png")
        h.clear()
        h.open("three")
        h.send("three", "CAP LS 302")
        h.send("three", "CAP REQ :sasl draft/metadata-2 batch")
        h.send("three", "METADATA * SET avatar :new.png")  # before login: these win
        h.send("three", "NICK j3")
        h.send("three", "USER j3 0 * :j3")
        h.send("three", "AUTHENTICATE PLAIN")
        h.send("three", "AUTHENTICATE " + plain("jilles"))
        h.send("three", "CAP END")
        assert h.lines("one") == [f":{SERVER} METADATA j1 avatar * new.png"]
        assert h.lines("two") == [f":{SERVER} METADATA j2 avatar * new.png"]
        assert svc.store.metadata("jilles") == {"avatar": "new.png"}

    def test_other_accounts_are_not_touched(self) -> None:
        h, svc = self.room()
        add_account(svc, "other")
        account_conn(h, "x", "x", "other", "draft/metadata-2", "batch")
        h.send("x", "METADATA * SUB avatar")
        h.clear()
        h.send("one", "METADATA * SET avatar :a.png")
        assert h.lines("x") == []
        assert h.users["x"].meta is not None and h.users["x"].meta.values == {}


RM = "draft/read-marker"
T1, T2, T3 = "2019-01-04T14:33:26.100Z", "2019-01-04T14:33:26.200Z", "2019-01-04T14:33:26.300Z"


def markreads(h: CoreHarness, name: str) -> list[tuple[str, ...]]:
    return [m.params for m in h.messages(name) if m.command == "MARKREAD"]


class TestReadMarkersAtLogin:
    """read-marker: markers are "the user's", for all its clients; once logged in the user is
    the account: what the connection marked before is carried to it, never backwards, and
    whoever now sees other markers is told (rule 7 of commands/markread.py)."""

    def test_carried_to_the_account_never_backwards(self) -> None:
        h = make()
        client(h, "alice", RM, "batch")
        client(h, "s1", RM, name="s1")
        h.core.set_account(h.users["s1"], "acct")
        h.send("s1", f"MARKREAD #a timestamp={T1}")
        h.send("s1", f"MARKREAD #b timestamp={T3}")
        h.send("s1", f"MARKREAD #c timestamp={T2}")
        h.send("alice", f"MARKREAD #a timestamp={T2}")  # newer than the account's
        h.send("alice", f"MARKREAD #b timestamp={T1}")  # older: the account's stays
        h.send("alice", "JOIN #c")  # told * on JOIN
        h.clear()
        h.core.set_account(h.users["alice"], "acct")
        assert sorted(markreads(h, "alice")) == [
            ("#a", f"timestamp={T2}"),
            ("#b", f"timestamp={T3}"),
            ("#c", f"timestamp={T2}"),
        ]
        assert markreads(h, "s1") == [("#a", f"timestamp={T2}")]  # only what moved
        assert h.users["alice"].read_markers is None
        store = h.core.history
        assert store is not None
        got = [store.read_marker("acct", k) for k in ("#a", "#b", "#c")]
        assert got == [parse_server_time(t) for t in (T2, T3, T2)]
        h.send("alice", f"MARKREAD #b timestamp={T2}")  # the account's, kept: T3
        assert markreads(h, "alice") == [("#b", f"timestamp={T3}")]

    def test_nothing_to_carry_nothing_sent(self) -> None:
        h = make()
        client(h, "alice", RM)
        h.core.set_account(h.users["alice"], "acct")
        assert h.lines("alice") == []

    def test_without_the_capability_carried_but_not_told(self) -> None:
        h = make()
        client(h, "alice")
        h.send("alice", f"MARKREAD bob timestamp={T1}")
        h.clear()
        h.core.set_account(h.users["alice"], "acct")
        assert h.lines("alice") == []
        assert h.core.history is not None
        assert h.core.history.read_marker("acct", "bob") == parse_server_time(T1)

    def test_logging_out_starts_afresh(self) -> None:
        h = make()
        client(h, "alice", RM)
        h.core.set_account(h.users["alice"], "acct")
        h.send("alice", f"MARKREAD #a timestamp={T1}")
        h.core.set_account(h.users["alice"], None)
        h.clear()
        h.send("alice", "MARKREAD #a")
        assert markreads(h, "alice") == [("#a", "*")]
