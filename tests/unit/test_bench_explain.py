"""`make bench`'s "what is left" split of a py-spy profile (benchmarks/explain.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import explain

RUN = (
    "<module> (relaychat/__main__.py:5);run (asyncio/runners.py:190);"
    "Runner.run (asyncio/runners.py:118)"
)
RAW = "\n".join(
    [
        f"{RUN} 30",  # the loop's C code: epoll, recv, callbacks
        f"{RUN};Server._flush (relaychat/server/listeners.py:300);"
        "SqliteHistory._write (relaychat/store/sqlite.py:310) 40",
        "_bootstrap (threading.py:1002);"
        "Retention._maintain (relaychat/store/sqlite_retention.py:213) 10",
        f"{RUN};Server._flush (relaychat/server/listeners.py:300);"
        "Connection.flush (relaychat/server/connection.py:400) 5",
        f"{RUN};Connection.data_received (relaychat/server/connection.py:200);"
        "privmsg (relaychat/server/commands/messaging.py:90) 15",
    ]
)


def test_split_puts_each_stack_in_its_part() -> None:
    shares = explain.split(RAW)
    assert shares == pytest.approx(
        {
            "history commit": 0.50,
            "socket writes": 0.05,
            "event loop and reads": 0.30,
            "Python message path": 0.15,
        }
    )


def test_the_text_says_how_far_each_part_could_take_the_ratio() -> None:
    text = explain.explain_text(
        "w4",
        explain.split(RAW),
        cpu_us=30.0,
        base_cpu_us=10.0,
        baseline="ngircd",
        unmet=[{"target": "W4 round trips/s >= 1.0x ngircd", "detail": "1 vs 3 = 0.33x"}],
        profile_path="w4.summary.txt",
    )
    assert "NOT met: W4 round trips/s >= 1.0x ngircd: 1 vs 3 = 0.33x" in text
    assert "relaychat needs 3.00x less to match" in text
    # The commit is half of 30 µs: free, 15 µs are left, i.e. 10 / 15 = 0.67x.
    rows = {line[:24].strip(): line[24:].split()[:3] for line in text.splitlines()[4:]}
    assert rows["history commit"] == ["50.0%", "15.00", "0.67x"]
    assert rows["Python message path"] == ["15.0%", "4.50", "0.39x"]


def test_a_target_of_its_own_is_explained_as_a_rate() -> None:
    text = explain.explain_text(
        "w1",
        explain.split(RAW),
        cpu_us=90.0,
        base_cpu_us=None,
        baseline="ngircd",
        unmet=[],
        profile_path="w1.summary.txt",
        rate=8_000.0,
        goal=10_000.0,
    )
    assert "8,000/s against a goal of 10,000/s: 1.25x to go" in text
    # Half the samples are the commit: free, a CPU-bound run would do twice the rate.
    assert "history commit          50.0%    45.00   16,000/s (if CPU-bound)" in text


def test_a_thin_profile_is_flagged() -> None:
    def text(samples: int) -> str:
        return explain.explain_text(
            "w1", explain.split(RAW), cpu_us=90.0, base_cpu_us=None, baseline="ngircd",
            unmet=[], profile_path="p", rate=9_000.0, goal=10_000.0, samples=samples,
        )  # fmt: skip

    assert explain.sample_count(RAW) == 100
    assert "(22 samples only: too few to split reliably" in text(22)
    assert text(900).endswith("(900 samples)")
