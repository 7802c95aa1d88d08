"""The core's seams for a network beyond the process (server/backplane.py), in memory: channel
traffic handed to a backplane, departures reported, users of other servers left out of local
fan-out, and commands held in order while an earlier one waits."""

from __future__ import annotations

from relaychat.protocol.message import Message
from relaychat.server.backplane import Elsewhere
from relaychat.server.core import MAX_WAITING
from relaychat.server.relay import Relay
from relaychat.server.state import Channel, User
from tests.harness import MemoryPeer
from tests.unit.core_support import harness, joined, src


class RecordingBackplane:
    """A backplane that records what the core hands it, and delivers locally at once."""

    def __init__(self, core: object) -> None:
        self.core = core
        self.events: list[tuple[str, bytes, str, str, bool]] = []
        self.left: list[tuple[str, str]] = []

    def channel_event(
        self,
        channel: Channel,
        event: Relay,
        skip: User | None,
        *,
        status: str = "",
        tagmsg: bool = False,
    ) -> None:
        self.events.append((channel.name, event.line, skip.nick if skip else "", status, tagmsg))

    def user_left(self, user: User, reason: str) -> None:
        self.left.append((user.nick, reason))

    def elsewhere(self) -> Elsewhere:
        return Elsewhere(0, 0, 0, 0)

    def channel_special(
        self,
        channel: Channel,
        event: Relay,
        skip: User | None,
        *,
        cap: str = "",
        multiline: dict[str, object] | None = None,
    ) -> None:
        self.events.append((channel.name, event.line, skip.nick if skip else "", cap, False))


def test_channel_traffic_goes_to_the_backplane_not_to_the_members() -> None:
    h = harness()
    joined(h, "#a", "alice", "bob")
    plane = RecordingBackplane(h.core)
    h.core.backplane = plane
    h.send("alice", "PRIVMSG #a :hello")
    h.send("alice", "PRIVMSG @#a :ops only")
    h.send("alice", "TOPIC #a :news")
    assert h.lines("bob") == []  # delivery is the backplane's, in the network's order
    assert h.lines("alice") == [f":{src('alice')} TOPIC #a news"]  # its own reply only
    assert [(e[0], e[2], e[3]) for e in plane.events] == [
        ("#a", "alice", ""),
        ("#a", "alice", "@"),
        ("#a", "alice", ""),
    ]
    assert plane.events[0][1] == f":{src('alice')} PRIVMSG #a :hello\r\n".encode()
    # ... which delivers through deliver_local, the same fan-out as a process alone.
    event = h.core.relay(h.users["alice"], plane.events[0][1])
    h.core.deliver_local(h.core.channels["#a"], event, h.users["alice"])
    assert h.lines("bob") == [f":{src('alice')} PRIVMSG #a :hello"]
    assert h.lines("alice") == []
    h.send("bob", "QUIT :bye")
    assert plane.left == [("bob", "Quit: bye")]


def test_users_of_other_servers_get_no_local_fanout() -> None:
    h = harness()
    joined(h, "#a", "alice")
    remote_peer = MemoryPeer()
    remote = User(-1, remote_peer, "n2/1", h.now)
    remote.server = "n2.test"
    remote.registered = True
    remote.set_nick("carol")
    h.core.users["carol"] = remote
    h.core.add_member(h.core.channels["#a"], remote)
    h.send("alice", "PRIVMSG #a :for locals")
    assert remote_peer.take() == []  # its own server delivers channel traffic to it
    h.send("alice", "PRIVMSG carol :direct")  # what the core sends it directly goes through
    assert remote_peer.take() == [f":{src('alice')} PRIVMSG carol :direct"]
    h.send("alice", "WHOIS carol")
    assert any(" 312 alice carol n2.test " in line for line in h.lines("alice"))


def test_held_commands_run_in_order_after_release() -> None:
    h = harness()
    alice = h.connect("alice")
    h.core.hold(alice)
    h.send("alice", "PING :one")
    h.send("alice", "PING :two")
    assert h.lines("alice") == []
    h.core.release(alice, h.now)
    assert h.lines("alice") == [
        ":relaychat.local PONG relaychat.local one",
        ":relaychat.local PONG relaychat.local two",
    ]


def test_a_command_held_again_keeps_the_rest_waiting() -> None:
    h = harness()
    alice = h.connect("alice")
    h.core.hold(alice)
    for token in ("one", "two", "three"):
        h.send("alice", f"PING :{token}")
    assert alice.held is not None and len(alice.held) == 3
    # Release, but have the first command hold the user again (as a network claim would):
    # held lines are carried out by ServerCore._command, in order (server/pending.py).
    original = h.core._command

    def command(user: User, msg: Message) -> None:
        original(user, msg)
        if msg.params == ("one",):
            h.core.hold(user)

    h.core._command = command  # type: ignore[method-assign]
    h.core.release(alice, h.now)
    assert [m.params[0] for m in alice.held or [] if isinstance(m, Message)] == ["two", "three"]
    assert h.lines("alice") == [":relaychat.local PONG relaychat.local one"]


def test_flooding_while_held_is_an_excess_flood() -> None:
    h = harness()
    alice = h.connect("alice")
    h.core.hold(alice)
    for n in range(MAX_WAITING + 1):
        h.send("alice", f"PING :{n}")
    assert alice.quitting
    assert h.peers["alice"].closed is not None and "Excess Flood" in h.peers["alice"].closed
