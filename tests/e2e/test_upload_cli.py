"""``relaychat upload`` as a script runs it: a real subprocess against a real server with its HTTP
port; its JSON line, the link said with ``--to``, and its one-line failures with exit codes."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.test_send_tail import run
from tests.harness import LineClient
from tests.integration.upload_support import PASSWORD, account, path_of, upload_server, web_port
from tests.integration.web_support import fetch

MakeServer = Callable[..., Any]


def environment(tmp_path: Path, password: str = PASSWORD) -> dict[str, str]:
    config = tmp_path / "client.toml"
    config.write_text("connect_timeout = 2.0\nregistration_timeout = 3.0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")}
    env["RELAYCHAT_CLIENT_CONFIG"] = str(config)
    env["RELAYCHAT_ACCOUNT_PASSWORD"] = password
    return env


async def test_upload_prints_the_link_and_says_it(make_server: MakeServer, tmp_path: Path) -> None:
    srv = await upload_server(make_server)
    host, port = srv.addresses[0]
    alice = await account(srv, "alice")
    bob = await LineClient.open(host, port)
    await bob.register("bob")
    await bob.send("JOIN #lobby")
    await bob.expect(" 366 bob #lobby ")
    data = os.urandom(1 << 20)
    path = tmp_path / "build log.txt"
    path.write_bytes(data)
    try:
        env = environment(tmp_path)
        code, out, err = await run(
            env, "upload", f"{host}:{port}", str(path), "--account", "alice", "--to", "#lobby"
        )
        assert code == 0, err
        record = json.loads(out)
        assert record["name"] == "build log.txt" and record["size"] == len(data)
        assert record["url"].startswith(f"http://127.0.0.1:{web_port(srv)}/uploads/")
        assert record["url"].endswith("/build%20log.txt")
        assert "uploaded build log.txt, 1.0 MiB" in err
        await bob.expect(rf"PRIVMSG #lobby :{record['url']}$")
        got = await fetch(web_port(srv), "GET", path_of(record["url"]))
        assert hashlib.sha256(got.body).digest() == hashlib.sha256(data).digest()
    finally:
        await alice.close()
        await bob.close()


async def test_upload_failures_are_one_line(make_server: MakeServer, tmp_path: Path) -> None:
    srv = await upload_server(make_server, max_size=10)
    host, port = srv.addresses[0]
    alice = await account(srv, "alice")
    await alice.close()
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 11)
    address = f"{host}:{port}"
    env = environment(tmp_path)
    code, out, err = await run(env, "upload", address, str(big), "--account", "alice", "-q")
    assert (code, out) == (1, "")
    assert err == (
        "relaychat: upload failed (413): File too large: 11 B; the largest upload is 10 B\n"
    )
    code, out, err = await run(env, "upload", address, str(tmp_path / "none"), "--account", "x")
    assert (code, out, err) == (2, "", f"relaychat: no such file: {tmp_path / 'none'}\n")
    wrong = environment(tmp_path, "not the password")
    code, _, err = await run(wrong, "upload", address, str(big), "--account", "alice")
    assert code == 3 and "SASL authentication failed" in err, err
    code, _, err = await run(env, "upload", address, str(big), "-q")
    assert code == 1
    assert err.startswith("relaychat: upload failed: log in to an account first"), err
    no_password = {k: v for k, v in env.items() if k != "RELAYCHAT_ACCOUNT_PASSWORD"}
    code, _, err = await run(no_password, "upload", address, str(big), "--account", "alice")
    assert code == 2 and "RELAYCHAT_ACCOUNT_PASSWORD" in err, err
