"""The fuzzers (fuzz/, docs/fuzzing.md): a short bounded pass of each, and checks that the
invariant checker does catch a broken state (so a clean pass means something)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz.driver import Finding, FuzzPeer, World, check_core, run_bytes

from tests.harness import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
HAVE_ATHERIS = importlib.util.find_spec("atheris") is not None
#: Seconds of the core pass inside `make test` (the brief: a short bounded pass).
CORE_SECONDS = int(os.environ.get("RELAYCHAT_FUZZ_SECONDS", "20"))


def _run(module: str, seconds: int, tmp_path: Path, corpus: str) -> str:
    work = tmp_path / "corpus"
    work.mkdir()
    if HAVE_ATHERIS:
        cmd = [
            sys.executable,
            "-m",
            f"fuzz.{module}",
            f"-max_total_time={seconds}",
            "-max_len=4096",
            f"-artifact_prefix={tmp_path}/",
            str(work),
            str(ROOT / "fuzz" / "corpus" / corpus),
        ]
    else:
        cmd = [sys.executable, "-m", "fuzz.fallback", corpus, "--seconds", str(seconds)]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=seconds * 4 + 60 * TIMEOUT,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


@pytest.mark.timeout(300)
def test_core_short_pass(tmp_path: Path) -> None:
    output = _run("fuzz_core", CORE_SECONDS, tmp_path, "core")
    assert "Done" in output or "no finding" in output, output[-2000:]


@pytest.mark.timeout(120)
def test_parser_short_pass(tmp_path: Path) -> None:
    output = _run("fuzz_parser", 5, tmp_path, "parser")
    assert "Done" in output or "no finding" in output, output[-2000:]


def test_corpus_replays_clean() -> None:
    """Every saved input (the minimised corpus of the long runs) passes every invariant."""
    files = sorted((ROOT / "fuzz" / "corpus" / "core").glob("*"))
    for path in files:
        run_bytes(path.read_bytes())


class TestCheckerCatches:
    """The checker is not a rubber stamp: each kind of damage is reported."""

    def world(self) -> World:
        w = World()
        for nick in ("alice", "bob"):
            w.open("127.0.0.1", 1)
            w.register(w.users[-1], nick)
        w.send(w.users[0], b"JOIN #a")
        w.send(w.users[1], b"JOIN #a")
        assert check_core(w.core) == []
        return w

    def test_member_missing_from_channel(self) -> None:
        w = self.world()
        channel = w.core.channels["#a"]
        del channel.members[w.users[1]]
        assert any("not a member" in p for p in check_core(w.core))
        w.close()

    def test_stale_nick_index(self) -> None:
        w = self.world()
        w.core.users["ghost"] = w.users[0]
        assert any("ghost" in p for p in check_core(w.core))
        w.close()

    def test_counters(self) -> None:
        w = self.world()
        w.core.registered_count += 1
        w.core.invisible_count += 1
        w.core.per_ip["10.9.9.9"] = 1
        problems = check_core(w.core)
        assert any("registered_count" in p for p in problems)
        assert any("invisible_count" in p for p in problems)
        assert any("per_ip" in p for p in problems)
        w.close()

    def test_output_too_long_or_after_close(self) -> None:
        peer = FuzzPeer("p")
        peer.send(b":s 421 n " + b"x" * 600 + b" :Unknown command\r\n")
        peer.close("bye")
        peer.send(b"PING x\r\n")
        assert len(peer.problems) == 2

    def test_finding_names_the_steps(self) -> None:
        w = self.world()
        w.core.oper_count = 5
        with pytest.raises(Finding, match=r"(?s)oper_count.*last steps"):
            w.check()
        w.close()
