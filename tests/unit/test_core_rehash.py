"""The core's half of a reload (server/rehash.py) and the REHASH command, in memory."""

from __future__ import annotations

from dataclasses import replace

from relaychat.config import Config
from relaychat.server.rehash import apply_config, keep_restart_only
from tests.harness import CoreHarness
from tests.unit.accounts_support import harness as accounts_harness
from tests.unit.core_support import SERVER, harness


def oper(h: CoreHarness, nick: str) -> None:
    h.connect(nick)
    h.core.set_oper(h.users[nick], True)
    h.users[nick].oper_name = "root"


class TestApplyConfig:
    def test_motd_and_limits_follow(self) -> None:
        h = harness(motd="old news")
        h.connect("alice")
        new = replace(h.config, motd="fresh news", limits=replace(h.config.limits, nicklen=12))
        apply_config(h.core, new)
        h.send("alice", "MOTD")
        assert f":{SERVER} 372 alice :- fresh news" in h.lines("alice")
        h.send("alice", "VERSION")
        assert any("NICKLEN=12" in line for line in h.lines("alice"))
        h.send("alice", "NICK a_very_long_nick")
        assert h.numerics("alice") == ["432"]

    def test_whowas_bound_shrinks_keeping_newest(self) -> None:
        h = harness()
        for i in range(5):
            h.connect(f"u{i}")
            h.send(f"u{i}", "QUIT")
        apply_config(h.core, replace(h.config, limits=replace(h.config.limits, whowas=2)))
        assert [e.nick for e in h.core.whowas] == ["u4", "u3"]

    def test_cap_del_and_new_to_cap_notify_clients(self) -> None:
        h, _ = accounts_harness()
        h.open("c")
        h.send("c", "CAP LS 302")
        h.send("c", "CAP REQ :draft/account-registration")
        h.send("c", "NICK watcher")
        h.send("c", "USER w 0 * :w")
        h.send("c", "CAP END")
        h.connect("plain")  # no cap-notify: told nothing
        h.clear()
        off = replace(h.config, accounts=replace(h.config.accounts, registration=False))
        added, deleted = apply_config(h.core, off)
        assert (added, deleted) == ([], ["draft/account-registration"])
        assert h.lines("c") == [f":{SERVER} CAP watcher DEL draft/account-registration"]
        assert "draft/account-registration" not in h.users["c"].caps
        assert h.lines("plain") == []
        apply_config(h.core, h.config)
        assert h.lines("c") == [
            f":{SERVER} CAP watcher NEW draft/account-registration=before-connect,"
            "custom-account-name"
        ]

    def test_restart_only_settings_are_kept(self) -> None:
        old = Config(data_dir="/a", server_name="a.example")
        new = replace(
            Config(data_dir="/b", server_name="b.example", motd="x"),
            history=replace(old.history, enabled=False),
        )
        new = replace(new, http=replace(new.http, port=9999))
        merged, kept = keep_restart_only(old, new)
        assert kept == ["data_dir", "server_name", "history.enabled", "http.port"]
        assert merged.http.port == old.http.port
        assert (merged.data_dir, merged.server_name, merged.history.enabled) == (
            "/a",
            "a.example",
            True,
        )
        assert merged.motd == "x"


class TestRehashCommand:
    def test_ok(self) -> None:
        h = harness()
        oper(h, "op")
        calls: list[str] = []
        h.core.rehash_hook = lambda: (calls.append("x"), ("relaychat.toml", None))[1]
        h.send("op", "REHASH")
        assert h.lines("op") == [f":{SERVER} 382 op relaychat.toml Rehashing"]
        assert calls == ["x"]

    def test_refused_is_one_clear_line(self) -> None:
        h = harness()
        oper(h, "op")
        records: list[dict[str, object]] = []
        h.core.audit_sink = records.append
        h.core.rehash_hook = lambda: ("relaychat.toml", "limits.nicklen: must be at least 9")
        h.send("op", "REHASH")
        assert h.lines("op") == [
            f":{SERVER} FAIL REHASH INVALID_CONFIG :Reload refused, the running configuration "
            "stays: limits.nicklen: must be at least 9"
        ]
        assert records[0]["action"] == "REHASH" and records[0]["result"] == "refused"

    def test_needs_oper_and_a_hook(self) -> None:
        h = harness()
        h.connect("alice")
        h.send("alice", "REHASH")
        assert h.numerics("alice") == ["481"]
        oper(h, "op")
        h.send("op", "REHASH")
        assert "FAIL REHASH CANNOT_RELOAD" in h.lines("op")[0]
