"""`relaychat send` and `relaychat tail` as a script runs them: real subprocesses
(`python -m relaychat ...`) against the real server over loopback. What they print and their
exit codes are the interface under test; another user is a raw :class:`LineClient`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from relaychat.server.listeners import Server
from tests.harness import TIMEOUT, LineClient, ServerProcess

ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture
def client_env(tmp_path: Path) -> dict[str, str]:
    """No RELAYCHAT_* from the outside; a client config file of the test's own."""
    config = tmp_path / "client.toml"
    config.write_text("connect_timeout = 2.0\nregistration_timeout = 3.0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")}
    env["RELAYCHAT_CLIENT_CONFIG"] = str(config)
    return env


async def run(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run ``python -m relaychat ARGS`` to the end; returns (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relaychat",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    data = stdin.encode() if stdin is not None else None
    out, err = await asyncio.wait_for(proc.communicate(data), TIMEOUT * 3)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def reader(server: Server, channel: str, nick: str = "reader") -> LineClient:
    client = await LineClient.open(*server.addresses[0])
    await client.register(nick)
    await client.send(f"JOIN {channel}")
    await client.expect(f" 366 {nick} {channel} ")
    return client


def address(server: Server) -> str:
    host, port = server.addresses[0]
    return f"{host}:{port}"


async def test_send_one_message_and_each_line_of_stdin(
    server: Server, client_env: dict[str, str]
) -> None:
    feed = await reader(server, "#feed")
    code, out, err = await run(client_env, "send", address(server), "#feed", "build 42 is out")
    assert (code, out, err) == (0, "", "")
    await feed.expect(r"^:\S+ PRIVMSG #feed :build 42 is out$")
    stdin = "first line\n\nsecond line\n\x01ACTION waves\x01\n"
    code, out, err = await run(client_env, "send", address(server), "#feed", stdin=stdin)
    assert (code, err) == (0, "")
    await feed.expect(r"PRIVMSG #feed :first line$")
    await feed.expect(r"PRIVMSG #feed :second line$")  # the empty line was skipped
    await feed.expect("PRIVMSG #feed :\x01ACTION waves\x01$")
    # To a nick, as a NOTICE, without joining anything.
    code, _, err = await run(client_env, "send", address(server), "reader", "psst", "--notice")
    assert (code, err) == (0, "")
    await feed.expect(r"NOTICE reader :psst$")
    await feed.close()


async def test_send_failures_are_one_line_and_an_exit_code(
    make_server: Callable[..., Any], client_env: dict[str, str], tmp_path: Path
) -> None:
    open_srv: Server = await make_server()
    locked: Server = await make_server(password="sesame")
    taken = await reader(open_srv, "#c", nick="taken")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    fast_tls = tmp_path / "tls.toml"
    fast_tls.write_text("connect_timeout = 0.5\n")
    cases: dict[str, tuple[int, str, tuple[str, ...]]] = {
        "refused": (3, "cannot connect to 127.0.0.1:%d: connection refused" % closed_port, (
            "send", f"127.0.0.1:{closed_port}", "#c", "hi")),
        "tls": (3, "TLS|is that port a TLS port", (
            "send", address(open_srv), "#c", "hi", "--tls", "--config", str(fast_tls))),
        "nick in use": (3, "the nick taken is already in use", (
            "send", address(open_srv), "#c", "hi", "--nick", "taken")),
        "wrong password": (3, "refused by the server: Password incorrect", (
            "send", address(locked), "#c", "hi", "--password", "open-sesame")),
        "no password": (3, "refused by the server", ("send", address(locked), "#c", "hi")),
        "no such nick": (1, "1 of 1 messages not delivered: refused by the server: 401", (
            "send", address(open_srv), "nobody", "hi")),
        "tail refused": (3, "connection refused", (
            "tail", f"127.0.0.1:{closed_port}", "#c")),
        "chat refused": (3, "connection refused", ("chat", f"127.0.0.1:{closed_port}")),
        "chat nick in use": (3, "the nick taken is already in use", (
            "chat", address(open_srv), "--nick", "taken")),
        "bad target": (2, "'#a,#b' is not one channel or nick", (
            "send", address(open_srv), "#a,#b", "hi")),
        "bad config": (2, "configuration error: .*nope: unknown setting", (
            "send", address(open_srv), "#c", "hi", "--config", str(_bad_config(tmp_path)))),
    }  # fmt: skip
    results = await asyncio.gather(*(run(client_env, *args) for _, _, args in cases.values()))
    for (name, (want_code, want_err, _)), (code, out, err) in zip(
        cases.items(), results, strict=True
    ):
        assert code == want_code, (name, code, err)
        assert out == "", name
        assert "Traceback" not in err, (name, err)
        last = err.strip().splitlines()[-1]
        assert re.search(want_err, last), (name, last)
        if want_code != 2:  # (argparse adds its usage line before the error)
            assert len(err.strip().splitlines()) == 1, (name, err)
            assert last.startswith("relaychat: "), (name, last)
    await taken.close()


def _bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text('nope = "x"\n')
    return path


async def _start_tail(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relaychat",
        "tail",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def _line(stream: asyncio.StreamReader | None) -> str:
    assert stream is not None
    raw = await asyncio.wait_for(stream.readline(), TIMEOUT)
    assert raw, "the stream ended"
    return raw.decode().rstrip("\n")


async def _stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    """SIGINT, as Ctrl+C does; returns the exit code and what was left on stderr."""
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_tail_prints_the_channel_as_json_and_as_text(
    server: Server, client_env: dict[str, str]
) -> None:
    tail = await _start_tail(client_env, address(server), "#feed", "--json", "--nick", "tailer")
    text_tail = await _start_tail(client_env, address(server), "#FEED", "--nick", "texter")
    bob = await reader(server, "#feed", nick="bob")
    first = (await bob.expect(r"^:(tailer|texter)!\S+ JOIN #feed")).group(1)
    await bob.expect(r"^:%s!\S+ JOIN #feed" % ({"tailer", "texter"} - {first}).pop())
    await bob.send("JOIN #other")
    await bob.send("PRIVMSG #other :not for the tail")
    await bob.send('PRIVMSG #feed :hello, "world" ünïcode')
    await bob.send("PRIVMSG #feed :\x01ACTION waves\x01")
    await bob.send("NOTICE #feed :a notice")
    records = [json.loads(await _line(tail.stdout)) for _ in range(3)]
    for record in records:
        assert ISO_TIME.match(record.pop("time")), record
        assert record.pop("msgid")  # the server gives every message an id
    assert records == [
        {"nick": "bob", "target": "#feed", "text": 'hello, "world" ünïcode', "kind": "message"},
        {"nick": "bob", "target": "#feed", "text": "waves", "kind": "action"},
        {"nick": "bob", "target": "#feed", "text": "a notice", "kind": "notice"},
    ]
    plain = [await _line(text_tail.stdout) for _ in range(3)]
    stamp = r"\d\d:\d\d:\d\d"
    assert re.fullmatch(stamp + r' <bob> hello, "world" ünïcode', plain[0]), plain
    assert re.fullmatch(stamp + r" \* bob waves", plain[1]), plain
    assert re.fullmatch(stamp + r" -bob- a notice", plain[2]), plain
    for proc in (tail, text_tail):
        code, err = await _stop(proc)
        assert code == 0 and "Traceback" not in err, err
    await bob.expect(r"^:tailer!\S+ QUIT")
    await bob.close()


async def _offers_history(srv: ServerProcess) -> bool:
    probe = await LineClient.open(srv.host, srv.port)
    await probe.send("CAP LS 302")
    line = (await probe.expect(r" CAP \* LS ")).string
    await probe.close()
    return "chathistory" in line


@pytest.mark.parametrize("keep_history", [True, False], ids=["history", "no-history"])
async def test_tail_survives_a_server_restart(
    tmp_path: Path, client_env: dict[str, str], keep_history: bool
) -> None:
    """The server stops and starts again on the same port (same data directory) in the middle
    of a tail. The tail reconnects by itself and keeps printing, never a line twice. When the
    server offers its history (chathistory), what was said while the tail was away is printed
    too, in order; without it, that is the gap."""
    data = str(tmp_path / "data")
    flags = ("--data-dir", data) + (() if keep_history else ("--no-history-enabled",))
    first = await ServerProcess.start(*flags)
    port = first.port
    config = tmp_path / "client.toml"  # reconnect within about a second
    config.write_text("connect_timeout = 2.0\nbackoff_initial = 0.5\nbackoff_max = 1.0\n")
    env = {**client_env, "RELAYCHAT_CLIENT_CONFIG": str(config)}
    tail = await _start_tail(env, f"127.0.0.1:{port}", "#feed", "--json", "--nick", "tailer")
    second: ServerProcess | None = None
    try:
        bob = await LineClient.open(first.host, port)
        await bob.register("bob")
        await bob.send("JOIN #feed")
        await bob.expect(r"^:tailer!\S+ JOIN #feed")
        await bob.send("PRIVMSG #feed :before the restart")
        seen = [json.loads(await _line(tail.stdout))["text"]]
        assert await first.stop() == 0
        assert (await _line(tail.stderr)).startswith("relaychat: disconnected: ")
        second = await ServerProcess.start(*flags, "--port", str(port))
        history = await _offers_history(second)
        assert keep_history or not history
        carol = await LineClient.open(second.host, port)
        await carol.register("carol")
        await carol.send("JOIN #feed")
        await carol.send("PRIVMSG #feed :while the tail was away")
        await carol.expect(r"^:tailer!\S+ JOIN #feed", TIMEOUT * 2)  # the tail is back
        await carol.send("PRIVMSG #feed :after the restart")
        while seen[-1] != "after the restart":
            seen.append(json.loads(await _line(tail.stdout))["text"])
        if history:  # No gap, in order, nothing twice.
            assert seen == ["before the restart", "while the tail was away", "after the restart"]
        else:  # The gap: a message sent before the tail rejoined is lost to it.
            assert seen[0] == "before the restart" and seen[-1] == "after the restart"
            assert len(seen) == len(set(seen)) <= 3
        code, err = await _stop(tail)
        assert code == 0
        assert "reconnected as tailer" in err and "Traceback" not in err
        await carol.close()
    finally:
        if tail.returncode is None:
            tail.kill()
            await tail.wait()
        for srv in (first, second):
            if srv is not None:
                await srv.stop()


async def test_send_over_tls(tmp_path: Path, client_env: dict[str, str]) -> None:
    """Against the server's self-signed development certificate: refused with the system's
    trust store (one line, exit 3), accepted when told to trust it with --tls-ca."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        tls_port = s.getsockname()[1]
    data = tmp_path / "data"
    srv = await ServerProcess.start(
        "--data-dir", str(data), "--tls-port", str(tls_port), "--tls-self-signed"
    )
    try:
        for _ in range(100):  # the TLS listener is announced after the plain one
            if any("(tls)" in line for line in srv.log):
                break
            await asyncio.sleep(0.02)
        else:
            pytest.skip("this server has no TLS listener")
        (cert,) = sorted(data.glob("**/*cert*.pem"))
        feed = await LineClient.open(srv.host, srv.port)
        await feed.register("reader")
        await feed.send("JOIN #secure")
        await feed.expect(" 366 reader #secure ")
        target = f"127.0.0.1:{tls_port}"
        code, _, err = await run(client_env, "send", target, "#secure", "hi", "--tls")
        assert code == 3
        assert err.strip().splitlines() == [
            f"relaychat: cannot connect to {target}: TLS failure: CERTIFICATE_VERIFY_FAILED"
        ]
        code, _, err = await run(
            client_env, "send", target, "#secure", "over TLS", "--tls-ca", str(cert)
        )
        assert (code, err) == (0, "")
        await feed.expect(r"PRIVMSG #secure :over TLS$")
        await feed.close()
    finally:
        await srv.stop()
