"""Upload and download rates of the server's file host (``POST /upload``) over loopback.

Starts ``relaychat serve`` (its own process, the default uvloop) with an HTTP port and a data
directory (``--dir``; put it on ``/dev/shm`` to take the disk out of the numbers), registers an
account, writes a random file, and times:

- ``lib``: ``relaychat.client.upload.upload`` (the URL from ISUPPORT, a ``TOKEN GENERATE``
  token, ``Expect: 100-continue``, the file read and sent in 1 MiB chunks); the time is from the
  request to the ``201`` (the server has written, synced and indexed the file by then);
- ``curl``: ``curl -X POST -T FILE`` with a token (curl streams the file too), ``time_total``;
- ``download``: ``curl`` fetching the stored file to ``/dev/null``.

Runs share the machine with whatever else runs: take the best of ``--repeat``.

    .venv/bin/python benchmarks/upload_rates.py --size 200 --repeat 3 [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
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
    results: dict[str, float] = {}
    try:
        source = scratch / "file.bin"
        with source.open("wb") as fh:
            for _ in range(args.size):
                fh.write(os.urandom(MiB))
        irc = await LineClient.open(server.host, server.port)
        await irc.register("bench")
        await irc.send(f"REGISTER * * {PASSWORD}")
        await irc.expect(r" 900 ")
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
            results["curl"] = best
            best = 0.0
            for _ in range(args.repeat):
                took = await curl("-o", "/dev/null", "-w", "%{time_total}", url)
                best = max(best, size / float(took))
            results["download"] = best
        await irc.close()
    finally:
        await server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps({k: round(v / MiB, 1) for k, v in results.items()} | {"MiB": args.size}))
    for name, rate in results.items():
        print(f"{name:9} {rate / MiB:8.1f} MiB/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
