"""ngIRCd, the Debian package, as a server for tests: a throwaway config on a free port.

Tests that need it skip with a reason when it is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from pathlib import Path

from tests.harness import TIMEOUT

__all__ = ["NGIRCD", "Ngircd"]

#: The ngircd executable, or "" when it is not installed.
NGIRCD = shutil.which("ngircd") or ("/usr/sbin/ngircd" if Path("/usr/sbin/ngircd").exists() else "")

_CONF = """\
[Global]
\tName = test.ngircd.local
\tInfo = relaychat tests
\tAdminInfo1 = tests
\tAdminInfo2 = loopback
\tAdminEMail = tests@localhost
\tListen = 127.0.0.1
\tPorts = {port}
\tMotdPhrase = "relaychat tests"
\tPidFile = {workdir}/ngircd.pid
[Limits]
\tMaxConnectionsIP = 0
\tMaxPenaltyTime = 0
\tPingTimeout = 600
\tPongTimeout = 600
[Options]
\tDNS = no
\tIdent = no
\tPAM = no
\tIncludeDir = {workdir}/conf.d
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Ngircd:
    """One ngircd process (``--nodaemon``), listening on 127.0.0.1:``port``."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, workdir: str) -> None:
        self.proc = proc
        self.host = "127.0.0.1"
        self.port = port
        self.workdir = workdir

    @classmethod
    async def start(cls) -> Ngircd:
        """Write a config, start ngircd, and wait until it accepts connections."""
        workdir = tempfile.mkdtemp(prefix="relaychat-ngircd-")
        (Path(workdir) / "conf.d").mkdir()
        port = _free_port()
        conf = Path(workdir) / "ngircd.conf"
        conf.write_text(_CONF.format(port=port, workdir=workdir))
        os.chmod(workdir, 0o777)  # run as root, ngircd drops to "nobody"
        os.chmod(conf, 0o644)
        proc = await asyncio.create_subprocess_exec(
            NGIRCD,
            "--nodaemon",
            "--config",
            str(conf),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        server = cls(proc, port, workdir)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT * 2
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if proc.returncode is not None or loop.time() > deadline:
                    await server.stop()
                    raise AssertionError("ngircd did not start listening") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return server

    async def stop(self) -> None:
        """SIGTERM, and wait (SIGKILL if it hangs)."""
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), TIMEOUT)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)
