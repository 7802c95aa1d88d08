"""File transfer in the terminal client's model and drawing, pure: DCC events in, lines out;
transfers in, table rows out."""

from __future__ import annotations

from pathlib import Path

from relaychat.client.dccstate import (
    DccDone,
    DccFailed,
    DccOffered,
    DccRefused,
    Direction,
    RateMeter,
    State,
    Transfer,
)
from relaychat.client.events import Ctcp, Join, Message
from relaychat.tui.dcc import apply_dcc, busy, transfer_rows
from relaychat.tui.model import SERVER, BufferKind, ChatState, Kind

MiB = 1 << 20


def state() -> ChatState:
    s = ChatState("alice", clock=lambda: 1_700_000_000.0)
    s.apply(Join("alice", "#a", own=True))
    s.switch("#a")
    return s


def offer(**kw: object) -> Transfer:
    fields: dict[str, object] = dict(
        id=4,
        direction=Direction.RECEIVE,
        nick="bob",
        name="passwd",
        offered_name="../../etc/passwd",
        size=3 * MiB,
        state=State.OFFERED,
    )
    fields.update(kw)
    return Transfer(**fields)  # type: ignore[arg-type]


def test_an_offer_shows_in_the_conversation_with_the_commands() -> None:
    s = state()
    apply_dcc(s, DccOffered(offer()), Path("/home/alice/Downloads"))
    buf = s.get("bob")
    assert buf is not None and buf.kind is BufferKind.QUERY
    (line,) = buf.lines
    assert line.kind is Kind.OFFER and line.highlight
    assert line.text == (
        "bob offers the file passwd (offered as '../../etc/passwd'), 3.0 MiB: /dcc get bob "
        "saves it in /home/alice/Downloads, /dcc close 4 declines"
    )
    assert buf.unread == 1 and buf.highlight  # not on screen: it is flagged in the list


def test_ends_and_refusals_are_lines_too() -> None:
    s = state()
    done = offer(state=State.DONE, done=3 * MiB, sha256="ab" * 32, path=Path("/d/passwd"))
    done.started, done.finished = 10.0, 12.0
    apply_dcc(s, DccDone(done), Path("/d"))
    failed = offer(id=5, direction=Direction.SEND, state=State.FAILED, name="x.bin")
    apply_dcc(s, DccFailed(failed, "bob declined"), Path("/d"))
    apply_dcc(s, DccRefused("eve", "SEND x 1 0 5", "port 0 without a token"), Path("/d"))
    bob = s.get("bob")
    assert bob is not None
    assert [line.kind for line in bob.lines] == [Kind.INFO, Kind.ERROR]
    assert bob.lines[0].text == (
        f"received passwd from bob: 3.0 MiB in 2.0 s (1.5 MiB/s), saved as /d/passwd "
        f"(sha256 {'ab' * 32})"
    )
    assert bob.lines[1].text == "file transfer #5 (x.bin to bob) failed: bob declined"
    eve = s.get("eve")
    assert eve is not None
    assert eve.lines[0].text == "refused a file offer from eve: port 0 without a token"


def test_ctcps_show_as_a_short_line_never_as_raw_text() -> None:
    s = state()
    s.apply(Ctcp("bob", "alice", "VERSION", "", prefix="bob!b@h"))
    s.apply(Ctcp("bob", "alice", "DCC", "SEND f 1 2 3", prefix="bob!b@h"))  # the DCC view's
    text = "\x01DCC SEND f 1 2 3\x01"
    old = Message("bob", "alice", text, reply_to="bob", prefix="bob!b@h", history=True)
    s.apply(old)
    bob = s.get("bob")
    assert bob is not None
    assert [line.text for line in bob.lines] == [
        "bob sent a CTCP VERSION request",
        "bob sent a CTCP DCC",
    ]
    assert all("\x01" not in line.text for b in s.buffers.values() for line in b.lines)
    assert not s.buffers[SERVER].lines


def test_the_transfers_table() -> None:
    assert "no file transfers yet" in transfer_rows([])[0].plain
    active = offer(id=1, state=State.ACTIVE, done=MiB, passive=True)
    meter = RateMeter()
    meter.add(0.0, 0)
    meter.add(1.0, MiB)
    active.meter = meter
    failed = offer(id=2, direction=Direction.SEND, state=State.FAILED, error="stalled")
    rows = [row.plain for row in transfer_rows([active, failed])]
    assert rows[1:] == [
        "#2 -> passwd to bob  failed",
        "   [------------------------]   0%  0 B of 3.0 MiB  stalled",
        "#1 <- passwd from bob  active (passive)",
        "   [########----------------]  33%  1.0 MiB of 3.0 MiB  1.0 MiB/s  2 s left",
    ]
    assert busy([active, failed]) and not busy([failed])
