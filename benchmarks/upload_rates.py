"""Upload and download rates of the server's file host (``POST /upload``) over loopback.

Starts ``relaychat serve`` (its own process, the default uvloop) with an HTTP port and a data
directory (``--dir``; put it on ``/dev/shm`` to take the disk out of the numbers), registers an
account, writes a random file, and times:

- ``lib``: ``relaychat.client.upload.upload`` (the URL from ISUPPORT, a ``TOKEN GENERATE``
  token, ``Expect: 100-continue``, the file read and sent in 1 MiB chunks); the time is from the
  request to the ``201`` (the server has written, synced and indexed the file by then);
- ``curl``: ``curl -X POST -T FILE`` with a token (curl streams the file too), ``time_total``;
- ``download``: ``curl`` fetching the stored file to ``/dev/null``;
- ``ping_ms``: while the ``curl`` uploads run (curl is its own process, so this process only
  pings), an IRC client sends a PING every 10 ms to the server taking the uploads, and another
  to a second, idle ``relaychat serve`` (``control_ping_ms``): the median and worst round trips.
  The difference is what the uploads cost a bystander; what both share is the machine (a
  shared 2-core box with several busy processes); ``loop_lag_ms_max``: the server's own measure
  (``/metrics``), how late its event loop ever woke a 250 ms timer since it started.

Runs share the machine with whatever else runs: take the best of ``--repeat``.

    .venv/bin/python benchmarks/upload_rates.py --size 200 --repeat 3 [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness import LineClient, ServerProcess  # noqa: E402
from tests.integration.tls_support import free_port  # noqa: E402

from relaychat.client import Client  # noqa: E402
from relaychat.client.upload import upload  # noqa: E402

MiB = 1 << 20
PASSWORD = "benchmark-password"


async def curl(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"curl failed: {err.decode().strip()}")
    return out.decode()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=200, help="MiB to upload (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case (best kept)")
    parser.add_argument("--dir", default=None, help="where the server keeps its data")
    args = parser.parse_args()
    size = args.size * MiB
    scratch = Path(tempfile.mkdtemp(prefix="relaychat-upbench-", dir=args.dir))
    http_port = free_port()
    server = await ServerProcess.start(
        "--data-dir",
        str(scratch / "data"),
        "--http-port",
        str(http_port),
        "--uploads-max-size",
        str(size + MiB),
        "--uploads-min-free",
        "0",
        "--uploads-max-total",
        "0",
        "--uploads-quota-per-account",
        "0",
    )
    control = await ServerProcess.start()  # an idle server: the machine's own noise
    results: dict[str, float] = {}
    rtts: list[float] = []
    idle: list[float] = []
    try:
        source = scratch / "file.bin"
        with source.open("wb") as fh:
            for _ in range(args.size):
                fh.write(os.urandom(MiB))
        irc = await LineClient.open(server.host, server.port)
        await irc.register("bench")
        await irc.send(f"REGISTER * * {PASSWORD}")
        await irc.expect(r" 900 ")
        pinger = await LineClient.open(server.host, server.port)
        await pinger.register("pinger")
        other = await LineClient.open(control.host, control.port)
        await other.register("pinger")
        stop = asyncio.Event()

        async def ping(c: LineClient, into: list[float]) -> None:
            loop = asyncio.get_running_loop()
            n = 0
            while not stop.is_set():
                n += 1
                sent = loop.time()
                await c.send(f"PING :p{n}")
                await c.expect(rf"PONG \S+ :?p{n}$", timeout=30)
                into.append(loop.time() - sent)
                await asyncio.sleep(0.01)

        async with Client(server.host, server.port, nick="lib", sasl=("bench", PASSWORD)) as c:
            best = 0.0
            url = ""
            for _ in range(args.repeat):
                done = await upload(c, source)
                best = max(best, done.rate)
                url = done.url
            results["lib"] = best
        if shutil.which("curl"):
            best = 0.0
            pinging = asyncio.gather(ping(pinger, rtts), ping(other, idle))
            for _ in range(args.repeat):
                await irc.send("TOKEN GENERATE FILEHOST")
                m = await irc.expect(r"TOKEN GENERATE FILEHOST (\S+) :?(\S+)$")
                out = await curl(
                    "-X",
                    "POST",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code} %{time_total}",
                    "-H",
                    f"Authorization: Bearer {m.group(2)}",
                    "-H",
                    "Content-Type: application/octet-stream",
                    "-T",
                    str(source),
                    m.group(1) + "?name=file.bin",
                )
                status, took = out.split()
                if status != "201":
                    raise RuntimeError(f"curl upload answered {status}")
                best = max(best, size / float(took))
            stop.set()
            await pinging
            results["curl"] = best
            best = 0.0
            for _ in range(args.repeat):
                took = await curl("-o", "/dev/null", "-w", "%{time_total}", url)
                best = max(best, size / float(took))
            results["download"] = best
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics").read()
        )
        lag = re.search(rb"^relaychat_event_loop_lag_max_seconds (\S+)", metrics, re.M)
        if lag:
            results["loop_lag_max"] = float(lag.group(1))
        await irc.close()
        await pinger.close()
        await other.close()
        rtts.sort()
        idle.sort()
    finally:
        await server.stop()
        await control.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    lag_max = results.pop("loop_lag_max", None)
    report: dict[str, float] = {k: round(v / MiB, 1) for k, v in results.items()}
    if lag_max is not None:
        report["loop_lag_ms_max"] = round(lag_max * 1000, 1)
    report["MiB"] = args.size
    if rtts:
        report["ping_ms_max"] = round(rtts[-1] * 1000, 1)
        report["ping_ms_median"] = round(rtts[len(rtts) // 2] * 1000, 2)
        report["pings"] = len(rtts)
    if idle:
        report["control_ping_ms_max"] = round(idle[-1] * 1000, 1)
        report["control_ping_ms_median"] = round(idle[len(idle) // 2] * 1000, 2)
    print(json.dumps(report))
    for name, rate in results.items():
        print(f"{name:9} {rate / MiB:8.1f} MiB/s", file=sys.stderr)
    if rtts:
        print(
            f"PING during the uploads: median {report['ping_ms_median']} ms, "
            f"worst {report['ping_ms_max']} ms ({len(rtts)} pings); to an idle server at the same "
            f"time: median {report.get('control_ping_ms_median')} ms, worst "
            f"{report.get('control_ping_ms_max')} ms",
            file=sys.stderr,
        )
    if lag_max is not None:
        print(f"server event-loop lag, worst since start: {lag_max * 1000:.1f} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
