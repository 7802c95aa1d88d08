"""`relaychat hooks` as an operator runs it, against the real `relaychat serve` (no restart)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

from tests.harness import TIMEOUT, LineClient, ServerProcess
from tests.integration.tls_support import free_port
from tests.integration.web_support import fetch


def hooks(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaychat", "hooks", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
        env={"PATH": "/usr/bin:/bin"},
    )


async def test_hooks_add_list_remove_seen_by_the_running_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    http_port = free_port()
    srv = await ServerProcess.start("--data-dir", str(data), "--http-port", str(http_port))
    try:
        watcher = await LineClient.open(srv.host, srv.port)
        await watcher.register("watcher")
        await watcher.send("JOIN #deploys")
        await watcher.expect(r" 366 watcher #deploys ")

        added = await asyncio.to_thread(hooks, data, "add", "#deploys", "--name", "ci")
        assert added.returncode == 0, added.stderr
        token = re.search(r"token \(shown only now\): (\S+)", added.stdout)
        assert token is not None, added.stdout
        assert f"/hooks/{token.group(1)}" in added.stdout
        assert token.group(1) not in (data / "hooks.json").read_text()  # only its hash is kept

        listed = await asyncio.to_thread(hooks, data, "list")
        assert listed.returncode == 0 and re.search(r"^ci\t#deploys\tcreated ", listed.stdout, re.M)
        again = await asyncio.to_thread(hooks, data, "add", "#deploys", "--name", "ci")
        assert again.returncode == 2 and again.stderr.count("\n") == 1

        url = f"/hooks/{token.group(1)}"
        body = b'{"text": "deployed"}'  # as `curl -d` sends it (form content type)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        posted = await fetch(http_port, "POST", url, body=body, headers=form)
        assert posted.status == 200, posted.body
        await watcher.expect(r"^:ci/hook!hook@\S+ PRIVMSG #deploys :deployed$")

        removed = await asyncio.to_thread(hooks, data, "remove", "ci")
        assert removed.returncode == 0
        refused = await fetch(http_port, "POST", url, body=body, headers=form)
        assert refused.status == 401
        missing = await asyncio.to_thread(hooks, data, "remove", "ci")
        assert missing.returncode == 1 and "no webhook called 'ci'" in missing.stderr
        await watcher.close()
    finally:
        assert await srv.stop() == 0
