"""DCC transfer rates over loopback: relaychat to relaychat, and to and from irssi.

Each case starts ``relaychat serve`` on a free port, writes a random file, and times one
transfer; the rate is the file's size over the time from the data connection to the last
acknowledgement (what ``send-file`` and ``receive-files`` report as ``seconds``), so connecting
and the IRC round trips are not counted. Cases:

- ``cli``: ``relaychat send-file`` to ``relaychat receive-files``, two processes (the commands'
  default event loop: the kernel's ``sendfile`` on the sending side);
- ``lib-asyncio`` / ``lib-uvloop``: both ends in one process through the library, on each
  loop (uvloop has no ``loop.sendfile``: the sender reads ahead in a thread instead);
- ``to-irssi`` / ``from-irssi``: ``send-file`` to irssi (``dcc_autoget``), and irssi's
  ``/dcc send`` to ``receive-files`` (irssi in tmux; skipped when either is missing);
- ``to-weechat`` / ``from-weechat``: the same with ``weechat-headless``.

The receiving side always hashes (SHA-256) and syncs the file; runs share the machine with
whatever else runs, so take the best of ``--repeat`` runs.

    .venv/bin/python benchmarks/dcc_rates.py --size 200 --repeat 3 [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness import ServerProcess  # noqa: E402

MiB = 1 << 20


def env_for(scratch: Path) -> dict[str, str]:
    config = scratch / "client.toml"
    config.write_text("connect_timeout = 5.0\n[dcc]\nstall_timeout = 60\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")}
    env["RELAYCHAT_CLIENT_CONFIG"] = str(config)
    return env


def random_file(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        left = size
        while left:
            block = os.urandom(min(left, 8 * MiB))
            fh.write(block)
            left -= len(block)


async def relaychat(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relaychat", *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip


async def case_cli(server: ServerProcess, scratch: Path, source: Path) -> float:
    env = env_for(scratch)
    inbox = scratch / "inbox"
    inbox.mkdir()
    where = f"{server.host}:{server.port}"
    recv = await relaychat(
        env, "receive-files", where, "--nick", "bob", "--dir", str(inbox), "--count", "1", "-q"
    )
    await asyncio.sleep(1.0)  # (until it is registered)
    send = await relaychat(env, "send-file", where, "bob", str(source), "--nick", "alice", "-q")
    _, err = await send.communicate()
    if send.returncode != 0:
        raise RuntimeError(err.decode())
    got, _ = await recv.communicate()
    record = json.loads(got)
    return float(record["seconds"])


async def case_lib(server: ServerProcess, scratch: Path, source: Path) -> float:
    from relaychat.client import Client
    from relaychat.client.dcc import DccManager
    from relaychat.client.dccstate import DccOffered

    inbox = scratch / "inbox"
    inbox.mkdir()
    host, port = server.host, server.port
    async with (
        Client(host, port, nick="alice", pace_rate=0) as a,
        Client(host, port, nick="bob", pace_rate=0) as b,
        DccManager(a) as alice,
        DccManager(b) as bob,
    ):
        offers = bob.events(DccOffered)
        await alice.send("bob", source)
        event = await anext(offers)
        assert isinstance(event, DccOffered)
        got = await bob.wait(await bob.accept(event.transfer, inbox), 600)
    assert got.started is not None and got.finished is not None
    return got.finished - got.started


IRSSI_CONFIG = """\
servers = ( {{ address = "{host}"; chatnet = "bench"; port = "{port}"; use_tls = "no";
               autoconnect = "yes"; }} );
chatnets = {{ bench = {{ type = "IRC"; }}; }};
settings = {{
  core = {{ real_name = "bench"; user_name = "irssi"; nick = "irssibench"; }};
  "irc/core" = {{ cmds_max_at_once = "20"; }};
  "irc/dcc" = {{ dcc_autoget = "yes"; dcc_download_path = "{down}"; dcc_upload_path = "{up}"; }};
}};
"""


async def with_irssi(
    server: ServerProcess, scratch: Path, body: Callable[[object, Path, Path], Awaitable[float]]
) -> float:
    from tests.e2e.test_irssi import IRSSI, Tmux

    home, down, up = scratch / "home", scratch / "down", scratch / "up"
    for d in (home, down, up):
        d.mkdir()
    (home / "config").write_text(
        IRSSI_CONFIG.format(host=server.host, port=server.port, down=down, up=up)
    )
    tmux = Tmux(scratch / "tmux.sock", session="bench")
    assert IRSSI is not None
    await tmux.start(IRSSI, f"--home={home}")
    try:
        await tmux.wait_screen(r"MOTD File is missing|End of /MOTD", 30)
        return await body(tmux, down, up)
    finally:
        await tmux.kill()


async def case_to_irssi(server: ServerProcess, scratch: Path, source: Path) -> float:
    async def body(tmux: object, down: Path, up: Path) -> float:
        env = env_for(scratch)
        where = f"{server.host}:{server.port}"
        send = await relaychat(
            env, "send-file", where, "irssibench", str(source), "--nick", "alice", "-q"
        )
        out, err = await send.communicate()
        if send.returncode != 0:
            raise RuntimeError(err.decode())
        return float(json.loads(out)["seconds"])

    return await with_irssi(server, scratch, body)


async def case_from_irssi(server: ServerProcess, scratch: Path, source: Path) -> float:
    async def body(tmux: object, down: Path, up: Path) -> float:
        shutil.copy(source, up / source.name)
        env = env_for(scratch)
        inbox = scratch / "inbox"
        inbox.mkdir()
        where = f"{server.host}:{server.port}"
        recv = await relaychat(
            env, "receive-files", where, "--nick", "bob", "--dir", str(inbox), "--count", "1", "-q"
        )
        await asyncio.sleep(1.0)
        await tmux.type(f"/dcc send bob {up / source.name}")  # type: ignore[attr-defined]
        out, err = await recv.communicate()
        if recv.returncode != 0:
            raise RuntimeError(err.decode())
        return float(json.loads(out)["seconds"])

    return await with_irssi(server, scratch, body)


async def with_weechat(
    server: ServerProcess, scratch: Path, body: Callable[[Path, Path], Awaitable[float]]
) -> float:
    from tests.e2e.test_dcc_weechat import WEECHAT, until_online

    home, down = scratch / "weechat", scratch / "wee-down"
    for d in (home, down):
        d.mkdir()
    setup = ";".join(
        [
            "/set fifo.file.enabled on",
            "/set xfer.file.auto_accept_files on",
            f"/set xfer.file.download_path {down}",
            f"/server add bench {server.host}/{server.port} -notls -nicks=weebench",
            "/connect bench",
        ]
    )
    assert WEECHAT is not None
    wee = await asyncio.create_subprocess_exec(
        WEECHAT, "--dir", str(home), "--run-command", setup,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    fifo = home / f"weechat_fifo_{wee.pid}"
    try:
        await until_online(server, "weebench")
        return await body(fifo, down)
    finally:
        with contextlib.suppress(OSError):
            fifo.write_text("core.weechat */quit\n")
        try:
            await asyncio.wait_for(wee.wait(), 10)
        except TimeoutError:
            wee.kill()
            await wee.wait()


async def case_to_weechat(server: ServerProcess, scratch: Path, source: Path) -> float:
    async def body(fifo: Path, down: Path) -> float:
        env = env_for(scratch)
        where = f"{server.host}:{server.port}"
        send = await relaychat(
            env, "send-file", where, "weebench", str(source), "--nick", "alice", "-q"
        )
        out, err = await send.communicate()
        if send.returncode != 0:
            raise RuntimeError(err.decode())
        return float(json.loads(out)["seconds"])

    return await with_weechat(server, scratch, body)


async def case_from_weechat(server: ServerProcess, scratch: Path, source: Path) -> float:
    async def body(fifo: Path, down: Path) -> float:
        env = env_for(scratch)
        inbox = scratch / "inbox"
        inbox.mkdir()
        where = f"{server.host}:{server.port}"
        recv = await relaychat(
            env, "receive-files", where, "--nick", "bob", "--dir", str(inbox), "--count", "1", "-q"
        )
        await asyncio.sleep(1.0)
        fifo.write_text(f"irc.server.bench */dcc send bob {source}\n")
        out, err = await recv.communicate()
        if recv.returncode != 0:
            raise RuntimeError(err.decode())
        return float(json.loads(out)["seconds"])

    return await with_weechat(server, scratch, body)


CASES = {
    "cli": case_cli,
    "lib-asyncio": case_lib,
    "lib-uvloop": case_lib,
    "to-irssi": case_to_irssi,
    "from-irssi": case_from_irssi,
    "to-weechat": case_to_weechat,
    "from-weechat": case_from_weechat,
}


async def run_case(name: str, size: int, where: str | None = None) -> float:
    scratch = Path(tempfile.mkdtemp(prefix="dcc-bench-", dir=where))
    try:
        source = scratch / "payload.bin"
        random_file(source, size)
        server = await ServerProcess.start()
        try:
            return await CASES[name](server, scratch, source)
        finally:
            await server.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=200, help="MiB per transfer (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best counts")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument(
        "--dir", help="where the files are written (default: the temp dir; /dev/shm: no disk)"
    )
    args = parser.parse_args()
    have_irssi = shutil.which("irssi") and shutil.which("tmux")
    have_weechat = shutil.which("weechat-headless")
    results: dict[str, dict[str, float]] = {}
    for name in args.cases.split(","):
        if "irssi" in name and not have_irssi:
            print(f"{name}: skipped (irssi and tmux are needed)")
            continue
        if "weechat" in name and not have_weechat:
            print(f"{name}: skipped (weechat-headless is needed)")
            continue
        times = []
        for _ in range(args.repeat):
            if name == "lib-uvloop":
                import uvloop

                took = uvloop.run(run_case(name, args.size * MiB, args.dir))
            else:
                took = asyncio.run(run_case(name, args.size * MiB, args.dir))
            times.append(took)
        best = min(times)
        rate = args.size / best
        results[name] = {"best_seconds": round(best, 3), "mib_per_s": round(rate, 1)}
        runs = ", ".join(f"{args.size / t:.0f}" for t in times)
        print(f"{name:12} {args.size} MiB: best {best:.2f} s = {rate:.0f} MiB/s  (runs: {runs})")
    load = os.getloadavg()[0]
    summary = {"size_mib": args.size, "cpus": os.cpu_count(), "load": load, "results": results}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
