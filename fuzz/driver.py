"""The fuzz driver: bytes -> a run of many clients against an in-memory core, invariants checked.

Rules:
1. Any byte string is a valid run. The bytes are read as a program: each step picks an action
   (open a connection, send a line built from a grammar or raw bytes, lose a connection, move
   the clock, finish account jobs, commit history), with its arguments taken from the next bytes.
   libFuzzer's mutations then explore command sequences, not just single lines.
2. After every step :func:`check_core` recounts the core's state from scratch and compares it with
   the indexes and counters the core keeps: a mismatch, an exception escaping the core, an error
   logged by the core (a handler crashed), a send to a closed peer, or an output line that does
   not parse or is too long is a finding, raised as :class:`Finding`.
3. Nothing here is random: the same bytes always give the same run (libFuzzer needs that to
   minimise and replay a crash).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from dataclasses import replace
from typing import Any

from argon2 import PasswordHasher

import relaychat.passwords
import relaychat.server  # first: importing it fills the command table
from relaychat.accounts.store import AccountStore
from relaychat.accounts.worker import QueueWorker
from relaychat.config import Config, Oper, load_config
from relaychat.errors import InputTooLong, ProtocolError
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.lines import LineBuffer, Overlong
from relaychat.protocol.message import MAX_BODY_BYTES, MAX_LINE_BYTES, parse_bytes
from relaychat.server.accounts import AccountService
from relaychat.server.chanlists import list_entries
from relaychat.server.core import COMMANDS, ServerCore
from relaychat.server.rehash import apply_config
from relaychat.server.state import User
from relaychat.store.memory import MemoryHistory

__all__ = ["Finding", "World", "check_core", "run_bytes"]

# Hashing is deliberately slow (argon2: ~0.2 s); the fuzzer needs thousands of runs a second, so
# while a World exists it hashes with the cheapest parameters (and SCRAM with few rounds). What is
# fuzzed is the logic around the hash, not argon2. Restored by World.close().
_CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
_FAST_HASH = _CHEAP_HASHER.hash("hunter2")


def _cheap_hashing(on: bool, saved: dict[str, Any]) -> None:
    from relaychat.accounts import scram
    from relaychat.server.commands import accounts

    if on:
        saved["hasher"] = relaychat.passwords._hasher
        saved["derive"] = accounts.derive_credentials
        relaychat.passwords._hasher = _CHEAP_HASHER
        accounts.derive_credentials = functools.partial(scram.derive_credentials, iterations=16)  # type: ignore[assignment]
    elif saved:
        relaychat.passwords._hasher = saved.pop("hasher")
        accounts.derive_credentials = saved.pop("derive")


class Finding(AssertionError):
    """An invariant was broken: the message says which, with the steps that led there."""


class _Errors(logging.Handler):
    """Collects ERROR records of the ``relaychat`` loggers (a handler that crashed logs one)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f": {type(exc).__name__}: {exc}"
        self.records.append(text)


_ERRORS = _Errors()


class FuzzPeer:
    """A Peer that checks what the core does with it: complete lines only, nothing after close."""

    __slots__ = ("closed", "name", "problems", "received")

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed: str | None = None
        self.problems: list[str] = []
        self.received = 0

    def send(self, data: bytes) -> None:
        if self.closed is not None:
            self.problems.append(f"{self.name}: send after close: {data[:80]!r}")
            return
        self.received += 1
        if not data.endswith(b"\r\n"):
            self.problems.append(f"{self.name}: output not ending in CR-LF: {data[-80:]!r}")
        for line in data.split(b"\r\n")[:-1]:
            _check_output_line(self, line)

    def close(self, error: str) -> None:
        if self.closed is not None:
            self.problems.append(f"{self.name}: closed twice")
        self.closed = error
        if "\r" in error or "\n" in error or "\0" in error:
            self.problems.append(f"{self.name}: ERROR text holds a line break: {error!r}")


def _check_output_line(peer: FuzzPeer, line: bytes) -> None:
    """Every line the server sends must parse, and fit 512 bytes after its tags."""
    if not line:
        peer.problems.append(f"{peer.name}: empty output line")
        return
    body = line
    if line[:1] == b"@":
        space = line.find(b" ")
        body = line[space + 1 :] if space > 0 else b""
    if len(body) + 2 > MAX_BODY_BYTES + 2:
        peer.problems.append(f"{peer.name}: output line of {len(body)} bytes: {line[:120]!r}")
        return
    try:
        parse_bytes(line)
    except ProtocolError as exc:
        peer.problems.append(f"{peer.name}: unparsable output {line[:120]!r}: {exc}")


# --- the grammar ---------------------------------------------------------------------------------

NICKS = ("alice", "bob", "Carol", "c[a]rol", "ALICE", "dave", "a{b}", "*", "0", "-x", "n" * 40, "")
CHANNELS = (
    "#a",
    "#A",
    "#b",
    "#chan",
    "#Chan",
    "#a,#b",
    "#",
    "#a,#b,#c,#d,#e,#f",
    "0",
    "&x",
    "#" * 70,
)
MODES = (
    "+o", "-o", "+v", "+b", "-b", "+k", "-k", "+l", "-l", "+i", "-i", "+m", "+n", "-n", "+s", "+t",
    "+e", "-e", "+I", "-I", "+q", "-q", "+ob-v", "+beIq", "+imnst", "-imnst", "+lk", "+x", "+s",
    "+o-o+o", "+bbbbb", "",
)  # fmt: skip
MASKS = (
    "*!*@*", "a*!*@*", "*!~alice@*", "*@127.0.0.1", "*@10.0.0.0/8", "*!*@2001:db8::*", "bob",
    "*@*", "~carol@10.0.0.2", "2001:db8::/32", "10.0.0.1", "127.0.0.0/8", "::1", "*a*a*a*b",
)  # fmt: skip
TEXTS = (
    "hi", ":x", "", "a b c", "\x01ACTION waves\x01", "x" * 400, "é ü", "secret", "1", "10", "-1",
    "99999999999", "302", "LS", "REQ", "END", "LIST", "PLAIN", "SCRAM-SHA-256", "EXTERNAL", "*",
    "+", "AGFsaWNlAGh1bnRlcjI=", "d", "k", "1h", "30", "msgid=x", "timestamp=2026-01-01T00:00:00Z",
    "LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN", "TARGETS", "o", "hunter2", "root",
)  # fmt: skip
CAPS = (
    "sasl", "message-tags", "server-time", "echo-message", "labeled-response", "batch",
    "cap-notify", "extended-join", "multi-prefix", "userhost-in-names", "away-notify",
    "account-notify", "account-tag", "chghost", "invite-notify", "setname", "standard-replies",
    "draft/chathistory", "draft/account-registration", "-echo-message", "bogus",
)  # fmt: skip
TAGS = (b"", b"@label=L1 ", b"@+typing=active ", b"@+a=" + b"x" * 5000 + b" ", b"@label=; ")
IPS = ("127.0.0.1", "10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::2", "::1")
CLOCK_STEPS = (0.5, 5.0, 31.0, 61.0, 91.0, 200.0, 86_400.0 * 40)
MAX_CONNECTIONS = 8
MAX_STEPS = 400


class Reader:
    """Reads a fuzz input as a stream of choices; past the end every choice is 0."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.data)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def pick(self, seq: Any) -> Any:
        return seq[self.byte() % len(seq)]

    def raw(self, limit: int) -> bytes:
        n = min(self.byte() * 4, limit)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def fuzz_config() -> Config:
    """A config with small limits (so the fuzzer reaches them) and an oper."""
    base = load_config(environ={}, overrides={"data_dir": "/nonexistent-relaychat-fuzz"})
    limits = replace(
        base.limits,
        max_clients=MAX_CONNECTIONS - 1,
        max_per_ip=3,
        chanlimit=3,
        maxbans=3,
        maxtargets=3,
        whowas=4,
        nicklen=12,
    )
    return replace(base, limits=limits, opers=(Oper("root", _FAST_HASH),), motd="hello\nworld")


_CONFIG = fuzz_config()
#: Configurations a rehash may switch to: the MOTD, bounds, opers and account registration
#: change (so CAP NEW/DEL and the WHOWAS bound are exercised).
_VARIANTS = (
    _CONFIG,
    replace(
        _CONFIG,
        motd="",
        opers=(),
        accounts=replace(_CONFIG.accounts, registration=False),
        limits=replace(_CONFIG.limits, whowas=1, maxbans=1, chanlimit=1, nicklen=9),
    ),
    replace(_CONFIG, password="sekrit", limits=replace(_CONFIG.limits, max_per_ip=1)),
)
_VERBS = [*sorted(COMMANDS), "FOO", "", "001"]


class World:
    """One fuzz run: a core, its accounts and history in memory, and up to 8 connections."""

    def __init__(self, config: Config | None = None) -> None:
        self.now = 1_000_000.0
        self.config = config or _CONFIG
        self.core = ServerCore(self.config, self.now)
        self.core.history = MemoryHistory(max_age_days=30, max_per_target=20)
        self.core.extra_caps["draft/chathistory"] = ""
        self.worker = QueueWorker(lambda: self.now, limit=4)
        self.accounts = AccountService(
            self.core, AccountStore.open(":memory:"), self.worker, external=True
        )
        self.accounts.attach()
        self.users: list[User] = []
        self.peers: dict[int, FuzzPeer] = {}
        self.buffers: dict[int, LineBuffer] = {}
        self.steps: list[str] = []
        self.chanlimit = self.config.limits.chanlimit
        self.maxbans = self.config.limits.maxbans
        self._saved: dict[str, Any] = {}
        _cheap_hashing(True, self._saved)
        _ERRORS.records.clear()
        logging.getLogger("relaychat").addHandler(_ERRORS)

    # --- the actions -------------------------------------------------------------------------

    def step(self, r: Reader) -> None:
        action = r.byte() % 18
        if action == 0 or not self.users:
            self.open(r.pick(IPS), r.byte())
        elif action <= 9:
            user = r.pick(self.users)
            self.send(user, self.grammar_line(r))
        elif action == 10:
            user = r.pick(self.users)
            self.feed(user, r.raw(MAX_LINE_BYTES + 64))
        elif action == 11:
            user = r.pick(self.users)
            self.steps.append(f"lose #{user.id}")
            self.core.now = self.now
            self.core.disconnect(user, "Connection closed")
        elif action == 12:
            self.now += r.pick(CLOCK_STEPS)
            self.steps.append(f"tick +{self.now}")
            self.core.tick(self.now)
        elif action == 13:
            self.steps.append("accounts: run jobs")
            self.worker.run_pending()
        elif action == 14:
            self.steps.append("history: commit")
            assert self.core.history is not None
            self.core.history.commit_pending()
        elif action == 15:
            user = r.pick(self.users)
            self.register(user, r.pick(NICKS) or "zed")
        elif action == 16:  # the oper's commands (bans, STATS, REHASH, overrides) need one
            user = r.pick(self.users)
            self.send(user, b"OPER root hunter2")
        else:
            variant = r.pick(_VARIANTS)
            self.steps.append(f"rehash to variant {_VARIANTS.index(variant)}")
            self.core.now = self.now
            apply_config(self.core, variant)
            # A smaller bound applies to what comes next: what is already there may exceed it.
            self.chanlimit = max(self.chanlimit, variant.limits.chanlimit)
            self.maxbans = max(self.maxbans, variant.limits.maxbans)
        self.users = [u for u in self.users if not u.quitting]

    def open(self, ip: str, certfp: int) -> None:
        name = f"c{len(self.peers)}"
        peer = FuzzPeer(name)
        self.steps.append(f"open {name} from {ip}")
        user = self.core.accept(peer, ip, self.now)
        if user is None:
            if peer.closed is None:
                raise Finding("a refused connection was not closed")
            return
        if certfp % 3 == 0:
            user.certfp = "%064x" % certfp
        self.users.append(user)
        self.peers[user.id] = peer
        self.buffers[user.id] = LineBuffer(MAX_LINE_BYTES)

    def register(self, user: User, nick: str) -> None:
        self.send(user, b"NICK " + nick.encode())
        self.send(user, b"USER u 0 * :Real Name")

    def grammar_line(self, r: Reader) -> bytes:
        verb = r.pick(_VERBS)
        params: list[str] = []
        for _ in range(r.byte() % 6):
            kind = r.byte() % 7
            pool = (NICKS, CHANNELS, MODES, MASKS, TEXTS, CAPS, TEXTS)[kind]
            params.append(r.pick(pool))
        tags = r.pick(TAGS) if r.byte() % 4 == 0 else b""
        words = [verb, *params[:-1]]
        line = " ".join(w for w in words if w)
        if params:
            line += " :" + params[-1]
        return tags + line.encode()

    def send(self, user: User, line: bytes) -> None:
        """Feed one line as the transport would: parse, then the core (or its protocol error)."""
        if user.quitting:
            return
        self.steps.append(f"#{user.id} <- {line[:100]!r}")
        self.core.now = self.now
        try:
            msg = parse_bytes(line)
        except ProtocolError as exc:
            self.core.protocol_error(user, exc, self.now)
            return
        self.core.handle(user, msg, self.now)

    def feed(self, user: User, data: bytes) -> None:
        """Raw bytes through the connection's line buffer, as a socket would deliver them."""
        if user.quitting:
            return
        self.steps.append(f"#{user.id} <- raw {data[:60]!r}")
        for item in self.buffers[user.id].feed(data):
            if user.quitting:
                return
            if isinstance(item, Overlong):
                self.core.protocol_error(user, InputTooLong(item.size, MAX_LINE_BYTES), self.now)
            else:
                self.send(user, item)

    def close(self) -> None:
        """Free what a run holds outside the heap (the SQLite store); the core and its accounts
        service (``core.parts``) are freed with the run."""
        self.accounts.store.close()
        self.core.tick_hooks.clear()
        logging.getLogger("relaychat").removeHandler(_ERRORS)
        _cheap_hashing(False, self._saved)

    # --- checking ----------------------------------------------------------------------------

    def check(self) -> None:
        problems: list[str] = []
        for peer in self.peers.values():
            problems += peer.problems
        problems += _ERRORS.records
        problems += check_core(self.core, chanlimit=self.chanlimit, maxbans=self.maxbans)
        if problems:
            trail = "\n  ".join(self.steps[-25:])
            raise Finding("; ".join(problems[:5]) + f"\nlast steps:\n  {trail}")


def check_core(
    core: ServerCore, *, chanlimit: int | None = None, maxbans: int | None = None
) -> list[str]:
    """Recount the core's state and compare it with its indexes and counters.

    Args:
        chanlimit, maxbans: the largest bounds in force since the start (a rehash may lower
            them; what exists already may exceed the new ones). Default: the current ones.

    Returns:
        Every inconsistency found, as text (empty when the state is consistent).
    """
    bad: list[str] = []
    conns = core.connections
    chanlimit = chanlimit or core.config.limits.chanlimit
    maxbans = maxbans or core.config.limits.maxbans
    for uid, user in conns.items():
        if user.id != uid:
            bad.append(f"connections[{uid}] holds {user!r}")
        if user.quitting:
            bad.append(f"{user!r} is quitting but still connected")
        if user.registered and core.users.get(user.key) is not user:
            bad.append(f"registered {user!r} is not in the nick index under {user.key!r}")
        if user.key != irc_lower(user.nick) and user.nick != "*":
            bad.append(f"{user!r} has key {user.key!r}")
        if len(user.channels) > chanlimit:
            bad.append(f"{user!r} is in {len(user.channels)} channels")
        for key, channel in user.channels.items():
            if core.channels.get(key) is not channel:
                bad.append(f"{user!r} lists {channel!r} which is not in the channel index")
            if user not in channel.members:
                bad.append(f"{user!r} lists {channel!r} but is not a member")
            if not user.registered:
                bad.append(f"unregistered {user!r} is in {channel!r}")
    for key, user in core.users.items():
        if conns.get(user.id) is not user:
            bad.append(f"nick index {key!r} holds {user!r}, which is not connected")
        if user.key != key:
            bad.append(f"nick index {key!r} holds {user!r} whose key is {user.key!r}")
    for key, channel in core.channels.items():
        if channel.key != key or irc_lower(channel.name) != key:
            bad.append(f"channel index {key!r} holds {channel!r}")
        if not channel.members:
            bad.append(f"{channel!r} exists with no members")
        if list_entries(channel) > maxbans:
            bad.append(f"{channel!r} has {list_entries(channel)} list entries (b, e, I, q)")
        for member in channel.members:
            if conns.get(member.id) is not member:
                bad.append(f"{channel!r} has member {member!r}, which is not connected")
            if member.channels.get(key) is not channel:
                bad.append(f"{channel!r} has member {member!r}, which does not list it")
        sends, tagged = channel.fanout()
        if len(sends) + len(tagged) != len(channel.members):
            bad.append(f"{channel!r} fan-out cache is stale")
    registered = [u for u in conns.values() if u.registered]
    if core.registered_count != len(registered):
        bad.append(f"registered_count {core.registered_count} != {len(registered)}")
    opers = sum(1 for u in conns.values() if u.is_oper)
    if core.oper_count != opers:
        bad.append(f"oper_count {core.oper_count} != {opers}")
    invisible = sum(1 for u in conns.values() if "i" in u.modes)
    if core.invisible_count != invisible:
        bad.append(f"invisible_count {core.invisible_count} != {invisible}")
    per_ip = Counter(u.ip_group for u in conns.values())  # per address group (throttle.py)
    if core.per_ip != dict(per_ip):
        bad.append(f"per_ip {core.per_ip} != {dict(per_ip)}")
    if core.max_users < core.registered_count:
        bad.append("max_users below the current count")
    if len(conns) > core.config.limits.max_clients:
        bad.append(f"{len(conns)} connections over max_clients")
    return bad


def run_bytes(data: bytes) -> None:
    """One fuzz input: build a world, run the program ``data`` encodes, check after each step.

    Raises:
        Finding: an invariant broke (or an exception escaped the core, which is re-raised).
    """
    world = World()
    try:
        r = Reader(data)
        steps = 0
        while r.more() and steps < MAX_STEPS:
            world.step(r)
            world.check()
            steps += 1
        # The end of a run: everyone leaves, and the state must be empty again.
        world.core.shutdown()
        world.check()
        if world.core.connections or world.core.channels or world.core.users:
            raise Finding("state left after every connection closed")
    finally:
        world.close()
