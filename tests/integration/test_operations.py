"""Running it for real, over real sockets: reload without drops (SIGHUP, ``relaychat reload``,
REHASH), bans that survive a restart, the admin socket, JSON logs without secrets."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import sys
import tempfile
from functools import cache
from pathlib import Path

import pytest
import trustme

from relaychat.config import load_config
from relaychat.passwords import hash_password
from relaychat.server.listeners import Server
from relaychat.server.reload import ConfigSource
from tests.harness import TIMEOUT, LineClient, ServerProcess
from tests.integration.tls_support import client_context, free_port, leaf, served_fingerprint

OPER_PASSWORD = "oper-secret-7731"


@cache
def oper_hash() -> str:
    return hash_password(OPER_PASSWORD)


async def connect(host: str, port: int, nick: str, **kwargs: object) -> LineClient:
    c = await LineClient.open(host, port, **kwargs)
    await c.register(nick)
    return c


async def cli(*args: str) -> tuple[int, str, str]:
    """Run ``relaychat ARGS`` (without blocking the event loop); return (code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relaychat",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT * 6)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def wait_log(server: ServerProcess, text: str, count: int = 1) -> None:
    """Wait until ``text`` appears ``count`` times in the server's log."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT * 2
    while sum(text in line for line in server.log) < count:
        if loop.time() > deadline:
            raise AssertionError(f"{text!r} x{count} not in the log: {server.log[-5:]}")
        await asyncio.sleep(0.02)


def write_toml(path: Path, **values: object) -> None:
    """A relaychat.toml from top-level values, ``limits`` (a dict) and ``opers`` (names)."""
    lines: list[str] = []
    limits = values.pop("limits", {})
    opers = values.pop("opers", [])
    for key, value in values.items():
        lines.append(f"{key} = {json.dumps(value)}")
    if limits:
        lines.append("[limits]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in limits.items()]  # type: ignore[attr-defined]
    for name in opers:  # type: ignore[attr-defined]
        lines += ["[[opers]]", f'name = "{name}"', f'password_hash = "{oper_hash()}"']
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


# --- reload ----------------------------------------------------------------------------------


@pytest.mark.timeout(180)
async def test_ten_reloads_keep_clients_while_motd_limits_opers_and_cert_change(
    tmp_path: Path,
) -> None:
    ca = trustme.CA()
    ctx = client_context(ca)
    tls_port = free_port()
    conf, data = tmp_path / "relaychat.toml", tmp_path / "data"
    cert, key, _ = leaf(ca, tmp_path, 0)
    write_toml(conf, motd="motd 0", tls_port=tls_port, tls_cert=str(cert), tls_key=str(key))
    server = await ServerProcess.start("--config", str(conf), "--data-dir", str(data))
    try:
        plain = await connect(server.host, server.port, "alice")
        tls = await connect("127.0.0.1", tls_port, "bob", ssl=ctx)
        for i in range(1, 11):
            cert, key, fingerprint = leaf(ca, tmp_path, i)
            write_toml(
                conf,
                motd=f"motd {i}",
                tls_port=tls_port,
                tls_cert=str(cert),
                tls_key=str(key),
                limits={"nicklen": 20 + i, "flood_burst": 30 + i},
                opers=[f"op{i}"],
            )
            if i % 2:
                code, out, err = await cli("reload", "--data-dir", str(data))
                assert code == 0, err
                assert "asked the server" in out
            else:
                server.proc.send_signal(1)  # SIGHUP
            await wait_log(server, "configuration reloaded by SIGHUP", i)
            await plain.send("MOTD")
            await plain.expect(rf" 372 alice :- motd {i}$")
            await plain.send("VERSION")
            await plain.expect(rf"NICKLEN={20 + i}\b")
            if i in (3, 10):
                await plain.send(f"OPER op{i} {OPER_PASSWORD}")
                await plain.expect(r" 381 alice ")
                await plain.send("MODE alice -o")
                await plain.expect(r"MODE alice -o")
            assert await served_fingerprint(tls_port, ctx) == fingerprint
            await tls.send(f"PING still-{i}")
            await tls.expect(rf"PONG \S+ still-{i}")
        await plain.send("OPER op3 " + OPER_PASSWORD)  # op3 was dropped by later files
        await plain.expect(r" 464 alice ")
        await plain.send("PING end")
        await plain.expect(r"PONG \S+ end")
        await plain.close()
        await tls.close()
    finally:
        assert await server.stop() == 0


@pytest.mark.timeout(120)
async def test_a_broken_file_changes_nothing(tmp_path: Path) -> None:
    conf, data = tmp_path / "relaychat.toml", tmp_path / "data"
    write_toml(conf, motd="good motd", opers=["root"])
    server = await ServerProcess.start("--config", str(conf), "--data-dir", str(data))
    try:
        alice = await connect(server.host, server.port, "alice")
        await alice.send(f"OPER root {OPER_PASSWORD}")
        await alice.expect(r" 381 ")
        broken = [
            ("not toml [", "is not valid TOML"),
            ("[limits]\nnicklen = 3\n", "limits.nicklen: must be at least 9"),
            ('tls_port = 6697\ntls_cert = "/nope.pem"\ntls_key = "/nope.key"\n', "does not exist"),
            ('motd_file = "/no/such/motd"\n', "motd_file"),
        ]
        for n, (text, reason) in enumerate(broken, 1):
            conf.write_text(text)
            server.proc.send_signal(1)
            await wait_log(server, "refused, the running configuration stays", n)
            assert reason in server.log[-1] or any(reason in line for line in server.log[-3:])
        await alice.send("REHASH")
        line = (await alice.expect(r"FAIL REHASH INVALID_CONFIG :(.*)")).group(1)
        assert "the running configuration stays" in line and "motd_file" in line
        await alice.send("MOTD")
        await alice.expect(r" 372 alice :- good motd$")
        await alice.send("VERSION")
        await alice.expect(r"NICKLEN=30\b")
        write_toml(conf, motd="fixed", opers=["root"])
        await alice.send("REHASH")
        await alice.expect(r" 382 alice \S+relaychat.toml :?Rehashing")
        await alice.send("MOTD")
        await alice.expect(r" 372 alice :- fixed$")
    finally:
        assert await server.stop() == 0


async def test_listeners_added_and_removed_existing_connections_stay(tmp_path: Path) -> None:
    conf = tmp_path / "relaychat.toml"
    write_toml(conf, plain_port=0)
    overrides = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": str(tmp_path / "data"),
        "http.port": 0,
    }
    source = ConfigSource(file=str(conf), overrides=overrides)
    server = Server(source.load(), source=source)
    await server.start()
    try:
        assert server.addresses_of("plain") == []
        irc = await connect(*server.addresses[0], "watcher")
        await irc.send("JOIN #lobby")
        plain_port = free_port()
        write_toml(conf, plain_port=plain_port)
        assert server.ops.reloader is not None
        assert server.ops.reloader.reload("test") == (str(conf), None)
        await server.ops.reloader.pending
        assert server.addresses_of("plain") == [("127.0.0.1", plain_port)]
        _reader, writer = await asyncio.open_connection("127.0.0.1", plain_port)
        await irc.expect(r"JOIN #lobby")  # the plain guest arrived
        write_toml(conf, plain_port=0)
        server.ops.reloader.reload("test")
        await server.ops.reloader.pending
        assert server.addresses_of("plain") == []
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", plain_port)
        writer.write(b"still here\n")  # accepted by the closed listener: still connected
        await irc.expect(r"PRIVMSG #lobby :still here")
        writer.close()
        await irc.close()
    finally:
        await server.stop()


async def test_reload_without_a_server_is_one_clear_line(tmp_path: Path) -> None:
    code, _, err = await cli("reload", "--data-dir", str(tmp_path))
    assert code == 3
    assert err.strip() == (
        f"relaychat: no running server found (no live pid in {tmp_path / 'relaychat.pid'})"
    )
    (tmp_path / "relaychat.pid").write_text("999999999\n")  # stale
    code, _, err = await cli("reload", "--data-dir", str(tmp_path))
    assert code == 3


# --- bans --------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_bans_apply_at_once_and_survive_a_restart(tmp_path: Path) -> None:
    conf, data = tmp_path / "relaychat.toml", tmp_path / "data"
    write_toml(conf, opers=["root"])
    args = ("--config", str(conf), "--data-dir", str(data))
    server = await ServerProcess.start(*args)
    try:
        op = await connect(server.host, server.port, "op")
        await op.send(f"OPER root {OPER_PASSWORD}")
        await op.expect(r" 381 ")
        victim = await connect(server.host, server.port, "victim")
        other = await connect(server.host, server.port, "other", local_addr=("127.0.0.2", 0))
        await op.send("KLINE ~victim@127.0.0.1 :spam")
        assert "ERROR :Banned: spam" in await victim.closed()
        await op.send("DLINE 1d 127.0.0.2 :range")
        assert "ERROR :Banned: range" in await other.closed()
        await op.expect(r"D-line on 127.0.0.2/32 set for 1d")
    finally:
        assert await server.stop() == 0
    saved = json.loads((data / "bans.json").read_text())
    assert sorted(b["mask"] for b in saved["bans"]) == ["127.0.0.2/32", "~victim@127.0.0.1"]
    assert stat.S_IMODE((data / "bans.json").stat().st_mode) == 0o600

    server = await ServerProcess.start(*args)
    try:
        again = await LineClient.open(server.host, server.port)
        await again.send("NICK victim")
        await again.send("USER victim 0 * :v")
        await again.expect(r" 465 victim :You are banned from this server: spam")
        assert "ERROR :Banned: spam" in await again.closed()
        dlined = await LineClient.open(server.host, server.port, local_addr=("127.0.0.2", 0))
        assert (await dlined.closed()) == ["ERROR :Banned: range"]
        fine = await connect(server.host, server.port, "fine")
        await fine.close()
    finally:
        assert await server.stop() == 0
    audit = [json.loads(line) for line in (data / "audit.log").read_text().splitlines()]
    assert [r["action"] for r in audit] == ["OPER", "KLINE", "DLINE"]


# --- the admin socket --------------------------------------------------------------------------


@pytest.mark.timeout(180)
async def test_admin_socket_every_command(tmp_path: Path) -> None:
    conf, data = tmp_path / "relaychat.toml", tmp_path / "data"
    write_toml(conf, motd="one")
    server = await ServerProcess.start("--config", str(conf), "--data-dir", str(data))
    d = ("--data-dir", str(data))
    try:
        sock = data / "admin.sock"
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        alice = await connect(server.host, server.port, "alice")
        await alice.send("JOIN #ops")
        code, out, err = await cli("admin", *d, "status")
        assert code == 0, err
        assert "users        1" in out and "channels     1" in out
        code, out, _ = await cli("admin", *d, "--json", "users")
        users = json.loads(out)["result"]
        assert [(u["nick"], u["channels"]) for u in users] == [("alice", ["#ops"])]
        code, out, _ = await cli("admin", *d, "users")
        assert out.splitlines()[1].startswith("alice") and "#ops" in out
        code, _, err = await cli("admin", *d, "kill", "nobody")
        assert (code, err.strip()) == (1, "relaychat: no such nick: nobody")
        code, out, _ = await cli("admin", *d, "kill", "alice", "--reason", "bye")
        assert (code, out.strip()) == (0, "killed alice")
        assert "ERROR :Closing Link: 127.0.0.1 (Killed (admin (bye)))" in await alice.closed()
        code, out, _ = await cli(
            "admin", *d, "kline", "*@198.51.100.0/24", "--duration", "2h", "--reason", "x"
        )
        assert code == 0 and "K-line on *@198.51.100.0/24 (x; expires" in out
        code, _, err = await cli("admin", *d, "kline", "*@*")
        assert code == 1 and "would match every host" in err
        code, out, _ = await cli("admin", *d, "dline", "2001:db8::/32")
        assert code == 0 and "permanent" in out
        code, out, _ = await cli("admin", *d, "unkline", "*@198.51.100.0/24")
        assert (code, out.strip()) == (0, "K-line on *@198.51.100.0/24 removed")
        code, out, _ = await cli("admin", *d, "undline", "2001:db8::/32")
        assert code == 0
        write_toml(conf, motd="two")
        code, out, _ = await cli("admin", *d, "reload")
        assert (code, out.strip()) == (0, f"configuration reloaded from {conf}")
        conf.write_text("broken [")
        code, _, err = await cli("admin", *d, "reload")
        assert code == 1 and "reload refused" in err and "not valid TOML" in err
    finally:
        assert await server.stop() == 0
    assert not (data / "admin.sock").exists()
    assert not (data / "relaychat.pid").exists()
    code, _, err = await cli("admin", *d, "status")
    assert code == 3 and "no server running" in err
    actions = [json.loads(x)["action"] for x in (data / "audit.log").read_text().splitlines()]
    assert actions == ["KILL", "KLINE", "DLINE", "UNKLINE", "UNDLINE"]


NOBODY = 65534
_PROBE = (
    "import json, socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "try:\n"
    "    s.connect(sys.argv[1])\n"
    "except PermissionError:\n"
    "    print('EACCES'); sys.exit(0)\n"
    "try:\n"
    '    s.sendall(b\'{"command": "status"}\\n\')\n'
    "except OSError:\n"
    "    pass\n"
    "print(s.makefile().readline().strip())\n"
)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
async def test_admin_socket_refuses_other_users() -> None:
    base = Path(tempfile.mkdtemp(prefix="relaychat-admin-"))
    base.chmod(0o711)  # others may traverse, not list
    data = base / "data"
    data.mkdir(mode=0o711)
    data.chmod(0o711)
    source = ConfigSource(
        fixed=load_config(
            environ={},
            overrides={
                "host": "127.0.0.1",
                "port": 0,
                "plain_port": 0,
                "data_dir": str(data),
                "http.port": 0,
            },
        )
    )
    server = Server(source.load(), source=source)
    await server.start()
    sock = data / "admin.sock"

    async def probe() -> str:
        proc = await asyncio.create_subprocess_exec(
            "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable,
            "-c",
            _PROBE,
            str(sock),
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=lambda: (os.setgid(NOBODY), os.setuid(NOBODY)),
        )
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT * 4)
        return out.decode().strip()

    try:
        assert await probe() == "EACCES"  # the file mode keeps other users out
        sock.chmod(0o666)  # and if someone widens it, the server checks who connects
        reply = json.loads(await probe())
        assert reply == {
            "ok": False,
            "error": f"permission denied: uid {NOBODY} is not the server's user",
        }
    finally:
        await server.stop()


# --- logs --------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_json_logs_hold_no_secrets(tmp_path: Path) -> None:
    conf, data = tmp_path / "relaychat.toml", tmp_path / "data"
    write_toml(conf, opers=["root"], password="server-pass-5521")
    server = await ServerProcess.start(
        "--config", str(conf), "--data-dir", str(data), "--log-format", "json",
        "--log-level", "DEBUG",
    )  # fmt: skip
    account_pw = "account-pw-8812"
    try:
        c = await LineClient.open(server.host, server.port)
        await c.send("PASS server-pass-5521")
        await c.register("alice")
        await c.send(f"OPER root {OPER_PASSWORD}")
        await c.expect(r" 381 ")
        await c.send("OPER root wrong-guess-4471")
        await c.expect(r" 464 ")
        await c.send(f"REGISTER * * {account_pw}")
        await c.expect(r"REGISTER SUCCESS")
        s = await LineClient.open(server.host, server.port)
        await s.send("PASS server-pass-5521")
        await s.send("CAP REQ sasl")
        await s.send("NICK bob")
        await s.send("USER bob 0 * :b")
        await s.send("AUTHENTICATE PLAIN")
        await s.expect(r"AUTHENTICATE \+")
        payload = base64.b64encode(f"\0alice\0{account_pw}".encode()).decode()
        await s.send(f"AUTHENTICATE {payload}")
        await s.expect(r" 903 ")
        await s.send("CAP END")
        await s.expect(r" 001 ")
        await c.close()
        await s.close()
    finally:
        assert await server.stop() == 0
    text = "\n".join(server.log) + (data / "audit.log").read_text()
    for secret in ("server-pass-5521", OPER_PASSWORD, "wrong-guess-4471", account_pw, payload):
        assert secret not in text
    records = [json.loads(line) for line in server.log if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any("listening on" in r["message"] for r in records)
