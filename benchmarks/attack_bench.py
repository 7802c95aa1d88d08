"""The "attack" workload (issue 17): an idle bystander's PING round trip while one attacker works
inside relaychat's *default* limits.

Usage (from the repository root; ``make bench BENCH_ARGS='--workloads attack --servers
relaychat'`` runs it through bench.py):

    .venv/bin/python benchmarks/attack_bench.py                    # every attack, 10 s each
    .venv/bin/python benchmarks/attack_bench.py --attacks oper,list --duration 5
    .venv/bin/python benchmarks/attack_bench.py --src /tmp/old/src  # an older relaychat tree
    .venv/bin/python benchmarks/attack_bench.py --before /tmp/old/src  # both, attack by attack

Attacks (the items of issue 17), each against a fresh ``relaychat serve`` with default settings
(only the listening address, a scratch data directory and quiet logs are set, and no limit on
the rate of new connections, which the set-ups would pass):

- ``idle``: no attack; the bystander alone (the floor).
- ``oper`` (item 2): a registered client sends ``OPER admin <guess>`` 10 times a second.
- ``pass`` (item 3): the server has an argon2 password; four new connections a second send a
  wrong ``PASS``.
- ``sasl`` (item 4): 80 connections from 127.0.0.2 cycle wrong SASL PLAIN passwords (four tries,
  then reconnect); meanwhile 11 people log in from 127.0.0.1 (reported: how many succeeded).
- ``targets`` (item 5): 200 connections from one address make 4,000 private conversations with
  the attacker's nick, then the attacker sends ``CHATHISTORY TARGETS`` 10 times a second.
- ``list`` (item 9): 5,000 channels (100 helpers joining 50 each), then the attacker sends
  ``LIST`` 10 times a second and reads everything.
- ``connect`` (issue 14, the connection rate): 16 loops from 127.0.0.2 connect, register and
  close as fast as the server lets them (reported: registrations and refusals). The only
  attack run with ``throttle.connect_*`` at its defaults.

Rules: the server is pinned to one core (``taskset``), the bystander and the attacker run in two
other processes pinned to the other; the server and the bystander run at ``nice -10`` when the
bench runs as root (``PRIORITY``: ahead of other tenants of a shared machine and of the attacker's
client process); every phase is bounded in time; loopback only (127.0.0.0/8).
The bystander (four idle connections, each sending a PING every 250 ms, so inside the flood
limit like the attacker) times every PONG: the figures are its round trips (p50, p99, max) during
the attack. The machine may be shared: the CPU that other processes used
on each core during the run is reported beside the figures (``noise``), as bench.py does, and
``--before`` runs an older tree right after each attack, so both see the same noise.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

__all__ = ["ATTACKS", "main", "run_attacks", "table"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PASSWORD = "correct-horse-battery"
ARGON2_OF_S3CRET = ""  # made once per run (hash_password)

#: attack -> what it does, for the table
ATTACKS = {
    "idle": "no attack (the bystander alone)",
    "oper": "item 2: OPER admin <guess> at 10 lines/s",
    "pass": "item 3: 4 new connections/s with a wrong PASS (argon2 server password)",
    "sasl": "item 4: 80 connections from one address cycling wrong SASL passwords",
    "targets": "item 5: CHATHISTORY TARGETS at 10/s over 4,000 conversations",
    "list": "item 9: LIST at 10/s with 5,000 channels",
    "connect": "issue 14: 16 loops from one address connecting, registering, closing",
}
TARGET_P99_MS = 20.0


# --- a minimal client ---------------------------------------------------------------------------


class Client:
    """A line client over asyncio streams, for the attacker and the bystander."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, local: str | None = None) -> Client:
        kwargs: dict[str, Any] = {"local_addr": (local, 0)} if local else {}
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20, **kwargs)
        return cls(reader, writer)

    def send(self, *lines: str) -> None:
        self.writer.write("".join(line + "\r\n" for line in lines).encode())

    async def expect(self, *needles: str, timeout: float = 30.0) -> str:
        """Read lines until one contains any of ``needles``; return it."""
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.reader.readline()
                if not raw:
                    raise ConnectionError("closed")
                line = raw.decode("utf-8", "replace")
                if any(n in line for n in needles):
                    return line

    async def register(self, nick: str, password: str | None = None) -> None:
        if password:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        await self.expect(" 376 ", " 422 ")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def b64plain(account: str, password: str) -> str:
    return base64.b64encode(f"\0{account}\0{password}".encode()).decode()


async def sasl_login(port: int, nick: str, password: str, local: str | None = None) -> str:
    """Log in with SASL PLAIN; return the numeric (903 success, 904/905 failure)."""
    c = await Client.open(port, local)
    try:
        c.send("CAP LS 302", "CAP REQ sasl", f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        await c.expect(" ACK ")
        c.send("AUTHENTICATE PLAIN")
        await c.expect("AUTHENTICATE +")
        c.send(f"AUTHENTICATE {b64plain(nick, password)}")
        line = await c.expect(" 903 ", " 904 ", " 905 ", timeout=60.0)
        return line.split()[1]
    finally:
        c.close()


# --- the bystander (its own process) ------------------------------------------------------------


async def _go() -> None:
    """Say "ready" on stdout, then wait for the driver's "go" on stdin."""
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


#: The bystander's connections, and the seconds between two PINGs on one of them: 4 PINGs a
#: second each, inside the default flood limit (10 lines a second after a burst of 30), 20 a
#: second in all.
BYSTANDERS = 4
PING_EVERY = 0.25


async def bystander(port: int, seconds: float, password: str | None) -> dict[str, Any]:
    """Register, wait for "go" (the attack starts then), then PING on each of
    :data:`BYSTANDERS` connections every :data:`PING_EVERY` seconds (staggered) for ``seconds``."""
    clients = []
    for n in range(BYSTANDERS):
        c = await Client.open(port)
        await c.register(f"bystander{n}", password)
        clients.append(c)
    await _go()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    rtts: list[float] = []
    stalled = [False]

    async def watch(c: Client, offset: float) -> None:
        await asyncio.sleep(offset)
        n = 0
        while loop.time() < end and not stalled[0]:
            n += 1
            started = loop.time()
            c.send(f"PING :b{n}")
            try:
                await c.expect(f"b{n}", timeout=max(1.0, end - started) + 30.0)
            except (TimeoutError, ConnectionError):
                stalled[0] = True  # no answer at all: counted as waiting until now
            rtts.append((loop.time() - started) * 1000)
            await asyncio.sleep(max(0.0, started + PING_EVERY - loop.time()))

    await asyncio.gather(*(watch(c, i * PING_EVERY / BYSTANDERS) for i, c in enumerate(clients)))
    for c in clients:
        c.close()
    return {"rtts_ms": rtts, "stalled": stalled[0]}


# --- attacks (their own process) ----------------------------------------------------------------


#: What an attack awaits once it is set up: says "ready", waits for "go".
Ready = Callable[[], Awaitable[None]]


async def attack(name: str, port: int, seconds: float) -> dict[str, Any]:
    """Set up, say "ready", wait for "go", then attack for ``seconds``; return what the
    attacker saw."""
    return await _ATTACKS[name](port, seconds, _go)


async def _idle(port: int, seconds: float, ready: Ready) -> dict[str, Any]:
    await ready()
    await asyncio.sleep(seconds)
    return {}


async def _paced(seconds: float, rate: float, fn: Any) -> int:
    """Call ``fn(n)`` ``rate`` times a second for ``seconds``; return how many calls."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    n = 0
    while loop.time() - start < seconds:
        fn(n)
        n += 1
        await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
    return n


async def _count(reader: asyncio.StreamReader, needle: bytes, box: list[int]) -> None:
    """Count ``needle`` in everything read (no parsing: the attacker just reads)."""
    tail = b""
    while True:
        data = await reader.read(1 << 16)
        if not data:
            return
        chunk = tail + data
        box[0] += chunk.count(needle)
        tail = chunk[-len(needle) :]


async def _oper(port: int, seconds: float, ready: Ready) -> dict[str, Any]:
    c = await Client.open(port)
    await c.register("mallory")
    answers = [0]
    reading = asyncio.create_task(_count(c.reader, b" 464 ", answers))
    await ready()
    sent = await _paced(seconds, 10.0, lambda n: c.send(f"OPER admin guess{n}"))
    await asyncio.sleep(1.0)
    reading.cancel()
    c.close()
    return {"sent": sent, "answered": answers[0]}


async def _pass(port: int, seconds: float, ready: Ready) -> dict[str, Any]:
    await ready()
    refused = [0]

    async def one(n: int) -> None:
        with contextlib.suppress(Exception):
            c = await Client.open(port)
            c.send("PASS wrong-guess", f"NICK m{n}", f"USER m{n} 0 * :m")
            await c.expect(" 464 ", timeout=30.0)
            refused[0] += 1
            c.close()

    tasks: list[asyncio.Task[None]] = []
    sent = await _paced(seconds, 4.0, lambda n: tasks.append(asyncio.create_task(one(n))))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    return {"connections": sent, "refused": refused[0]}


async def _sasl(port: int, seconds: float, ready: Ready) -> dict[str, Any]:
    people = [f"user{n}" for n in range(11)]
    for n, name in enumerate(people):  # each from its own address (registration limits)
        c = await Client.open(port, local=f"127.0.1.{n + 1}")
        await c.register(name)
        c.send(f"REGISTER * * {PASSWORD}")
        await c.expect("REGISTER SUCCESS", "FAIL REGISTER", timeout=60.0)
        c.close()
    stop = asyncio.Event()
    tries = [0]

    async def attacker(n: int) -> None:
        while not stop.is_set():
            try:
                c = await Client.open(port, local="127.0.0.2")
                c.send("CAP REQ sasl", f"NICK a{n}", f"USER a{n} 0 * :a")
                for _ in range(4):
                    c.send("AUTHENTICATE PLAIN", f"AUTHENTICATE {b64plain('user0', 'wrong')}")
                    await c.expect(" 904 ", " 905 ", timeout=30.0)
                    tries[0] += 1
                c.close()
            except (OSError, ConnectionError, TimeoutError):
                await asyncio.sleep(0.05)

    await ready()
    attackers = [asyncio.create_task(attacker(n)) for n in range(80)]
    loop = asyncio.get_running_loop()
    start = loop.time()
    results = []
    for n, name in enumerate(people):  # spread over the attack
        await asyncio.sleep(max(0.0, start + (n + 0.5) * seconds / len(people) - loop.time()))
        try:
            results.append(await sasl_login(port, name, PASSWORD))
        except (OSError, ConnectionError, TimeoutError) as exc:
            results.append(type(exc).__name__)
    stop.set()
    await asyncio.gather(*attackers, return_exceptions=True)
    return {"attempts": tries[0], "logins_ok": results.count("903"), "logins": len(results)}


async def _targets(port: int, seconds: float, ready: Ready) -> dict[str, Any]:
    c = await Client.open(port)
    c.send("CAP LS 302", "CAP REQ :draft/chathistory batch", "NICK mallory")
    c.send("USER mallory 0 * :mallory", "CAP END")
    await c.expect(" 376 ", " 422 ")
    got = [0]
    counting = asyncio.create_task(_count(c.reader, b"PRIVMSG mallory", got))
    sem = asyncio.Semaphore(50)

    async def helper(n: int) -> None:  # 200 connections, 20 conversations each
        async with sem:
            h = await Client.open(port)
            await h.register(f"h{n}x0")
            for k in range(20):
                if k:
                    h.send(f"NICK h{n}x{k}")
                h.send(f"PRIVMSG mallory :hi {k}")
                await asyncio.sleep(0.12)  # inside the flood limit
            h.close()

    await asyncio.gather(*(helper(n) for n in range(200)))
    deadline = time.monotonic() + 60
    while got[0] < 4000 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    counting.cancel()
    answers = [0]
    reading = asyncio.create_task(_count(c.reader, b"BATCH -", answers))
    await ready()
    query = (
        "CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z"
        " timestamp=2100-01-01T00:00:00.000Z 100"
    )
    sent = await _paced(seconds, 10.0, lambda n: c.send(query))
    await asyncio.sleep(1.0)
    reading.cancel()
    c.close()
    return {"conversations": got[0], "sent": sent, "answered": answers[0]}


async def _list(port: int, seconds: float, ready: Ready) -> dict[str, Any]:
    helpers = []
    for n in range(100):  # 5,000 channels: 100 helpers join 50 each (CHANLIMIT 50)
        h = await Client.open(port)
        await h.register(f"lister{n}")
        h.send("JOIN " + ",".join(f"#l{n:03d}{k:02d}" for k in range(50)))
        helpers.append(h)
    for h in helpers:
        await h.expect(" 366 ", timeout=60.0)
    c = await Client.open(port)
    await c.register("mallory")
    answers = [0]
    reading = asyncio.create_task(_count(c.reader, b" 323 ", answers))
    await ready()
    sent = await _paced(seconds, 10.0, lambda n: c.send("LIST"))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            while answers[0] < sent:
                await asyncio.sleep(0.05)
    reading.cancel()
    c.close()
    for h in helpers:
        h.close()
    return {"sent": sent, "answered": answers[0]}


async def _connect(port: int, seconds: float, ready: Ready) -> dict[str, Any]:
    await ready()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    counts = {"registered": 0, "refused": 0, "failed": 0}

    async def churn(k: int) -> None:
        n = 0
        while loop.time() < end:
            n += 1
            try:
                c = await Client.open(port, local="127.0.0.2")
            except OSError:
                counts["failed"] += 1
                await asyncio.sleep(0.01)
                continue
            try:
                c.send(f"NICK c{k}x{n}", "USER c 0 * :c")
                line = await c.expect(" 001 ", "ERROR", timeout=10.0)
                counts["registered" if " 001 " in line else "refused"] += 1
            except (TimeoutError, ConnectionError):
                counts["failed"] += 1
            c.close()

    await asyncio.gather(*(churn(k) for k in range(16)))
    return counts


_ATTACKS = {
    "idle": _idle,
    "oper": _oper,
    "pass": _pass,
    "sasl": _sasl,
    "targets": _targets,
    "list": _list,
    "connect": _connect,
}


# --- one run: a server, a bystander process, an attacker process --------------------------------


def _core_busy_s(cpu: int | None) -> float:
    """Seconds core ``cpu`` (all cores when ``None``) spent busy since boot."""
    prefix = "cpu " if cpu is None else f"cpu{cpu} "
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(prefix):
                f = line.split()
                return (int(f[1]) + int(f[2]) + int(f[3])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _proc_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve_help(env: dict[str, str]) -> str:
    """``relaychat serve --help`` of the tree under test (an older one may lack a flag)."""
    out = subprocess.run(
        [sys.executable, "-m", "relaychat", "serve", "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Scheduling priority of the server and the bystander (``nice``; root only): on a shared
#: machine they run ahead of other tenants' work and of the attacker's own client process,
#: so the figures are the server's, not the neighbours'. The attacker keeps priority 0.
PRIORITY = -10


def _pinned(cpu: int | None, argv: list[str], *, favoured: bool = False) -> list[str]:
    if favoured and os.geteuid() == 0 and shutil.which("nice"):
        argv = ["nice", "-n", str(PRIORITY), *argv]
    if cpu is None or shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", str(cpu), *argv]


def _wait_listening(port: int, proc: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"relaychat exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("relaychat did not start listening")


def _oper_hash() -> str:
    global ARGON2_OF_S3CRET
    if not ARGON2_OF_S3CRET:
        from relaychat.passwords import hash_password

        ARGON2_OF_S3CRET = hash_password("s3cret!")
    return ARGON2_OF_S3CRET


def run_one(
    name: str, *, seconds: float, server_cpu: int | None, client_cpu: int | None, src: str | None
) -> dict[str, Any]:
    """One attack against a fresh server; returns the bystander's figures and the attacker's."""
    work = Path(tempfile.mkdtemp(prefix="relaychat-attack-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")}
    if src:
        env["PYTHONPATH"] = src
    argv = [sys.executable, "-m", "relaychat", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--plain-port", "0", "--data-dir", str(work / "data")]
    argv += ["--log-level", "WARNING"]
    if name != "connect" and "--throttle-connect-per-minute" in _serve_help(env):
        # The set-ups open hundreds of connections from one address at once (the connection
        # rate per address, issue 14, would refuse them; tests/integration/test_accept_limits.py).
        argv += ["--throttle-connect-per-minute", "0"]
    password = None
    if name == "oper":
        conf = work / "relaychat.toml"
        conf.write_text(f'[[opers]]\nname = "admin"\npassword_hash = "{_oper_hash()}"\n')
        argv += ["--config", str(conf)]
    if name == "pass":
        env["RELAYCHAT_PASSWORD"] = _oper_hash()
        password = "s3cret!"
    server = subprocess.Popen(
        _pinned(server_cpu, argv, favoured=True),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    result: dict[str, Any] = {"attack": name, "what": ATTACKS[name]}
    try:
        _wait_listening(port, server)
        me = [sys.executable, str(Path(__file__).resolve()), "--role"]
        # The bystander registers first, then the attacker sets up; both start on "go".
        watcher = subprocess.Popen(
            _pinned(client_cpu, [*me, "bystander", "--port", str(port), "--duration",
                                 str(seconds)] + (["--password", password] if password else []),
                    favoured=True),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        attacker = subprocess.Popen(
            _pinned(client_cpu, [*me, f"attack:{name}", "--port", str(port),
                                 "--duration", str(seconds)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        for proc, who in ((watcher, "bystander"), (attacker, "attacker")):
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"{who} failed to set up: {line!r}")
        busy0, srv0, t0 = _core_busy_s(server_cpu), _proc_cpu_s(server.pid), time.monotonic()
        for proc in (attacker, watcher):
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        watched, _ = watcher.communicate(timeout=seconds + 90)
        wall = time.monotonic() - t0
        srv_s = _proc_cpu_s(server.pid) - srv0
        others = max(0.0, _core_busy_s(server_cpu) - busy0 - srv_s)
        result["server_cpu_pct"] = round(srv_s * 100 / wall, 1)
        result["noise_pct"] = round(others * 100 / wall, 1)  # others on the server's core
        try:
            out, _ = attacker.communicate(timeout=seconds + 120)
            result["attacker"] = json.loads(out.decode().strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            attacker.kill()
            attacker.communicate()
            result["attacker"] = {"gave up": "no answer within the run's deadline"}
        seen = json.loads(watched.decode().strip().splitlines()[-1])
        result.update(_figures(sorted(seen["rtts_ms"])))
        if seen.get("stalled"):
            result["stalled"] = True
    except Exception as exc:  # report it in the table, go on with the next attack
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            _, err = server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            _, err = server.communicate()
        result["server_log_lines"] = len(err.decode(errors="replace").splitlines())
        shutil.rmtree(work, ignore_errors=True)
    return result


def _figures(rtts: list[float]) -> dict[str, Any]:
    def pct(p: float) -> float:
        return round(rtts[min(len(rtts) - 1, int(p * len(rtts)))], 2)

    return {
        "pings": len(rtts),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(rtts[-1], 2),
    }


def run_attacks(
    attacks: list[str],
    *,
    seconds: float,
    server_cpu: int | None = 0,
    client_cpu: int | None = 1,
    src: str | None = None,
    before: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Every attack in turn, each on a fresh server (and, with ``before``, on a fresh server of
    that tree right after: its result goes in the ``before`` key)."""
    results = []
    for name in attacks:
        runs = [("", src)] + ([("before", before)] if before else [])
        res: dict[str, Any] = {}
        for label, tree in runs:
            if progress:
                print(f"  attack {name:<8} {label:<6} ...", end=" ", flush=True, file=sys.stderr)
            one = run_one(
                name, seconds=seconds, server_cpu=server_cpu, client_cpu=client_cpu, src=tree
            )
            if progress:
                shown = one.get("error") or (
                    f"p99 {one['p99_ms']} ms, noise {one.get('noise_pct')} % {one.get('attacker')}"
                )
                print(shown, file=sys.stderr, flush=True)
            if label:
                res[label] = one
            else:
                res.update(one)
        results.append(res)
    return results


def table(results: list[dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    compare = any("before" in r for r in results)
    head = "| attack | bystander PING p50 | p99 | max | pings | target p99 ≤ 20 ms |"
    line = "|---|---:|---:|---:|---:|---|"
    if compare:
        head += " before: p50 | p99 | max | pings |"
        line += "---:|---:|---:|---:|"
    rows = [head + " server CPU | noise | attacker |", line + "---:|---:|---|"]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['attack']} | — | — | — | — | error: {r['error']} |")
            continue
        met = (
            "n/a"
            if r["attack"] == "idle"
            else ("met" if r["p99_ms"] <= TARGET_P99_MS else "MISSED")
        )
        row = (
            f"| {r['attack']} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['max_ms']:.1f} ms"
            f" | {r['pings']} | {met} |"
        )
        if compare:
            b = r.get("before", {})
            if "p99_ms" in b:
                row += (
                    f" {b['p50_ms']:.2f} ms | {b['p99_ms']:.2f} ms | {b['max_ms']:.1f} ms"
                    f" | {b['pings']} |"
                )
            else:
                row += f" — | — | {b.get('error', '—')} | — |"
        detail = ", ".join(f"{k} {v}" for k, v in r.get("attacker", {}).items())
        if compare and "attacker" in r.get("before", {}):
            old = ", ".join(f"{k} {v}" for k, v in r["before"]["attacker"].items())
            detail += f" (before: {old})"
        row += f" {r.get('server_cpu_pct', 0):.0f} % | {r.get('noise_pct', 0):.0f} % | {detail} |"
        rows.append(row)
    return "\n".join(rows)


# --- the command line ---------------------------------------------------------------------------


def _role(args: argparse.Namespace) -> int:
    if args.role == "bystander":
        out = asyncio.run(bystander(args.port, args.duration, args.password))
        print(json.dumps(out))
        return 0
    name = args.role.split(":", 1)[1]

    print(json.dumps(asyncio.run(attack(name, args.port, args.duration))))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="attack_bench.py", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--attacks", default=",".join(ATTACKS), help="comma-separated, of " + ",".join(ATTACKS)
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds of attack (default 10)")
    p.add_argument("--quick", action="store_true", help="3 s per attack")
    p.add_argument(
        "--server-cpu", type=int, default=0, help="core the server is pinned to (-1: none)"
    )
    p.add_argument(
        "--client-cpu", type=int, default=1, help="core the clients are pinned to (-1: none)"
    )
    p.add_argument("--src", default=None, help="PYTHONPATH for the server (another relaychat tree)")
    p.add_argument(
        "--before", default=None, help="also run this tree's server (PYTHONPATH), attack by attack"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--role", default=None, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--password", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role:
        return _role(args)
    names = [a.strip() for a in args.attacks.split(",") if a.strip()]
    unknown = [a for a in names if a not in ATTACKS]
    if unknown:
        print(f"attack_bench: unknown attack(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    seconds = 3.0 if args.quick else args.duration
    results = run_attacks(
        names,
        seconds=seconds,
        server_cpu=None if args.server_cpu < 0 else args.server_cpu,
        client_cpu=None if args.client_cpu < 0 else args.client_cpu,
        src=args.src,
        before=args.before,
    )
    print(table(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
