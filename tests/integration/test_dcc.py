"""DCC file transfer over a real relaychat server on loopback: our client to our client, and our
client against a hand-made peer that misbehaves (wrong names, sizes, stalls, lies).

Offers and answers go through the server as CTCPs; the bytes go over a direct TCP connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from relaychat.client import Client
from relaychat.client.dcc import DccManager
from relaychat.client.dccio import pull_file, push_file
from relaychat.client.dccstate import (
    DccConfig,
    DccEvent,
    DccFailed,
    DccOffered,
    DccProgress,
    DccRefused,
    State,
    Transfer,
)
from relaychat.client.errors import DccError
from relaychat.client.events import Event
from relaychat.server.listeners import Server
from tests.harness import TIMEOUT, LineClient

FAST: dict[str, Any] = dict(
    ping_interval=5.0,
    ping_timeout=5.0,
    backoff_initial=0.05,
    backoff_max=0.2,
    connect_timeout=1.0,
    ack_delay=0.02,
    pace_rate=200.0,
    pace_burst=50,
    request_timeout=TIMEOUT,
)
MiB = 1 << 20


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; returns their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MiB))
            fh.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


@asynccontextmanager
async def person(
    server: Server, nick: str, config: DccConfig | None = None
) -> AsyncIterator[tuple[Client, DccManager]]:
    host, port = server.addresses[0]
    async with (
        Client(host, port, nick=nick, **FAST) as client,
        DccManager(client, config or DccConfig(stall_timeout=TIMEOUT)) as dcc,
    ):
        yield client, dcc


async def next_event(stream: AsyncIterator[Event], kind: type[DccEvent]) -> Any:
    """The next event of ``kind`` from ``stream`` (others are skipped)."""

    async def find() -> Any:
        async for event in stream:
            if isinstance(event, kind):
                return event
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(find(), TIMEOUT * 2)


def busy_port() -> tuple[socket.socket, int]:
    """A port something listens on (so DCC cannot), and the socket holding it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock, sock.getsockname()[1]


async def transfer(
    alice: DccManager, bob: DccManager, source: Path, folder: Path, **send: Any
) -> tuple[Transfer, Transfer]:
    """alice offers ``source`` to bob, bob accepts it into ``folder``; both end."""
    offers = bob.events(DccOffered)
    sent = await alice.send("bob", source, **send)
    offer = (await next_event(offers, DccOffered)).transfer
    got = await bob.accept(offer, folder)
    return await alice.wait(sent, TIMEOUT * 4), await bob.wait(got, TIMEOUT * 4)


# --- our client to our client ---------------------------------------------------------------------


async def test_50_mib_arrives_with_the_exact_sha256(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "fifty megs.bin"  # a name with a space: quoted in the offer
    digest = random_file(source, 50 * MiB)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    async with person(server, "alice") as (_, alice), person(server, "bob") as (_, bob):
        sent, got = await transfer(alice, bob, source, inbox)
    assert got.path == inbox / "fifty megs.bin" and got.sha256 == digest
    assert sha256(got.path) == digest and got.size == sent.size == 50 * MiB
    assert sent.state is State.DONE and sent.done == sent.size and not sent.passive
    assert sorted(p.name for p in inbox.iterdir()) == ["fifty megs.bin"]  # no .part left


async def test_a_transfer_cut_at_60_percent_resumes_and_completes(
    server: Server, tmp_path: Path
) -> None:
    size = 20 * MiB + 17
    source = tmp_path / "big.bin"
    digest = random_file(source, size)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    slow = DccConfig(chunk_size=64 * 1024, progress_interval=0.001, stall_timeout=TIMEOUT)
    async with person(server, "alice") as (_, alice), person(server, "bob", slow) as (_, bob):
        offers, watch = bob.events(DccOffered), bob.events(DccProgress, DccFailed)
        first = await alice.send("bob", source)
        offer = (await next_event(offers, DccOffered)).transfer
        got = await bob.accept(offer, inbox)
        while (await next_event(watch, DccProgress)).done < size * 0.6:
            pass
        await bob.cancel(got)  # the cut: the connection goes down mid-transfer
        with pytest.raises(DccError, match=r"closed|reset"):
            await alice.wait(first, TIMEOUT * 2)
        part = inbox / "big.bin.part"
        kept = part.stat().st_size
        assert size * 0.6 <= kept < size
        assert part.read_bytes() == source.read_bytes()[:kept]  # exactly the first bytes
        # alice offers it again: bob continues from the .part, alice sends only the rest.
        again, resumed = await transfer(alice, bob, source, inbox)
    assert resumed.offset == kept and again.offset == kept
    assert resumed.sha256 == digest and sha256(inbox / "big.bin") == digest
    assert sorted(p.name for p in inbox.iterdir()) == ["big.bin"]


async def test_passive_dcc_when_the_sender_cannot_listen(server: Server, tmp_path: Path) -> None:
    blocker, port = busy_port()
    source = tmp_path / "f.bin"
    digest = random_file(source, 3 * MiB)
    cannot = DccConfig(port_range=(port, port), stall_timeout=TIMEOUT)
    with blocker:
        async with person(server, "alice", cannot) as (_, alice), person(server, "bob") as (_, bob):
            sent, got = await transfer(alice, bob, source, tmp_path)
            assert sent.passive and got.passive and got.sha256 == digest
            # Told to insist on listening, it says why it cannot.
            refused = await alice.send("bob", source, passive=False)
            with pytest.raises(DccError, match=f"cannot listen on 127.0.0.1 port {port}"):
                await alice.wait(refused, TIMEOUT)


async def test_active_dcc_when_the_receiver_cannot_listen(server: Server, tmp_path: Path) -> None:
    blocker, port = busy_port()
    source = tmp_path / "f.bin"
    digest = random_file(source, 3 * MiB)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cannot = DccConfig(port_range=(port, port), stall_timeout=TIMEOUT)
    with blocker:
        async with person(server, "alice") as (_, alice), person(server, "bob", cannot) as (_, bob):
            _, got = await transfer(alice, bob, source, inbox)
            assert not got.passive and got.sha256 == digest
            # A passive offer needs the receiver to listen: both ends learn it failed.
            offers = bob.events(DccOffered)
            asked = await alice.send("bob", source, passive=True)
            offer = (await next_event(offers, DccOffered)).transfer
            failed = await bob.accept(offer, inbox)
            with pytest.raises(DccError, match="cannot listen"):
                await bob.wait(failed, TIMEOUT)
            with pytest.raises(DccError, match="bob declined"):
                await alice.wait(asked, TIMEOUT)


async def test_passive_dcc_when_the_receiver_listens(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "f.bin"
    digest = random_file(source, 2 * MiB + 3)
    async with person(server, "alice") as (_, alice), person(server, "bob") as (_, bob):
        sent, got = await transfer(
            alice, bob, source, tmp_path / ".." / tmp_path.name, passive=True
        )
    assert sent.passive and got.sha256 == digest and got.path == tmp_path / "f-1.bin"


async def test_turbo_send_is_done_when_the_receiver_closes(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "t.bin"
    digest = random_file(source, 2 * MiB)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    async with person(server, "alice") as (_, alice), person(server, "bob") as (_, bob):
        sent, got = await transfer(alice, bob, source, inbox, turbo=True)
    assert sent.turbo and sent.done == sent.size and got.sha256 == digest


async def test_an_existing_file_is_never_overwritten(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "same.txt"
    source.write_bytes(b"new contents")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "same.txt").write_bytes(b"precious old contents")  # bigger: not a partial copy
    async with person(server, "alice") as (_, alice), person(server, "bob") as (_, bob):
        _, got = await transfer(alice, bob, source, inbox)
    assert got.path == inbox / "same-1.txt" and got.path.read_bytes() == b"new contents"
    assert (inbox / "same.txt").read_bytes() == b"precious old contents"


async def test_ipv6(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    from tests.harness import free_config

    server = Server(free_config(host="::1"))
    await server.start()
    try:
        source = tmp_path / "six.bin"
        digest = random_file(source, MiB + 6)
        async with person(server, "alice") as (ac, alice), person(server, "bob") as (_, bob):
            assert ac.local_address == "::1"  # offers carry the IPv6 address literal
            _, got = await transfer(alice, bob, source, tmp_path / ".")
            assert got.host == "::1" and got.sha256 == digest
            _, passive = await transfer(alice, bob, source, tmp_path, passive=True)
            assert passive.passive and passive.sha256 == digest
    finally:
        await server.stop()


# --- the sending side's failures ------------------------------------------------------------------


async def test_sender_failures_say_why(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "f.txt"
    source.write_bytes(b"x" * 1000)
    quick = DccConfig(offer_timeout=0.5, stall_timeout=TIMEOUT)
    async with person(server, "alice", quick) as (_, alice), person(server, "bob") as (_, bob):
        nobody = await alice.send("nobody", source)
        with pytest.raises(DccError, match=r"did not reach nobody: .*401"):
            await alice.wait(nobody, TIMEOUT)
        ignored = await alice.send("bob", source)
        with pytest.raises(DccError, match=r"did not connect within 0\.5 s"):
            await alice.wait(ignored, TIMEOUT)
        offers = bob.events(DccOffered)
        declined = await alice.send("bob", source)
        await bob.reject((await next_event(offers, DccOffered)).transfer)
        with pytest.raises(DccError, match="bob declined"):
            await alice.wait(declined, TIMEOUT)
        with pytest.raises(DccError, match="cannot read"):
            await alice.send("bob", tmp_path / "missing")
        with pytest.raises(DccError, match=r"Is a directory|not a regular file"):
            await alice.send("bob", tmp_path)
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(DccError, match="not a regular file"):
            await alice.send("bob", tmp_path / "fifo")


# --- a peer that misbehaves -----------------------------------------------------------------------


class RawPeer:
    """A hand-made DCC peer: an IRC line client plus a listening socket that serves bytes."""

    def __init__(self, irc: LineClient, nick: str) -> None:
        self.irc = irc
        self.nick = nick
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.acks: list[int] = []

    @classmethod
    async def open(cls, server: Server, nick: str = "mallory") -> RawPeer:
        irc = await LineClient.open(*server.addresses[0])
        await irc.register(nick)
        return cls(irc, nick)

    async def ctcp(self, to: str, text: str) -> None:
        await self.irc.send(f"PRIVMSG {to} :\x01{text}\x01")

    async def offer(self, to: str, name: str, size: int) -> None:
        await self.ctcp(to, f"DCC SEND {name} 2130706433 {self.port} {size}")

    async def serve(self, data: bytes, *, then: str = "wait acks", size: int = 0) -> None:
        """Accept one connection, send ``data``, then: ``wait acks`` (until ``size`` is
        acknowledged), ``close``, or ``stall`` (hold the connection open, silent)."""
        loop = asyncio.get_running_loop()
        conn, _ = await asyncio.wait_for(loop.sock_accept(self.listener), TIMEOUT)
        with conn:
            await loop.sock_sendall(conn, data)
            if then == "close":
                return
            buf = b""
            while True:
                chunk = await asyncio.wait_for(loop.sock_recv(conn, 4096), TIMEOUT * 2)
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 4:
                    self.acks.append(struct.unpack("!I", buf[:4])[0])
                    buf = buf[4:]
                if then == "wait acks" and self.acks and self.acks[-1] == size:
                    return

    async def close(self) -> None:
        self.listener.close()
        await self.irc.close()


async def test_a_path_in_the_name_never_leaves_the_directory(
    server: Server, tmp_path: Path
) -> None:
    inbox = tmp_path / "deep" / "inbox"
    inbox.mkdir(parents=True)
    mallory = await RawPeer.open(server)
    data = os.urandom(5000)
    async with person(server, "bob") as (_, bob):
        offers = bob.events(DccOffered)
        await mallory.offer("bob", "../../escaped.txt", len(data))
        offer = (await next_event(offers, DccOffered)).transfer
        assert (offer.name, offer.offered_name) == ("escaped.txt", "../../escaped.txt")
        serving = asyncio.ensure_future(mallory.serve(data, size=len(data)))
        got = await bob.wait(await bob.accept(offer, inbox), TIMEOUT)
        await serving
    await mallory.close()
    assert got.path == inbox / "escaped.txt" and got.path.read_bytes() == data
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "deep",
        "deep/inbox",
        "deep/inbox/escaped.txt",
    ]
    assert mallory.acks[-1] == len(data) and mallory.acks == sorted(mallory.acks)


async def test_bad_offers_are_refused_with_a_reason(server: Server) -> None:
    mallory = await RawPeer.open(server)
    async with person(server, "bob", DccConfig(max_size=1 << 30)) as (_, bob):
        refusals = bob.events(DccRefused, DccOffered)
        cases = [
            ("DCC SEND huge.iso 2130706433 5000 99999999999", "over the limit of 1.0 GiB"),
            ("DCC SEND x 2130706433 5000 999999999999999999999999", "size"),
            ("DCC SEND x 2130706433 0 100", "port 0 without a token"),
            ("DCC SEND .. 2130706433 5000 100", "no usable part"),
            ("DCC SEND x 2130706433 22 100", "below 1024"),
            ("DCC SEND x 0 5000 100", "not an address"),
            ("DCC CHAT chat 2130706433 5000", "not supported"),
        ]
        for text, reason in cases:
            await mallory.ctcp("bob", text)
            event = await next_event(refusals, DccEvent)
            assert isinstance(event, DccRefused) and event.nick == "mallory", text
            assert reason in event.reason, (text, event.reason)
        await mallory.irc.send("JOIN #room")
        await mallory.irc.expect(" 366 ")
        await mallory.ctcp("#room", "DCC SEND x 2130706433 5000 100")  # bob is not even there
        await mallory.ctcp("bob", "DCC SEND fine.txt 2130706433 5000 100")
        assert isinstance(await next_event(refusals, DccEvent), DccOffered)
        assert bob.transfers[-1].name == "fine.txt" and len(bob.transfers) == 1
    await mallory.close()


async def test_offers_from_nicks_not_allowed_are_ignored(server: Server) -> None:
    mallory = await RawPeer.open(server)
    eve = await RawPeer.open(server, "eve")
    allowed = DccConfig(allow_from=("EVE",))  # nicks compare case-insensitively
    async with person(server, "bob", allowed) as (_, bob):
        events = bob.events()
        await mallory.offer("bob", "spam.exe", 100)
        await mallory.ctcp("bob", "DCC SEND bad")  # not even a refusal for a stranger
        await eve.offer("bob", "wanted.txt", 100)
        event = await next_event(events, DccEvent)
        assert isinstance(event, DccOffered) and event.transfer.nick == "eve"
        assert [t.name for t in bob.transfers] == ["wanted.txt"]
    await mallory.close()
    await eve.close()


async def test_answers_from_the_wrong_nick_are_ignored(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "f.txt"
    source.write_bytes(b"secret" * 100)
    mallory = await RawPeer.open(server)
    async with person(server, "alice") as (_, alice), person(server, "bob") as (bc, bob):
        offers = bob.events(DccOffered)
        sent = await alice.send("bob", source, passive=True)
        await next_event(offers, DccOffered)
        token = sent.token
        # mallory answers alice's passive offer, with the right token, as if she were bob.
        await mallory.ctcp("alice", f"DCC SEND f.txt 2130706433 {mallory.port} 600 {token}")
        await mallory.ctcp("alice", f"DCC RESUME f.txt 0 300 {token}")
        await mallory.irc.send(f"PING :{bc.nick}")  # (the server has relayed what came before)
        await mallory.irc.expect("PONG")
        await asyncio.sleep(0.2)
        assert sent.state is State.WAITING and sent.offset == 0
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.sock_accept(mallory.listener), 0.3)
        await alice.cancel(sent)
    await mallory.close()


async def test_a_peer_that_stalls_is_given_up(server: Server, tmp_path: Path) -> None:
    mallory = await RawPeer.open(server)
    async with person(server, "bob", DccConfig(stall_timeout=0.5)) as (_, bob):
        offers = bob.events(DccOffered)
        await mallory.offer("bob", "slow.bin", 5000)
        offer = (await next_event(offers, DccOffered)).transfer
        serving = asyncio.ensure_future(mallory.serve(b"a" * 1000, then="stall"))
        got = await bob.accept(offer, tmp_path)
        with pytest.raises(DccError, match=r"stalled: no data for 0.5 s \(1000 B of 4.9 KiB"):
            await bob.wait(got, TIMEOUT)
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    await mallory.close()
    assert (tmp_path / "slow.bin.part").read_bytes() == b"a" * 1000  # kept for a resume
    assert not (tmp_path / "slow.bin").exists()


async def test_a_peer_that_lies_about_the_size(server: Server, tmp_path: Path) -> None:
    mallory = await RawPeer.open(server)
    data = os.urandom(5000)
    async with person(server, "bob") as (_, bob):
        offers = bob.events(DccOffered)
        # More than offered: refused, and no more than the offered size is written.
        await mallory.offer("bob", "more.bin", 1000)
        offer = (await next_event(offers, DccOffered)).transfer
        serving = asyncio.ensure_future(mallory.serve(data, then="close"))
        with pytest.raises(DccError, match="sent more than the 1000 bytes it offered"):
            await bob.wait(await bob.accept(offer, tmp_path), TIMEOUT)
        await serving
        assert (tmp_path / "more.bin.part").read_bytes() == data[:1000]
        # Fewer than offered, then closing: a clear failure, and what came is kept...
        await mallory.offer("bob", "less.bin", 5000)
        offer = (await next_event(offers, DccOffered)).transfer
        serving = asyncio.ensure_future(mallory.serve(data[:1000], then="close"))
        with pytest.raises(DccError, match=r"closed the connection after 1000 B of 4.9 KiB"):
            await bob.wait(await bob.accept(offer, tmp_path), TIMEOUT)
        await serving
        assert (tmp_path / "less.bin.part").read_bytes() == data[:1000]
        # ... so that offering it again resumes: bob asks for the rest with DCC RESUME.
        await mallory.offer("bob", "less.bin", 5000)
        offer = (await next_event(offers, DccOffered)).transfer
        accepting = asyncio.ensure_future(bob.accept(offer, tmp_path))
        await mallory.irc.expect(
            rf"PRIVMSG mallory :\x01DCC RESUME less.bin {mallory.port} 1000\x01"
        )
        await mallory.ctcp("bob", f"DCC ACCEPT less.bin {mallory.port} 1000")
        serving = asyncio.ensure_future(mallory.serve(data[1000:], size=5000))
        got = await bob.wait(await accepting, TIMEOUT)
        await serving
    await mallory.close()
    assert got.offset == 1000 and got.path == tmp_path / "less.bin"
    assert got.path.read_bytes() == data and got.sha256 == hashlib.sha256(data).hexdigest()


# --- past 4 GiB -----------------------------------------------------------------------------------


async def test_acknowledgements_across_the_4_gib_wrap(tmp_path: Path) -> None:
    """A real transfer of the bytes around the 32-bit wrap of a 4 GiB + 2 MiB file (sparse, so
    nothing big is written): resumed 1 MiB before 4 GiB, both ends agree it is complete."""
    size, start = (4 << 30) + 2 * MiB, (4 << 30) - MiB
    source, target = tmp_path / "huge.bin", tmp_path / "huge.bin.part"
    tail = os.urandom(size - start)
    with source.open("wb") as fh:
        fh.truncate(size)
        fh.seek(start)
        fh.write(tail)
    with target.open("wb") as fh:
        fh.truncate(start)
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    sending = socket.create_connection(listener.getsockname())
    receiving, _ = await loop.sock_accept(listener)
    listener.close()
    sending.setblocking(False)
    receiving.setblocking(False)
    fd = os.open(target, os.O_WRONLY)
    os.lseek(fd, start, os.SEEK_SET)
    hasher = hashlib.sha256()  # (of the tail only: hashing 4 GiB of zeros is not the point)
    acked: list[int] = []
    named: list[str] = []

    async def complete(digest: str) -> None:
        named.append(digest)

    with source.open("rb") as fh:
        await asyncio.wait_for(
            asyncio.gather(
                push_file(
                    sending,
                    fh,
                    start,
                    size,
                    turbo=False,
                    stall_timeout=TIMEOUT,
                    chunk_size=256 * 1024,
                    on_progress=acked.append,
                ),
                pull_file(
                    receiving,
                    fd,
                    hasher,
                    start,
                    size,
                    turbo=False,
                    stall_timeout=TIMEOUT,
                    chunk_size=256 * 1024,
                    on_progress=lambda pos: None,
                    on_complete=complete,
                ),
            ),
            TIMEOUT * 4,
        )
    assert acked[-1] == size and acked == sorted(acked) and acked[0] > start
    assert any(a > 4 << 30 for a in acked[:-1]) or acked[-1] > 4 << 30
    assert named == [hashlib.sha256(tail).hexdigest()]
    with target.open("rb") as fh:
        fh.seek(start)
        assert fh.read() == tail
    assert target.stat().st_size == size


async def test_a_passive_answer_cannot_aim_us_at_a_service(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "f.txt"
    source.write_bytes(b"data")
    mallory = await RawPeer.open(server)
    async with person(server, "alice") as (_, alice):
        sent = await alice.send("mallory", source, passive=True)
        match = await mallory.irc.expect(r"PRIVMSG mallory :\x01DCC SEND f\.txt \S+ 0 4 (\d+)\x01")
        await mallory.ctcp("alice", f"DCC SEND f.txt 2130706433 25 4 {match.group(1)}")
        with pytest.raises(DccError, match="unusable address: port 25 is below 1024"):
            await alice.wait(sent, TIMEOUT)
    await mallory.close()
