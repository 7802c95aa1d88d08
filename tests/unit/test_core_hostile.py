"""Issue 17 (hostile users) and issue 11 fix 8 (commands answered in order), in memory.

Each class is one defect: what a hostile client did, and what the core does now.
"""

from __future__ import annotations

from functools import cache

from relaychat.config import History, Oper, Throttle
from relaychat.passwords import hash_password
from relaychat.protocol.message import parse
from relaychat.server.commands.channels import LIST_PART
from relaychat.server.commands.history import server_time
from relaychat.server.state import Channel
from relaychat.store import MemoryHistory
from tests.harness import CoreHarness, free_config
from tests.unit.accounts_support import PASSWORD, queue_harness
from tests.unit.core_support import SERVER, harness

FULL = "CAP REQ :draft/chathistory batch server-time message-tags"


@cache
def oper_hash() -> str:
    return hash_password("hunter2")


def codes(lines: list[str]) -> list[str]:
    return [parse(line).command for line in lines]


def history_harness() -> CoreHarness:
    h = CoreHarness(free_config(history=History()))
    h.core.history = MemoryHistory()
    h.core.extra_caps["draft/chathistory"] = ""
    return h


def with_caps(h: CoreHarness, nick: str) -> None:
    h.open(nick)
    h.send(nick, "CAP LS 302")
    h.send(nick, FULL)
    h.send(nick, f"NICK {nick}")
    h.send(nick, f"USER {nick} 0 * :{nick}")
    h.send(nick, "CAP END")
    assert h.users[nick].registered
    h.lines(nick)


class TestPrivateHistoryLeak:
    """Item 1: private history belongs to whoever held the nick when it was relayed."""

    def scenario(self, h: CoreHarness) -> None:
        with_caps(h, "mallory")  # connects first, all at the same instant: no clock help
        h.connect("alice")
        h.connect("bob")
        h.send("bob", "PRIVMSG alice :for alice only")
        h.send("alice", "PRIVMSG bob :for bob only")
        h.send("bob", "QUIT :bye")
        h.send("mallory", "NICK bob")
        h.lines("mallory")

    def test_latest_shows_nothing_of_the_last_holder(self) -> None:
        h = history_harness()
        self.scenario(h)
        for sub in ("LATEST alice * 50", "BEFORE alice timestamp=2100-01-01T00:00:00.000Z 50"):
            h.send("mallory", f"CHATHISTORY {sub}")
            msgs = [parse(line) for line in h.lines("mallory")]
            assert [m.command for m in msgs] == ["BATCH", "BATCH"], msgs
        h.send("mallory", "CHATHISTORY AFTER alice timestamp=2000-01-01T00:00:00.000Z 50")
        assert codes(h.lines("mallory")) == ["BATCH", "BATCH"]

    def test_targets_lists_nothing_of_the_last_holder(self) -> None:
        h = history_harness()
        self.scenario(h)
        start, end = server_time(0), server_time(int((h.now + 60) * 1000))
        h.send("mallory", f"CHATHISTORY TARGETS timestamp={start} timestamp={end} 50")
        assert codes(h.lines("mallory")) == ["BATCH", "BATCH"]

    def test_what_comes_after_the_nick_is_taken_is_the_new_holders(self) -> None:
        h = history_harness()
        self.scenario(h)
        h.send("alice", "PRIVMSG bob :hello new bob")
        h.lines("mallory")
        h.send("mallory", "CHATHISTORY LATEST alice * 50")
        body = [parse(line) for line in h.lines("mallory")][1:-1]
        assert [m.params[-1] for m in body] == ["hello new bob"]
        start, end = server_time(0), server_time(int((h.now + 60) * 1000))
        h.send("mallory", f"CHATHISTORY TARGETS timestamp={start} timestamp={end} 50")
        body = [parse(line) for line in h.lines("mallory")][1:-1]
        assert [m.params[1] for m in body] == ["alice"]


class TestInOrder:
    """Issue 11 fix 8: while a password is hashed, later lines wait their turn."""

    def test_register_then_ping(self) -> None:
        h, _svc, worker = queue_harness()
        h.connect("alice")
        h.send("alice", f"REGISTER * * {PASSWORD}")
        h.send("alice", "PING :after")
        h.send("alice", "PING :later")
        assert h.lines("alice") == []  # nothing overtakes the REGISTER
        worker.run_pending()
        lines = h.lines("alice")
        assert codes(lines) == ["REGISTER", "900", "PONG", "PONG"]
        assert [parse(x).params[-1] for x in lines[2:]] == ["after", "later"]

    def test_a_held_line_that_is_slow_again_holds_the_rest(self) -> None:
        h, _svc, worker = queue_harness(opers=(Oper("root", oper_hash()),))
        h.connect("alice")
        h.send("alice", f"REGISTER * * {PASSWORD}")
        h.send("alice", "OPER root hunter2")
        h.send("alice", "PING :last")
        assert worker.run_pending() == 2  # the REGISTER, then the OPER it released
        assert codes(h.lines("alice")) == ["REGISTER", "900", "381", "MODE", "PONG"]

    def test_lines_too_long_are_answered_in_their_turn(self) -> None:
        h, _svc, worker = queue_harness()
        h.connect("alice")
        h.send("alice", f"REGISTER * * {PASSWORD}")
        h.send("alice", b"PRIVMSG x :" + b"a" * 9000)
        assert h.lines("alice") == []
        worker.run_pending()
        assert codes(h.lines("alice")) == ["REGISTER", "900", "417"]

    def test_held_input_is_bounded(self) -> None:
        h, _svc, _worker = queue_harness(limits={"recvq": 1024})
        h.connect("alice")
        h.send("alice", f"REGISTER * * {PASSWORD}")
        for _ in range(40):
            h.send("alice", "PRIVMSG #nowhere :" + "x" * 40)
        assert h.peers["alice"].closed is not None
        assert "Excess Flood" in h.peers["alice"].closed

    def test_keepalive_counts_held_lines(self) -> None:
        h, _svc, _worker = queue_harness()
        h.connect("alice")
        h.send("alice", f"REGISTER * * {PASSWORD}")
        h.advance(80)
        h.send("alice", "PONG :x")  # held, but proves the link is alive
        h.advance(80)
        assert h.peers["alice"].closed is None


class TestOper:
    """Item 2: OPER's argon2 runs on the worker; failures are throttled."""

    def test_checked_on_the_worker(self) -> None:
        h, _svc, worker = queue_harness(opers=(Oper("root", oper_hash()),))
        h.connect("alice")
        h.send("alice", "OPER root hunter2")
        assert h.lines("alice") == [] and len(worker.jobs) == 1
        worker.run_pending()
        assert codes(h.lines("alice")) == ["381", "MODE"]

    def test_failures_lock_the_connection_out(self) -> None:
        h, _svc, worker = queue_harness(opers=(Oper("root", oper_hash()),))
        h.connect("mallory")
        for _ in range(3):  # throttle.oper_failures
            h.send("mallory", "OPER root guess")
            worker.run_pending()
        assert codes(h.lines("mallory")) == ["464"] * 3
        h.send("mallory", "OPER root hunter2")  # even the right one: locked out, no argon2
        h.send("mallory", "PING :held")
        assert not worker.jobs and h.lines("mallory") == []  # the tarpit: answered later
        h.advance(1)
        assert h.lines("mallory") == []
        h.advance(1)  # the lock-out (2 s) is over: the refusal comes, then the PING's answer
        lines = h.lines("mallory")
        assert codes(lines) == ["464", "PONG"]
        assert "too many failed attempts: try again now" in lines[0]
        h.send("mallory", "OPER root hunter2")
        worker.run_pending()
        assert codes(h.lines("mallory")) == ["381", "MODE"]

    def test_and_the_address_too(self) -> None:
        h, _svc, worker = queue_harness(opers=(Oper("root", oper_hash()),))
        for n in range(3):  # one failure each, from three connections of one address
            h.connect(f"m{n}")
            h.send(f"m{n}", "OPER root guess")
            worker.run_pending()
        h.connect("m3")
        h.send("m3", "OPER root hunter2")
        assert not worker.jobs
        h.advance(2)
        assert "too many failed attempts" in h.lines("m3")[0]
        h.connect("elsewhere", ip="192.0.2.1")
        h.send("elsewhere", "OPER root hunter2")
        assert len(worker.jobs) == 1


class TestServerPassword:
    """Item 3: the server password is checked on the worker, and throttled per address."""

    def test_registration_waits_for_the_check(self) -> None:
        h, _svc, worker = queue_harness(password=oper_hash())
        h.open("c")
        for line in ("PASS hunter2", "NICK carol", "USER c 0 * :c", "PING :x"):
            h.send("c", line)
        assert h.lines("c") == [] and not h.users["c"].registered
        worker.run_pending()
        got = codes(h.lines("c"))
        assert got[0] == "001" and got[-1] == "PONG"

    def test_wrong_passwords_lock_the_address_out(self) -> None:
        h, _svc, worker = queue_harness(password=oper_hash(), throttle=Throttle(login_failures=3))
        for n in range(3):
            h.open(f"m{n}")
            for line in ("PASS wrong", f"NICK m{n}", "USER m 0 * :m"):
                h.send(f"m{n}", line)
            worker.run_pending()
            assert h.peers[f"m{n}"].closed == "Closing Link: 127.0.0.1 (Bad password)"
        h.open("last")
        for line in ("PASS hunter2", "NICK last", "USER m 0 * :m"):
            h.send("last", line)
        assert not worker.jobs and h.peers["last"].closed is None  # no argon2; the tarpit
        h.advance(2)
        closed = h.peers["last"].closed
        assert closed is not None and "Too many wrong passwords; try again now" in closed

    def test_plain_text_password_stays_cheap(self) -> None:
        h, _svc, worker = queue_harness(password="letmein")
        h.open("c")
        for line in ("PASS letmein", "NICK carol", "USER c 0 * :c"):
            h.send("c", line)
        assert not worker.jobs and h.users["c"].registered


class TestWorkerShare:
    """Item 4: jobs carry the client's address group (the worker's fair-share key)."""

    def test_jobs_are_keyed_by_address_group(self) -> None:
        h, _svc, worker = queue_harness(opers=(Oper("root", oper_hash()),))
        h.connect("a", ip="2001:db8::1")
        h.connect("b", ip="192.0.2.9")
        h.send("a", "OPER root x")
        h.send("b", "OPER root x")
        assert worker.keys == ["2001:db8::/64", "192.0.2.9"]


class TestList:
    """Item 9: a long LIST goes in parts as the client reads; comma lists have MAXTARGETS."""

    def many(self, h: CoreHarness, count: int) -> None:
        for n in range(count):
            name = f"#c{n:05d}"
            h.core.channels[name] = Channel(name, h.now)

    def test_parts_follow_the_reading(self) -> None:
        h = harness()
        h.pump = False
        self.many(h, LIST_PART * 3 - 7)
        h.connect("alice")
        h.send("alice", "LIST")
        first = codes(h.lines("alice"))
        assert first[0] == "321" and first.count("322") == LIST_PART and "323" not in first
        h.send("alice", "PING :during")  # held until the LIST is over
        assert h.lines("alice") == []
        while h.drain("alice"):
            pass
        rest = codes(h.lines("alice"))
        assert rest.count("322") == LIST_PART * 2 - 7
        assert rest[-2:] == ["323", "PONG"]

    def test_labeled_list_is_one_batch_across_parts(self) -> None:
        h = harness()
        self.many(h, LIST_PART + 5)
        h.connect("alice")
        h.send("alice", "CAP REQ :labeled-response batch")
        h.lines("alice")
        h.send("alice", "@label=L1 LIST")
        msgs = [parse(line) for line in h.lines("alice")]
        head, tail = msgs[0], msgs[-1]
        assert head.command == "BATCH" and head.tags == {"label": "L1"}
        ref = head.params[0][1:]
        assert tail.command == "BATCH" and tail.params == ("-" + ref,)
        assert all(m.tags.get("batch") == ref for m in msgs[1:-1])
        assert [m.command for m in msgs[1:-1]].count("322") == LIST_PART + 5

    def test_comma_list_is_capped_by_maxtargets(self) -> None:
        h = harness()
        self.many(h, 10)
        h.connect("alice")
        h.send("alice", "LIST " + ",".join(f"#c{n:05d}" for n in range(6)))
        got = codes(h.lines("alice"))
        assert got.count("407") == 2 and got.count("322") == 4 and got[-1] == "323"


class TestNickHold:
    """Item 10: NICK without USER holds a nick only for throttle.nick_hold seconds."""

    def test_an_idle_unregistered_holder_loses_the_nick(self) -> None:
        h = harness(throttle=Throttle(nick_hold=10.0))
        h.open("squatter")
        h.send("squatter", "NICK alice")
        h.open("alice")
        h.send("alice", "NICK alice")
        assert codes(h.lines("alice")) == ["433"]  # held for now
        h.now += 11
        h.send("alice", "NICK alice")
        h.send("alice", "USER alice 0 * :alice")
        assert h.users["alice"].registered and h.users["alice"].nick == "alice"
        assert h.lines("squatter") == [
            f":{SERVER} 433 * alice :Nickname taken: you did not register"
        ]
        h.send("squatter", "USER s 0 * :s")  # no nick any more: not registered
        assert not h.users["squatter"].registered
        h.send("squatter", "NICK other")
        assert h.users["squatter"].registered

    def test_a_registered_holder_keeps_it(self) -> None:
        h = harness(throttle=Throttle(nick_hold=10.0))
        h.connect("alice")
        h.now += 100
        h.open("b")
        h.send("b", "NICK alice")
        assert codes(h.lines("b")) == ["433"]


class TestIpv6Groups:
    """Item 10: per-IP limits count an IPv6 /64 as one address (configurable)."""

    def test_one_slash_64_is_one_address(self) -> None:
        h = harness(limits={"max_per_ip": 2})
        assert h.open("a", ip="2001:db8::1") is not None
        assert h.open("b", ip="2001:db8::2") is not None
        assert h.open("c", ip="2001:db8::ffff") is None
        assert h.peers["c"].closed == "Too many connections from your host"
        assert h.open("d", ip="2001:db8:0:1::1") is not None  # another /64
        assert h.core.per_ip == {"2001:db8::/64": 2, "2001:db8:0:1::/64": 1}

    def test_the_prefix_is_a_setting(self) -> None:
        h = harness(
            limits={"max_per_ip": 1},
            throttle=Throttle(ipv6_prefix=128),
        )
        assert h.open("a", ip="2001:db8::1") is not None
        assert h.open("b", ip="2001:db8::2") is not None
