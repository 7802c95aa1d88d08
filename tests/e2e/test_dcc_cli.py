"""``relaychat send-file`` and ``relaychat receive-files`` as a script runs them: real
subprocesses against the real server on loopback. What they print and their exit codes are
the contract (README: "File transfer")."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

from relaychat.server.listeners import Server
from tests.harness import TIMEOUT, LineClient


def env_for(tmp_path: Path, dcc: str = "") -> dict[str, str]:
    config = tmp_path / "client.toml"
    config.write_text(f"connect_timeout = 3.0\n[dcc]\nstall_timeout = 10\n{dcc}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")}
    env["RELAYCHAT_CLIENT_CONFIG"] = str(config)
    return env


async def start(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relaychat",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT * 6)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def where(server: Server) -> str:
    host, port = server.addresses[0]
    return f"{host}:{port}"


async def receiver(
    env: dict[str, str], server: Server, inbox: Path, *args: str
) -> asyncio.subprocess.Process:
    """``receive-files`` as bob, once it says it is waiting."""
    proc = await start(
        env, "receive-files", where(server), "--nick", "bob", "--dir", str(inbox), *args
    )
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), TIMEOUT * 2)
    assert b"bob waiting for files from" in line, line
    return proc


async def test_send_file_to_receive_files_and_resume(server: Server, tmp_path: Path) -> None:
    env = env_for(tmp_path)
    data = os.urandom(3 * 1024 * 1024 + 5)
    source = tmp_path / "report 2024.bin"
    source.write_bytes(data)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    # A partial copy left by an interrupted transfer: receive-files continues it.
    (inbox / "report 2024.bin.part").write_bytes(data[:1_000_000])
    recv = await receiver(env, server, inbox, "--from", "alice,carol", "--count", "2")
    code, out, err = await finish(
        await start(env, "send-file", where(server), "bob", str(source), "--nick", "alice", "-q")
    )
    assert (code, err) == (0, ""), err
    sent = json.loads(out)
    assert sent["to"] == "bob" and sent["size"] == len(data)
    assert sent["resumed_from"] == 1_000_000  # only the rest went over the wire
    # A second file, with a passive offer (the receiver listens).
    other = tmp_path / "other.txt"
    other.write_bytes(b"hello " * 1000)
    code, out, err = await finish(
        await start(
            env, "send-file", where(server), "bob", str(other), "--nick", "carol", "--passive"
        )
    )
    assert code == 0, err
    code, out, err = await finish(recv)
    assert code == 0, err
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["from"] == "alice" and first["name"] == "report 2024.bin"
    assert (
        first["sha256"] == hashlib.sha256(data).hexdigest() == sent.get("sha256", first["sha256"])
    )
    assert first["resumed_from"] == 1_000_000 and first["size"] == len(data)
    assert Path(first["path"]).read_bytes() == data
    assert second["from"] == "carol" and Path(second["path"]).read_bytes() == other.read_bytes()
    assert sorted(p.name for p in inbox.iterdir()) == ["other.txt", "report 2024.bin"]
    assert "receiving report 2024.bin (3.0 MiB) from alice, resuming at 976.6 KiB" in err


async def test_failures_are_one_line_and_an_exit_code(server: Server, tmp_path: Path) -> None:
    env = env_for(tmp_path)
    source = tmp_path / "f.txt"
    source.write_text("data")
    # The file to send does not exist: a usage error, before connecting.
    code, out, err = await finish(
        await start(env, "send-file", where(server), "bob", str(tmp_path / "nope"), "--nick", "a")
    )
    assert (code, out) == (2, "") and err == f"relaychat: {tmp_path / 'nope'} does not exist\n"
    # Nobody by that nick: not delivered.
    code, out, err = await finish(
        await start(env, "send-file", where(server), "ghost", str(source), "--nick", "a")
    )
    assert (code, out) == (1, "")
    assert err.startswith("relaychat: f.txt not sent to ghost: the offer did not reach ghost")
    assert "401" in err and err.count("\n") == 1
    # The peer does not accept in time.
    quiet = await LineClient.open(*server.addresses[0])
    await quiet.register("quiet")
    code, out, err = await finish(
        await start(
            env, "send-file", where(server), "quiet", str(source), "--nick", "a", "--timeout", "0.5"
        )
    )
    assert (code, out) == (1, "")
    assert err == "relaychat: f.txt not sent to quiet: quiet did not connect within 0.5 s\n"
    await quiet.expect(r"PRIVMSG quiet :\x01DCC SEND f\.txt 2130706433 \d+ 4\x01")
    await quiet.close()
    # receive-files: no such directory; and --count not reached within --timeout.
    code, out, err = await finish(
        await start(env, "receive-files", where(server), "--nick", "b", "--dir", "/nonexistent")
    )
    assert (code, out, err) == (2, "", "relaychat: /nonexistent is not a directory\n")
    proc = await start(
        env,
        "receive-files",
        where(server),
        "--nick",
        "b",
        "--count",
        "1",
        "--timeout",
        "0.5",
        "--dir",
        str(tmp_path),
        "-q",
    )
    code, out, err = await finish(proc)
    assert (code, out, err) == (1, "", "relaychat: received 0 of 1 files within 0.5 s\n")
    # No server: the connection exit code.
    code, out, err = await finish(
        await start(env, "send-file", "127.0.0.1:1", "bob", str(source), "--nick", "a")
    )
    assert code == 3 and err.startswith("relaychat: cannot connect to 127.0.0.1:1")


async def test_receive_files_refuses_and_reports_bad_offers(server: Server, tmp_path: Path) -> None:
    env = env_for(tmp_path, 'max_size = "1M"\n')
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    recv = await receiver(env, server, inbox, "--timeout", str(TIMEOUT * 2))
    mallory = await LineClient.open(*server.addresses[0])
    await mallory.register("mallory")
    await mallory.send("PRIVMSG bob :\x01DCC SEND big.iso 2130706433 5000 5000000\x01")
    await mallory.send("PRIVMSG bob :\x01DCC SEND x.txt 2130706433 0 10\x01")
    assert recv.stderr is not None
    lines = [
        (await asyncio.wait_for(recv.stderr.readline(), TIMEOUT)).decode().rstrip()
        for _ in range(2)
    ]
    assert lines == [
        "relaychat: refused a DCC offer from mallory: 4.8 MiB is over the limit of 1.0 MiB",
        "relaychat: refused a DCC offer from mallory: port 0 without a token (a passive offer "
        "needs one)",
    ]
    recv.terminate()
    code, out, _ = await finish(recv)
    assert (code, out) == (0, "") and list(inbox.iterdir()) == []
    await mallory.close()
