"""The sans-I/O client protocol, in memory: lines in, lines/events/outcomes out; time injected."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from relaychat.client import ClientConfig, OutboxFull
from relaychat.client.events import (
    Connected,
    Disconnected,
    ErrorReply,
    Event,
    GaveUp,
    Join,
    Kick,
    Message,
    NickChange,
    Part,
    Quit,
    Topic,
)
from relaychat.client.protocol import ClientProtocol, fallback_nick
from relaychat.client.requests import (
    Confirmed,
    LineRejected,
    Outcome,
    RequestDone,
    RequestLost,
    Unconfirmed,
)

SRV = ":irc.test"


class Wire:
    """A ClientProtocol with a fake server at the other end of an in-memory wire."""

    def __init__(self, nick: str = "bot", **settings: Any) -> None:
        settings.setdefault("pace_rate", 0.0)
        self.now = 1000.0
        self.config = ClientConfig(nick=nick, **settings)
        self.p = ClientProtocol(self.config, self.now)
        self._events: list[Event] = []
        self._outcomes: list[Outcome] = []

    def connect(self) -> list[str]:
        self.p.connection_made(self.now)
        return self.sent()

    def sent(self) -> list[str]:
        """Lines the client wrote since the last call."""
        data = self.p.data_to_send().decode()
        return [line for line in data.split("\r\n") if line]

    def feed(self, *lines: str) -> None:
        self.p.receive_data("".join(line + "\r\n" for line in lines).encode(), self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.p.tick(self.now)

    def events(self) -> list[Event]:
        self._events += self.p.events_received()
        out, self._events = self._events, []
        return out

    def outcomes(self) -> list[Outcome]:
        return self.p.outcomes()

    def register(self, nick: str = "bot", caps: str = "", isupport: str = "") -> list[str]:
        """Connect and go through registration; returns what the client wrote after 376."""
        self.connect()
        self.feed(f"{SRV} CAP * LS :{caps}")
        for line in self.sent():
            if line.startswith("CAP REQ "):
                self.feed(f"{SRV} CAP * ACK :{line[8:].removeprefix(':')}")
        self.sent()
        self.feed(
            f"{SRV} 001 {nick} :Welcome to the test IRC Network {nick}!~{nick}@127.0.0.1",
            f"{SRV} 005 {nick} CHANTYPES=# {isupport} :are supported by this server",
            f"{SRV} 376 {nick} :End of /MOTD command.",
        )
        assert self.p.ready
        assert isinstance(self.events()[-1], Connected)
        return self.sent()

    def pong(self, token: str) -> None:
        self.feed(f"{SRV} PONG irc.test :{token}")


def tokens(lines: list[str]) -> list[str]:
    return [line.split()[-1] for line in lines if line.startswith("PING ")]


class TestRegistration:
    def test_without_caps(self) -> None:
        w = Wire(password="sekrit")
        assert w.connect() == ["CAP LS 302", "PASS sekrit", "NICK bot", "USER bot 0 * relaychat"]
        w.feed(f"{SRV} CAP * LS :multi-prefix")
        assert w.sent() == ["CAP END"]
        w.feed(f"{SRV} 001 bot :Welcome", f"{SRV} 422 bot :MOTD File is missing")
        assert w.events() == [Connected("bot", "irc.test")]  # 422 is no error event

    def test_requests_wanted_caps_across_a_multiline_ls(self) -> None:
        w = Wire()
        w.connect()
        w.feed(f"{SRV} CAP * LS * :multi-prefix batch", f"{SRV} CAP * LS :server-time sasl")
        assert w.sent() == ["CAP REQ :batch server-time"]
        # All or nothing: refused together, each is asked for on its own.
        w.feed(f"{SRV} CAP bot NAK :batch server-time")
        assert w.sent() == ["CAP REQ batch", "CAP REQ server-time"]
        w.feed(f"{SRV} CAP bot ACK :batch")
        assert w.sent() == []
        w.feed(f"{SRV} CAP bot NAK :server-time")
        assert w.sent() == ["CAP END"]
        assert w.p.caps == {"batch"}

    def test_burst_timeout_starts_without_motd(self) -> None:
        w = Wire()
        w.connect()
        w.feed(f"{SRV} 001 bot :Welcome")
        assert not w.p.ready
        w.advance(2.0)
        assert w.p.ready and isinstance(w.events()[-1], Connected)

    def test_registration_timeout(self) -> None:
        w = Wire(registration_timeout=5.0)
        w.connect()
        assert w.p.next_deadline(w.now) == w.now + 5.0
        w.advance(4.9)
        assert w.p.dead is None
        w.advance(0.1)
        assert w.p.dead == "registration timed out" and not w.p.fatal

    def test_ping_is_answered_at_once(self) -> None:
        w = Wire(pace_rate=1.0, pace_burst=1)
        w.connect()
        w.feed("PING :abc123")
        assert w.sent() == ["PONG abc123"]

    @pytest.mark.parametrize("code", ["433", "437"])
    def test_nick_fallback(self, code: str) -> None:
        w = Wire(nick="bot")
        w.connect()
        w.feed(f"{SRV} {code} * bot :Nickname is already in use")
        assert w.sent() == ["NICK bot_"]
        w.feed(f"{SRV} {code} * bot_ :Nickname is already in use")
        assert w.sent() == ["NICK bot__"]
        w.feed(f"{SRV} 001 bot__ :Welcome", f"{SRV} 376 bot__ :End")
        assert w.p.nick == "bot__"
        assert w.events() == [Connected("bot__", "irc.test")]

    def test_nick_fallback_gives_up(self) -> None:
        w = Wire(nick_attempts=2)
        w.connect()
        for _ in range(3):
            w.feed(f"{SRV} 433 * x :in use")
        assert w.p.fatal and "no free nickname" in (w.p.dead or "")

    def test_erroneous_nick_is_fatal(self) -> None:
        w = Wire(nick="b@d")
        w.connect()
        w.feed(f"{SRV} 432 * b@d :Erroneous nickname")
        assert w.p.fatal

    def test_bad_password_is_fatal(self) -> None:
        w = Wire(password="wrong")
        w.connect()
        w.feed(f"{SRV} 464 * :Password incorrect", "ERROR :Closing Link: 127.0.0.1 (Bad password)")
        assert w.p.fatal and "Password incorrect" in (w.p.dead or "")

    def test_reconnect_starts_again_with_the_wanted_nick(self) -> None:
        w = Wire()
        w.connect()
        w.feed(f"{SRV} 433 * bot :in use")
        w.p.connection_lost("EOF", w.now)
        assert "NICK bot" in w.connect()


@pytest.mark.parametrize(
    ("base", "attempt", "nicklen", "expected"),
    [
        ("bot", 1, 30, "bot_"),
        ("bot", 3, 30, "bot___"),
        ("bot", 4, 30, "bot1"),
        ("bot", 12, 30, "bot9"),
        ("longnickname", 2, 9, "longnic__"),
        ("longnickname", 14, 9, "longnic11"),
    ],
)
def test_fallback_nick(base: str, attempt: int, nicklen: int, expected: str) -> None:
    assert fallback_nick(base, attempt, nicklen) == expected


class TestSasl:
    def test_plain(self) -> None:
        w = Wire(sasl=("acct", "pw"))
        w.connect()
        w.feed(f"{SRV} CAP * LS :sasl=PLAIN,EXTERNAL")
        assert w.sent() == ["CAP REQ sasl"]
        w.feed(f"{SRV} CAP * ACK :sasl")
        assert w.sent() == ["AUTHENTICATE PLAIN"]
        w.feed("AUTHENTICATE +")
        (line,) = w.sent()
        assert base64.b64decode(line.split()[1]) == b"acct\0acct\0pw"
        w.feed(f"{SRV} 900 bot bot!u@h acct :You are now logged in", f"{SRV} 903 bot :SASL ok")
        assert w.sent() == ["CAP END"]

    def test_failure_is_fatal(self) -> None:
        w = Wire(sasl=("acct", "pw"))
        w.connect()
        w.feed(f"{SRV} CAP * LS :sasl", f"{SRV} CAP * ACK :sasl", "AUTHENTICATE +")
        w.feed(f"{SRV} 904 bot :SASL authentication failed")
        assert w.p.fatal

    def test_not_offered_is_fatal(self) -> None:
        w = Wire(sasl=("acct", "pw"))
        w.connect()
        w.feed(f"{SRV} CAP * LS :multi-prefix")
        assert w.p.fatal and "SASL" in (w.p.dead or "")
        assert "CAP END" not in w.sent()  # never registers unauthenticated


def test_an_error_that_says_when_to_come_back_sets_retry_after() -> None:
    w = Wire()
    w.connect()
    w.feed("ERROR :Too many connections from your host (try again in 12 seconds)")
    assert w.p.dead is not None and w.p.retry_after == 12.0
    w.p.connection_lost("closed", w.now)
    w.connect()  # a new connection forgets it
    assert w.p.retry_after == 0.0
    w.feed("ERROR :Closing Link: 127.0.0.1 (Ping timeout)")
    assert w.p.retry_after == 0.0


class TestEvents:
    def test_chat_events(self) -> None:
        w = Wire()
        w.register()
        w.feed(
            ":bot!~bot@h JOIN #c",
            ":amy!~a@h JOIN #c",
            ":amy!~a@h PRIVMSG #c :hello all",
            ":amy!~a@h PRIVMSG bot :hi you",
            ":amy!~a@h NOTICE @#c :ops only",
            ":amy!~a@h TOPIC #c :new topic",
            f"{SRV} 332 bot #c :old topic",
            ":amy!~a@h NICK amelia",
            ":amelia!~a@h PART #c :bye",
            ":zed!~z@h QUIT :gone",
            ":op!~o@h KICK #c bot :out",
        )
        assert w.events() == [
            Join("bot", "#c", "bot!~bot@h", own=True),
            Join("amy", "#c", "amy!~a@h"),
            Message("amy", "#c", "hello all", reply_to="#c", prefix="amy!~a@h"),
            Message("amy", "bot", "hi you", reply_to="amy", prefix="amy!~a@h"),
            Message("amy", "@#c", "ops only", reply_to="#c", notice=True, prefix="amy!~a@h"),
            Topic("#c", "new topic", "amy"),
            Topic("#c", "old topic"),
            NickChange("amy", "amelia"),
            Part("amelia", "#c", "bye"),
            Quit("zed", "gone"),
            Kick("#c", "bot", "op", "out", own=True),
        ]
        assert w.p.joined == {} and w.p.channels == {}  # kicked: not rejoined

    def test_own_nick_change_is_kept_across_reconnects(self) -> None:
        w = Wire()
        w.register()
        w.feed(":bot!~bot@h NICK robot")
        assert w.events() == [NickChange("bot", "robot", own=True)]
        w.p.connection_lost("EOF", w.now)
        assert "NICK robot" in w.connect()

    def test_unclaimed_error_numeric_is_an_event(self) -> None:
        w = Wire()
        w.register()
        w.feed(f"{SRV} 404 bot #c :Cannot send to channel")
        assert w.events() == [ErrorReply("404", ("#c",), "Cannot send to channel")]

    def test_error_line_kills_the_link(self) -> None:
        w = Wire()
        w.register()
        w.feed("ERROR :Closing Link: h (Server shutting down)")
        assert w.p.dead == "server error: Closing Link: h (Server shutting down)"
        assert not w.p.fatal

    def test_garbage(self) -> None:
        w = Wire(max_garbage_lines=3)
        w.register()
        w.feed("\0junk", "::: ::", f"{SRV} NOTICE bot :fine")  # two bad, then a good one
        assert w.p.dead is None
        w.p.receive_data(b"\x01\x02\0\r\n" * 2 + b"x" * 9000 + b"\r\n", w.now)
        assert w.p.dead is not None and "garbage" in w.p.dead


class TestOutbox:
    def test_lines_wait_for_registration_and_rejoin(self) -> None:
        w = Wire(channels=("#a",))
        items = w.p.send_text("#a", "queued early", w.now)
        assert w.sent() == []
        after = w.register()
        assert after[:2] == ["JOIN #a", f"PING {tokens(after)[0]}"]
        assert after[2] == "PRIVMSG #a :queued early"
        w.feed(":bot!~bot@h JOIN #a")
        for token in tokens(after):
            w.pong(token)
        assert Confirmed(items) in w.outcomes()

    def test_each_pong_confirms_the_lines_before_its_ping(self) -> None:
        w = Wire()
        w.register()
        a = w.p.send_text("#a", "one", w.now)
        b = w.p.send_text("#a", "two", w.now)
        lines = w.sent()
        t1, t2 = tokens(lines)
        assert lines == ["PRIVMSG #a one", f"PING {t1}", "PRIVMSG #a two", f"PING {t2}"]
        w.pong(t1)
        assert w.outcomes() == [Confirmed(a)]
        w.pong(t2)
        assert w.outcomes() == [Confirmed(b)]

    def test_one_ping_confirms_a_paced_batch(self) -> None:
        w = Wire(pace_rate=10.0, pace_burst=20, ack_delay=0.5)
        w.register()
        w.advance(2.0)
        w.p.send_text("#a", "\n".join(f"l{i}" for i in range(30)), w.now)
        lines = w.sent()
        assert len([x for x in lines if x.startswith("PRIVMSG")]) == 20
        assert tokens(lines) == []  # more lines are waiting: no PING yet
        w.advance(0.5)
        assert len(tokens(w.sent())) == 1  # ack_delay reached: one PING for the lot

    def test_outbox_full_is_all_or_nothing(self) -> None:
        w = Wire(outbox_size=3)
        w.p.send_text("#a", "one\ntwo", w.now)
        with pytest.raises(OutboxFull) as info:
            w.p.send_text("#a", "three\nfour", w.now)
        assert [i.text for i in info.value.unsent] == ["three", "four"]
        assert [i.text for i in w.p.outbox] == ["one", "two"]

    def test_drop_reports_unconfirmed_lines(self) -> None:
        w = Wire()
        w.register()
        items = w.p.send_text("#a", "one\ntwo", w.now)
        w.sent()
        w.p.connection_lost("connection reset by peer", w.now)
        assert w.outcomes() == [Unconfirmed(items, "connection reset by peer")]
        assert w.events() == [Disconnected("connection reset by peer", items)]
        w.register()
        assert not any(line.startswith("PRIVMSG") for line in w.sent())  # never twice

    def test_resend_unconfirmed(self) -> None:
        w = Wire(resend_unconfirmed=True)
        w.register()
        items = w.p.send_text("#a", "one", w.now)
        w.sent()
        w.p.connection_lost("EOF", w.now)
        assert w.events() == [Disconnected("EOF", (), items)]
        assert "PRIVMSG #a one" in w.register()

    def test_give_up_lists_unsent(self) -> None:
        w = Wire()
        items = w.p.send_text("#a", "never", w.now)
        assert w.p.give_up("max attempts") == items
        assert w.events() == [GaveUp("max attempts", items)]

    def test_rejected_line_is_matched_by_target(self) -> None:
        w = Wire()
        w.register()
        w.p.send_text("#a", "fine", w.now)
        bad = w.p.send_text("#b", "refused", w.now)
        w.advance(0.5)
        first, second = tokens(w.sent())
        # The server answers in order: the first line's PONG, then the second line's error.
        w.pong(first)
        w.feed(f"{SRV} 404 bot #b :Cannot send to channel")
        w.pong(second)
        out = w.outcomes()
        assert LineRejected(bad[0], "404", "Cannot send to channel") in out
        assert any(isinstance(o, Confirmed) and o.items[0].text == "fine" for o in out)

    def test_pacing(self) -> None:
        w = Wire(pace_rate=2.0, pace_burst=3)
        w.register()  # registration used the burst: the bucket is below zero now
        w.advance(3.0)
        w.p.send_text("#a", "\n".join(f"l{i}" for i in range(6)), w.now)
        first = [x for x in w.sent() if x.startswith("PRIVMSG")]
        assert len(first) == 3
        w.advance(0.5)
        assert [x for x in w.sent() if x.startswith("PRIVMSG")] == ["PRIVMSG #a l3"]
        # The PING that asks to confirm l0-l3 took a token too: the next line is 1 s away.
        assert w.p.next_deadline(w.now) == pytest.approx(w.now + 1.0)


class TestRequests:
    def test_paired_by_ping_marker(self) -> None:
        w = Wire()
        w.register()
        r1 = w.p.request("WHOIS", "amy", now=w.now)
        r2 = w.p.request("WHOIS", "nobody", now=w.now)
        lines = w.sent()
        assert lines[0] == "WHOIS amy" and lines[2] == "WHOIS nobody"
        t1, t2 = tokens(lines)
        w.feed(f"{SRV} 311 bot amy ~a h * :Amy", f"{SRV} 318 bot amy :End of /WHOIS list")
        w.pong(t1)
        w.feed(f"{SRV} 401 bot nobody :No such nick", f"{SRV} 318 bot nobody :End")
        w.pong(t2)
        (done1, done2) = w.outcomes()
        assert isinstance(done1, RequestDone) and done1.id == r1
        assert done1.reply.numerics() == ["311", "318"] and done1.reply.ok
        assert isinstance(done2, RequestDone) and done2.id == r2
        assert done2.reply.numerics() == ["401", "318"]
        assert done2.reply.error is not None and done2.reply.error.command == "401"
        assert w.events() == []  # the 401 belonged to a request: no ErrorReply

    def test_lost_on_drop(self) -> None:
        w = Wire()
        w.register()
        rid = w.p.request("WHOIS", "amy", now=w.now)
        w.p.connection_lost("EOF", w.now)
        assert w.outcomes() == [RequestLost(rid, "EOF")]

    def test_labeled_response(self) -> None:
        w = Wire()
        w.register(caps="batch labeled-response")
        assert w.p.caps == {"batch", "labeled-response"}
        rid = w.p.request("WHOIS", "amy", now=w.now)
        (line,) = w.sent()
        label = line.split()[0].removeprefix("@label=")
        w.feed(
            f"@label={label} {SRV} BATCH +b1 labeled-response",
            f"@batch=b1 {SRV} 311 bot amy ~a h * :Amy",
            f"@batch=b1 {SRV} 318 bot amy :End",
            f"{SRV} BATCH -b1",
        )
        (done,) = w.outcomes()
        assert isinstance(done, RequestDone) and done.id == rid
        assert done.reply.numerics() == ["311", "318"]
        rid = w.p.request("AWAY", now=w.now)
        label = w.sent()[0].split()[0].removeprefix("@label=")
        w.feed(f"@label={label} {SRV} 305 bot :You are no longer marked as being away")
        (done,) = w.outcomes()
        assert isinstance(done, RequestDone) and done.reply.numerics() == ["305"]

    def test_refused_rejoin_is_forgotten(self) -> None:
        w = Wire(channels=("#banned",))
        lines = w.register()
        w.feed(f"{SRV} 474 bot #banned :Cannot join channel (+b)")
        w.pong(tokens(lines)[0])
        assert w.p.channels == {}
        assert ErrorReply("474", ("#banned",), "Cannot join channel (+b)") in w.events()
        assert w.outcomes() == []  # internal request: nobody waits for it


class TestResume:
    """CHATHISTORY AFTER on reconnect, against a scripted server transcript.

    https://ircv3.net/specs/extensions/chathistory
    """

    CAPS = "batch message-tags server-time draft/chathistory"

    def test_fetches_missed_messages_exactly_once(self) -> None:
        w = Wire(channels=("#c",), history_limit=3)
        w.register(caps=self.CAPS, isupport="CHATHISTORY=50")
        w.feed(":bot!~bot@h JOIN #c")
        w.feed(
            "@msgid=m1;time=2024-01-01T00:00:01.000Z :amy!a@h PRIVMSG #c :one",
            "@msgid=m2;time=2024-01-01T00:00:02.000Z :amy!a@h PRIVMSG #c :two",
            "@msgid=m2;time=2024-01-01T00:00:02.000Z :amy!a@h PRIVMSG #c :two",  # replayed
        )
        assert [e.text for e in w.events() if isinstance(e, Message)] == ["one", "two"]
        w.p.connection_lost("EOF", w.now)
        lines = w.register(caps=self.CAPS, isupport="CHATHISTORY=50")
        assert "CHATHISTORY AFTER #c msgid=m2 3" in lines
        w.feed(
            ":bot!~bot@h JOIN #c",
            # A live message overtakes the history reply: it is held back, to come once, in
            # its place in the conversation.
            "@msgid=m4 :amy!a@h PRIVMSG #c :four",
            f"{SRV} BATCH +h1 chathistory #c",
            "@batch=h1;msgid=m2 :amy!a@h PRIVMSG #c :two",
            "@batch=h1;msgid=m3;time=2024-01-01T00:00:03.000Z :amy!a@h PRIVMSG #c :three",
            "@batch=h1;msgid=m3b :bot!~bot@h PRIVMSG #c :my own line",
            f"{SRV} BATCH -h1",
        )
        got = [(e.text, e.history) for e in w.events() if isinstance(e, Message)]
        assert got == [("three", True)]
        # The page was full (3 messages): the next one is asked for.
        assert "CHATHISTORY AFTER #c msgid=m3b 3" in w.sent()
        w.feed(
            f"{SRV} BATCH +h2 chathistory #c",
            "@batch=h2;msgid=m4 :amy!a@h PRIVMSG #c :four",
            "@batch=h2;msgid=m5 :amy!a@h PRIVMSG #c :five",
            f"{SRV} BATCH -h2",
        )
        got = [(e.text, e.history) for e in w.events() if isinstance(e, Message)]
        assert got == [("four", True), ("five", True)]
        assert w.sent() == []  # short page: done
        w.feed("@msgid=m6 :amy!a@h PRIVMSG #c :six")  # caught up: live again
        assert [(e.text, e.history) for e in w.events() if isinstance(e, Message)] == [
            ("six", False)
        ]

    def test_a_held_message_not_in_the_history_comes_after_it(self) -> None:
        w = Wire(channels=("#c",))
        w.register(caps=self.CAPS)
        w.feed("@msgid=m1 :amy!a@h PRIVMSG #c :one")
        w.p.connection_lost("EOF", w.now)
        w.register(caps=self.CAPS)
        w.feed(
            "@msgid=m3 :amy!a@h PRIVMSG #c :three",  # relayed after the history was read
            f"{SRV} BATCH +h chathistory #c",
            "@batch=h;msgid=m2 :amy!a@h PRIVMSG #c :two",
            f"{SRV} BATCH -h",
        )
        assert [e.text for e in w.events() if isinstance(e, Message)] == ["two", "three"]

    def test_a_refused_resume_lets_held_messages_through(self) -> None:
        w = Wire(channels=("#c",))
        w.register(caps=self.CAPS)
        w.feed("@msgid=m1 :amy!a@h PRIVMSG #c :one")
        w.p.connection_lost("EOF", w.now)
        w.register(caps=self.CAPS)
        w.feed("@msgid=m2 :amy!a@h PRIVMSG #c :two")
        assert not [e for e in w.events() if isinstance(e, Message)]
        w.feed(f"{SRV} FAIL CHATHISTORY INVALID_TARGET #c :no")
        assert [e.text for e in w.events() if isinstance(e, Message)] == ["two"]

    def test_without_the_capability_nothing_is_asked(self) -> None:
        w = Wire(channels=("#c",))
        w.register(caps="batch message-tags")
        w.feed("@msgid=m1 :amy!a@h PRIVMSG #c :one")
        w.p.connection_lost("EOF", w.now)
        assert not any("CHATHISTORY" in line for line in w.register(caps="batch message-tags"))

    def test_falls_back_to_the_last_server_time(self) -> None:
        w = Wire(channels=("#c", "#quiet"))
        w.register(caps=self.CAPS)
        w.feed("@msgid=m1;time=2024-01-01T00:00:01.000Z :amy!a@h PRIVMSG #c :one")
        w.p.connection_lost("EOF", w.now)
        lines = w.register(caps=self.CAPS)
        assert "CHATHISTORY AFTER #c msgid=m1 100" in lines
        assert "CHATHISTORY AFTER #quiet timestamp=2024-01-01T00:00:01.000Z 100" in lines


def test_a_full_window_waits_for_the_pong_not_the_clock() -> None:
    w = Wire(max_inflight=2)
    w.register()
    w.p.send_text("#a", "one\ntwo\nthree", w.now)
    assert [x for x in w.sent() if x.startswith("PRIVMSG")] == ["PRIVMSG #a one", "PRIVMSG #a two"]
    # Nothing to do until the PONG (or the keepalive): no busy loop.
    assert w.p.next_deadline(w.now) == w.now + w.config.ping_timeout


def test_labeled_request_answered_by_ack() -> None:
    w = Wire()
    w.register(caps="batch labeled-response")
    rid = w.p.request("PONG", "x", now=w.now)
    label = w.sent()[0].split()[0].removeprefix("@label=")
    w.feed(f"@label={label} {SRV} ACK")
    (done,) = w.outcomes()
    assert isinstance(done, RequestDone) and done.id == rid and done.reply.messages == ()
