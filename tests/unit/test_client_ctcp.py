"""CTCP in the client protocol: live CTCPs become Ctcp events, history never does (in memory)."""

from __future__ import annotations

from relaychat.client.events import Ctcp, Message
from tests.unit.test_client_protocol import SRV, Wire

CAPS = "batch message-tags server-time draft/chathistory"


def test_a_live_ctcp_is_a_ctcp_event_not_a_message() -> None:
    w = Wire()
    w.register()
    w.feed(
        ":amy!a@h PRIVMSG bot :\x01DCC SEND f.txt 2130706433 5000 10\x01",
        ":amy!a@h NOTICE bot :\x01DCC REJECT SEND f.txt\x01",
        ":amy!a@h PRIVMSG bot :\x01VERSION\x01",
        ":amy!a@h PRIVMSG #c :\x01ACTION waves\x01",
        ":amy!a@h PRIVMSG bot :plain text",
    )
    events = w.events()
    ctcps = [e for e in events if isinstance(e, Ctcp)]
    assert ctcps == [
        Ctcp("amy", "bot", "DCC", "SEND f.txt 2130706433 5000 10", False, "amy!a@h"),
        Ctcp("amy", "bot", "DCC", "REJECT SEND f.txt", True, "amy!a@h"),
        Ctcp("amy", "bot", "VERSION", "", False, "amy!a@h"),
    ]
    texts = [e.text for e in events if isinstance(e, Message)]
    assert texts == ["\x01ACTION waves\x01", "plain text"]  # ACTION stays a message


def test_a_ctcp_from_history_is_never_a_ctcp_event() -> None:
    """An old DCC offer replayed by CHATHISTORY must not look like a new one."""
    w = Wire(channels=("#c",))
    w.register(caps=CAPS, isupport="CHATHISTORY=50")
    w.feed(":bot!~bot@h JOIN #c", "@msgid=m1 :amy!a@h PRIVMSG #c :hi")
    w.events()
    w.p.connection_lost("EOF", w.now)
    w.register(caps=CAPS, isupport="CHATHISTORY=50")
    w.feed(
        ":bot!~bot@h JOIN #c",
        f"{SRV} BATCH +h1 chathistory #c",
        "@batch=h1;msgid=m2 :amy!a@h PRIVMSG #c :\x01DCC SEND old 2130706433 5000 1\x01",
        f"{SRV} BATCH -h1",
    )
    events = w.events()
    assert not any(isinstance(e, Ctcp) for e in events)
    (old,) = [e for e in events if isinstance(e, Message)]
    assert old.history and old.text.startswith("\x01DCC SEND")
