"""Delivery guarantees in the sans-I/O client: idempotency keys, labeled lines, resending.

A scripted server at the other end of an in-memory wire (``Wire`` from the protocol tests).
Spec of the server side: ``server/idempotency.py``; of the client side: ``client/guarantee.py``.
"""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest

from relaychat.client import ClientConfig
from relaychat.client.delivery import Delivery
from relaychat.client.events import Disconnected, Message, Outgoing
from relaychat.client.guarantee import IDEM_CAP, IDEM_TAG, DeliveryState
from relaychat.client.protocol import ClientProtocol
from relaychat.client.requests import (
    Confirmed,
    LineRejected,
    Repeated,
    Unconfirmed,
)
from relaychat.errors import ConfigError
from relaychat.protocol.message import parse
from tests.unit.test_client_protocol import SRV, Wire

FULL = f"batch message-tags server-time labeled-response echo-message {IDEM_CAP}=window=600"


class KeyedWire(Wire):
    """A Wire whose keys are predictable (k1, k2, ...) and whose server hands out tokens."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        numbers = count(1)
        self.p = ClientProtocol(self.config, self.now, keys=lambda: f"k{next(numbers)}")
        self.tokens = count(1)
        self.presented: list[str] = []

    def register(
        self, nick: str = "bot", caps: str = FULL, isupport: str = "", token: str | None = None
    ) -> list[str]:  # type: ignore[override]
        """Register; answer IDEM TOKEN with the token presented (or ``token``, or a new one)."""
        self.connect()
        self.feed(f"{SRV} CAP * LS :{caps}")
        for line in self.sent():
            if line.startswith("CAP REQ "):
                self.feed(f"{SRV} CAP * ACK :{line[8:].removeprefix(':')}")
        for line in self.sent():
            if line.startswith("IDEM TOKEN"):
                self.presented.append(line)
                given = line.split()[2] if len(line.split()) > 2 else f"tok{next(self.tokens)}"
                self.feed(f"{SRV} IDEM TOKEN {token or given}")
        self.feed(
            f"{SRV} 001 {nick} :Welcome {nick}!~{nick}@127.0.0.1",
            f"{SRV} 005 {nick} CHANTYPES=# {isupport} :are supported",
            f"{SRV} 376 {nick} :End of /MOTD command.",
        )
        assert self.p.ready or self.p.dead
        return self.sent()


def written(lines: list[str]) -> list[tuple[str, str, str]]:
    """(label, key, text) of each PRIVMSG written."""
    out = []
    for line in lines:
        msg = parse(line)
        if msg.command == "PRIVMSG":
            out.append((msg.tags.get("label", ""), msg.tags.get(IDEM_TAG, ""), msg.params[1]))
    return out


def echo(label: str, key: str, text: str, msgid: str, target: str = "#a") -> str:
    return f"@label={label};msgid={msgid};{IDEM_TAG}={key} :bot!~bot@h PRIVMSG {target} :{text}"


class TestExactlyOnce:
    def test_decided_after_registration_and_each_line_has_a_key(self) -> None:
        w = KeyedWire()
        assert w.p.guarantee is None  # auto: the server decides
        w.register()
        assert w.presented == ["IDEM TOKEN"] and w.p.delivery.token == "tok1"
        assert w.p.guarantee == "exactly_once"
        items = w.p.send_text("#a", "one\ntwo", w.now)
        assert [i.key for i in items] == ["k1", "k2"]
        (l1, k1, t1), (l2, k2, t2) = written(w.sent())
        assert (k1, t1, k2, t2) == ("k1", "one", "k2", "two") and l1 != l2

    def test_the_echo_confirms_with_its_msgid(self) -> None:
        w = KeyedWire()
        w.register()
        (item,) = w.p.send_text("#a", "hello", w.now)
        ((label, key, _),) = written(w.sent())
        w.feed(echo(label, key, "hello", "m1"))
        assert w.outcomes() == [Confirmed((item,), ("m1",))]
        assert not [e for e in w.events() if isinstance(e, Message)]  # our own line: no event
        assert w.p.keepalive.lag is not None

    def test_an_ack_confirms_without_a_msgid(self) -> None:
        w = KeyedWire()
        w.register(caps=f"batch message-tags labeled-response {IDEM_CAP}")
        (item,) = w.p.send_text("#a", "hello", w.now)
        ((label, _, _),) = written(w.sent())
        w.feed(f"@label={label} {SRV} ACK")
        assert w.outcomes() == [Confirmed((item,))]

    def test_a_drop_before_the_echo_resends_with_the_same_key(self) -> None:
        w = KeyedWire()
        w.register()
        items = w.p.send_text("#a", "one\ntwo", w.now)
        first = written(w.sent())
        w.feed(echo(first[0][0], "k1", "one", "m1"))
        w.outcomes()
        w.p.connection_lost("connection reset by peer", w.now)
        assert w.outcomes() == []  # nothing given up
        (gone,) = [e for e in w.events() if isinstance(e, Disconnected)]
        assert gone.unconfirmed == () and gone.resending == (items[1],)
        again = written(w.register())
        assert w.presented == ["IDEM TOKEN", "IDEM TOKEN tok1"]
        assert [(k, t) for _, k, t in again] == [("k2", "two")]
        # The server recognises the key: the first echo comes back, same msgid.
        w.feed(echo(again[0][0], "k2", "two", "m2"))
        assert w.outcomes() == [Confirmed((items[1],), ("m2",))]

    def test_a_new_identity_gives_up_what_waited(self) -> None:
        w = KeyedWire()
        w.register()
        (item,) = w.p.send_text("#a", "one", w.now)
        w.sent()
        w.p.connection_lost("EOF", w.now)
        lines = w.register(token="someone-else")  # the server forgot us (history wiped)
        assert written(lines) == []
        (out,) = w.outcomes()
        assert isinstance(out, Unconfirmed) and out.items == (item,)
        assert "cannot recognise" in out.reason

    def test_lines_older_than_the_window_are_not_resent(self) -> None:
        w = KeyedWire()
        w.register(caps=FULL.replace("window=600", "window=100"))
        old = w.p.send_text("#a", "old", w.now)
        w.sent()
        w.advance(80)
        new = w.p.send_text("#a", "new", w.now)
        w.sent()
        w.p.connection_lost("EOF", w.now)
        w.advance(15)  # "old" was first written 95 s ago: past 90% of the window
        again = written(w.register(caps=FULL.replace("window=600", "window=100")))
        assert [t for _, _, t in again] == ["new"]
        (out,) = [o for o in w.outcomes() if isinstance(o, Unconfirmed)]
        assert out.items == old and "window" in out.reason
        assert new[0].key == again[0][1]

    def test_asked_for_and_not_offered_is_fatal(self) -> None:
        w = KeyedWire(delivery="exactly_once")
        w.register(caps="batch message-tags labeled-response")
        assert w.p.dead is not None and IDEM_CAP in w.p.dead and w.p.fatal

    def test_a_refused_token_is_not_exactly_once(self) -> None:
        w = Wire(delivery="auto")
        w.connect()
        w.feed(f"{SRV} CAP * LS :{FULL}")
        req = next(line for line in w.sent() if line.startswith("CAP REQ"))
        w.feed(f"{SRV} CAP * ACK :{req[8:].removeprefix(':')}")
        w.feed(f"{SRV} FAIL IDEM DISABLED :no")
        w.feed(f"{SRV} 001 bot :Welcome", f"{SRV} 376 bot :End")
        assert w.p.guarantee == "at_most_once"


class TestWeakerGuarantees:
    CAPS = "batch message-tags labeled-response echo-message"

    def test_auto_without_the_capability_is_at_most_once(self) -> None:
        w = KeyedWire()
        w.register(caps=self.CAPS)
        assert w.p.guarantee == "at_most_once" and w.presented == []
        (item,) = w.p.send_text("#a", "one", w.now)
        assert written(w.sent())[0][1] == "k1"  # the key still goes: receivers drop repeats
        w.p.connection_lost("EOF", w.now)
        assert w.outcomes() == [Unconfirmed((item,), "EOF")]
        assert written(w.register(caps=self.CAPS)) == []

    def test_at_least_once_resends_and_says_it_may_repeat(self) -> None:
        w = KeyedWire(delivery="at_least_once")
        w.register(caps=f"{self.CAPS} {IDEM_CAP}")  # not asked for: the user chose
        assert w.p.guarantee == "at_least_once" and IDEM_CAP not in w.p.caps
        (item,) = w.p.send_text("#a", "one", w.now)
        w.sent()
        assert w.outcomes() == []
        w.p.connection_lost("EOF", w.now)
        assert [t for _, _, t in written(w.register(caps=self.CAPS))] == ["one"]
        assert w.outcomes() == [Repeated((item,))]

    def test_resend_unconfirmed_is_at_least_once(self) -> None:
        w = KeyedWire(resend_unconfirmed=True)
        w.register(caps=self.CAPS)
        assert w.p.guarantee == "at_least_once"

    def test_no_message_tags_no_key_on_the_wire(self) -> None:
        w = KeyedWire()
        w.register(caps="")
        w.p.send_text("#a", "plain", w.now)
        assert [line for line in w.sent() if "PRIVMSG" in line] == ["PRIVMSG #a plain"]

    def test_delivery_setting_is_checked(self) -> None:
        assert ClientConfig(nick="x", delivery="exactly-once").delivery == "exactly_once"
        with pytest.raises(ConfigError, match="delivery"):
            ClientConfig(nick="x", delivery="twice")


class TestAnswers:
    def test_refusals_reject_the_line(self) -> None:
        w = KeyedWire()
        w.register()
        a, b = w.p.send_text("#a", "x", w.now) + w.p.send_text("#b", "y", w.now)
        (la, _, _), (lb, _, _) = written(w.sent())
        w.feed(f"@label={la} {SRV} 404 bot #a :Cannot send to channel")
        w.feed(f"@label={lb} {SRV} FAIL PRIVMSG INVALID_IDEMPOTENCY_KEY #b :bad key")
        assert w.outcomes() == [
            LineRejected(a, "404", "Cannot send to channel"),
            LineRejected(b, "INVALID_IDEMPOTENCY_KEY", "bad key"),
        ]

    def test_an_answer_in_a_batch(self) -> None:
        w = KeyedWire()
        w.register()
        (item,) = w.p.send_text("amy", "hi", w.now)
        ((label, _, _),) = written(w.sent())
        w.feed(
            f"@label={label} {SRV} BATCH +b1 labeled-response",
            "@batch=b1;msgid=m9 :bot!~bot@h PRIVMSG amy :hi",
            f"@batch=b1 {SRV} 301 bot amy :away",
            f"{SRV} BATCH -b1",
        )
        assert w.outcomes() == [Confirmed((item,), ("m9",))]

    def test_a_lost_answer_is_noticed(self) -> None:
        w = KeyedWire(ack_delay=0.5)
        w.register()
        w.p.send_text("#a", "x", w.now)
        w.sent()
        assert w.p.next_deadline(w.now) == pytest.approx(w.now + 0.5)
        w.advance(0.5)
        (ping,) = [line for line in w.sent() if line.startswith("PING")]
        w.feed(f"{SRV} :garbled echo\x00")  # the answer, unreadable
        w.pong(ping.split()[-1])
        assert w.p.dead is not None and "lost" in w.p.dead

    def test_a_pong_before_the_answer_is_due_is_fine(self) -> None:
        w = KeyedWire(ack_delay=0.5)
        w.register()
        w.p.send_text("#a", "x", w.now)
        ((label, key, _),) = written(w.sent())
        w.advance(0.5)
        (ping,) = [line for line in w.sent() if line.startswith("PING")]
        w.feed(echo(label, key, "x", "m1"))
        w.pong(ping.split()[-1])
        assert w.p.dead is None

    def test_an_echo_to_ourselves_is_also_a_message_once(self) -> None:
        w = KeyedWire()
        w.register()
        w.p.send_text("bot", "note to self", w.now)
        ((label, key, _),) = written(w.sent())
        w.feed(echo(label, key, "note to self", "m5", target="bot"))
        w.feed(f"@msgid=m5;{IDEM_TAG}={key} :bot!~bot@h PRIVMSG bot :note to self")  # delivery
        got = [e.text for e in w.events() if isinstance(e, Message)]
        assert got == ["note to self"]


class TestReceiving:
    def test_a_repeated_key_is_dropped_per_channel(self) -> None:
        w = Wire()
        w.register(caps="message-tags")
        w.feed(
            f"@msgid=a;{IDEM_TAG}=K :amy!a@h PRIVMSG #c :once",
            f"@msgid=b;{IDEM_TAG}=K :amy_!a@h PRIVMSG #c :once",  # written again after a drop
            f"@msgid=c;{IDEM_TAG}=K :amy!a@h PRIVMSG #d :once",  # the same message to #d
            f"@msgid=d;{IDEM_TAG}=K :amy!a@h PRIVMSG bot :once",  # and to us
            f"@msgid=e;{IDEM_TAG}=K :amy_!a@h PRIVMSG bot :once",
        )
        got = [(e.target, e.msgid) for e in w.events() if isinstance(e, Message)]
        assert got == [("#c", "a"), ("#d", "c"), ("bot", "d")]


class TestTagmsg:
    def test_sent_with_its_key_and_confirmed(self) -> None:
        w = KeyedWire()
        w.register()
        item = w.p.send_tags("#a", {"+typing": "active"}, w.now)
        (line,) = [parse(x) for x in w.sent() if "TAGMSG" in x]
        assert line.tags["+typing"] == "active" and line.tags[IDEM_TAG] == item.key
        w.feed(f"@label={line.tags['label']};msgid=t1 :bot!~bot@h TAGMSG #a")
        assert w.outcomes() == [Confirmed((item,), ("t1",))]

    def test_needs_message_tags(self) -> None:
        w = KeyedWire()
        w.register(caps="")
        item = w.p.send_tags("#a", {"+typing": "active"}, w.now)
        assert not [x for x in w.sent() if "TAGMSG" in x]
        (out,) = w.outcomes()
        assert isinstance(out, LineRejected) and out.item == item

    def test_checked(self) -> None:
        with pytest.raises(ValueError, match="client-only"):
            Outgoing(1, "TAGMSG", "#a", "", tags=(("typing", "x"),))
        with pytest.raises(ValueError, match="needs"):
            Outgoing(1, "TAGMSG", "#a", "")


async def test_delivery_reports_msgids_and_repeats() -> None:
    lines = tuple(Outgoing(i, "PRIVMSG", "#c", f"part {i}", f"k{i}") for i in range(2))
    d = Delivery(lines)
    d._settle(lines[0], msgid="m0")
    d._repeat(lines[1])
    d._settle(lines[1])
    assert await d == "m0"
    assert d.msgids == ("m0", None) and d.msgid == "m0"
    assert d.confirmed and not d.exactly_once and d.maybe_duplicated == (lines[1],)


def test_state_window_from_the_capability() -> None:
    state = DeliveryState("auto", resend_unconfirmed=False, account=False)
    wanted, fatal = state.want({IDEM_CAP: "window=42,keylen=64", "message-tags": ""})
    assert wanted == [IDEM_CAP] and fatal is None and state.window == 42.0
