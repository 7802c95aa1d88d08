"""Upload logins share the server's failed-login lock-outs with SASL (``server/throttle.py``): the
same keys (address group, account from that group, account from everywhere), so failures over
HTTP and over IRC add up, both ways."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.integration.hostile_support import sasl_connect
from tests.integration.upload_support import PASSWORD, account, basic, exchange
from tests.integration.web_support import web_port, web_server

MakeServer = Callable[..., Any]


async def test_upload_and_sasl_failures_add_up(make_server: MakeServer) -> None:
    srv = await web_server(
        make_server,
        uploads={"min_free": 0},
        throttle={"account_failures": 2, "login_failures": 4, "tarpit": 0.1},
    )
    port = web_port(srv)
    host, irc_port = srv.addresses[0]
    alice = await account(srv, "alice")
    try:
        # Two wrong upload passwords for alice lock this address out of alice...
        for _ in range(2):
            headers = {"Authorization": basic("alice", "wrong-password")}
            answer, _ = await exchange(port, "POST", "/upload", headers, b"x")
            assert answer.status == 401
        answer, _ = await exchange(port, "POST", "/upload", {"Authorization": basic("alice")}, b"x")
        assert answer.status == 429 and b"Too many failed logins" in answer.body
        # ...over IRC too: the right password is refused by SASL.
        c, numeric = await sasl_connect(host, irc_port, "alice", PASSWORD)
        assert numeric == "904"
        assert "too many failed logins" in c.seen[-1]
        await c.close()

        # Two SASL failures (another account) bring the address to its 4 failures: uploads
        # from it are refused before any check, whatever they send.
        for _ in range(2):
            c, numeric = await sasl_connect(host, irc_port, "nobody", "wrong-password")
            assert numeric == "904"
            await c.close()
        answer, _ = await exchange(port, "POST", "/upload", {"Authorization": "Bearer x"}, b"x")
        assert answer.status == 429
        assert int(answer.headers["retry-after"]) >= 1
        assert srv.core.throttles.login.failures("127.0.0.1", srv.core.now) == 4
    finally:
        await alice.close()
